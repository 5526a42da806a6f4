//! The MySQL / MariaDB engine.

mod binlog;
mod blockers;
mod checkpoint;
mod checks;
pub mod classify;
mod classify_clauses;
pub(crate) mod cutover;
pub mod facts;
mod inspect;
pub mod lag;
pub(crate) mod load;
pub mod phases;
pub mod planner;
pub mod rowimage;
pub(crate) mod session;
mod sql_rules;
pub use sql_rules::SQL_RULES;
pub mod sql;
mod verify;

use crate::ddl::AlterSpec;
use crate::engine::retry::Reconnect;
use crate::engine::{
    artifact_names, ArtifactNames, ChangeStream, Copier, CutOverLock, Engine, EngineOptions, Key,
    Position, Scope, PREFIX,
};
use crate::error::{Error, ErrorKind, Result, ServerCode, UNREACHABLE_HINT};
use crate::schema::{ColumnMapping, Table};
use crate::target::{EngineKind, Target};
use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Pool, PoolConstraints, PoolOpts, Row, Value};
use session::SessionKind;
use sql::{qualified, Builder, KeyColumn, ReadLock, ShareLock};
use std::time::Duration;

/// Map a driver error to a godwit error. Server errors keep the server's text.
pub(crate) fn conn_err(e: mysql_async::Error, what: &str) -> Error {
    match &e {
        mysql_async::Error::Server(s) => {
            let kind = match s.code {
                // The server is going away or dropped this session: shutdown (1053,
                // 1077, 1080), connection killed or aborted (1927, 1152), network
                // timeouts (1159, 1161), offline mode (3032), no free connection (1040).
                1053 | 1077 | 1080 | 1152 | 1159 | 1161 | 1927 | 3032 | 1040 => {
                    ErrorKind::Unreachable
                }
                1045 => ErrorKind::Authentication,
                1044 | 1142 | 1143 | 1227 | 1370 => ErrorKind::Privileges,
                1049 | 1146 => ErrorKind::TableMissing,
                1205 => ErrorKind::CutOverFailed,
                _ => ErrorKind::Internal,
            };
            let err = Error::new(kind, format!("{what}: {} (error {})", s.message, s.code))
                .with_code(ServerCode::Mysql(s.code));
            match kind {
                ErrorKind::Unreachable => err.with_hint(UNREACHABLE_HINT),
                ErrorKind::Authentication => err.with_hint(
                    "check the user in --url and the password (MYSQL_PWD, --password-file or the URL)",
                ),
                ErrorKind::Privileges => err.with_hint("grant the missing privilege to the migration user"),
                _ => err,
            }
        }
        mysql_async::Error::Io(_)
        | mysql_async::Error::Driver(
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected,
        ) => Error::new(
            ErrorKind::Unreachable,
            format!("{what}: cannot reach the server: {e}"),
        )
        .with_hint(UNREACHABLE_HINT),
        _ => Error::internal(format!("{what}: {e}")),
    }
}

/// The name of the runner lock (`GET_LOCK`) of `db`.`table`: at most 64 characters. A
/// godwit run holds it from start to end; tests take it to play another run.
pub fn runner_lock_name(db: &str, table: &str) -> String {
    let h = crate::engine::fnv32(db.bytes().chain([0]).chain(table.bytes()));
    format!("godwit_run_{h:08x}")
}

pub struct MysqlEngine {
    opts: Opts,
    pool: Pool,
    db: String,
    table: String,
    names: ArtifactNames,
    version: String,
    mariadb: bool,
    /// (major, minor, patch)
    version_tuple: (u32, u32, u32),
    options: EngineOptions,
    /// Secondary (non-unique) index definitions taken off the shadow for the bulk copy
    /// and added back in one ALTER before the cut-over: a sorted build is faster than
    /// maintaining them row by row.
    deferred_indexes: std::sync::Mutex<Vec<String>>,
    /// The shadow's NOT NULL columns without a default, each with the value the server
    /// gives existing rows in a native ALTER (its implicit default), as an SQL literal.
    implicit_defaults: std::sync::Mutex<Vec<(String, String)>>,
    /// The session holding the table's runner lock (GET_LOCK), for the whole run.
    runner: tokio::sync::Mutex<Option<Conn>>,
    /// `AUTO_INCREMENT = N` of the ALTER: set again at cut-over (see `cutover.rs`).
    auto_increment: std::sync::Mutex<Option<u64>>,
    /// A revert's shadow (the kept old table) whose name sorts before the table's: taken
    /// over (`resume`) under `names.shadow`, which sorts after it, as the sentry cut-over
    /// needs (see `cutover.rs`).
    adopt: Option<String>,
}

/// `KEY` lines of a `SHOW CREATE TABLE`: (index name, definition).
pub(crate) fn plain_keys(create: &str) -> Vec<(String, String)> {
    create
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("KEY `"))
        .map(|l| {
            let def = l.trim_end_matches(',').to_string();
            let rest = &def[5..];
            let mut name = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '`' {
                    if chars.peek() == Some(&'`') {
                        name.push('`');
                        chars.next();
                    } else {
                        break;
                    }
                } else {
                    name.push(c);
                }
            }
            (name, def)
        })
        .collect()
}

/// The first column of a key line of `SHOW CREATE TABLE` (`KEY \`k\` (\`a\`,\`b\`)`).
fn first_key_column(def: &str) -> Option<String> {
    let rest = &def[def.find("(`")? + 2..];
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() != Some(&'`') {
                return Some(name);
            }
            chars.next();
        }
        name.push(c);
    }
    None
}

/// The plain keys the shadow can do without during the copy: all of them, except the
/// one the server needs for the AUTO_INCREMENT column when no primary or unique key
/// starts with it (dropping it fails: "there can be only one auto column and it must be
/// defined as a key"), and the keys before that one (added back after it, they would
/// change the order of the indexes in the definition).
pub(crate) fn deferrable_keys(create: &str) -> Vec<(String, String)> {
    let mut keys = plain_keys(create);
    let lines: Vec<&str> = create.lines().map(str::trim).collect();
    let auto = lines
        .iter()
        .filter(|l| l.starts_with('`'))
        .find(|l| {
            l.contains(" AUTO_INCREMENT ")
                || l.contains(" AUTO_INCREMENT,")
                || l.ends_with(" AUTO_INCREMENT")
        })
        .and_then(|l| first_key_column(&format!("({l}")));
    let Some(auto) = auto else { return keys };
    let unique_first = lines
        .iter()
        .filter(|l| l.starts_with("PRIMARY KEY") || l.starts_with("UNIQUE KEY"))
        .any(|l| first_key_column(l).as_deref() == Some(auto.as_str()));
    if !unique_first {
        if let Some(i) = keys
            .iter()
            .position(|(_, def)| first_key_column(def).as_deref() == Some(auto.as_str()))
        {
            keys.drain(..=i);
        }
    }
    keys
}

