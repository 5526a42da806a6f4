//! `godwit plan`: a dry run that says what an ALTER will lock, rewrite and cost, and how
//! to run it. Reads the server, changes nothing.

use super::ConnArgs;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{self, PlanOptions, Severity};
use crate::progress::{Format, Reporter};
use crate::target::Target;

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The change: ALTER TABLE clauses (or a whole ALTER TABLE; on PostgreSQL also one
    /// CREATE INDEX statement).
    #[arg(long)]
    pub alter: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with code 41 when a risk of at least this severity is found.
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// A table with at least this many rows is large.
    #[arg(long, default_value_t = 1_000_000)]
    pub large_table_rows: u64,
    /// A table with at least this many bytes (data + indexes) is large: 1GiB, 500MB, 123.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub large_table_bytes: u64,
    /// A transaction open longer than this (seconds) is reported.
    #[arg(long, default_value_t = 60)]
    pub long_trx_seconds: u64,
    /// Data checks (NULLs, duplicates, values that would not fit) read at most this many rows.
    #[arg(long, default_value_t = 1_000_000)]
    pub check_rows: u64,
    /// Rows read (in key order) to measure the copy speed; 0 uses the documented default.
    #[arg(long, default_value_t = 10_000)]
    pub sample_rows: u64,
}

/// `1GiB`, `500MB`, `64k`, `123`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    let mult: f64 = match unit.trim().to_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0f64.powi(4),
        other => return Err(format!("unknown unit '{other}' in {s}")),
    };
    Ok((n * mult) as u64)
}

pub async fn plan(a: PlanArgs) -> i32 {
    let mut rep = Reporter::new(a.format);
    match inner(&a).await {
        Ok(code) => code,
        Err(e) => {
            rep.error(&e);
            e.exit_code()
        }
    }
}

async fn inner(a: &PlanArgs) -> Result<i32> {
    let target = Target::parse(&a.conn.url, a.conn.password_file.as_deref())?;
    let opts = PlanOptions {
        large_table_rows: a.large_table_rows,
        large_table_bytes: a.large_table_bytes,
        long_trx_seconds: a.long_trx_seconds,
        check_rows: a.check_rows.max(1),
        sample_rows: a.sample_rows,
    };
    let p = plan::plan(&target, &a.conn.table, &a.alter, &opts).await?;
    match a.format {
        Format::Json => {
            let mut v = serde_json::to_value(&p)
                .map_err(|e| Error::internal(format!("serializing the plan: {e}")))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("event".into(), "plan".into());
                o.insert("schema_version".into(), 1.into());
            }
            println!("{v}");
        }
        Format::Text => print!("{}", plan::render::text(&p)),
    }
    let fails = matches!((a.fail_on, p.worst()), (Some(min), Some(w)) if w >= min);
    if fails {
        let e = Error::new(
            ErrorKind::PlanRisk,
            "the plan found risks at or above --fail-on",
        );
        if a.format == Format::Text {
            eprintln!("{e}");
        }
        return Ok(e.exit_code());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(super::parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(super::parse_bytes("123").unwrap(), 123);
        assert!(super::parse_bytes("1XB").is_err());
    }
}
