//! `godwit expand | backfill | contract | abort | migrate | status`: migrations from files.

use crate::control::{Control, Kind};
use crate::error::Result;
use crate::phases::{self, Phase, PhaseOptions};
use crate::progress::{Format, Reporter};
use crate::target::Target;
use crate::throttle::{LoadThresholds, Throttle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct PhaseArgs {
    /// A directory of migration files (NNNN_name.toml), or one file.
    pub path: PathBuf,
    /// Server URL: mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB (password from
    /// MYSQL_PWD / PGPASSWORD, ~/.pgpass, --password-file or the URL).
    #[arg(long, env = "GODWIT_URL", hide_env_values = true)]
    pub url: String,
    /// Read the password from this file (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Really change the database. Without it: print every statement the phase would run.
    #[arg(long)]
    pub execute: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run even though an applied file changed since.
    #[arg(long)]
    pub allow_changed: bool,
    /// Rows per backfill batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,
    /// Upper bound on rows backfilled per second.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rows_per_second: Option<u32>,
    /// Pause the backfill while a status counter exceeds its value, e.g. Threads_running=25.
    #[arg(long)]
    pub max_load: Option<LoadThresholds>,
    /// Pause the backfill while this file exists.
    #[arg(long)]
    pub throttle_flag_file: Option<PathBuf>,
    #[command(flatten)]
    pub lag: super::lag::LagArgs,
    /// Longest wait for a table lock per DDL statement.
    #[arg(long, default_value_t = 10.0)]
    pub lock_timeout_seconds: f64,
    #[command(flatten)]
    pub hooks: super::hooks::HookArgs,
    #[command(flatten)]
    pub control: super::ctl::ControlArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: PhaseArgs,
    /// Also contract (and go on with the next migrations); without it migrate stops
    /// after the backfill of the first unfinished migration.
    #[arg(long)]
    pub complete: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// A directory of migration files or one file (optional: without it, the state table).
    pub path: Option<PathBuf>,
    #[arg(long, env = "GODWIT_URL", hide_env_values = true)]
    pub url: String,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Show the checkpoint of an online migration (`godwit run`) of this table instead:
    /// where a run that died stopped, and what the same command would resume.
    #[arg(long, conflicts_with = "path")]
    pub table: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

async fn go(a: PhaseArgs, list: &[Phase], complete: bool) -> Result<()> {
    if !(a.lock_timeout_seconds > 0.0 && a.lock_timeout_seconds <= 3600.0) {
        return Err(crate::error::Error::bad_input(
            "--lock-timeout-seconds must be between 0 and 3600",
        ));
    }
    let target = Target::parse(&a.url, a.password_file.as_deref())?;
    let path = a.path.display().to_string();
    let names: Vec<&str> = list.iter().map(|p| p.name()).collect();
    let state = names.join("+");
    let hooks = a.hooks.build(
        &target,
        a.format,
        &[
            ("GODWIT_MIGRATION_PATH", path.as_str()),
            ("GODWIT_PHASE", state.as_str()),
        ],
    )?;
    let control = Arc::new(Control::new(Kind::Backfill));
    let throttle = Throttle::new(
        a.max_rows_per_second,
        a.max_load.clone(),
        None,
        a.throttle_flag_file.clone(),
    )
    .with_control(control.clone());
    let (mut throttle, lag) = if a.execute && list.contains(&Phase::Backfill) {
        a.lag.start(&target, None, throttle).await?
    } else {
        (throttle, None)
    };
    let rep = Reporter::new(a.format).with_control(control.clone());
    // Stopped, and the socket file removed, when this function returns.
    let servers = a.control.start(&control, &rep).await?;
    // With a control socket or a replica-lag heartbeat to remove, Ctrl-C and SIGTERM
    // stop the backfill after its batch in flight (exit 30) instead of killing it.
    let signals = (servers.serving() || lag.is_some())
        .then(|| spawn_stop_on_signal(control.clone(), a.control.serve_socket_file.clone()));
    let hooks = match hooks {
        Some(h) => Some(super::hooks::PhaseHooks::start(h, &state).await),
        None => None,
    };
    let opts = PhaseOptions {
        execute: a.execute,
        allow_changed: a.allow_changed,
        batch_size: a.batch_size,
        lock_timeout: Duration::from_secs_f64(a.lock_timeout_seconds),
        format: a.format,
        control,
    };
    let r = match phases::run(
        crate::dispatch::phase_target(&target),
        &a.path,
        list,
        complete,
        &opts,
        &mut throttle,
        &rep,
    )
    .await
    {
        Err(e) => Err(super::blockers::name_blockers(e, &target, &a.path, opts.lock_timeout).await),
        ok => ok,
    };
    if let Some(h) = hooks {
        h.end(&r).await;
    }
    if let Some(s) = signals {
        s.abort();
    }
    drop(servers);
    if let Some(lag) = lag {
        lag.stop().await;
    }
    r
}

/// With a control socket, Ctrl-C and SIGTERM would leave its file behind: they stop the
/// backfill after its batch in flight instead (exit 30, the same command resumes), and
/// any other phase within 10 s, the socket file removed.
fn spawn_stop_on_signal(
    control: Arc<Control>,
    socket: Option<PathBuf>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
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
        tracing::warn!("signal received: stopping (a backfill stops after its batch in flight)");
        control.stop("a signal");
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Some(p) = socket {
            let _ = std::fs::remove_file(p);
        }
        tracing::error!("stopped by a signal");
        std::process::exit(crate::error::ErrorKind::Aborted.exit_code());
    })
}

