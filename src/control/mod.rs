//! Runtime control of a running migration or backfill (docs/architecture.md, "Control,
//! metrics and ETA"): the knobs an operator turns while it runs, the latest status, the
//! gh-ost-compatible line protocol (`socket.rs`), Prometheus metrics (`metrics.rs`) and
//! the smoothed ETA (`eta.rs`). Engine-neutral: it never talks to a database.
//!
//! One [`Control`] is shared (`Arc`) by the command's task, the socket server and the
//! metrics server. The migration reads the knobs between steps; the reporter and the
//! migration write the status.

pub mod eta;
pub mod metrics;
pub mod socket;

use crate::progress::state::{Snapshot, State};
use crate::throttle::load::LoadThresholds;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the command is (`status` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `godwit run`: the online ALTER.
    #[default]
    Run,
    /// The phases' backfill (`godwit backfill` / `godwit migrate`).
    Backfill,
}

/// The latest status, as `status json` and the metrics report it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub kind: Kind,
    /// The table being migrated (or backfilled).
    pub table: Option<String>,
    pub shadow_table: Option<String>,
    pub old_table: Option<String>,
    /// The migration file being backfilled.
    pub migration: Option<String>,
    pub state: Option<State>,
    pub message: String,
    pub progress: Snapshot,
    /// Why the copy waits, while it does.
    pub throttle_reason: Option<String>,
    pub cut_over_attempts: u32,
    /// How long the last chunk (or batch) took.
    pub chunk_ms: Option<u64>,
    /// Replica lag, when a lag throttle reads it.
    pub replica_lag_ms: Option<u64>,
}

/// The knobs and the status of one running command.
pub struct Control {
    started: Instant,
    forced_throttle: AtomicBool,
    /// 0: no override (the adaptive chunk, or --batch-size).
    chunk_size: AtomicU64,
    /// f64 bits.
    nice_ratio: AtomicU64,
    /// --max-load / --critical-load as set by the command line or the socket.
    loads: Mutex<Loads>,
    /// The replica-lag threshold in milliseconds (0: none), read by the lag throttle.
    pub max_lag_ms: Arc<AtomicU64>,
    postponing: AtomicBool,
    unpostpone: AtomicBool,
    panic: AtomicBool,
    /// Who asked to stop (`panic` on the control socket, or a signal).
    stop_reason: Mutex<Option<&'static str>>,
    /// The command's abort flag (set by `panic`, like a signal).
    abort: Mutex<Option<Arc<AtomicBool>>>,
    cut_over_attempts: AtomicU32,
    status: Mutex<Status>,
    /// Where the servers listen (for `status`).
    pub(crate) serving: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
struct Loads {
    max: Option<LoadThresholds>,
    critical: Option<LoadThresholds>,
    /// Set by the socket, taken by the throttle at its next check.
    changed: bool,
}

impl Default for Control {
    fn default() -> Self {
        Control::new(Kind::Run)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Control {
    pub fn new(kind: Kind) -> Control {
        Control {
            started: Instant::now(),
            forced_throttle: AtomicBool::new(false),
            chunk_size: AtomicU64::new(0),
            nice_ratio: AtomicU64::new(0f64.to_bits()),
            loads: Mutex::new(Loads::default()),
            max_lag_ms: Arc::new(AtomicU64::new(0)),
            postponing: AtomicBool::new(false),
            unpostpone: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            stop_reason: Mutex::new(None),
            abort: Mutex::new(None),
            cut_over_attempts: AtomicU32::new(0),
            status: Mutex::new(Status {
                kind,
                ..Status::default()
            }),
            serving: Mutex::new(Vec::new()),
        }
    }

    /// `panic` also sets this flag (the command's signal flag).
    pub fn set_abort(&self, abort: Arc<AtomicBool>) {
        *lock(&self.abort) = Some(abort);
    }

    /// The thresholds given on the command line (the throttle's starting values).
    pub fn set_loads(&self, max: Option<LoadThresholds>, critical: Option<LoadThresholds>) {
        let mut l = lock(&self.loads);
        l.max = max;
        l.critical = critical;
    }

    /// New thresholds set through the socket since the last call.
    pub fn take_loads(&self) -> Option<(Option<LoadThresholds>, Option<LoadThresholds>)> {
        let mut l = lock(&self.loads);
        if !l.changed {
            return None;
        }
        l.changed = false;
        Some((l.max.clone(), l.critical.clone()))
    }

    /// The throttle refused new thresholds (an unknown counter): back to these.
    pub fn restore_loads(&self, max: Option<LoadThresholds>, critical: Option<LoadThresholds>) {
        let mut l = lock(&self.loads);
        l.max = max;
        l.critical = critical;
        l.changed = false;
    }

    pub fn forced_throttle(&self) -> bool {
        self.forced_throttle.load(Ordering::SeqCst)
    }

    /// The chunk size set by `chunk-size=N`, if any.
    pub fn chunk_size(&self) -> Option<u64> {
        Some(self.chunk_size.load(Ordering::SeqCst)).filter(|n| *n > 0)
    }

    pub fn nice_ratio(&self) -> f64 {
        f64::from_bits(self.nice_ratio.load(Ordering::SeqCst))
    }

    /// The migration waits for the cut-over (`unpostpone` may end it).
    pub fn set_postponing(&self, on: bool) {
        self.postponing.store(on, Ordering::SeqCst);
    }

    pub fn unpostponed(&self) -> bool {
        self.unpostpone.load(Ordering::SeqCst)
    }

    pub fn panicked(&self) -> bool {
        self.panic.load(Ordering::SeqCst)
    }

    /// Ask the command to stop as `panic` does, for `reason` (e.g. "a signal").
    pub fn stop(&self, reason: &'static str) {
        lock(&self.stop_reason).get_or_insert(reason);
        self.panic.store(true, Ordering::SeqCst);
        if let Some(a) = lock(&self.abort).as_ref() {
            a.store(true, Ordering::SeqCst);
        }
    }

    /// Who asked to stop, once someone did.
    pub fn stop_reason(&self) -> &'static str {
        lock(&self.stop_reason).unwrap_or("`panic` on the control socket")
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut lock(&self.status));
    }

