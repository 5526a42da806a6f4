//! Backfill: key-range batches by primary key, throttled, resumable from the last
//! finished batch (recorded in the state table in the batch's own transaction).
//! Progress: the bar (or a log line every 2 s) and a `backfill_progress` event per batch
//! with the rate and ETA of the last minute of unthrottled time (`control::eta`); the
//! control socket's `chunk-size=N` (the batch size), `nice-ratio`, `throttle` and
//! `panic` (stop after the batch in flight) apply.

use super::db::{Db, Param};
use super::ops::Backfill;
use super::state;
use super::PhaseOptions;
use crate::control::eta::Eta;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Reporter, Snapshot, State};
use crate::throttle::Throttle;
use std::time::{Duration, Instant};

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
    opts: &PhaseOptions,
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
    let control = opts.control.clone();
    control.update(|s| {
        s.table = Some(job.backfill.table.clone());
        s.migration = Some(job.id.to_string());
    });
    control.set_state(State::Backfill, &job.label);
    let estimate_sql = db.dialect().catalog().row_estimate;
    let estimate: u64 = db
        .query(
            estimate_sql,
            &[Param::Text(Some(job.backfill.table.clone()))],
        )
        .await?
        .first()
        .and_then(|r| r.int(0))
        .map_or(0, |n| n.max(0) as u64);
    // Keys walked in this operation (a resumed one starts at the rows done before).
    let mut walked: u64 = if job.after.is_some() {
        rows_total.max(0) as u64
    } else {
        0
    };
    let mut eta = Eta::default();
    eta.observe(Instant::now(), walked, true);
    let mut after = job.after.clone();
    loop {
        let mut held: Option<String> = None;
        loop {
            if control.panicked() {
                return Err(Error::new(
                    ErrorKind::Aborted,
                    format!(
                        "{}: stopped by {}; every finished batch is kept, the same command resumes the backfill",
                        job.label,
                        control.stop_reason()
                    ),
                ));
            }
            let dbr = &mut *db;
            match throttle
                .check(move |names| async move { dbr.load_values(&names).await })
                .await?
            {
                Some(hold) => {
                    let reason = hold.to_string();
                    eta.observe(Instant::now(), walked, held.is_none());
                    // Said again only when the cause changes (a replica's lag changes
                    // at every reading).
                    let cause = hold.cause();
                    if held.as_deref() != Some(cause.as_str()) {
                        let mut ev = hold.json();
                        ev["migration"] = job.id.into();
                        rep.emit("throttled", ev);
                        tracing::info!("backfill held: {reason}");
                        control.set_state(State::Throttled, &reason);
                        held = Some(cause);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None => break,
            }
        }
        if held.is_some() {
            eta.observe(Instant::now(), walked, false);
            control.set_state(State::Backfill, &job.label);
        }
        let batch_size = control.chunk_size().unwrap_or(opts.batch_size);
        let size = throttle
            .max_chunk()
            .map_or(batch_size, |m| m.min(batch_size))
            .max(1);
        let t0 = Instant::now();
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
        let n = batch_retried(db, &job, &upd, &params, end.as_ref(), &mut rows_total).await?;
        let took = t0.elapsed();
        throttle.take_rows(n.max(1)).await;
        walked += if end.is_some() { size } else { n };
        eta.observe(Instant::now(), walked, true);
        control.update(|s| s.chunk_ms = Some(took.as_millis() as u64));
        let left = if end.is_some() {
            estimate.saturating_sub(walked)
        } else {
            0
        };
        let snap = Snapshot {
            rows_copied: rows_total.max(0) as u64,
            // At least the rows done (a statistics estimate can be low).
            rows_estimate: estimate.max(walked).max(rows_total.max(0) as u64),
            rows_per_sec: eta.rate().unwrap_or(0.0),
            eta_seconds: eta.eta(left).map(|d| d.as_secs_f64().round() as u64),
            chunk_size: size,
            ..Snapshot::default()
        };
        rep.backfill_progress(
            &snap,
            serde_json::json!({"migration": job.id, "operation": job.op_index + 1, "rows": rows_total, "after": end}),
        );
        let ratio = control.nice_ratio();
        if ratio > 0.0 && end.is_some() {
            tokio::time::sleep(took.mul_f64(ratio)).await;
        }
        match end {
            Some(e) => after = Some(e),
            None => return Ok(rows_total),
        }
    }
}

/// Attempts at one batch whose transaction the server rolled back to resolve a conflict
/// with the application (a deadlock's victim).
const BATCH_ATTEMPTS: u32 = 10;

/// Update one batch and record it in the state table, in one transaction. A batch the
/// server rolls back to resolve a conflict with another transaction runs again (it
/// changed nothing, and the update is the same), with a growing pause, at most
/// [`BATCH_ATTEMPTS`] times: a busy table must not fail the backfill. Returns the rows
/// updated; `rows_total` moves only when the batch committed.
async fn batch_retried(
    db: &mut Db,
    job: &Job<'_>,
    upd: &str,
    params: &[Param],
    end: Option<&Vec<String>>,
    rows_total: &mut i64,
) -> Result<u64> {
    let mut attempt = 1;
    loop {
        let begin = db.dialect().begin();
        db.exec(begin).await?;
        let res = async {
            let n = db.exec_params(upd, params).await?;
            let total = *rows_total + n as i64;
            match end {
                Some(e) => {
                    let json = serde_json::to_string(e).unwrap_or_default();
                    state::set_backfill(db, job.id, job.op_index, Some(&json), total).await?
                }
                None => state::set_backfill(db, job.id, job.op_index + 1, None, total).await?,
            }
            db.exec("COMMIT").await?;
            Ok::<(u64, i64), Error>((n, total))
        }
        .await;
        match res {
            Ok((n, total)) => {
                *rows_total = total;
                return Ok(n);
            }
            Err(e) => {
                let _ = db.exec("ROLLBACK").await;
                if !e.is_conflict_victim() || attempt >= BATCH_ATTEMPTS {
                    return Err(e.context(&job.label));
                }
                tracing::warn!(
                    "{}: a backfill batch was rolled back by the server ({}); attempt {} of {BATCH_ATTEMPTS}",
                    job.label,
                    e.message,
                    attempt + 1
                );
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
                attempt += 1;
            }
        }
    }
}
