//! A fake engine for unit tests of the online core: an in-memory original table, shadow
//! table and change stream, with the engine protocol checked on every call.
//!
//! Rows are `key → value` (`i64 → i64`), the migration key is the single column `id`.
//! Tests act as the application through [`World`]'s write methods, usually from a hook
//! that runs at the start of every engine call ([`FakeEngine::on_call`]): that is how
//! concurrent writers are interleaved with every step of the core. Faults (a failing poll,
//! a cut-over lock that times out or fails at a given step of a given attempt, a write that
//! slips past the cut-over lock) are set on the [`World`] as well.
//!
//! The fake panics (with "engine protocol: …") when the core calls it out of order, e.g.
//! `open_stream` before `start_stream`, a copy chunk after the copier said it was done,
//! `after_copy` before the copy finished, a flush outside the lock while the lock is held,
//! `flush`/`swap` on a lock that was not fenced, a lock flush before the stream reached
//! the fence, an acknowledgement past a change that is not in the shadow yet, or a swap
//! while the shadow differs from the original.

use crate::ddl::AlterSpec;
use crate::engine::{
    ArtifactNames, ChangeStream, CompareColumns, Copier, CutOverLock, Digest, Engine, Key, KeyPart,
    Position, Scope, StreamBatch, VerifyLock, VerifyView,
};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Column, ColumnMapping, Table, UniqueKey};
use crate::target::EngineKind;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub type Rows = BTreeMap<i64, i64>;

/// Every call the core makes into the engine, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    LockRunner,
    /// Asked whether a failed swap happened.
    Swapped,
    Inspect,
    Preflight,
    Leftovers,
    Cleanup(bool),
    StartStream,
    OpenStream,
    CreateShadow,
    CheckKey,
    DropShadow,
    AfterCopy,
    BeforeCutOver,
    /// The shadow's statistics refreshed.
    Analyze,
    Copier,
    /// Rows asked for.
    NextChunk(u64),
    /// Keys replayed outside the cut-over lock.
    Flush(Vec<i64>),
    /// Cut-over attempt.
    Lock(u32),
    Fence,
    /// Keys replayed under the cut-over lock.
    LockFlush(Vec<i64>),
    Swap,
    Release,
    StatusValues,
    DropOld,
    CurrentPosition,
    Poll,
    /// Position acknowledged.
    Ack(u64),
    CloseStream,
    Close,
    /// Verification hold asked for.
    VerifyLock,
    VerifyFence,
    /// Views taken (and the hold released).
    VerifyViews,
    VerifyRelease,
    /// Keys of a range read for a repair.
    RangeKeys,
    /// A run took over what a dead run left.
    Resume,
}

/// Where a cut-over attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFault {
    /// The lock is not granted: `lock_for_cut_over` waits the timeout, then fails (as
    /// both real engines do, it leaves nothing held).
    Timeout,
    /// `fence` fails under the lock.
    Fence,
    /// The flush under the lock writes half of its keys, then fails.
    Flush,
    /// `swap` fails; nothing is swapped.
    Swap,
    /// `swap` swaps, then fails as if its answer were lost with the connection.
    SwapAnswerLost,
}

/// How the fake behaves where the real engines differ.
#[derive(Debug, Clone)]
pub struct Config {
    /// The stream reports the swap (a DDL event) as MySQL's binlog does.
    pub sees_swap: bool,
    /// PostgreSQL-style copier (`finished()` after the last chunk); else MySQL-style (an
    /// empty last chunk, then `None`).
    pub copier_reports_finished: bool,
    /// Log entries returned per poll at most.
    pub poll_limit: usize,
    /// `current_position` answers (MySQL, PostgreSQL); else `None`.
    pub knows_position: bool,
    /// Real time each chunk takes (for the adaptive chunk size).
    pub chunk_delay: Duration,
    /// (Virtual) time the after-copy steps take, while the core keeps reading the stream.
    pub after_copy_time: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sees_swap: false,
            copier_reports_finished: false,
            poll_limit: usize::MAX,
            knows_position: true,
            chunk_delay: Duration::ZERO,
            after_copy_time: Duration::ZERO,
        }
    }
}