/// MySQL ≥ 8.0.13 allows RENAME TABLE under LOCK TABLES; MariaDB refuses it (error 1192).
fn rename_under_lock(mariadb: bool, version: (u32, u32, u32)) -> bool {
    !mariadb && version >= (8, 0, 13)
}

pub(crate) fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

impl MysqlEngine {
    pub async fn connect(
        target: &Target,
        table: &str,
        options: &EngineOptions,
    ) -> Result<MysqlEngine> {
        let builder = session::options(target, SessionKind::Online).pool_opts(
            PoolOpts::default().with_constraints(PoolConstraints::new(0, 8).unwrap_or_default()),
        );
        let opts: Opts = builder.into();
        let mut conn = session::connect(target, opts.clone()).await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| conn_err(e, "reading the server version"))?
            .unwrap_or_default();
        let _ = conn.disconnect().await;
        let table = table.to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut names = artifact_names(&table, now);
        if let Some(shadow) = cutover::shadow_name(&table) {
            names.shadow = shadow;
        }
        let mariadb = version.to_lowercase().contains("mariadb");
        let mut adopt = None;
        if let Some(given) = &options.names {
            if let Some(old) = &given.old {
                names.old = old.clone();
            }
            let sorted = cutover::shadow_name(&table);
            let needs_sort = given.cut_over
                && !rename_under_lock(mariadb, parse_version(&version))
                && given.shadow.as_str() <= table.as_str();
            match sorted {
                Some(sorted) if needs_sort && sorted != given.shadow => {
                    names.shadow = sorted;
                    adopt = Some(given.shadow.clone());
                }
                _ => names.shadow = given.shadow.clone(),
            }
        }
        Ok(MysqlEngine {
            pool: Pool::new(opts.clone()),
            names,
            db: target.database.clone(),
            table,
            mariadb,
            version_tuple: parse_version(&version),
            version,
            opts,
            options: options.clone(),
            deferred_indexes: std::sync::Mutex::new(Vec::new()),
            implicit_defaults: std::sync::Mutex::new(Vec::new()),
            runner: tokio::sync::Mutex::new(None),
            auto_increment: std::sync::Mutex::new(None),
            adopt,
        })
    }

    async fn conn(&self) -> Result<Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| conn_err(e, "opening a connection"))
    }

    /// MySQL ≥ 8.0.13 may RENAME under LOCK TABLES; MariaDB and older MySQL need the sentry.
    fn rename_under_lock(&self) -> bool {
        rename_under_lock(self.mariadb, self.version_tuple)
    }

    /// True when the cut-over uses the sentry-table algorithm on this server.
    pub(crate) fn uses_sentry(&self) -> bool {
        !self.rename_under_lock()
    }

    fn key_columns(&self, orig: &Table, mapping: &ColumnMapping) -> Result<Vec<KeyColumn>> {
        mapping
            .key
            .source_columns
            .iter()
            .map(|name| {
                let c = orig.column(name).ok_or_else(|| Error::internal(format!("key column {name} missing")))?;
                KeyColumn::for_column(c).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "key column `{}` has type {}, which godwit cannot use to find rows again exactly",
                            c.name, c.column_type
                        ),
                    )
                    .with_hint("use a table whose primary key is an integer, decimal, string, binary, date/time, YEAR or ENUM column")
                })
            })
            .collect()
    }

    fn builder(&self, orig: &Table, mapping: &ColumnMapping) -> Result<Builder> {
        let fills: Vec<(String, String)> = self
            .implicit_defaults
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(c, _)| !mapping.columns.iter().any(|m| &m.target == c))
            .collect();
        Ok(Builder::new(
            &self.db,
            &self.table,
            &self.names.shadow,
            mapping,
            self.key_columns(orig, mapping)?,
        )
        .with_fills(&fills)
        .with_share_lock(ShareLock::for_server(self.mariadb, self.version_tuple)))
    }

    /// A connection for attempt `attempts` (0-based) of a statement retried after a lost
    /// connection: the pool's first, then a new one (the pool may still hold the lost one).
    async fn conn_for_attempt(&self, attempts: u32, what: &str) -> Result<Conn> {
        match attempts {
            0 => self.conn().await,
            _ => Conn::new(self.opts.clone())
                .await
                .map_err(|e| conn_err(e, &format!("opening a connection for {what}"))),
        }
    }

    /// Read the shadow's implicit defaults (see `implicit_defaults`): a native ALTER that
    /// adds `c INT NOT NULL` gives existing rows 0, where the copy's INSERT, which leaves
    /// `c` out, is refused ("Field 'c' doesn't have a default value"). The server says
    /// what the values are: one row inserted with every default into a temporary copy
    /// of the shadow. When that cannot be done (e.g. a CHECK refuses the row), none are
    /// known and such a copy fails as before.
    async fn read_implicit_defaults(&self, c: &mut Conn) {
        let cols: Vec<String> = match c
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 AND IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL AND EXTRA NOT LIKE '%auto_increment%' \
                 AND IFNULL(GENERATION_EXPRESSION, '') = '' ORDER BY ORDINAL_POSITION",
                (&self.db, &self.names.shadow),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("reading the shadow's columns without a default: {e}");
                return;
            }
        };
        if cols.is_empty() {
            return;
        }
        let probe = qualified(&self.db, &format!("{PREFIX}probe_{}", std::process::id()));
        let list = cols
            .iter()
            .map(|c| sql::quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let read = async {
            c.query_drop(format!(
                "CREATE TEMPORARY TABLE {probe} LIKE {}",
                qualified(&self.db, &self.names.shadow)
            ))
            .await?;
            c.query_drop(format!("INSERT IGNORE INTO {probe} () VALUES ()"))
                .await?;
            let row: Option<Row> = c.query_first(format!("SELECT {list} FROM {probe}")).await?;
            Ok::<_, mysql_async::Error>(row)
        }
        .await;
        let _ = c
            .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {probe}"))
            .await;
        let row = match read {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("reading the shadow's implicit defaults: {e}");
                return;
            }
        };
        let fills: Vec<(String, String)> = cols
            .into_iter()
            .zip(row.unwrap())
            .filter_map(|(c, v)| match v {
                mysql_async::Value::Bytes(b) if b.is_empty() => Some((c, "''".to_string())),
                mysql_async::Value::Bytes(b) => Some((c, format!("X'{}'", hex(&b)))),
                _ => None,
            })
            .collect();
        tracing::debug!(?fills, "implicit defaults of the shadow's NOT NULL columns");
        if let Ok(mut f) = self.implicit_defaults.lock() {
            *f = fills;
        }
    }

    /// A revert takes over the old table the swap kept: renamed to `names.shadow` (which
    /// sorts after the table) unless an earlier attempt did.
    async fn adopt_shadow(&self, kept: &str) -> Result<()> {
        let mut c = self.conn().await?;
        let n: Vec<String> = c
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)",
                (&self.db, kept, &self.names.shadow),
            )
            .await
            .map_err(|e| conn_err(e, "looking for the kept old table"))?;
        if n.contains(&self.names.shadow) || !n.iter().any(|t| t == kept) {
            return Ok(());
        }
        tracing::info!(
            "taking over {kept} as {} (the cut-over needs a name that sorts after the table's)",
            self.names.shadow
        );
        exec(
            &mut c,
            &format!(
                "RENAME TABLE {} TO {}",
                qualified(&self.db, kept),
                qualified(&self.db, &self.names.shadow)
            ),
            vec![],
            "taking over the kept old table",
        )
        .await
        .map(|_| ())
    }

    /// This table's checkpoint is a revert window's: a table under the shadow's name is
    /// then the old table a revert attempt took over (kept on purpose, not a leftover).
    async fn in_revert_window(&self) -> Result<bool> {
        let Some(text) = self.checkpoint_load().await? else {
            return Ok(false);
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(v["revert"].is_object())
    }

    async fn binlog_position(conn: &mut Conn) -> Result<(String, u64)> {
        let row: Option<Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| conn_err(e, "reading the binlog position (SHOW MASTER STATUS)"))?;
        let row = row.ok_or_else(|| {
            Error::new(ErrorKind::ServerSettings, "binary logging is off (log_bin=OFF)")
                .with_hint("start the server with log-bin (e.g. log_bin=mysql-bin in my.cnf); it needs a restart")
        })?;
        let file: String = row.get_opt(0).and_then(|r| r.ok()).unwrap_or_default();
        let pos: u64 = row.get_opt(1).and_then(|r| r.ok()).unwrap_or(0);
        Ok((file, pos))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) async fn exec(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
    what: &str,
) -> Result<u64> {
    if params.is_empty() {
        conn.query_drop(sql).await.map_err(|e| conn_err(e, what))?;
    } else {
        conn.exec_drop(sql, params)
            .await
            .map_err(|e| conn_err(e, what))?;
    }
    Ok(conn.affected_rows())
}

