//! Test support: servers, databases, running the godwit binary, comparing tables.
//!
//! A test's server comes from, in order: `GODWIT_TEST_MYSQL_URL` /
//! `GODWIT_TEST_POSTGRES_URL`, a container via testcontainers when a Docker engine
//! answers, or a private server started from the local binaries
//! (`scripts/lib/servers.sh`).
#![allow(dead_code)]

pub mod mysql;
pub mod postgres;

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
