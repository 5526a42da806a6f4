//! `godwit revert`: swap back to the original schema during a revert window, with every
//! write since the cut-over kept (docs/how-it-works.md, "Revert").

use super::ConnArgs;
use crate::ddl::AlterSpec;
use crate::dispatch;
use crate::engine::{EngineOptions, NameOverride};
use crate::error::{Error, ErrorKind, Result};
use crate::migration::checkpoint::{Checkpoint, ResumeMode};
use crate::migration::{Migration, Outcome, RunOptions};
use crate::progress::{Format, Reporter};
use crate::target::Target;
use crate::throttle::{LoadThresholds, Throttle};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct RevertArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Drop the table with the new schema once the tables are swapped back.
    #[arg(long)]
    pub ok_to_drop_table: bool,
    /// Longest time the cut-over waits for its lock (and so blocks writes) per attempt.
    #[arg(long, default_value_t = 3.0)]
    pub cut_over_lock_timeout_seconds: f64,
    /// Cut-over attempts before giving up (backoff between them).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cut_over_retries: u32,
    /// Stay in sync and do not cut over while this file exists; delete it to proceed.
    #[arg(long)]
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Do not compare the two tables before swapping back.
    #[arg(long)]
    pub skip_verify: bool,
    /// Pause the replay while a status counter exceeds its value.
    #[arg(long)]
    pub max_load: Option<LoadThresholds>,
    #[command(flatten)]
    pub lag: super::lag::LagArgs,
    /// How long to keep reconnecting after a connection is lost (see `godwit run`).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub reconnect_timeout_seconds: u64,
}

pub async fn revert(a: RevertArgs) -> i32 {
    let mut rep = Reporter::new(a.format);
    match inner(&a, &mut rep).await {
        Ok(()) => 0,
        Err(e) => {
            rep.error(&e);
            e.exit_code()
        }
    }
}

async fn inner(a: &RevertArgs, rep: &mut Reporter) -> Result<()> {
    if !(a.cut_over_lock_timeout_seconds > 0.0 && a.cut_over_lock_timeout_seconds <= 3600.0) {
        return Err(Error::bad_input(
            "--cut-over-lock-timeout-seconds must be between 0 and 3600",
        ));
    }
    let target = Target::parse(&a.conn.url, a.conn.password_file.as_deref())?;
    let abort = Arc::new(AtomicBool::new(false));
    let reconnect = crate::engine::retry::Reconnect {
        timeout: Duration::from_secs(a.reconnect_timeout_seconds),
        json: a.format == Format::Json,
        abort: Some(abort.clone()),
    };
    let mut eopts = EngineOptions {
        names: None,
        cut_over_hold: None,
        reconnect: reconnect.clone(),
        revert_window: false,
    };
    // The window's names come from its checkpoint (read again under the runner lock).
    let probe = dispatch::connect(&target, &a.conn.table, &eopts).await?;
    let saved = probe.load_checkpoint().await;
    let _ = probe.close().await;
    let cp: Option<Checkpoint> = saved?.and_then(|t| serde_json::from_str(&t).ok());
    let Some(cp) = cp.filter(|c| c.revert.is_some()) else {
        return Err(Error::new(
            ErrorKind::Checkpoint,
            format!("there is no open revert window on {}", a.conn.table),
        )
        .with_hint("a revert needs a run with --revert-window whose window is still open; nothing was changed"));
    };
    eopts.names = Some(NameOverride {
        shadow: cp.shadow.clone(),
        old: Some(cp.old.clone()),
        cut_over: true,
    });
    let engine = dispatch::connect(&target, &a.conn.table, &eopts).await?;
    let opts = RunOptions {
        alter: AlterSpec {
            clauses: cp.alter.clone(),
            renames: vec![],
            new_columns: vec![],
            auto_increment: None,
        },
        execute: true,
        chunk_time: Duration::from_millis(500),
        chunk_size: 1000,
        cut_over_timeout: Duration::from_secs_f64(a.cut_over_lock_timeout_seconds),
        cut_over_retries: a.cut_over_retries,
        postpone_flag_file: a.postpone_cut_over_flag_file.clone(),
        ok_to_drop_table: a.ok_to_drop_table,
        verify: !a.skip_verify,
        // The table swapped back kept its statistics; the writes since the cut-over are
        // few next to it, and the server's own collection covers them.
        analyze: false,
        resume: ResumeMode::Auto,
        after_swap_hold: None,
        reconnect,
        revert_window: None,
        revert: true,
    };
    let throttle = Throttle::new(None, a.max_load.clone(), None, None);
    let (throttle, lag) = a.lag.start(&target, Some(&a.conn.table), throttle).await?;
    let signals = super::run::spawn_signal_watch(abort.clone());
    let result = Migration::new(engine.as_ref(), opts, throttle, rep, abort)
        .run()
        .await;
    signals.abort();
    if let Some(lag) = lag {
        lag.stop().await;
    }
    let _ = engine.close().await;
    match result? {
        Outcome::Done(d) => {
            rep.done(&d);
            if !d.cleanup_complete {
                return Err(Error::new(
                    ErrorKind::SwappedCleanupIncomplete,
                    format!(
                        "the revert of {} succeeded (the original schema is back), but its cleanup did not finish: {}. Left behind: {}",
                        d.table,
                        d.cleanup_error.as_deref().unwrap_or("unknown error"),
                        d.leftovers.join(", ")
                    ),
                )
                .with_hint(format!(
                    "when the server answers, remove what is left with: godwit cleanup --url <URL> --table {} --execute",
                    a.conn.table
                )));
            }
        }
        Outcome::DryRun(_) | Outcome::WindowEnded => rep.finish(),
    }
    Ok(())
}
