//! The `Engine` trait: everything the engine-neutral core needs from a database.
//!
//! An engine knows *how* (SQL, protocols, locks); the core in `migration/` decides *when*.

pub mod check;
pub mod int_bounds;
pub mod mysql;
pub mod postgres;
pub mod retry;
pub mod target;

use crate::ddl::AlterSpec;
use crate::error::Result;
use crate::schema::{ColumnMapping, Table};
use crate::target::EngineKind;
use async_trait::async_trait;
use std::time::Duration;

/// One value of a key column, as the change stream or the chunker delivers it. Each engine
/// turns it back into a server value of the right type (see its statement builder).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum KeyPart {
    Int(i64),
    UInt(u64),
    /// Raw bytes in the column's own character set (strings) or binary.
    Bytes(Vec<u8>),
    /// A textual rendering the engine casts back (decimals, dates, PostgreSQL values).
    Text(String),
}

/// A row's key: one part per key column, in key order.
pub type Key = Vec<KeyPart>;

/// A position in the change stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Position {
    Binlog { file: String, pos: u64 },
    Lsn(u64),
}

impl Position {
    /// True when this position is at or past `fence`.
    pub fn reached(&self, fence: &Position) -> bool {
        match (self, fence) {
            (Position::Binlog { file: f, pos: p }, Position::Binlog { file: ff, pos: fp }) => {
                (f.as_str(), *p) >= (ff.as_str(), *fp)
            }
            (Position::Lsn(a), Position::Lsn(b)) => a >= b,
            _ => false,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Binlog { file, pos } => write!(f, "{file}:{pos}"),
            Position::Lsn(l) => write!(f, "{:X}/{:X}", l >> 32, l & 0xffff_ffff),
        }
    }
}

/// What one poll of the change stream returned.
#[derive(Debug, Default)]
pub struct StreamBatch {
    /// Keys of the original table changed by the events read (old and new key of an
    /// update that changed the key).
    pub keys: Vec<Key>,
    /// How far the stream has been read.
    pub position: Option<Position>,
    /// Age of the newest event read, when the stream carries timestamps.
    pub lag: Option<Duration>,
}

/// The change stream of the original table, opened before the shadow exists.
#[async_trait]
pub trait ChangeStream: Send {
    /// Return the keys changed since the last poll, waiting at most `wait` for any.
    /// Keys read before an error (e.g. the DDL event of the swap) are returned first and
    /// the error by the next poll: the core counts them as writes after the final flush.
    async fn poll(&mut self, wait: Duration) -> Result<StreamBatch>;
    /// Everything up to `position` is durably applied to the shadow table.
    async fn ack(&mut self, position: &Position) -> Result<()>;
    /// Stop reading and remove the stream's server-side artifacts.
    async fn close(&mut self) -> Result<()>;
    /// After the stream stopped at a DDL statement on the table (the swap's RENAME): the
    /// position right after that statement, where a stream of the new table starts (the
    /// revert window, docs/how-it-works.md "Revert"). None when the stream does not see
    /// the swap.
    fn swap_position(&self) -> Option<Position> {
        None
    }
}

/// Copies the original table into the shadow in key order, one chunk per call.
#[async_trait]
pub trait Copier: Send {
    /// Copy the next chunk of about `rows` rows. Returns rows read from the original, or
    /// `None` when the whole table has been copied.
    async fn next_chunk(&mut self, rows: u64) -> Result<Option<u64>>;
    /// The last chunk returned was the last one (so the caller need not ask again).
    fn finished(&self) -> bool {
        false
    }
    /// The key every row up to which is copied (the end of the last chunk): a resumed
    /// copy starts after it.
    fn copied_upto(&self) -> Option<Key>;
}

/// The cut-over while the original table is locked against writes.
#[async_trait]
pub trait CutOverLock: Send {
    /// A stream position taken under the lock: once the stream reached it, every write to
    /// the original is in the dirty set.
    async fn fence(&mut self) -> Result<Position>;
    /// Apply dirty keys while holding the lock.
    async fn flush(&mut self, keys: &[Key]) -> Result<u64>;
    /// Swap the tables atomically and release the lock. On error nothing was swapped.
    async fn swap(&mut self) -> Result<()>;
    /// Give up this attempt: release the lock, leave both tables as they were.
    async fn release(&mut self) -> Result<()>;
    /// When the lock was requested: from then on the application's writes queue.
    fn blocked_since(&self) -> Option<std::time::Instant> {
        None
    }
}

