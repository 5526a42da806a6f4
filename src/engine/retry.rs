//! Reconnecting after a lost connection (docs/how-it-works.md, "Lost connections"): one
//! policy, one backoff and one report for every connection of `godwit run` and both
//! engines. Only a connection loss is retried (an error the engines mapped from the
//! server's codes or the driver to [`ErrorKind::Unreachable`]); any other error ends the
//! run at once.

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The wait before the first new attempt; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long to keep reconnecting, from `--reconnect-timeout-seconds`.
#[derive(Debug, Clone, Default)]
pub struct Reconnect {
    /// How long to keep trying once a connection is lost; zero fails at once.
    pub timeout: Duration,
    /// Report each attempt as a `reconnect` JSON event on stdout (`--format json`).
    pub json: bool,
    /// Set by Ctrl-C / SIGTERM: stop waiting and fail with `Aborted`.
    pub abort: Option<Arc<AtomicBool>>,
}

/// True for an error that means the connection (or the server) is gone, so the same
/// statement may succeed on a new connection.
pub fn is_connection_loss(e: &Error) -> bool {
    e.kind == ErrorKind::Unreachable
}

/// The wait before new attempt `attempt` (1-based): 100 ms doubling, at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl Reconnect {
    /// Start tracking one outage of a connection; `what` completes "lost the connection …"
    /// (e.g. "of the copy").
    pub fn outage(&self, what: &str) -> Outage<'_> {
        Outage {
            policy: self,
            what: what.to_string(),
            started: None,
            attempt: 0,
        }
    }

    /// Run `op` until it succeeds. After a connection loss the state is handed back to
    /// `op` (which opens a new connection) after the backoff, until the time is up.
    pub async fn run<S, T, F>(&self, what: &str, state: &mut S, mut op: F) -> Result<T>
    where
        S: Send,
        F: for<'s> FnMut(&'s mut S) -> futures_util::future::BoxFuture<'s, Result<T>>,
    {
        let mut outage = self.outage(what);
        loop {
            match op(state).await {
                Ok(v) => {
                    outage.recovered();
                    return Ok(v);
                }
                Err(e) => outage.wait(e).await?,
            }
        }
    }
}

/// One lost connection and the attempts to get it back.
pub struct Outage<'a> {
    policy: &'a Reconnect,
    what: String,
    started: Option<Instant>,
    attempt: u32,
}

impl Outage<'_> {
    /// After a failed attempt: returns the error for anything but a connection loss, and
    /// for a connection loss once `--reconnect-timeout-seconds` has passed since the
    /// connection was first lost (saying how long it tried). Otherwise reports the loss
    /// and sleeps the backoff; the caller then tries again on a new connection.
    pub async fn wait(&mut self, e: Error) -> Result<()> {
        if !is_connection_loss(&e) {
            return Err(e);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let tried = started.elapsed();
        let limit = self.policy.timeout;
        if tried >= limit {
            let how = if limit.is_zero() {
                "not reconnecting: --reconnect-timeout-seconds is 0".to_string()
            } else {
                format!(
                    "gave up after reconnecting for {:.1} s ({} attempt(s); --reconnect-timeout-seconds {})",
                    tried.as_secs_f64(),
                    self.attempt,
                    limit.as_secs()
                )
            };
            return Err(e.context(format!("lost the connection {} ({how})", self.what)));
        }
        self.attempt += 1;
        let pause = backoff(self.attempt).min(limit - tried);
        tracing::warn!(
            "lost the connection {}: {}; reconnecting (attempt {}, in {} ms, for at most {} s)",
            self.what,
            e.message,
            self.attempt,
            pause.as_millis(),
            limit.as_secs()
        );
        self.report("retrying", Some(&e));
        let until = Instant::now() + pause;
        loop {
            if self.aborted() {
                return Err(Error::new(
                    ErrorKind::Aborted,
                    format!(
                        "stopped by signal while reconnecting (lost the connection {}); the original table is unchanged",
                        self.what
                    ),
                ));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
        }
    }

    fn aborted(&self) -> bool {
        self.policy
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::SeqCst))
    }

    /// The attempt after a loss succeeded: say so (nothing when nothing was lost).
    pub fn recovered(&mut self) {
        let Some(started) = self.started.take() else {
            return;
        };
        tracing::warn!(
            "reconnected {} after {} attempt(s), {} ms",
            self.what,
            self.attempt,
            started.elapsed().as_millis()
        );
        self.report("restored", None);
        self.attempt = 0;
    }

    /// How many attempts were made since the connection was lost.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn report(&self, status: &str, e: Option<&Error>) {
        if !self.policy.json {
            return;
        }
        let waited = self.started.map(|s| s.elapsed().as_millis() as u64);
        crate::progress::events::emit_json(
            "reconnect",
            serde_json::json!({
                "status": status,
                "lost": self.what,
                "attempt": self.attempt,
                "error": e.map(|e| e.message.clone()),
                "elapsed_ms": waited,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Error {
        Error::new(ErrorKind::Unreachable, "connection reset")
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let ms: Vec<u128> = (1..=8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn only_connection_loss_is_retried() {
        let r = Reconnect {
            timeout: Duration::from_secs(300),
            ..Reconnect::default()
        };
        let mut o = r.outage("of the copy");
        let data = Error::new(ErrorKind::DataError, "duplicate key");
        assert_eq!(o.wait(data).await.unwrap_err().kind, ErrorKind::DataError);
        assert!(o.wait(lost()).await.is_ok());
        assert_eq!(o.attempts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_fails_at_once_and_says_so() {
        let r = Reconnect::default();
        let e = r
            .outage("of the change stream")
            .wait(lost())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(
            e.message.contains("--reconnect-timeout-seconds is 0"),
            "{}",
            e.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_time_is_up_and_says_how_long() {
        let r = Reconnect {
            timeout: Duration::from_secs(10),
            ..Reconnect::default()
        };
        let mut state = 0u32;
        let t0 = tokio::time::Instant::now();
        let e = r
            .run("of the copy", &mut state, |n| {
                Box::pin(async move {
                    *n += 1;
                    Err::<(), _>(lost())
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(
            e.message.contains("gave up after reconnecting for 10.0 s"),
            "{}",
            e.message
        );
        // 0.1+0.2+0.4+0.8+1.6+3.2 = 6.3 s, then 3.7 s to the limit: 8 tries in all.
        assert_eq!(state, 8);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_stops_the_waiting() {
        let abort = Arc::new(AtomicBool::new(false));
        let r = Reconnect {
            timeout: Duration::from_secs(300),
            abort: Some(abort.clone()),
            ..Reconnect::default()
        };
        let mut o = r.outage("of the copy");
        assert!(o.wait(lost()).await.is_ok());
        abort.store(true, Ordering::SeqCst);
        assert_eq!(o.wait(lost()).await.unwrap_err().kind, ErrorKind::Aborted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_success_ends_the_outage() {
        let r = Reconnect {
            timeout: Duration::from_secs(10),
            ..Reconnect::default()
        };
        let mut state = 0u32;
        let v = r
            .run("of the copy", &mut state, |n| {
                Box::pin(async move {
                    *n += 1;
                    if *n < 3 {
                        Err(lost())
                    } else {
                        Ok(*n)
                    }
                })
            })
            .await
            .unwrap();
        assert_eq!(v, 3);
    }
}
