//! The checkpoint table on PostgreSQL: `_godwit_checkpoint` in the table's schema, one
//! row per table being migrated (docs/how-it-works.md, "Resume"), the same role and
//! shape as on MySQL/MariaDB. Created by the first save, dropped with its last row.
//! Written on a session of its own, so a save never waits for the main session (an
//! index build, a replay) and a lost session costs one save, not the run.

use super::conn::{self, batch, pg_err};
use super::{sql, PgEngine};
use crate::error::{Error, ErrorKind, Result};
use tokio_postgres::Client;

pub const TABLE: &str = sql::CHECKPOINT_TABLE;

/// The name `godwit cleanup` and `godwit status` give a table's checkpoint.
pub fn label(schema: &str, table: &str) -> String {
    format!("{schema}.{TABLE} (row of {table})")
}

fn missing_table(e: &crate::error::Error) -> bool {
    e.kind == ErrorKind::TableMissing
}

impl PgEngine {
    /// The checkpoint session, opened again when it was lost.
    async fn checkpoint_session(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>> {
        let mut s = self.checkpoint_session.lock().await;
        if s.as_ref().is_none_or(|c| c.is_closed()) {
            *s = Some(conn::connect(&self.target, "checkpoint").await?);
        }
        Ok(s)
    }

    pub(super) async fn checkpoint_load(&self) -> Result<Option<String>> {
        let s = self.checkpoint_session().await?;
        let c = s
            .as_ref()
            .ok_or_else(|| Error::internal("no checkpoint session"))?;
        let r = c
            .query_opt(
                sql::checkpoint_select(&self.schema).as_str(),
                &[&self.table],
            )
            .await
            .map_err(|e| pg_err(e, "reading the checkpoint"));
        match r {
            Err(e) if missing_table(&e) => Ok(None),
            Err(e) => Err(e),
            Ok(None) => Ok(None),
            Ok(Some(row)) => Ok(Some(
                row.try_get(0)
                    .map_err(|e| pg_err(e, "reading the checkpoint"))?,
            )),
        }
    }

    pub(super) async fn checkpoint_save(&self, state: &str) -> Result<()> {
        let s = self.checkpoint_session().await?;
        let c = s
            .as_ref()
            .ok_or_else(|| Error::internal("no checkpoint session"))?;
        match self.upsert(c, state).await {
            Err(e) if missing_table(&e) => {
                // Two runs (two tables of one schema) may create it at once: the loser's
                // error is harmless when the upsert then works.
                let created = batch(
                    c,
                    &sql::checkpoint_create(&self.schema),
                    "creating the checkpoint table",
                )
                .await;
                if created.is_ok() {
                    let _ = batch(
                        c,
                        &sql::checkpoint_comment(&self.schema),
                        "commenting the checkpoint table",
                    )
                    .await;
                }
                match self.upsert(c, state).await {
                    Err(e) => Err(created.err().unwrap_or(e)),
                    Ok(()) => Ok(()),
                }
            }
            r => r,
        }
    }

    /// INSERT … ON CONFLICT: only `state` and `saved_at` of an existing row are set.
    async fn upsert(&self, c: &Client, state: &str) -> Result<()> {
        c.execute(
            sql::checkpoint_upsert(&self.schema).as_str(),
            &[&self.table, &state],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg_err(e, "saving the checkpoint"))
    }

    /// Mark this table's checkpoint with a request for the run that saves it (adding the
    /// column to a checkpoint table made before it existed). False: no checkpoint.
    pub(super) async fn checkpoint_request(&self, request: &str) -> Result<bool> {
        let s = self.checkpoint_session().await?;
        let c = s
            .as_ref()
            .ok_or_else(|| Error::internal("no checkpoint session"))?;
        let update = sql::checkpoint_request(&self.schema);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&request, &self.table];
        let what = "asking the running migration to hand over";
        let n = match c
            .execute(update.as_str(), &params)
            .await
            .map_err(|e| pg_err(e, what))
        {
            Err(e) if missing_table(&e) => return Ok(false),
            // 42703: undefined_column (a checkpoint table of an earlier version).
            Err(e) if e.is_sqlstate("42703") => {
                batch(
                    c,
                    &sql::checkpoint_add_request(&self.schema),
                    "adding the request column to the checkpoint table",
                )
                .await?;
                c.execute(update.as_str(), &params)
                    .await
                    .map_err(|e| pg_err(e, what))?
            }
            r => r?,
        };
        Ok(n > 0)
    }

    /// The request next to this table's checkpoint, if any.
    pub(super) async fn checkpoint_request_read(&self) -> Result<Option<String>> {
        let s = self.checkpoint_session().await?;
        let c = s
            .as_ref()
            .ok_or_else(|| Error::internal("no checkpoint session"))?;
        let r = c
            .query_opt(
                sql::checkpoint_request_select(&self.schema).as_str(),
                &[&self.table],
            )
            .await
            .map_err(|e| pg_err(e, "reading the checkpoint's request"));
        match r {
            Err(e) if missing_table(&e) || e.is_sqlstate("42703") => Ok(None),
            Err(e) => Err(e),
            Ok(None) => Ok(None),
            Ok(Some(row)) => row
                .try_get(0)
                .map_err(|e| pg_err(e, "reading the checkpoint's request")),
        }
    }

    /// Remove this table's row; drop the table when no row is left (in one transaction
    /// that keeps other runs from adding theirs meanwhile). True when a row was removed.
    pub(super) async fn checkpoint_drop(&self) -> Result<bool> {
        let s = self.checkpoint_session().await?;
        let c = s
            .as_ref()
            .ok_or_else(|| Error::internal("no checkpoint session"))?;
        batch(c, "BEGIN", "removing the checkpoint").await?;
        let r = async {
            batch(
                c,
                &sql::checkpoint_lock(&self.schema),
                "removing the checkpoint",
            )
            .await?;
            let removed = c
                .execute(
                    sql::checkpoint_delete(&self.schema).as_str(),
                    &[&self.table],
                )
                .await
                .map_err(|e| pg_err(e, "removing the checkpoint"))?
                > 0;
            let left: i64 = c
                .query_one(sql::checkpoint_count(&self.schema).as_str(), &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_err(e, "removing the checkpoint"))?;
            if left == 0 {
                batch(
                    c,
                    &sql::drop_table(&self.schema, TABLE),
                    "removing the checkpoint table",
                )
                .await?;
            }
            Ok::<_, Error>(removed)
        }
        .await;
        match r {
            Ok(removed) => {
                batch(c, "COMMIT", "removing the checkpoint").await?;
                Ok(removed)
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                if missing_table(&e) {
                    return Ok(false);
                }
                Err(e)
            }
        }
    }
}
