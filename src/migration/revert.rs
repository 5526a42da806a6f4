//! The revert window and `godwit revert` (docs/how-it-works.md, "Revert").
//!
//! A revert is the same online migration in the other direction with nothing to copy:
//! the source is the new table, the shadow is the old table the swap kept (it holds
//! every row as of the swap), the stream starts right after the swap, and the mapping is
//! the reverse one. During the window the run replays the new table's changes into the
//! old table (poll, flush, acknowledge, checkpoint: the catch-up's machinery); the
//! window's checkpoint is that of the reverse direction at stage `Copied`, so `godwit
//! revert` resumes it like any resumed run: catch-up, verify, cut-over, cleanup.

use super::checkpoint::{self, Checkpoint, RevertWindow, Stage};
use super::{Migration, Outcome, RunOptions, FLUSH_INTERVAL, FLUSH_KEYS};
use crate::ddl::AlterSpec;
use crate::engine::{Engine, NameOverride, Position};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Done, State};
use crate::schema::{ColumnMapping, Table};
use crate::throttle::Throttle;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

/// Opens an engine for the same table with the names given (the reverse direction).
pub type Connector =
    Box<dyn Fn(NameOverride) -> BoxFuture<'static, Result<Box<dyn Engine>>> + Send + Sync>;

/// How long `godwit revert` waits for the run holding the window to hand over.
const HANDOVER_WAIT: Duration = Duration::from_secs(60);
/// How often the window run looks for a handover request.
const REQUEST_CHECK: Duration = Duration::from_secs(1);

/// The reverse of `alter`: renames turned around; a column dropped and added again is
/// still never filled from its namesake.
pub fn reverse_spec(alter: &AlterSpec) -> AlterSpec {
    AlterSpec {
        clauses: alter.clauses.clone(),
        renames: alter
            .renames
            .iter()
            .map(|(old, new)| (new.clone(), old.clone()))
            .collect(),
        new_columns: alter.new_columns.clone(),
        auto_increment: None,
    }
}

/// Why a reverse mapping would lose data, if it would: the original's columns the new
/// table does not fill (generated columns are computed again, not lost).
pub fn lossy_columns(orig: &Table, reverse: &ColumnMapping) -> Vec<String> {
    reverse
        .added
        .iter()
        .filter(|c| orig.column(c).is_some_and(|col| !col.generated))
        .cloned()
        .collect()
}

fn impossible(msg: String) -> Error {
    Error::new(ErrorKind::RevertImpossible, msg)
}