/// An order-independent digest of some rows: how many, and the XOR of a hash of
/// each row's values, read through the column mapping. Equal digests mean equal rows (up
/// to a hash collision: 2^-32 per differing row with MySQL's CRC32, 2^-64 on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Digest {
    pub rows: u64,
    pub hash: u64,
}

/// How the columns of two tables are compared by a [`VerifyView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompareColumns {
    /// Compared value for value (same type in both tables).
    pub same: Vec<String>,
    /// Compared through the conversion to the new type (the original's value cast).
    pub converted: Vec<String>,
    /// Not compared: the engine cannot reproduce the conversion exactly (with why).
    pub skipped: Vec<(String, String)>,
}

/// Read-only views of the original and the other table (the shadow), taken at one
/// moment when they came from [`VerifyLock::views`].
#[async_trait]
pub trait VerifyView: Send {
    /// The key of the row `rows` rows after `after` in the original (from the start when
    /// `after` is None); None when fewer rows remain.
    async fn next_bound(&mut self, after: Option<&Key>, rows: u64) -> Result<Option<Key>>;
    /// Digests of the original and the other table over the keys in (`after`, `upto`]
    /// (`upto` None: to the end). `converted` false leaves out the converted columns.
    async fn digest(
        &mut self,
        after: Option<&Key>,
        upto: Option<&Key>,
        converted: bool,
    ) -> Result<(Digest, Digest)>;
    /// Which columns are compared, and how.
    fn columns(&self) -> CompareColumns;
    /// End the views' transactions.
    async fn close(&mut self) -> Result<()>;
}

/// The original held against writes (reads go on) while consistent views are taken.
#[async_trait]
pub trait VerifyLock: Send {
    /// A stream position taken under the lock: once the stream reached it and the dirty
    /// keys are replayed, the shadow holds what the original holds.
    async fn fence(&mut self) -> Result<Position>;
    /// Take the views (one snapshot each, both at this moment), then release the lock.
    async fn views(self: Box<Self>) -> Result<Box<dyn VerifyView>>;
    /// Give up: release the lock.
    async fn release(self: Box<Self>) -> Result<()>;
}

/// Names of what godwit creates for a table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArtifactNames {
    pub shadow: String,
    /// The name the original gets at cut-over.
    pub old: String,
}

/// Something the engine found worth a warning at the start (`Engine::start_warnings`).
#[derive(Debug, Clone)]
pub struct Warning {
    pub message: String,
    /// Fields of the `warning` JSON event (an object).
    pub details: serde_json::Value,
}

/// A session of someone else's holding a lock on the table that the cut-over's lock
/// waits for (`Engine::cut_over_blockers`; docs/how-it-works.md, "Blocked cut-overs").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocker {
    /// The server's session id (MySQL connection id, PostgreSQL backend pid).
    pub id: u64,
    pub user: String,
    pub host: Option<String>,
    /// How long its transaction (or, without one, its statement) has been open.
    pub age_seconds: u64,
    /// What it is doing (`Sleep`, `idle in transaction`, …).
    pub state: String,
    /// Its current or last statement, cut to 200 characters.
    pub query: Option<String>,
    /// Known to hold a lock on the table; false: an open transaction that may hold one
    /// (the server cannot say which tables a transaction used).
    pub exact: bool,
    /// When its transaction started, as the server says it: with `id`, tells whether a
    /// later look sees the same transaction.
    #[serde(skip)]
    pub since: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session {} ({}{}, open {} s, {}{}{})",
            self.id,
            self.user,
            self.host
                .as_deref()
                .map(|h| format!("@{h}"))
                .unwrap_or_default(),
            self.age_seconds,
            self.state,
            self.query
                .as_deref()
                .map(|q| format!(": {q}"))
                .unwrap_or_default(),
            if self.exact {
                ""
            } else {
                "; may hold the lock"
            }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Before anything is created.
    Preflight,
    /// Before a run takes over what a dead run left (its shadow is expected).
    Resume,
}