    pub fn set_state(&self, state: State, message: &str) {
        self.update(|s| {
            s.state = Some(state);
            s.message = message.to_string();
            s.throttle_reason = (state == State::Throttled).then(|| message.to_string());
        });
    }

    pub fn set_progress(&self, p: &Snapshot) {
        self.update(|s| s.progress = p.clone());
    }

    pub fn count_cut_over_attempt(&self) {
        let n = self.cut_over_attempts.fetch_add(1, Ordering::SeqCst) + 1;
        self.update(|s| s.cut_over_attempts = n);
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Run one command line and return the answer (one or more lines, each ending in a
    /// newline). Errors start with `error: `.
    pub fn execute(&self, line: &str) -> String {
        match Command::parse(line) {
            Ok(c) => self.apply(c),
            Err(e) => format!("error: {e}\n"),
        }
    }

    fn table_matches(&self, named: &Option<String>) -> Result<(), String> {
        let table = self.status().table.unwrap_or_default();
        match named {
            Some(n) if *n != table => Err(format!(
                "this process migrates `{table}`, not `{n}`; ignored"
            )),
            _ => Ok(()),
        }
    }

    fn apply(&self, c: Command) -> String {
        let ok = |s: String| format!("{s}\n");
        let err = |s: String| format!("error: {s}\n");
        match c {
            Command::Help => HELP.to_string(),
            Command::Sup => ok(self.sup()),
            Command::Status { json: false } => self.status_text(),
            Command::Status { json: true } => ok(self.status_json().to_string()),
            Command::Throttle(on) => {
                self.forced_throttle.store(on, Ordering::SeqCst);
                tracing::info!(
                    "control socket: {}",
                    if on { "throttle" } else { "no-throttle" }
                );
                ok(if on {
                    "throttled: the copy waits until `no-throttle` (the change stream is still read)".into()
                } else {
                    "no-throttle: forced throttling ended (other throttles may still hold)".into()
                })
            }
            Command::Get(k) => ok(self.get(k)),
            Command::ChunkSize(n) => {
                self.chunk_size.store(n, Ordering::SeqCst);
                tracing::info!("control socket: chunk-size={n}");
                ok(format!("chunk-size set to {n}"))
            }
            Command::MaxLagMillis(n) => {
                self.max_lag_ms.store(n, Ordering::SeqCst);
                tracing::info!("control socket: max-lag-millis={n}");
                ok(format!("max-lag-millis set to {n}"))
            }
            Command::NiceRatio(f) => {
                self.nice_ratio.store(f.to_bits(), Ordering::SeqCst);
                tracing::info!("control socket: nice-ratio={f}");
                ok(format!("nice-ratio set to {f}"))
            }
            Command::MaxLoad(t) => {
                let shown = show_loads(&t);
                let mut l = lock(&self.loads);
                l.max = t;
                l.changed = true;
                tracing::info!("control socket: max-load={shown}");
                ok(format!("max-load set to {shown}"))
            }
            Command::CriticalLoad(t) => {
                let shown = show_loads(&t);
                let mut l = lock(&self.loads);
                l.critical = t;
                l.changed = true;
                tracing::info!("control socket: critical-load={shown}");
                ok(format!("critical-load set to {shown}"))
            }
            Command::Unpostpone(named) => {
                if let Err(e) = self.table_matches(&named) {
                    return err(e);
                }
                if !self.postponing.load(Ordering::SeqCst) {
                    return err("unpostpone: the cut-over is not postponed right now (only while the state is `postponed`)".into());
                }
                self.unpostpone.store(true, Ordering::SeqCst);
                tracing::info!("control socket: unpostpone");
                ok("Unpostponed".into())
            }
            Command::Panic(named) => {
                if let Err(e) = self.table_matches(&named) {
                    return err(e);
                }
                self.stop("`panic` on the control socket");
                tracing::warn!("control socket: panic");
                ok(match self.status().kind {
                    Kind::Run => "panic: stopping; what this run created is removed and the original table is left unchanged".into(),
                    Kind::Backfill => "panic: stopping after the batch in flight (each finished batch is kept; the same command resumes)".into(),
                })
            }
        }
    }

    fn get(&self, k: Knob) -> String {
        match k {
            Knob::ChunkSize => self
                .chunk_size()
                .unwrap_or(self.status().progress.chunk_size)
                .to_string(),
            Knob::MaxLagMillis => self.max_lag_ms.load(Ordering::SeqCst).to_string(),
            Knob::NiceRatio => self.nice_ratio().to_string(),
            Knob::MaxLoad => show_loads(&lock(&self.loads).max),
            Knob::CriticalLoad => show_loads(&lock(&self.loads).critical),
        }
    }

    /// The short status line (`sup`).
    pub fn sup(&self) -> String {
        let s = self.status();
        let p = &s.progress;
        let pct = if p.rows_estimate > 0 {
            100.0 * p.rows_copied as f64 / p.rows_estimate as f64
        } else {
            0.0
        };
        let eta = p.eta_seconds.map(|e| format!("{e}s")).unwrap_or_else(|| {
            if p.rows_estimate > 0 && p.rows_copied >= p.rows_estimate {
                "due".into()
            } else {
                "-".into()
            }
        });
        let state = s
            .state
            .map(|x| x.to_string())
            .unwrap_or_else(|| "starting".into());
        let throttle = s.throttle_reason.as_deref().unwrap_or("none");
        if s.kind == Kind::Backfill {
            return format!(
                "Backfill: {}/{} {:.1}%; Batch: {}; State: {state}; Throttle: {throttle}; ETA: {eta}; Elapsed: {}s",
                p.rows_copied,
                p.rows_estimate,
                pct.min(100.0),
                p.chunk_size,
                self.elapsed().as_secs()
            );
        }
        format!(
            "Copy: {}/{} {:.1}%; Replayed: {}; Dirty: {}; Lag: {}; State: {state}; Throttle: {throttle}; ETA: {eta}; Elapsed: {}s",
            p.rows_copied,
            p.rows_estimate,
            pct.min(100.0),
            p.keys_replayed,
            p.dirty_keys,
            p.lag_ms
                .map(|l| format!("{:.2}s", l as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            self.elapsed().as_secs()
        )
    }

    /// The detailed status (`status`), as gh-ost's: `#` lines, then the `sup` line.
    pub fn status_text(&self) -> String {
        let s = self.status();
        let mut out = String::new();
        let table = s.table.as_deref().unwrap_or("-");
        match s.kind {
            Kind::Run => out.push_str(&format!(
                "# Migrating `{table}`; shadow table `{}`; the original is kept as `{}`\n",
                s.shadow_table.as_deref().unwrap_or("-"),
                s.old_table.as_deref().unwrap_or("-")
            )),
            Kind::Backfill => out.push_str(&format!(
                "# Backfilling `{table}` (migration {})\n",
                s.migration.as_deref().unwrap_or("-")
            )),
        }
        out.push_str(&format!(
            "# State: {}: {}\n",
            s.state
                .map(|x| x.to_string())
                .unwrap_or_else(|| "starting".into()),
            s.message
        ));
        let l = lock(&self.loads).clone();
        out.push_str(&format!(
            "# chunk-size: {}{}; nice-ratio: {}; max-lag-millis: {}; max-load: {}; critical-load: {}\n",
            self.chunk_size().unwrap_or(s.progress.chunk_size),
            if self.chunk_size().is_some() { " (set)" } else { "" },
            self.nice_ratio(),
            self.max_lag_ms.load(Ordering::SeqCst),
            show_loads(&l.max),
            show_loads(&l.critical),
        ));
        out.push_str(&format!(
            "# Throttle: {}{}\n",
            s.throttle_reason.as_deref().unwrap_or("none"),
            if self.forced_throttle() {
                " (forced by `throttle`)"
            } else {
                ""
            }
        ));
        if self.postponing.load(Ordering::SeqCst) {
            out.push_str(
                "# Postponing the cut-over: `unpostpone` (or removing the flag file) proceeds\n",
            );
        }
        for addr in lock(&self.serving).iter() {
            out.push_str(&format!("# Serving on {addr}\n"));
        }
        out.push_str(&self.sup());
        out.push('\n');
        out
    }

    /// The status as one JSON object (`status json`).
    pub fn status_json(&self) -> serde_json::Value {
        let s = self.status();
        let l = lock(&self.loads).clone();
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "elapsed_ms".into(),
                (self.elapsed().as_millis() as u64).into(),
            );
            o.insert("forced_throttle".into(), self.forced_throttle().into());
            o.insert(
                "postponing".into(),
                self.postponing.load(Ordering::SeqCst).into(),
            );
            o.insert(
                "chunk_size".into(),
                self.chunk_size().unwrap_or(s.progress.chunk_size).into(),
            );
            o.insert("nice_ratio".into(), self.nice_ratio().into());
            o.insert(
                "max_lag_millis".into(),
                self.max_lag_ms.load(Ordering::SeqCst).into(),
            );
            o.insert("max_load".into(), show_loads(&l.max).into());
            o.insert("critical_load".into(), show_loads(&l.critical).into());
        }
        v
    }
}

fn show_loads(t: &Option<LoadThresholds>) -> String {
    t.as_ref()
        .map(|t| {
            t.0.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A value `<knob>=?` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Knob {
    ChunkSize,
    MaxLagMillis,
    NiceRatio,
    MaxLoad,
    CriticalLoad,
}

/// One line of the control protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Sup,
    Status {
        json: bool,
    },
    /// `throttle` (true) / `no-throttle` (false).
    Throttle(bool),
    Get(Knob),
    ChunkSize(u64),
    MaxLagMillis(u64),
    NiceRatio(f64),
    MaxLoad(Option<LoadThresholds>),
    CriticalLoad(Option<LoadThresholds>),
    /// `unpostpone[=TABLE]`.
    Unpostpone(Option<String>),
    /// `panic[=TABLE]`.
    Panic(Option<String>),
}

/// The largest chunk `chunk-size=N` accepts (as --chunk-size).
pub const MAX_CHUNK: u64 = 1_000_000;

impl Command {
    /// Parse one line: `command`, `command=value`, `command=?` or `status json`.
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (cmd, arg) = match line.split_once('=') {
            Some((c, a)) => (c.trim(), Some(a.trim())),
            None => match line.split_once(char::is_whitespace) {
                Some((c, a)) => (c.trim(), Some(a.trim())),
                None => (line, None),
            },
        };
        // gh-ost accepts a quoted value.
        let arg = arg.map(|a| {
            a.strip_prefix('"')
                .and_then(|a| a.strip_suffix('"'))
                .unwrap_or(a)
        });
        let knob = match cmd {
            "chunk-size" => Some(Knob::ChunkSize),
            "max-lag-millis" => Some(Knob::MaxLagMillis),
            "nice-ratio" => Some(Knob::NiceRatio),
            "max-load" => Some(Knob::MaxLoad),
            "critical-load" => Some(Knob::CriticalLoad),
            _ => None,
        };
        if let (Some(k), Some("?")) = (knob, arg) {
            return Ok(Command::Get(k));
        }
        let need = |what: &str| -> Result<&str, String> {
            arg.filter(|a| !a.is_empty())
                .ok_or_else(|| format!("{cmd} needs a value: {cmd}={what}"))
        };
        let none = |c: Command| -> Result<Command, String> {
            match arg {
                None | Some("") => Ok(c),
                Some(a) => Err(format!("{cmd} takes no value (got `{a}`)")),
            }
        };
        let table = || arg.filter(|a| !a.is_empty()).map(str::to_string);
        let loads = |a: Option<&str>| -> Result<Option<LoadThresholds>, String> {
            match a.unwrap_or("") {
                "" => Ok(None),
                a => a.parse::<LoadThresholds>().map(Some),
            }
        };
        match cmd {
            "help" => none(Command::Help),
            "sup" => none(Command::Sup),
            "status" | "info" => match arg {
                None | Some("") => Ok(Command::Status { json: false }),
                Some("json") => Ok(Command::Status { json: true }),
                Some(a) => Err(format!("status takes nothing or `json` (got `{a}`)")),
            },
            "throttle" | "pause" | "suspend" => none(Command::Throttle(true)),
            "no-throttle" | "unthrottle" | "resume" | "continue" => none(Command::Throttle(false)),
            "chunk-size" => {
                let a = need("ROWS")?;
                match a.parse::<u64>() {
                    Ok(n) if (1..=MAX_CHUNK).contains(&n) => Ok(Command::ChunkSize(n)),
                    _ => Err(format!(
                        "chunk-size must be a whole number from 1 to {MAX_CHUNK} (got `{a}`)"
                    )),
                }
            }
            "max-lag-millis" => {
                let a = need("MILLISECONDS")?;
                a.parse::<u64>().map(Command::MaxLagMillis).map_err(|_| {
                    format!("max-lag-millis must be a whole number of milliseconds (got `{a}`)")
                })
            }
            "nice-ratio" => {
                let a = need("RATIO")?;
                match a.parse::<f64>() {
                    Ok(f) if f.is_finite() && (0.0..=100.0).contains(&f) => {
                        Ok(Command::NiceRatio(f))
                    }
                    _ => Err(format!(
                        "nice-ratio must be a number from 0 to 100 (got `{a}`)"
                    )),
                }
            }
            "max-load" => loads(arg).map(Command::MaxLoad),
            "critical-load" => loads(arg).map(Command::CriticalLoad),
            "unpostpone" | "no-postpone" | "cut-over" => Ok(Command::Unpostpone(table())),
            "panic" => Ok(Command::Panic(table())),
            "" => Err("empty command; `help` lists the commands".into()),
            other => Err(format!(
                "unknown command `{other}`; `help` lists the commands"
            )),
        }
    }
}

pub const HELP: &str = "available commands:
status                     # detailed status (`status json`: the same as one JSON object)
sup                        # one-line status
chunk-size=<rows>          # set the chunk (backfill: batch) size; also the adaptive chunk's upper bound
nice-ratio=<ratio>         # sleep ratio x the chunk's time after each chunk (0: none, 1.0 doubles the copy time)
max-load=<VAR=N[,VAR=N]>   # set the --max-load thresholds (empty: none)
critical-load=<VAR=N,...>  # set the --critical-load thresholds (empty: none)
max-lag-millis=<ms>        # set the replica-lag threshold
throttle                   # force throttling (the change stream is still read)
no-throttle                # end forced throttling (other throttles may still hold)
unpostpone                 # end a postponed cut-over now, even while the flag file exists
panic                      # stop now: remove what this run created, the original stays unchanged
help                       # this message
- `<knob>=?` prints a value, e.g. `max-load=?`
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            Command::parse("status"),
            Ok(Command::Status { json: false })
        );
        assert_eq!(
            Command::parse(" status json \n"),
            Ok(Command::Status { json: true })
        );
        assert_eq!(Command::parse("info"), Ok(Command::Status { json: false }));
        assert_eq!(Command::parse("sup"), Ok(Command::Sup));
        assert_eq!(Command::parse("throttle"), Ok(Command::Throttle(true)));
        assert_eq!(Command::parse("pause"), Ok(Command::Throttle(true)));
        assert_eq!(Command::parse("no-throttle"), Ok(Command::Throttle(false)));
        assert_eq!(
            Command::parse("chunk-size=500"),
            Ok(Command::ChunkSize(500))
        );
        assert_eq!(
            Command::parse("chunk-size = 500"),
            Ok(Command::ChunkSize(500))
        );
        assert_eq!(
            Command::parse("chunk-size=?"),
            Ok(Command::Get(Knob::ChunkSize))
        );
        assert!(Command::parse("chunk-size=0").is_err());
        assert!(Command::parse("chunk-size=abc").is_err());
        assert!(Command::parse("chunk-size").is_err());
        assert_eq!(
            Command::parse("max-lag-millis=1500"),
            Ok(Command::MaxLagMillis(1500))
        );
        assert_eq!(
            Command::parse("nice-ratio=0.5"),
            Ok(Command::NiceRatio(0.5))
        );
        assert!(Command::parse("nice-ratio=-1").is_err());
        assert!(Command::parse("nice-ratio=NaN").is_err());
        assert_eq!(
            Command::parse("max-load=Threads_running=25"),
            Ok(Command::MaxLoad(Some(
                "Threads_running=25".parse().unwrap()
            )))
        );
        assert_eq!(
            Command::parse("max-load=\"Threads_running=25,Threads_connected=9\""),
            Ok(Command::MaxLoad(Some(
                "Threads_running=25,Threads_connected=9".parse().unwrap()
            )))
        );
        assert_eq!(Command::parse("max-load="), Ok(Command::MaxLoad(None)));
        assert!(Command::parse("max-load=x;drop=1").is_err());
        assert_eq!(
            Command::parse("critical-load=?"),
            Ok(Command::Get(Knob::CriticalLoad))
        );
        assert_eq!(Command::parse("unpostpone"), Ok(Command::Unpostpone(None)));
        assert_eq!(
            Command::parse("cut-over=orders"),
            Ok(Command::Unpostpone(Some("orders".into())))
        );
        assert_eq!(Command::parse("panic"), Ok(Command::Panic(None)));
        assert!(Command::parse("sup=1").is_err());
        assert!(Command::parse("status xml").is_err());
        assert!(Command::parse("").is_err());
        let e = Command::parse("drop table").unwrap_err();
        assert!(e.contains("unknown command `drop`"), "{e}");
    }