/// One write of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeOp {
    Insert(i64, i64),
    Update(i64, i64),
    Delete(i64),
    /// An update of the key column: old key, new key.
    ChangeKey(i64, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Keys changed by one write (old and new key of a key change).
    Keys(Vec<i64>),
    /// A DDL statement on the original (the stream ends with SourceChanged).
    Ddl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockPhase {
    Locked,
    Fenced(u64),
    Flushed(u64),
    Swapped,
    Released,
}

impl LockPhase {
    fn held(self) -> bool {
        matches!(
            self,
            LockPhase::Locked | LockPhase::Fenced(_) | LockPhase::Flushed(_)
        )
    }
}

#[derive(Debug, Default)]
struct StreamState {
    /// Position returned by `start_stream`.
    from: Option<u64>,
    /// The stream's server-side artifacts exist (slot, publication).
    artifacts: bool,
    open: bool,
    closed: bool,
    /// Entries read (the position of the last one read).
    read: u64,
    acked: u64,
    ddl_seen: bool,
    /// The stream's connection was lost (a poll failed with `Unreachable`): it may be
    /// opened again.
    lost: bool,
}

#[derive(Debug, Default)]
struct CopyState {
    made: bool,
    /// Returned `None`, or `finished()` was true: no chunk may be asked for any more.
    exhausted: bool,
}

/// The in-memory database, the application's view of it, and what the core did.
pub struct World {
    /// The original table (after the swap: the old table).
    pub orig: Rows,
    /// The shadow table (after the swap: the table the application uses).
    pub shadow: Option<Rows>,
    /// The application's view: every write applied in order (to whichever table it went).
    pub truth: Rows,
    pub swapped: bool,
    pub old_dropped: bool,
    pub calls: Vec<Call>,
    /// Virtual time (`tokio::time`) of each `lock_for_cut_over` call.
    pub lock_times: Vec<tokio::time::Instant>,
    /// Copy ranges `(after, upto]` in order (`None`: from the start / to the end).
    pub chunks: Vec<(Option<i64>, Option<i64>)>,
    /// The next poll fails with this kind (once).
    pub fail_next_poll: Option<ErrorKind>,
    /// The next flush outside the lock fails (once).
    pub fail_next_flush: bool,
    /// `analyze_shadow` fails.
    pub analyze_fails: bool,
    /// The next this many `swapped` calls fail as if the server were away (a restart).
    pub swapped_unreachable: u32,
    /// Cut-over faults per attempt.
    pub lock_faults: BTreeMap<u32, LockFault>,
    /// Writes that reach the original after the final flush, just before the swap (an
    /// engine whose lock does not hold every writer).
    pub leak_at_swap: Vec<FakeOp>,
    /// `status_values` answers (0 for other names).
    pub status: HashMap<String, f64>,
    pub abort: Arc<AtomicBool>,
    pub violations: Vec<String>,
    cfg: Config,
    log: Vec<Entry>,
    stream: StreamState,
    copy: CopyState,
    /// Log position at which the shadow row of a key was last made equal to the original.
    synced_at: HashMap<i64, u64>,
    lock: Option<(u32, LockPhase)>,
    /// Writes waiting for the cut-over lock.
    queued: Vec<FakeOp>,
    inspected: bool,
    preflighted: bool,
    after_copy_done: bool,
    before_cut_over_done: bool,
    /// The verification hold is on, fenced at this position (None: not fenced yet).
    verify_hold: Option<Option<u64>>,
    /// `lock_for_verify` fails with a lock timeout this many more times.
    pub verify_lock_timeouts: u32,
    /// Sessions holding a lock on the original (`cut_over_blockers`): while one older
    /// than a minute is left, every cut-over lock times out.
    pub blockers: Vec<crate::engine::Blocker>,
    /// Sessions ended by `kill_session`, in order.
    pub killed: Vec<u64>,
    /// The saved checkpoint (the engine's checkpoint table).
    pub checkpoint: Option<String>,
    /// Checkpoints saved.
    pub saves: u32,
    /// The engine resumes (`Engine::resumable`).
    pub resumable: bool,
    /// The columns of the shadow as created.
    shadow_columns: Vec<&'static str>,
    /// A resumed run took the shadow over and has not opened its stream yet.
    resuming: bool,
}

impl World {
    fn violation(&mut self, msg: impl Into<String>) -> ! {
        let msg = format!("engine protocol: {}", msg.into());
        self.violations.push(msg.clone());
        panic!("{msg}");
    }

    pub fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
        self.calls.iter().filter(|c| f(c)).count()
    }

    pub fn called(&self, c: &Call) -> bool {
        self.calls.contains(c)
    }

    /// Index of the first call matching `f`.
    pub fn first(&self, f: impl Fn(&Call) -> bool) -> Option<usize> {
        self.calls.iter().position(f)
    }

    pub fn lock_held(&self) -> bool {
        self.lock.is_some_and(|(_, p)| p.held())
    }

    pub fn stream_artifacts(&self) -> bool {
        self.stream.artifacts
    }

    pub fn stream_closed(&self) -> bool {
        self.stream.closed
    }

    /// The current log position (as `current_position` reports it).
    pub fn head(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn insert(&mut self, k: i64, v: i64) {
        self.write(FakeOp::Insert(k, v));
    }
    pub fn update(&mut self, k: i64, v: i64) {
        self.write(FakeOp::Update(k, v));
    }
    pub fn delete(&mut self, k: i64) {
        self.write(FakeOp::Delete(k));
    }
    pub fn change_key(&mut self, old: i64, new: i64) {
        self.write(FakeOp::ChangeKey(old, new));
    }
    /// Someone else alters the original table.
    /// The process running the migration dies: its sessions, locks and memory are gone;
    /// what it made on the server (shadow, stream artifacts, checkpoint) stays.
    pub fn crash(&mut self) {
        self.stream.open = false;
        self.stream.read = self.stream.acked;
        self.copy = CopyState::default();
        self.lock = None;
        self.verify_hold = None;
        for op in std::mem::take(&mut self.queued) {
            self.apply(op, false);
        }
        self.inspected = false;
        self.preflighted = false;
        self.after_copy_done = false;
        self.before_cut_over_done = false;
    }

    pub fn ddl(&mut self) {
        self.log.push(Entry::Ddl);
    }

    /// An application write: waits while the cut-over lock is held, else applies now.
    pub fn write(&mut self, op: FakeOp) {
        if self.lock_held() || self.verify_hold.is_some() {
            self.queued.push(op);
        } else {
            self.apply(op, false);
        }
    }

    /// Apply `op` to the table the application uses (or the original, for a leak); log it
    /// when it changed the original. An op that is no longer valid is skipped.
    fn apply(&mut self, op: FakeOp, to_original: bool) {
        let to_orig = to_original || !self.swapped;
        let table = if to_orig {
            &mut self.orig
        } else {
            match self.shadow.as_mut() {
                Some(t) => t,
                None => return,
            }
        };
        let keys = match apply_to(table, op) {
            Some(keys) => keys,
            None => return,
        };
        if to_orig {
            self.log.push(Entry::Keys(keys));
        }
        apply_to(&mut self.truth, op);
    }

    fn shadow_mut(&mut self, what: &str) -> &mut Rows {
        if self.shadow.is_none() {
            self.violation(format!("{what} without a shadow table"));
        }
        self.shadow.as_mut().unwrap_or_else(|| unreachable!())
    }

    /// Make the shadow row of each key what the original holds now.
    fn replay(&mut self, keys: &[i64], what: &str) {
        let head = self.head();
        for &k in keys {
            let row = self.orig.get(&k).copied();
            let shadow = self.shadow_mut(what);
            match row {
                Some(v) => shadow.insert(k, v),
                None => shadow.remove(&k),
            };
            self.synced_at.insert(k, head);
        }
    }

    fn keys_of(&mut self, keys: &[Key], what: &str) -> Vec<i64> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            match k.as_slice() {
                [KeyPart::Int(i)] => out.push(*i),
                _ => self.violation(format!("{what}: not a key of `id`: {k:?}")),
            }
        }
        let mut sorted = out.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != out.len() {
            self.violation(format!("{what}: a key is given twice: {out:?}"));
        }
        out
    }

    fn release_lock(&mut self, phase: LockPhase) {
        if let Some((a, p)) = self.lock {
            if p.held() {
                self.lock = Some((a, phase));
                let queued = std::mem::take(&mut self.queued);
                for op in queued {
                    self.apply(op, false);
                }
            }
        }
    }

    fn lock_phase(&mut self, attempt: u32, what: &str) -> LockPhase {
        match self.lock {
            Some((a, p)) if a == attempt => p,
            _ => self.violation(format!("{what} on a lock that is not the current one")),
        }
    }
}

