//! Test support: servers, databases, running the godwit binary, comparing tables.
//!
//! A test's server comes from, in order: `GODWIT_TEST_MYSQL_URL` /
//! `GODWIT_TEST_POSTGRES_URL`, a container via testcontainers when a Docker engine
//! answers, or a private server started from the local binaries
//! (`scripts/lib/servers.sh`).
#![allow(dead_code)]

pub mod both;
pub mod mysql;
pub mod phases;
pub mod postgres;
pub mod proxy;

use std::process::Stdio;

/// What a godwit run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout lines that are JSON objects (with `--format json`).
    pub events: Vec<serde_json::Value>,
}

impl Run {
    pub fn event(&self, name: &str) -> Option<&serde_json::Value> {
        self.events.iter().find(|e| e["event"] == name)
    }
    pub fn states(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "state")
            .map(|e| e["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }
    /// Panic with everything the run printed.
    pub fn expect_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "godwit failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn godwit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_godwit")
}

/// Run godwit to completion.
pub async fn godwit(args: &[&str], env: &[(&str, &str)]) -> Run {
    let child = spawn_godwit(args, env);
    finish(child).await
}

pub fn spawn_godwit(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(godwit_bin());
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GODWIT_LOG", "godwit=info")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start godwit")
}

pub async fn finish(child: tokio::process::Child) -> Run {
    let out = child.wait_with_output().await.expect("wait for godwit");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if std::env::var("GODWIT_TEST_SHOW_STDERR").is_ok() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        events,
    }
}

/// A short unique name for a test database.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 10_000
    )
}

/// Start the private servers from `scripts/lib/servers.sh` and return the URL it exports.
pub fn start_local_server(function: &str, var: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {root}/scripts/lib/servers.sh && ensure_packages >&2 && {function} >&2 && echo ${var}"
        ))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/lib/servers.sh");
    assert!(out.status.success(), "{function} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when a Docker engine answers (testcontainers can be used).
pub fn docker_available() -> bool {
    std::path::Path::new("/var/run/docker.sock").exists() || std::env::var("DOCKER_HOST").is_ok()
}

/// A godwit process whose JSON events are read while it runs.
pub struct LiveRun {
    child: tokio::process::Child,
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    lines: Vec<String>,
    stderr_task: tokio::task::JoinHandle<String>,
}

impl LiveRun {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> LiveRun {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
        let mut child = spawn_godwit(args, env);
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        LiveRun {
            child,
            rx,
            lines: Vec::new(),
            stderr_task,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Wait (at most `secs`) for an event matching `pred`; panics on timeout or exit.
    pub async fn wait_for(
        &mut self,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(l)) => {
                    self.lines.push(l.clone());
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                        if pred(&v) {
                            return v;
                        }
                    }
                }
                Ok(None) => {
                    let stderr = (&mut self.stderr_task).await.unwrap_or_default();
                    panic!(
                        "godwit exited before the awaited event; output:\n{}\nstderr:\n{stderr}",
                        self.lines.join("\n")
                    )
                }
                Err(_) => panic!(
                    "timed out waiting for an event; output so far:\n{}",
                    self.lines.join("\n")
                ),
            }
        }
    }

    /// Wait (at most `secs`) for an event matching `pred`; None when godwit exits or the
    /// time runs out first.
    pub async fn wait_until(
        &mut self,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(l)) => {
                    self.lines.push(l.clone());
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                        if pred(&v) {
                            return Some(v);
                        }
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn finish(mut self) -> Run {
        let status = self.child.wait().await.unwrap();
        while let Some(l) = self.rx.recv().await {
            self.lines.push(l);
        }
        let stderr = self.stderr_task.await.unwrap_or_default();
        let stdout = self.lines.join("\n");
        let events = self
            .lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect();
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            events,
        }
    }
}

/// A private MariaDB for one test (e.g. with other server settings); stopped on drop.
pub struct PrivateServer {
    pub url: String,
    dir: String,
}

impl PrivateServer {
    pub fn mariadb(env: &[(&str, &str)]) -> PrivateServer {
        Self::start("start_mariadb", "GODWIT_TEST_MYSQL_URL", env)
    }

    /// A private PostgreSQL 15 (env: GODWIT_PG_WAL_LEVEL, GODWIT_PG_MAX_SLOTS).
    pub fn postgres(env: &[(&str, &str)]) -> PrivateServer {
        Self::start("start_postgres", "GODWIT_TEST_POSTGRES_URL", env)
    }

    fn start(function: &str, var: &str, env: &[(&str, &str)]) -> PrivateServer {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c").arg(format!(
            "source {root}/scripts/lib/servers.sh && {function} >&2 && echo \"${var} $GODWIT_RUN_DIR\""
        ));
        // A run directory of its own, whatever the caller's environment says.
        cmd.env_remove("GODWIT_RUN_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("start a private MariaDB");
        assert!(out.status.success(), "private MariaDB did not start");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (url, dir) = text.split_once(' ').expect("url and dir");
        PrivateServer {
            url: url.to_string(),
            dir: dir.to_string(),
        }
    }
}

impl PrivateServer {
    /// Restart the server in place (same port and data): a clean shutdown, then a start;
    /// returns once it answers again.
    pub fn restart(&self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let function = if std::path::Path::new(&self.dir).join("mariadb").exists() {
            "restart_mariadb"
        } else {
            "restart_postgres"
        };
        let ok = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "GODWIT_RUN_DIR={0} source {root}/scripts/lib/servers.sh && {function} {0}",
                self.dir
            ))
            .status()
            .expect("restart the private server")
            .success();
        assert!(ok, "{function} failed");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "[ -f {0}/mariadb/mysqld.pid ] && kill $(cat {0}/mariadb/mysqld.pid) 2>/dev/null; \
                 [ -d {0}/postgres/data ] && runuser -u godwitpg -- /usr/lib/postgresql/15/bin/pg_ctl -D {0}/postgres/data -m immediate stop >/dev/null 2>&1; \
                 sleep 1; rm -rf {0}",
                self.dir
            ))
            .status();
    }
}
