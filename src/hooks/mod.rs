//! Hooks (`--hooks-path DIR`): executables run at points of a migration's life, named
//! as gh-ost names its hooks. Every executable file in the directory whose name *starts
//! with* a point's name (`on-startup`, `on-startup-slack.sh`, …) runs at that point, one
//! after the other in name order, with an environment built from scratch: `PATH`,
//! `HOME`, `LANG` and the `GODWIT_*` variables of the run (never the password, never the
//! URL). Standard input is empty; what a hook prints is logged (truncated). A hook that
//! runs longer than the timeout is killed with its process group.
//!
//! A failing hook (non-zero exit, killed, or not startable) is a `hook` event and a
//! warning; only `on-before-cut-over` changes the run: its failure postpones the cut-over
//! until it succeeds (the caller asks again). Engine-neutral: the caller passes the
//! connection facts as variables.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The points at which hooks run (gh-ost's names without the `gh-ost-` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Startup,
    Validated,
    RowcountComplete,
    BeforeRowCopy,
    RowCopyComplete,
    BeginPostponed,
    BeforeCutOver,
    Success,
    Failure,
    Status,
}

impl Point {
    pub const ALL: [Point; 10] = [
        Point::Startup,
        Point::Validated,
        Point::RowcountComplete,
        Point::BeforeRowCopy,
        Point::RowCopyComplete,
        Point::BeginPostponed,
        Point::BeforeCutOver,
        Point::Success,
        Point::Failure,
        Point::Status,
    ];

    /// The file-name prefix of this point's hooks.
    pub fn name(self) -> &'static str {
        match self {
            Point::Startup => "on-startup",
            Point::Validated => "on-validated",
            Point::RowcountComplete => "on-rowcount-complete",
            Point::BeforeRowCopy => "on-before-row-copy",
            Point::RowCopyComplete => "on-row-copy-complete",
            Point::BeginPostponed => "on-begin-postponed",
            Point::BeforeCutOver => "on-before-cut-over",
            Point::Success => "on-success",
            Point::Failure => "on-failure",
            Point::Status => "on-status",
        }
    }
}

/// What a hook is told about the run at its point (besides the run's fixed variables).
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The migration's state (`copy`, `postponed`, …) or the phase.
    pub state: String,
    pub rows_copied: Option<u64>,
    pub rows_estimate: Option<u64>,
    pub eta_seconds: Option<u64>,
    pub elapsed: Duration,
    /// `on-failure`: the error's message and the exit code godwit ends with.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
}

/// One hook that did not succeed.
#[derive(Debug, Clone)]
pub struct HookFailure {
    pub file: String,
    pub reason: String,
}

/// What running a point's hooks gave.
#[derive(Debug, Clone, Default)]
pub struct HookOutcome {
    /// Hooks run.
    pub ran: usize,
    pub failures: Vec<HookFailure>,
}

