//! `godwit run`: the online ALTER.

use super::ConnArgs;
use crate::control::{Control, Kind};
use crate::ddl::AlterSpec;
use crate::dispatch;
use crate::engine::EngineOptions;
use crate::error::{Error, Result};
use crate::migration::checkpoint::ResumeMode;
use crate::migration::{DryRun, Migration, Outcome, RunOptions};
use crate::plan::PlanOptions;
use crate::progress::{Format, Reporter};
use crate::target::Target;
use crate::throttle::{LoadThresholds, Throttle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The change: a clause list (`ADD COLUMN x INT, DROP COLUMN y`) or a whole
    /// `ALTER TABLE name ...` statement.
    #[arg(long)]
    pub alter: String,
    /// Really migrate. Without it: check everything, try the ALTER on an empty shadow
    /// table, print the plan, remove the shadow.
    #[arg(long)]
    pub execute: bool,
    /// Output: progress bar and summary (text), or one JSON event per line on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Target time per copy chunk; the chunk size adapts to it.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub chunk_time_millis: u64,
    /// Rows in the first chunk.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    pub chunk_size: u64,
    /// Upper bound on rows copied per second.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rows_per_second: Option<u32>,
    /// Pause copy and replay while a status counter exceeds its value, e.g.
    /// `Threads_running=25,Threads_connected=500`.
    #[arg(long)]
    pub max_load: Option<LoadThresholds>,
    /// Abort (and clean up) when a status counter exceeds its value, e.g. `Threads_running=200`.
    #[arg(long)]
    pub critical_load: Option<LoadThresholds>,
    /// Pause copy and replay while this file exists.
    #[arg(long)]
    pub throttle_flag_file: Option<PathBuf>,
    #[command(flatten)]
    pub lag: super::lag::LagArgs,
    /// Stay in sync and do not cut over while this file exists; delete it to proceed.
    #[arg(long)]
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Longest time the cut-over waits for its lock (and so blocks writes) per attempt.
    #[arg(long, default_value_t = 3.0)]
    pub cut_over_lock_timeout_seconds: f64,
    /// Cut-over attempts before giving up (backoff between them).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cut_over_retries: u32,
    /// Drop the original (renamed) table after a successful cut-over (with
    /// --revert-window: when the window ends).
    #[arg(long)]
    pub ok_to_drop_table: bool,
    /// After the cut-over, keep replaying the new table's changes into the old table for
    /// this long (e.g. 30m, 2h), so that `godwit revert` can swap back with every write
    /// kept. Refused (exit 38) when the change cannot be reverted without losing data.
    #[arg(long, value_parser = parse_window, conflicts_with = "attempt_native")]
    pub revert_window: Option<Duration>,
    /// Require a checkpoint of an earlier run of this change and continue it (without it,
    /// a matching checkpoint is resumed anyway, and a run starts fresh when there is none).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Discard the checkpoint of an earlier run (and the shadow it kept) and start over.
    #[arg(long)]
    pub restart: bool,
    /// Do not compare the original and the new table before the cut-over (verification
    /// is on by default: a chunked checksum of both tables, differences re-copied).
    #[arg(long)]
    pub skip_verify: bool,
    /// Do not refresh the new table's planner statistics (ANALYZE) before the cut-over
    /// (on by default, so the application's queries are planned from real statistics
    /// from the first moment after the swap).
    #[arg(long)]
    pub skip_analyze: bool,
    /// Ask the planner first: an instant (MySQL/MariaDB) or catalog-only (PostgreSQL)
    /// change runs natively, with ALGORITHM=INSTANT and a lock wait timeout, instead of
    /// copying the table. Anything else runs online as usual.
    #[arg(long)]
    pub attempt_native: bool,
    /// With --attempt-native: longest wait for the table's lock (seconds).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub native_lock_timeout_seconds: u64,
    /// How long to keep reconnecting after a connection is lost (the change stream, the
    /// copy, the replay), with backoff from 100 ms to 5 s, continuing where it was; 0
    /// fails at once. The cut-over is not retried beyond --cut-over-retries.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub reconnect_timeout_seconds: u64,
    #[command(flatten)]
    pub hooks: super::hooks::HookArgs,
    /// End the sessions that block the cut-over's lock (found before each attempt; on
    /// MariaDB without performance_schema or the metadata_lock_info plugin, every
    /// session with a transaction open since before the attempt), after
    /// --force-cut-over-after. Off by default: blockers are only reported.
    #[arg(long)]
    pub kill_blockers: bool,
    /// With --kill-blockers: end blockers only once this long has passed since the first
    /// cut-over attempt (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_window, requires = "kill_blockers")]
    pub force_cut_over_after: Option<Duration>,
    #[command(flatten)]
    pub control: super::ctl::ControlArgs,
    /// Test seam: hold the cut-over lock this long once the swap is queued (first attempt).
    #[arg(long, hide = true)]
    pub debug_cut_over_hold_millis: Option<u64>,
    /// Test seam: wait this long right after the swap, before cleaning up.
    #[arg(long, hide = true)]
    pub debug_after_swap_hold_millis: Option<u64>,
}

