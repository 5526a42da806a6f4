//! The engine-neutral online migration (docs/architecture.md, "The online state machine"):
//! preflight, prepare, copy with key-based replay, catch-up, postponable cut-over with
//! retries, cleanup.
//!
//! Copy chunks and replay flushes run one after the other on this task, never at the same
//! time: a dirty key is therefore never replayed while a chunk that covers it is in flight,
//! which closes the copy/replay race without locking reads in the copy.

pub mod checkpoint;
pub mod dirty;
#[cfg(test)]
mod fake;
mod moved;
pub mod revert;
#[cfg(test)]
mod tests;
pub mod verify;

use crate::control::{eta::Eta, Control};
use crate::ddl::AlterSpec;
use crate::engine::{Blocker, ChangeStream, Copier, Engine, Key, Position, Scope};
use crate::error::{Error, ErrorKind, Result};
use crate::hooks::{HookContext, Hooks, Point};
use crate::progress::{Done, Reporter, Snapshot, State};
use crate::schema::{ColumnMapping, Table};
use crate::throttle::Throttle;
use checkpoint::{Checkpoint, ResumeMode, Stage};
use dirty::DirtySet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub alter: AlterSpec,
    pub execute: bool,
    pub chunk_time: Duration,
    pub chunk_size: u64,
    pub cut_over_timeout: Duration,
    pub cut_over_retries: u32,
    pub postpone_flag_file: Option<PathBuf>,
    pub ok_to_drop_table: bool,
    /// Compare the tables before the cut-over (off with --skip-verify).
    pub verify: bool,
    /// Refresh the shadow's planner statistics before the cut-over (off with
    /// --skip-analyze).
    pub analyze: bool,
    /// What to do with the checkpoint of a run that died.
    pub resume: ResumeMode,
    /// Test seam: wait this long right after the swap, before the cleanup steps.
    pub after_swap_hold: Option<Duration>,
    /// Reconnecting the change stream after a connection loss.
    pub reconnect: crate::engine::retry::Reconnect,
    /// `--revert-window`: after the swap, keep replaying the new table's changes into
    /// the old table this long, so that `godwit revert` can swap back.
    pub revert_window: Option<Duration>,
    /// This run is `godwit revert`: the reverse direction of an open window, resumed
    /// from its checkpoint.
    pub revert: bool,
}

/// Where the swap stands: what a failure may say about the original table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swap {
    /// Not swapped: the original is unchanged.
    NotYet,
    /// The server stopped answering during the swap: it may or may not have happened.
    Unknown,
    /// Swapped: the migration succeeded, whatever fails afterwards.
    Done,
}

/// What a dry run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub table: String,
    pub server: String,
    pub mapping: ColumnMapping,
    pub row_estimate: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
    pub shadow_table: String,
    pub old_table: String,
    pub cut_over: String,
}

pub enum Outcome {
    DryRun(Box<DryRun>),
    Done(Box<Done>),
    /// The migration was done (and reported), then its revert window ended (reported).
    WindowEnded,
}

/// What to do with the sessions that block the cut-over's lock (docs/how-it-works.md,
/// "Blocked cut-overs"). Whatever it says, each failed attempt reports them.
#[derive(Debug, Clone, Default)]
pub struct BlockerPolicy {
    /// `--kill-blockers`: end them.
    pub kill: bool,
    /// `--force-cut-over-after`: only once this long has passed since the first attempt.
    pub after: Duration,
}

/// Flush the dirty set once it holds this many keys, or after [`FLUSH_INTERVAL`].
const FLUSH_KEYS: usize = 2_000;
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Catch-up ends when a flush round has fewer keys than this.
const CATCH_UP_KEYS: usize = 1_000;

pub struct Migration<'a> {
    engine: &'a dyn Engine,
    opts: RunOptions,
    throttle: Throttle,
    rep: &'a mut Reporter,
    abort: Arc<AtomicBool>,
    orig: Option<Table>,
    mapping: Option<ColumnMapping>,
    stream: Option<Box<dyn ChangeStream>>,
    dirty: DirtySet,
    position: Option<Position>,
    lag: Option<Duration>,
    rows_copied: u64,
    keys_replayed: u64,
    chunk: u64,
    copy_started: Option<Instant>,
    last_flush: Instant,
    created: bool,
    swap: Swap,
    /// The stream position up to which every change is in the shadow.
    acked: Option<Position>,
    stage: Stage,
    copied_upto: Option<Key>,
    last_save: Option<Instant>,
    save_failed: bool,
    /// When the runner lock was last checked (`keep_table`).
    last_lock_check: Option<Instant>,
    /// The stage and time of the last `checkpoint` event.
    last_said: Option<(Stage, Instant)>,
    /// The runner lock went to another run (ours was lost with its session).
    table_lost: bool,
    /// Opens the engine of the reverse direction (the revert window).
    reverse: Option<revert::Connector>,
    /// The revert window this run keeps (saved with the checkpoint).
    window: Option<checkpoint::RevertWindow>,
    /// Where the change stream saw the swap (the revert window starts there).
    swap_position: Option<Position>,
    /// In the revert window: the migration itself succeeded.
    in_window: bool,
    /// The position of the last checkpoint saved; the stream is acknowledged no further
    /// (the next run resumes from it: what comes after must still be there to read).
    saved: Option<Position>,
    /// The last save failed: the stream follows `acked` (this run could not resume).
    unsaved: bool,
    /// The control socket's knobs and status (a private one without a socket).
    control: Arc<Control>,
    /// The copy's rate and ETA over its recent unthrottled time.
    eta: Eta,
    /// The chunk size last set through the control socket (also the chunk's cap).
    chunk_set: Option<u64>,
    /// `--hooks-path`: executables run at points of the run (`src/hooks`).
    hooks: Option<Arc<Hooks>>,
    /// Ending the sessions that block the cut-over.
    blocker_policy: BlockerPolicy,
    /// When the run started (the hooks' elapsed time).
    began: Instant,
    /// `on-begin-postponed` has run.
    postponed_once: bool,
}

/// Save the checkpoint at least this often outside the copy (which saves per chunk).
const SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// Report a saved checkpoint (`checkpoint` event) at most this often within one stage.
const CHECKPOINT_EVENT_INTERVAL: Duration = Duration::from_secs(10);

impl<'a> Migration<'a> {
    pub fn new(
        engine: &'a dyn Engine,
        opts: RunOptions,
        throttle: Throttle,
        rep: &'a mut Reporter,
        abort: Arc<AtomicBool>,
    ) -> Self {
        let chunk = opts.chunk_size.max(1);
        Migration {
            engine,
            opts,
            throttle,
            rep,
            abort,
            orig: None,
            mapping: None,
            stream: None,
            dirty: DirtySet::default(),
            position: None,
            lag: None,
            rows_copied: 0,
            keys_replayed: 0,
            chunk,
            copy_started: None,
            last_flush: Instant::now(),
            created: false,
            swap: Swap::NotYet,
            acked: None,
            stage: Stage::Copy,
            copied_upto: None,
            last_save: None,
            save_failed: false,
            last_lock_check: None,
            last_said: None,
            table_lost: false,
            reverse: None,
            window: None,
            swap_position: None,
            in_window: false,
            saved: None,
            unsaved: false,
            control: Arc::new(Control::default()),
            eta: Eta::default(),
            chunk_set: None,
            hooks: None,
            blocker_policy: BlockerPolicy::default(),
            began: Instant::now(),
            postponed_once: false,
        }
    }

    /// Take the knobs from (and report the status to) the control socket's `Control`.
    pub fn with_control(mut self, control: Arc<Control>) -> Self {
        self.control = control;
        self
    }