#[async_trait]
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;
    fn names(&self) -> &ArtifactNames;
    /// Server name and version, for reports.
    fn server_version(&self) -> String;
    /// How this server's cut-over works, for reports.
    fn cut_over_algorithm(&self) -> &'static str;
    /// Inspect the original table.
    async fn inspect(&self) -> Result<Table>;
    /// Run the engine's checks for `scope`; the first failure is returned as the error.
    async fn preflight(&self, scope: Scope, orig: &Table) -> Result<()>;
    /// Objects of this tool for this table that exist now (for `cleanup` and preflight).
    async fn leftovers(&self) -> Result<Vec<String>>;
    /// Remove this tool's artifacts for this table (never the original, never an old
    /// table unless `include_old`). Returns what was removed.
    async fn cleanup(&self, include_old: bool) -> Result<Vec<String>>;
    /// What [`Engine::cleanup`] would remove.
    async fn cleanup_candidates(&self, include_old: bool) -> Result<Vec<String>>;
    /// Fix the change-stream position (and create what the stream needs) *before* the
    /// shadow exists: every change after it will be seen.
    async fn start_stream(&self, orig: &Table) -> Result<Position>;
    /// Start reading changes of the original's `key` columns from `from`.
    async fn open_stream(
        &self,
        orig: &Table,
        key: &[String],
        from: &Position,
    ) -> Result<Box<dyn ChangeStream>>;
    /// Create the shadow table with the new schema and inspect it.
    async fn create_shadow(&self, orig: &Table, alter: &AlterSpec) -> Result<Table>;
    /// Check that the chosen key can be replayed exactly (supported column types).
    fn check_key(&self, orig: &Table, mapping: &ColumnMapping) -> Result<()>;
    /// `--revert-window`, before the copy: the reverse direction's replay (`reverse` maps
    /// the shadow's columns to the original's) can write the shadow's rows into the
    /// original, e.g. every column's type converts back. An error says what cannot.
    async fn check_reverse(&self, _shadow: &Table, _reverse: &ColumnMapping) -> Result<()> {
        Ok(())
    }
    async fn drop_shadow(&self) -> Result<()>;
    /// Steps to take once every chunk is copied, before the catch-up (e.g. build the
    /// indexes the copy ran without, replay what was held back meanwhile).
    async fn after_copy(&self, _orig: &Table, _mapping: &ColumnMapping) -> Result<()> {
        Ok(())
    }
    /// Steps to take after the shadow is filled and before cut-over (e.g. build indexes).
    async fn before_cut_over(&self, _mapping: &ColumnMapping) -> Result<()> {
        Ok(())
    }
    /// Refresh the shadow's planner statistics (`ANALYZE`), so that the application's
    /// queries are planned from real statistics from the first moment after the swap
    /// (a table filled by bulk inserts has none until autovacuum / auto-recalculation
    /// comes around). Reads a sample; changes no rows.
    async fn analyze_shadow(&self) -> Result<()>;
    /// A copier that starts after the key `after` (from the start when None).
    async fn copier(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
    ) -> Result<Box<dyn Copier>>;
    /// Re-read `keys` from the original and make the shadow hold exactly that.
    async fn flush(&self, orig: &Table, mapping: &ColumnMapping, keys: &[Key]) -> Result<u64>;
    /// Lock the original for the cut-over, waiting at most `timeout`.
    async fn lock_for_cut_over(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        timeout: Duration,
        attempt: u32,
    ) -> Result<Box<dyn CutOverLock>>;
    /// Current values of server status counters (for --max-load / --critical-load).
    async fn status_values(&self, names: &[String]) -> Result<Vec<f64>>;
    /// Drop the renamed original after a successful cut-over.
    async fn drop_old(&self) -> Result<()>;
    /// The server's change-stream position right now (without any lock). The core reads
    /// the stream up to it before locking, so the drain under the lock is short.
    async fn current_position(&self) -> Result<Option<Position>> {
        Ok(None)
    }
    /// True when the change stream reports the swap itself (a DDL on the original), so
    /// the core can prove that no write reached the old table after the final flush.
    fn stream_sees_swap(&self) -> bool {
        false
    }
    /// Take this table's runner lock for the rest of the run (released when the engine
    /// closes or the process dies). `false`: another godwit run holds it right now.
    async fn lock_runner(&self) -> Result<bool>;
    /// Check that this run still holds the runner lock; when the session holding it was
    /// lost (a server restart), take it again on a new one. `false`: another run holds it
    /// now. An error: it cannot be told right now.
    async fn keep_runner_lock(&self) -> Result<bool> {
        Ok(true)
    }
    /// After a swap that returned an error: did the swap happen? Looks on a new
    /// connection for the renamed original. An error means it cannot be told.
    async fn swapped(&self) -> Result<bool>;
    /// Server-side objects of the change stream that outlive a failed close (e.g. a
    /// publication), by name, for the report of an incomplete cleanup.
    fn stream_artifacts(&self) -> Vec<String> {
        Vec::new()
    }
    /// Close the engine's connections.
    async fn close(&self) -> Result<()>;
    /// Hold the original against writes (waiting at most `timeout`) so that consistent
    /// views of it and the shadow can be taken for verification.
    async fn lock_for_verify(
        &self,
        orig: &Table,
        shadow: &Table,
        mapping: &ColumnMapping,
        timeout: Duration,
    ) -> Result<Box<dyn VerifyLock>>;
    /// Views of the original and the table `other` without any lock (`godwit verify`):
    /// each is a snapshot of its own.
    async fn verify_views(
        &self,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
    ) -> Result<Box<dyn VerifyView>>;
    /// The keys in (`after`, `upto`] present in the original or the shadow now: replaying
    /// them re-copies the range.
    async fn range_keys(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
        upto: Option<&Key>,
    ) -> Result<Vec<Key>>;
    /// Inspect another table of the original's schema (`godwit verify --against`).
    async fn inspect_other(&self, name: &str) -> Result<Table>;
    /// This engine saves checkpoints and can resume a run that died; a run stopped by
    /// a lost server then keeps what it made for the next run.
    fn resumable(&self) -> bool {
        false
    }
    /// This engine can keep a revert window after the swap (`--revert-window`): it
    /// saves checkpoints, its stream reports where the swap happened
    /// (`ChangeStream::swap_position`), and `request_handover` works.
    fn revertable(&self) -> bool {
        false
    }
    /// This table's checkpoint (docs/how-it-works.md, "Resume"), as saved.
    async fn load_checkpoint(&self) -> Result<Option<String>>;
    /// Save this table's checkpoint (creating the checkpoint table when needed).
    async fn save_checkpoint(&self, state: &str) -> Result<()>;
    /// Remove this table's checkpoint, and the checkpoint table once it is empty.
    async fn drop_checkpoint(&self) -> Result<()>;
    /// Ask the run holding this table's checkpoint (a revert window) to hand over: a mark
    /// next to the checkpoint that saving it never overwrites. False: no checkpoint.
    async fn request_handover(&self) -> Result<bool> {
        Ok(false)
    }
    /// A handover was asked for (see [`Engine::request_handover`]).
    async fn handover_requested(&self) -> Result<bool> {
        Ok(false)
    }
    /// What a resumed run must know about the shadow that its definition does not say
    /// (e.g. the indexes the copy runs without).
    fn resume_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// After the swap of a run with a revert window: the `resume_state` with which the
    /// reverse direction's engine takes over the old table and the stream
    /// (`Engine::resume`), e.g. the names the swap took from the old table's indexes.
    /// Null: that engine needs nothing taken over.
    fn reverse_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// After a run that died while cutting over, whose original was to be renamed `old`:
    /// the name the original has now when the swap happened, None when it did not.
    async fn swapped_as(&self, _old: &str) -> Result<Option<String>> {
        Ok(None)
    }
    /// What to tell at the start that is not an error (e.g. stream objects of earlier
    /// runs holding server resources): each a message and details for the `warning`
    /// event. `scope`: this run resumes a dead run's (its own objects are not meant).
    async fn start_warnings(&self, _scope: Scope) -> Result<Vec<Warning>> {
        Ok(Vec::new())
    }
    /// Sessions other than godwit's that hold (or, when the server cannot tell, may
    /// hold) a lock on the original that the cut-over's lock must wait for.
    async fn cut_over_blockers(&self) -> Result<Vec<Blocker>> {
        Ok(Vec::new())
    }
    /// End the session `id` (a blocker, with `--kill-blockers`).
    async fn kill_session(&self, _id: u64) -> Result<()> {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Unsupported,
            "this engine cannot end sessions",
        ))
    }
    /// Drop a table the swap of a dead run left as the old table.
    async fn drop_old_table(&self, name: &str) -> Result<()>;
    /// Take over the shadow and the stream a dead run left: check that the shadow exists,
    /// that the stream can still be read from `from`, restore `state`, and inspect the
    /// shadow. `copying`: the dead run had not finished the copy.
    async fn resume(
        &self,
        orig: &Table,
        state: &serde_json::Value,
        from: &Position,
        copying: bool,
    ) -> Result<Table>;
}

