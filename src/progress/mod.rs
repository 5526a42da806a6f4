//! Progress and status: an indicatif bar on a terminal, log lines elsewhere, or one JSON
//! object per line on stdout with `--format json`.

pub mod events;
pub mod state;

pub use events::{emit_json, emit_json_if};
pub use state::{Snapshot, State};

use crate::error::Error;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub table: String,
    pub old_table: String,
    pub new_table: String,
    pub old_table_dropped: bool,
    pub rows_copied: u64,
    pub keys_replayed: u64,
    pub cut_over_ms: u64,
    pub cut_over_attempts: u32,
    pub elapsed_ms: u64,
    /// False when a step after the swap failed: the migration succeeded, `leftovers` remain.
    pub cleanup_complete: bool,
    /// What a failed step after the swap left behind.
    pub leftovers: Vec<String>,
    /// Why the cleanup is incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<String>,
    /// What the verification before the cut-over compared (None with --skip-verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::migration::verify::VerifyReport>,
}

pub struct Reporter {
    format: Format,
    bar: Option<ProgressBar>,
    started: Instant,
    last_progress: Option<Instant>,
    state: Option<State>,
    /// The control socket's status, kept current by `state` and `progress`.
    control: Option<std::sync::Arc<crate::control::Control>>,
    /// When the backfill last wrote a progress log line.
    last_backfill_line: std::sync::Mutex<Option<Instant>>,
    /// Every state entered, in order, so unit tests can assert the path a run took.
    #[cfg(test)]
    pub(crate) states: Vec<State>,
}

