//! The copy's rate and ETA, smoothed over a sliding window of *unthrottled* time: a
//! throttled minute neither lowers the rate nor stretches the ETA (the ETA says how long
//! the copy takes once it runs). The clock is passed in, so the tests drive it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window the rate is measured over (running time, throttled time excluded).
pub const WINDOW: Duration = Duration::from_secs(60);
/// Below this much running time in the window the rate is not trusted yet.
const MIN_SPAN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Eta {
    window: Duration,
    /// Running (unthrottled) time so far.
    active: Duration,
    last: Option<Instant>,
    /// (running time, rows done) samples, oldest first.
    samples: VecDeque<(Duration, u64)>,
}

impl Default for Eta {
    fn default() -> Self {
        Eta::new(WINDOW)
    }
}

impl Eta {
    pub fn new(window: Duration) -> Eta {
        Eta {
            window,
            active: Duration::ZERO,
            last: None,
            samples: VecDeque::new(),
        }
    }

    /// `rows` are done at `now`; `running` is false when the time since the previous
    /// observation was spent throttled (it is then not counted).
    pub fn observe(&mut self, now: Instant, rows: u64, running: bool) {
        if let Some(l) = self.last {
            if running {
                self.active += now.saturating_duration_since(l);
            }
        }
        self.last = Some(now);
        if self
            .samples
            .back()
            .is_some_and(|&(t, r)| t == self.active && r == rows)
        {
            return;
        }
        self.samples.push_back((self.active, rows));
        // Keep one sample at or before the window's start, as the rate's base.
        while self.samples.len() > 2 && self.samples[1].0 + self.window <= self.active {
            self.samples.pop_front();
        }
    }

    /// Rows per second of running time over the window.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, r0), &(t1, r1)) = (self.samples.front()?, self.samples.back()?);
        let span = t1.saturating_sub(t0);
        if span < MIN_SPAN || r1 <= r0 {
            return None;
        }
        Some((r1 - r0) as f64 / span.as_secs_f64())
    }

    /// Time left for `remaining` rows at the window's rate (unknown before a rate).
    pub fn eta(&self, remaining: u64) -> Option<Duration> {
        if remaining == 0 {
            return Some(Duration::ZERO);
        }
        let r = self.rate()?;
        Some(Duration::from_secs_f64(remaining as f64 / r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_running_time_only() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut e = Eta::new(Duration::from_secs(60));
        e.observe(s(0), 0, true);
        assert_eq!(e.rate(), None);
        e.observe(s(10), 1000, true);
        assert_eq!(e.rate(), Some(100.0));
        assert_eq!(e.eta(5000), Some(Duration::from_secs(50)));
        // Throttled for 100 s: nothing copied, and the time does not count.
        e.observe(s(50), 1000, false);
        e.observe(s(110), 1000, false);
        assert_eq!(e.rate(), Some(100.0));
        assert_eq!(e.eta(5000), Some(Duration::from_secs(50)));
        // Running again at 100 rows/s.
        e.observe(s(120), 2000, true);
        assert_eq!(e.rate(), Some(100.0));
        assert_eq!(e.eta(0), Some(Duration::ZERO));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut e = Eta::new(Duration::from_secs(10));
        e.observe(s(0), 0, true);
        // 10 s at 1,000 rows/s, then 20 s at 100 rows/s: the window sees only the slow part.
        e.observe(s(10), 10_000, true);
        for i in 1..=20 {
            e.observe(s(10 + i), 10_000 + 100 * i, true);
        }
        let r = e.rate().unwrap();
        assert!((r - 100.0).abs() < 1e-6, "{r}");
        assert!(e.samples.len() <= 12, "{}", e.samples.len());
    }

    #[test]
    fn no_rate_without_progress_or_time() {
        let t0 = Instant::now();
        let mut e = Eta::default();
        e.observe(t0, 10, true);
        e.observe(t0 + Duration::from_millis(100), 20, true);
        assert_eq!(e.rate(), None, "too short a span");
        e.observe(t0 + Duration::from_secs(5), 20, true);
        assert!(e.rate().is_some());
        let mut idle = Eta::default();
        idle.observe(t0, 10, true);
        idle.observe(t0 + Duration::from_secs(5), 10, true);
        assert_eq!(idle.rate(), None);
        assert_eq!(idle.eta(100), None);
    }
}
