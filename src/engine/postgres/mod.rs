//! The PostgreSQL engine: publication + logical slot read with `pgoutput`
//! through the SQL functions, a plain `INSERT … SELECT` copy into an index-less shadow,
//! key-based replay (parked while the copy runs, see `PgEngine::flush`), and a
//! rename-based cut-over in one transaction (see `cutover.rs`).

mod alter;
mod blockers;
mod checkpoint;
mod checks;
pub mod classify;
mod classify_clauses;
pub(crate) mod conn;
mod cutover;
pub mod facts;
mod inspect;
pub mod lag;
pub(crate) mod load;
pub mod pgoutput;
pub mod phases;
pub mod planner;
pub mod sql;
mod sql_rules;
mod stream;
pub use sql_rules::SQL_RULES;
mod verify;

use crate::ddl::AlterSpec;
use crate::engine::retry::Reconnect;
use crate::engine::{
    artifact_base, artifact_names, ArtifactNames, ChangeStream, Copier, CutOverLock, Engine,
    EngineOptions, Key, KeyPart, Position, Scope, PREFIX,
};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{ColumnMapping, Table};
use crate::target::{EngineKind, Target};
use async_trait::async_trait;
use conn::{batch, pg_err};
use inspect::RelInfo;
use sql::{qualified, Builder, KeyColumn};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

pub use conn::pg_err as driver_error;

/// The schema part of a `schema.table` name, when it has one.
pub fn schema_of(table: &str) -> Option<String> {
    inspect::split_name(table).0
}

pub async fn connect(
    target: &Target,
    table: &str,
    opts: &EngineOptions,
) -> Result<Box<dyn Engine>> {
    Ok(Box::new(PgEngine::connect(target, table, opts).await?))
}

/// Names of the replication slot and publication for a table: lower case, at most 63
/// characters, derived from database, schema and table (slots are server-wide).
pub fn stream_names(database: &str, schema: &str, table: &str) -> (String, String) {
    let base: String = artifact_base(table)
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let mut h: u32 = 0x811c_9dc5;
    for b in database
        .bytes()
        .chain([0])
        .chain(schema.bytes())
        .chain([0])
        .chain(table.bytes())
    {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (
        format!("{PREFIX}slot_{base}_{h:08x}"),
        format!("{PREFIX}pub_{base}_{h:08x}"),
    )
}

/// The table of keys parked during the copy: named like the shadow, so the leftovers
/// check, `godwit cleanup` and the prefix checks see it.
pub fn park_name(table: &str) -> String {
    format!("{PREFIX}park_{}", artifact_base(table))
}

/// What `create_shadow` learned, used later by copy, replay and cut-over; kept in the
/// checkpoint (`Engine::resume_state`).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct ShadowState {
    /// (original index name, shadow index name) as `LIKE` created them.
    index_map: Vec<(String, String)>,
    /// (shadow column, USING expression).
    using: Vec<(String, String)>,
    /// Indexes and key constraints dropped for the copy and built in `after_copy`.
    deferred: Vec<Deferred>,
    /// Foreign keys added NOT VALID to the shadow, to validate after the cut-over.
    fks_to_validate: Vec<String>,
    /// Identity columns whose sequence the ALTER itself sets (`RESTART`, a new
    /// identity): their value is not carried over from the original at cut-over.
    identity_set: Vec<String>,
    /// The ALTER sets the replica identity: the shadow's is kept at cut-over.
    #[serde(default)]
    replica_identity_set: bool,
    /// The ALTER's ENABLE/DISABLE TRIGGER clauses, applied at the cut-over to the states
    /// of the triggers carried over.
    #[serde(default)]
    trigger_changes: Vec<alter::TriggerChange>,
    /// NOT VALID CHECK and FOREIGN KEY constraints (name, definition): kept off the
    /// shadow (old rows need not satisfy them) and added NOT VALID at the cut-over.
    #[serde(default)]
    not_valid: Vec<(String, String)>,
    /// The shadow's unique keys as created (a resumed run finds some of them deferred).
    #[serde(default)]
    unique_keys: Vec<crate::schema::UniqueKey>,
}

/// An index or key constraint of the shadow, dropped for the copy: the statements that
/// build it again (with its comments).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Deferred {
    name: String,
    build: Vec<String>,
}

/// The second key of the runner lock (`pg_try_advisory_lock(1735353463, key)`) of
/// `schema.table` in `database`. A godwit run holds it from start to end; tests take it
/// to play another run.
pub fn runner_lock_key(database: &str, schema: &str, table: &str) -> i32 {
    crate::engine::fnv32(
        database
            .bytes()
            .chain([0])
            .chain(schema.bytes())
            .chain([0])
            .chain(table.bytes()),
    ) as i32
}

