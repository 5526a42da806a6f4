//! The PostgreSQL cut-over: one transaction on one session.
//!
//! `LOCK TABLE orig, shadow IN ACCESS EXCLUSIVE MODE` under `lock_timeout`; a fence marker
//! committed synchronously from a helper session; the final flush; then the renames and
//! everything a rename-based swap must redo because it is bound to the table's OID:
//! index and constraint names, sequences (serial ownership, identity values), foreign
//! keys pointing at the table (re-created NOT VALID, validated after commit), views
//! (CREATE OR REPLACE keeps their OID, grants and dependents), triggers, grants, owner,
//! comment, row-level security, replica identity, publication membership. Commit.
//! Any error before the commit rolls everything back: nothing was swapped.

use super::conn::{batch, connect, pg_err, relation_exists};
use super::flush_keys;
use super::inspect::{self, RelInfo};
use super::pgoutput::parse_lsn;
use super::sql::{self, qualified, Builder};
use crate::engine::{CutOverLock, Key, Position, PREFIX};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::ColumnMapping;
use crate::target::Target;
use async_trait::async_trait;
use std::time::Duration;
use tokio_postgres::Client;

pub struct CutOverSetup {
    pub target: Target,
    pub schema: String,
    pub orig: String,
    pub shadow: String,
    pub old: String,
    pub publication: String,
    pub builder: Builder,
    pub mapping: ColumnMapping,
    pub info: RelInfo,
    pub index_map: Vec<(String, String)>,
    pub fks_to_validate: Vec<String>,
    /// Identity columns (shadow names) whose value the ALTER sets itself.
    pub identity_set: Vec<String>,
    /// The ALTER set the replica identity: the new table keeps the one it has.
    pub replica_identity_set: bool,
    /// The ALTER's ENABLE/DISABLE TRIGGER clauses.
    pub trigger_changes: Vec<super::alter::TriggerChange>,
    /// NOT VALID constraints kept off the shadow: (name, definition).
    pub not_valid: Vec<(String, String)>,
    pub timeout: Duration,
    pub hold: Option<Duration>,
    /// The run keeps a revert window: godwit's publication switches to the new table and
    /// the old table is made ready to be written by the reverse direction.
    pub window: bool,
    /// Filled by the swap: (name the old table's index had, its name now).
    pub renamed_indexes: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

pub struct PgCutOver {
    l: Option<Client>,
    s: CutOverSetup,
}

fn failed(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::CutOverFailed, msg)
}

pub async fn lock(s: CutOverSetup) -> Result<PgCutOver> {
    let l = connect(&s.target, "cut-over").await?;
    let ms = s.timeout.as_millis().max(1).to_string() + "ms";
    l.query(sql::set_lock_timeout(), &[&ms])
        .await
        .map_err(|e| pg_err(e, "setting lock_timeout"))?;
    batch(&l, "BEGIN", "starting the cut-over").await?;
    if let Err(e) = batch(
        &l,
        &sql::lock_tables(&s.schema, &s.orig, &s.shadow),
        "locking the tables for cut-over",
    )
    .await
    {
        let _ = l.batch_execute("ROLLBACK").await;
        return Err(failed(format!(
            "{} (the lock was not granted within {:.1} s)",
            e.message,
            s.timeout.as_secs_f64()
        ))
        .with_hint("a long transaction holds the table; it is retried with backoff"));
    }
    Ok(PgCutOver { l: Some(l), s })
}

/// (qualified name, schema, name, column, dependency type).
type OwnedSeq = (String, String, String, String, String);
/// (name, permissive, roles, command, qual, with check).
type Policy = (
    String,
    String,
    Vec<String>,
    String,
    Option<String>,
    Option<String>,
);

/// What is captured before the renames (definitions that name the table by name and so
/// resolve to the new table when re-run after them).
#[derive(Default)]
struct Captured {
    views: Vec<(String, String, Option<String>)>,
    fks: Vec<(String, String, String, bool, bool)>,
    triggers: Vec<(String, String, String)>,
    grants: Vec<(Option<String>, String, bool)>,
    owner: String,
    me: String,
    comment: Option<String>,
    rls: (bool, bool),
    policies: Vec<Policy>,
    publications: Vec<String>,
    orig_sequences: Vec<OwnedSeq>,
    shadow_sequences: Vec<OwnedSeq>,
}