/// Apply `op` to `t`; the keys it changed, or None when it does not apply.
fn apply_to(t: &mut Rows, op: FakeOp) -> Option<Vec<i64>> {
    match op {
        FakeOp::Insert(k, v) => {
            if t.contains_key(&k) {
                return None;
            }
            t.insert(k, v);
            Some(vec![k])
        }
        FakeOp::Update(k, v) => {
            let r = t.get_mut(&k)?;
            *r = v;
            Some(vec![k])
        }
        FakeOp::Delete(k) => t.remove(&k).map(|_| vec![k]),
        FakeOp::ChangeKey(old, new) => {
            if old == new || t.contains_key(&new) {
                return None;
            }
            let v = t.remove(&old)?;
            t.insert(new, v);
            Some(vec![old, new])
        }
    }
}

fn key(k: i64) -> Key {
    vec![KeyPart::Int(k)]
}

type Hook = Box<dyn FnMut(&Call, &mut World) + Send>;

struct Shared {
    world: Mutex<World>,
    hook: Mutex<Option<Hook>>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `call`, run the hook, and return the world for the call to go on with.
    fn enter(&self, call: Call) -> MutexGuard<'_, World> {
        let mut w = self.world();
        w.calls.push(call.clone());
        let mut hook = self.hook.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hook.as_mut() {
            h(&call, &mut w);
        }
        w
    }
}

pub struct FakeEngine {
    s: Arc<Shared>,
    names: ArtifactNames,
}

pub const SLOT: &str = "_godwit_slot_t";

impl FakeEngine {
    /// A table `t (id int primary key, v int)` holding `rows`.
    pub fn new(rows: impl IntoIterator<Item = (i64, i64)>, cfg: Config) -> FakeEngine {
        let orig: Rows = rows.into_iter().collect();
        let world = World {
            truth: orig.clone(),
            orig,
            shadow: None,
            swapped: false,
            old_dropped: false,
            calls: Vec::new(),
            lock_times: Vec::new(),
            chunks: Vec::new(),
            fail_next_poll: None,
            fail_next_flush: false,
            analyze_fails: false,
            swapped_unreachable: 0,
            lock_faults: BTreeMap::new(),
            leak_at_swap: Vec::new(),
            status: HashMap::new(),
            abort: Arc::new(AtomicBool::new(false)),
            violations: Vec::new(),
            cfg,
            log: Vec::new(),
            stream: StreamState::default(),
            copy: CopyState::default(),
            synced_at: HashMap::new(),
            lock: None,
            queued: Vec::new(),
            inspected: false,
            preflighted: false,
            after_copy_done: false,
            before_cut_over_done: false,
            verify_hold: None,
            verify_lock_timeouts: 0,
            blockers: Vec::new(),
            killed: Vec::new(),
            checkpoint: None,
            saves: 0,
            resumable: true,
            shadow_columns: Vec::new(),
            resuming: false,
        };
        FakeEngine {
            s: Arc::new(Shared {
                world: Mutex::new(world),
                hook: Mutex::new(None),
            }),
            names: crate::engine::artifact_names("t", 1),
        }
    }

    /// `n` rows with keys `1..=n`.
    pub fn with_rows(n: i64, cfg: Config) -> FakeEngine {
        FakeEngine::new((1..=n).map(|k| (k, k * 10)), cfg)
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.s.world()
    }

    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.world().abort.clone()
    }

    /// Run `f` at the start of every engine call (also calls on the stream, copier, lock).
    pub fn on_call(&self, f: impl FnMut(&Call, &mut World) + Send + 'static) {
        *self.s.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }
}

pub fn column(name: &str, ordinal: u32) -> Column {
    Column {
        name: name.into(),
        ordinal,
        data_type: "int".into(),
        column_type: "int".into(),
        nullable: name != "id",
        generated: false,
        unsigned: false,
        charset: None,
        collation: None,
        precision: None,
        scale: None,
        length: None,
        ..Default::default()
    }
}

/// A table with an `id` primary key and the other `columns`.
pub fn table(name: &str, columns: &[&str], rows: u64) -> Table {
    Table {
        schema: "db".into(),
        name: name.into(),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, c)| column(c, i as u32 + 1))
            .collect(),
        unique_keys: vec![UniqueKey {
            name: "PRIMARY".into(),
            columns: vec!["id".into()],
            primary: true,
            all_not_null: true,
            has_prefix: false,
        }],
        row_estimate: rows,
        data_bytes: rows * 16,
        index_bytes: 0,
        ..Default::default()
    }
}

