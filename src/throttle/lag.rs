//! Replica lag: the engine-neutral half of `--max-lag-millis`.
//!
//! An engine provides a [`LagMonitor`] (`engine/mysql/lag.rs`, `engine/postgres/lag.rs`):
//! it writes a heartbeat on the primary and reads each replica's lag. [`LagWatch`] runs
//! it in the background — the heartbeat every `--heartbeat-interval-millis`, the replicas
//! read every [`READ_INTERVAL`] — and keeps the latest readings, which
//! [`super::Throttle::check`] compares with the max lag (an atomic: it may change at
//! run time). docs/throttling.md describes what is measured on each engine.

use crate::error::{Error, Result};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the replicas are read (the throttle sees a lag within this much).
pub const READ_INTERVAL: Duration = Duration::from_millis(200);
/// A reading that does not answer within this counts as unreadable.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// A heartbeat row nobody wrote for this long belongs to a run that is gone.
pub const STALE_HEARTBEAT: Duration = Duration::from_secs(60);
/// The name of the heartbeat table (in the target database / the table's schema).
pub const HEARTBEAT_TABLE: &str = "_godwit_heartbeat";

/// One replica's state at one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// `host:port` (given or discovered) or the server's name for a standby.
    pub name: String,
    /// How far behind the primary it is, when known.
    pub lag: Option<Duration>,
    /// Set when the replica counts as lagging whatever its lag: it cannot be read, or its
    /// replication is stopped. Says why.
    pub why: Option<String>,
}

/// What a run asks of the lag check.
#[derive(Debug, Clone, PartialEq)]
pub struct LagOptions {
    pub max_lag: Duration,
    pub heartbeat_interval: Duration,
    /// `--throttle-control-replicas` (host, port); `None`: discover them.
    pub replicas: Option<Vec<(String, u16)>>,
}

/// The engine's side: a heartbeat on the primary, lag readings from the replicas.
#[async_trait]
pub trait LagMonitor: Send + Sync {
    /// The replicas watched, by name (`host:port`).
    fn replicas(&self) -> Vec<String>;
    /// Write this run's heartbeat on the primary (creating the table when missing).
    async fn heartbeat(&self) -> Result<()>;
    /// Every replica's lag now. Never fails: a replica that cannot be read is a reading
    /// with `why`.
    async fn read(&self) -> Vec<ReplicaLag>;
    /// Remove this run's heartbeat, and the table when no other run writes to it.
    async fn close(&self) -> Result<()>;
}

/// Parse `--throttle-control-replicas`: `host:port[,host:port…]`; a host without a port
/// takes the primary's port; IPv6 addresses in brackets (`[::1]:3306`).
pub fn parse_replicas(s: &str, default_port: u16) -> Result<Vec<(String, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, port) = if let Some(rest) = part.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad_replica(part))?;
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None if after.is_empty() => (h.to_string(), None),
                None => return Err(bad_replica(part)),
            }
        } else {
            match part.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                Some(_) => return Err(bad_replica(part)),
                None => (part.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad_replica(part))?,
            None => default_port,
        };
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !ok {
            return Err(bad_replica(part));
        }
        if !out.contains(&(host.clone(), port)) {
            out.push((host, port));
        }
    }
    if out.is_empty() {
        return Err(bad_replica(s));
    }
    Ok(out)
}

fn bad_replica(part: &str) -> Error {
    Error::bad_input(format!(
        "--throttle-control-replicas: '{part}' is not host:port"
    ))
    .with_hint("give replicas as host:port[,host:port…], e.g. replica1:3306,10.0.0.7:3306")
}

/// `host:port` as messages name a replica (IPv6 in brackets).
pub fn replica_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Seconds with milliseconds, for messages.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The latest readings, shared by the watch's task and the throttle.
#[derive(Default)]
pub struct LagState {
    readings: Mutex<Vec<ReplicaLag>>,
}

impl LagState {
    pub fn set(&self, r: Vec<ReplicaLag>) {
        if let Ok(mut g) = self.readings.lock() {
            *g = r;
        }
    }
    pub fn get(&self) -> Vec<ReplicaLag> {
        self.readings.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// What holds the copy, from the latest readings: the first replica that cannot be read
/// (or whose replication is stopped), else the one lagging most beyond `max`.
pub fn hold(readings: &[ReplicaLag], max: Duration) -> Option<super::Hold> {
    if let Some(r) = readings.iter().find(|r| r.why.is_some()) {
        return Some(super::Hold::ReplicaUnreadable {
            replica: r.name.clone(),
            why: r.why.clone().unwrap_or_default(),
        });
    }
    readings
        .iter()
        .filter_map(|r| r.lag.map(|l| (r, l)))
        .filter(|(_, l)| *l > max)
        .max_by_key(|(_, l)| *l)
        .map(|(r, lag)| super::Hold::ReplicaLag {
            replica: r.name.clone(),
            lag,
            max,
        })
}

/// The heartbeat and the readings, running in the background until [`LagWatch::stop`].
pub struct LagWatch {
    monitor: Arc<dyn LagMonitor>,
    state: Arc<LagState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LagWatch {
    /// Write the first heartbeat (an error here — e.g. no privilege to create the table —
    /// fails the run before anything else exists), take the first reading, and start the
    /// two background loops.
    pub async fn start(monitor: Box<dyn LagMonitor>, interval: Duration) -> Result<LagWatch> {
        let monitor: Arc<dyn LagMonitor> = Arc::from(monitor);
        monitor.heartbeat().await?;
        let state = Arc::new(LagState::default());
        state.set(read_once(monitor.as_ref()).await);
        let beat = {
            let m = monitor.clone();
            tokio::spawn(async move {
                let mut said: Option<Instant> = None;
                loop {
                    tokio::time::sleep(interval).await;
                    if let Err(e) = m.heartbeat().await {
                        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            tracing::warn!("writing the replica-lag heartbeat failed: {e}");
                            said = Some(Instant::now());
                        }
                    }
                }
            })
        };
        let reader = {
            let (m, s) = (monitor.clone(), state.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(READ_INTERVAL).await;
                    s.set(read_once(m.as_ref()).await);
                }
            })
        };
        Ok(LagWatch {
            monitor,
            state,
            tasks: vec![beat, reader],
        })
    }