/// After an INSERT IGNORE: a warning other than a duplicate of the migration key means the
/// data does not fit the new schema (truncation, a duplicate on a new unique key, ...).
/// Notes are not: the native ALTER accepts what only raises a note (a DECIMAL or DATETIME
/// value rounded to the new column's precision).
async fn check_warnings(conn: &mut Conn, migration_key: &str) -> Result<()> {
    if conn.get_warnings() == 0 {
        return Ok(());
    }
    let rows: Vec<(String, u32, String)> = conn
        .query("SHOW WARNINGS LIMIT 20")
        .await
        .map_err(|e| conn_err(e, "reading warnings"))?;
    for (level, code, msg) in rows {
        if level.eq_ignore_ascii_case("note") {
            continue;
        }
        if code == 1062
            && (msg.ends_with(&format!("'{migration_key}'"))
                || msg.ends_with(&format!(".{migration_key}'")))
        {
            continue;
        }
        let hint = if code == 1062 {
            "the new unique key is violated by existing rows: remove the duplicates first, or drop the UNIQUE from the ALTER"
        } else {
            "the existing data does not fit the new column definition; fix the data or the ALTER"
        };
        return Err(Error::new(
            ErrorKind::DataError,
            format!("copying into the new table: {msg} (warning {code}); nothing was changed on the original"),
        )
        .with_code(ServerCode::Mysql(code as u16))
        .with_hint(hint));
    }
    Ok(())
}

/// `CREATE TABLE shadow LIKE orig` and the user's ALTER on it, under the server's global
/// `sql_mode` and `time_zone` instead of godwit's own session settings: the definitions
/// the server accepts (a zero-date default under `NO_ZERO_DATE`, a too-long VARCHAR
/// turned into TEXT when not strict) and how it reads literals (a TIMESTAMP default)
/// are those of a native ALTER. godwit's settings come back before anything else runs on
/// the session. A refusal is the server's message, as an invalid ALTER.
async fn build_shadow(c: &mut Conn, shadow: &str, orig: &str, alter: &AlterSpec) -> Result<()> {
    exec(
        c,
        "SET @godwit_sql_mode = @@SESSION.sql_mode, @godwit_time_zone = @@SESSION.time_zone, \
         SESSION sql_mode = @@GLOBAL.sql_mode, SESSION time_zone = @@GLOBAL.time_zone",
        vec![],
        "taking the server's sql_mode",
    )
    .await?;
    let refused = |e: Error, what: &str| {
        if matches!(e.kind, ErrorKind::Privileges | ErrorKind::Unreachable) {
            return e;
        }
        let server = e
            .message
            .split_once(": ")
            .map(|(_, m)| m)
            .unwrap_or(&e.message);
        Error::new(ErrorKind::InvalidAlter, format!("the server rejected {what}: {server}"))
            .with_hint("fix the --alter text; it was tried on an empty copy under the server's sql_mode, nothing else changed")
    };
    let r = async {
        exec(
            c,
            &format!("CREATE TABLE {shadow} LIKE {orig}"),
            vec![],
            "creating the shadow table",
        )
        .await
        .map_err(|e| {
            refused(
                e,
                "a copy of the table's definition (under its global sql_mode)",
            )
        })?;
        exec(
            c,
            &format!("ALTER TABLE {shadow} {}", alter.clauses),
            vec![],
            "applying the ALTER",
        )
        .await
        .map_err(|e| refused(e, "the ALTER"))
    }
    .await;
    exec(
        c,
        "SET SESSION sql_mode = @godwit_sql_mode, SESSION time_zone = @godwit_time_zone",
        vec![],
        "restoring the session's sql_mode",
    )
    .await?;
    r.map(|_| ())
}

pub struct MysqlCopier {
    /// The copy's own connection (not from the pool: a lost one is never reused); None
    /// after it was lost, until the next attempt opens a new one.
    conn: Option<Conn>,
    opts: Opts,
    reconnect: Reconnect,
    b: Builder,
    key_name: String,
    last: Option<Key>,
    done: bool,
}

/// A connection for the copy: consistent, non-locking reads per chunk, so the copy never
/// blocks the application (races with concurrent writes are closed by the replay, see
/// docs/how-it-works.md).
async fn copy_session(opts: &Opts) -> Result<Conn> {
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(|e| conn_err(e, "opening a connection for the copy"))?;
    exec(
        &mut conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        vec![],
        "preparing the copy",
    )
    .await?;
    // Notes (a value rounded to the new precision) are not counted as warnings: the
    // native ALTER accepts them, and they would push real warnings out of the list
    // check_warnings reads.
    exec(
        &mut conn,
        "SET SESSION sql_notes = 0",
        vec![],
        "preparing the copy",
    )
    .await?;
    Ok(conn)
}