impl HookOutcome {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
    /// The failures in one line, for a message.
    pub fn reason(&self) -> String {
        self.failures
            .iter()
            .map(|f| format!("{}: {}", f.file, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Longest stretch of a hook's output logged.
const OUTPUT_LOGGED: usize = 2_000;

/// The hooks of one run.
pub struct Hooks {
    dir: PathBuf,
    timeout: Duration,
    /// The run's fixed variables (`GODWIT_DATABASE_NAME`, …).
    vars: Vec<(String, String)>,
    /// Report each hook as a `hook` JSON event.
    json: bool,
    status_interval: Duration,
    last_status: std::sync::Mutex<Option<Instant>>,
    /// An `on-status` round is running in the background.
    status_running: Arc<AtomicBool>,
}

impl Hooks {
    /// Hooks from `dir`: it must be a directory (exit 2 otherwise); files in it named for
    /// a point that are not executable are warned about (they never run).
    pub fn new(
        dir: &Path,
        timeout: Duration,
        vars: Vec<(String, String)>,
        json: bool,
    ) -> Result<Hooks> {
        if !dir.is_dir() {
            return Err(Error::bad_input(format!(
                "--hooks-path {}: not a directory",
                dir.display()
            ))
            .with_hint("give the directory that holds the hook executables (on-startup, on-success, …); nothing was changed"));
        }
        let hooks = Hooks {
            dir: dir.to_path_buf(),
            timeout,
            vars,
            json,
            status_interval: Duration::from_secs(60),
            last_status: std::sync::Mutex::new(None),
            status_running: Arc::new(AtomicBool::new(false)),
        };
        for (path, executable) in hooks.files(None) {
            if !executable {
                tracing::warn!(
                    "hook {} is not executable and will not run (chmod +x it)",
                    path.display()
                );
                crate::progress::emit_json_if(
                    json,
                    "warning",
                    serde_json::json!({
                        "message": format!("hook {} is not executable and will not run", path.display()),
                        "hook": file_name(&path),
                    }),
                );
            }
        }
        Ok(hooks)
    }

    /// `on-status` at most this often (`--hooks-status-interval`).
    pub fn with_status_interval(mut self, every: Duration) -> Hooks {
        self.status_interval = every.max(Duration::from_secs(1));
        self
    }

    /// Add a fixed variable (e.g. the shadow's name, known once the engine is open).
    pub fn with_var(mut self, name: &str, value: impl Into<String>) -> Hooks {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), value.into()));
        self
    }

    /// The files of the directory named for `point` (any point when None), in name
    /// order, with whether each is executable.
    fn files(&self, point: Option<Point>) -> Vec<(PathBuf, bool)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, bool)> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                let name = file_name(p);
                match point {
                    Some(pt) => name.starts_with(pt.name()),
                    None => Point::ALL.iter().any(|pt| name.starts_with(pt.name())),
                }
            })
            .map(|p| {
                let exec = is_executable(&p);
                (p, exec)
            })
            .collect();
        found.sort();
        found
    }

    /// The environment of a hook: built from scratch (nothing of godwit's own
    /// environment but PATH, HOME and LANG: a password in MYSQL_PWD or PGPASSWORD never
    /// reaches a hook).
    fn env(&self, point: Point, cx: &HookContext) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        env.extend(self.vars.iter().cloned());
        let mut add = |k: &str, v: String| env.push((k.to_string(), v));
        add("GODWIT_HOOK", point.name().to_string());
        add("GODWIT_STATE", cx.state.clone());
        add("GODWIT_ELAPSED_SECONDS", cx.elapsed.as_secs().to_string());
        if let Some(n) = cx.rows_copied {
            add("GODWIT_ROWS_COPIED", n.to_string());
        }
        if let Some(n) = cx.rows_estimate {
            add("GODWIT_ROWS_ESTIMATE", n.to_string());
        }
        if let Some(n) = cx.eta_seconds {
            add("GODWIT_ETA_SECONDS", n.to_string());
        }
        if let Some(e) = &cx.error {
            add("GODWIT_ERROR_MESSAGE", e.clone());
        }
        if let Some(c) = cx.exit_code {
            add("GODWIT_EXIT_CODE", c.to_string());
        }
        env
    }

    /// Run `point`'s hooks one after the other. Failures are logged and reported as
    /// `hook` events; what they mean for the run is the caller's to decide.
    pub async fn run(&self, point: Point, cx: &HookContext) -> HookOutcome {
        let env = self.env(point, cx);
        run_files(self.files(Some(point)), env, self.timeout, self.json).await
    }

    /// `on-status` when the interval has passed since the last round (or since the
    /// first call), in the background: a slow status hook never holds the migration.
    pub fn status_due(self: &Arc<Self>, cx: impl FnOnce() -> HookContext) {
        let now = Instant::now();
        {
            let Ok(mut last) = self.last_status.lock() else {
                return;
            };
            match *last {
                None => {
                    *last = Some(now);
                    return;
                }
                Some(t) if now.duration_since(t) < self.status_interval => return,
                _ => *last = Some(now),
            }
        }
        if self.status_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let files = self.files(Some(Point::Status));
        let env = self.env(Point::Status, &cx());
        let (timeout, json, running) = (self.timeout, self.json, self.status_running.clone());
        tokio::spawn(async move {
            run_files(files, env, timeout, json).await;
            running.store(false, Ordering::SeqCst);
        });
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(_p: &Path) -> bool {
    true
}

async fn run_files(
    files: Vec<(PathBuf, bool)>,
    env: Vec<(String, String)>,
    timeout: Duration,
    json: bool,
) -> HookOutcome {
    let mut out = HookOutcome::default();
    let point = env
        .iter()
        .find(|(k, _)| k == "GODWIT_HOOK")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for (path, executable) in files {
        if !executable {
            continue;
        }
        out.ran += 1;
        let name = file_name(&path);
        let t0 = Instant::now();
        let r = run_one(&path, &env, timeout).await;
        let took = t0.elapsed().as_millis() as u64;
        let (ok, exit_code, timed_out, reason) = match &r {
            Ok(Ran::Exited(0)) => (true, Some(0), false, None),
            Ok(Ran::Exited(c)) => (false, Some(*c), false, Some(format!("exit code {c}"))),
            Ok(Ran::Signalled) => (false, None, false, Some("killed by a signal".to_string())),
            Ok(Ran::TimedOut) => (
                false,
                None,
                true,
                Some(format!(
                    "still running after {} s: killed",
                    timeout.as_secs_f64()
                )),
            ),
            Err(e) => (false, None, false, Some(format!("could not start: {e}"))),
        };
        if let Some(reason) = &reason {
            tracing::warn!("hook {name} ({point}) failed: {reason}");
            out.failures.push(HookFailure {
                file: name.clone(),
                reason: reason.clone(),
            });
        } else {
            tracing::info!("hook {name} ({point}) ran in {took} ms");
        }
        crate::progress::emit_json_if(
            json,
            "hook",
            serde_json::json!({
                "hook": point, "file": name, "ok": ok, "exit_code": exit_code,
                "timed_out": timed_out, "duration_ms": took, "message": reason,
            }),
        );
    }
    out
}

enum Ran {
    Exited(i32),
    Signalled,
    TimedOut,
}

async fn run_one(path: &Path, env: &[(String, String)], timeout: Duration) -> std::io::Result<Ran> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = path.parent() {
        cmd.current_dir(dir);
    }
    // Its own process group: a timeout kills what the hook started too.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let name = file_name(path);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outputs = tokio::spawn(async move { tokio::join!(drain(stdout), drain(stderr)) });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => s?,
        Err(_) => {
            #[cfg(unix)]
            if let Some(pid) = pid {
                // SAFETY: kill(2) with a negative pid signals that process group, which
                // is the hook's own (process_group(0) above).
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            outputs.abort();
            return Ok(Ran::TimedOut);
        }
    };
    // Output still held open by a process the hook left behind is not waited for.
    if let Ok(Ok((o, e))) = tokio::time::timeout(Duration::from_secs(2), outputs).await {
        log_output(&name, "stdout", &o);
        log_output(&name, "stderr", &e);
    }
    Ok(match status.code() {
        Some(c) => Ran::Exited(c),
        None => Ran::Signalled,
    })
}