    #[test]
    fn applies_commands() {
        let c = Control::new(Kind::Run);
        c.update(|s| s.table = Some("orders".into()));
        assert!(c.execute("throttle").starts_with("throttled"));
        assert!(c.forced_throttle());
        c.execute("no-throttle");
        assert!(!c.forced_throttle());
        assert_eq!(c.execute("chunk-size=250"), "chunk-size set to 250\n");
        assert_eq!(c.chunk_size(), Some(250));
        assert_eq!(c.execute("chunk-size=?"), "250\n");
        c.execute("nice-ratio=1.5");
        assert_eq!(c.nice_ratio(), 1.5);
        c.execute("max-lag-millis=900");
        assert_eq!(c.max_lag_ms.load(Ordering::SeqCst), 900);
        c.execute("max-load=Threads_running=5");
        assert_eq!(c.execute("max-load=?"), "Threads_running=5\n");
        let (max, crit) = c.take_loads().unwrap();
        assert_eq!(max, Some("Threads_running=5".parse().unwrap()));
        assert_eq!(crit, None);
        assert!(c.take_loads().is_none());
        // Not postponing: refused.
        assert!(c.execute("unpostpone").starts_with("error: "));
        c.set_postponing(true);
        assert!(c.execute("unpostpone=other").starts_with("error: "));
        assert!(!c.unpostponed());
        assert_eq!(c.execute("unpostpone=orders"), "Unpostponed\n");
        assert!(c.unpostponed());
        let abort = Arc::new(AtomicBool::new(false));
        c.set_abort(abort.clone());
        assert!(c.execute("panic").starts_with("panic: "));
        assert!(c.panicked() && abort.load(Ordering::SeqCst));
        assert!(c.execute("bogus").starts_with("error: unknown command"));
    }

    #[test]
    fn status_reports_progress() {
        let c = Control::new(Kind::Run);
        c.update(|s| s.table = Some("orders".into()));
        c.set_state(State::Copy, "copying");
        c.set_progress(&Snapshot {
            rows_copied: 500,
            rows_estimate: 1000,
            eta_seconds: Some(7),
            chunk_size: 100,
            ..Snapshot::default()
        });
        let sup = c.sup();
        assert!(sup.starts_with("Copy: 500/1000 50.0%;"), "{sup}");
        assert!(
            sup.contains("State: copy;") && sup.contains("ETA: 7s"),
            "{sup}"
        );
        let text = c.status_text();
        assert!(text.contains("# Migrating `orders`"), "{text}");
        assert!(text.contains("# chunk-size: 100;"), "{text}");
        let j = c.status_json();
        assert_eq!(j["state"], "copy");
        assert_eq!(j["progress"]["rows_copied"], 500);
        assert_eq!(j["chunk_size"], 100);
        c.set_state(State::Throttled, "throttled by the control socket");
        assert_eq!(
            c.status_json()["throttle_reason"],
            "throttled by the control socket"
        );
    }
}
