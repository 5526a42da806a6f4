//! Backfill: key-range batches by primary key, throttled, resumable from the last
//! finished batch (recorded in the state table in the batch's own transaction).

use super::db::{Db, Param};
use super::ops::Backfill;
use super::state;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Reporter;
use crate::throttle::Throttle;
use std::time::Duration;

pub struct Job<'a> {
    pub id: &'a str,
    pub op_index: i64,
    pub label: String,
    pub backfill: Backfill,
    /// Resume after this key (text parts).
    pub after: Option<Vec<String>>,
}

/// Run one operation's backfill to the end. Returns rows updated.
pub async fn run(
    db: &mut Db,
    job: Job<'_>,
    batch_size: u64,
    throttle: &mut Throttle,
    rep: &Reporter,
    mut rows_total: i64,
) -> Result<i64> {
    let info = db.table_info(&job.backfill.table).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::TableMissing,
            format!(
                "{}: table `{}` does not exist",
                job.label, job.backfill.table
            ),
        )
    })?;
    let key = info.key_columns();
    if key.is_empty() {
        return Err(Error::new(
            ErrorKind::NoKey,
            format!(
                "{}: table `{}` has no primary key: the backfill walks the primary key",
                job.label, job.backfill.table
            ),
        ));
    }
    let size = throttle
        .max_chunk()
        .map_or(batch_size, |m| m.min(batch_size))
        .max(1);
    let mut after = job.after;
    loop {
        loop {
            let dbr = &mut *db;
            match throttle
                .check(move |names| async move { dbr.load_values(&names).await })
                .await?
            {
                Some(hold) => {
                    rep.emit(
                        "throttled",
                        serde_json::json!({"migration": job.id, "reason": hold.to_string()}),
                    );
                    tracing::info!("backfill held: {hold}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => break,
            }
        }
        let lower: Vec<Param> = after
            .iter()
            .flatten()
            .map(|s| Param::Text(Some(s.clone())))
            .collect();
        let end_sql = db
            .dialect()
            .batch_end(&job.backfill, &key, after.is_some(), size);
        let end: Option<Vec<String>> = db
            .query(&end_sql, &lower)
            .await?
            .into_iter()
            .next()
            .map(|r| r.texts());
        let upd = db
            .dialect()
            .backfill_update(&job.backfill, &key, after.is_some(), end.is_some());
        let mut params = lower.clone();
        params.extend(end.iter().flatten().map(|s| Param::Text(Some(s.clone()))));
        let begin = db.dialect().begin();
        db.exec(begin).await?;
        let res = async {
            let n = db.exec_params(&upd, &params).await?;
            rows_total += n as i64;
            match &end {
                Some(e) => {
                    let json = serde_json::to_string(e).unwrap_or_default();
                    state::set_backfill(db, job.id, job.op_index, Some(&json), rows_total).await?
                }
                None => state::set_backfill(db, job.id, job.op_index + 1, None, rows_total).await?,
            }
            db.exec("COMMIT").await?;
            Ok::<u64, Error>(n)
        }
        .await;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                let _ = db.exec("ROLLBACK").await;
                return Err(e.context(&job.label));
            }
        };
        throttle.take_rows(n.max(1)).await;
        rep.emit(
            "backfill_progress",
            serde_json::json!({"migration": job.id, "operation": job.op_index + 1, "rows": rows_total, "after": end}),
        );
        tracing::info!(rows = rows_total, "{}: backfilled batch", job.label);
        match end {
            Some(e) => after = Some(e),
            None => return Ok(rows_total),
        }
    }
}
