//! When to try again after a unique key refused a row because a unique value moved from
//! one row to another (docs/architecture.md, "Key-based replay and its races", 9).

use crate::error::Error;
use std::time::{Duration, Instant};

/// How long the same duplicate may stay before it counts as one of the data. The stream
/// reads only what the server has flushed to its log: under PostgreSQL's
/// `synchronous_commit = off` a commit is visible up to three `wal_writer_delay`s (600 ms
/// by default) before the change that goes with it can be read.
const SAME_FOR: Duration = Duration::from_secs(5);
/// The pause before trying again when the same duplicate is met again.
const PAUSE: Duration = Duration::from_millis(50);
/// Tries at most, while the values met keep changing (the application moving more).
const MAX_TRIES: u32 = 200;

#[derive(Debug, Default)]
pub(super) struct MovedValue {
    tries: u32,
    /// The last duplicate met, and since when it has been met.
    last: Option<(String, Instant)>,
}

impl MovedValue {
    /// After `e`: None to give up (not a duplicate, or one that stays), otherwise the
    /// pause before reading the stream up to now and trying again.
    pub fn again(&mut self, e: &Error, now: Instant) -> Option<Duration> {
        if self.tries >= MAX_TRIES {
            return None;
        }
        // Between such tries the application writes on, and a replay that meets a
        // duplicate holds a shared lock on it: the server may then end the replay's
        // transaction as a deadlock's victim, which is tried again too.
        if self.tries > 0 && e.is_conflict_victim() {
            self.tries += 1;
            return Some(PAUSE);
        }
        if !e.is_unique_violation() {
            return None;
        }
        self.tries += 1;
        match &self.last {
            Some((m, since)) if *m == e.message => {
                (now.duration_since(*since) < SAME_FOR).then_some(PAUSE)
            }
            _ => {
                self.last = Some((e.message.clone(), now));
                Some(Duration::ZERO)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, ServerCode};

    fn dup(v: &str) -> Error {
        Error::new(ErrorKind::DataError, format!("Duplicate entry '{v}'"))
            .with_code(ServerCode::Mysql(1062))
    }

    #[test]
    fn a_moving_value_is_retried_a_staying_one_is_not() {
        let t0 = Instant::now();
        let mut m = MovedValue::default();
        assert_eq!(m.again(&dup("1"), t0), Some(Duration::ZERO));
        // Another value each time: the application keeps moving them.
        assert_eq!(m.again(&dup("2"), t0), Some(Duration::ZERO));
        // The same one again: a pause, until it has stayed too long.
        assert_eq!(m.again(&dup("2"), t0 + Duration::from_secs(1)), Some(PAUSE));
        // A deadlock's victim between them is tried again, and changes nothing.
        let victim = Error::new(ErrorKind::Internal, "deadlock").with_code(ServerCode::Mysql(1213));
        assert_eq!(m.again(&victim, t0), Some(PAUSE));
        assert_eq!(m.again(&dup("2"), t0 + Duration::from_secs(6)), None);
        // Not after no duplicate at all: that is another matter.
        assert_eq!(MovedValue::default().again(&victim, t0), None);
    }

    #[test]
    fn other_errors_and_endless_moves_stop() {
        let t0 = Instant::now();
        let mut m = MovedValue::default();
        assert_eq!(m.again(&Error::new(ErrorKind::DataError, "x"), t0), None);
        for i in 0..MAX_TRIES {
            assert!(m.again(&dup(&i.to_string()), t0).is_some());
        }
        assert_eq!(m.again(&dup("last"), t0), None);
    }
}