#[async_trait]
impl Copier for MysqlCopier {
    fn copied_upto(&self) -> Option<Key> {
        self.last.clone()
    }

    /// A chunk whose connection is lost is copied again on a new one: `INSERT IGNORE` of
    /// a key range in its own transaction, committed only after its warnings were
    /// checked, so copying it twice changes nothing.
    async fn next_chunk(&mut self, rows: u64) -> Result<Option<u64>> {
        let policy = self.reconnect.clone();
        policy
            .run("of the copy", self, |c| Box::pin(c.chunk_once(rows)))
            .await
    }
}

impl MysqlCopier {
    async fn chunk_once(&mut self, rows: u64) -> Result<Option<u64>> {
        let r = self.try_chunk(rows).await;
        if r.as_ref()
            .is_err_and(crate::engine::retry::is_connection_loss)
        {
            self.conn = None;
        }
        r
    }

    async fn try_chunk(&mut self, rows: u64) -> Result<Option<u64>> {
        if self.done {
            return Ok(None);
        }
        if self.conn.is_none() {
            self.conn = Some(copy_session(&self.opts).await?);
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::internal("no connection for the copy"))?;
        let (sql, params) = self.b.chunk_end(self.last.as_ref(), rows.max(1) - 1);
        let end: Option<Row> = conn
            .exec_first(sql, params)
            .await
            .map_err(|e| conn_err(e, "finding the next chunk"))?;
        let end: Option<Key> = match end {
            None => None,
            Some(row) => {
                let vals = row.unwrap();
                Some(
                    vals.into_iter()
                        .zip(&self.b.key)
                        .map(|(v, k)| k.from_selected(v))
                        .collect::<Option<Key>>()
                        .ok_or_else(|| Error::internal("cannot read a chunk boundary key"))?,
                )
            }
        };
        let (sql, params) = self.b.copy_chunk(self.last.as_ref(), end.as_ref());
        exec(conn, "START TRANSACTION", vec![], "copying a chunk").await?;
        let copied = async {
            exec(conn, &sql, params, "copying a chunk").await?;
            // Read before SHOW WARNINGS, which resets it.
            let n = conn.affected_rows();
            check_warnings(conn, &self.key_name).await?;
            exec(conn, "COMMIT", vec![], "copying a chunk").await?;
            Ok::<_, Error>(n)
        }
        .await;
        let n = match copied {
            Ok(n) => n,
            Err(e) => {
                if !crate::engine::retry::is_connection_loss(&e) {
                    let _ = conn.query_drop("ROLLBACK").await;
                }
                return Err(e);
            }
        };
        match end {
            Some(k) => self.last = Some(k),
            None => self.done = true,
        }
        // Rows read is what the chunk covered; affected rows leaves out rows that replay
        // wrote first.
        Ok(Some(if self.done { n } else { rows.max(n) }))
    }
}

/// Server errors of a value that does not fit its column under strict mode: out of
/// range (1264, 1690), too long (1406), truncated (1265), incorrect (1366, 1292), NULL
/// into NOT NULL (1048, 1138), a CHECK constraint violated (3819 MySQL, 4025 MariaDB).
const VALUE_ERRORS: [u16; 10] = [1264, 1690, 1406, 1265, 1366, 1292, 1048, 1138, 3819, 4025];

/// Flush `keys` on `conn`: delete them from the shadow, re-insert what the original holds
/// now. Outside the cut-over lock, one READ COMMITTED transaction per batch; `locking`
/// reads wait for writers whose binlog events are already out, without ever deadlocking
/// with the application (see [`flush_locking`]). `in_lock`: inside the cut-over's own
/// transaction.
pub(crate) async fn flush_keys(
    conn: &mut Conn,
    b: &Builder,
    keys: &[Key],
    locking: bool,
    in_lock: bool,
) -> Result<u64> {
    let read = if locking {
        ReadLock::Wait
    } else {
        ReadLock::Plain
    };
    let batches: Vec<&[Key]> = keys.chunks(500).collect();
    let (mut n, mut i, mut cleared) = (0, 0, false);
    while let Some(batch) = batches.get(i).copied() {
        let r = if in_lock {
            replay(conn, b, batch, read).await
        } else if locking {
            flush_locking(conn, b, batch).await
        } else {
            replay_tx(conn, b, batch, read).await
        };
        match r {
            // A unique value moved from a row of a later batch to a row of this one:
            // the later row's old copy is still in the shadow. Remove every remaining
            // key's old row first, then replay this batch again
            // (docs/architecture.md, "Key-based replay and its races", 9).
            Err(e) if e.is_unique_violation() && !cleared && batches.len() > i + 1 => {
                tracing::debug!("replay: a unique value moved between batches; removing the remaining keys' rows first ({e})");
                for rest in &batches[i..] {
                    delete_batch(conn, b, rest).await.map_err(replay_error)?;
                }
                cleared = true;
                continue;
            }
            r => r.map_err(replay_error)?,
        }
        n += batch.len() as u64;
        i += 1;
    }
    Ok(n)
}

/// Delete `batch` from the shadow and insert what the original holds (no transaction
/// control: the caller's).
async fn replay(conn: &mut Conn, b: &Builder, batch: &[Key], read: ReadLock) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    delete_batch(conn, b, batch).await?;
    let (i, ip) = b.flush_insert(batch, read);
    exec(conn, &i, ip, "replaying changes (insert)").await?;
    Ok(())
}

/// Delete `batch`'s rows from the shadow.
async fn delete_batch(conn: &mut Conn, b: &Builder, batch: &[Key]) -> Result<()> {
    let (d, dp) = b.flush_delete(batch);
    exec(conn, &d, dp, "replaying changes (delete)").await?;
    Ok(())
}

/// Start a READ COMMITTED transaction: record locks only, no gap locks that could
/// deadlock with the application's inserts.
async fn begin_replay(conn: &mut Conn) -> Result<()> {
    conn.query_drop("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(|e| conn_err(e, "replaying changes"))?;
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| conn_err(e, "replaying changes"))
}

