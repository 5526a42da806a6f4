//! Who holds the metadata lock the cut-over waits for (docs/how-it-works.md, "Blocked
//! cut-overs"), and ending such a session (`--kill-blockers`).
//!
//! Where the server can say which sessions hold a metadata lock on the table, that is
//! the answer (`exact`): MariaDB's `information_schema.METADATA_LOCK_INFO` (the
//! `metadata_lock_info` plugin, not installed by default), or MySQL's
//! `performance_schema.metadata_locks` (performance_schema on, the `mdl` instrument
//! enabled: the default on MySQL 8; MariaDB ships with performance_schema off). Without
//! either, every session with an open InnoDB transaction (`INNODB_TRX`) may hold one: a
//! transaction that read the table keeps its metadata lock until it ends, and nothing
//! else tells which tables it read. Those are reported as possible blockers.
//!
//! godwit's own sessions are left out: this one, the runner lock's, and the binlog
//! reader (`Binlog Dump`). The other sessions of the run hold no transaction between
//! cut-over attempts.

use super::{conn_err, MysqlEngine};
use crate::engine::Blocker;
use crate::error::Result;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// Sessions holding a metadata lock on `db`.`table`, when the server can tell.
async fn exact_holders(c: &mut Conn, db: &str, table: &str) -> Option<Vec<u64>> {
    let mli: std::result::Result<Vec<u64>, _> = c
        .exec(
            "SELECT DISTINCT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await;
    if let Ok(ids) = mli {
        return Some(ids);
    }
    let instrumented: Option<String> = c
        .query_first(
            "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = 'wait/lock/metadata/sql/mdl' AND @@performance_schema = 1",
        )
        .await
        .ok()
        .flatten();
    if instrumented.as_deref() != Some("YES") {
        return None;
    }
    c.exec(
        "SELECT DISTINCT t.PROCESSLIST_ID FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID \
         WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? AND m.LOCK_STATUS = 'GRANTED' AND t.PROCESSLIST_ID IS NOT NULL",
        (db, table),
    )
    .await
    .ok()
}

type Details = (
    u64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

impl MysqlEngine {
    pub(super) async fn blockers(&self) -> Result<Vec<Blocker>> {
        let mut c = self.conn().await?;
        let exact = exact_holders(&mut c, &self.db, &self.table).await;
        let ids: Vec<u64> = match &exact {
            Some(ids) => ids.clone(),
            None => c
                .query("SELECT DISTINCT trx_mysql_thread_id FROM information_schema.INNODB_TRX")
                .await
                .map_err(|e| conn_err(e, "reading the open transactions"))?,
        };
        let own = match self.runner.lock().await.as_ref() {
            Some(r) => r.id() as u64,
            None => 0,
        };
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| *id != own && *id != 0)
            .map(|id| id.to_string())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids are numbers the server gave: no user text in this statement.
        // INNODB_TRX.trx_started is in the server's own time zone (this session's is UTC).
        let sql = format!(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.STATE, LEFT(p.INFO, 200), p.TIME, \
             CAST(x.trx_started AS CHAR), \
             GREATEST(0, TIMESTAMPDIFF(SECOND, x.trx_started, CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', 'SYSTEM'))) \
             FROM information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX x ON x.trx_mysql_thread_id = p.ID \
             WHERE p.ID IN ({}) AND p.ID <> CONNECTION_ID() AND p.COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon') ORDER BY p.ID",
            ids.join(", ")
        );
        let rows: Vec<Details> = c
            .query(sql)
            .await
            .map_err(|e| conn_err(e, "reading the sessions that block the cut-over"))?;
        let mut out: Vec<Blocker> = Vec::new();
        for (id, user, host, command, state, info, time, started, age) in rows {
            if out.iter().any(|b| b.id == id) {
                continue;
            }
            let doing = match (command, state) {
                (Some(c), Some(s)) if !s.is_empty() => format!("{c}: {s}"),
                (Some(c), _) => c,
                (None, Some(s)) => s,
                (None, None) => String::new(),
            };
            out.push(Blocker {
                id,
                user,
                host,
                age_seconds: age.or(time).unwrap_or(0).max(0) as u64,
                state: doing,
                query: info,
                exact: exact.is_some(),
                since: started.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    pub(super) async fn kill(&self, id: u64) -> Result<()> {
        let mut c = self.conn().await?;
        // A number the server gave, not user text.
        c.query_drop(format!("KILL CONNECTION {id}"))
            .await
            .map_err(|e| conn_err(e, &format!("ending session {id}")))
    }
}