fn parse_window(s: &str) -> std::result::Result<Duration, String> {
    crate::migration::checkpoint::parse_duration(s)
}

fn options(a: &RunArgs, alter: AlterSpec, abort: &Arc<AtomicBool>) -> Result<RunOptions> {
    if !(a.cut_over_lock_timeout_seconds > 0.0 && a.cut_over_lock_timeout_seconds <= 3600.0) {
        return Err(Error::bad_input(
            "--cut-over-lock-timeout-seconds must be between 0 and 3600",
        ));
    }
    Ok(RunOptions {
        alter,
        execute: a.execute,
        chunk_time: Duration::from_millis(a.chunk_time_millis),
        chunk_size: a.chunk_size,
        cut_over_timeout: Duration::from_secs_f64(a.cut_over_lock_timeout_seconds),
        cut_over_retries: a.cut_over_retries,
        postpone_flag_file: a.postpone_cut_over_flag_file.clone(),
        ok_to_drop_table: a.ok_to_drop_table,
        verify: !a.skip_verify,
        analyze: !a.skip_analyze,
        resume: if a.resume {
            ResumeMode::Require
        } else if a.restart {
            ResumeMode::Restart
        } else {
            ResumeMode::Auto
        },
        after_swap_hold: a.debug_after_swap_hold_millis.map(Duration::from_millis),
        reconnect: reconnect(a, abort),
        revert_window: a.revert_window,
        revert: false,
    })
}

fn reconnect(a: &RunArgs, abort: &Arc<AtomicBool>) -> crate::engine::retry::Reconnect {
    crate::engine::retry::Reconnect {
        timeout: Duration::from_secs(a.reconnect_timeout_seconds),
        json: a.format == Format::Json,
        abort: Some(abort.clone()),
    }
}

fn print_dry_run(rep: &Reporter, format: Format, d: &DryRun) {
    if format == Format::Json {
        rep.emit("plan", serde_json::to_value(d).unwrap_or_default());
        return;
    }
    println!(
        "dry run on {} ({}): the ALTER is valid; nothing was changed.",
        d.table, d.server
    );
    println!(
        "  rows (estimate): {}   data: {} MiB   indexes: {} MiB",
        d.row_estimate,
        d.data_bytes >> 20,
        d.index_bytes >> 20
    );
    println!(
        "  key: {} ({}) -> {}",
        d.mapping.key.source_columns.join(", "),
        d.mapping.key.source_name,
        d.mapping.key.target_name
    );
    println!("  column mapping:");
    for m in &d.mapping.columns {
        if m.source == m.target {
            println!("    {}", m.source);
        } else {
            println!("    {} -> {}", m.source, m.target);
        }
    }
    for c in &d.mapping.dropped {
        println!("    {c} (dropped)");
    }
    for c in &d.mapping.added {
        println!("    {c} (new: default value)");
    }
    println!(
        "  plan: copy into {}, replay changes, swap; the original is kept as {}",
        d.shadow_table, d.old_table
    );
    println!("  cut-over: {}", d.cut_over);
    println!("  run again with --execute to migrate.");
}

pub async fn run(a: RunArgs) -> i32 {
    let mut rep = Reporter::new(a.format);
    match run_inner(&a, &mut rep).await {
        Ok(()) => 0,
        Err(e) => {
            rep.error(&e);
            e.exit_code()
        }
    }
}

/// `--attempt-native`: true when the change was handled natively (or would be, without
/// --execute).
async fn attempt_native(a: &RunArgs, target: &Target, rep: &mut Reporter) -> Result<bool> {
    let engine = dispatch::by_kind(target.kind).planner;
    let p = crate::plan::plan_alter(
        engine,
        target,
        &a.conn.table,
        &a.alter,
        &PlanOptions::default(),
    )
    .await?;
    let Some(stmt) = engine.native_statement(&p) else {
        tracing::info!(
            "not instant/catalog-only ({}): running online",
            p.overall.reason
        );
        return Ok(false);
    };
    if a.execute {
        crate::plan::native::execute(engine, target, &stmt, a.native_lock_timeout_seconds).await?;
    }
    rep.finish();
    if a.format == Format::Json {
        rep.emit(
            "native",
            serde_json::json!({"executed": a.execute, "statement": stmt, "reason": p.overall.reason}),
        );
    } else if a.execute {
        println!("ran natively (no copy needed): {stmt}");
    } else {
        println!("would run natively (no copy needed): {stmt}\n  reason: {}\n  run again with --execute.", p.overall.reason);
    }
    Ok(true)
}