impl PgCutOver {
    fn l(&self) -> Result<&Client> {
        self.l
            .as_ref()
            .ok_or_else(|| failed("the cut-over session is gone"))
    }

    async fn capture(&self) -> Result<Captured> {
        let l = self.l()?;
        let orig = qualified(&self.s.schema, &self.s.orig);
        let shadow = qualified(&self.s.schema, &self.s.shadow);
        let rd = |e| pg_err(e, "reading what depends on the table");
        let mut c = Captured::default();
        for r in l.query(sql::DEPENDENT_VIEWS, &[&orig]).await.map_err(rd)? {
            let kind: String = r.try_get(3).map_err(rd)?;
            let name: String = r.try_get(0).map_err(rd)?;
            if kind != "v" {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("materialized view {name} depends on the table"),
                )
                .with_hint(
                    "drop the materialized view before the migration and create it again after",
                ));
            }
            c.views
                .push((name, r.try_get(1).map_err(rd)?, r.try_get(2).map_err(rd)?));
        }
        for r in l.query(sql::REFERENCING_FKS, &[&orig]).await.map_err(rd)? {
            c.fks.push((
                r.try_get(0).map_err(rd)?,
                r.try_get(1).map_err(rd)?,
                r.try_get(2).map_err(rd)?,
                r.try_get(3).map_err(rd)?,
                r.try_get(4).map_err(rd)?,
            ));
        }
        for r in l.query(sql::TRIGGERS, &[&orig]).await.map_err(rd)? {
            c.triggers.push((
                r.try_get(0).map_err(rd)?,
                r.try_get(1).map_err(rd)?,
                r.try_get(2).map_err(rd)?,
            ));
        }
        for r in l.query(sql::GRANTS, &[&orig]).await.map_err(rd)? {
            c.grants.push((
                r.try_get(0).map_err(rd)?,
                r.try_get(1).map_err(rd)?,
                r.try_get(2).map_err(rd)?,
            ));
        }
        let p = l.query_one(sql::TABLE_PROPS, &[&orig]).await.map_err(rd)?;
        c.owner = p.try_get(0).map_err(rd)?;
        c.comment = p.try_get(1).map_err(rd)?;
        c.rls = (p.try_get(2).map_err(rd)?, p.try_get(3).map_err(rd)?);
        c.me = p.try_get(5).map_err(rd)?;
        for r in l
            .query(sql::POLICIES, &[&self.s.schema, &self.s.orig])
            .await
            .map_err(rd)?
        {
            c.policies.push((
                r.try_get(0).map_err(rd)?,
                r.try_get(1).map_err(rd)?,
                r.try_get(2).map_err(rd)?,
                r.try_get(3).map_err(rd)?,
                r.try_get(4).map_err(rd)?,
                r.try_get(5).map_err(rd)?,
            ));
        }
        for r in l
            .query(sql::PUBLICATIONS, &[&orig, &self.s.publication])
            .await
            .map_err(rd)?
        {
            c.publications.push(r.try_get(0).map_err(rd)?);
        }
        let seqs = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<OwnedSeq>> {
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0).map_err(rd)?,
                        r.try_get(1).map_err(rd)?,
                        r.try_get(2).map_err(rd)?,
                        r.try_get(3).map_err(rd)?,
                        r.try_get(4).map_err(rd)?,
                    ))
                })
                .collect()
        };
        c.orig_sequences = seqs(l.query(sql::OWNED_SEQUENCES, &[&orig]).await.map_err(rd)?)?;
        c.shadow_sequences = seqs(
            l.query(sql::OWNED_SEQUENCES, &[&shadow])
                .await
                .map_err(rd)?,
        )?;
        Ok(c)
    }

    async fn exists(&self, schema: &str, name: &str) -> Result<bool> {
        relation_exists(self.l()?, schema, name).await
    }

    /// Everything between the lock and the commit. Returns the constraints to validate
    /// after the commit: (table, constraint).
    async fn swap_in_tx(&self) -> Result<Vec<(String, String)>> {
        let s = &self.s;
        let cap = self.capture().await?;
        let l = self.l()?;
        let sch = s.schema.as_str();
        let new = qualified(sch, &s.orig);
        let stamp = s.old.rsplit('_').next().unwrap_or("0").to_string();
        let orig_idx = inspect::indexes(l, &qualified(sch, &s.orig)).await?;
        let shadow_idx = inspect::indexes(l, &qualified(sch, &s.shadow)).await?;
        let mut renamed = Vec::new();

        // 1. Tables and index names.
        batch(
            l,
            &sql::rename_table(sch, &s.orig, &s.old),
            "renaming the original table",
        )
        .await?;
        for (i, idx) in orig_idx.iter().enumerate() {
            // Index names are per schema: the table's hash keeps two tables swapped in
            // the same second apart.
            let tmp = format!(
                "{PREFIX}i{stamp}_{:08x}_{i}",
                crate::engine::fnv32(s.orig.bytes())
            );
            batch(
                l,
                &sql::rename_index(sch, &idx.name, &tmp),
                "renaming an old index",
            )
            .await?;
            renamed.push((idx.name.clone(), tmp));
        }
        batch(
            l,
            &sql::rename_table(sch, &s.shadow, &s.orig),
            "renaming the new table",
        )
        .await?;
        for idx in &shadow_idx {
            let target = match s.index_map.iter().find(|(_, sh)| *sh == idx.name) {
                Some((o, _)) => Some(o.clone()),
                // An index the ALTER added: the name the in-place ALTER would have chosen.
                None => idx
                    .name
                    .strip_prefix(&format!("{}_", s.shadow))
                    .map(|rest| format!("{}_{rest}", s.orig))
                    .filter(|n| n.len() <= 63),
            };
            if let Some(t) = target {
                if !self.exists(sch, &t).await? {
                    batch(l, &sql::rename_index(sch, &idx.name, &t), "naming an index").await?;
                }
            }
        }

        // 2. Sequences.
        for (i, (q, seq_schema, seq_name, col, dep)) in cap.orig_sequences.iter().enumerate() {
            let Some(target_col) = s.mapping.target_of(col) else {
                continue;
            };
            if dep == "a" {
                batch(
                    l,
                    &sql::sequence_owned_by(seq_schema, seq_name, sch, &s.orig, target_col),
                    "moving a sequence to the new table",
                )
                .await?;
                continue;
            }
            // Identity: the new table has its own sequence; carry the value and the name.
            let Some((nq, n_schema, n_name, ..)) = cap
                .shadow_sequences
                .iter()
                .find(|(_, _, _, c, d)| c == target_col && d == "i")
            else {
                continue;
            };
            // Read under the lock: no insert into the original can take a value now.
            // An ALTER that sets the value itself (RESTART, a new identity) keeps its
            // own, as in place.
            if !s.identity_set.iter().any(|c| c == target_col) {
                let st = l
                    .query_one(sql::sequence_state(q).as_str(), &[])
                    .await
                    .map_err(|e| pg_err(e, "reading an identity sequence"))?;
                let value: i64 = st.try_get(0).map_err(|e| pg_err(e, "reading a sequence"))?;
                let called: bool = st.try_get(1).map_err(|e| pg_err(e, "reading a sequence"))?;
                l.query(sql::SETVAL, &[nq, &value, &called])
                    .await
                    .map_err(|e| pg_err(e, "carrying an identity value over"))?;
            }
            let tmp = format!("{PREFIX}q{stamp}_{i}");
            batch(
                l,
                &sql::rename_sequence(seq_schema, seq_name, &tmp),
                "renaming an old sequence",
            )
            .await?;
            if n_schema == seq_schema {
                batch(
                    l,
                    &sql::rename_sequence(n_schema, n_name, seq_name),
                    "naming a sequence",
                )
                .await?;
            }
        }
        // Sequences the ALTER created (a new serial or identity column, also one added
        // again under a dropped column's name) get the name the in-place ALTER gives
        // them; a sequence of the original that the dropped column owned leaves that
        // name to it, as it would be dropped in place.
        for (j, (_, n_schema, n_name, ..)) in cap.shadow_sequences.iter().enumerate() {
            let Some(rest) = n_name.strip_prefix(&format!("{}_", s.shadow)) else {
                continue;
            };
            let target = format!("{}_{rest}", s.orig);
            if target.len() > 63 {
                continue;
            }
            let left_behind = cap.orig_sequences.iter().find(|(_, sc, nm, col, _)| {
                sc == n_schema && *nm == target && s.mapping.target_of(col).is_none()
            });
            if let Some((_, sc, nm, ..)) = left_behind {
                let tmp = format!("{PREFIX}q{stamp}_d{j}");
                batch(
                    l,
                    &sql::rename_sequence(sc, nm, &tmp),
                    "renaming an old sequence",
                )
                .await?;
            }
            if self.exists(n_schema, &target).await? {
                tracing::warn!("sequence {n_name} keeps its name: {target} is taken");
                continue;
            }
            batch(
                l,
                &sql::rename_sequence(n_schema, n_name, &target),
                "naming a sequence",
            )
            .await?;
        }

        // 3. Foreign keys pointing at the table: bound to the old OID, so re-created.
        let mut validate = Vec::new();
        for (child, name, def, valid, selfref) in &cap.fks {
            if *selfref {
                // The old table keeps its own; the new one gets it (the shadow had none).
                batch(
                    l,
                    &sql::add_constraint_not_valid(&new, name, def),
                    "re-creating a foreign key",
                )
                .await?;
                if *valid {
                    validate.push((new.clone(), name.clone()));
                }
                continue;
            }
            batch(
                l,
                &sql::drop_constraint(child, name),
                "re-creating a foreign key",
            )
            .await?;
            batch(
                l,
                &sql::add_constraint_not_valid(child, name, def),
                "re-creating a foreign key",
            )
            .await?;
            if *valid {
                validate.push((child.clone(), name.clone()));
            }
        }
        for name in &s.fks_to_validate {
            validate.push((new.clone(), name.clone()));
        }
        for (name, def) in &s.not_valid {
            batch(
                l,
                &sql::add_constraint_not_valid(&new, name, def),
                "adding a NOT VALID constraint",
            )
            .await?;
        }

        // 4. Views, triggers, grants, owner, comment, security, identity, publications.
        for (view, def, opts) in &cap.views {
            let def = def.trim().trim_end_matches(';');
            let stmt = match opts {
                Some(o) if !o.is_empty() => {
                    format!("CREATE OR REPLACE VIEW {view} WITH ({o}) AS {def}")
                }
                _ => sql::create_or_replace_view(view, def),
            };
            batch(l, &stmt, &format!("re-creating view {view}")).await?;
        }
        for (name, def, state) in &cap.triggers {
            batch(l, def, &format!("re-creating trigger {name}")).await?;
            let carried = state.chars().next().unwrap_or('O');
            let state = super::alter::trigger_state_after(name, carried, &s.trigger_changes);
            if let Some(st) = sql::trigger_state(&new, name, state) {
                batch(l, &st, "restoring a trigger's state").await?;
            }
        }
        if cap.owner != cap.me {
            batch(
                l,
                &sql::owner_to(&new, &cap.owner),
                "giving the new table its owner",
            )
            .await?;
        }
        for (grantee, privilege, grantable) in &cap.grants {
            if grantee.as_deref() == Some(cap.owner.as_str()) {
                continue;
            }
            batch(
                l,
                &sql::grant(privilege, &new, grantee.as_deref(), *grantable),
                "copying a grant",
            )
            .await?;
        }
        if let Some(comment) = &cap.comment {
            let stmt: String = l
                .query_one(sql::FORMAT_TABLE_COMMENT, &[&new, comment])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_err(e, "copying the table comment"))?;
            batch(l, &stmt, "copying the table comment").await?;
        }
        for st in sql::row_security(&new, cap.rls.0, cap.rls.1) {
            batch(l, &st, "copying row-level security").await?;
        }
        for (name, permissive, roles, cmd, qual, check) in &cap.policies {
            batch(
                l,
                &sql::create_policy(
                    name,
                    &new,
                    permissive,
                    cmd,
                    roles,
                    qual.as_deref(),
                    check.as_deref(),
                ),
                "copying a row-level security policy",
            )
            .await?;
        }
        let ident_index = s
            .info
            .identity_index
            .as_ref()
            .filter(|_| s.info.replica_identity == 'i');
        let carried = if s.replica_identity_set {
            None
        } else {
            sql::replica_identity(
                &new,
                s.info.replica_identity,
                ident_index.map(|s| s.as_str()),
            )
        };
        if let Some(st) = carried {
            batch(l, &st, "copying the replica identity").await?;
        }
        for p in &cap.publications {
            batch(
                l,
                &sql::add_to_publication(p, &new),
                "adding the new table to a publication",
            )
            .await?;
        }
        if s.window {
            self.prepare_window(&cap).await?;
        }
        // The swap's mark in the change stream: its commit is where the stream of the
        // new table starts (the revert window), and the run's stream stops there.
        l.query(sql::FENCE, &[&super::stream::swap_marker(sch, &s.old)])
            .await
            .map_err(|e| pg_err(e, "marking the swap in the change stream"))?;
        if let Ok(mut r) = s.renamed_indexes.lock() {
            *r = renamed;
        }
        Ok(validate)
    }

    /// With a revert window (docs/how-it-works.md, "Revert"): godwit's publication
    /// publishes the new table instead of the old one (the slot is kept: the reverse
    /// direction reads the new table's changes from the swap's commit on), and the old
    /// table, which the window writes, loses what the swap gave the new table and what
    /// must not act on those writes: its triggers, policies and self-referencing foreign
    /// keys (a revert gives it the new table's again) and its membership in the
    /// application's publications (subscribers must not receive the replay).
    async fn prepare_window(&self, cap: &Captured) -> Result<()> {
        let s = &self.s;
        let l = self.l()?;
        let old = qualified(&s.schema, &s.old);
        batch(
            l,
            &sql::set_publication_table(&s.publication, &qualified(&s.schema, &s.orig)),
            "switching godwit's publication to the new table",
        )
        .await?;
        for (name, ..) in &cap.triggers {
            batch(
                l,
                &sql::drop_trigger(name, &old),
                "removing a trigger from the old table",
            )
            .await?;
        }
        for (name, ..) in &cap.policies {
            batch(
                l,
                &sql::drop_policy(name, &old),
                "removing a policy from the old table",
            )
            .await?;
        }
        for (_, name, _, _, selfref) in &cap.fks {
            if *selfref {
                batch(
                    l,
                    &sql::drop_constraint(&old, name),
                    "removing a foreign key from the old table",
                )
                .await?;
            }
        }
        for p in &cap.publications {
            batch(
                l,
                &sql::drop_from_publication(p, &old),
                "removing the old table from a publication",
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl CutOverLock for PgCutOver {
    async fn fence(&mut self) -> Result<Position> {
        write_fence(&self.s.target, &format!("cut-over {}", self.s.old)).await
    }

    async fn flush(&mut self, keys: &[Key]) -> Result<u64> {
        flush_keys(self.l()?, &self.s.builder, keys, false).await
    }

    async fn swap(&mut self) -> Result<()> {
        let validate = match self.swap_in_tx().await {
            Ok(v) => v,
            Err(e) => {
                let _ = self.release().await;
                return Err(e);
            }
        };
        if let Some(h) = self.s.hold {
            tokio::time::sleep(h).await;
        }
        let l = self
            .l
            .take()
            .ok_or_else(|| failed("the cut-over session is gone"))?;
        batch(&l, "COMMIT", "committing the cut-over").await?;
        let _ = l.batch_execute("SET lock_timeout = 0").await;
        for (table, name) in validate {
            if let Err(e) = batch(
                &l,
                &sql::validate_constraint(&table, &name),
                "validating a foreign key",
            )
            .await
            {
                tracing::warn!("foreign key {name} on {table} stays NOT VALID: {e}");
            }
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<()> {
        if let Some(l) = self.l.take() {
            let _ = l.batch_execute("ROLLBACK").await;
        }
        Ok(())
    }
}

/// Commit a logical-decoding message on a new session and return its LSN: once the
/// stream has read up to it, it has read every commit made before this call.
pub(super) async fn write_fence(target: &Target, marker: &str) -> Result<Position> {
    let h = connect(target, "fence").await?;
    batch(&h, "BEGIN", "writing a stream fence").await?;
    batch(
        &h,
        "SET LOCAL synchronous_commit = local",
        "writing a stream fence",
    )
    .await?;
    let lsn: String = h
        .query_one(sql::FENCE, &[&marker])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg_err(e, "writing a stream fence"))?;
    batch(&h, "COMMIT", "writing a stream fence").await?;
    parse_lsn(&lsn)
        .map(Position::Lsn)
        .ok_or_else(|| Error::internal(format!("unexpected fence LSN {lsn}")))
}