    /// Run the hooks of `--hooks-path` at the points of this run.
    pub fn with_hooks(mut self, hooks: Option<Arc<Hooks>>) -> Self {
        self.hooks = hooks;
        self
    }

    /// End the sessions that block the cut-over (`--kill-blockers`).
    pub fn with_blocker_policy(mut self, policy: BlockerPolicy) -> Self {
        self.blocker_policy = policy;
        self
    }

    /// How to open the engine of the reverse direction (needed by `--revert-window`).
    pub fn with_reverse(mut self, connect: revert::Connector) -> Self {
        self.reverse = Some(connect);
        self
    }

    /// Run the migration. On any error before the swap, every artifact is removed (or,
    /// when the server is gone, left for the next run or `godwit cleanup`) and the
    /// original is untouched. A failure after the swap is not an error: the outcome is
    /// `Done` with `cleanup_complete: false` (docs/how-it-works.md, "After the swap").
    pub async fn run(mut self) -> Result<Outcome> {
        self.rep
            .state(State::Preflight, "checking server, privileges and table");
        self.hook(Point::Startup).await;
        let r = self.run_inner().await;
        self.end_hook(&r).await;
        // The server gone: what this run made stays, with its checkpoint, for the same
        // command to resume (or `godwit cleanup` to remove).
        let resumable = matches!(&r, Err(e) if e.kind == ErrorKind::Unreachable)
            && self.engine.resumable()
            && self.created
            && self.swap == Swap::NotYet;
        if r.is_err() && self.created && !resumable {
            self.rep
                .state(State::Cleanup, "removing what this run created");
            if let Some(s) = self.stream.as_mut() {
                let _ = s.close().await;
            }
            if let Err(e) = self.engine.cleanup(false).await {
                tracing::error!(
                    "cleanup after failure failed: {e}; the next godwit run on this table removes what is left, or run `godwit cleanup`"
                );
            }
        }
        if r.is_err() && (self.in_window || self.opts.revert) {
            self.rep.state(
                State::Failed,
                if self.in_window {
                    "the migration succeeded (the new schema is live), but the revert window closed (see the error)"
                } else {
                    "the revert did not finish (see the error)"
                },
            );
            return r;
        }
        if r.is_err() {
            let msg = match self.swap {
                Swap::NotYet if resumable => "migration stopped: the server went away; the original table is unchanged. Run the same command again to resume where it stopped",
                Swap::NotYet => "migration failed; the original table is unchanged",
                Swap::Unknown => "migration failed during the swap: whether the tables were swapped cannot be told until the server answers again",
                Swap::Done => "the tables were swapped, but the migration did not end cleanly (see the error)",
            };
            self.rep.state(State::Failed, msg);
        }
        r
    }

