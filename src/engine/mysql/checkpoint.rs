//! The checkpoint table on MySQL/MariaDB: `_godwit_checkpoint` in the target database,
//! one row per table being migrated (docs/how-it-works.md, "Resume"). Created by the
//! first save, dropped when its last row goes.

use super::sql::qualified;
use super::{conn_err, MysqlEngine};
use crate::error::{Result, ServerCode};
use mysql_async::prelude::*;
use mysql_async::Conn;

pub const TABLE: &str = "_godwit_checkpoint";

/// The name `godwit cleanup` gives a table's checkpoint.
pub fn label(table: &str) -> String {
    format!("{TABLE} (row of {table})")
}

fn missing_table(e: &crate::error::Error) -> bool {
    e.code == Some(ServerCode::Mysql(1146))
}

impl MysqlEngine {
    fn checkpoint_table(&self) -> String {
        qualified(&self.db, TABLE)
    }

    pub(super) async fn checkpoint_load(&self) -> Result<Option<String>> {
        let mut c = self.conn().await?;
        let r: Result<Option<String>> = c
            .exec_first(
                format!(
                    "SELECT state FROM {} WHERE table_name = ?",
                    self.checkpoint_table()
                ),
                (&self.table,),
            )
            .await
            .map_err(|e| conn_err(e, "reading the checkpoint"));
        match r {
            Err(e) if missing_table(&e) => Ok(None),
            r => r,
        }
    }

    pub(super) async fn checkpoint_save(&self, state: &str) -> Result<()> {
        let mut c = self.conn().await?;
        match self.replace(&mut c, state).await {
            Err(e) if missing_table(&e) => {
                c.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {} (table_name VARCHAR(64) NOT NULL PRIMARY KEY, \
                     state LONGTEXT NOT NULL, saved_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \
                     request VARCHAR(32) NULL) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='godwit: checkpoints of running migrations'",
                    self.checkpoint_table()
                ))
                .await
                .map_err(|e| conn_err(e, "creating the checkpoint table"))?;
                self.replace(&mut c, state).await
            }
            r => r,
        }
    }

    /// Insert or update the row's state; a `request` next to it is kept.
    async fn replace(&self, c: &mut Conn, state: &str) -> Result<()> {
        c.exec_drop(
            format!(
                "INSERT INTO {} (table_name, state, saved_at) VALUES (?, ?, CURRENT_TIMESTAMP(3)) \
                 ON DUPLICATE KEY UPDATE state = VALUES(state), saved_at = VALUES(saved_at)",
                self.checkpoint_table()
            ),
            (&self.table, state),
        )
        .await
        .map_err(|e| conn_err(e, "saving the checkpoint"))
    }

    /// Mark this table's checkpoint with a request for the run that saves it (adding the
    /// column to a checkpoint table made before it existed). False: no checkpoint.
    pub(super) async fn checkpoint_request(&self, request: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        let sql = format!(
            "UPDATE {} SET request = ? WHERE table_name = ?",
            self.checkpoint_table()
        );
        let r = c
            .exec_drop(&sql, (request, &self.table))
            .await
            .map_err(|e| conn_err(e, "asking the running migration to hand over"));
        match r {
            Err(e) if missing_table(&e) => return Ok(false),
            Err(e) if e.code == Some(ServerCode::Mysql(1054)) => {
                c.query_drop(format!(
                    "ALTER TABLE {} ADD COLUMN request VARCHAR(32) NULL",
                    self.checkpoint_table()
                ))
                .await
                .map_err(|e| conn_err(e, "adding the request column to the checkpoint table"))?;
                c.exec_drop(&sql, (request, &self.table))
                    .await
                    .map_err(|e| conn_err(e, "asking the running migration to hand over"))?;
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let n: Option<i64> = c
            .exec_first(
                format!(
                    "SELECT COUNT(*) FROM {} WHERE table_name = ?",
                    self.checkpoint_table()
                ),
                (&self.table,),
            )
            .await
            .map_err(|e| conn_err(e, "asking the running migration to hand over"))?;
        Ok(n.unwrap_or(0) > 0)
    }

    /// The request next to this table's checkpoint, if any.
    pub(super) async fn checkpoint_request_read(&self) -> Result<Option<String>> {
        let mut c = self.conn().await?;
        let r: Result<Option<Option<String>>> = c
            .exec_first(
                format!(
                    "SELECT request FROM {} WHERE table_name = ?",
                    self.checkpoint_table()
                ),
                (&self.table,),
            )
            .await
            .map_err(|e| conn_err(e, "reading the checkpoint's request"));
        match r {
            Err(e) if missing_table(&e) || e.code == Some(ServerCode::Mysql(1054)) => Ok(None),
            r => r.map(Option::flatten),
        }
    }

    /// Remove this table's row; drop the table when no row is left. True when a row was
    /// removed.
    pub(super) async fn checkpoint_drop(&self) -> Result<bool> {
        let mut c = self.conn().await?;
        let r = c
            .exec_drop(
                format!(
                    "DELETE FROM {} WHERE table_name = ?",
                    self.checkpoint_table()
                ),
                (&self.table,),
            )
            .await
            .map_err(|e| conn_err(e, "removing the checkpoint"));
        match r {
            Err(e) if missing_table(&e) => return Ok(false),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let removed = c.affected_rows() > 0;
        let left: Option<u64> = c
            .query_first(format!("SELECT COUNT(*) FROM {}", self.checkpoint_table()))
            .await
            .map_err(|e| conn_err(e, "removing the checkpoint"))?;
        if left == Some(0) {
            c.query_drop(format!("DROP TABLE IF EXISTS {}", self.checkpoint_table()))
                .await
                .map_err(|e| conn_err(e, "removing the checkpoint table"))?;
        }
        Ok(removed)
    }

    /// The binlog file still exists on the server (a purged one cannot be read again).
    pub(super) async fn binlog_file_exists(&self, file: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        let logs: Vec<mysql_async::Row> = c
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| conn_err(e, "listing the binary logs"))?;
        Ok(logs.iter().any(|r| {
            r.get_opt::<String, _>(0)
                .and_then(|v| v.ok())
                .is_some_and(|n| n == file)
        }))
    }
}
