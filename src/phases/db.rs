//! One connection for a phase command: statements, the catalog, the runner lock.

use super::catalog::{ColumnInfo, Grant, TableInfo};
use super::dialect::Dialect;
use super::sql_mysql::Mysql;
use super::sql_postgres::Postgres;
use crate::engine::mysql::conn_err as my_driver_err;
use crate::engine::postgres::conn::{connect as pg_connect, pg_err as pg_driver_err};
use crate::error::{Error, ErrorKind, Result};
use crate::target::{EngineKind, Target};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// A lock wait that ran out is a cut-over failure for `godwit run`; in a phase it means
/// another session held a row or the table longer than `--lock-timeout-seconds`.
fn relabel(e: Error) -> Error {
    if e.kind != ErrorKind::CutOverFailed {
        return e;
    }
    Error::new(ErrorKind::Migration, e.message).with_hint(
        "another session held a lock longer than --lock-timeout-seconds; run the phase again (a backfill resumes after its last finished batch), or raise the timeout",
    )
}

fn conn_err(e: mysql_async::Error, what: &str) -> Error {
    relabel(my_driver_err(e, what))
}

fn pg_err(e: tokio_postgres::Error, what: &str) -> Error {
    relabel(pg_driver_err(e, what))
}

/// What a name in the current database / schema is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    View,
}

/// A bind parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(Option<String>),
    Int(i64),
}

pub enum Db {
    My {
        conn: mysql_async::Conn,
        dialect: Mysql,
        version: String,
    },
    Pg {
        client: tokio_postgres::Client,
        dialect: Postgres,
    },
}