async fn run_inner(a: &RunArgs, rep: &mut Reporter) -> Result<()> {
    let target = Target::parse(&a.conn.url, a.conn.password_file.as_deref())?;
    // Refused here whether it would run natively or online.
    let alter = AlterSpec::parse(dispatch::by_kind(target.kind).sql, &a.conn.table, &a.alter)?;
    if a.attempt_native && attempt_native(a, &target, rep).await? {
        return Ok(());
    }
    let abort = Arc::new(AtomicBool::new(false));
    let hooks = a.hooks.build(
        &target,
        a.format,
        &[
            ("GODWIT_TABLE_NAME", a.conn.table.as_str()),
            ("GODWIT_ALTER", a.alter.as_str()),
        ],
    )?;
    let opts = options(a, alter, &abort)?;
    // The control socket and metrics: started first (a socket in use is refused before
    // anything else), stopped and removed when this function returns, whatever the outcome.
    let control = Arc::new(Control::new(Kind::Run));
    control.set_abort(abort.clone());
    control.update(|s| s.table = Some(a.conn.table.clone()));
    rep.set_control(control.clone());
    let signals = spawn_signal_watch(abort.clone());
    let _servers = a.control.start(&control, rep).await?;
    let throttle = Throttle::new(
        a.max_rows_per_second,
        a.max_load.clone(),
        a.critical_load.clone(),
        a.throttle_flag_file.clone(),
    )
    .with_control(control.clone());
    let eopts = EngineOptions {
        names: None,
        cut_over_hold: a.debug_cut_over_hold_millis.map(Duration::from_millis),
        reconnect: reconnect(a, &abort),
        revert_window: a.revert_window.is_some(),
    };
    let engine = dispatch::connect(&target, &a.conn.table, &eopts).await;
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            signals.abort();
            return Err(e);
        }
    };
    let hooks = hooks.map(|h| {
        let names = engine.names();
        Arc::new(
            h.with_var("GODWIT_SHADOW_TABLE_NAME", names.shadow.clone())
                .with_var("GODWIT_OLD_TABLE_NAME", names.old.clone()),
        )
    });
    let (throttle, lag) = if a.execute {
        match a.lag.start(&target, Some(&a.conn.table), throttle).await {
            Ok(t) => t,
            Err(e) => {
                signals.abort();
                let _ = engine.close().await;
                return Err(e);
            }
        }
    } else {
        (throttle, None)
    };
    let result = Migration::new(engine.as_ref(), opts, throttle, rep, abort)
        .with_control(control)
        .with_reverse(connector(&target, &a.conn.table, &eopts))
        .with_hooks(hooks)
        .with_blocker_policy(crate::migration::BlockerPolicy {
            kill: a.kill_blockers,
            after: a.force_cut_over_after.unwrap_or_default(),
        })
        .run()
        .await;
    signals.abort();
    if let Some(lag) = lag {
        lag.stop().await;
    }
    let _ = engine.close().await;
    match result? {
        Outcome::DryRun(d) => {
            rep.finish();
            print_dry_run(rep, a.format, &d);
        }
        Outcome::Done(d) => {
            rep.done(&d);
            if !d.cleanup_complete {
                return Err(cleanup_incomplete(a, &d));
            }
        }
        Outcome::WindowEnded => rep.finish(),
    }
    Ok(())
}

/// Opens the engine of the reverse direction (the revert window, `godwit revert`).
pub(super) fn connector(
    target: &Target,
    table: &str,
    eopts: &EngineOptions,
) -> crate::migration::revert::Connector {
    let (target, table, eopts) = (target.clone(), table.to_string(), eopts.clone());
    Box::new(move |names| {
        let (target, table) = (target.clone(), table.clone());
        let eopts = EngineOptions {
            names: Some(names),
            cut_over_hold: None,
            ..eopts.clone()
        };
        Box::pin(async move { dispatch::connect(&target, &table, &eopts).await })
    })
}

/// A migration that succeeded (tables swapped) whose cleanup did not: exit 35, with
/// what is left and the command that removes it.
fn cleanup_incomplete(a: &RunArgs, d: &crate::progress::Done) -> Error {
    let old_left = d.leftovers.iter().any(|l| l.contains(&d.old_table));
    Error::new(
        crate::error::ErrorKind::SwappedCleanupIncomplete,
        format!(
            "the migration of {} succeeded (the tables were swapped; the new schema is live), but its cleanup did not finish: {}. Left behind: {}",
            d.table,
            d.cleanup_error.as_deref().unwrap_or("unknown error"),
            d.leftovers.join(", ")
        ),
    )
    .with_hint(format!(
        "do not run the migration again; when the server answers, remove what is left with: godwit cleanup --url <URL> --table {} --execute{}",
        a.conn.table,
        if old_left { " --include-old-tables" } else { "" }
    ))
}

/// Ctrl-C and SIGTERM ask the migration to stop at its next step (before the cut-over).
pub(super) fn spawn_signal_watch(abort: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::warn!("signal received: stopping and cleaning up");
        abort.store(true, Ordering::SeqCst);
    })
}
