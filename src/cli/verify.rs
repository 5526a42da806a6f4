//! `godwit verify`: compare two tables of one schema chunk by chunk (the same checksums
//! `godwit run` uses before its cut-over). Read-only.

use super::ConnArgs;
use crate::dispatch;
use crate::engine::EngineOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::migration::verify::{compare_all, Comparison};
use crate::progress::{Format, Reporter};
use crate::schema::ColumnMapping;
use crate::target::Target;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table to compare --table with (same schema). Columns are matched by name; the
    /// rows by a unique key both tables share.
    #[arg(long)]
    pub against: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn verify(a: VerifyArgs) -> i32 {
    let mut rep = Reporter::new(a.format);
    match inner(&a, &rep).await {
        Ok(()) => 0,
        Err(e) => {
            rep.error(&e);
            e.exit_code()
        }
    }
}

async fn inner(a: &VerifyArgs, rep: &Reporter) -> Result<()> {
    let target = Target::parse(&a.conn.url, a.conn.password_file.as_deref())?;
    let engine = dispatch::connect(&target, &a.conn.table, &EngineOptions::default()).await?;
    let r = compare(engine.as_ref(), &a.against).await;
    let _ = engine.close().await;
    let (c, columns) = r?;
    if a.format == Format::Json {
        rep.emit(
            "verify",
            serde_json::json!({
                "table": a.conn.table, "against": a.against, "rows": c.rows, "chunks": c.chunks,
                "same": c.differing.is_empty(), "differing": c.differing, "columns": columns,
            }),
        );
    } else if c.differing.is_empty() {
        println!(
            "{} and {} hold the same rows ({} rows in {} chunks; columns compared: {})",
            a.conn.table,
            a.against,
            c.rows,
            c.chunks,
            columns.join(", ")
        );
    }
    if !c.differing.is_empty() {
        let first = &c.differing[0];
        return Err(Error::new(
            ErrorKind::VerifyMismatch,
            format!(
                "{} and {} differ in {} of {} chunk(s); first: keys after {} up to {}",
                a.conn.table,
                a.against,
                c.differing.len(),
                c.chunks,
                first.0.as_deref().unwrap_or("the start"),
                first.1.as_deref().unwrap_or("the end"),
            ),
        )
        .with_hint("nothing was changed; compare those key ranges of both tables"));
    }
    Ok(())
}

async fn compare(
    engine: &dyn crate::engine::Engine,
    against: &str,
) -> Result<(Comparison, Vec<String>)> {
    let a = engine.inspect().await?;
    let b = engine.inspect_other(against).await?;
    let mapping = ColumnMapping::build(&a, &b, &[], &[])?;
    let mut view = engine.verify_views(&a, &b, &mapping).await?;
    let cols = view.columns();
    let r = compare_all(view.as_mut()).await;
    let _ = view.close().await;
    let mut names = cols.same;
    names.extend(cols.converted);
    for (c, why) in &cols.skipped {
        tracing::warn!("column {c} is not compared: {why}");
    }
    Ok((r?, names))
}
