//! Throttling the copy and the replay: a row rate (governor), server load thresholds,
//! a flag file, and replica lag (`lag.rs`).

pub mod lag;
pub mod load;

pub use load::{unknown_counter, LoadThresholds};

use crate::error::{Error, ErrorKind, Result};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the copy is waiting right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    FlagFile(PathBuf),
    Load(String, f64, f64),
    /// `throttle` on the control socket.
    Forced,
    /// A replica is further behind than `--max-lag-millis`.
    ReplicaLag {
        replica: String,
        lag: Duration,
        max: Duration,
    },
    /// A replica cannot be read, or its replication is stopped: it counts as lagging.
    ReplicaUnreadable {
        replica: String,
        why: String,
    },
}

impl Hold {
    /// What holds, without the numbers that change at every check: a new cause is
    /// reported again, a changing lag is not.
    pub fn cause(&self) -> String {
        match self {
            Hold::ReplicaLag { replica, .. } => format!("replica lag: {replica}"),
            Hold::ReplicaUnreadable { replica, .. } => format!("replica unreadable: {replica}"),
            Hold::Load(k, _, _) => format!("load: {k}"),
            h => h.to_string(),
        }
    }

    /// The JSON fields of a `throttled` event: `reason` (the text), and for replica lag
    /// `replica`, `lag_ms` and `max_lag_ms`.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"reason": self.to_string()});
        match self {
            Hold::ReplicaLag { replica, lag, max } => {
                v["replica"] = replica.clone().into();
                v["lag_ms"] = (lag.as_millis() as u64).into();
                v["max_lag_ms"] = (max.as_millis() as u64).into();
            }
            Hold::ReplicaUnreadable { replica, .. } => {
                v["replica"] = replica.clone().into();
            }
            _ => {}
        }
        v
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::FlagFile(p) => write!(f, "throttle flag file {} exists", p.display()),
            Hold::Load(k, v, max) => write!(f, "{k}={v} exceeds --max-load {k}={max}"),
            Hold::Forced => f.write_str("throttled by the control socket (`no-throttle` releases)"),
            Hold::ReplicaLag { replica, lag, max } => write!(
                f,
                "replica {replica} lag {} exceeds --max-lag-millis {}",
                lag::secs(*lag),
                max.as_millis()
            ),
            Hold::ReplicaUnreadable { replica, why } => {
                write!(f, "replica {replica} counts as lagging: {why}")
            }
        }
    }
}

pub struct Throttle {
    limiter: Option<(DefaultDirectRateLimiter, u32)>,
    pub max_load: Option<LoadThresholds>,
    pub critical_load: Option<LoadThresholds>,
    pub flag_file: Option<PathBuf>,
    last_check: Option<Instant>,
    last_hold: Option<Hold>,
    /// The control socket's knobs: forced throttling, new --max-load / --critical-load.
    control: Option<std::sync::Arc<crate::control::Control>>,
    /// `--max-lag-millis`, shared: it may be changed while the run goes on.
    max_lag_ms: Arc<AtomicU64>,
    /// The replicas' latest lag readings (none: no lag check).
    lag: Option<Arc<lag::LagState>>,
}

/// `--max-lag-millis` when not given.
pub const DEFAULT_MAX_LAG_MS: u64 = 1500;

impl Throttle {
    pub fn new(
        max_rows_per_second: Option<u32>,
        max_load: Option<LoadThresholds>,
        critical_load: Option<LoadThresholds>,
        flag_file: Option<PathBuf>,
    ) -> Self {
        let limiter = max_rows_per_second
            .and_then(NonZeroU32::new)
            .map(|r| (RateLimiter::direct(Quota::per_second(r)), r.get()));
        Throttle {
            limiter,
            max_load,
            critical_load,
            flag_file,
            last_check: None,
            last_hold: None,
            max_lag_ms: Arc::new(AtomicU64::new(DEFAULT_MAX_LAG_MS)),
            lag: None,
            control: None,
        }
    }

    /// Take forced throttling and new load thresholds from the control socket.
    pub fn with_control(mut self, c: std::sync::Arc<crate::control::Control>) -> Self {
        c.set_loads(self.max_load.clone(), self.critical_load.clone());
        // One max lag, set by --max-lag-millis and by `max-lag-millis=N` on the socket.
        c.max_lag_ms
            .store(self.max_lag_ms.load(Ordering::SeqCst), Ordering::SeqCst);
        self.max_lag_ms = c.max_lag_ms.clone();
        self.control = Some(c);
        self
    }

    /// Hold while a replica lags (readings from a running [`lag::LagWatch`]).
    pub fn with_lag(mut self, state: Arc<lag::LagState>) -> Self {
        self.lag = Some(state);
        self
    }

    /// The max lag in milliseconds; storing into it changes the threshold at once.
    pub fn max_lag_handle(&self) -> Arc<AtomicU64> {
        self.max_lag_ms.clone()
    }