#[async_trait]
impl Engine for FakeEngine {
    fn kind(&self) -> EngineKind {
        crate::target::kind_of_scheme("mysql").expect("a known scheme")
    }
    fn names(&self) -> &ArtifactNames {
        &self.names
    }
    fn server_version(&self) -> String {
        "fake 1.0".into()
    }
    fn cut_over_algorithm(&self) -> &'static str {
        "fake lock, fence, flush, swap"
    }

    async fn inspect(&self) -> Result<Table> {
        let mut w = self.s.enter(Call::Inspect);
        w.inspected = true;
        Ok(table("t", &["id", "v"], w.orig.len() as u64))
    }

    async fn preflight(&self, _scope: Scope, orig: &Table) -> Result<()> {
        let mut w = self.s.enter(Call::Preflight);
        if !w.inspected || orig.name != "t" {
            w.violation("preflight before inspect");
        }
        w.preflighted = true;
        Ok(())
    }

    async fn lock_runner(&self) -> Result<bool> {
        drop(self.s.enter(Call::LockRunner));
        Ok(true)
    }

    async fn swapped(&self) -> Result<bool> {
        let mut w = self.s.enter(Call::Swapped);
        if w.swapped_unreachable > 0 {
            w.swapped_unreachable -= 1;
            return Err(Error::new(
                ErrorKind::Unreachable,
                "fake: the server is away",
            ));
        }
        Ok(w.swapped)
    }

    async fn leftovers(&self) -> Result<Vec<String>> {
        let w = self.s.enter(Call::Leftovers);
        let mut out = Vec::new();
        if w.shadow.is_some() && !w.swapped {
            out.push(self.names.shadow.clone());
        }
        if w.stream.artifacts {
            out.push(SLOT.to_string());
        }
        if w.swapped && !w.old_dropped {
            out.push(self.names.old.clone());
        }
        Ok(out)
    }

    async fn cleanup(&self, include_old: bool) -> Result<Vec<String>> {
        let mut w = self.s.enter(Call::Cleanup(include_old));
        if w.lock_held() {
            w.violation("cleanup while the cut-over lock is held");
        }
        let mut out = Vec::new();
        if w.shadow.is_some() && !w.swapped {
            w.shadow = None;
            out.push(self.names.shadow.clone());
        }
        if w.stream.artifacts {
            w.stream.artifacts = false;
            out.push(SLOT.to_string());
        }
        if !w.stream.open {
            // Removed with its artifacts: a new run starts a new stream.
            let closed = w.stream.closed;
            w.stream = StreamState::default();
            w.stream.closed = closed;
        }
        if w.checkpoint.take().is_some() {
            out.push("checkpoint".into());
        }
        if include_old && w.swapped && !w.old_dropped {
            w.old_dropped = true;
            out.push(self.names.old.clone());
        }
        Ok(out)
    }

    async fn cleanup_candidates(&self, include_old: bool) -> Result<Vec<String>> {
        let mut v = self.leftovers().await?;
        if !include_old {
            v.retain(|n| n != &self.names.old);
        }
        Ok(v)
    }

    async fn start_stream(&self, _orig: &Table) -> Result<Position> {
        let mut w = self.s.enter(Call::StartStream);
        if !w.preflighted {
            w.violation("start_stream before preflight");
        }
        if w.stream.from.is_some() {
            w.violation("start_stream called twice");
        }
        if w.shadow.is_some() {
            w.violation("start_stream after the shadow exists: changes before it are lost");
        }
        let head = w.head();
        w.stream.from = Some(head);
        w.stream.read = head;
        w.stream.acked = head;
        w.stream.artifacts = true;
        Ok(Position::Lsn(head))
    }

    async fn open_stream(
        &self,
        _orig: &Table,
        key_columns: &[String],
        from: &Position,
    ) -> Result<Box<dyn ChangeStream>> {
        let mut w = self.s.enter(Call::OpenStream);
        if w.stream.open && w.stream.lost && !w.stream.closed {
            // Opened again after a lost connection: from at most what was read (reading
            // again from there repeats keys, which is harmless; past it would lose some).
            let (read, acked) = (w.stream.read, w.stream.acked);
            match from {
                Position::Lsn(p) if *p <= read && *p >= acked => w.stream.read = *p,
                _ => w.violation(format!(
                    "stream reopened from {from}, read up to {read}, acked {acked}"
                )),
            }
            w.stream.lost = false;
            return Ok(Box::new(FakeStream { s: self.s.clone() }));
        }
        if std::mem::take(&mut w.resuming) {
            let Position::Lsn(p) = *from else {
                unreachable!("the fake only hands out LSNs")
            };
            // A change after what the dead run acknowledged may not be in the shadow.
            if p > w.stream.acked {
                let acked = w.stream.acked;
                w.violation(format!(
                    "resumed from {p}, past what was acknowledged ({acked})"
                ));
            }
            w.stream.read = p;
            w.stream.acked = p;
        } else {
            match w.stream.from {
                None => w.violation("open_stream before start_stream"),
                Some(f) if Position::Lsn(f) != *from => {
                    w.violation(format!("open_stream from {from}, start_stream said {f}"))
                }
                _ => {}
            }
        }
        if w.stream.open || w.stream.closed {
            w.violation("open_stream called twice");
        }
        if key_columns != ["id".to_string()] {
            w.violation(format!("stream opened on {key_columns:?}, not the key"));
        }
        w.stream.open = true;
        Ok(Box::new(FakeStream { s: self.s.clone() }))
    }

    async fn create_shadow(&self, _orig: &Table, alter: &AlterSpec) -> Result<Table> {
        let mut w = self.s.enter(Call::CreateShadow);
        if !w.preflighted {
            w.violation("create_shadow before preflight");
        }
        if w.shadow.is_some() || w.swapped {
            w.violation("create_shadow twice");
        }
        w.shadow = Some(Rows::new());
        let mut cols = vec!["id", "v"];
        if alter.clauses.contains("ADD COLUMN c") {
            cols.push("c");
        }
        w.shadow_columns = cols.clone();
        Ok(table(&self.names.shadow, &cols, 0))
    }

    fn check_key(&self, _orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        let mut w = self.s.enter(Call::CheckKey);
        if w.shadow.is_none() {
            w.violation("check_key without a shadow");
        }
        if mapping.key.source_columns != ["id".to_string()] {
            w.violation(format!("unexpected key {:?}", mapping.key));
        }
        Ok(())
    }

    async fn drop_shadow(&self) -> Result<()> {
        let mut w = self.s.enter(Call::DropShadow);
        if w.shadow.is_none() || w.swapped {
            w.violation("drop_shadow without a shadow");
        }
        w.shadow = None;
        Ok(())
    }

    async fn after_copy(&self, _orig: &Table, _mapping: &ColumnMapping) -> Result<()> {
        let time = {
            let mut w = self.s.enter(Call::AfterCopy);
            if !w.copy.exhausted {
                w.violation("after_copy before the copier finished");
            }
            if w.after_copy_done {
                w.violation("after_copy twice");
            }
            w.after_copy_done = true;
            w.cfg.after_copy_time
        };
        if !time.is_zero() {
            tokio::time::sleep(time).await;
        }
        Ok(())
    }

    async fn analyze_shadow(&self) -> Result<()> {
        let mut w = self.s.enter(Call::Analyze);
        if w.shadow.is_none() || w.swapped {
            w.violation("analyze_shadow without a shadow to analyze");
        }
        if w.analyze_fails {
            return Err(Error::new(ErrorKind::Migration, "ANALYZE failed"));
        }
        Ok(())
    }

    async fn before_cut_over(&self, _mapping: &ColumnMapping) -> Result<()> {
        let mut w = self.s.enter(Call::BeforeCutOver);
        if !w.after_copy_done {
            w.violation("before_cut_over before after_copy");
        }
        w.before_cut_over_done = true;
        Ok(())
    }

    async fn copier(
        &self,
        _orig: &Table,
        _mapping: &ColumnMapping,
        after: Option<&Key>,
    ) -> Result<Box<dyn Copier>> {
        let mut w = self.s.enter(Call::Copier);
        if !w.stream.open {
            w.violation("copier before the stream is open: changes during the copy are lost");
        }
        if w.shadow.is_none() {
            w.violation("copier without a shadow");
        }
        if w.copy.made {
            w.violation("a second copier");
        }
        w.copy.made = true;
        Ok(Box::new(FakeCopier {
            s: self.s.clone(),
            last: plain(after),
            done: false,
            reports_finished: w.cfg.copier_reports_finished,
            delay: w.cfg.chunk_delay,
        }))
    }

    async fn flush(&self, _orig: &Table, _mapping: &ColumnMapping, keys: &[Key]) -> Result<u64> {
        let mut w = self.s.world();
        let ks = w.keys_of(keys, "flush");
        drop(w);
        let mut w = self.s.enter(Call::Flush(ks.clone()));
        if w.lock_held() {
            w.violation("flush outside the lock while the cut-over lock is held (deadlock)");
        }
        if w.swapped {
            w.violation("flush after the swap");
        }
        if std::mem::take(&mut w.fail_next_flush) {
            return Err(Error::internal("fake: the flush failed"));
        }
        w.replay(&ks, "flush");
        Ok(ks.len() as u64)
    }

    async fn lock_for_cut_over(
        &self,
        _orig: &Table,
        _mapping: &ColumnMapping,
        timeout: Duration,
        attempt: u32,
    ) -> Result<Box<dyn CutOverLock>> {
        let fault = {
            let mut w = self.s.enter(Call::Lock(attempt));
            w.lock_times.push(tokio::time::Instant::now());
            if !w.before_cut_over_done {
                w.violation("lock_for_cut_over before before_cut_over");
            }
            if w.lock_held() {
                w.violation("lock_for_cut_over while a lock is held");
            }
            if w.swapped {
                w.violation("lock_for_cut_over after the swap");
            }
            if !w.stream.open {
                w.violation("lock_for_cut_over without an open stream");
            }
            let mut fault = w.lock_faults.get(&attempt).copied();
            if w.blockers.iter().any(|b| b.age_seconds > 60) {
                fault = Some(LockFault::Timeout);
            }
            if fault != Some(LockFault::Timeout) {
                w.lock = Some((attempt, LockPhase::Locked));
            }
            fault
        };
        if fault == Some(LockFault::Timeout) {
            tokio::time::sleep(timeout).await;
            return Err(Error::new(
                ErrorKind::CutOverFailed,
                "fake: Lock wait timeout exceeded (the lock was not granted)",
            ));
        }
        Ok(Box::new(FakeLock {
            s: self.s.clone(),
            attempt,
            fault,
        }))
    }

    async fn status_values(&self, names: &[String]) -> Result<Vec<f64>> {
        let w = self.s.enter(Call::StatusValues);
        Ok(names
            .iter()
            .map(|n| w.status.get(n).copied().unwrap_or(0.0))
            .collect())
    }

    async fn drop_old(&self) -> Result<()> {
        let mut w = self.s.enter(Call::DropOld);
        if !w.swapped || w.old_dropped {
            w.violation("drop_old without an old table");
        }
        w.old_dropped = true;
        Ok(())
    }

    async fn current_position(&self) -> Result<Option<Position>> {
        let w = self.s.enter(Call::CurrentPosition);
        Ok(w.cfg.knows_position.then(|| Position::Lsn(w.head())))
    }

    fn stream_sees_swap(&self) -> bool {
        self.s.world().cfg.sees_swap
    }

    async fn close(&self) -> Result<()> {
        drop(self.s.enter(Call::Close));
        Ok(())
    }

    async fn lock_for_verify(
        &self,
        _orig: &Table,
        _shadow: &Table,
        _mapping: &ColumnMapping,
        timeout: Duration,
    ) -> Result<Box<dyn VerifyLock>> {
        let timed_out = {
            let mut w = self.s.enter(Call::VerifyLock);
            if !w.after_copy_done || w.swapped || w.lock_held() || w.verify_hold.is_some() {
                w.violation(
                    "lock_for_verify before the copy ended, after the swap, or under a lock",
                );
            }
            if w.verify_lock_timeouts > 0 {
                w.verify_lock_timeouts -= 1;
                true
            } else {
                w.verify_hold = Some(None);
                false
            }
        };
        if timed_out {
            tokio::time::sleep(timeout).await;
            return Err(Error::new(
                ErrorKind::CutOverFailed,
                "fake: the verification hold was not granted",
            ));
        }
        Ok(Box::new(FakeVerifyLock { s: self.s.clone() }))
    }

    async fn verify_views(
        &self,
        _orig: &Table,
        _other: &Table,
        _mapping: &ColumnMapping,
    ) -> Result<Box<dyn VerifyView>> {
        let w = self.s.enter(Call::VerifyViews);
        Ok(Box::new(FakeView::of(&w)))
    }

    async fn range_keys(
        &self,
        _orig: &Table,
        _mapping: &ColumnMapping,
        after: Option<&Key>,
        upto: Option<&Key>,
    ) -> Result<Vec<Key>> {
        let mut w = self.s.enter(Call::RangeKeys);
        let (a, u) = (bound(&mut w, after), bound(&mut w, upto));
        let mut keys: Vec<i64> = w.orig.keys().copied().collect();
        keys.extend(w.shadow.iter().flat_map(|s| s.keys().copied()));
        keys.sort_unstable();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter(|k| in_range(*k, a, u))
            .map(key)
            .collect())
    }

    async fn inspect_other(&self, name: &str) -> Result<Table> {
        Ok(table(name, &["id", "v"], 0))
    }

    fn resumable(&self) -> bool {
        self.s.world().resumable
    }

    async fn load_checkpoint(&self) -> Result<Option<String>> {
        Ok(self.s.world().checkpoint.clone())
    }

    async fn save_checkpoint(&self, state: &str) -> Result<()> {
        let mut w = self.s.world();
        if w.shadow.is_none() || w.swapped {
            w.violation("a checkpoint saved without a shadow, or after the swap");
        }
        w.checkpoint = Some(state.to_string());
        w.saves += 1;
        Ok(())
    }

    async fn drop_checkpoint(&self) -> Result<()> {
        self.s.world().checkpoint = None;
        Ok(())
    }

    async fn swapped_as(&self, old: &str) -> Result<Option<String>> {
        let w = self.s.world();
        Ok(w.swapped.then(|| old.to_string()))
    }

    async fn cut_over_blockers(&self) -> Result<Vec<crate::engine::Blocker>> {
        Ok(self.world().blockers.clone())
    }

    async fn kill_session(&self, id: u64) -> Result<()> {
        let mut w = self.world();
        w.blockers.retain(|b| b.id != id);
        w.killed.push(id);
        Ok(())
    }

    async fn drop_old_table(&self, _name: &str) -> Result<()> {
        let mut w = self.s.enter(Call::DropOld);
        if !w.swapped || w.old_dropped {
            w.violation("drop_old_table without an old table");
        }
        w.old_dropped = true;
        Ok(())
    }

    async fn resume(
        &self,
        _orig: &Table,
        _state: &serde_json::Value,
        _from: &Position,
        _copying: bool,
    ) -> Result<Table> {
        let mut w = self.s.enter(Call::Resume);
        if w.shadow.is_none() || !w.stream.artifacts {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                "fake: the checkpoint's shadow or stream is gone",
            ));
        }
        w.resuming = true;
        let cols = w.shadow_columns.clone();
        Ok(table(&self.names.shadow, &cols, 0))
    }
}