fn my_text(v: mysql_async::Value) -> Option<String> {
    use mysql_async::Value as V;
    match v {
        V::NULL => None,
        V::Bytes(b) => Some(String::from_utf8_lossy(&b).to_string()),
        V::Int(i) => Some(i.to_string()),
        V::UInt(u) => Some(u.to_string()),
        V::Float(f) => Some(f.to_string()),
        V::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl Db {
    pub async fn connect(target: &Target, lock_timeout: Duration) -> Result<Db> {
        match target.kind {
            EngineKind::Mysql => {
                let secs = lock_timeout.as_secs().max(1);
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(target.host.clone())
                    .tcp_port(target.port)
                    .user(Some(target.user.clone()))
                    .pass(target.password().map(str::to_string))
                    .db_name(Some(target.database.clone()))
                    .prefer_socket(false)
                    .setup(vec![
                        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
                            .to_string(),
                        // Backfill batches take record locks only (no gap locks), and
                        // semi-consistent reads skip the application's uncommitted rows
                        // instead of waiting on them: no deadlock with its inserts.
                        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
                        format!("SET SESSION lock_wait_timeout = {secs}"),
                        format!("SET SESSION innodb_lock_wait_timeout = {secs}"),
                    ]);
                let mut conn =
                    tokio::time::timeout(Duration::from_secs(15), mysql_async::Conn::new(opts))
                        .await
                        .map_err(|_| {
                            Error::new(
                                ErrorKind::Unreachable,
                                format!("no answer from {target} within 15 s"),
                            )
                        })?
                        .map_err(|e| {
                            let e = conn_err(e, &format!("connecting to {target}"));
                            Error {
                                message: target.scrub(&e.message),
                                ..e
                            }
                        })?;
                let version: String = conn
                    .query_first("SELECT VERSION()")
                    .await
                    .map_err(|e| conn_err(e, "reading the server version"))?
                    .unwrap_or_default();
                Ok(Db::My {
                    conn,
                    dialect: Mysql {
                        db: target.database.clone(),
                    },
                    version,
                })
            }
            EngineKind::Postgres => {
                let client = pg_connect(target, "phases").await?;
                let ms = lock_timeout.as_millis().max(1);
                client
                    .batch_execute(&format!("SET lock_timeout = {ms}"))
                    .await
                    .map_err(|e| pg_err(e, "setting lock_timeout"))?;
                let schema: String = client
                    .query_one("SELECT current_schema()::text", &[])
                    .await
                    .and_then(|r| r.try_get::<_, Option<String>>(0))
                    .map_err(|e| pg_err(e, "reading the current schema"))?
                    .ok_or_else(|| {
                        Error::bad_input("no current schema: set search_path for the user")
                    })?;
                let version: u32 = client
                    .query_one("SELECT current_setting('server_version_num')", &[])
                    .await
                    .and_then(|r| r.try_get::<_, String>(0))
                    .map_err(|e| pg_err(e, "reading the server version"))?
                    .parse()
                    .unwrap_or(0);
                Ok(Db::Pg {
                    client,
                    dialect: Postgres { schema, version },
                })
            }
        }
    }

    /// From here on the session refuses to write (`godwit plan`).
    pub async fn read_only(&mut self) -> Result<()> {
        let sql = match self {
            Db::My { .. } => "SET SESSION TRANSACTION READ ONLY",
            Db::Pg { .. } => "SET default_transaction_read_only = on",
        };
        self.exec(sql).await
    }

    pub fn dialect(&self) -> &dyn Dialect {
        match self {
            Db::My { dialect, .. } => dialect,
            Db::Pg { dialect, .. } => dialect,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg { .. })
    }

    /// `?` (MySQL) or `$n` (PostgreSQL).
    pub fn ph(&self, n: usize) -> String {
        match self {
            Db::My { .. } => "?".into(),
            Db::Pg { .. } => format!("${n}"),
        }
    }

    pub async fn exec(&mut self, sql: &str) -> Result<()> {
        tracing::debug!(sql, "exec");
        match self {
            Db::My { conn, .. } => conn
                .query_drop(sql)
                .await
                .map_err(|e| conn_err(e, &short(sql))),
            // The extended protocol: one statement, never a batch.
            Db::Pg { client, .. } => client
                .execute(sql, &[])
                .await
                .map(|_| ())
                .map_err(|e| pg_err(e, &short(sql))),
        }
    }

    /// Run with parameters; returns affected rows.
    pub async fn exec_params(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        tracing::trace!(sql, "exec_params");
        match self {
            Db::My { conn, .. } => {
                let ps: Vec<mysql_async::Value> = params.iter().map(my_param).collect();
                conn.exec_drop(sql, ps)
                    .await
                    .map_err(|e| conn_err(e, &short(sql)))?;
                Ok(conn.affected_rows())
            }
            Db::Pg { client, .. } => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
                    .iter()
                    .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client
                    .execute(sql, &refs)
                    .await
                    .map_err(|e| pg_err(e, &short(sql)))
            }
        }
    }

    /// Rows of text values (PostgreSQL: the query must select text).
    pub async fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Vec<Option<String>>>> {
        tracing::trace!(sql, "query");
        match self {
            Db::My { conn, .. } => {
                let ps: Vec<mysql_async::Value> = params.iter().map(my_param).collect();
                let rows: Vec<mysql_async::Row> = conn
                    .exec(sql, ps)
                    .await
                    .map_err(|e| conn_err(e, &short(sql)))?;
                Ok(rows
                    .into_iter()
                    .map(|r| r.unwrap().into_iter().map(my_text).collect())
                    .collect())
            }
            Db::Pg { client, .. } => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
                    .iter()
                    .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = client
                    .query(sql, &refs)
                    .await
                    .map_err(|e| pg_err(e, &short(sql)))?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<_, Option<String>>(i))
                            .collect::<std::result::Result<Vec<_>, _>>()
                            .map_err(|e| pg_err(e, &short(sql)))
                    })
                    .collect()
            }
        }
    }

    /// Current values of the load counters `names` (`--max-load`), read by the engine's
    /// own counter code; an unknown name is a `BadInput` error.
    pub async fn load_values(&mut self, names: &[String]) -> Result<Vec<f64>> {
        match self {
            Db::My { conn, .. } => crate::engine::mysql::load::read(conn, names).await,
            Db::Pg { client, .. } => crate::engine::postgres::load::read(client, names).await,
        }
    }

    /// The single-runner lock (session level). A second runner gets a clear error. A
    /// runner that has just exited may still hold it for a moment (the server drops a
    /// closed session's locks asynchronously), so a few short retries come first.
    pub async fn try_lock(&mut self) -> Result<()> {
        for _ in 0..20 {
            if self.try_lock_once().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::new(
            ErrorKind::Migration,
            "another godwit phase command is running against this database (runner lock held)",
        )
        .with_hint("wait for it to finish; only one runner at a time may change migrations"))
    }

    async fn try_lock_once(&mut self) -> Result<bool> {
        let got = match self {
            Db::My { dialect, .. } => {
                let name = format!("godwit_phases.{}", dialect.db);
                let r = self
                    .query("SELECT GET_LOCK(?, 0)", &[Param::Text(Some(name))])
                    .await?;
                r.first().and_then(|r| r[0].clone()).as_deref() == Some("1")
            }
            Db::Pg { .. } => {
                let r = self
                    .query(
                        "SELECT pg_try_advisory_lock(hashtext('godwit_phases.' || current_schema()))::text",
                        &[],
                    )
                    .await?;
                r.first().and_then(|r| r[0].clone()).as_deref() == Some("true")
            }
        };
        Ok(got)
    }

    /// Is `name` a table, a view, or nothing, in the current database / schema?
    pub async fn relation_kind(&mut self, name: &str) -> Result<Option<RelKind>> {
        let sql = match self {
            Db::My { .. } => "SELECT CASE WHEN TABLE_TYPE = 'VIEW' THEN 'v' ELSE 'r' END FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            Db::Pg { .. } => "SELECT CASE WHEN c.relkind = 'v' THEN 'v' ELSE 'r' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1::text AND c.relkind IN ('r','p','v')",
        };
        let r = self
            .query(sql, &[Param::Text(Some(name.to_string()))])
            .await?;
        Ok(match r.first().and_then(|r| r[0].as_deref()) {
            Some("v") => Some(RelKind::View),
            Some(_) => Some(RelKind::Table),
            None => None,
        })
    }

    pub async fn table_exists(&mut self, table: &str) -> Result<bool> {
        Ok(self.relation_kind(table).await? == Some(RelKind::Table))
    }

    /// The table (or view) as the catalog describes it now; None if it does not exist.
    pub async fn table_info(&mut self, table: &str) -> Result<Option<TableInfo>> {
        let Some(kind) = self.relation_kind(table).await? else {
            return Ok(None);
        };
        let t = Param::Text(Some(table.to_string()));
        let (cols_sql, pk_sql, idx_sql, fk_sql, grants_sql) = match self {
            Db::My { .. } => (
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                None,
            ),
            Db::Pg { .. } => (
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END, pg_get_expr(d.adbin, d.adrelid), NULL::text, NULL::text \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE n.nspname = current_schema() AND c.relname = $1::text AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                "SELECT a.attname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
                 WHERE n.nspname = current_schema() AND c.relname = $1::text AND i.indisprimary ORDER BY k.ord",
                "SELECT ic.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1::text AND i.indisvalid",
                "SELECT co.conname::text FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relname = $1::text AND co.contype = 'f'",
                Some(
                    "SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END, g.privilege_type::text \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) g \
                     WHERE n.nspname = current_schema() AND c.relname = $1::text \
                     AND g.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') AND g.grantee <> c.relowner \
                     ORDER BY 1, 2",
                ),
            ),
        };
        let one = std::slice::from_ref(&t);
        let cols = self.query(cols_sql, one).await?;
        let pk = self.query(pk_sql, one).await?;
        let idx = self.query(idx_sql, one).await?;
        let fks = self.query(fk_sql, one).await?;
        let grants = match grants_sql {
            Some(g) => self.query(g, one).await?,
            None => vec![],
        };
        let columns = cols
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter();
                let mut next = || it.next().flatten();
                ColumnInfo {
                    name: next().unwrap_or_default(),
                    sql_type: next().unwrap_or_default(),
                    nullable: next().as_deref() == Some("YES"),
                    default: next().filter(|d| !d.eq_ignore_ascii_case("null")),
                    collation: next(),
                    comment: next(),
                }
            })
            .collect();
        let mut info = TableInfo {
            name: table.to_string(),
            view: kind == RelKind::View,
            columns,
            primary_key: pk.into_iter().filter_map(|r| r[0].clone()).collect(),
            indexes: idx.into_iter().filter_map(|r| r[0].clone()).collect(),
            foreign_keys: fks.into_iter().filter_map(|r| r[0].clone()).collect(),
            grants: grants
                .into_iter()
                .filter_map(|r| {
                    Some(Grant {
                        grantee: r[0].clone()?,
                        privilege: r[1].clone()?,
                    })
                })
                .collect(),
            ..TableInfo::default()
        };
        super::uses::read(self, &mut info).await?;
        Ok(Some(info))
    }

    /// MySQL before 5.7.2 and MariaDB before 10.2.3 allow one trigger per event and
    /// timing: refuse there when the table already has one.
    pub async fn check_trigger_support(&mut self, table: &str) -> Result<()> {
        let Db::My { version, .. } = self else {
            return Ok(());
        };
        let mariadb = version.to_lowercase().contains("mariadb");
        let v: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(3)
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        let v = (
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
            v.get(2).copied().unwrap_or(0),
        );
        let multi = if mariadb {
            v >= (10, 2, 3)
        } else {
            v >= (5, 7, 2)
        };
        if multi {
            return Ok(());
        }
        let n = self
            .query(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? AND ACTION_TIMING = 'BEFORE'",
                &[Param::Text(Some(table.to_string()))],
            )
            .await?;
        if n.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Triggers,
                format!("table `{table}` already has a BEFORE trigger and this server allows only one per event (MySQL < 5.7.2 / MariaDB < 10.2.3)"),
            )
            .with_hint("upgrade the server, or fold the existing trigger's work into a `sql` operation"))
        }
    }
}

fn my_param(p: &Param) -> mysql_async::Value {
    match p {
        Param::Text(Some(s)) => mysql_async::Value::Bytes(s.clone().into_bytes()),
        Param::Text(None) => mysql_async::Value::NULL,
        Param::Int(i) => mysql_async::Value::Int(*i),
    }
}

fn pg_params(params: &[Param]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

/// The first line of a statement, for error messages.
fn short(sql: &str) -> String {
    let l = sql.lines().next().unwrap_or_default();
    let l: String = l.chars().take(160).collect();
    format!("running `{l}`")
}