    /// What the latest replica readings say (read at every check: sub-second).
    /// 0 (the control socket's "none") holds nothing.
    fn lag_hold(&self) -> Option<Hold> {
        let state = self.lag.as_ref()?;
        let readings = state.get();
        if let Some(c) = &self.control {
            let worst = readings.iter().filter_map(|r| r.lag).max();
            c.update(|s| s.replica_lag_ms = worst.map(|l| l.as_millis() as u64));
        }
        let max = self.max_lag_ms.load(Ordering::SeqCst);
        if max == 0 {
            return None;
        }
        lag::hold(&readings, Duration::from_millis(max))
    }

    /// The largest chunk the rate limit allows in one step.
    pub fn max_chunk(&self) -> Option<u64> {
        self.limiter.as_ref().map(|(_, r)| u64::from(*r))
    }

    /// Wait until `rows` more rows may be written.
    pub async fn take_rows(&self, rows: u64) {
        if let Some((lim, burst)) = &self.limiter {
            let mut left = rows;
            while left > 0 {
                let n = left.min(u64::from(*burst)) as u32;
                if let Some(n) = NonZeroU32::new(n) {
                    let _ = lim.until_n_ready(n).await;
                }
                left -= u64::from(n);
            }
        }
    }

    /// Every counter name of `--max-load` and `--critical-load`, each once.
    fn counter_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in [&self.max_load, &self.critical_load].into_iter().flatten() {
            for (k, _) in &t.0 {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        names
    }

    /// Read every load counter once, before anything is created: a name the engine does
    /// not know is an error (exit 2) prefixed with the option(s) it can come from, never
    /// a silent 0 later.
    pub async fn validate<F, Fut>(&self, read: F) -> Result<()>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<f64>>>,
    {
        let names = self.counter_names();
        if names.is_empty() {
            return Ok(());
        }
        let flags = match (&self.max_load, &self.critical_load) {
            (Some(_), None) => "--max-load",
            (None, Some(_)) => "--critical-load",
            _ => "--max-load / --critical-load",
        };
        read(names).await.map(|_| ()).map_err(|e| {
            if e.kind == ErrorKind::BadInput {
                e.context(flags)
            } else {
                e
            }
        })
    }

    /// Check the flag file, the load thresholds (server counters at most once a second)
    /// and the replicas' lag (the latest reading, taken in the background every 200 ms).
    /// Returns why to hold, or an error when a critical threshold is crossed.
    pub async fn check<F, Fut>(&mut self, read: F) -> Result<Option<Hold>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<f64>>>,
    {
        let mut before = None;
        if let Some(c) = &self.control {
            if c.forced_throttle() {
                return Ok(Some(Hold::Forced));
            }
            if let Some((max, critical)) = c.take_loads() {
                before = Some((self.max_load.clone(), self.critical_load.clone()));
                self.max_load = max;
                self.critical_load = critical;
                self.last_check = None;
            }
        }
        if let Some(p) = &self.flag_file {
            if p.exists() {
                return Ok(Some(Hold::FlagFile(p.clone())));
            }
        }
        let load = self.check_load(read, before).await?;
        Ok(load.or_else(|| self.lag_hold()))
    }

    /// The load thresholds; `before`: the thresholds the control socket just replaced.
    async fn check_load<F, Fut>(
        &mut self,
        read: F,
        before: Option<(Option<LoadThresholds>, Option<LoadThresholds>)>,
    ) -> Result<Option<Hold>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<f64>>>,
    {
        let due = self
            .last_check
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due {
            return Ok(self.last_hold.clone());
        }
        self.last_check = Some(Instant::now());
        let names = self.counter_names();
        if names.is_empty() {
            self.last_hold = None;
            return Ok(None);
        }
        let values = match (read(names.clone()).await, before) {
            (Ok(v), _) => v,
            // New thresholds from the control socket name a counter the server does not
            // have: keep the previous ones (the run goes on).
            (Err(e), Some((max, critical))) if e.kind == ErrorKind::BadInput => {
                tracing::warn!(
                    "control socket: new load thresholds refused, the previous ones stay: {e}"
                );
                if let Some(c) = &self.control {
                    c.restore_loads(max.clone(), critical.clone());
                }
                self.max_load = max;
                self.critical_load = critical;
                self.last_check = None;
                return Ok(self.last_hold.clone());
            }
            (Err(e), _) => return Err(e),
        };
        let value = |k: &str| {
            names
                .iter()
                .position(|n| n == k)
                .and_then(|i| values.get(i))
                .copied()
        };
        if let Some(c) = &self.critical_load {
            for (k, max) in &c.0 {
                if let Some(v) = value(k) {
                    if v > *max {
                        return Err(Error::new(
                            ErrorKind::CriticalLoad,
                            format!("{k}={v} crossed --critical-load {k}={max}; migration aborted, the original table is untouched"),
                        )
                        .with_hint("run again when the server is quieter, or raise --critical-load"));
                    }
                }
            }
        }
        self.last_hold = None;
        if let Some(m) = &self.max_load {
            for (k, max) in &m.0 {
                if let Some(v) = value(k) {
                    if v > *max {
                        self.last_hold = Some(Hold::Load(k.clone(), v, *max));
                        break;
                    }
                }
            }
        }
        Ok(self.last_hold.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_load_thresholds() {
        let t: LoadThresholds = "Threads_running=25, Threads_connected=500".parse().unwrap();
        assert_eq!(
            t.0,
            vec![
                ("Threads_running".into(), 25.0),
                ("Threads_connected".into(), 500.0)
            ]
        );
        assert!("Threads_running".parse::<LoadThresholds>().is_err());
        assert!("x;drop=1".parse::<LoadThresholds>().is_err());
        assert!("a=b".parse::<LoadThresholds>().is_err());
    }

    #[tokio::test]
    async fn max_load_holds_and_critical_load_aborts() {
        let mut t = Throttle::new(
            None,
            Some("A=10".parse().unwrap()),
            Some("A=100".parse().unwrap()),
            None,
        );
        let hold = t.check(|_| async { Ok(vec![50.0]) }).await.unwrap();
        assert_eq!(hold, Some(Hold::Load("A".into(), 50.0, 10.0)));
        t.last_check = None;
        let e = t.check(|_| async { Ok(vec![150.0]) }).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::CriticalLoad);
        t.last_check = None;
        assert_eq!(t.check(|_| async { Ok(vec![1.0]) }).await.unwrap(), None);
    }

    #[tokio::test]
    async fn validate_names_the_option_of_an_unknown_counter() {
        let read = |names: Vec<String>| async move {
            match names.iter().find(|n| n.as_str() != "A") {
                Some(n) => Err(unknown_counter(n, "test", "A")),
                None => Ok(vec![1.0; names.len()]),
            }
        };
        let t = |max: Option<&str>, crit: Option<&str>| {
            Throttle::new(
                None,
                max.map(|m| m.parse().unwrap()),
                crit.map(|c| c.parse().unwrap()),
                None,
            )
        };
        t(Some("A=10"), Some("A=100")).validate(read).await.unwrap();
        let e = t(None, Some("b=100")).validate(read).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.message
                .starts_with("--critical-load: `b` is not a load counter"),
            "{e}"
        );
        assert_eq!(e.hint.as_deref(), Some("use one of: A"));
        let e = t(Some("A=1,c=2"), None).validate(read).await.unwrap_err();
        assert!(e.message.starts_with("--max-load: `c` is not"), "{e}");
        let e = t(Some("A=1"), Some("d=2"))
            .validate(read)
            .await
            .unwrap_err();
        assert!(
            e.message
                .starts_with("--max-load / --critical-load: `d` is not"),
            "{e}"
        );
        // Other errors (the server's) pass through unchanged.
        let e = t(Some("A=1"), None)
            .validate(|_| async { Err(Error::internal("gone")) })
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Internal, "gone"));
        // Nothing is read without thresholds.
        t(None, None)
            .validate(|_| async { Err(Error::internal("read")) })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_control_socket_forces_a_hold_and_sets_thresholds() {
        let c = std::sync::Arc::new(crate::control::Control::default());
        let mut t =
            Throttle::new(None, Some("A=10".parse().unwrap()), None, None).with_control(c.clone());
        assert_eq!(t.check(|_| async { Ok(vec![5.0]) }).await.unwrap(), None);
        c.execute("throttle");
        assert_eq!(
            t.check(|_| async { Ok(vec![5.0]) }).await.unwrap(),
            Some(Hold::Forced)
        );
        c.execute("no-throttle");
        // New thresholds apply at the next check, without waiting for the second.
        c.execute("max-load=A=1");
        assert_eq!(
            t.check(|_| async { Ok(vec![5.0]) }).await.unwrap(),
            Some(Hold::Load("A".into(), 5.0, 1.0))
        );
        c.execute("critical-load=A=4");
        let e = t.check(|_| async { Ok(vec![5.0]) }).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::CriticalLoad);
        // A counter the server does not have: refused, the previous thresholds stay.
        c.execute("critical-load=");
        c.execute("max-load=B=1");
        let read = |names: Vec<String>| async move {
            match names.iter().find(|n| n.as_str() != "A") {
                Some(n) => Err(unknown_counter(n, "test", "A")),
                None => Ok(vec![5.0; names.len()]),
            }
        };
        t.check(read).await.unwrap();
        assert_eq!(c.execute("max-load=?"), "A=1\n");
        assert_eq!(c.execute("critical-load=?"), "A=4\n");
        t.last_check = None;
        let e = t.check(read).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::CriticalLoad);
    }

    #[tokio::test]
    async fn flag_file_holds() {
        let dir = std::env::temp_dir().join(format!("godwit-throttle-{}", std::process::id()));
        std::fs::write(&dir, b"").unwrap();
        let mut t = Throttle::new(None, None, None, Some(dir.clone()));
        assert!(matches!(
            t.check(|_| async { Ok(vec![]) }).await.unwrap(),
            Some(Hold::FlagFile(_))
        ));
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(t.check(|_| async { Ok(vec![]) }).await.unwrap(), None);
    }
}