fn bound(w: &mut World, k: Option<&Key>) -> Option<i64> {
    k.map(|k| w.keys_of(std::slice::from_ref(k), "verify range")[0])
}

fn in_range(k: i64, after: Option<i64>, upto: Option<i64>) -> bool {
    after.is_none_or(|a| k > a) && upto.is_none_or(|u| k <= u)
}

struct FakeVerifyLock {
    s: Arc<Shared>,
}

#[async_trait]
impl VerifyLock for FakeVerifyLock {
    async fn fence(&mut self) -> Result<Position> {
        let mut w = self.s.enter(Call::VerifyFence);
        let head = w.head();
        w.verify_hold = Some(Some(head));
        Ok(Position::Lsn(head))
    }

    async fn views(self: Box<Self>) -> Result<Box<dyn VerifyView>> {
        let mut w = self.s.enter(Call::VerifyViews);
        let Some(Some(fence)) = w.verify_hold else {
            w.violation("verification views without a fenced hold");
        };
        if w.stream.read < fence {
            let read = w.stream.read;
            w.violation(format!(
                "verification views before the stream reached the fence ({read} < {fence})"
            ));
        }
        let view = FakeView::of(&w);
        w.verify_hold = None;
        for op in std::mem::take(&mut w.queued) {
            w.apply(op, false);
        }
        Ok(Box::new(view))
    }