impl<'a> Migration<'a> {
    /// `--revert-window`: refuse (before the copy) a change whose reverse mapping loses
    /// data or has no key to replay by.
    pub(super) async fn check_reversible(&self, orig: &Table, shadow: &Table) -> Result<()> {
        let spec = reverse_spec(&self.opts.alter);
        let hint = "run without --revert-window (the old table is still kept after the swap unless --ok-to-drop-table), or make the change in steps that can be reverted; nothing was changed";
        let rev = ColumnMapping::build(shadow, orig, &spec.renames, &spec.new_columns).map_err(
            |e| {
                impossible(format!(
                    "--revert-window: the change cannot be reverted: the new table has no key the old table can be found again by ({})",
                    e.message
                ))
                .with_hint(hint)
            },
        )?;
        let lost = lossy_columns(orig, &rev);
        if !lost.is_empty() {
            return Err(impossible(format!(
                "--revert-window: the change cannot be reverted without losing data: the new table does not keep column(s) {} of {}",
                lost.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                orig.name
            ))
            .with_hint(hint));
        }
        let cannot = |e: Error| {
            impossible(format!(
                "--revert-window: the change cannot be reverted: {}",
                e.message
            ))
            .with_hint(hint)
        };
        self.engine.check_key(shadow, &rev).map_err(cannot)?;
        self.engine
            .check_reverse(shadow, &rev)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Unreachable => e,
                _ => cannot(e),
            })
    }

    /// After the swap (the `done` event is out): keep the old table in sync with the new
    /// one until the window ends, the run is stopped, or `godwit revert` asks for it.
    pub(super) async fn revert_window(&mut self, done: Done) -> Result<Outcome> {
        let window = self
            .opts
            .revert_window
            .ok_or_else(|| Error::internal("no revert window"))?;
        let old = done.old_table.clone();
        let until_ms = checkpoint::now_ms() + window.as_millis() as u64;
        let Some(from) = self.swap_position.clone() else {
            tracing::warn!(
                "the revert window cannot open: the change stream did not show where the swap happened; the old table is kept as {old}"
            );
            let _ = self.engine.drop_checkpoint().await;
            self.rep.emit(
                "revert",
                serde_json::json!({"window": "closed", "reason": "swap_not_seen", "old_table": old}),
            );
            return Ok(Outcome::WindowEnded);
        };
        self.in_window = true;
        let connect = self
            .reverse
            .as_ref()
            .ok_or_else(|| Error::internal("no connector for the revert window"))?;
        let names = NameOverride {
            shadow: old.clone(),
            old: None,
            cut_over: false,
        };
        let mut r = connect(names.clone()).await?;
        if r.names().old == old {
            // Fresh names carry the second they were made in: wait for the next one.
            let _ = r.close().await;
            tokio::time::sleep(Duration::from_millis(1100)).await;
            r = connect(names).await?;
        }
        let result = self.window_on(r.as_ref(), from, until_ms, &old).await;
        let _ = r.close().await;
        result
    }

    async fn window_on(
        &mut self,
        r: &dyn Engine,
        from: Position,
        until_ms: u64,
        old: &str,
    ) -> Result<Outcome> {
        let new = r.inspect().await?;
        // The engine of the reverse direction takes over the old table and the stream
        // when the forward engine says how; otherwise it is only inspected.
        let handed = self.engine.reverse_state();
        let kept = if handed.is_null() {
            self.engine.inspect_other(old).await?
        } else {
            r.resume(&new, &handed, &from, false).await?
        };
        let spec = reverse_spec(&self.opts.alter);
        let mapping = ColumnMapping::build(&new, &kept, &spec.renames, &spec.new_columns)?;
        r.check_key(&new, &mapping)?;
        let window = RevertWindow {
            until_ms,
            renames: spec.renames.clone(),
            new_columns: spec.new_columns.clone(),
        };
        let opts = RunOptions {
            alter: spec,
            revert_window: None,
            revert: false,
            ..self.opts.clone()
        };
        let ok_to_drop = self.opts.ok_to_drop_table;
        let throttle = std::mem::replace(&mut self.throttle, Throttle::new(None, None, None, None));
        let mut rm = Migration::new(r, opts, throttle, &mut *self.rep, self.abort.clone());
        rm.window = Some(window);
        rm.in_window = true;
        rm.stage = Stage::Copied;
        rm.orig = Some(new.clone());
        rm.stream = Some(
            r.open_stream(&new, &mapping.key.source_columns, &from)
                .await?,
        );
        rm.position = Some(from.clone());
        rm.acked = Some(from);
        rm.mapping = Some(mapping);
        rm.replay_window(old, until_ms, ok_to_drop).await
    }

    /// The window's loop, on the reverse direction's migration.
    async fn replay_window(
        &mut self,
        old: &str,
        until_ms: u64,
        ok_to_drop: bool,
    ) -> Result<Outcome> {
        let until = checkpoint::utc(until_ms);
        self.rep.state(
            State::RevertWindow,
            &format!("replaying the new table's changes into {old} until {until}; `godwit revert` swaps back"),
        );
        self.rep.emit(
            "revert",
            serde_json::json!({"window": "open", "until_ms": until_ms, "old_table": old, "position": self.acked}),
        );
        self.save_checkpoint(true).await;
        let mut last_check = Instant::now();
        loop {
            if self.abort.load(std::sync::atomic::Ordering::SeqCst) {
                self.stop_replaying().await;
                let msg = format!(
                    "the revert window stays open until {until}, but nothing replays into {old} any more: `godwit revert --url <URL> --table {t}` swaps back from the last checkpoint (the binlog/WAL since then must still be there); `godwit cleanup --url <URL> --table {t} --execute` closes the window (add --include-old-tables to drop {old})",
                    t = self.orig()?.name
                );
                tracing::warn!("{msg}");
                self.rep.emit(
                    "revert",
                    serde_json::json!({"window": "open", "stopped": true, "until_ms": until_ms, "old_table": old, "message": msg}),
                );
                return Ok(Outcome::WindowEnded);
            }
            if checkpoint::now_ms() >= until_ms {
                return self
                    .close_window(old, ok_to_drop, "expired", "the revert window ended")
                    .await;
            }
            if last_check.elapsed() >= REQUEST_CHECK {
                last_check = Instant::now();
                match self.engine.handover_requested().await {
                    Ok(true) => {
                        self.stop_replaying().await;
                        tracing::info!("godwit revert asked for the table: handing over");
                        self.rep.emit(
                            "revert",
                            serde_json::json!({"handed_over": true, "position": self.acked}),
                        );
                        return Ok(Outcome::WindowEnded);
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!("cannot read the revert request: {e}"),
                }
            }
            let step = async {
                self.drain(Duration::from_millis(250)).await?;
                if self.dirty.len() >= FLUSH_KEYS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
                    self.flush().await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            match step {
                Ok(()) => {}
                Err(e) if matches!(e.kind, ErrorKind::DataError | ErrorKind::SourceChanged) => {
                    let why = if e.kind == ErrorKind::DataError {
                        format!("a write since the cut-over cannot be stored in the old table {old}: {}", e.message)
                    } else {
                        format!("the table changed during the revert window: {}", e.message)
                    };
                    let reason = if e.kind == ErrorKind::DataError {
                        "data_error"
                    } else {
                        "source_changed"
                    };
                    self.close_window(old, ok_to_drop, reason, &why).await?;
                    return Err(impossible(format!("the revert window closed: {why}")).with_hint(
                        "the migration itself succeeded and stays; a revert is no longer possible without losing that write",
                    ));
                }
                Err(e) => {
                    // The checkpoint stays: `godwit revert` can still swap back from it.
                    self.stop_replaying().await;
                    return Err(e);
                }
            }
            let s = self.snapshot();
            self.rep.progress(&s, false);
        }
    }

    /// Replay what was read and save the final checkpoint (the window stays open).
    async fn stop_replaying(&mut self) {
        if let Err(e) = self.flush().await {
            tracing::warn!("the last replay of the revert window failed: {e}");
        }
        self.save_checkpoint(true).await;
    }

    /// Close the window: the stream's artifacts and the checkpoint go; the old table too
    /// with `--ok-to-drop-table`.
    async fn close_window(
        &mut self,
        old: &str,
        ok_to_drop: bool,
        reason: &str,
        message: &str,
    ) -> Result<Outcome> {
        if let Some(s) = self.stream.as_mut() {
            let _ = s.close().await;
        }
        self.stream = None;
        let mut dropped = false;
        if ok_to_drop {
            match self.engine.drop_old_table(old).await {
                Ok(()) => dropped = true,
                Err(e) => tracing::error!("dropping the old table {old}: {e}"),
            }
        }
        self.engine.drop_checkpoint().await?;
        tracing::info!(
            "{message}; the revert window is closed; the old table {}",
            if dropped { "was dropped" } else { "is kept" }
        );
        self.rep.emit(
            "revert",
            serde_json::json!({"window": "closed", "reason": reason, "message": message, "old_table": old, "old_table_dropped": dropped}),
        );
        Ok(Outcome::WindowEnded)
    }

    /// `godwit revert`: the window's checkpoint, with the table's runner lock held (asking
    /// the run that holds the window to hand over when it is alive).
    pub(super) async fn take_window(&mut self) -> Result<Checkpoint> {
        let first = self.window_checkpoint().await?;
        // Asked at once: a live window run answers within a second; a killed one's
        // lingering session goes within the same wait.
        if !self.engine.lock_runner().await? {
            self.engine.request_handover().await?;
            self.rep
                .emit("revert", serde_json::json!({"handover_requested": true}));
            tracing::info!("the run holding the revert window is alive: asked it to hand over");
            let deadline = Instant::now() + HANDOVER_WAIT;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if self.engine.lock_runner().await? {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::new(
                        ErrorKind::Leftovers,
                        format!(
                            "the run holding the revert window of {} did not hand over within {} s (it still holds the table's runner lock)",
                            first.table,
                            HANDOVER_WAIT.as_secs()
                        ),
                    )
                    .with_hint("look at that run's output; stop it (Ctrl-C keeps the window open) and run godwit revert again; nothing was changed"));
                }
            }
        }
        let cp = self.window_checkpoint().await?;
        let w = cp
            .revert
            .clone()
            .ok_or_else(|| Error::internal("window checkpoint without its window"))?;
        self.opts.alter = AlterSpec {
            clauses: cp.alter.clone(),
            renames: w.renames,
            new_columns: w.new_columns,
            auto_increment: None,
        };
        self.rep.emit(
            "revert",
            serde_json::json!({"reverting": true, "position": cp.position, "saved_at_ms": cp.saved_at_ms, "old_table": cp.shadow}),
        );
        Ok(cp)
    }

    /// The open window's checkpoint, or exit 37 (nothing touched).
    async fn window_checkpoint(&self) -> Result<Checkpoint> {
        let none = || {
            Error::new(
                ErrorKind::Checkpoint,
                "there is no open revert window on this table",
            )
            .with_hint("a revert needs a run with --revert-window whose window is still open; nothing was changed")
        };
        let text = self.engine.load_checkpoint().await?.ok_or_else(none)?;
        let cp: Checkpoint = serde_json::from_str(&text).map_err(|_| none())?;
        let Some(w) = &cp.revert else {
            return Err(none());
        };
        if cp.version != checkpoint::VERSION || cp.stage == Stage::Copy {
            return Err(none());
        }
        if checkpoint::now_ms() >= w.until_ms {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                format!(
                    "the revert window of this table ended at {}",
                    checkpoint::utc(w.until_ms)
                ),
            )
            .with_hint("close it with `godwit cleanup --execute` (add --include-old-tables to drop the old table); nothing was changed"));
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverse_spec_turns_renames_around() {
        let a = AlterSpec {
            clauses: "RENAME COLUMN a TO b".into(),
            renames: vec![("a".into(), "b".into())],
            new_columns: vec!["c".into()],
            auto_increment: Some(5),
        };
        let r = reverse_spec(&a);
        assert_eq!(r.renames, vec![("b".to_string(), "a".to_string())]);
        assert_eq!(r.new_columns, vec!["c".to_string()]);
        assert_eq!(r.auto_increment, None);
    }

    fn table(cols: &[(&str, bool)]) -> Table {
        use crate::schema::{Column, UniqueKey};
        Table {
            schema: "db".into(),
            name: "t".into(),
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, (name, generated))| Column {
                    name: name.to_string(),
                    ordinal: i as u32 + 1,
                    data_type: "int".into(),
                    column_type: "int".into(),
                    nullable: false,
                    generated: *generated,
                    unsigned: false,
                    charset: None,
                    collation: None,
                    precision: None,
                    scale: None,
                    length: None,
                    ..Default::default()
                })
                .collect(),
            unique_keys: vec![UniqueKey {
                name: "PRIMARY".into(),
                columns: vec!["id".into()],
                primary: true,
                all_not_null: true,
                has_prefix: false,
            }],
            row_estimate: 0,
            data_bytes: 0,
            index_bytes: 0,
            ..Default::default()
        }
    }

    /// The reverse mapping of `alter` from `new` back to `orig`, and what it would lose.
    fn lost(orig: &Table, new: &Table, alter: &AlterSpec) -> Vec<String> {
        let spec = reverse_spec(alter);
        let rev = ColumnMapping::build(new, orig, &spec.renames, &spec.new_columns).unwrap();
        lossy_columns(orig, &rev)
    }

    fn spec(renames: &[(&str, &str)], new_columns: &[&str]) -> AlterSpec {
        AlterSpec {
            clauses: String::new(),
            renames: renames
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            new_columns: new_columns.iter().map(|s| s.to_string()).collect(),
            auto_increment: None,
        }
    }

    #[test]
    fn what_a_reverse_mapping_loses() {
        let orig = table(&[("id", false), ("a", false), ("g", true)]);
        // Added column, renamed column: nothing lost (the generated column is computed).
        let new = table(&[("id", false), ("b", false), ("x", false)]);
        assert!(lost(&orig, &new, &spec(&[("a", "b")], &[])).is_empty());
        // Dropped column.
        let new = table(&[("id", false), ("g", true)]);
        assert_eq!(lost(&orig, &new, &spec(&[], &[])), vec!["a".to_string()]);
        // Dropped and added again: a new column, never the old data.
        let new = table(&[("id", false), ("a", false), ("g", true)]);
        assert_eq!(lost(&orig, &new, &spec(&[], &["a"])), vec!["a".to_string()]);
        assert!(lost(&orig, &new, &spec(&[], &[])).is_empty());
    }
}
