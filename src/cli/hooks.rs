//! `--hooks-path` and its settings, shared by `godwit run` and the phase commands.

use crate::error::Result;
use crate::hooks::{base_vars, HookContext, Hooks, Point};
use crate::progress::Format;
use crate::target::Target;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct HookArgs {
    /// Run the executables in this directory at points of the migration: each file whose
    /// name starts with on-startup, on-validated, on-rowcount-complete,
    /// on-before-row-copy, on-row-copy-complete, on-begin-postponed, on-before-cut-over,
    /// on-success, on-failure or on-status, with GODWIT_* variables (never the password).
    /// A failing on-before-cut-over postpones the cut-over until it succeeds.
    #[arg(long)]
    pub hooks_path: Option<PathBuf>,
    /// A hook still running after this many seconds is killed (and counts as failed).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hooks_timeout_seconds: u64,
    /// Run the on-status hooks this often (seconds).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hooks_status_interval: u64,
}

impl HookArgs {
    /// The hooks, with the run's fixed variables; None without --hooks-path. A path that
    /// is not a directory is exit 2 before anything is done.
    pub fn build(
        &self,
        target: &Target,
        format: Format,
        vars: &[(&str, &str)],
    ) -> Result<Option<Hooks>> {
        let Some(dir) = &self.hooks_path else {
            return Ok(None);
        };
        let engine = target.kind.scheme();
        let mut hooks = Hooks::new(
            dir,
            Duration::from_secs(self.hooks_timeout_seconds),
            base_vars(
                engine,
                &target.host,
                target.port,
                &target.user,
                &target.database,
            ),
            format == Format::Json,
        )?
        .with_status_interval(Duration::from_secs(self.hooks_status_interval));
        for (k, v) in vars {
            hooks = hooks.with_var(k, *v);
        }
        Ok(Some(hooks))
    }
}

/// The hooks of a phase command (`godwit expand | backfill | contract | abort | migrate`):
/// on-startup, on-status while it runs, on-success or on-failure.
pub struct PhaseHooks {
    hooks: Arc<Hooks>,
    began: Instant,
    state: String,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl PhaseHooks {
    pub async fn start(hooks: Hooks, state: &str) -> PhaseHooks {
        let hooks = Arc::new(hooks);
        let began = Instant::now();
        let cx = |state: &str| HookContext {
            state: state.to_string(),
            elapsed: began.elapsed(),
            ..Default::default()
        };
        hooks.run(Point::Startup, &cx(state)).await;
        let (h, st) = (hooks.clone(), state.to_string());
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                h.status_due(|| HookContext {
                    state: st.clone(),
                    elapsed: began.elapsed(),
                    ..Default::default()
                });
            }
        });
        hooks.status_due(|| cx(state));
        PhaseHooks {
            hooks,
            began,
            state: state.to_string(),
            ticker: Some(ticker),
        }
    }

    pub async fn end(mut self, r: &Result<()>) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        let mut cx = HookContext {
            state: self.state.clone(),
            elapsed: self.began.elapsed(),
            ..Default::default()
        };
        match r {
            Ok(()) => {
                self.hooks.run(Point::Success, &cx).await;
            }
            Err(e) => {
                cx.error = Some(e.to_string());
                cx.exit_code = Some(e.exit_code());
                self.hooks.run(Point::Failure, &cx).await;
            }
        }
    }
}