    async fn release(self: Box<Self>) -> Result<()> {
        let mut w = self.s.enter(Call::VerifyRelease);
        w.verify_hold = None;
        for op in std::mem::take(&mut w.queued) {
            w.apply(op, false);
        }
        Ok(())
    }
}

/// Snapshots of both tables.
struct FakeView {
    orig: Rows,
    shadow: Rows,
}

impl FakeView {
    fn of(w: &World) -> FakeView {
        FakeView {
            orig: w.orig.clone(),
            shadow: w.shadow.clone().unwrap_or_default(),
        }
    }
}

fn fake_digest(rows: &Rows, after: Option<i64>, upto: Option<i64>) -> Digest {
    let mut d = Digest::default();
    for (k, v) in rows.iter().filter(|(k, _)| in_range(**k, after, upto)) {
        d.rows += 1;
        let bytes = k.to_le_bytes().into_iter().chain(v.to_le_bytes());
        let h = u64::from(crate::engine::fnv32(bytes));
        d.hash ^= h | (h << 32);
    }
    d
}

fn plain(k: Option<&Key>) -> Option<i64> {
    k.map(|k| match k.as_slice() {
        [KeyPart::Int(i)] => *i,
        _ => panic!("engine protocol: verify range: not a key of `id`: {k:?}"),
    })
}