    /// The readings, for [`super::Throttle::with_lag`].
    pub fn state(&self) -> Arc<LagState> {
        self.state.clone()
    }

    pub fn replicas(&self) -> Vec<String> {
        self.monitor.replicas()
    }

    /// Stop both loops and remove this run's heartbeat (and the table when it was the
    /// last run using it).
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.monitor.close().await {
            tracing::warn!(
                "removing the replica-lag heartbeat failed: {e}; drop table {HEARTBEAT_TABLE} once no godwit runs"
            );
        }
    }
}

async fn read_once(m: &dyn LagMonitor) -> Vec<ReplicaLag> {
    match tokio::time::timeout(READ_TIMEOUT, m.read()).await {
        Ok(r) => r,
        Err(_) => m
            .replicas()
            .into_iter()
            .map(|name| ReplicaLag {
                name,
                lag: None,
                why: Some(format!("no answer within {}", secs(READ_TIMEOUT))),
            })
            .collect(),
    }
}

/// A run id for the heartbeat row: unique among the runs of one server.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    format!("{host}-{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::super::Hold;
    use super::*;

    #[test]
    fn parses_replica_lists() {
        assert_eq!(
            parse_replicas("r1:3307, 10.0.0.7 ,[::1]:3308,r1:3307", 3306).unwrap(),
            vec![
                ("r1".to_string(), 3307),
                ("10.0.0.7".to_string(), 3306),
                ("::1".to_string(), 3308)
            ]
        );
        for bad in [
            "", "r1:x", "r1:0", "a b:1", "r1:70000", "[::1", "::1:3306", "r;1:2",
        ] {
            let e = parse_replicas(bad, 3306).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.message.starts_with("--throttle-control-replicas"), "{e}");
        }
        assert_eq!(replica_name("::1", 5), "[::1]:5");
        assert_eq!(replica_name("r", 5), "r:5");
    }

    fn r(name: &str, ms: Option<u64>, why: Option<&str>) -> ReplicaLag {
        ReplicaLag {
            name: name.into(),
            lag: ms.map(Duration::from_millis),
            why: why.map(str::to_string),
        }
    }

    #[test]
    fn holds_on_the_worst_replica_or_an_unreadable_one() {
        let max = Duration::from_millis(1000);
        assert_eq!(hold(&[], max), None);
        assert_eq!(hold(&[r("a", Some(999), None)], max), None);
        assert_eq!(hold(&[r("a", Some(1000), None)], max), None);
        assert_eq!(
            hold(
                &[
                    r("a", Some(1500), None),
                    r("b", Some(3000), None),
                    r("c", Some(10), None)
                ],
                max
            ),
            Some(Hold::ReplicaLag {
                replica: "b".into(),
                lag: Duration::from_millis(3000),
                max
            })
        );
        let h = hold(&[r("a", Some(3000), None), r("b", None, Some("gone"))], max);
        assert_eq!(
            h,
            Some(Hold::ReplicaUnreadable {
                replica: "b".into(),
                why: "gone".into()
            })
        );
        assert!(h.unwrap().to_string().contains("b"));
    }

    struct Fake(Mutex<Vec<ReplicaLag>>, Mutex<u32>);

    #[async_trait]
    impl LagMonitor for Fake {
        fn replicas(&self) -> Vec<String> {
            vec!["f:1".into()]
        }
        async fn heartbeat(&self) -> Result<()> {
            *self.1.lock().unwrap() += 1;
            Ok(())
        }
        async fn read(&self) -> Vec<ReplicaLag> {
            self.0.lock().unwrap().clone()
        }
        async fn close(&self) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_throttle_follows_the_watch_and_its_max_lag_handle() {
        let fake = Fake(Mutex::new(vec![r("f:1", Some(700), None)]), Mutex::new(0));
        let watch = LagWatch::start(Box::new(fake), Duration::from_millis(10))
            .await
            .unwrap();
        let mut t = super::super::Throttle::new(None, None, None, None).with_lag(watch.state());
        let max = t.max_lag_handle();
        max.store(500, std::sync::atomic::Ordering::SeqCst);
        let h = t.check(|_| async { Ok(vec![]) }).await.unwrap();
        assert!(matches!(h, Some(Hold::ReplicaLag { ref replica, .. }) if replica == "f:1"));
        let text = h.unwrap().to_string();
        assert!(text.contains("f:1") && text.contains("0.700 s"), "{text}");
        max.store(800, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(t.check(|_| async { Ok(vec![]) }).await.unwrap(), None);
        watch.stop().await;
    }
}