pub struct PgEngine {
    target: Target,
    main: tokio::sync::Mutex<Client>,
    schema: String,
    table: String,
    names: ArtifactNames,
    /// The table of keys parked during the copy (`_godwit_park_<table>`).
    park: String,
    slot: String,
    publication: String,
    version: String,
    info: std::sync::Mutex<Option<RelInfo>>,
    shadow: std::sync::Mutex<ShadowState>,
    /// The session that created the slot, between `start_stream` and `open_stream`.
    stream_session: tokio::sync::Mutex<Option<(Client, u64)>>,
    /// The original's columns as the change stream first described them (DDL detection
    /// across streams opened again after a lost connection).
    stream_columns: stream::RelationColumns,
    /// This engine's main session holds the table's runner lock.
    runner_held: std::sync::atomic::AtomicBool,
    /// While the copy runs, replay parks keys instead of writing the shadow.
    parking: std::sync::atomic::AtomicBool,
    /// This run took over a dead run's shadow and stream (`Engine::resume`).
    resumed: std::sync::atomic::AtomicBool,
    /// The session that reads and writes the checkpoint table (`checkpoint.rs`).
    checkpoint_session: tokio::sync::Mutex<Option<Client>>,
    options: EngineOptions,
    /// The old table's index names the swap changed: (name before, name after).
    renamed_indexes: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl PgEngine {
    pub async fn connect(target: &Target, table: &str, options: &EngineOptions) -> Result<Self> {
        let c = conn::connect(target, "main").await?;
        let version: String = c
            .query_one(sql::SERVER_VERSION, &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "reading the server version"))?;
        let (schema, name) = inspect::split_name(table);
        let schema = match schema {
            Some(s) => s,
            None => c
                .query_one(sql::CURRENT_SCHEMA, &[])
                .await
                .and_then(|r| r.try_get::<_, Option<String>>(0))
                .map_err(|e| pg_err(e, "reading the current schema"))?
                .unwrap_or_else(|| "public".into()),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (slot, publication) = stream_names(&target.database, &schema, &name);
        let mut names = artifact_names(&name, now);
        // The revert: the old table the swap kept is the shadow (docs/how-it-works.md,
        // "Revert"); the stream's slot and publication are the table's as always.
        if let Some(given) = &options.names {
            names.shadow = given.shadow.clone();
            if let Some(old) = &given.old {
                names.old = old.clone();
            }
        }
        Ok(PgEngine {
            target: target.clone(),
            main: tokio::sync::Mutex::new(c),
            names,
            park: park_name(&name),
            schema,
            table: name,
            slot,
            publication,
            version,
            info: std::sync::Mutex::new(None),
            shadow: std::sync::Mutex::new(ShadowState::default()),
            stream_session: tokio::sync::Mutex::new(None),
            stream_columns: Default::default(),
            runner_held: Default::default(),
            parking: std::sync::atomic::AtomicBool::new(false),
            resumed: Default::default(),
            checkpoint_session: tokio::sync::Mutex::new(None),
            options: options.clone(),
            renamed_indexes: Default::default(),
        })
    }

    fn orig_q(&self) -> String {
        qualified(&self.schema, &self.table)
    }
    fn shadow_q(&self) -> String {
        qualified(&self.schema, &self.names.shadow)
    }
    fn park_q(&self) -> String {
        qualified(&self.schema, &self.park)
    }

    fn rel_info(&self) -> Result<RelInfo> {
        self.info
            .lock()
            .map_err(|_| Error::internal("engine state poisoned"))?
            .clone()
            .ok_or_else(|| Error::internal("the table was not inspected"))
    }

    fn shadow_state(&self) -> Result<ShadowState> {
        Ok(self
            .shadow
            .lock()
            .map_err(|_| Error::internal("engine state poisoned"))?
            .clone())
    }

    fn key_columns(&self, orig: &Table, mapping: &ColumnMapping) -> Result<Vec<KeyColumn>> {
        mapping
            .key
            .source_columns
            .iter()
            .map(|name| {
                let c = orig
                    .column(name)
                    .ok_or_else(|| Error::internal(format!("key column {name} missing")))?;
                if !inspect::key_type_supported(c) {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "key column \"{}\" has type {}, which godwit cannot use to find rows again exactly",
                            c.name, c.column_type
                        ),
                    )
                    .with_hint("use a table whose key is an integer, numeric, text, uuid, date/time, bytea, boolean or enum column"));
                }
                Ok(KeyColumn {
                    name: c.name.clone(),
                    sql_type: c.column_type.clone(),
                })
            })
            .collect()
    }

    fn builder(&self, orig: &Table, mapping: &ColumnMapping) -> Result<Builder> {
        Ok(Builder::new(
            &self.schema,
            &self.table,
            &self.names.shadow,
            mapping,
            self.key_columns(orig, mapping)?,
            &self.shadow_state()?.using,
        ))
    }

    async fn table_exists(&self, c: &Client, name: &str) -> Result<bool> {
        c.query_one(sql::TABLE_EXISTS, &[&self.schema, &name])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "looking for a table"))
    }

    async fn old_tables(&self, c: &Client) -> Result<Vec<String>> {
        let like = format!(
            "{}old\\_{}\\_%",
            PREFIX.replace('_', "\\_"),
            artifact_base(&self.table).replace('_', "\\_")
        );
        let rows = c
            .query(sql::TABLES_LIKE, &[&self.schema, &like])
            .await
            .map_err(|e| pg_err(e, "looking for old tables"))?;
        rows.iter()
            .map(|r| {
                r.try_get(0)
                    .map_err(|e| pg_err(e, "looking for old tables"))
            })
            .collect()
    }

    /// The triggers an ENABLE/DISABLE TRIGGER clause names must exist on the original
    /// (the server's ALTER would say the same); `ALL` is refused: it also switches the
    /// foreign keys' own triggers, which godwit does not carry.
    async fn check_trigger_clauses(
        &self,
        c: &Client,
        orig: &str,
        changes: &[alter::TriggerChange],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = c
            .query(sql::TRIGGERS, &[&orig])
            .await
            .map_err(|e| pg_err(e, "reading the table's triggers"))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        for ch in changes {
            match &ch.target {
                alter::TriggerTarget::All => {
                    return Err(Error::new(
                        ErrorKind::BadInput,
                        "ENABLE/DISABLE TRIGGER ALL is not supported by godwit: it also switches the triggers of foreign keys",
                    )
                    .with_hint("name the triggers, or use USER (every trigger that is not a constraint's); nothing was changed"))
                }
                alter::TriggerTarget::Named(n) if !names.contains(n) => {
                    return Err(Error::new(
                        ErrorKind::InvalidAlter,
                        format!(
                            "the server rejected the ALTER: trigger \"{n}\" for table \"{}\" does not exist",
                            self.table
                        ),
                    )
                    .with_hint("fix the --alter text; nothing was changed"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn create_shadow_inner(&self, c: &Client, alter: &AlterSpec) -> Result<ShadowState> {
        let (orig, shadow) = (self.orig_q(), self.shadow_q());
        batch(
            c,
            &sql::create_shadow_like(&self.schema, &self.table, &self.names.shadow),
            "creating the shadow table",
        )
        .await?;
        let opts: Vec<String> = c
            .query_one(sql::RELOPTIONS, &[&orig])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "reading storage parameters"))?;
        if !opts.is_empty() {
            let stmt: String = c
                .query_one(sql::FORMAT_RELOPTIONS, &[&shadow, &opts])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_err(e, "copying storage parameters"))?;
            batch(c, &stmt, "copying storage parameters").await?;
        }
        let mut state = ShadowState::default();
        // LIKE never copies foreign keys; the shadow gets the original's outgoing ones so
        // the ALTER can act on them. NOT VALID: the copy checks every row anyway.
        for r in c
            .query(sql::OUTGOING_FKS, &[&orig])
            .await
            .map_err(|e| pg_err(e, "reading foreign keys"))?
        {
            let name: String = r
                .try_get(0)
                .map_err(|e| pg_err(e, "reading foreign keys"))?;
            let def: String = r
                .try_get(1)
                .map_err(|e| pg_err(e, "reading foreign keys"))?;
            let valid: bool = r
                .try_get(2)
                .map_err(|e| pg_err(e, "reading foreign keys"))?;
            batch(
                c,
                &sql::add_constraint_not_valid(&shadow, &name, &def),
                "copying a foreign key to the shadow table",
            )
            .await?;
            if valid {
                state.fks_to_validate.push(name);
            }
        }
        let orig_idx = inspect::indexes(c, &orig).await?;
        let shadow_idx = inspect::indexes(c, &shadow).await?;
        state.index_map = inspect::match_indexes(&orig_idx, &shadow_idx);
        // LIKE does not copy the CLUSTER ON mark: the shadow's twin of the original's
        // clustered index gets it (before the ALTER, which may change it).
        if let Some(o) = orig_idx.iter().find(|i| i.clustered) {
            if let Some((_, twin)) = state.index_map.iter().find(|(from, _)| *from == o.name) {
                batch(
                    c,
                    &sql::cluster_on(&shadow, twin),
                    "copying the clustered index mark",
                )
                .await?;
            }
        }
        let (rest, triggers) = alter::split_trigger_clauses(&alter.clauses)?;
        self.check_trigger_clauses(c, &orig, &triggers).await?;
        state.trigger_changes = triggers;
        let clauses = alter::translate_names(&rest, &state.index_map)?;
        let applied = if clauses.trim().is_empty() {
            Ok(())
        } else {
            batch(
                c,
                &sql::alter_table(&self.schema, &self.names.shadow, &clauses),
                "applying the ALTER",
            )
            .await
        };
        if let Err(e) = applied {
            return Err(Error::new(
                ErrorKind::InvalidAlter,
                format!(
                    "the server rejected the ALTER: {}",
                    e.message
                        .trim_start_matches("applying the ALTER: ")
                        .replace(&self.names.shadow, &self.table)
                ),
            )
            .with_hint(
                "fix the --alter text; it was tried on an empty copy, nothing else changed",
            ));
        }
        // A NOT VALID constraint holds for new rows only: the copy's rows are old rows,
        // so the shadow goes without it, and the new table gets it NOT VALID at the
        // cut-over, as the native ALTER leaves it (unless the ALTER validates it).
        let validated = alter::validated_constraints(&alter.clauses)?;
        for r in c
            .query(sql::NOT_VALID_CONSTRAINTS, &[&shadow, &orig])
            .await
            .map_err(|e| pg_err(e, "reading NOT VALID constraints"))?
        {
            let name: String = r.get(0);
            if state.fks_to_validate.contains(&name) || validated.contains(&name) {
                continue;
            }
            let def: String = r.get(1);
            let def = def
                .trim_end()
                .strip_suffix("NOT VALID")
                .unwrap_or(&def)
                .trim_end()
                .to_string();
            batch(
                c,
                &sql::drop_constraint(&shadow, &name),
                "keeping a NOT VALID constraint off the shadow",
            )
            .await?;
            state.not_valid.push((name, def));
        }
        state.using = alter::using_expressions(&alter.clauses)?;
        state.identity_set = alter::identity_set(&alter.clauses)?;
        state.replica_identity_set = alter::sets_replica_identity(&alter.clauses)?;
        Ok(state)
    }

    /// Drop the shadow's indexes and key constraints for the copy (each row then costs
    /// one heap insert; building an index afterwards is about twice as fast as keeping it
    /// up to date). Returns what to build again.
    async fn defer_indexes(&self, c: &Client) -> Result<Vec<Deferred>> {
        let shadow = self.shadow_q();
        let read = |e| pg_err(e, "reading the shadow's indexes");
        let indexes = inspect::indexes(c, &shadow).await?;
        let index_map = self.shadow_state()?.index_map;
        let mut out = Vec::new();
        for r in c
            .query(sql::KEY_CONSTRAINTS, &[&shadow])
            .await
            .map_err(read)?
        {
            let name: String = r.try_get(0).map_err(read)?;
            let index: String = r.try_get(1).map_err(read)?;
            let kind: String = r.try_get(2).map_err(read)?;
            let deferrable: String = r.try_get(3).map_err(read)?;
            let mut comment: Option<String> = r.try_get(4).map_err(read)?;
            if let Some((orig_index, _)) = index_map.iter().find(|(_, s)| *s == index) {
                if let Some(r) = c
                    .query_opt(sql::KEY_CONSTRAINT_COMMENT, &[&self.orig_q(), orig_index])
                    .await
                    .map_err(read)?
                {
                    comment = comment.or(r.try_get(0).map_err(read)?);
                }
            }
            let def = indexes.iter().find(|i| i.name == index).ok_or_else(|| {
                Error::internal(format!("no index {index} for constraint {name}"))
            })?;
            let mut build = vec![
                def.full.clone(),
                sql::add_constraint_using_index(&shadow, &name, &kind, &index, &deferrable),
            ];
            if def.clustered {
                // The index now has the constraint's name.
                build.push(sql::cluster_on(&shadow, &name));
            }
            if let Some(text) = comment {
                build.push(
                    c.query_one(sql::FORMAT_CONSTRAINT_COMMENT, &[&name, &shadow, &text])
                        .await
                        .and_then(|r| r.try_get(0))
                        .map_err(|e| pg_err(e, "copying a constraint comment"))?,
                );
            }
            if let Some(text) = &def.comment {
                build.push(self.index_comment(c, &index, text).await?);
            }
            batch(
                c,
                &sql::drop_constraint(&shadow, &name),
                "deferring a key constraint",
            )
            .await?;
            out.push(Deferred { name, build });
        }
        for idx in indexes.iter().filter(|i| !i.constraint) {
            let mut build = vec![idx.full.clone()];
            if idx.clustered {
                build.push(sql::cluster_on(&shadow, &idx.name));
            }
            if let Some(text) = &idx.comment {
                build.push(self.index_comment(c, &idx.name, text).await?);
            }
            batch(
                c,
                &sql::drop_index(&self.schema, &idx.name),
                "deferring an index",
            )
            .await?;
            out.push(Deferred {
                name: idx.name.clone(),
                build,
            });
        }
        Ok(out)
    }

    async fn index_comment(&self, c: &Client, index: &str, text: &str) -> Result<String> {
        c.query_one(
            sql::FORMAT_INDEX_COMMENT,
            &[&qualified(&self.schema, index), &text],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg_err(e, "copying an index comment"))
    }

    /// This tool's objects for this table that exist now.
    /// Schemas other than the table's that hold a table with this table's shadow name
    /// and no table of this table's name (so it is not the shadow of a migration there):
    /// left by an ALTER that moved the shadow (`SET SCHEMA`, refused since).
    async fn stray_shadows(&self, c: &Client) -> Result<Vec<String>> {
        let rows = c
            .query(
                sql::STRAY_SHADOWS,
                &[&self.names.shadow, &self.schema, &self.table],
            )
            .await
            .map_err(|e| pg_err(e, "looking for shadow tables in other schemas"))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| pg_err(e, "reading a schema name")))
            .collect()
    }

    pub(crate) async fn leftovers_with(&self, c: &Client) -> Result<Vec<String>> {
        let mut found = Vec::new();
        if self.table_exists(c, &self.names.shadow).await? {
            found.push(format!("table {}.{}", self.schema, self.names.shadow));
        }
        for ns in self.stray_shadows(c).await? {
            found.push(format!("table {ns}.{}", self.names.shadow));
        }
        if self.table_exists(c, &self.park).await? {
            found.push(format!("table {}.{}", self.schema, self.park));
        }
        if c.query_opt(sql::SLOT_STATE, &[&self.slot])
            .await
            .map_err(|e| pg_err(e, "looking for the replication slot"))?
            .is_some()
        {
            found.push(format!("replication slot {}", self.slot));
        }
        let pubs: bool = c
            .query_one(sql::PUBLICATION_EXISTS, &[&self.publication])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "looking for the publication"))?;
        if pubs {
            found.push(format!("publication {}", self.publication));
        }
        Ok(found)
    }

    /// The main session. When it was lost, a new one (after the backoff of
    /// `--reconnect-timeout-seconds`), which takes the table's runner lock again. (The
    /// keys parked during the copy are in a table of their own: they outlive it.)
    async fn main(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        let mut c = self.main.lock().await;
        if !c.is_closed() {
            return Ok(c);
        }
        // The runner lock went with the session.
        self.runner_held
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let policy = self.options.reconnect.clone();
        let mut outage = policy.outage("of the main session");
        let mut err = Error::new(ErrorKind::Unreachable, "the main session was closed");
        loop {
            outage.wait(err).await?;
            match self.reopen_main().await {
                Ok(new) => {
                    *c = new;
                    self.runner_held
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    outage.recovered();
                    return Ok(c);
                }
                Err(e) => err = e,
            }
        }
    }

    async fn reopen_main(&self) -> Result<Client> {
        let c = writer_session(&self.target, "main").await?;
        let key = runner_lock_key(&self.target.database, &self.schema, &self.table);
        let got: bool = c
            .query_one(sql::RUNNER_LOCK, &[&key])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "taking the table's runner lock again"))?;
        if !got {
            return Err(Error::new(
                ErrorKind::Leftovers,
                "another godwit run took this table's runner lock while this run's main session was lost",
            )
            .with_hint("let that run finish; this one stops and leaves the table unchanged"));
        }
        Ok(c)
    }

    /// With the table's runner lock held, a session that still holds a lock on the shadow
    /// or the table of parked keys is the dead run's, which the server has not ended yet
    /// (a copy chunk, a replay, an index build, a cut-over): end it and wait (at most
    /// 10 s) until it is gone, so that nothing of the dead run commits after this run has
    /// looked at what it left.
    async fn end_dead_run_writers(&self, c: &Client) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let held = c
                .query(sql::END_LOCK_HOLDERS, &[&self.shadow_q(), &self.park_q()])
                .await
                .map_err(|e| pg_err(e, "ending the dead run's sessions"))?;
            if held.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Leftovers,
                    format!(
                        "sessions of the earlier run still hold {}.{} after being asked to end",
                        self.schema, self.names.shadow
                    ),
                )
                .with_hint("wait a few seconds and run the same command again"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// End the session holding the slot and wait (at most 10 s) until it lets go.
    /// Returns whether the slot is still in use.
    async fn end_slot_holder(&self, c: &Client) -> Result<bool> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let held = c
                .query(sql::END_SLOT_HOLDER, &[&self.slot])
                .await
                .map_err(|e| pg_err(e, "ending the session that holds the replication slot"))?;
            if held.is_empty() {
                return Ok(false);
            }
            if std::time::Instant::now() > deadline {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn drop_slot(&self, c: &Client) -> Result<Option<String>> {
        let row = c
            .query_opt(sql::SLOT_STATE, &[&self.slot])
            .await
            .map_err(|e| pg_err(e, "looking for the replication slot"))?;
        let Some(row) = row else { return Ok(None) };
        let mut active: bool = row.try_get(0).map_err(|e| pg_err(e, "reading the slot"))?;
        let pid: Option<i32> = row.try_get(1).map_err(|e| pg_err(e, "reading the slot"))?;
        if active && self.runner_held.load(std::sync::atomic::Ordering::SeqCst) {
            // With the table's runner lock held, the slot's user is a session of this
            // run or of a dead one (lost, its server process not gone yet): end it.
            active = self.end_slot_holder(c).await?;
        }
        if active {
            return Err(Error::new(
                ErrorKind::Leftovers,
                format!(
                    "replication slot {} is in use by server process {} (another godwit run?)",
                    self.slot,
                    pid.unwrap_or(0)
                ),
            )
            .with_hint("wait for that run to finish, or stop it; then run `godwit cleanup` to drop the slot"));
        }
        c.query(sql::DROP_SLOT, &[&self.slot])
            .await
            .map_err(|e| pg_err(e, "dropping the replication slot"))?;
        Ok(Some(format!("replication slot {}", self.slot)))
    }
}

fn human_bytes(b: i64) -> String {
    let b = b.max(0) as f64;
    match b {
        b if b >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GB", b / (1024.0 * 1024.0 * 1024.0)),
        b if b >= 1024.0 * 1024.0 => format!("{:.1} MB", b / (1024.0 * 1024.0)),
        b if b >= 1024.0 => format!("{:.1} kB", b / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// What is still to build after a resumed copy: what the dead run deferred (`saved`),
/// then what the shadow has now that it did not list (a key constraint or index the dead
/// run had built again before it died is in `saved` already, with its comments).
fn merge_deferred(saved: Vec<Deferred>, found: Vec<Deferred>) -> Vec<Deferred> {
    let mut out = saved;
    for d in found {
        let known = out
            .iter()
            .any(|s| s.name == d.name || s.build.first() == d.build.first());
        if !known {
            out.push(d);
        }
    }
    out
}

/// Key parts as text, one array per key column (the statement builder's bind format).
fn key_arrays(keys: &[Key], ncols: usize) -> Vec<Vec<String>> {
    let mut cols = vec![Vec::with_capacity(keys.len()); ncols];
    for k in keys {
        for (i, part) in k.iter().enumerate().take(ncols) {
            cols[i].push(part_text(part));
        }
    }
    cols
}

fn part_text(p: &KeyPart) -> String {
    match p {
        KeyPart::Text(s) => s.clone(),
        KeyPart::Int(i) => i.to_string(),
        KeyPart::UInt(u) => u.to_string(),
        KeyPart::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Decoding restarts at the slot's restart_lsn, which only moves past a
/// running-transactions record. After the copy and the index builds there is a lot of WAL
/// behind it; without such a record every peek, including the one under the cut-over
/// lock, would read all of it again. A checkpoint writes one now (otherwise the
/// background writer does within 15 s). Needs superuser or `pg_checkpoint`.
async fn restart_point(c: &Client) {
    tracing::debug!("checkpoint");
    if let Err(e) = c.batch_execute("CHECKPOINT").await {
        tracing::debug!(
            "CHECKPOINT not allowed ({e}); the cut-over may wait for the next running-xacts record"
        );
    }
}

/// Build indexes and key constraints of the shadow dropped for the copy, one after the
/// other on `c`.
async fn build_deferred(c: &Client, items: &[&Deferred]) -> Result<()> {
    batch(c, sql::WRITER_SESSION, "preparing an index build").await?;
    // Index builds write whole pages to the WAL, which logical decoding then has to read
    // through. Compressed pages make that WAL several times smaller. A superuser-only
    // setting: skipped otherwise.
    if c.batch_execute("SET wal_compression = 'lz4'")
        .await
        .is_err()
        && c.batch_execute("SET wal_compression = 'pglz'")
            .await
            .is_err()
    {
        tracing::debug!("wal_compression not settable here");
    }
    for d in items {
        tracing::info!(index = %d.name, "building an index of the shadow table");
        for stmt in &d.build {
            batch(c, stmt, "building an index of the shadow table").await?;
        }
    }
    let _ = c.batch_execute("RESET wal_compression").await;
    Ok(())
}

/// Flush `keys` on `c`: delete them from the shadow, re-insert what the original holds
/// now. With `own_tx`, one transaction per batch; otherwise inside the caller's.
pub(crate) async fn flush_keys(c: &Client, b: &Builder, keys: &[Key], own_tx: bool) -> Result<u64> {
    let chunks: Vec<&[Key]> = keys.chunks(1000).collect();
    // Inside the cut-over's transaction an error ends the transaction: there (the
    // application's writes held, every change known) the old rows of all keys go first,
    // so that a unique value that moved from a row of a later chunk to one of an
    // earlier chunk meets no old copy (docs/architecture.md, "Key-based replay and its
    // races", 9).
    let mut cleared = !own_tx && chunks.len() > 1;
    if cleared {
        delete_keys(c, b, &chunks).await?;
    }
    let (mut n, mut i) = (0, 0);
    while let Some(chunk) = chunks.get(i).copied() {
        let arrays = key_arrays(chunk, b.key.len());
        if own_tx {
            batch(c, "BEGIN", "replaying changes").await?;
        }
        match replay_arrays(c, b, &arrays).await {
            Ok(()) => {
                if own_tx {
                    batch(c, "COMMIT", "replaying changes").await?;
                }
                n += chunk.len() as u64;
                i += 1;
            }
            Err(e) => {
                if own_tx {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                // Outside it, the same when a chunk meets such a value.
                if own_tx && !cleared && e.is_unique_violation() && chunks.len() > i + 1 {
                    tracing::debug!("replay: a unique value moved between batches; removing the remaining keys' rows first ({e})");
                    delete_keys(c, b, &chunks[i..]).await?;
                    cleared = true;
                    continue;
                }
                return Err(e);
            }
        }
    }
    Ok(n)
}

/// Remove the shadow's rows of `chunks`' keys (each statement on its own).
async fn delete_keys(c: &Client, b: &Builder, chunks: &[&[Key]]) -> Result<()> {
    for chunk in chunks {
        delete_arrays(c, b, &key_arrays(chunk, b.key.len())).await?;
    }
    Ok(())
}

fn params(arrays: &[Vec<String>]) -> Vec<&(dyn ToSql + Sync)> {
    arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// Replay keys given as one text array per key column.
async fn replay_arrays(c: &Client, b: &Builder, arrays: &[Vec<String>]) -> Result<()> {
    delete_arrays(c, b, arrays).await?;
    c.execute(b.flush_insert().as_str(), &params(arrays))
        .await
        .map_err(|e| pg_err(e, "replaying changes (insert)"))?;
    Ok(())
}

/// Remove the shadow's rows of keys given as one text array per key column.
async fn delete_arrays(c: &Client, b: &Builder, arrays: &[Vec<String>]) -> Result<()> {
    c.execute(b.flush_delete().as_str(), &params(arrays))
        .await
        .map_err(|e| pg_err(e, "replaying changes (delete)"))?;
    Ok(())
}

/// Record keys for replay after the copy (each statement commits on its own; parking a
/// key twice, after a lost connection, only replays it twice).
async fn park_keys(c: &Client, b: &Builder, park: &str, keys: &[Key]) -> Result<u64> {
    let stmt = b.park_insert(park);
    for chunk in keys.chunks(10_000) {
        let arrays = key_arrays(chunk, b.key.len());
        c.execute(stmt.as_str(), &params(&arrays))
            .await
            .map_err(|e| pg_err(e, "parking changed keys"))?;
    }
    Ok(keys.len() as u64)
}

/// Replay every parked key, a batch per transaction (taking the batch out of the parked
/// table commits with its replay). Returns the keys replayed.
async fn replay_parked(c: &Client, b: &Builder, park: &str) -> Result<u64> {
    let take = b.park_take(park, 1000);
    let mut n = 0;
    loop {
        batch(c, "BEGIN", "replaying parked keys").await?;
        let r = async {
            let rows = c
                .query(take.as_str(), &[])
                .await
                .map_err(|e| pg_err(e, "reading parked keys"))?;
            let mut arrays = vec![Vec::with_capacity(rows.len()); b.key.len()];
            for r in &rows {
                for (i, col) in arrays.iter_mut().enumerate() {
                    col.push(
                        r.try_get::<_, String>(i)
                            .map_err(|e| pg_err(e, "reading parked keys"))?,
                    );
                }
            }
            if !rows.is_empty() {
                replay_arrays(c, b, &arrays).await?;
            }
            Ok::<_, Error>(rows.len())
        }
        .await;
        match r {
            Ok(got) => {
                batch(c, "COMMIT", "replaying parked keys").await?;
                if got == 0 {
                    return Ok(n);
                }
                n += got as u64;
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
}

/// Sessions that copy at once, each its own part of a chunk: decoding and the other
/// copy session then keep both cores of a small server busy.
const COPY_SESSIONS: usize = 2;

pub struct PgCopier {
    clients: Vec<Client>,
    target: Target,
    reconnect: Reconnect,
    b: Builder,
    last: Option<Vec<String>>,
    done: bool,
    /// The last attempt failed: new sessions, and what it may have written removed.
    redo: bool,
}

/// A session that writes the shadow (`purpose` names it in `pg_stat_activity`).
async fn writer_session(target: &Target, purpose: &str) -> Result<Client> {
    let c = conn::connect(target, purpose).await?;
    batch(&c, sql::WRITER_SESSION, "preparing the copy").await?;
    Ok(c)
}

fn bound_params<'a>(keys: &[&'a Option<Vec<String>>]) -> Vec<&'a (dyn ToSql + Sync)> {
    keys.iter()
        .copied()
        .flatten()
        .flatten()
        .map(|s| s as &(dyn ToSql + Sync))
        .collect()
}

impl PgCopier {
    /// The key `offset` rows after `after` (from the start if None); None past the end.
    async fn boundary(
        &self,
        after: &Option<Vec<String>>,
        offset: u64,
    ) -> Result<Option<Vec<String>>> {
        let row = self.clients[0]
            .query_opt(
                self.b.chunk_end(after.is_some(), offset).as_str(),
                &bound_params(&[after]),
            )
            .await
            .map_err(|e| pg_err(e, "finding the next chunk"))?;
        row.map(|r| {
            (0..self.b.key.len())
                .map(|i| r.try_get::<_, String>(i))
                .collect::<Result<_, _>>()
                .map_err(|e| pg_err(e, "reading a chunk boundary"))
        })
        .transpose()
    }
}

async fn copy_range(
    c: &Client,
    b: &Builder,
    after: &Option<Vec<String>>,
    upto: &Option<Vec<String>>,
) -> Result<u64> {
    c.execute(
        b.copy_chunk(after.is_some(), upto.is_some()).as_str(),
        &bound_params(&[after, upto]),
    )
    .await
    .map_err(|e| pg_err(e, "copying a chunk"))
}

#[async_trait]
impl Copier for PgCopier {
    fn copied_upto(&self) -> Option<Key> {
        self.last
            .as_ref()
            .map(|k| k.iter().cloned().map(KeyPart::Text).collect())
    }

    /// A chunk whose connection is lost is copied again on new sessions, after removing
    /// from the shadow what it may have written (the shadow has no key while the copy
    /// runs, and replay waits until the copy is done, so only copied rows are there).
    async fn next_chunk(&mut self, rows: u64) -> Result<Option<u64>> {
        if self.done {
            return Ok(None);
        }
        let policy = self.reconnect.clone();
        let n = policy
            .run("of the copy", self, |c| Box::pin(c.chunk_once(rows)))
            .await?;
        Ok(Some(n))
    }

    fn finished(&self) -> bool {
        self.done
    }
}

impl PgCopier {
    async fn chunk_once(&mut self, rows: u64) -> Result<u64> {
        let r = self.try_chunk(rows).await;
        // Whatever failed, the next attempt starts from the last finished chunk.
        self.redo = r.is_err();
        r
    }

    async fn try_chunk(&mut self, rows: u64) -> Result<u64> {
        if self.redo || self.clients.is_empty() {
            // New sessions for all: one that failed may not know it yet.
            self.clients.clear();
            for _ in 0..COPY_SESSIONS {
                self.clients
                    .push(writer_session(&self.target, "copy").await?);
            }
        }
        if self.redo {
            let last = &self.last;
            self.clients[0]
                .execute(
                    self.b.delete_copied_after(last.is_some()).as_str(),
                    &bound_params(&[last]),
                )
                .await
                .map_err(|e| pg_err(e, "removing a chunk copied in part"))?;
        }
        let per = (rows / self.clients.len() as u64).max(1);
        let mut ranges = Vec::new();
        let mut from = self.last.clone();
        while ranges.len() < self.clients.len() {
            let upto = self.boundary(&from, per - 1).await?;
            let end = upto.is_none();
            ranges.push((from, upto.clone()));
            if end {
                break;
            }
            from = upto;
        }
        let counts = futures_util::future::try_join_all(
            ranges
                .iter()
                .zip(&self.clients)
                .map(|((a, u), c)| copy_range(c, &self.b, a, u)),
        )
        .await?;
        let n: u64 = counts.iter().sum();
        match ranges.pop().and_then(|(_, u)| u) {
            Some(k) => self.last = Some(k),
            None => self.done = true,
        }
        Ok(n)
    }
}

#[async_trait]
impl Engine for PgEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }
    fn names(&self) -> &ArtifactNames {
        &self.names
    }
    fn server_version(&self) -> String {
        self.version.clone()
    }
    fn cut_over_algorithm(&self) -> &'static str {
        "one transaction: LOCK TABLE … ACCESS EXCLUSIVE, fence, flush, rename"
    }

    async fn inspect(&self) -> Result<Table> {
        let c = self.main.lock().await;
        let (t, info) = inspect::inspect(&c, Some(&self.schema), &self.table).await?;
        *self
            .info
            .lock()
            .map_err(|_| Error::internal("engine state poisoned"))? = Some(info);
        Ok(t)
    }

    async fn preflight(&self, scope: Scope, orig: &Table) -> Result<()> {
        let info = self.rel_info()?;
        let c = self.main.lock().await;
        let mut cx = checks::CheckCtx {
            conn: &c,
            orig,
            info: &info,
            engine: self,
        };
        checks::run(scope, &mut cx).await
    }

    async fn leftovers(&self) -> Result<Vec<String>> {
        let c = self.main().await?;
        self.leftovers_with(&c).await
    }

    async fn cleanup(&self, include_old: bool) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        if let Some((s, _)) = self.stream_session.lock().await.take() {
            let _ = s.query(sql::DROP_SLOT, &[&self.slot]).await;
        }
        let c = self.main().await?;
        if let Some(s) = self.drop_slot(&c).await? {
            gone.push(s);
        }
        let pubs: bool = c
            .query_one(sql::PUBLICATION_EXISTS, &[&self.publication])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "looking for the publication"))?;
        if pubs {
            batch(
                &c,
                &sql::drop_publication(&self.publication),
                "dropping the publication",
            )
            .await?;
            gone.push(format!("publication {}", self.publication));
        }
        if self.table_exists(&c, &self.names.shadow).await? {
            batch(
                &c,
                &sql::drop_table(&self.schema, &self.names.shadow),
                "dropping the shadow table",
            )
            .await?;
            gone.push(format!("table {}.{}", self.schema, self.names.shadow));
        }
        if self.table_exists(&c, &self.park).await? {
            batch(
                &c,
                &sql::drop_table(&self.schema, &self.park),
                "dropping the table of parked keys",
            )
            .await?;
            gone.push(format!("table {}.{}", self.schema, self.park));
        }
        for ns in self.stray_shadows(&c).await? {
            batch(
                &c,
                &sql::drop_table(&ns, &self.names.shadow),
                "dropping a shadow table in another schema",
            )
            .await?;
            gone.push(format!("table {ns}.{}", self.names.shadow));
        }
        if include_old {
            for t in self.old_tables(&c).await? {
                batch(
                    &c,
                    &sql::drop_table(&self.schema, &t),
                    "dropping an old table",
                )
                .await?;
                gone.push(format!("table {}.{t}", self.schema));
            }
        }
        drop(c);
        if self.checkpoint_drop().await? {
            gone.push(checkpoint::label(&self.schema, &self.table));
        }
        Ok(gone)
    }

    async fn cleanup_candidates(&self, include_old: bool) -> Result<Vec<String>> {
        let mut found = self.leftovers().await?;
        if include_old {
            let c = self.main().await?;
            for t in self.old_tables(&c).await? {
                found.push(format!("table {}.{t}", self.schema));
            }
        }
        if self.checkpoint_load().await?.is_some() {
            found.push(checkpoint::label(&self.schema, &self.table));
        }
        Ok(found)
    }

    async fn start_stream(&self, _orig: &Table) -> Result<Position> {
        {
            let c = self.main.lock().await;
            batch(
                &c,
                &sql::create_publication(&self.schema, &self.table, &self.publication),
                "creating the publication",
            )
            .await?;
        }
        // The slot comes after the publication (decoding looks publications up as of
        // each change), on a session that has written nothing.
        let s = conn::connect(&self.target, "stream").await?;
        batch(&s, sql::STREAM_SESSION, "preparing the change stream").await?;
        let lsn: String = s
            .query_one(sql::CREATE_SLOT, &[&self.slot])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| {
                let e = pg_err(e, "creating the replication slot");
                // 53400: configuration_limit_exceeded (all slots in use).
                if e.is_sqlstate("53400") {
                    Error::new(ErrorKind::ReplicationSlots, e.message).with_hint(
                        "free a replication slot (SELECT * FROM pg_replication_slots) or raise max_replication_slots (needs a restart)",
                    )
                } else {
                    e
                }
            })?;
        let lsn = pgoutput::parse_lsn(&lsn)
            .ok_or_else(|| Error::internal(format!("unexpected slot LSN {lsn}")))?;
        *self.stream_session.lock().await = Some((s, lsn));
        Ok(Position::Lsn(lsn))
    }

    async fn open_stream(
        &self,
        _orig: &Table,
        key: &[String],
        from: &Position,
    ) -> Result<Box<dyn ChangeStream>> {
        let started = self.stream_session.lock().await.take();
        let (client, start, confirmed) = match started {
            Some((client, start)) => (client, start, None),
            // Opened again after its session was lost: a new session on the same slot.
            None => {
                let s = conn::connect(&self.target, "stream").await?;
                batch(&s, sql::STREAM_SESSION, "preparing the change stream").await?;
                // The lost session's server process may still hold the slot (in a read
                // that has not ended yet): end it, and try again after the backoff.
                let held = s
                    .query(sql::END_SLOT_HOLDER, &[&self.slot])
                    .await
                    .map_err(|e| pg_err(e, "reading the replication slot"))?;
                if !held.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Unreachable,
                        format!(
                            "replication slot {} is still held by the lost stream session; it was asked to end",
                            self.slot
                        ),
                    ));
                }
                let lsn: Option<String> = s
                    .query_opt(sql::SLOT_CONFIRMED, &[&self.slot])
                    .await
                    .and_then(|r| r.map(|r| r.try_get(0)).transpose())
                    .map_err(|e| pg_err(e, "reading the replication slot"))?;
                let lsn = lsn.and_then(|l| pgoutput::parse_lsn(&l)).ok_or_else(|| {
                    Error::new(
                        ErrorKind::SourceChanged,
                        format!(
                            "replication slot {} is gone: the changes made since it was lost cannot be read",
                            self.slot
                        ),
                    )
                    .with_hint("do not drop godwit's replication slot while it runs; run godwit again")
                })?;
                (s, lsn, Some(lsn))
            }
        };
        let from = match from {
            Position::Lsn(l) => *l,
            _ => start,
        };
        let info = self.rel_info()?;
        let checkpoints = conn::connect(&self.target, "restart points").await.ok();
        let mut s = stream::PgStream::new(
            client,
            self.slot.clone(),
            self.publication.clone(),
            info.oid,
            key.to_vec(),
            from,
            stream::RestartPoints::new(checkpoints, from),
        );
        if let Some(c) = confirmed {
            s.confirmed_at(c);
        }
        s.stop_at_swap(
            stream::swap_marker(&self.schema, &self.names.old),
            self.options.revert_window,
        );
        s.share_columns(self.stream_columns.clone());
        Ok(Box::new(s))
    }

    async fn create_shadow(&self, _orig: &Table, alter: &AlterSpec) -> Result<Table> {
        let c = self.main.lock().await;
        match self.create_shadow_inner(&c, alter).await {
            Ok(state) => {
                *self
                    .shadow
                    .lock()
                    .map_err(|_| Error::internal("engine state poisoned"))? = state;
            }
            Err(e) => {
                let _ = batch(
                    &c,
                    &sql::drop_table(&self.schema, &self.names.shadow),
                    "dropping the shadow table",
                )
                .await;
                return Err(e);
            }
        }
        let (t, _) = inspect::inspect(&c, Some(&self.schema), &self.names.shadow).await?;
        self.shadow
            .lock()
            .map_err(|_| Error::internal("engine state poisoned"))?
            .unique_keys = t.unique_keys.clone();
        // Views are re-pointed at the new table with CREATE OR REPLACE VIEW, which (like
        // the in-place ALTER) cannot change the type of, or lose, a column a view reads.
        let rows = c
            .query(sql::VIEW_COLUMNS, &[&self.orig_q()])
            .await
            .map_err(|e| pg_err(e, "reading the columns views use"))?;
        for r in rows {
            let rd = |e| pg_err(e, "reading the columns views use");
            let view: String = r.try_get(0).map_err(rd)?;
            let col: String = r.try_get(1).map_err(rd)?;
            let ty: String = r.try_get(2).map_err(rd)?;
            let ok = t
                .columns
                .iter()
                .any(|c| c.name == col && c.column_type == ty);
            if !ok {
                let _ = batch(
                    &c,
                    &sql::drop_table(&self.schema, &self.names.shadow),
                    "dropping the shadow table",
                )
                .await;
                return Err(Error::new(
                    ErrorKind::InvalidAlter,
                    format!("the ALTER changes or removes column \"{col}\" ({ty}), which view {view} uses (an in-place ALTER TABLE would fail the same way)"),
                )
                .with_hint(format!("drop view {view} first and create it again after the migration")));
            }
        }
        Ok(t)
    }

    fn check_key(&self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        self.key_columns(orig, mapping)?;
        let info = self.rel_info()?;
        if info.replica_identity == 'f' {
            return Ok(());
        }
        let same = info.identity_columns.len() == mapping.key.source_columns.len()
            && info
                .identity_columns
                .iter()
                .all(|c| mapping.key.source_columns.contains(c));
        if same {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NoSharedKey,
            format!(
                "the key shared by old and new table ({}) is not the replica identity of {} ({}): the change stream would not name the rows changed",
                mapping.key.source_columns.join(", "),
                self.table,
                if info.identity_columns.is_empty() { "none".to_string() } else { info.identity_columns.join(", ") }
            ),
        )
        .with_hint("keep a unique key on the replica identity columns in the new table (e.g. ADD UNIQUE (id) when changing the primary key), or set REPLICA IDENTITY FULL on the table"))
    }

    /// The reverse direction's replay statement, prepared (not run): the server checks
    /// that each of the shadow's columns can be assigned to the original's (a type with
    /// no assignment cast back is refused here, before the copy).
    async fn check_reverse(&self, shadow: &Table, reverse: &ColumnMapping) -> Result<()> {
        let b = Builder::new(
            &self.schema,
            &self.names.shadow,
            &self.table,
            reverse,
            self.key_columns(shadow, reverse)?,
            &[],
        );
        let c = self.main().await?;
        c.prepare(&b.flush_insert()).await.map(|_| ()).map_err(|e| {
            pg_err(
                e,
                "writing the new table's rows back into the original (the revert's replay)",
            )
        })
    }

    async fn drop_shadow(&self) -> Result<()> {
        let c = self.main.lock().await;
        batch(
            &c,
            &sql::drop_table(&self.schema, &self.names.shadow),
            "dropping the shadow table",
        )
        .await
    }

    async fn current_position(&self) -> Result<Option<Position>> {
        let c = self.main().await?;
        let lsn: String = c
            .query_one(sql::FLUSH_LSN, &[])
            .await
            .map_err(|e| pg_err(e, "reading the WAL position"))?
            .try_get(0)
            .map_err(|e| pg_err(e, "reading the WAL position"))?;
        Ok(pgoutput::parse_lsn(&lsn).map(Position::Lsn))
    }

    async fn after_copy(&self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        let state = self.shadow_state()?;
        let b = self.builder(orig, mapping)?;
        let c = self.main().await?;
        // Called again after a UNIQUE index met a moved value (`Migration::after_copy`):
        // what was built the first time is left as it is.
        let mut todo = Vec::new();
        for d in &state.deferred {
            if !conn::relation_exists(&c, &self.schema, &d.name).await? {
                todo.push(d);
            }
        }
        // The migration key's index first, then the replay of the parked keys (which
        // finds rows by it), then the other indexes: a row copied and moved ahead since
        // is in the shadow twice until its key is replayed, and a UNIQUE index built
        // before that would refuse it (docs/architecture.md, "Key-based replay and its
        // races", 8).
        let (key, others): (Vec<&Deferred>, Vec<&Deferred>) = todo
            .into_iter()
            .partition(|d| d.name == mapping.key.target_name);
        tracing::debug!(key = %mapping.key.target_name, found = key.len(), "building the migration key's index first");
        build_deferred(&c, &key).await?;
        self.parking
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if conn::relation_exists(&c, &self.schema, &self.park).await? {
            let n = replay_parked(&c, &b, &self.park_q()).await?;
            tracing::info!(keys = n, "replayed the keys changed during the copy");
            batch(
                &c,
                &sql::drop_table(&self.schema, &self.park),
                "dropping the table of parked keys",
            )
            .await?;
        }
        // Two sessions build at once (measured 1.0 s against 1.3 s for a primary key and
        // one index over 2M rows on 2 cores); without a second session, one builds all.
        let (mine, theirs): (Vec<_>, Vec<_>) = others
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        let second = match theirs.is_empty() {
            true => None,
            false => match conn::connect(&self.target, "index build").await {
                Ok(c2) => Some(c2),
                Err(e) => {
                    tracing::debug!("building indexes in one session: {e}");
                    None
                }
            },
        };
        match &second {
            Some(c2) => {
                let (mine, theirs): (Vec<_>, Vec<_>) = (
                    mine.into_iter().map(|(_, d)| d).collect(),
                    theirs.into_iter().map(|(_, d)| d).collect(),
                );
                tokio::try_join!(build_deferred(&c, &mine), build_deferred(c2, &theirs))?;
            }
            None => {
                let all: Vec<&Deferred> = mine.into_iter().chain(theirs).map(|(_, d)| d).collect();
                build_deferred(&c, &all).await?
            }
        }
        restart_point(&c).await;
        Ok(())
    }

    async fn analyze_shadow(&self) -> Result<()> {
        let c = self.main().await?;
        batch(
            &c,
            &format!("ANALYZE {}", self.shadow_q()),
            "analyzing the shadow",
        )
        .await
    }

    async fn before_cut_over(&self, _mapping: &ColumnMapping) -> Result<()> {
        restart_point(&*self.main().await?).await;
        Ok(())
    }

    async fn copier(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
    ) -> Result<Box<dyn Copier>> {
        let b = self.builder(orig, mapping)?;
        let resumed = self.resumed.load(std::sync::atomic::Ordering::SeqCst);
        {
            let c = self.main().await?;
            batch(&c, sql::WRITER_SESSION, "preparing the copy").await?;
            let found = self.defer_indexes(&c).await?;
            batch(
                &c,
                &b.park_create(&self.park_q()),
                "creating the table of parked keys",
            )
            .await?;
            let mut state = self
                .shadow
                .lock()
                .map_err(|_| Error::internal("engine state poisoned"))?;
            // Resumed: what the dead run deferred is still to build (it may have built
            // some of it again before it died: found and dropped again here).
            state.deferred = merge_deferred(
                if resumed {
                    std::mem::take(&mut state.deferred)
                } else {
                    Vec::new()
                },
                found,
            );
            self.parking
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(Box::new(PgCopier {
            // Opened by the first chunk (again after a lost connection).
            clients: Vec::new(),
            target: self.target.clone(),
            reconnect: self.options.reconnect.clone(),
            b,
            last: after.map(|k| k.iter().map(part_text).collect()),
            done: false,
            // A dead run's chunk in flight may have committed in part: its rows past the
            // watermark go before the copy goes on.
            redo: resumed,
        }))
    }

    /// While the copy runs the shadow has no key index to replay against, and copy and
    /// replay need not be ordered against each other: keys are parked in a table of
    /// godwit's (`_godwit_park_<table>`; the stream may then move on: they are committed
    /// there, and a resumed run finds them) and replayed by
    /// `after_copy`, once every chunk has committed and the indexes exist. That also
    /// closes the in-flight chunk race (docs/architecture.md, "Key-based replay and its
    /// races", 3): no replay runs before a chunk commits.
    ///
    /// A flush whose connection is lost runs again on a new main session: delete +
    /// insert by key, a transaction per batch, or (during the copy) an insert into the
    /// table of parked keys; running either twice changes nothing.
    async fn flush(&self, orig: &Table, mapping: &ColumnMapping, keys: &[Key]) -> Result<u64> {
        let b = self.builder(orig, mapping)?;
        let policy = self.options.reconnect.clone();
        let mut outage = policy.outage("of the replay");
        loop {
            let parking = self.parking.load(std::sync::atomic::Ordering::SeqCst);
            let r = async {
                let c = self.main().await?;
                if parking {
                    return park_keys(&c, &b, &self.park_q(), keys).await;
                }
                flush_keys(&c, &b, keys, true).await
            }
            .await;
            match r {
                Ok(n) => {
                    outage.recovered();
                    return Ok(n);
                }
                Err(e) => outage.wait(e).await?,
            }
        }
    }

    async fn lock_for_cut_over(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        timeout: Duration,
        attempt: u32,
    ) -> Result<Box<dyn CutOverLock>> {
        let state = self.shadow_state()?;
        let hold = if attempt == 1 {
            self.options.cut_over_hold
        } else {
            None
        };
        let lock = cutover::lock(cutover::CutOverSetup {
            target: self.target.clone(),
            schema: self.schema.clone(),
            orig: self.table.clone(),
            shadow: self.names.shadow.clone(),
            old: self.names.old.clone(),
            publication: self.publication.clone(),
            builder: self.builder(orig, mapping)?,
            mapping: mapping.clone(),
            info: self.rel_info()?,
            index_map: state.index_map,
            fks_to_validate: state.fks_to_validate,
            identity_set: state.identity_set,
            replica_identity_set: state.replica_identity_set,
            trigger_changes: state.trigger_changes,
            not_valid: state.not_valid,
            timeout,
            hold,
            window: self.options.revert_window,
            renamed_indexes: self.renamed_indexes.clone(),
        })
        .await?;
        Ok(Box::new(lock))
    }

    async fn status_values(&self, names: &[String]) -> Result<Vec<f64>> {
        let c = self.main().await?;
        load::read(&c, names).await
    }

    /// After the swap: no reconnecting (a failure is reported as exit 35 with what is left).
    async fn drop_old(&self) -> Result<()> {
        let c = self.main.lock().await;
        batch(
            &c,
            &sql::drop_table(&self.schema, &self.names.old),
            "dropping the old table",
        )
        .await
    }

    async fn lock_runner(&self) -> Result<bool> {
        let c = self.main.lock().await;
        let key = runner_lock_key(&self.target.database, &self.schema, &self.table);
        let got: bool = c
            .query_one(sql::RUNNER_LOCK, &[&key])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "taking the table's runner lock"))?;
        self.runner_held
            .store(got, std::sync::atomic::Ordering::SeqCst);
        Ok(got)
    }

    async fn keep_runner_lock(&self) -> Result<bool> {
        if !self.runner_held.load(std::sync::atomic::Ordering::SeqCst) {
            // Never taken by this engine, or lost: `main` takes it again below.
            let c = self.main.lock().await;
            if !c.is_closed() {
                return Ok(true);
            }
        }
        {
            let c = self.main.lock().await;
            if !c.is_closed() && c.simple_query("SELECT 1").await.is_ok() {
                return Ok(true);
            }
        }
        // The session is gone: a new one takes the lock again (or finds it taken).
        match self.main().await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::Leftovers => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn swapped(&self) -> Result<bool> {
        let c = conn::connect(&self.target, "swap check").await?;
        self.table_exists(&c, &self.names.old).await
    }

    fn stream_artifacts(&self) -> Vec<String> {
        vec![
            format!("publication {}", self.publication),
            format!("replication slot {}", self.slot),
        ]
    }

    async fn close(&self) -> Result<()> {
        if let Some((s, _)) = self.stream_session.lock().await.take() {
            let _ = s.query(sql::DROP_SLOT, &[&self.slot]).await;
        }
        Ok(())
    }

    async fn lock_for_verify(
        &self,
        orig: &Table,
        shadow: &Table,
        mapping: &ColumnMapping,
        timeout: Duration,
    ) -> Result<Box<dyn crate::engine::VerifyLock>> {
        let sums = self.checksums(orig, shadow, mapping)?;
        Ok(Box::new(
            verify::PgVerifyLock::take(&self.target, sums, timeout).await?,
        ))
    }

    async fn verify_views(
        &self,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
    ) -> Result<Box<dyn crate::engine::VerifyView>> {
        let sums = self.checksums(orig, other, mapping)?;
        Ok(Box::new(verify::PgView::open(&self.target, sums).await?))
    }

    async fn range_keys(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
        upto: Option<&Key>,
    ) -> Result<Vec<Key>> {
        self.verify_range_keys(orig, mapping, after, upto).await
    }

    async fn inspect_other(&self, name: &str) -> Result<Table> {
        self.inspect_table(name).await
    }

    fn resumable(&self) -> bool {
        true
    }

    fn revertable(&self) -> bool {
        true
    }

    /// The stream stops at the swap's marker (its commit: `ChangeStream::swap_position`).
    fn stream_sees_swap(&self) -> bool {
        true
    }

    async fn request_handover(&self) -> Result<bool> {
        self.checkpoint_request("handover").await
    }

    async fn handover_requested(&self) -> Result<bool> {
        Ok(self.checkpoint_request_read().await?.as_deref() == Some("handover"))
    }

    /// The reverse direction's shadow is the old table: its indexes get back, at a
    /// revert's swap, the names the swap took from them.
    fn reverse_state(&self) -> serde_json::Value {
        let index_map = self
            .renamed_indexes
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let state = ShadowState {
            index_map,
            ..ShadowState::default()
        };
        serde_json::json!({
            "shadow": state,
            "park_table": self.park,
            "slot": self.slot,
            "publication": self.publication,
        })
    }

    async fn load_checkpoint(&self) -> Result<Option<String>> {
        self.checkpoint_load().await
    }

    async fn save_checkpoint(&self, state: &str) -> Result<()> {
        self.checkpoint_save(state).await
    }

    async fn drop_checkpoint(&self) -> Result<()> {
        self.checkpoint_drop().await.map(|_| ())
    }

    async fn cut_over_blockers(&self) -> Result<Vec<crate::engine::Blocker>> {
        self.blockers().await
    }
    async fn kill_session(&self, id: u64) -> Result<()> {
        self.kill(id).await
    }
    async fn drop_old_table(&self, name: &str) -> Result<()> {
        let c = self.main.lock().await;
        batch(
            &c,
            &sql::drop_table(&self.schema, name),
            "dropping the old table",
        )
        .await
    }

    /// The shadow's state, and the names of what the stream and the parked keys live in
    /// (checked on resume: they are derived from the table's name).
    fn resume_state(&self) -> serde_json::Value {
        let state = self.shadow_state().unwrap_or_default();
        serde_json::json!({
            "shadow": state,
            "park_table": self.park,
            "slot": self.slot,
            "publication": self.publication,
        })
    }

    /// godwit's replication slots that no run is using (no session holds the runner lock
    /// of their table: the slot name ends with the same hash as the lock's key), each
    /// with the WAL it holds back; this table's own only when this run does not resume it.
    async fn start_warnings(&self, scope: Scope) -> Result<Vec<crate::engine::Warning>> {
        let c = self.main().await?;
        let read = |e| pg_err(e, "looking for replication slots of earlier runs");
        let mine = if scope == Scope::Resume {
            self.slot.as_str()
        } else {
            ""
        };
        let held: Vec<u32> = c
            .query(sql::RUNNER_LOCKS_HELD, &[])
            .await
            .map_err(read)?
            .iter()
            .map(|r| r.try_get::<_, i64>(0).map(|k| k as u32))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        let mut out = Vec::new();
        for r in c
            .query(sql::OTHER_GODWIT_SLOTS, &[&mine])
            .await
            .map_err(read)?
        {
            let slot: String = r.try_get(0).map_err(read)?;
            let database: String = r.try_get(1).map_err(read)?;
            let bytes: i64 = r.try_get(2).map_err(read)?;
            let hash = slot
                .rsplit('_')
                .next()
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            let ours = slot == self.slot;
            if !ours && hash.is_some_and(|h| held.contains(&h)) {
                continue;
            }
            out.push(crate::engine::Warning {
                message: format!(
                    "replication slot {slot} (database {database}) of an earlier godwit run that is not running holds {} of WAL, which the server keeps until the slot is gone; run that migration again to resume it, or remove it with godwit cleanup --table <its table> --execute",
                    human_bytes(bytes)
                ),
                details: serde_json::json!({
                    "kind": "stale_replication_slot",
                    "slot": slot,
                    "database": database,
                    "retained_wal_bytes": bytes,
                }),
            });
        }
        Ok(out)
    }

    /// The swap is one transaction: the old table exists exactly when it happened.
    async fn swapped_as(&self, old: &str) -> Result<Option<String>> {
        let c = self.main().await?;
        // A cut-over of the dead run still open on the server commits or rolls back first.
        self.end_dead_run_writers(&c).await?;
        Ok(self.table_exists(&c, old).await?.then(|| old.to_string()))
    }

    async fn resume(
        &self,
        _orig: &Table,
        state: &serde_json::Value,
        from: &Position,
        _copying: bool,
    ) -> Result<Table> {
        let restart =
            "run the same command with --restart to discard the checkpoint and start over";
        let gone = |what: String| Error::new(ErrorKind::Checkpoint, what).with_hint(restart);
        let Position::Lsn(from) = *from else {
            return Err(Error::internal(
                "a PostgreSQL checkpoint needs a WAL position (LSN)",
            ));
        };
        let shadow_state: ShadowState =
            serde_json::from_value(state["shadow"].clone()).map_err(|e| {
                gone(format!(
                    "the checkpoint's PostgreSQL state cannot be read: {e}"
                ))
            })?;
        for (key, mine) in [
            ("slot", &self.slot),
            ("publication", &self.publication),
            ("park_table", &self.park),
        ] {
            if state[key].as_str() != Some(mine.as_str()) {
                return Err(gone(format!(
                    "the checkpoint names {key} {}, not {mine} as this version of godwit does",
                    state[key]
                )));
            }
        }
        let c = self.main().await?;
        let publication: bool = c
            .query_one(sql::PUBLICATION_EXISTS, &[&self.publication])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "looking for the publication"))?;
        if !publication {
            return Err(gone(format!(
                "the checkpoint's publication {} is gone, so the changes since the checkpoint cannot be read",
                self.publication
            )));
        }
        let slot = c
            .query_opt(sql::SLOT_RESUME, &[&self.slot])
            .await
            .map_err(|e| pg_err(e, "reading the replication slot"))?;
        let Some(slot) = slot else {
            return Err(gone(format!(
                "the checkpoint's replication slot {} is gone, so the changes since the checkpoint cannot be read",
                self.slot
            )));
        };
        let read = |e| pg_err(e, "reading the replication slot");
        let confirmed: Option<String> = slot.try_get(0).map_err(read)?;
        let wal_status: Option<String> = slot.try_get(1).map_err(read)?;
        if wal_status.as_deref() == Some("lost") {
            return Err(gone(format!(
                "the WAL that replication slot {} needs was removed (max_slot_wal_keep_size), so the changes since the checkpoint cannot be read",
                self.slot
            )));
        }
        let confirmed = confirmed.as_deref().and_then(pgoutput::parse_lsn);
        if let Some(c) = confirmed.filter(|c| *c > from) {
            return Err(gone(format!(
                "replication slot {} has moved past the checkpoint (confirmed {}, checkpoint {}): changes between them would be missed",
                self.slot,
                pgoutput::format_lsn(c),
                pgoutput::format_lsn(from)
            )));
        }
        self.end_dead_run_writers(&c).await?;
        // With the runner lock held, a session still reading the slot is the dead run's.
        if self.end_slot_holder(&c).await? {
            return Err(Error::new(
                ErrorKind::Leftovers,
                format!(
                    "replication slot {} is still in use by a session of the dead run",
                    self.slot
                ),
            )
            .with_hint("wait a few seconds and run the same command again"));
        }
        drop(c);
        let mut shadow = match self.inspect_table(&self.names.shadow).await {
            Ok(t) => t,
            Err(e) if e.kind == ErrorKind::TableMissing => {
                return Err(gone(format!(
                    "the checkpoint's shadow table {}.{} is gone",
                    self.schema, self.names.shadow
                )))
            }
            Err(e) => return Err(e),
        };
        // Keys deferred for the copy are the shadow's all the same.
        for k in &shadow_state.unique_keys {
            if !shadow.unique_keys.iter().any(|u| u.name == k.name) {
                shadow.unique_keys.push(k.clone());
            }
        }
        *self
            .shadow
            .lock()
            .map_err(|_| Error::internal("engine state poisoned"))? = shadow_state;
        self.resumed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(shadow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_valid_slot_names() {
        let (slot, publication) = stream_names("db", "public", &"Weird-Name".repeat(10));
        assert!(slot.len() <= 63 && publication.len() <= 63, "{slot}");
        assert!(slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert!(slot.starts_with(PREFIX) && publication.starts_with(PREFIX));
        // Same table name in two databases: different slots (slots are server-wide).
        assert_ne!(
            stream_names("a", "public", "t").0,
            stream_names("b", "public", "t").0
        );
        assert_eq!(
            stream_names("a", "public", "t"),
            stream_names("a", "public", "t")
        );
    }

    #[test]
    fn key_arrays_are_per_column() {
        let keys = vec![
            vec![KeyPart::Text("1".into()), KeyPart::Text("a".into())],
            vec![KeyPart::Int(2), KeyPart::Text("b".into())],
        ];
        assert_eq!(
            key_arrays(&keys, 2),
            vec![
                vec!["1".to_string(), "2".into()],
                vec!["a".to_string(), "b".into()]
            ]
        );
    }
}