#[async_trait]
impl VerifyView for FakeView {
    async fn next_bound(&mut self, after: Option<&Key>, rows: u64) -> Result<Option<Key>> {
        let a = plain(after);
        Ok(self
            .orig
            .keys()
            .filter(|k| in_range(**k, a, None))
            .nth(rows.max(1) as usize - 1)
            .map(|k| key(*k)))
    }

    async fn digest(
        &mut self,
        after: Option<&Key>,
        upto: Option<&Key>,
        _converted: bool,
    ) -> Result<(Digest, Digest)> {
        let (a, u) = (plain(after), plain(upto));
        Ok((
            fake_digest(&self.orig, a, u),
            fake_digest(&self.shadow, a, u),
        ))
    }

    fn columns(&self) -> CompareColumns {
        CompareColumns {
            same: vec!["id".into(), "v".into()],
            ..Default::default()
        }
    }

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

struct FakeStream {
    s: Arc<Shared>,
}

#[async_trait]
impl ChangeStream for FakeStream {
    async fn poll(&mut self, wait: Duration) -> Result<StreamBatch> {
        let got = {
            let mut w = self.s.enter(Call::Poll);
            if !w.stream.open {
                w.violation("poll on a closed stream");
            }
            if let Some(kind) = w.fail_next_poll.take() {
                w.stream.lost = kind == ErrorKind::Unreachable;
                return Err(Error::new(kind, "fake: the change stream failed"));
            }
            if w.stream.ddl_seen {
                return Err(ddl_error());
            }
            let start = w.stream.read as usize;
            let mut keys = Vec::new();
            let mut read = start;
            while read < w.log.len() && read - start < w.cfg.poll_limit {
                match &w.log[read] {
                    Entry::Keys(ks) => keys.extend(ks.iter().map(|&k| key(k))),
                    Entry::Ddl => {
                        if read == start {
                            // Keys read before the DDL go out first; the error comes next.
                            w.stream.ddl_seen = true;
                            w.stream.read = read as u64 + 1;
                            return Err(ddl_error());
                        }
                        break;
                    }
                }
                read += 1;
            }
            w.stream.read = read as u64;
            (read > start).then_some(StreamBatch {
                keys,
                position: Some(Position::Lsn(read as u64)),
                lag: Some(Duration::ZERO),
            })
        };
        match got {
            Some(b) => Ok(b),
            None => {
                // Nothing new: wait as a real stream would (virtual time in tests).
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(StreamBatch::default())
            }
        }
    }

    async fn ack(&mut self, position: &Position) -> Result<()> {
        let Position::Lsn(p) = *position else {
            unreachable!("the fake only hands out LSNs")
        };
        let mut w = self.s.enter(Call::Ack(p));
        let read = w.stream.read;
        if p > read {
            w.violation(format!("ack({p}) past what was read ({read})"));
        }
        // A resumable run reads again from its checkpoint: the stream must keep what
        // follows it (a PostgreSQL slot is never advanced past it).
        if w.resumable {
            let saved = w
                .checkpoint
                .as_deref()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                .and_then(|v| v["position"].as_u64());
            if saved.is_none_or(|s| p > s) {
                w.violation(format!("ack({p}) past the saved checkpoint ({saved:?})"));
            }
        }
        // Every change up to `p` must be in the shadow by now: an acknowledged change is
        // never delivered again.
        for pos in w.stream.acked..p {
            if let Entry::Keys(ks) = w.log[pos as usize].clone() {
                for k in ks {
                    if w.synced_at.get(&k).is_none_or(|&s| s < pos + 1) {
                        w.violation(format!(
                            "ack({p}) before the change of key {k} at {} was applied",
                            pos + 1
                        ));
                    }
                }
            }
        }
        w.stream.acked = w.stream.acked.max(p);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let mut w = self.s.enter(Call::CloseStream);
        if w.lock_held() {
            w.violation("stream closed while the cut-over lock is held");
        }
        w.stream.open = false;
        w.stream.closed = true;
        w.stream.artifacts = false;
        Ok(())
    }
}

fn ddl_error() -> Error {
    Error::new(
        ErrorKind::SourceChanged,
        "fake: a DDL statement changed `t` during the migration",
    )
}

struct FakeCopier {
    s: Arc<Shared>,
    last: Option<i64>,
    done: bool,
    reports_finished: bool,
    delay: Duration,
}

#[async_trait]
impl Copier for FakeCopier {
    async fn next_chunk(&mut self, rows: u64) -> Result<Option<u64>> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let mut w = self.s.enter(Call::NextChunk(rows));
        if w.copy.exhausted {
            w.violation("next_chunk after the copier said it was done");
        }
        if w.after_copy_done {
            w.violation("next_chunk after after_copy");
        }
        if self.done {
            w.copy.exhausted = true;
            return Ok(None);
        }
        // The chunk ends at the key `rows - 1` after the last one (MySQL's copier).
        let after = self.last;
        let lower = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let end = w
            .orig
            .range((lower, std::ops::Bound::Unbounded))
            .nth(rows.max(1) as usize - 1)
            .map(|(k, _)| *k);
        let upper = end.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
        let range: Vec<(i64, i64)> = w
            .orig
            .range((lower, upper))
            .map(|(k, v)| (*k, *v))
            .collect();
        let head = w.head();
        let mut n = 0;
        for (k, v) in range {
            n += 1;
            // INSERT IGNORE: a row replay wrote first is newer than this one.
            let shadow = w.shadow_mut("next_chunk");
            if let std::collections::btree_map::Entry::Vacant(e) = shadow.entry(k) {
                e.insert(v);
                w.synced_at.insert(k, head);
            }
        }
        w.chunks.push((after, end));
        match end {
            Some(k) => self.last = Some(k),
            None => self.done = true,
        }
        if self.done && self.reports_finished {
            w.copy.exhausted = true;
        }
        Ok(Some(n))
    }

