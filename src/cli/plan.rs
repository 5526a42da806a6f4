//! `godwit plan`: a dry run that says what an ALTER will lock, rewrite and cost, and how
//! to run it; or, given migration files, every statement each phase will run with its
//! lock and cost. Reads the server, changes nothing.

use crate::error::{Error, ErrorKind, Result};
use crate::plan::{self, PlanOptions, Severity};
use crate::progress::{Format, Reporter};
use crate::target::Target;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// Migration files (a directory or one file): plan every phase of each migration not
    /// yet complete. Without it, plan one ALTER with --table and --alter.
    #[arg(conflicts_with_all = ["table", "alter", "fail_on"])]
    pub path: Option<PathBuf>,
    /// Server URL: mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB. The password
    /// comes from MYSQL_PWD / PGPASSWORD, ~/.pgpass, --password-file, or the URL.
    #[arg(long, env = "GODWIT_URL", hide_env_values = true)]
    pub url: String,
    /// Read the password from this file (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The table: NAME (MySQL) or [SCHEMA.]NAME (PostgreSQL).
    #[arg(long, required_unless_present = "path")]
    pub table: Option<String>,
    /// The change: ALTER TABLE clauses (or a whole ALTER TABLE; on PostgreSQL also one
    /// CREATE INDEX statement).
    #[arg(long, required_unless_present = "path")]
    pub alter: Option<String>,
    /// With PATH: rows per backfill batch (as `godwit backfill --batch-size`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,
    /// With PATH: the backfill's --max-rows-per-second, for its estimate.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rows_per_second: Option<u32>,
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

pub async fn plan_command(a: PlanArgs) -> i32 {
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
    let target = Target::parse(&a.url, a.password_file.as_deref())?;
    let opts = PlanOptions {
        large_table_rows: a.large_table_rows,
        large_table_bytes: a.large_table_bytes,
        long_trx_seconds: a.long_trx_seconds,
        check_rows: a.check_rows.max(1),
        sample_rows: a.sample_rows,
    };
    if let Some(path) = &a.path {
        return files(a, &target, path, opts).await;
    }
    let (Some(table), Some(alter)) = (&a.table, &a.alter) else {
        return Err(Error::bad_input(
            "give migration files (PATH), or --table and --alter",
        ));
    };
    let engine = crate::dispatch::by_kind(target.kind).planner;
    let p = plan::plan_alter(engine, &target, table, alter, &opts).await?;
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
        Format::Text => print!("{}", plan::render::text(engine, &p)),
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

/// `godwit plan PATH`: one `plan` event per migration (JSON) or a table per phase.
async fn files(
    a: &PlanArgs,
    target: &Target,
    path: &std::path::Path,
    opts: PlanOptions,
) -> Result<i32> {
    let o = plan::phases::MigrationPlanOptions {
        plan: opts,
        batch_size: a.batch_size,
        max_rows_per_second: a.max_rows_per_second,
    };
    let parts = crate::dispatch::by_kind(target.kind);
    let plans =
        plan::phases::plan_migrations(parts.planner, parts.phases, target, path, &o).await?;
    match a.format {
        Format::Json => {
            let rep = Reporter::new(Format::Json);
            for m in &plans {
                let mut v = serde_json::to_value(m)
                    .map_err(|e| Error::internal(format!("serializing the plan: {e}")))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("schema_version".into(), 1.into());
                }
                rep.emit("plan", v);
            }
        }
        Format::Text => print!("{}", plan::phases::text(&plans)),
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
