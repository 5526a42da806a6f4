//! `godwit cleanup`: find (and with --execute remove) godwit's artifacts for one table.

use super::ConnArgs;
use crate::dispatch;
use crate::engine::EngineOptions;
use crate::error::Result;
use crate::progress::{Format, Reporter};
use crate::target::Target;

#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Remove what was found (without it, only list).
    #[arg(long)]
    pub execute: bool,
    /// Also drop old tables that earlier runs kept (`_godwit_old_<table>_<time>`).
    #[arg(long)]
    pub include_old_tables: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn cleanup(a: CleanupArgs) -> i32 {
    let mut rep = Reporter::new(a.format);
    match inner(&a, &rep).await {
        Ok(()) => 0,
        Err(e) => {
            rep.error(&e);
            e.exit_code()
        }
    }
}

async fn inner(a: &CleanupArgs, rep: &Reporter) -> Result<()> {
    let target = Target::parse(&a.conn.url, a.conn.password_file.as_deref())?;
    let engine = dispatch::connect(&target, &a.conn.table, &EngineOptions::default()).await?;
    let found = if a.execute {
        // A running migration's objects are never removed (on PostgreSQL its slot is
        // in use only while it is read, so "in use" alone does not tell).
        if !crate::engine::take_runner_lock(engine.as_ref()).await? {
            let _ = engine.close().await;
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Leftovers,
                "another godwit run is migrating this table right now (it holds the table's runner lock); nothing was removed",
            )
            .with_hint("wait for it to finish, or stop it, then run godwit cleanup again"));
        }
        engine.cleanup(a.include_old_tables).await?
    } else {
        // What --execute would remove (a checkpoint included).
        engine.cleanup_candidates(a.include_old_tables).await?
    };
    let _ = engine.close().await;
    let mut found = found;
    // The replica-lag heartbeat table of killed runs (shared by the database's runs).
    found.extend(dispatch::stale_heartbeat(&target, &a.conn.table, a.execute).await?);
    if a.format == Format::Json {
        rep.emit(
            "cleanup",
            serde_json::json!({"table": a.conn.table, "executed": a.execute, "objects": found}),
        );
    } else if found.is_empty() {
        println!("nothing of godwit's found for {}", a.conn.table);
    } else if a.execute {
        println!("removed: {}", found.join(", "));
    } else {
        println!(
            "found: {}\nrun again with --execute to remove them.",
            found.join(", ")
        );
    }
    Ok(())
}
