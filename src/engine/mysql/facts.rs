//! Read-only facts for `godwit plan`: version, settings, sizes, columns, indexes,
//! replicas, long transactions, a timed sample, and bounded data checks.

use super::session::{self, SessionKind};
use super::sql::quote;
use super::{conn_err, parse_version};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{
    DataProbe, Facts, LongTransaction, MysqlFacts, PlanOptions, ProbeResult, Sample,
};
use crate::target::{EngineKind, Target};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use std::time::Instant;

/// One read-only session.
pub struct Session {
    conn: Conn,
    db: String,
    /// `max_statement_time` exists (MariaDB) / `max_execution_time` (MySQL).
    mariadb: bool,
}

fn s(row: &Row, i: usize) -> Option<String> {
    row.get_opt::<Option<String>, _>(i)
        .and_then(|r| r.ok())
        .flatten()
}
fn n(row: &Row, i: usize) -> Option<u64> {
    row.get_opt::<Option<u64>, _>(i)
        .and_then(|r| r.ok())
        .flatten()
}

impl Session {
    /// A read-only session (what `godwit plan` uses).
    pub async fn connect(target: &Target) -> Result<Session> {
        let mut sess = Session::open(target).await?;
        // Read-only from here on: a plan must change nothing.
        let _ = sess
            .conn
            .query_drop("SET SESSION TRANSACTION READ ONLY")
            .await;
        Ok(sess)
    }

    /// A session that may run the ALTER natively (`godwit run --attempt-native`).
    pub async fn connect_writable(target: &Target) -> Result<Session> {
        Session::open(target).await
    }

    /// Run `stmt` (a DDL the planner found instant) waiting at most `lock_wait_secs` for
    /// the metadata lock, so it never queues the application behind a long transaction.
    pub async fn execute_native(&mut self, stmt: &str, lock_wait_secs: u64) -> Result<()> {
        self.conn
            .query_drop(format!(
                "SET SESSION lock_wait_timeout = {}",
                lock_wait_secs.max(1)
            ))
            .await
            .map_err(|e| conn_err(e, "setting lock_wait_timeout"))?;
        self.conn.query_drop(stmt).await.map_err(|e| {
            let e = conn_err(e, "running the ALTER natively");
            if e.kind == ErrorKind::CutOverFailed {
                e.with_hint("a transaction holds the table; retry later, or run without --attempt-native. The table is unchanged")
            } else {
                e
            }
        })
    }