/// The first 64 KiB of a hook's output; the rest is read and dropped, so that a hook
/// that prints a lot never blocks on a full pipe.
async fn drain<R: tokio::io::AsyncRead + Unpin>(s: Option<R>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    if let Some(mut s) = s {
        let _ = (&mut s).take(64 * 1024).read_to_end(&mut buf).await;
        let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
    }
    buf
}

fn log_output(name: &str, which: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let cut: String = text.chars().take(OUTPUT_LOGGED).collect();
    let more = if cut.len() < text.len() { " …" } else { "" };
    tracing::info!("hook {name} {which}: {cut}{more}");
}

/// The run's fixed variables from the connection facts (never the password).
pub fn base_vars(
    engine: &str,
    host: &str,
    port: u16,
    user: &str,
    database: &str,
) -> Vec<(String, String)> {
    vec![
        ("GODWIT_ENGINE".into(), engine.into()),
        ("GODWIT_HOST".into(), host.into()),
        ("GODWIT_MIGRATED_HOST".into(), host.into()),
        ("GODWIT_PORT".into(), port.to_string()),
        ("GODWIT_USER".into(), user.into()),
        ("GODWIT_DATABASE_NAME".into(), database.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn hooks_run_by_prefix_in_name_order_with_a_clean_environment() {
        let dir = std::env::temp_dir().join(format!("godwit-hooks-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let l = log.display();
        script(
            &dir,
            "on-startup-b",
            &format!("echo b $GODWIT_HOOK $GODWIT_TABLE_NAME >> {l}"),
        );
        script(
            &dir,
            "on-startup-a",
            &format!("echo a $GODWIT_UNIT_SECRET. >> {l}"),
        );
        script(&dir, "on-status", &format!("echo status >> {l}"));
        std::fs::write(dir.join("on-success"), "not executable").unwrap();
        // Set for this process (as MYSQL_PWD would be): not passed on.
        std::env::set_var("GODWIT_UNIT_SECRET", "secret");
        let hooks = Hooks::new(
            &dir,
            Duration::from_secs(5),
            vec![("GODWIT_TABLE_NAME".into(), "t".into())],
            false,
        )
        .unwrap();
        let out = hooks.run(Point::Startup, &HookContext::default()).await;
        assert!(out.ok(), "{:?}", out.failures);
        assert_eq!(out.ran, 2);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "a .\nb on-startup t\n");
        // Not executable: never run, not a failure of the point.
        let out = hooks.run(Point::Success, &HookContext::default()).await;
        assert_eq!(out.ran, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_hook_that_prints_a_lot_is_not_held_by_its_pipe() {
        let dir = std::env::temp_dir().join(format!("godwit-hooks-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        script(&dir, "on-status", "head -c 1000000 /dev/zero | tr '\\0' x");
        let hooks = Hooks::new(&dir, Duration::from_secs(20), vec![], false).unwrap();
        let out = hooks.run(Point::Status, &HookContext::default()).await;
        assert!(out.ok(), "{:?}", out.failures);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_failing_and_a_hanging_hook_are_failures() {
        let dir = std::env::temp_dir().join(format!("godwit-hooks-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        script(&dir, "on-before-cut-over-1", "exit 3");
        script(&dir, "on-before-cut-over-2", "sleep 30");
        let hooks = Hooks::new(&dir, Duration::from_millis(500), vec![], false).unwrap();
        let t0 = Instant::now();
        let out = hooks
            .run(Point::BeforeCutOver, &HookContext::default())
            .await;
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(out.failures.len(), 2, "{:?}", out.failures);
        assert!(out.failures[0].reason.contains("exit code 3"));
        assert!(out.failures[1].reason.contains("killed"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Hooks::new(&dir, Duration::from_secs(1), vec![], false).is_err());
    }
}