fn finish(format: Format, r: Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            let mut rep = Reporter::new(format);
            rep.error(&e);
            e.exit_code()
        }
    }
}

pub async fn phase(a: PhaseArgs, p: Phase) -> i32 {
    let f = a.format;
    finish(f, go(a, &[p], false).await)
}

pub async fn migrate(a: MigrateArgs) -> i32 {
    let f = a.common.format;
    let list: &[Phase] = if a.complete {
        &[Phase::Expand, Phase::Backfill, Phase::Contract]
    } else {
        &[Phase::Expand, Phase::Backfill]
    };
    finish(f, go(a.common, list, a.complete).await)
}

pub async fn status(a: StatusArgs) -> i32 {
    let f = a.format;
    let r = async {
        let target = Target::parse(&a.url, a.password_file.as_deref())?;
        let rep = Reporter::new(a.format);
        if let Some(table) = &a.table {
            return checkpoint_status(&target, table, a.format, &rep).await;
        }
        phases::status(
            crate::dispatch::phase_target(&target),
            a.path.as_deref(),
            a.format,
            &rep,
        )
        .await
    }
    .await;
    finish(f, r)
}

/// `godwit status --table T`: the checkpoint of an online migration of T, if any.
async fn checkpoint_status(
    target: &Target,
    table: &str,
    format: Format,
    rep: &Reporter,
) -> crate::error::Result<()> {
    let engine = crate::dispatch::connect(target, table, &Default::default()).await?;
    let saved = engine.load_checkpoint().await;
    let _ = engine.close().await;
    let cp: Option<crate::migration::checkpoint::Checkpoint> =
        saved?.and_then(|t| serde_json::from_str(&t).ok());
    if format == Format::Json {
        rep.emit(
            "checkpoint",
            serde_json::json!({ "table": table, "checkpoint": cp }),
        );
        return Ok(());
    }
    match cp {
        None => println!("no checkpointed online migration of {table}"),
        Some(cp) if cp.revert.is_some() => {
            let until = cp.revert.as_ref().map(|w| w.until_ms).unwrap_or(0);
            let state = if crate::migration::checkpoint::now_ms() < until {
                "open"
            } else {
                "expired"
            };
            println!(
                "{table}: the revert window of `{}` is {state} until {} (the old table is {}; replayed up to {})",
                cp.alter,
                crate::migration::checkpoint::utc(until),
                cp.shadow,
                cp.position
            );
            println!("  `godwit revert` swaps back; `godwit cleanup --execute` closes the window");
        }
        Some(cp) => {
            let age = crate::migration::checkpoint::now_ms().saturating_sub(cp.saved_at_ms) / 1000;
            println!(
                "{table}: a run of `{}` stopped during its {:?} stage ({} rows copied, up to key {:?}; stream position {}; saved {age} s ago)",
                cp.alter, cp.stage, cp.rows_copied, cp.copied_upto, cp.position
            );
            println!("  the same `godwit run … --execute` resumes it; --restart discards it");
        }
    }
    Ok(())
}