    fn check_abort(&self) -> Result<()> {
        if self.control.panicked() {
            return Err(Error::new(
                ErrorKind::Aborted,
                "stopped by `panic` on the control socket before the cut-over; the original table is unchanged",
            ));
        }
        if self.table_lost {
            return Err(Error::new(
                ErrorKind::Leftovers,
                "this run lost the table's runner lock with the session that held it (the server restarted?) and another godwit run holds it now; this run stops and leaves the shadow to that run",
            )
            .with_hint("watch the other run; the original table is unchanged"));
        }
        if self.abort.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Aborted,
                "stopped by signal before the cut-over; the original table is unchanged",
            ));
        }
        Ok(())
    }

    fn orig(&self) -> Result<&Table> {
        self.orig
            .as_ref()
            .ok_or_else(|| Error::internal("original not inspected"))
    }
    fn mapping(&self) -> Result<&ColumnMapping> {
        self.mapping
            .as_ref()
            .ok_or_else(|| Error::internal("no column mapping"))
    }

    async fn run_inner(&mut self) -> Result<Outcome> {
        let started = Instant::now();
        self.rep
            .state(State::Preflight, "checking server, privileges and table");
        let engine = self.engine;
        self.throttle
            .validate(|names| async move { engine.status_values(&names).await })
            .await?;
        if (self.opts.revert_window.is_some() || self.opts.revert) && !self.engine.revertable() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a revert window is not available on this server",
            )
            .with_hint("run without --revert-window; nothing was changed"));
        }
        let resume = if self.opts.revert {
            Some(self.take_window().await?)
        } else {
            self.take_table().await?
        };
        let orig = self.engine.inspect().await?;
        let scope = if resume.is_some() {
            Scope::Resume
        } else {
            Scope::Preflight
        };
        self.engine.preflight(scope, &orig).await?;
        self.start_warnings(scope).await;
        self.orig = Some(orig.clone());
        let names = self.engine.names().clone();
        self.control.update(|s| {
            s.table = Some(orig.name.clone());
            s.shadow_table = Some(names.shadow.clone());
            s.old_table = Some(names.old.clone());
        });
        self.hook(Point::Validated).await;
        self.hook(Point::RowcountComplete).await;
        if let Some(cp) = resume {
            return self.resume_run(started, orig, cp).await;
        }
        self.rep.state(State::Prepare, "creating the shadow table");
        if !self.opts.execute {
            self.created = true;
            let shadow = self.engine.create_shadow(&orig, &self.opts.alter).await?;
            let mapping = ColumnMapping::build(
                &orig,
                &shadow,
                &self.opts.alter.renames,
                &self.opts.alter.new_columns,
            )?;
            self.engine.check_key(&orig, &mapping)?;
            if self.opts.revert_window.is_some() {
                self.check_reversible(&orig, &shadow).await?;
            }
            self.engine.drop_shadow().await?;
            self.created = false;
            let names = self.engine.names();
            return Ok(Outcome::DryRun(Box::new(DryRun {
                table: orig.name.clone(),
                server: self.engine.server_version(),
                mapping,
                row_estimate: orig.row_estimate,
                data_bytes: orig.data_bytes,
                index_bytes: orig.index_bytes,
                shadow_table: names.shadow.clone(),
                old_table: names.old.clone(),
                cut_over: self.engine.cut_over_algorithm().to_string(),
            })));
        }
        self.created = true;
        let from = self.engine.start_stream(&orig).await?;
        let shadow = self.engine.create_shadow(&orig, &self.opts.alter).await?;
        let mapping = self.open(&orig, &shadow, &from).await?;
        self.save_checkpoint(true).await;
        self.copy_phase(&orig, &mapping).await?;
        self.finish(started, orig, shadow, mapping).await
    }

    /// The engine's warnings at the start: a WARN line and a `warning` event each.
    async fn start_warnings(&mut self, scope: Scope) {
        match self.engine.start_warnings(scope).await {
            Ok(found) => {
                for w in found {
                    tracing::warn!("{}", w.message);
                    let mut body = serde_json::json!({ "message": w.message });
                    if let (Some(b), serde_json::Value::Object(d)) =
                        (body.as_object_mut(), w.details)
                    {
                        b.extend(d);
                    }
                    self.rep.emit("warning", body);
                }
            }
            Err(e) => tracing::debug!("could not look for things to warn about: {e}"),
        }
    }

    /// Continue the run a checkpoint describes.
    async fn resume_run(
        &mut self,
        started: Instant,
        orig: Table,
        mut cp: Checkpoint,
    ) -> Result<Outcome> {
        self.rep
            .state(State::Prepare, "resuming from the checkpoint");
        if cp.stage == Stage::CutOver {
            match self.engine.swapped_as(&cp.old).await? {
                Some(old) => return self.finish_swapped(started, orig, cp, old).await,
                None => cp.stage = Stage::Copied,
            }
        }
        if self.opts.revert {
            self.window = cp.revert.clone();
        }
        let copying = cp.stage == Stage::Copy;
        // Refused (exit 37: the stream or the shadow is gone): the checkpoint and what it
        // kept stay as they are, for --restart to discard.
        let shadow = self
            .engine
            .resume(&orig, &cp.engine, &cp.position, copying)
            .await?;
        // A revert's shadow is the old table the swap kept: never removed on failure.
        self.created = !self.opts.revert;
        self.rows_copied = cp.rows_copied;
        self.keys_replayed = cp.keys_replayed;
        self.copied_upto = cp.copied_upto.clone();
        self.stage = cp.stage;
        let mapping = self.open(&orig, &shadow, &cp.position).await?;
        tracing::info!(
            position = %cp.position,
            copied_upto = ?cp.copied_upto,
            rows_copied = cp.rows_copied,
            "resuming: the shadow and the change stream are taken over from the checkpoint"
        );
        self.rep.emit(
            "resume",
            serde_json::json!({
                "stage": cp.stage, "position": cp.position, "copied_upto": cp.copied_upto,
                "rows_copied": cp.rows_copied, "saved_at_ms": cp.saved_at_ms,
            }),
        );
        if copying {
            self.copy_phase(&orig, &mapping).await?;
        }
        self.finish(started, orig, shadow, mapping).await
    }

    /// The dead run swapped the tables and died before its cleanup: the migration
    /// succeeded; finish the cleanup.
    async fn finish_swapped(
        &mut self,
        started: Instant,
        orig: Table,
        cp: Checkpoint,
        old: String,
    ) -> Result<Outcome> {
        self.swap = Swap::Done;
        self.rep.state(
            State::Cleanup,
            "the earlier run had swapped the tables: the migration succeeded; cleaning up",
        );
        self.rep.emit(
            "resume",
            serde_json::json!({ "stage": cp.stage, "swapped": true, "old_table": old }),
        );
        let mut leftovers = Vec::new();
        let mut cleanup_error = None;
        let mut dropped = false;
        if self.opts.ok_to_drop_table {
            match self.engine.drop_old_table(&old).await {
                Ok(()) => dropped = true,
                Err(e) => {
                    leftovers.push(format!("table {old}"));
                    cleanup_error = Some(format!("dropping the old table: {e}"));
                }
            }
        }
        // What the dead run's stream and copy kept on the server (it died before
        // closing them); the shadow is the table now, under the original's name.
        match self.engine.cleanup(false).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!("removed what the earlier run left: {}", gone.join(", "))
            }
            Ok(_) => {}
            Err(e) => {
                leftovers.extend(self.engine.stream_artifacts());
                cleanup_error.get_or_insert(format!("removing the earlier run's objects: {e}"));
            }
        }
        if let Err(e) = self.engine.drop_checkpoint().await {
            leftovers.push("checkpoint".into());
            cleanup_error.get_or_insert(format!("removing the checkpoint: {e}"));
        }
        Ok(Outcome::Done(Box::new(Done {
            table: orig.name.clone(),
            old_table: old,
            new_table: orig.name.clone(),
            old_table_dropped: dropped,
            rows_copied: cp.rows_copied,
            keys_replayed: cp.keys_replayed,
            cut_over_ms: 0,
            cut_over_attempts: 0,
            elapsed_ms: started.elapsed().as_millis() as u64,
            cleanup_complete: cleanup_error.is_none(),
            leftovers,
            cleanup_error,
            verify: None,
        })))
    }

    /// Build the mapping, check the key, open the stream at `from`.
    async fn open(
        &mut self,
        orig: &Table,
        shadow: &Table,
        from: &Position,
    ) -> Result<ColumnMapping> {
        let mapping = ColumnMapping::build(
            orig,
            shadow,
            &self.opts.alter.renames,
            &self.opts.alter.new_columns,
        )?;
        self.engine.check_key(orig, &mapping)?;
        if self.opts.revert_window.is_some() {
            self.check_reversible(orig, shadow).await?;
        }
        self.stream = Some(
            self.engine
                .open_stream(orig, &mapping.key.source_columns, from)
                .await?,
        );
        self.position = Some(from.clone());
        self.acked = Some(from.clone());
        self.mapping = Some(mapping.clone());
        tracing::info!(key = ?mapping.key.source_columns, "migration key");
        Ok(mapping)
    }

    /// Copy (from the checkpoint's key when resuming), then the engine's after-copy steps.
    async fn copy_phase(&mut self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        self.rep
            .state(State::Copy, "copying rows and replaying changes");
        self.hook(Point::BeforeRowCopy).await;
        let mut copier = self
            .engine
            .copier(orig, mapping, self.copied_upto.as_ref())
            .await?;
        self.copy(copier.as_mut()).await?;
        drop(copier);
        // Every change made during the copy goes to the replay before the engine's
        // after-copy steps: a row copied and moved ahead since is in the shadow twice
        // until its key is replayed, and a UNIQUE index built before that would refuse
        // it (docs/architecture.md, "Key-based replay and its races", 8).
        self.catch_up_to_server().await?;
        self.flush().await?;
        self.after_copy(orig, mapping).await?;
        self.stage = Stage::Copied;
        self.save_checkpoint(true).await;
        self.hook(Point::RowCopyComplete).await;
        Ok(())
    }

    /// Catch up, verify, cut over, clean up.
    async fn finish(
        &mut self,
        started: Instant,
        orig: Table,
        shadow: Table,
        mapping: ColumnMapping,
    ) -> Result<Outcome> {
        let msg = if self.opts.revert {
            "replaying the changes since the revert window's last checkpoint"
        } else {
            "replaying changes made during the copy"
        };
        self.rep.state(State::CatchUp, msg);
        self.catch_up().await?;
        self.engine.before_cut_over(&mapping).await?;
        let verified = if self.opts.verify {
            Some(self.verify(&shadow).await?)
        } else {
            tracing::info!("verification skipped (--skip-verify)");
            None
        };
        if self.opts.analyze {
            self.analyze_shadow().await;
        }
        self.postpone().await?;
        let (cut_over_ms, attempts) = self.cut_over().await?;

        self.swap = Swap::Done;
        self.created = false;
        self.rep.state(
            State::Cleanup,
            "tables swapped: the migration succeeded; cleaning up",
        );
        if let Some(h) = self.opts.after_swap_hold {
            tokio::time::sleep(h).await;
        }
        let leaked = self.writes_after_final_flush().await;
        let mut leftovers = Vec::new();
        let mut cleanup_error = None;
        if let Some(s) = self.stream.as_mut() {
            if let Err(e) = s.close().await {
                leftovers.extend(self.engine.stream_artifacts());
                cleanup_error.get_or_insert(format!("closing the change stream: {e}"));
            }
        }
        let names = self.engine.names().clone();
        if !leaked.is_empty() {
            return Err(Error::new(
                ErrorKind::DataError,
                format!(
                    "the tables were swapped, but {} write(s) reached the old table {} after the final flush (keys {:?}); they are missing from the new table. The old table was kept.",
                    leaked.len(),
                    names.old,
                    leaked.iter().take(20).collect::<Vec<_>>()
                ),
            )
            .with_hint("copy those rows from the old table by key; please report this with the server version"));
        }
        let windowed = self.opts.revert_window.is_some();
        let mut dropped = false;
        if self.opts.ok_to_drop_table && !windowed {
            match self.engine.drop_old().await {
                Ok(()) => dropped = true,
                Err(e) => {
                    leftovers.push(format!("table {}", names.old));
                    cleanup_error.get_or_insert(format!("dropping the old table: {e}"));
                }
            }
        }
        // With a revert window the checkpoint becomes the window's.
        if !windowed {
            if let Err(e) = self.engine.drop_checkpoint().await {
                leftovers.push("checkpoint".into());
                cleanup_error.get_or_insert(format!("removing the checkpoint: {e}"));
            }
        }
        if let Some(e) = &cleanup_error {
            tracing::error!("the migration succeeded, but its cleanup did not: {e}");
        }
        let done = Done {
            table: orig.name.clone(),
            old_table: names.old,
            new_table: orig.name.clone(),
            old_table_dropped: dropped,
            rows_copied: self.rows_copied,
            keys_replayed: self.keys_replayed,
            cut_over_ms,
            cut_over_attempts: attempts,
            elapsed_ms: started.elapsed().as_millis() as u64,
            cleanup_complete: cleanup_error.is_none(),
            leftovers,
            cleanup_error,
            verify: verified,
        };
        if windowed && done.cleanup_complete {
            self.rep.done(&done);
            return self.revert_window(done).await;
        }
        Ok(Outcome::Done(Box::new(done)))
    }

    /// Take the table's runner lock; with it held, objects of godwit's for this table are
    /// left over from a run that is gone, and are removed here (said in the log and as a
    /// `stale_leftovers_removed` event).
    async fn take_table(&mut self) -> Result<Option<Checkpoint>> {
        if !crate::engine::take_runner_lock(self.engine).await? {
            return Err(Error::new(
                ErrorKind::Leftovers,
                "another godwit run is migrating this table right now (it holds the table's runner lock)",
            )
            .with_hint("wait for it to finish, or stop it; nothing was changed"));
        }
        if let Some(cp) = self.checkpoint_to_resume().await? {
            return Ok(Some(cp));
        }
        let stale = self.engine.leftovers().await?;
        if !stale.is_empty() {
            tracing::warn!(
                "removing objects of an earlier godwit run on this table that is no longer running: {}",
                stale.join(", ")
            );
            self.rep.emit(
                "stale_leftovers_removed",
                serde_json::json!({ "objects": stale }),
            );
            self.engine.cleanup(false).await?;
        }
        Ok(None)
    }

    /// The checkpoint of a dead run to resume, per `--resume` / `--restart`; a checkpoint
    /// of another change is refused (nothing touched).
    async fn checkpoint_to_resume(&mut self) -> Result<Option<Checkpoint>> {
        let saved = self.engine.load_checkpoint().await?;
        let mode = self.opts.resume;
        let Some(text) = saved else {
            if mode == ResumeMode::Require {
                return Err(Error::new(
                    ErrorKind::Checkpoint,
                    "--resume: there is no checkpoint of an earlier run of this table",
                )
                .with_hint("run without --resume to start the migration; nothing was changed"));
            }
            return Ok(None);
        };
        if mode == ResumeMode::Restart {
            tracing::warn!(
                "--restart: discarding the checkpoint of an earlier run and what it kept"
            );
            self.engine.cleanup(false).await?;
            self.engine.drop_checkpoint().await?;
            return Ok(None);
        }
        let cp: Option<Checkpoint> = serde_json::from_str(&text).ok();
        let Some(cp) = cp.filter(|c| c.version == checkpoint::VERSION) else {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                "an earlier run of this table left a checkpoint this version of godwit cannot read",
            )
            .with_hint(
                "run again with --restart to discard it and start over; nothing was changed",
            ));
        };
        if let Some(w) = &cp.revert {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                format!(
                    "a revert window is open on this table until {} (after the change: {})",
                    checkpoint::utc(w.until_ms),
                    cp.alter
                ),
            )
            .with_hint("run `godwit revert` to swap back, or close the window with `godwit cleanup --execute` (or run this with --restart); nothing was changed"));
        }
        if !self.opts.execute {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                format!(
                    "an earlier run of this table stopped during its {} and left a checkpoint (change: {}); a dry run would disturb it",
                    if cp.stage == Stage::Copy { "copy" } else { "catch-up" },
                    cp.alter
                ),
            )
            .with_hint("run the same command with --execute to resume it, or with --restart --execute to discard it; nothing was changed"));
        }
        let id = checkpoint::change_id(&cp.table, &self.opts.alter);
        if cp.change_id != id {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                format!(
                    "an earlier run of this table left a checkpoint of another change ({}); this run's change differs",
                    cp.alter
                ),
            )
            .with_hint("run that change again to resume it, or run this one with --restart to discard the checkpoint and start over; nothing was changed"));
        }
        Ok(Some(cp))
    }

    /// Save the checkpoint: `force`, or when the last save is older than SAVE_INTERVAL.
    /// A failed save is logged (once) and the run goes on: it only loses resumability.
    /// Every few seconds: make sure this run still holds the table's runner lock (the
    /// session holding it can be lost with a server restart; the engine takes it again).
    /// When another run got it meanwhile, this run must stop without removing anything:
    /// that run may be resuming this run's shadow.
    async fn keep_table(&mut self) {
        if self
            .last_lock_check
            .is_some_and(|t| t.elapsed() < SAVE_INTERVAL)
        {
            return;
        }
        self.last_lock_check = Some(Instant::now());
        match self.engine.keep_runner_lock().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!("another godwit run took this table's runner lock");
                self.table_lost = true;
                self.created = false;
            }
            // Cannot tell now (the server is away): asked again next time.
            Err(e) => tracing::debug!("checking the runner lock: {e}"),
        }
    }

    async fn save_checkpoint(&mut self, force: bool) {
        if self.swap == Swap::NotYet {
            self.keep_table().await;
        }
        if !self.engine.resumable() {
            return;
        }
        if !force && self.last_save.is_some_and(|t| t.elapsed() < SAVE_INTERVAL) {
            return;
        }
        let (Some(position), Some(orig)) = (self.acked.clone(), self.orig.as_ref()) else {
            return;
        };
        self.last_save = Some(Instant::now());
        let mut change_id = checkpoint::change_id(&orig.name, &self.opts.alter);
        if self.window.is_some() {
            change_id = format!("revert-{change_id}");
        }
        let cp = Checkpoint {
            version: checkpoint::VERSION,
            table: orig.name.clone(),
            alter: self.opts.alter.clauses.clone(),
            change_id,
            shadow: self.engine.names().shadow.clone(),
            old: self.engine.names().old.clone(),
            stage: self.stage,
            copied_upto: self.copied_upto.clone(),
            position,
            rows_copied: self.rows_copied,
            keys_replayed: self.keys_replayed,
            engine: self.engine.resume_state(),
            saved_at_ms: checkpoint::now_ms(),
            revert: self.window.clone(),
        };
        let text = match serde_json::to_string(&cp) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot write the checkpoint: {e}");
                return;
            }
        };
        match self.engine.save_checkpoint(&text).await {
            Ok(()) => {
                // Said as a `checkpoint` event when the stage changes and at most every
                // 10 s otherwise (saves happen after every chunk).
                let due = self.last_said.as_ref().is_none_or(|(stage, at)| {
                    *stage != cp.stage || at.elapsed() >= CHECKPOINT_EVENT_INTERVAL
                });
                if due {
                    self.last_said = Some((cp.stage, Instant::now()));
                    self.rep.emit(
                        "checkpoint",
                        serde_json::json!({
                            "stage": cp.stage, "position": cp.position,
                            "copied_upto": cp.copied_upto, "rows_copied": cp.rows_copied,
                            "keys_replayed": cp.keys_replayed,
                        }),
                    );
                }
                self.saved = Some(cp.position);
                self.unsaved = false;
            }
            Err(e) => {
                if !self.save_failed {
                    tracing::warn!("cannot save the checkpoint (the run goes on, but could not resume if it died): {e}");
                }
                self.save_failed = true;
                self.unsaved = true;
            }
        }
    }

    /// Save the checkpoint now and let the stream move on to it.
    async fn checkpoint_now(&mut self) -> Result<()> {
        self.save_checkpoint(true).await;
        self.ack_stream().await
    }

    /// After the swap: read the stream up to the swap's own DDL event. Any key of the
    /// original seen before it changed after the final flush and went to the old table.
    async fn writes_after_final_flush(&mut self) -> Vec<Key> {
        let mut leaked = Vec::new();
        if !self.engine.stream_sees_swap() {
            return leaked;
        }
        let Some(stream) = self.stream.as_mut() else {
            return leaked;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match stream.poll(Duration::from_millis(200)).await {
                Ok(batch) => leaked.extend(batch.keys),
                Err(e) if e.kind == ErrorKind::SourceChanged => {
                    tracing::debug!(leaked = leaked.len(), "swap confirmed in the change stream");
                    self.swap_position = stream.swap_position();
                    return leaked;
                }
                Err(e) => {
                    tracing::warn!("could not confirm the swap in the change stream: {e}");
                    return leaked;
                }
            }
        }
        tracing::warn!("the swap did not show up in the change stream within 10 s; not verified");
        leaked
    }

    /// Read what the stream has (waiting at most `wait`) into the dirty set. A lost
    /// stream connection is opened again (see [`Migration::reopen_stream`]).
    async fn drain(&mut self, wait: Duration) -> Result<()> {
        if let Some(h) = &self.hooks {
            h.status_due(|| self.hook_context());
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::internal("stream not open"))?;
        let batch = match stream.poll(wait).await {
            Ok(b) => b,
            Err(e) => return self.reopen_stream(e).await,
        };
        if let Some(p) = batch.position {
            self.position = Some(p);
        }
        if batch.lag.is_some() {
            self.lag = batch.lag;
        }
        self.dirty.extend(batch.keys);
        Ok(())
    }

    /// The change stream failed with `e`. A lost connection is opened again from the
    /// last position read (every key read before it is in the dirty set; a poll returns
    /// the keys it read before an error first), with the backoff and time limit of
    /// `--reconnect-timeout-seconds` (docs/how-it-works.md, "Lost connections"). Not
    /// under the cut-over lock: there a lost stream fails the attempt, and the next
    /// attempt reconnects before it locks.
    async fn reopen_stream(&mut self, e: Error) -> Result<()> {
        if !crate::engine::retry::is_connection_loss(&e)
            || self.rep.current_state() == Some(State::CutOver)
        {
            return Err(e);
        }
        // Dropped, not closed: closing removes the stream's server-side objects.
        self.stream = None;
        let policy = self.opts.reconnect.clone();
        let mut outage = policy.outage("of the change stream");
        let mut err = e;
        loop {
            outage.wait(err).await?;
            self.check_abort()?;
            let from = self
                .position
                .clone()
                .ok_or_else(|| Error::internal("no stream position"))?;
            let opened = self
                .engine
                .open_stream(self.orig()?, &self.mapping()?.key.source_columns, &from)
                .await;
            match opened {
                Ok(s) => {
                    self.stream = Some(s);
                    outage.recovered();
                    tracing::info!(%from, "change stream reopened");
                    return Ok(());
                }
                Err(e) => err = e,
            }
        }
    }

    /// Everything up to `p` is in the shadow: checkpoint it (at most every
    /// SAVE_INTERVAL) and acknowledge the stream up to what is checkpointed.
    async fn ack(&mut self, p: &Position) -> Result<()> {
        self.acked = Some(p.clone());
        self.save_checkpoint(false).await;
        self.ack_stream().await
    }

    /// Everything read is in the shadow (the dirty set is empty): checkpoint it now and
    /// acknowledge the stream. Where the stream is read often while nothing is written
    /// (index builds, verification), this keeps a PostgreSQL slot from decoding again
    /// everything since the last periodic checkpoint on every read: measured 150–500 ms
    /// a read after a 2M-row copy, 1 ms once acknowledged.
    async fn ack_applied(&mut self) -> Result<()> {
        if !self.dirty.is_empty() {
            return Ok(());
        }
        let Some(p) = self.position.clone() else {
            return Ok(());
        };
        if self.saved.as_ref() == Some(&p) && !self.unsaved {
            return Ok(());
        }
        self.acked = Some(p);
        self.save_checkpoint(true).await;
        self.ack_stream().await
    }

    /// Acknowledge the stream up to the last saved checkpoint's position (a rerun reads
    /// again from there, so the stream must keep what follows: a PostgreSQL slot is never
    /// advanced past it), or up to `acked` when this run keeps no checkpoint. On a lost
    /// connection, on a reopened stream.
    async fn ack_stream(&mut self) -> Result<()> {
        let to = if self.engine.resumable() && !self.unsaved {
            self.saved.clone()
        } else {
            self.acked.clone()
        };
        let (Some(p), Some(s)) = (to, self.stream.as_mut()) else {
            return Ok(());
        };
        if let Err(e) = s.ack(&p).await {
            self.reopen_stream(e).await?;
            if let Some(s) = self.stream.as_mut() {
                s.ack(&p).await?;
            }
        }
        Ok(())
    }

    /// Replay every dirty key, then acknowledge the stream up to where it was read.
    async fn flush(&mut self) -> Result<usize> {
        self.last_flush = Instant::now();
        if self.dirty.is_empty() {
            // Nothing to write: everything read so far is applied, so the stream may move
            // on (a PostgreSQL slot that is never advanced re-decodes its WAL every peek).
            if let Some(p) = self.position.clone() {
                self.ack(&p).await?;
            }
            return Ok(0);
        }
        let mut moved = moved::MovedValue::default();
        let (upto, n) = loop {
            let upto = self.position.clone();
            let keys = self.dirty.take();
            let r = self
                .engine
                .flush(self.orig()?, self.mapping()?, &keys)
                .await;
            let e = match r {
                Ok(_) => break (upto, keys.len()),
                Err(e) => e,
            };
            self.dirty.extend(keys);
            // A row's current unique value is still held in the shadow by another row's
            // old copy: that row gave the value up in a change the stream has not
            // delivered yet (docs/architecture.md, "Key-based replay and its races", 9).
            // Read the stream up to now and replay again; a duplicate that stays is in
            // the data.
            let Some(pause) = moved.again(&e, Instant::now()) else {
                return Err(e);
            };
            tracing::debug!(
                "replay: a unique value is still held by a row whose change is not read yet; reading the changes up to now, then replaying again ({e})"
            );
            tokio::time::sleep(pause).await;
            self.read_up_to_server().await?;
        };
        self.keys_replayed += n as u64;
        if let Some(p) = upto {
            self.ack(&p).await?;
        }
        Ok(n)
    }

    fn snapshot(&self) -> Snapshot {
        // The rate and ETA of the last minute of unthrottled copy time (control/eta.rs);
        // the average since the start until the window has a rate.
        let average = self
            .copy_started
            .map(|t| self.rows_copied as f64 / t.elapsed().as_secs_f64().max(0.001))
            .unwrap_or(0.0);
        let rate = self.eta.rate().unwrap_or(average);
        let estimate = self.orig.as_ref().map(|o| o.row_estimate).unwrap_or(0);
        let left = estimate.saturating_sub(self.rows_copied);
        let eta = match self.eta.eta(left) {
            Some(d) => Some(d.as_secs_f64().round() as u64),
            None => (rate > 0.0).then(|| (left as f64 / rate) as u64),
        };
        Snapshot {
            rows_copied: self.rows_copied,
            rows_estimate: estimate.max(self.rows_copied),
            rows_per_sec: rate,
            eta_seconds: eta,
            keys_replayed: self.keys_replayed,
            dirty_keys: self.dirty.len() as u64,
            lag_ms: self.lag.map(|l| l.as_millis() as u64),
            chunk_size: self.chunk,
        }
    }

    /// Wait while a throttle signal holds, keeping the stream read.
    async fn throttled(&mut self, resume: State) -> Result<()> {
        loop {
            self.check_abort()?;
            let engine = self.engine;
            let hold = self
                .throttle
                .check(|names| async move { engine.status_values(&names).await })
                .await?;
            match hold {
                None => {
                    if self.rep.current_state() == Some(State::Throttled) {
                        self.eta.observe(Instant::now(), self.rows_copied, false);
                        self.rep.state(resume, "throttle released");
                    }
                    return Ok(());
                }
                Some(h) => {
                    // The time up to the hold ran; the time held does not count.
                    let running = self.rep.current_state() != Some(State::Throttled);
                    self.eta.observe(Instant::now(), self.rows_copied, running);
                    if running {
                        self.rep.emit("throttled", h.json());
                    }
                    self.rep.state(State::Throttled, &h.to_string());
                    self.drain(Duration::from_millis(250)).await?;
                    let s = self.snapshot();
                    self.rep.progress(&s, false);
                }
            }
        }
    }

    fn adapt_chunk(&mut self, took: Duration) {
        let target = self.opts.chunk_time.as_secs_f64().max(0.001);
        let ratio = (target / took.as_secs_f64().max(0.001)).clamp(0.5, 2.0);
        let mut next = (self.chunk as f64 * ratio) as u64;
        if let Some(m) = self.throttle.max_chunk() {
            next = next.min(m);
        }
        // `chunk-size=N` on the control socket: N is also the cap.
        let max = self.chunk_set.unwrap_or(500_000).min(500_000);
        self.chunk = next.clamp(100.min(max), max);
    }

    /// `chunk-size=N` from the control socket: the next chunk has N rows, and N caps the
    /// adaptation from then on.
    fn chunk_from_control(&mut self) {
        let set = self.control.chunk_size();
        if set.is_some() && set != self.chunk_set {
            self.chunk_set = set;
            self.chunk = set.unwrap_or(self.chunk);
        }
    }

    /// `nice-ratio=F` from the control socket: rest F times the chunk's time (the stream
    /// is read meanwhile).
    async fn nice(&mut self, took: Duration) -> Result<()> {
        let ratio = self.control.nice_ratio();
        if ratio <= 0.0 {
            return Ok(());
        }
        let until = Instant::now() + took.mul_f64(ratio);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.check_abort()?;
            self.drain(left.min(Duration::from_millis(100))).await?;
            let rest = until.saturating_duration_since(Instant::now());
            if !rest.is_zero() {
                tokio::time::sleep(rest.min(Duration::from_millis(100))).await;
            }
        }
    }

    async fn copy(&mut self, copier: &mut dyn Copier) -> Result<()> {
        self.copy_started = Some(Instant::now());
        self.eta.observe(Instant::now(), self.rows_copied, true);
        // Copies of the current chunk again after a unique key met a moved row.
        let mut again = 0;
        loop {
            self.check_abort()?;
            self.throttled(State::Copy).await?;
            self.chunk_from_control();
            let t0 = Instant::now();
            // Reading the stream only fills the dirty set (no write to the shadow), so it
            // runs while the chunk is copied: on PostgreSQL decoding is the other half of
            // the work, done by a second server process.
            let chunk = self.chunk;
            let (got, drained) = tokio::join!(copier.next_chunk(chunk), self.drain(Duration::ZERO));
            drained?;
            let got = match got {
                // A unique key of the new table met a row the copy wrote earlier that has
                // moved since (a key change, or a unique value deleted and inserted again
                // further on) and whose replay has not run yet (docs/architecture.md,
                // "Key-based replay and its races", 8). The chunk was rolled back: replay
                // every change up to now, then copy it again. A duplicate that is still
                // there is in the data.
                Err(e) if e.is_unique_violation() && again < 3 => {
                    tracing::info!(
                        "a unique key met a row copied earlier: replaying the changes so far, then copying the chunk again ({e})"
                    );
                    again += 1;
                    self.catch_up_to_server().await?;
                    self.flush().await?;
                    continue;
                }
                r => r?,
            };
            again = 0;
            let took = t0.elapsed();
            let Some(n) = got else { break };
            self.rows_copied += n;
            self.eta.observe(Instant::now(), self.rows_copied, true);
            self.control
                .update(|s| s.chunk_ms = Some(took.as_millis() as u64));
            if n >= self.chunk / 2 {
                self.adapt_chunk(took);
            }
            self.throttle.take_rows(n).await;
            if self.dirty.len() >= FLUSH_KEYS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
                self.flush().await?;
            }
            self.copied_upto = copier.copied_upto();
            self.checkpoint_now().await?;
            let s = self.snapshot();
            self.rep.progress(&s, false);
            if copier.finished() {
                break;
            }
            self.nice(took).await?;
        }
        let s = self.snapshot();
        self.rep.progress(&s, true);
        Ok(())
    }

    /// The engine's after-copy steps (index builds, parked replay), with the stream read
    /// meanwhile so that decoding what the copy and the builds wrote overlaps them.
    async fn after_copy(&mut self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        // A UNIQUE index built after the copy can meet a value that moved from a row to
        // another after the last replay read them (docs/architecture.md, "Key-based
        // replay and its races", 9): read the changes up to now, replay them and build
        // what is left again. A duplicate that stays is in the data.
        let mut moved = moved::MovedValue::default();
        loop {
            let e = match self.after_copy_once(orig, mapping).await {
                Err(e) => e,
                ok => return ok,
            };
            let Some(pause) = moved.again(&e, Instant::now()) else {
                return Err(e);
            };
            tracing::info!("a unique index met a value moved since the last replay; replaying the changes up to now, then building it again ({e})");
            tokio::time::sleep(pause).await;
            self.read_up_to_server().await?;
            self.flush().await?;
        }
    }

    async fn after_copy_once(&mut self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        let done = AtomicBool::new(false);
        let engine = self.engine;
        let steps = async {
            let r = engine.after_copy(orig, mapping).await;
            done.store(true, Ordering::SeqCst);
            r
        };
        // One read, then one every half second: a PostgreSQL read decodes again from the
        // slot's restart point, so reading back to back while the builds write their
        // WAL repeats work that competes with them.
        let read = async {
            while !done.load(Ordering::SeqCst) {
                self.drain(Duration::ZERO).await?;
                // Nothing read is waiting for replay: the stream may move on (a
                // PostgreSQL slot held back re-decodes the builds' WAL on every read).
                self.ack_applied().await?;
                for _ in 0..10 {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok::<_, Error>(())
        };
        let (steps, read) = tokio::join!(steps, read);
        steps?;
        read
    }

    async fn catch_up(&mut self) -> Result<()> {
        loop {
            self.check_abort()?;
            self.throttled(State::CatchUp).await?;
            self.drain(Duration::from_millis(100)).await?;
            let n = self.flush().await?;
            let s = self.snapshot();
            self.rep.progress(&s, false);
            if n < CATCH_UP_KEYS {
                return self.ack_applied().await;
            }
        }
    }

    /// Between reads of the stream towards the server's position, outside any lock.
    const CATCH_UP_PAUSE: Duration = Duration::from_millis(10);

    /// Read the stream up to the server's current position (taken without a lock), so
    /// that what is left to read under the cut-over lock is only what came after.
    async fn catch_up_to_server(&mut self) -> Result<()> {
        let Some(target) = self.engine.current_position().await? else {
            return self.drain(Duration::from_millis(50)).await;
        };
        tracing::debug!(%target, "catching up to the server before the cut-over");
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self
            .read_towards(
                &target,
                "server's position",
                deadline,
                FLUSH_KEYS,
                Self::CATCH_UP_PAUSE,
            )
            .await?
        {
            self.flush().await?;
        }
        Ok(())
    }

    /// Read the stream up to the server's current position, replaying nothing.
    async fn read_up_to_server(&mut self) -> Result<()> {
        let Some(target) = self.engine.current_position().await? else {
            return self.drain(Duration::from_millis(50)).await;
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        self.read_towards(
            &target,
            "server's position",
            deadline,
            usize::MAX,
            Self::CATCH_UP_PAUSE,
        )
        .await?;
        Ok(())
    }

    /// Read the stream until it reaches `fence`, written while the application's writes
    /// are held. The reads do not wait for changes: a waiting read returns early only for
    /// changed keys, so on a quiet table it held the writes for its whole wait (on
    /// PostgreSQL 50 ms of an 80 ms cut-over).
    async fn reach_fence(&mut self, fence: &Position, timeout: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + timeout.max(Duration::from_secs(1)) * 2;
        self.read_towards(fence, what, deadline, usize::MAX, Duration::from_millis(5))
            .await?;
        Ok(())
    }

    /// Read the stream until it reaches `target` (true) or `max_dirty` keys wait for
    /// replay (false), pausing `pause` between reads. No read waits for new changes: the
    /// target is known, and each read goes as far as the server has flushed. Past
    /// `deadline`, an error that names `what` was not reached.
    async fn read_towards(
        &mut self,
        target: &Position,
        what: &str,
        deadline: Instant,
        max_dirty: usize,
        pause: Duration,
    ) -> Result<bool> {
        loop {
            if self.position.as_ref().is_some_and(|p| p.reached(target)) {
                return Ok(true);
            }
            self.check_abort()?;
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::CutOverFailed,
                    format!(
                        "the change stream did not reach the {what} {target} in time (at {})",
                        self.position
                            .as_ref()
                            .map(|p| p.to_string())
                            .unwrap_or_default()
                    ),
                ));
            }
            self.drain(Duration::ZERO).await?;
            if self.dirty.len() >= max_dirty {
                return Ok(false);
            }
            if !self.position.as_ref().is_some_and(|p| p.reached(target)) {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Wait while the postpone flag file exists, then until the `on-before-cut-over`
    /// hooks succeed (asked again every second), keeping the shadow in sync.
    /// Refresh the shadow's statistics before the swap (`Engine::analyze_shadow`). Best
    /// effort: a failure is a warning (the server's own statistics collection catches up
    /// later), never a reason to keep the original.
    async fn analyze_shadow(&mut self) {
        let t = Instant::now();
        let r = self.engine.analyze_shadow().await;
        let millis = t.elapsed().as_millis() as u64;
        let table = self.engine.names().shadow.clone();
        match r {
            Ok(()) => {
                tracing::info!(
                    ms = millis,
                    "analyzed the new table: its statistics are current at the swap"
                );
                self.rep.emit(
                    "analyze",
                    serde_json::json!({ "table": table, "millis": millis }),
                );
            }
            Err(e) => {
                tracing::warn!("analyzing the new table failed (its statistics are refreshed later by the server): {e}");
                self.rep.emit(
                    "analyze",
                    serde_json::json!({ "table": table, "millis": millis, "error": e.message }),
                );
            }
        }
    }

    async fn postpone(&mut self) -> Result<()> {
        if let Some(flag) = self.opts.postpone_flag_file.clone() {
            let r = async {
                while flag.exists() {
                    self.check_abort()?;
                    if self.control.unpostponed() {
                        tracing::info!("cut-over unpostponed by the control socket");
                        break;
                    }
                    self.control.set_postponing(true);
                    self.rep.state(
                        State::Postponed,
                        &format!(
                            "in sync; cut-over waits until {} is removed (or `unpostpone` on the control socket)",
                            flag.display()
                        ),
                    );
                    self.begin_postponed().await;
                    self.stay_in_sync(Duration::from_millis(500)).await?;
                }
                Ok::<(), Error>(())
            }
            .await;
            self.control.set_postponing(false);
            r?;
        }
        self.before_cut_over_hook().await
    }

    /// Run the `on-before-cut-over` hooks until they succeed, in sync meanwhile (before
    /// every cut-over attempt, as gh-ost does: a retry may come much later).
    async fn before_cut_over_hook(&mut self) -> Result<()> {
        loop {
            self.check_abort()?;
            let out = self.hook(Point::BeforeCutOver).await;
            if out.ok() {
                return Ok(());
            }
            let why = format!(
                "in sync; cut-over waits until the on-before-cut-over hook succeeds ({})",
                out.reason()
            );
            if self.rep.current_state() != Some(State::Postponed) {
                self.rep.state(State::Postponed, &why);
            }
            self.begin_postponed().await;
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                self.check_abort()?;
                self.stay_in_sync(Duration::from_millis(250)).await?;
            }
        }
    }

    /// One round of keeping the shadow in sync while waiting.
    async fn stay_in_sync(&mut self, wait: Duration) -> Result<()> {
        self.drain(wait).await?;
        self.flush().await?;
        let s = self.snapshot();
        self.rep.progress(&s, false);
        Ok(())
    }

    /// `on-begin-postponed`, the first time the cut-over is postponed.
    async fn begin_postponed(&mut self) {
        if !self.postponed_once {
            self.postponed_once = true;
            self.hook(Point::BeginPostponed).await;
        }
    }

    /// What a hook is told about the run now.
    fn hook_context(&self) -> HookContext {
        let s = self.snapshot();
        HookContext {
            state: self
                .rep
                .current_state()
                .map(|x| x.to_string())
                .unwrap_or_default(),
            rows_copied: Some(s.rows_copied),
            rows_estimate: Some(s.rows_estimate),
            eta_seconds: s.eta_seconds,
            elapsed: self.began.elapsed(),
            error: None,
            exit_code: None,
        }
    }

    /// Run `point`'s hooks (none without `--hooks-path`). Their failure changes nothing
    /// here; `on-before-cut-over`'s caller reads the outcome.
    async fn hook(&mut self, point: Point) -> crate::hooks::HookOutcome {
        let Some(h) = self.hooks.clone() else {
            return Default::default();
        };
        h.run(point, &self.hook_context()).await
    }

    /// `on-success` or `on-failure` (with the error and the exit code).
    async fn end_hook(&mut self, r: &Result<Outcome>) {
        let Some(h) = self.hooks.clone() else { return };
        let mut cx = self.hook_context();
        match r {
            Ok(_) => {
                cx.state = State::Done.to_string();
                h.run(Point::Success, &cx).await;
            }
            Err(e) => {
                cx.state = State::Failed.to_string();
                cx.error = Some(e.to_string());
                cx.exit_code = Some(e.exit_code());
                h.run(Point::Failure, &cx).await;
            }
        }
    }

    /// Swap the tables. Returns how long writes were blocked and the attempts made.
    async fn cut_over(&mut self) -> Result<(u64, u32)> {
        // From here a dead run may have swapped: its rerun looks before resuming.
        self.stage = Stage::CutOver;
        self.save_checkpoint(true).await;
        let timeout = self.opts.cut_over_timeout;
        let retries = self.opts.cut_over_retries.max(1);
        let mut last_err = None;
        // tokio's clock: the same as std's, and paused with it in the unit tests.
        let mut first_attempt: Option<tokio::time::Instant> = None;
        // Who blocked the last failed attempt.
        let mut blocked_by: Vec<Blocker> = Vec::new();
        for attempt in 1..=retries {
            self.check_abort()?;
            if attempt > 1 {
                self.before_cut_over_hook().await?;
            }
            self.throttled(State::CatchUp).await?;
            self.catch_up_to_server().await?;
            self.flush().await?;
            // What the lock's drain reads starts at the acknowledged position.
            self.checkpoint_now().await?;
            self.control.count_cut_over_attempt();
            let first = *first_attempt.get_or_insert_with(tokio::time::Instant::now);
            if self.blocker_policy.kill
                && !blocked_by.is_empty()
                && first.elapsed() >= self.blocker_policy.after
            {
                self.kill_blockers(&blocked_by).await;
            }
            let attempt_began = tokio::time::Instant::now();
            self.rep.state(
                State::CutOver,
                &format!(
                    "attempt {attempt}/{retries}: locking with a {} s timeout",
                    timeout.as_secs_f64()
                ),
            );
            match self.cut_over_once(attempt, timeout).await {
                Ok(blocked) => return Ok((blocked.as_millis() as u64, attempt)),
                Err(e)
                    if self.swap == Swap::Unknown
                        || matches!(
                            e.kind,
                            ErrorKind::DataError | ErrorKind::SourceChanged | ErrorKind::Aborted
                        ) =>
                {
                    return Err(e)
                }
                Err(e) => {
                    tracing::warn!("cut-over attempt {attempt} failed: {e}");
                    self.rep.emit(
                        "cut_over_retry",
                        serde_json::json!({"attempt": attempt, "message": e.message}),
                    );
                    blocked_by = self.report_blockers(attempt, attempt_began.elapsed()).await;
                    last_err = Some(e);
                    let backoff = Duration::from_millis(250u64 << attempt.min(6))
                        .min(Duration::from_secs(10));
                    tokio::time::sleep(backoff).await;
                    self.rep.state(State::CatchUp, "retrying the cut-over");
                }
            }
        }
        let e = last_err.unwrap_or_else(|| Error::internal("cut-over not attempted"));
        let who = if blocked_by.is_empty() {
            String::new()
        } else {
            format!(
                "; blocked by {}",
                blocked_by
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(Error::new(
            ErrorKind::CutOverFailed,
            format!("cut-over failed {retries} times; the original table is unchanged. Last error: {}{who}", e.message),
        )
        .with_hint(if blocked_by.is_empty() {
            "find the long transactions or locks on the table (SHOW PROCESSLIST on MySQL, pg_stat_activity on PostgreSQL), or raise --cut-over-lock-timeout-seconds / --cut-over-retries"
        } else {
            "end those sessions' transactions and run again, or let godwit end them: --kill-blockers (with --force-cut-over-after DURATION to wait that long first)"
        }))
    }

    /// After a failed attempt that waited `waited`: the sessions that held a lock on the
    /// table all that time (anything younger cannot have blocked it), reported as a
    /// `cut_over_blocked` event and a warning.
    async fn report_blockers(&mut self, attempt: u32, waited: Duration) -> Vec<Blocker> {
        let found = match self.engine.cut_over_blockers().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("could not read which sessions block the cut-over: {e}");
                return Vec::new();
            }
        };
        // Ages are whole seconds, rounded down.
        let blockers: Vec<Blocker> = found
            .into_iter()
            .filter(|b| (b.age_seconds + 1) as f64 > waited.as_secs_f64())
            .collect();
        for b in &blockers {
            tracing::warn!("cut-over attempt {attempt} blocked by {b}");
        }
        self.rep.emit(
            "cut_over_blocked",
            serde_json::json!({ "attempt": attempt, "blockers": blockers }),
        );
        blockers
    }

    /// `--kill-blockers`: end the sessions that blocked the last attempt and still hold
    /// the same transaction (a session that has moved on is spared). Only sessions the
    /// server says hold a lock on the table (`exact`): an open transaction that merely
    /// may hold one (MariaDB without `metadata_lock_info`, MySQL without
    /// `performance_schema` metadata locks) could be anyone's, and is left alone.
    async fn kill_blockers(&mut self, blocked_by: &[Blocker]) {
        let now = match self.engine.cut_over_blockers().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("could not read which sessions block the cut-over: {e}");
                return;
            }
        };
        for b in now.iter().filter(|b| {
            blocked_by
                .iter()
                .any(|o| o.id == b.id && o.since == b.since)
        }) {
            if !b.exact {
                tracing::warn!(
                    "not ending {b}: the server cannot tell whether it holds a lock on the table (--kill-blockers ends only sessions known to; on MariaDB install the metadata_lock_info plugin, on MySQL enable performance_schema's metadata lock instrument)"
                );
                self.rep.emit(
                    "blocker_spared",
                    serde_json::json!({"id": b.id, "user": b.user, "reason": "the server cannot tell whether it holds a lock on the table"}),
                );
                continue;
            }
            match self.engine.kill_session(b.id).await {
                Ok(()) => {
                    tracing::warn!("ended {b}: it blocked the cut-over (--kill-blockers)");
                    self.rep.emit(
                        "blocker_killed",
                        serde_json::to_value(b).unwrap_or_default(),
                    );
                }
                Err(e) => tracing::warn!("could not end {b}: {e}"),
            }
        }
    }

    /// Whether the tables were swapped, asked again while the server cannot be reached
    /// (a restart or a failover during the cut-over), with the backoff and time limit of
    /// `--reconnect-timeout-seconds`.
    async fn swapped_once_reachable(&self) -> Result<bool> {
        let mut outage = self
            .opts
            .reconnect
            .outage("while the swap's outcome is unknown");
        loop {
            match self.engine.swapped().await {
                Ok(swapped) => {
                    outage.recovered();
                    return Ok(swapped);
                }
                Err(e) => outage.wait(e).await?,
            }
        }
    }

    /// One attempt; returns how long the application's writes were held.
    async fn cut_over_once(&mut self, attempt: u32, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        let orig = self.orig()?.clone();
        let mapping = self.mapping()?.clone();
        let mut lock = self
            .engine
            .lock_for_cut_over(&orig, &mapping, timeout, attempt)
            .await?;
        let mut taken: Vec<Key> = Vec::new();
        let r = async {
            let fence = lock.fence().await?;
            tracing::debug!(%fence, at = ?self.position, "cut-over fence");
            self.reach_fence(&fence, timeout, "fence").await?;
            tracing::debug!(at = ?self.position, "fence reached");
            taken = self.dirty.take();
            let n = lock.flush(&taken).await?;
            match lock.swap().await {
                Ok(()) => Ok(n),
                // The answer to the swap may be lost while the swap itself happened:
                // ask the server on a new connection before calling it failed (while
                // it is away, for as long as --reconnect-timeout-seconds allows).
                Err(e) => match self.swapped_once_reachable().await {
                    Ok(true) => {
                        tracing::warn!("the swap reported an error, but the tables were swapped: {e}");
                        Ok(n)
                    }
                    Ok(false) => Err(e),
                    Err(check) => {
                        self.swap = Swap::Unknown;
                        let old = self.engine.names().old.clone();
                        Err(Error::new(
                            ErrorKind::Unreachable,
                            format!(
                                "the swap failed ({}) and whether it happened cannot be told now ({})",
                                e.message, check.message
                            ),
                        )
                        .with_hint(format!(
                            "when the server answers again: if a table named {old} exists, the migration succeeded and {old} is the original; otherwise the original is unchanged. Then run `godwit cleanup --url <URL> --table <TABLE>` to see and remove what is left"
                        )))
                    }
                },
            }
        }
        .await;
        match r {
            Ok(n) => {
                self.keys_replayed += n;
                Ok(lock.blocked_since().unwrap_or(t0).elapsed())
            }
            Err(e) => {
                self.dirty.extend(taken);
                // After a swap whose outcome is unknown the lock is left to its session
                // (gone with it): releasing could act on tables that were swapped.
                if self.swap != Swap::Unknown {
                    let _ = lock.release().await;
                }
                Err(e)
            }
        }
    }
}
