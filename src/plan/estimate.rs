//! Estimates for the online path (`godwit run`): rows, bytes to copy, disk for the shadow,
//! duration from a measured read sample, and replication volume.

use super::{Change, Facts, PlanEngine};
use serde::Serialize;

/// Copy rate assumed when no sample could be taken (rows per second). Documented in
/// docs/plan.md.
pub const DEFAULT_ROWS_PER_SEC: f64 = 50_000.0;
/// Writing a chunk into the shadow (with its indexes, and the log) costs about this many
/// times reading it: the measured read rate is divided by it.
pub const WRITE_FACTOR: f64 = 4.0;
/// Fewer rows than this in the sample: the default rate is used.
pub const MIN_SAMPLE_ROWS: u64 = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub rows: u64,
    /// Table data the copy reads and writes.
    pub bytes_to_copy: u64,
    /// Disk the shadow table and its indexes need while both tables exist.
    pub disk_needed_bytes: u64,
    /// Free disk space, when the server exposes it.
    pub free_bytes: Option<u64>,
    /// Copy rate used (rows/s) and where it came from (`sample` or `default`).
    pub rows_per_sec: f64,
    pub rate_source: &'static str,
    pub copy_seconds: u64,
    /// Bytes the copy adds to the binary log / WAL (what replicas must apply).
    pub replication_bytes: u64,
    pub replicas: Option<u32>,
    pub replication_note: String,
}

/// The estimate of the online path for `f`, and what replicas see of `all` run natively.
pub fn estimate(engine: &dyn PlanEngine, f: &Facts, all: &Change) -> Estimate {
    estimate_with(
        f,
        engine.log_carries_indexes(),
        engine.native_replays_serially(all),
    )
}

/// [`estimate`] with the engine's answers given: the replicas' log carries index changes
/// (`log_carries_indexes`), the native ALTER replays serially there (`inplace_lag`).
pub fn estimate_with(f: &Facts, log_carries_indexes: bool, inplace_lag: bool) -> Estimate {
    // A sample too small or too fast to time says nothing: use the default.
    let (rate, source) = match f.sample {
        Some(s) if s.rows >= MIN_SAMPLE_ROWS && s.millis > 0 => (
            (s.rows as f64 * 1000.0 / s.millis as f64 / WRITE_FACTOR).max(1.0),
            "sample",
        ),
        _ => (DEFAULT_ROWS_PER_SEC, "default"),
    };
    let rows = f.row_estimate;
    let bytes = f.data_bytes.max(rows * f.avg_row_bytes);
    let replication_bytes = bytes
        + if log_carries_indexes {
            f.index_bytes
        } else {
            0
        };
    let replication_note = match (f.replicas, inplace_lag) {
        (Some(0), _) => "no replicas visible".to_string(),
        (_, true) => "a native in-place ALTER replays serially on replicas: they lag by its whole duration; godwit's copy is throttled by --max-lag-millis".to_string(),
        _ => "godwit's copy writes about bytes_to_copy to the log; throttle with --max-lag-millis".to_string(),
    };
    Estimate {
        rows,
        bytes_to_copy: bytes,
        disk_needed_bytes: f.data_bytes + f.index_bytes,
        free_bytes: f.free_bytes,
        rows_per_sec: (rate * 10.0).round() / 10.0,
        rate_source: source,
        copy_seconds: (rows as f64 / rate).ceil() as u64,
        replication_bytes,
        replicas: f.replicas,
        replication_note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture;
    use crate::plan::Sample;

    #[test]
    fn duration_from_sample_or_default() {
        let mut f = fixture::mysql_facts();
        f.row_estimate = 1_000_000;
        let e = estimate_with(&f, false, false);
        assert_eq!(e.rate_source, "default");
        assert_eq!(e.copy_seconds, 20);
        f.sample = Some(Sample {
            rows: 10_000,
            millis: 100,
        });
        let e = estimate_with(&f, false, false);
        assert_eq!(e.rate_source, "sample");
        assert_eq!(e.rows_per_sec, 25_000.0);
        assert_eq!(e.copy_seconds, 40);
        f.sample = Some(Sample {
            rows: 10,
            millis: 0,
        });
        assert_eq!(estimate_with(&f, false, false).rate_source, "default");
    }
}