    fn finished(&self) -> bool {
        self.reports_finished && self.done
    }

    fn copied_upto(&self) -> Option<Key> {
        self.last.map(key)
    }
}

struct FakeLock {
    s: Arc<Shared>,
    attempt: u32,
    fault: Option<LockFault>,
}

fn lock_error(what: &str) -> Error {
    Error::internal(format!(
        "fake: {what} failed: the server closed the connection"
    ))
}

#[async_trait]
impl CutOverLock for FakeLock {
    async fn fence(&mut self) -> Result<Position> {
        let mut w = self.s.enter(Call::Fence);
        if w.lock_phase(self.attempt, "fence") != LockPhase::Locked {
            w.violation("fence twice, or after the lock ended");
        }
        if self.fault == Some(LockFault::Fence) {
            return Err(lock_error("the fence"));
        }
        let head = w.head();
        w.lock = Some((self.attempt, LockPhase::Fenced(head)));
        Ok(Position::Lsn(head))
    }

    async fn flush(&mut self, keys: &[Key]) -> Result<u64> {
        let mut w = self.s.world();
        let ks = w.keys_of(keys, "flush under the lock");
        drop(w);
        let mut w = self.s.enter(Call::LockFlush(ks.clone()));
        let fence = match w.lock_phase(self.attempt, "flush under the lock") {
            LockPhase::Fenced(f) => f,
            p => w.violation(format!(
                "flush under the lock in phase {p:?}, not after the fence"
            )),
        };
        let read = w.stream.read;
        if read < fence {
            w.violation(format!(
                "final flush before the stream reached the fence ({read} < {fence})"
            ));
        }
        if self.fault == Some(LockFault::Flush) {
            let half = ks.len() / 2;
            w.replay(&ks[..half], "flush under the lock");
            return Err(lock_error("the flush under the lock"));
        }
        w.replay(&ks, "flush under the lock");
        w.lock = Some((self.attempt, LockPhase::Flushed(fence)));
        Ok(ks.len() as u64)
    }

    async fn swap(&mut self) -> Result<()> {
        let mut w = self.s.enter(Call::Swap);
        match w.lock_phase(self.attempt, "swap") {
            LockPhase::Flushed(_) => {}
            p => w.violation(format!("swap in phase {p:?}, not after fence and flush")),
        }
        if self.fault == Some(LockFault::Swap) {
            return Err(lock_error("the swap"));
        }
        if w.shadow.as_ref() != Some(&w.orig) {
            let diff = diff(&w.orig, w.shadow.as_ref().unwrap_or(&Rows::new()));
            w.violation(format!(
                "swap while the shadow differs from the original: {diff}"
            ));
        }
        for op in std::mem::take(&mut w.leak_at_swap) {
            w.apply(op, true);
        }
        w.swapped = true;
        if w.cfg.sees_swap {
            w.log.push(Entry::Ddl);
        }
        w.release_lock(LockPhase::Swapped);
        if self.fault == Some(LockFault::SwapAnswerLost) {
            return Err(Error::new(
                ErrorKind::Unreachable,
                "the swap's answer was lost with the connection",
            ));
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<()> {
        let mut w = self.s.enter(Call::Release);
        match w.lock_phase(self.attempt, "release") {
            LockPhase::Swapped => w.violation("release after a successful swap"),
            LockPhase::Released => {}
            _ => w.release_lock(LockPhase::Released),
        }
        Ok(())
    }
}

impl Drop for FakeLock {
    fn drop(&mut self) {
        let mut w = self.s.world();
        if matches!(w.lock, Some((a, p)) if a == self.attempt && p.held()) {
            w.violations
                .push("engine protocol: cut-over lock dropped without swap or release".into());
            w.release_lock(LockPhase::Released);
        }
    }
}

/// The first differences between two tables, for messages.
pub fn diff(a: &Rows, b: &Rows) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{k} missing")),
            Some(w) if w != v => out.push(format!("{k}: {v} vs {w}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("{k} extra"));
        }
    }
    let n = out.len();
    out.truncate(10);
    format!("{n} difference(s): {}", out.join(", "))
}