impl Reporter {
    pub fn new(format: Format) -> Reporter {
        let bar = (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {human_pos}/{human_len} rows {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Reporter {
            format,
            bar,
            started: Instant::now(),
            last_progress: None,
            state: None,
            control: None,
            last_backfill_line: std::sync::Mutex::new(None),
            #[cfg(test)]
            states: Vec::new(),
        }
    }

    /// Keep `control`'s status current (states, progress).
    pub fn with_control(mut self, c: std::sync::Arc<crate::control::Control>) -> Reporter {
        self.set_control(c);
        self
    }

    pub fn set_control(&mut self, c: std::sync::Arc<crate::control::Control>) {
        self.control = Some(c);
    }

    /// The backfill's progress: the bar on a terminal, a log line at most every 2 s
    /// otherwise, and a `backfill_progress` event per batch with `--format json` (`body`
    /// plus the snapshot's rows, estimate, rate and ETA).
    pub fn backfill_progress(&self, s: &Snapshot, body: serde_json::Value) {
        if let Some(c) = &self.control {
            c.set_progress(s);
        }
        let eta = s
            .eta_seconds
            .map(|e| format!("{e}s"))
            .unwrap_or_else(|| "-".into());
        if let Some(b) = &self.bar {
            b.set_length(s.rows_estimate.max(s.rows_copied));
            b.set_position(s.rows_copied);
            b.set_message(format!(
                "{:.0} rows/s, ETA {eta} | backfill",
                s.rows_per_sec
            ));
        }
        match self.format {
            Format::Json => {
                let mut v = body;
                if let Some(o) = v.as_object_mut() {
                    o.insert("rows_estimate".into(), s.rows_estimate.into());
                    o.insert("rows_per_sec".into(), s.rows_per_sec.into());
                    o.insert("eta_seconds".into(), s.eta_seconds.into());
                    o.insert("batch_size".into(), s.chunk_size.into());
                }
                self.emit("backfill_progress", v)
            }
            Format::Text if self.bar.is_none() => {
                let mut last = self
                    .last_backfill_line
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                    *last = Some(Instant::now());
                    tracing::info!(
                        "backfill: {}/{} rows, {:.0} rows/s, ETA {eta}",
                        s.rows_copied,
                        s.rows_estimate,
                        s.rows_per_sec
                    );
                }
            }
            Format::Text => {}
        }
    }

    /// A reporter for unit tests: text format, never a progress bar, states recorded.
    #[cfg(test)]
    pub(crate) fn silent() -> Reporter {
        Reporter {
            format: Format::Text,
            bar: None,
            started: Instant::now(),
            last_progress: None,
            state: None,
            control: None,
            last_backfill_line: std::sync::Mutex::new(None),
            states: Vec::new(),
        }
    }

    /// Print one JSON event line on stdout.
    pub fn emit(&self, event: &str, body: serde_json::Value) {
        if self.format != Format::Json {
            return;
        }
        emit_json(event, body);
    }

    pub fn state(&mut self, state: State, message: &str) {
        if let Some(c) = &self.control {
            c.set_state(state, message);
        }
        if self.state == Some(state) {
            return;
        }
        self.state = Some(state);
        #[cfg(test)]
        self.states.push(state);
        match self.format {
            Format::Json => self.emit(
                "state",
                serde_json::json!({"state": state, "message": message}),
            ),
            Format::Text => {
                if let Some(b) = &self.bar {
                    b.println(format!("{state}: {message}"));
                } else {
                    tracing::info!("{state}: {message}");
                }
            }
        }
    }

    pub fn current_state(&self) -> Option<State> {
        self.state
    }

    /// Report progress; rate-limited to every 2 s (JSON, log lines), live on the bar.
    pub fn progress(&mut self, s: &Snapshot, force: bool) {
        if let Some(c) = &self.control {
            c.set_progress(s);
        }
        if let Some(b) = &self.bar {
            b.set_length(s.rows_estimate.max(s.rows_copied));
            b.set_position(s.rows_copied);
            b.set_message(format!(
                "{:.0} rows/s, ETA {} | {} | replayed {} | dirty {} | lag {}",
                s.rows_per_sec,
                s.eta_seconds
                    .map(|e| format!("{e}s"))
                    .unwrap_or_else(|| "-".into()),
                self.state.map(|x| x.to_string()).unwrap_or_default(),
                s.keys_replayed,
                s.dirty_keys,
                s.lag_ms
                    .map(|l| format!("{l}ms"))
                    .unwrap_or_else(|| "-".into())
            ));
        }
        let due = force
            || self
                .last_progress
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if !due {
            return;
        }
        self.last_progress = Some(Instant::now());
        match self.format {
            Format::Json => {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "state".into(),
                        serde_json::to_value(self.state).unwrap_or_default(),
                    );
                }
                self.emit("progress", v)
            }
            Format::Text if self.bar.is_none() => tracing::info!(
                "{}: {}/{} rows, {:.0} rows/s, replayed {}, dirty {}, lag {}",
                self.state.map(|x| x.to_string()).unwrap_or_default(),
                s.rows_copied,
                s.rows_estimate,
                s.rows_per_sec,
                s.keys_replayed,
                s.dirty_keys,
                s.lag_ms
                    .map(|l| format!("{l}ms"))
                    .unwrap_or_else(|| "-".into())
            ),
            Format::Text => {}
        }
    }

    fn clear_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    pub fn done(&mut self, d: &Done) {
        self.state = Some(State::Done);
        if let Some(c) = &self.control {
            c.set_state(State::Done, "the migration succeeded");
        }
        self.clear_bar();
        match self.format {
            Format::Json => self.emit("done", serde_json::to_value(d).unwrap_or_default()),
            Format::Text => {
                let old = if d.old_table_dropped {
                    format!("old table {} dropped", d.old_table)
                } else {
                    format!("old table kept as {}", d.old_table)
                };
                let old = if d.cleanup_complete {
                    old
                } else {
                    format!(
                        "cleanup incomplete, left behind: {}",
                        d.leftovers.join(", ")
                    )
                };
                println!(
                    "done: {} migrated in {:.1} s; {} rows copied, {} keys replayed, writes blocked {} ms at cut-over; {}",
                    d.table,
                    d.elapsed_ms as f64 / 1000.0,
                    d.rows_copied,
                    d.keys_replayed,
                    d.cut_over_ms,
                    old
                );
            }
        }
    }

    pub fn error(&mut self, e: &Error) {
        self.clear_bar();
        match self.format {
            Format::Json => self.emit(
                "error",
                serde_json::json!({
                    "kind": e.kind,
                    "exit_code": e.exit_code(),
                    "message": e.message,
                    "hint": e.hint,
                }),
            ),
            Format::Text => eprintln!("error: {e}"),
        }
    }

    pub fn finish(&mut self) {
        self.clear_bar();
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