/// Take the table's runner lock, asking again for a few seconds: a run killed a moment
/// ago holds it until the server notices that its sessions are gone.
pub async fn take_runner_lock(engine: &dyn Engine) -> Result<bool> {
    for _ in 0..8 {
        if engine.lock_runner().await? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    engine.lock_runner().await
}

/// The fixed prefix of every object godwit creates.
pub const PREFIX: &str = "_godwit_";

/// Names of the shadow and the renamed original for `table`, within `max_len` characters
/// (64 on MySQL, 63 on PostgreSQL). Long table names are cut and made unique by a hash.
pub fn artifact_names(table: &str, unix_secs: u64) -> ArtifactNames {
    let base = artifact_base(table);
    ArtifactNames {
        shadow: format!("{PREFIX}new_{base}"),
        old: format!("{PREFIX}old_{base}_{unix_secs}"),
    }
}

/// FNV-1a, 32 bits: stable across runs and versions, unlike std's hasher.
pub fn fnv32(bytes: impl IntoIterator<Item = u8>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// The part of artifact names that identifies the table.
pub fn artifact_base(table: &str) -> String {
    if table.chars().count() <= 38 {
        return table.to_string();
    }
    let h = fnv32(table.bytes());
    let head: String = table.chars().take(29).collect();
    format!("{head}_{h:08x}")
}

#[cfg(test)]
mod names_tests {
    use super::*;

    #[test]
    fn names_fit_identifier_limits() {
        let long = "a".repeat(64);
        let n = artifact_names(&long, 1_800_000_000);
        assert!(n.shadow.len() <= 63 && n.old.len() <= 63, "{n:?}");
        assert_ne!(artifact_base(&long), artifact_base(&"a".repeat(63)));
        let n = artifact_names("orders", 5);
        assert_eq!(n.shadow, "_godwit_new_orders");
        assert_eq!(n.old, "_godwit_old_orders_5");
    }
}

/// Names given to a run instead of the fresh ones (the revert: the old table the swap kept
/// is the shadow, see docs/how-it-works.md "Revert").
#[derive(Debug, Clone)]
pub struct NameOverride {
    /// The table the run fills from the original.
    pub shadow: String,
    /// The name the original gets at the swap (None: a fresh one).
    pub old: Option<String>,
    /// This run will cut over: the engine may give the shadow the name its cut-over
    /// needs when the run takes it over (`Engine::resume`). False for a run that only
    /// replays into it (the revert window).
    pub cut_over: bool,
}

/// Engine settings that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Artifact names given instead of fresh ones.
    pub names: Option<NameOverride>,
    /// Debug seam for tests: hold the cut-over lock this long after the swap is queued.
    pub cut_over_hold: Option<Duration>,
    /// Reconnecting the copy and replay connections after a connection loss.
    pub reconnect: retry::Reconnect,
    /// The run keeps a revert window after the swap (`--revert-window`): the engine
    /// keeps what the reverse direction's stream needs (PostgreSQL: the slot and the
    /// publication, switched to the new table in the swap's transaction).
    pub revert_window: bool,
}