/// Commit when `r` is Ok, roll back otherwise (not after a lost connection).
async fn end_replay<T>(conn: &mut Conn, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => {
            conn.query_drop("COMMIT")
                .await
                .map_err(|e| conn_err(e, "replaying changes"))?;
            Ok(v)
        }
        Err(e) => {
            if !crate::engine::retry::is_connection_loss(&e) {
                let _ = conn.query_drop("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

/// [`replay`] in a transaction of its own.
async fn replay_tx(conn: &mut Conn, b: &Builder, batch: &[Key], read: ReadLock) -> Result<()> {
    begin_replay(conn).await?;
    let r = replay(conn, b, batch, read).await;
    end_replay(conn, r).await
}

/// The server refused a `NOWAIT` read: a row is held (MariaDB 1205, MySQL 3572).
fn lock_refused(e: &Error) -> bool {
    matches!(e.code, Some(ServerCode::Mysql(1205 | 3572)))
}

/// The server chose this transaction as a deadlock's victim.
fn deadlock_victim(e: &Error) -> bool {
    e.code == Some(ServerCode::Mysql(1213))
}

/// One batch of the locking replay. A transaction that waits for one row while it holds
/// others can close a deadlock with an application transaction that locks the same rows
/// in another order, and InnoDB then rolls back the lighter one: the application's
/// (sysbench's `oltp_read_write` saw about one such error every 8 s). So the replay never
/// waits while it holds rows of the original:
/// 1. the whole batch with `NOWAIT`: the usual case, no row is held by anybody;
/// 2. when a row is held: lock the free rows with `SKIP LOCKED`, delete the whole batch
///    from the shadow (a free row may have taken a unique value a held row's old copy
///    still has) and insert the free rows, in the same transaction; then each key left out (a row the application holds, or no row) in a
///    transaction of its own, which waits for that one row holding nothing else of the
///    original, so it cannot close a cycle.
///
/// Servers without `NOWAIT`/`SKIP LOCKED` wait as before, and a batch chosen as a
/// deadlock's victim is replayed again (it is idempotent).
async fn flush_locking(conn: &mut Conn, b: &Builder, batch: &[Key]) -> Result<()> {
    if !b.share_lock.can_refuse() {
        let mut attempt = 0u64;
        loop {
            match replay_tx(conn, b, batch, ReadLock::Wait).await {
                Err(e) if deadlock_victim(&e) && attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                r => return r,
            }
        }
    }
    match replay_tx(conn, b, batch, ReadLock::NoWait).await {
        Err(e) if lock_refused(&e) => {}
        r => return r,
    }
    begin_replay(conn).await?;
    let r = async {
        let (sql, params) = b.lock_free_rows(batch);
        let rows: Vec<Option<u64>> = conn
            .exec(sql.as_str(), params)
            .await
            .map_err(|e| conn_err(e, "replaying changes (locking free rows)"))?;
        let mut free = vec![false; batch.len()];
        for i in rows.into_iter().flatten() {
            if let Some(f) = free.get_mut(i as usize) {
                *f = true;
            }
        }
        let (mut got, mut rest) = (Vec::new(), Vec::new());
        for (k, is_free) in batch.iter().zip(free) {
            if is_free {
                got.push(k.clone());
            } else {
                rest.push(k.clone());
            }
        }
        // Every key of the batch leaves the shadow now, the held ones too: a free row
        // may have taken a unique value a held row had (a value moved from one row to
        // another), and the held row's old copy would refuse it.
        delete_batch(conn, b, batch).await?;
        if !got.is_empty() {
            // Held by this transaction now: the read does not wait.
            let (i, ip) = b.flush_insert(&got, ReadLock::Wait);
            exec(conn, &i, ip, "replaying changes (insert)").await?;
        }
        Ok::<_, Error>(rest)
    }
    .await;
    let rest = end_replay(conn, r).await?;
    tracing::debug!(
        batch = batch.len(),
        held = rest.len(),
        "replay: rows held by the application are replayed one by one"
    );
    for key in rest {
        replay_tx(conn, b, std::slice::from_ref(&key), ReadLock::Wait).await?;
    }
    Ok(())
}

/// A replay error in the user's terms.
fn replay_error(e: Error) -> Error {
    if e.code == Some(ServerCode::Mysql(1062)) {
        // The code stays: the core tells a moved unique value from a duplicate by it.
        Error {
            code: e.code,
            ..Error::new(
                ErrorKind::DataError,
                format!(
                    "{}; a write made during the migration violates a unique key of the new table",
                    e.message
                ),
            )
            .with_hint("remove the duplicates (or drop the UNIQUE from the ALTER) and run again")
        }
    } else if matches!(e.code, Some(ServerCode::Mysql(code)) if VALUE_ERRORS.contains(&code)) {
        // Strict mode: a value the target column cannot hold.
        Error {
            code: e.code,
            ..Error::new(
                ErrorKind::DataError,
                format!(
                    "{}; a value does not fit the column it is replayed into",
                    e.message
                ),
            )
            .with_hint("the value cannot be stored in the target column's type")
        }
    } else {
        e
    }
}

#[async_trait]
impl Engine for MysqlEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }
    fn names(&self) -> &ArtifactNames {
        &self.names
    }
    fn server_version(&self) -> String {
        self.version.clone()
    }
    fn cut_over_algorithm(&self) -> &'static str {
        if self.rename_under_lock() {
            "LOCK TABLES + RENAME TABLE under the lock"
        } else {
            "sentry table (LOCK TABLES + queued RENAME)"
        }
    }

    async fn inspect(&self) -> Result<Table> {
        let mut c = self.conn().await?;
        inspect::inspect(&mut c, &self.db, &self.table).await
    }

    async fn preflight(&self, scope: Scope, orig: &Table) -> Result<()> {
        let mut c = self.conn().await?;
        let mut cx = checks::CheckCtx {
            conn: &mut c,
            db: &self.db,
            table: &self.table,
            orig,
            engine: self,
        };
        checks::run(scope, &mut cx).await
    }

    async fn leftovers(&self) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let base = crate::engine::artifact_base(&self.table);
        let like_old = format!(
            "{}old\\_{}\\_%",
            PREFIX.replace('_', "\\_"),
            base.replace('_', "\\_")
        );
        let rows: Vec<(String, String)> = c
            .exec(
                "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND (TABLE_NAME = ? OR TABLE_NAME LIKE ?)",
                (&self.db, &self.names.shadow, like_old),
            )
            .await
            .map_err(|e| conn_err(e, "looking for leftovers"))?;
        let mut found: Vec<String> = rows
            .into_iter()
            .filter(|(n, comment)| *n == self.names.shadow || comment == cutover::SENTRY_COMMENT)
            .map(|(n, _)| n)
            .collect();
        if let Some(sentry) = cutover::sentry_name(&self.table) {
            let comment: Option<String> = c
                .exec_first(
                    "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&self.db, &sentry),
                )
                .await
                .map_err(|e| conn_err(e, "looking for leftovers"))?;
            if comment.as_deref() == Some(cutover::SENTRY_COMMENT) {
                found.push(sentry);
            }
        }
        // Old tables kept on purpose are not leftovers; sentries are. Nor is the old
        // table of a revert window that a revert attempt took over as its shadow.
        if self.in_revert_window().await? {
            found.retain(|t| *t != self.names.shadow);
        }
        Ok(found)
    }

    async fn cleanup(&self, include_old: bool) -> Result<Vec<String>> {
        let gone = self.cleanup_candidates(include_old).await?;
        let mut c = self.conn().await?;
        let cp = checkpoint::label(&self.table);
        for t in &gone {
            if *t == cp {
                self.checkpoint_drop().await?;
                continue;
            }
            exec(
                &mut c,
                &format!("DROP TABLE IF EXISTS {}", qualified(&self.db, t)),
                vec![],
                "cleaning up",
            )
            .await?;
        }
        Ok(gone)
    }

    async fn cleanup_candidates(&self, include_old: bool) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let mut gone = self.leftovers().await?;
        if include_old {
            let base = crate::engine::artifact_base(&self.table);
            let like_old = format!(
                "{}old\\_{}\\_%",
                PREFIX.replace('_', "\\_"),
                base.replace('_', "\\_")
            );
            let old: Vec<String> = c
                .exec(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ?",
                    (&self.db, like_old),
                )
                .await
                .map_err(|e| conn_err(e, "looking for old tables"))?;
            for o in old {
                if !gone.contains(&o) {
                    gone.push(o);
                }
            }
            if self.in_revert_window().await?
                && !gone.contains(&self.names.shadow)
                && self.inspect_table(&self.names.shadow).await.is_ok()
            {
                gone.push(self.names.shadow.clone());
            }
        }
        if self.checkpoint_load().await?.is_some() {
            gone.push(checkpoint::label(&self.table));
        }
        Ok(gone)
    }

    async fn start_stream(&self, _orig: &Table) -> Result<Position> {
        let mut c = self.conn().await?;
        let (file, pos) = Self::binlog_position(&mut c).await?;
        Ok(Position::Binlog { file, pos })
    }

    async fn open_stream(
        &self,
        orig: &Table,
        key: &[String],
        from: &Position,
    ) -> Result<Box<dyn ChangeStream>> {
        let Position::Binlog { file, pos } = from else {
            return Err(Error::internal("a MySQL stream needs a binlog position"));
        };
        let start = (file.clone(), *pos);
        let mut spec = Vec::new();
        for name in key {
            let col = orig
                .column(name)
                .ok_or_else(|| Error::internal(format!("key column {name} missing")))?;
            let kc = KeyColumn::for_column(col).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "key column `{name}` has type {}, which godwit cannot replay exactly",
                        col.column_type
                    ),
                )
            })?;
            spec.push((col.ordinal as usize - 1, kc.decode));
        }
        let s = binlog::open(binlog::StreamConfig {
            opts: self.opts.clone(),
            db: self.db.clone(),
            table: self.table.clone(),
            columns: orig.columns.len(),
            key: spec,
            start,
            mariadb: self.mariadb,
        })
        .await?;
        Ok(Box::new(s))
    }

    async fn create_shadow(&self, orig: &Table, alter: &AlterSpec) -> Result<Table> {
        if let Ok(mut ai) = self.auto_increment.lock() {
            *ai = alter.auto_increment;
        }
        // A connection of its own: its session settings change for a moment, and it
        // never goes back to the pool.
        let mut c = Conn::new(self.opts.clone())
            .await
            .map_err(|e| conn_err(e, "opening a connection"))?;
        let shadow = qualified(&self.db, &self.names.shadow);
        let built = build_shadow(&mut c, &shadow, &qualified(&self.db, &orig.name), alter).await;
        if let Err(e) = built {
            let _ = exec(
                &mut c,
                &format!("DROP TABLE IF EXISTS {shadow}"),
                vec![],
                "dropping the shadow",
            )
            .await;
            let _ = c.disconnect().await;
            return Err(e);
        }
        self.read_implicit_defaults(&mut c).await;
        // Bytes: a BINARY column's default is shown as raw bytes, not always UTF-8 (only the
        // KEY lines are read, and they are).
        let create: Option<(String, Vec<u8>)> = c
            .query_first(format!("SHOW CREATE TABLE {shadow}"))
            .await
            .map_err(|e| conn_err(e, "reading the shadow's definition"))?;
        let keys = create
            .map(|(_, c)| deferrable_keys(&String::from_utf8_lossy(&c)))
            .unwrap_or_default();
        if !keys.is_empty() {
            let drops: Vec<String> = keys
                .iter()
                .map(|(n, _)| format!("DROP INDEX {}", sql::quote(n)))
                .collect();
            exec(
                &mut c,
                &format!("ALTER TABLE {shadow} {}", drops.join(", ")),
                vec![],
                "deferring the shadow's secondary indexes",
            )
            .await?;
            if let Ok(mut d) = self.deferred_indexes.lock() {
                *d = keys.into_iter().map(|(_, def)| def).collect();
            }
        }
        let t = inspect::inspect(&mut c, &self.db, &self.names.shadow).await;
        let _ = c.disconnect().await;
        t
    }

    async fn analyze_shadow(&self) -> Result<()> {
        let mut c = self.conn().await?;
        let shadow = qualified(&self.db, &self.names.shadow);
        // One row per table: (Table, Op, Msg_type, Msg_text); an error is a row too.
        let rows: Vec<(String, String, String, String)> = c
            .query(format!("ANALYZE TABLE {shadow}"))
            .await
            .map_err(|e| conn_err(e, "analyzing the shadow"))?;
        match rows.iter().find(|r| r.2.eq_ignore_ascii_case("error")) {
            Some(r) => Err(Error::new(
                ErrorKind::Migration,
                format!("ANALYZE TABLE {shadow}: {}", r.3),
            )),
            None => Ok(()),
        }
    }

    async fn before_cut_over(&self, _mapping: &ColumnMapping) -> Result<()> {
        // Kept in the checkpoint until they exist.
        let defs = self
            .deferred_indexes
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        if defs.is_empty() {
            return Ok(());
        }
        tracing::info!(
            indexes = defs.len(),
            "building the shadow's secondary indexes"
        );
        // A lost connection (a server restart) is retried on a new one: the ALTER is
        // atomic, and the retry adds only the indexes the shadow does not have yet (the
        // answer of one that completed may be what was lost).
        let policy = self.options.reconnect.clone();
        let mut outage = policy.outage("of the index build");
        loop {
            let r = async {
                let mut c = self
                    .conn_for_attempt(outage.attempts(), "the index build")
                    .await?;
                let shadow = qualified(&self.db, &self.names.shadow);
                let missing: Vec<&String> = if outage.attempts() == 0 {
                    defs.iter().collect()
                } else {
                    let create: Option<(String, Vec<u8>)> = c
                        .query_first(format!("SHOW CREATE TABLE {shadow}"))
                        .await
                        .map_err(|e| conn_err(e, "reading the shadow's definition"))?;
                    let have: Vec<String> = create
                        .map(|(_, c)| plain_keys(&String::from_utf8_lossy(&c)))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(_, def)| def)
                        .collect();
                    defs.iter().filter(|d| !have.contains(d)).collect()
                };
                if missing.is_empty() {
                    return Ok(());
                }
                let adds: Vec<String> = missing.iter().map(|d| format!("ADD {d}")).collect();
                exec(
                    &mut c,
                    &format!("ALTER TABLE {shadow} {}", adds.join(", ")),
                    vec![],
                    "building the shadow's secondary indexes",
                )
                .await
                .map(|_| ())
            }
            .await;
            match r {
                Ok(()) => {
                    outage.recovered();
                    break;
                }
                Err(e) => outage.wait(e).await?,
            }
        }
        if let Ok(mut d) = self.deferred_indexes.lock() {
            d.clear();
        }
        Ok(())
    }

    fn check_key(&self, orig: &Table, mapping: &ColumnMapping) -> Result<()> {
        self.key_columns(orig, mapping).map(|_| ())
    }

    async fn drop_shadow(&self) -> Result<()> {
        let mut c = self.conn().await?;
        exec(
            &mut c,
            &format!(
                "DROP TABLE IF EXISTS {}",
                qualified(&self.db, &self.names.shadow)
            ),
            vec![],
            "dropping the shadow table",
        )
        .await
        .map(|_| ())
    }

    async fn copier(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
    ) -> Result<Box<dyn Copier>> {
        Ok(Box::new(MysqlCopier {
            // Opened by the first chunk (again after a lost connection).
            conn: None,
            opts: self.opts.clone(),
            reconnect: self.options.reconnect.clone(),
            b: self.builder(orig, mapping)?,
            key_name: mapping.key.target_name.clone(),
            last: after.cloned(),
            done: false,
        }))
    }

    /// A flush whose connection is lost runs again on a new one: delete and insert by
    /// key, one transaction per batch, so replaying a batch twice changes nothing.
    async fn flush(&self, orig: &Table, mapping: &ColumnMapping, keys: &[Key]) -> Result<u64> {
        let b = self.builder(orig, mapping)?;
        let policy = self.options.reconnect.clone();
        let mut outage = policy.outage("of the replay");
        loop {
            let r = async {
                let mut c = self
                    .conn_for_attempt(outage.attempts(), "the replay")
                    .await?;
                flush_keys(&mut c, &b, keys, true, false).await
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
        let b = self.builder(orig, mapping)?;
        let hold = if attempt == 1 {
            self.options.cut_over_hold
        } else {
            None
        };
        let lock = cutover::lock(cutover::CutOverSetup {
            opts: self.opts.clone(),
            db: self.db.clone(),
            orig: self.table.clone(),
            shadow: self.names.shadow.clone(),
            old: self.names.old.clone(),
            builder: b,
            timeout,
            sentry: !self.rename_under_lock(),
            hold,
            auto_increment: self.auto_increment.lock().ok().and_then(|a| *a),
        })
        .await?;
        Ok(Box::new(lock))
    }

    async fn status_values(&self, names: &[String]) -> Result<Vec<f64>> {
        let mut c = self.conn().await?;
        load::read(&mut c, names).await
    }

    async fn drop_old(&self) -> Result<()> {
        let mut c = self.conn().await?;
        exec(
            &mut c,
            &format!(
                "DROP TABLE IF EXISTS {}",
                qualified(&self.db, &self.names.old)
            ),
            vec![],
            "dropping the old table",
        )
        .await
        .map(|_| ())
    }

    fn stream_sees_swap(&self) -> bool {
        true
    }

    async fn current_position(&self) -> Result<Option<Position>> {
        let mut c = self.conn().await?;
        let (file, pos) = Self::binlog_position(&mut c).await?;
        Ok(Some(Position::Binlog { file, pos }))
    }

    async fn lock_runner(&self) -> Result<bool> {
        let mut c = self.conn().await?;
        let got: Option<Option<i64>> = c
            .exec_first(
                "SELECT GET_LOCK(?, 0)",
                (runner_lock_name(&self.db, &self.table),),
            )
            .await
            .map_err(|e| conn_err(e, "taking the table's runner lock"))?;
        if got.flatten() != Some(1) {
            return Ok(false);
        }
        *self.runner.lock().await = Some(c);
        Ok(true)
    }

    async fn keep_runner_lock(&self) -> Result<bool> {
        let name = runner_lock_name(&self.db, &self.table);
        let mut runner = self.runner.lock().await;
        let Some(c) = runner.as_mut() else {
            // Not taken by this engine (a dry run): nothing to keep.
            return Ok(true);
        };
        let mine: std::result::Result<Option<Option<i64>>, _> = c
            .exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&name,))
            .await;
        if let Ok(Some(Some(1))) = mine {
            return Ok(true);
        }
        // The session is gone (or no longer holds it): take it on a new one.
        let mut c = Conn::new(self.opts.clone())
            .await
            .map_err(|e| conn_err(e, "taking the table's runner lock again"))?;
        let got: Option<Option<i64>> = c
            .exec_first("SELECT GET_LOCK(?, 0)", (&name,))
            .await
            .map_err(|e| conn_err(e, "taking the table's runner lock again"))?;
        if got.flatten() != Some(1) {
            let _ = c.disconnect().await;
            *runner = None;
            return Ok(false);
        }
        tracing::info!("took the table's runner lock again on a new session");
        *runner = Some(c);
        Ok(true)
    }

    async fn swapped(&self) -> Result<bool> {
        let mut c = Conn::new(self.opts.clone())
            .await
            .map_err(|e| conn_err(e, "checking whether the tables were swapped"))?;
        let n: Option<i64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.db, &self.names.old),
            )
            .await
            .map_err(|e| conn_err(e, "checking whether the tables were swapped"))?;
        let _ = c.disconnect().await;
        Ok(n.unwrap_or(0) > 0)
    }

    async fn close(&self) -> Result<()> {
        if let Some(mut c) = self.runner.lock().await.take() {
            let _ = c
                .exec_drop(
                    "DO RELEASE_LOCK(?)",
                    (runner_lock_name(&self.db, &self.table),),
                )
                .await;
            let _ = c.disconnect().await;
        }
        let _ = self.pool.clone().disconnect().await;
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
            verify::MysqlVerifyLock::take(&self.pool, sums, timeout).await?,
        ))
    }

    async fn verify_views(
        &self,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
    ) -> Result<Box<dyn crate::engine::VerifyView>> {
        let sums = self.checksums(orig, other, mapping)?;
        Ok(Box::new(verify::MysqlView::open(&self.pool, sums).await?))
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

    async fn load_checkpoint(&self) -> Result<Option<String>> {
        self.checkpoint_load().await
    }

    async fn save_checkpoint(&self, state: &str) -> Result<()> {
        self.checkpoint_save(state).await
    }

    async fn drop_checkpoint(&self) -> Result<()> {
        self.checkpoint_drop().await.map(|_| ())
    }

    async fn request_handover(&self) -> Result<bool> {
        self.checkpoint_request("handover").await
    }

    async fn handover_requested(&self) -> Result<bool> {
        Ok(self.checkpoint_request_read().await?.as_deref() == Some("handover"))
    }

    async fn swapped_as(&self, old: &str) -> Result<Option<String>> {
        let mut c = self.conn().await?;
        let found: Vec<(String, String)> = c
            .exec(
                "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)",
                (&self.db, old, cutover::sentry_name(&self.table).unwrap_or_default()),
            )
            .await
            .map_err(|e| conn_err(e, "looking for the old table"))?;
        // The final name, or (sentry algorithm) the sentry's name the RENAME gave the
        // original before its final rename: then it is not the sentry itself.
        if found.iter().any(|(n, _)| n == old) {
            return Ok(Some(old.to_string()));
        }
        Ok(found
            .into_iter()
            .find(|(_, comment)| comment != cutover::SENTRY_COMMENT)
            .map(|(n, _)| n))
    }

    async fn cut_over_blockers(&self) -> Result<Vec<crate::engine::Blocker>> {
        self.blockers().await
    }
    async fn kill_session(&self, id: u64) -> Result<()> {
        self.kill(id).await
    }
    async fn drop_old_table(&self, name: &str) -> Result<()> {
        let mut c = self.conn().await?;
        exec(
            &mut c,
            &format!("DROP TABLE IF EXISTS {}", qualified(&self.db, name)),
            vec![],
            "dropping the old table",
        )
        .await
        .map(|_| ())
    }

    fn resume_state(&self) -> serde_json::Value {
        let deferred = self
            .deferred_indexes
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        let ai = self.auto_increment.lock().map(|a| *a).unwrap_or(None);
        serde_json::json!({ "deferred_indexes": deferred, "auto_increment": ai })
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
        let Position::Binlog { file, .. } = from else {
            return Err(Error::internal(
                "a MySQL checkpoint needs a binlog position",
            ));
        };
        if !self.binlog_file_exists(file).await? {
            return Err(Error::new(
                ErrorKind::Checkpoint,
                format!("the checkpoint's binlog position {from} is gone: the server no longer has binlog file {file} (purged or expired), so the changes since the checkpoint cannot be read"),
            )
            .with_hint(restart));
        }
        if let Some(kept) = &self.adopt {
            self.adopt_shadow(kept).await?;
        }
        {
            let mut c = Conn::new(self.opts.clone())
                .await
                .map_err(|e| conn_err(e, "opening a connection"))?;
            self.read_implicit_defaults(&mut c).await;
            let _ = c.disconnect().await;
        }
        let shadow = match self.inspect_table(&self.names.shadow).await {
            Ok(t) => t,
            Err(e) if e.kind == ErrorKind::TableMissing => {
                return Err(Error::new(
                    ErrorKind::Checkpoint,
                    format!(
                        "the checkpoint's shadow table {} is gone",
                        self.names.shadow
                    ),
                )
                .with_hint(restart))
            }
            Err(e) => return Err(e),
        };
        // A cut-over sentry of the dead run (it died during a cut-over attempt) goes.
        for t in self.leftovers().await? {
            if t != self.names.shadow {
                tracing::warn!("removing {t}, left by the dead run's cut-over");
                let mut c = self.conn().await?;
                exec(
                    &mut c,
                    &format!("DROP TABLE IF EXISTS {}", qualified(&self.db, &t)),
                    vec![],
                    "removing a cut-over sentry",
                )
                .await?;
            }
        }
        // Deferred indexes the dead run had already built are not built again.
        let saved: Vec<String> = state["deferred_indexes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut c = self.conn().await?;
        let create: Option<(String, Vec<u8>)> = c
            .query_first(format!(
                "SHOW CREATE TABLE {}",
                qualified(&self.db, &self.names.shadow)
            ))
            .await
            .map_err(|e| conn_err(e, "reading the shadow's definition"))?;
        let present: Vec<String> = create
            .map(|(_, c)| deferrable_keys(&String::from_utf8_lossy(&c)))
            .unwrap_or_default()
            .into_iter()
            .map(|(_, def)| def)
            .collect();
        if let Ok(mut d) = self.deferred_indexes.lock() {
            *d = saved.into_iter().filter(|x| !present.contains(x)).collect();
        }
        if let Ok(mut ai) = self.auto_increment.lock() {
            *ai = state["auto_increment"].as_u64();
        }
        Ok(shadow)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_keys_are_read_from_show_create() {
        let create = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `a` int,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`a`),\n  KEY `idx_a` (`a`) COMMENT 'x',\n  KEY `we``ird` (`a`,`id`),\n  FULLTEXT KEY `ft` (`b`)\n) ENGINE=InnoDB";
        let k = super::plain_keys(create);
        assert_eq!(k.len(), 2);
        assert_eq!(
            k[0],
            (
                "idx_a".to_string(),
                "KEY `idx_a` (`a`) COMMENT 'x'".to_string()
            )
        );
        assert_eq!(k[1].0, "we`ird");
    }

    #[test]
    fn the_auto_increment_columns_only_key_is_not_deferred() {
        let create = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `i` int(11) NOT NULL,\n  PRIMARY KEY (`i`,`id`),\n  KEY `idx_i` (`i`),\n  KEY `k_id` (`id`,`i`)\n) ENGINE=InnoDB";
        let k = super::deferrable_keys(create);
        assert!(k.is_empty(), "{k:?}");
        let later = create.replace(
            "  KEY `k_id` (`id`,`i`)\n",
            "  KEY `k_id` (`id`,`i`),\n  KEY `later` (`i`)\n",
        );
        let k = super::deferrable_keys(&later);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].0, "later");
        // A primary key that starts with it keeps it a key: everything can go.
        let create = create.replace("PRIMARY KEY (`i`,`id`)", "PRIMARY KEY (`id`,`i`)");
        assert_eq!(super::deferrable_keys(&create).len(), 2);
        let create = create.replace(" AUTO_INCREMENT", "");
        assert_eq!(super::deferrable_keys(&create).len(), 2);
    }

    #[test]
    fn cut_over_algorithm_follows_the_server() {
        use super::{parse_version, rename_under_lock};
        assert!(!rename_under_lock(
            true,
            parse_version("10.11.6-MariaDB-0+deb12u1-log")
        ));
        assert!(!rename_under_lock(true, parse_version("11.4.2-MariaDB")));
        assert!(!rename_under_lock(false, parse_version("8.0.12")));
        assert!(!rename_under_lock(false, parse_version("5.7.44-log")));
        assert!(rename_under_lock(false, parse_version("8.0.13")));
        assert!(rename_under_lock(false, parse_version("8.4.3")));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            super::parse_version("10.11.6-MariaDB-0+deb12u1-log"),
            (10, 11, 6)
        );
        assert_eq!(super::parse_version("8.0.36"), (8, 0, 36));
    }
}
