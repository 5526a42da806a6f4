//! The live state of a run: its [`State`] and a [`Snapshot`] of its counters, shared by
//! the progress output (`progress/`), the control socket and metrics (`control/`) and the
//! online core. Plain data with no imports from those, so none of them depends on another
//! through it.

use serde::Serialize;

/// The states of a migration, in order, plus the waiting states (docs/architecture.md,
/// "The online state machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Preflight,
    Prepare,
    Copy,
    Throttled,
    CatchUp,
    /// Comparing the original and the new table before the cut-over.
    Verify,
    Postponed,
    CutOver,
    Cleanup,
    Done,
    /// The phases' backfill: batches of existing rows brought into the new shape.
    Backfill,
    /// After the swap, with `--revert-window`: the new table's changes are replayed into
    /// the old table so that `godwit revert` can swap back.
    RevertWindow,
    Failed,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub rows_copied: u64,
    pub rows_estimate: u64,
    pub rows_per_sec: f64,
    pub eta_seconds: Option<u64>,
    pub keys_replayed: u64,
    pub dirty_keys: u64,
    pub lag_ms: Option<u64>,
    pub chunk_size: u64,
}