    async fn open(target: &Target) -> Result<Session> {
        let conn = session::connect(target, session::options(target, SessionKind::Online)).await?;
        let sess = Session {
            conn,
            db: target.database.clone(),
            mariadb: false,
        };
        Ok(sess)
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    async fn first(&mut self, sql: &str, what: &str) -> Result<Option<Row>> {
        self.conn
            .query_first(sql)
            .await
            .map_err(|e| conn_err(e, what))
    }

    pub async fn facts(&mut self, table: &str, o: &PlanOptions) -> Result<Facts> {
        let db = self.db.clone();
        let version: String = self
            .conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| conn_err(e, "reading the server version"))?
            .unwrap_or_default();
        self.mariadb = version.to_lowercase().contains("mariadb");
        let meta: Option<Row> = self
            .conn
            .exec_first(
                "SELECT TABLE_TYPE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, AVG_ROW_LENGTH, ROW_FORMAT, DATA_FREE, ENGINE, TABLE_COLLATION \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&db, table),
            )
            .await
            .map_err(|e| conn_err(e, "reading the table size"))?;
        let Some(meta) = meta else {
            return Err(Error::new(
                ErrorKind::TableMissing,
                format!("table `{db}`.`{table}` does not exist"),
            )
            .with_hint("check --table and the database in --url"));
        };
        if s(&meta, 0).as_deref() != Some("BASE TABLE") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("`{db}`.`{table}` is not a base table"),
            ));
        }
        let Some((_, model)) = super::inspect::read(&mut self.conn, &db, table).await? else {
            return Err(Error::new(
                ErrorKind::TableMissing,
                format!("table `{db}`.`{table}` does not exist"),
            )
            .with_hint("check --table and the database in --url"));
        };
        let columns = model.columns;
        let mut indexes = model.indexes;
        // In the order of `ORDER BY INDEX_NAME` in information_schema (case-insensitive).
        indexes.sort_by_key(|i| i.name.to_ascii_uppercase());
        let mut settings = Vec::new();
        for var in [
            "foreign_key_checks",
            "lock_wait_timeout",
            "binlog_format",
            "innodb_online_alter_log_max_size",
            "log_bin",
        ] {
            if let Ok(Some(row)) = self
                .first(&format!("SELECT @@{var}"), "reading settings")
                .await
            {
                let v: Option<String> = row
                    .get_opt::<Option<String>, _>(0)
                    .and_then(|r| r.ok())
                    .flatten();
                if let Some(v) = v {
                    settings.push((var.to_string(), v));
                }
            }
        }
        // MySQL 8.0.29+: instant ADD/DROP COLUMN creates row versions, at most 64 (255
        // since 9.1); at the limit the server refuses ALGORITHM=INSTANT.
        if !self.mariadb {
            let sql =
                "SELECT TOTAL_ROW_VERSIONS FROM information_schema.INNODB_TABLES WHERE NAME = ?";
            if let Ok(Some(v)) = self
                .conn
                .exec_first::<u64, _, _>(sql, (format!("{db}/{table}"),))
                .await
            {
                settings.push(("total_row_versions".to_string(), v.to_string()));
            }
        }
        // Replicas: visible to users with REPLICATION MASTER ADMIN / SLAVE MONITOR.
        let replicas = match self.conn.query::<Row, _>("SHOW SLAVE HOSTS").await {
            Ok(rows) => Some(rows.len() as u32),
            Err(_) => None,
        };
        let long_transactions = self.long_transactions(o.long_trx_seconds.min(5)).await;
        let pk: Vec<String> = indexes
            .iter()
            .find(|i| i.primary)
            .map(|i| i.column_names())
            .unwrap_or_default();
        let sample = self.sample(table, &pk, o.sample_rows).await;
        let charsets: Vec<Row> = self
            .conn
            .query(
                "SELECT CHARACTER_SET_NAME, DEFAULT_COLLATE_NAME, CAST(MAXLEN AS UNSIGNED) \
                 FROM information_schema.CHARACTER_SETS",
            )
            .await
            .map_err(|e| conn_err(e, "reading character sets"))?;
        let schema_collation: Option<String> = self
            .conn
            .exec_first(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&db,),
            )
            .await
            .map_err(|e| conn_err(e, "reading the database's collation"))?;
        let mysql = MysqlFacts {
            engine: s(&meta, 7),
            table_collation: s(&meta, 8),
            schema_collation,
            charsets: charsets
                .iter()
                .map(|r| {
                    (
                        s(r, 0).unwrap_or_default(),
                        s(r, 1).unwrap_or_default(),
                        n(r, 2).unwrap_or(1),
                    )
                })
                .collect(),
        };
        Ok(Facts {
            engine: EngineKind::Mysql,
            mariadb: self.mariadb,
            version: parse_version(&version),
            server_version: version,
            schema: db,
            table: table.to_string(),
            row_estimate: n(&meta, 1).unwrap_or(0),
            data_bytes: n(&meta, 2).unwrap_or(0),
            index_bytes: n(&meta, 3).unwrap_or(0),
            avg_row_bytes: n(&meta, 4).unwrap_or(0),
            row_format: s(&meta, 5),
            columns,
            indexes,
            proven_not_null: vec![],
            // DATA_FREE is free space inside the tablespace, not on the disk: unknown.
            free_bytes: None,
            replicas,
            long_transactions,
            settings,
            sample,
            mysql,
            pg: Default::default(),
        })
    }

    async fn long_transactions(&mut self, min_secs: u64) -> Vec<LongTransaction> {
        // INNODB_TRX.trx_started is in the server's system time zone, not the session's:
        // compare it with NOW() read in that zone, then restore godwit's UTC session.
        if let Err(e) = self
            .conn
            .query_drop("SET @godwit_tz = @@SESSION.time_zone, SESSION time_zone = 'SYSTEM'")
            .await
        {
            tracing::debug!("cannot switch to the system time zone: {e}");
            return Vec::new();
        }
        let found = self.long_transactions_in_system_zone(min_secs).await;
        if let Err(e) = self
            .conn
            .query_drop("SET SESSION time_zone = @godwit_tz")
            .await
        {
            tracing::debug!("cannot restore the session time zone: {e}");
        }
        found
    }

    async fn long_transactions_in_system_zone(&mut self, min_secs: u64) -> Vec<LongTransaction> {
        let sql = format!(
            "SELECT CAST(trx_mysql_thread_id AS CHAR), TIMESTAMPDIFF(SECOND, trx_started, NOW()), IFNULL(trx_state, '') \
             FROM information_schema.INNODB_TRX WHERE trx_started < NOW() - INTERVAL {min_secs} SECOND \
             AND trx_mysql_thread_id <> CONNECTION_ID() ORDER BY trx_started LIMIT 20"
        );
        match self.conn.query::<Row, _>(sql).await {
            Ok(rows) => rows
                .iter()
                .map(|r| LongTransaction {
                    id: s(r, 0).unwrap_or_default(),
                    seconds: n(r, 1).unwrap_or(0),
                    state: s(r, 2).unwrap_or_default(),
                })
                .collect(),
            Err(e) => {
                tracing::debug!("cannot read INNODB_TRX: {e}");
                Vec::new()
            }
        }
    }

    /// Time reading the first `rows` rows in primary-key order (read-only, bounded).
    async fn sample(&mut self, table: &str, pk: &[String], rows: u64) -> Option<Sample> {
        if pk.is_empty() || rows == 0 {
            return None;
        }
        let order = pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT * FROM {}.{} ORDER BY {order} LIMIT {rows}) s",
            quote(&self.db),
            quote(table)
        );
        let started = Instant::now();
        let got: Option<u64> = self.conn.query_first(sql).await.ok().flatten();
        Some(Sample {
            rows: got?,
            millis: started.elapsed().as_millis() as u64,
        })
    }

    async fn statement_timeout(&mut self, secs: u64) {
        let sql = if self.mariadb {
            format!("SET SESSION max_statement_time = {secs}")
        } else {
            format!("SET SESSION max_execution_time = {}", secs * 1000)
        };
        let _ = self.conn.query_drop(sql).await;
    }

    /// Run bounded data checks: each reads at most `limit` rows (in key order when the
    /// table has a primary key) and gives up after 30 s.
    pub async fn probes(
        &mut self,
        f: &Facts,
        probes: &[DataProbe],
        limit: u64,
    ) -> Result<Vec<ProbeResult>> {
        self.statement_timeout(30).await;
        let t = format!("{}.{}", quote(&f.schema), quote(&f.table));
        let pk: Vec<String> = f
            .primary_key()
            .map(|i| i.column_names())
            .unwrap_or_default();
        let key_expr = if pk.is_empty() {
            "''".to_string()
        } else {
            format!(
                "CONCAT_WS(', ', {})",
                pk.iter()
                    .map(|c| format!("CONCAT({}, '=', {})", quote_lit(c), quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let order = if pk.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            )
        };
        let mut out = Vec::new();
        for p in probes {
            let (cols, cond): (Vec<String>, String) = match p {
                DataProbe::Nulls { column } => {
                    (vec![column.clone()], format!("{} IS NULL", quote(column)))
                }
                DataProbe::TooLong { column, max_chars } => (
                    vec![column.clone()],
                    format!("CHAR_LENGTH({}) > {max_chars}", quote(column)),
                ),
                DataProbe::OutOfRange { column, min, max } => (
                    vec![column.clone()],
                    format!("({0} < {min} OR {0} > {max})", quote(column)),
                ),
                DataProbe::Duplicates { .. } => (vec![], String::new()),
            };
            let inner_cols: Vec<String> = match p {
                DataProbe::Duplicates { columns } => columns.clone(),
                _ => cols.clone(),
            };
            let mut sel: Vec<String> = pk.clone();
            for c in &inner_cols {
                if !sel.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                    sel.push(c.clone());
                }
            }
            let sel = sel.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            let sub = format!("(SELECT {sel} FROM {t}{order} LIMIT {limit}) s");
            let sql = match p {
                DataProbe::Duplicates { columns } => {
                    let g = columns
                        .iter()
                        .map(|c| quote(c))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let ex = format!(
                        "CONCAT(CONCAT_WS(', ', {}), ' (', COUNT(*), ' rows)')",
                        columns
                            .iter()
                            .map(|c| format!(
                                "CONCAT({}, '=', IFNULL({}, 'NULL'))",
                                quote_lit(c),
                                quote(c)
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let nn = columns
                        .iter()
                        .map(|c| format!("{} IS NOT NULL", quote(c)))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    format!("SELECT {ex} FROM {sub} WHERE {nn} GROUP BY {g} HAVING COUNT(*) > 1 LIMIT 1")
                }
                _ => format!("SELECT {key_expr} FROM {sub} WHERE {cond} LIMIT 1"),
            };
            let count_sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {t} LIMIT {limit}) s");
            let example: Option<String> =
                match self.conn.query_first::<Option<String>, _>(sql).await {
                    Ok(v) => v.flatten(),
                    Err(e) => {
                        tracing::warn!("data check skipped: {e}");
                        continue;
                    }
                };
            let found = match p {
                DataProbe::Duplicates { .. } => example.is_some(),
                _ => example.is_some(),
            };
            let rows_checked: u64 = self
                .conn
                .query_first(count_sql)
                .await
                .ok()
                .flatten()
                .unwrap_or(0);
            out.push(ProbeResult {
                probe: p.clone(),
                found,
                example: example.filter(|e| !e.is_empty()).or(if found {
                    Some("(no primary key)".into())
                } else {
                    None
                }),
                rows_checked,
                complete: rows_checked < limit,
            });
        }
        Ok(out)
    }
}

fn quote_lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}
