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
        let bounds = (after.is_some(), end.is_some());
        let refuse = db.refuse_lock_waits();
        let first = match &refuse {
            Some(r) => {
                let once = batch_retried(
                    db,
                    &job,
                    &upd,
                    &params,
                    end.as_ref(),
                    &mut rows_total,
                    Some(r),
                )
                .await;
                match once {
                    Ok(n) => Some(n),
                    // A row is held by the application: the batch that skips it.
                    Err(e) if e.is_lock_not_granted() => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let n = if let Some(n) = first {
            n
        } else if db.skips_locked_rows() {
            batch_without_waits(
                db,
                &job,
                &key,
                bounds,
                &params,
                end.as_ref(),
                &mut rows_total,
            )
            .await?
        } else {
            batch_retried(db, &job, &upd, &params, end.as_ref(), &mut rows_total, None).await?
        };
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

/// Run `$body` (an expression using `$db`, `?` allowed) in a transaction of its own. A
/// transaction the server rolls back to resolve a conflict with another one (a
/// deadlock's victim) runs again (it changed nothing), with a growing pause, at most
/// [`BATCH_ATTEMPTS`] times: a busy table must not fail the backfill.
macro_rules! in_tx {
    ($db:ident, $label:expr, $body:expr) => {{
        let mut attempt = 1;
        loop {
            let begin = $db.dialect().begin();
            $db.exec(begin).await?;
            let r = async {
                let v = $body;
                $db.exec("COMMIT").await?;
                Ok::<_, Error>(v)
            }
            .await;
            match r {
                Ok(v) => break Ok::<_, Error>(v),
                Err(e) => {
                    let _ = $db.exec("ROLLBACK").await;
                    if !e.is_conflict_victim() || attempt >= BATCH_ATTEMPTS {
                        break Err(e.context($label));
                    }
                    tracing::warn!(
                        "{}: a backfill transaction was rolled back by the server ({}); attempt {} of {BATCH_ATTEMPTS}",
                        $label,
                        e.message,
                        attempt + 1
                    );
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
                    attempt += 1;
                }
            }
        }
    }};
}

/// Record the batch in the state table (`end`: the batch's last key; `None`: the last
/// batch).
async fn record(db: &mut Db, job: &Job<'_>, end: Option<&Vec<String>>, total: i64) -> Result<()> {
    match end {
        Some(e) => {
            let json = serde_json::to_string(e).unwrap_or_default();
            state::set_backfill(db, job.id, job.op_index, Some(&json), total).await
        }
        None => state::set_backfill(db, job.id, job.op_index + 1, None, total).await,
    }
}

/// Update one batch (one `UPDATE` of its key range) and record it in the state table, in
/// one transaction. With `refuse` (the statement that refuses row-lock waits, first in
/// the transaction, and the one that restores the session after it), a batch that meets
/// a row the application holds is refused at once ([`Error::is_lock_not_granted`]) and
/// changes nothing; the caller then runs [`batch_without_waits`]. Returns the rows
/// updated; `rows_total` moves only when the batch committed.
async fn batch_retried(
    db: &mut Db,
    job: &Job<'_>,
    upd: &str,
    params: &[Param],
    end: Option<&Vec<String>>,
    rows_total: &mut i64,
    refuse: Option<&(String, Option<String>)>,
) -> Result<u64> {
    let before = *rows_total;
    let r = in_tx!(db, &job.label, {
        if let Some((no_waits, _)) = refuse {
            db.exec(no_waits).await?;
        }
        let n = db.exec_params(upd, params).await?;
        let total = before + n as i64;
        record(db, job, end, total).await?;
        (n, total)
    });
    if let Some((_, Some(restore))) = refuse {
        db.exec(restore).await.map_err(|e| e.context(&job.label))?;
    }
    let (n, total) = r?;
    *rows_total = total;
    Ok(n)
}

/// One batch that never waits for a row while it holds others. A batch `UPDATE` that
/// waits for one row the application holds, while it holds rows the application then
/// asks for, closes a deadlock, and InnoDB rolls back the lighter transaction: the
/// application's. So, where the server can skip locked rows:
/// 1. one transaction locks the batch's rows that nobody holds (`FOR UPDATE SKIP
///    LOCKED`, never waiting) and updates them by key;
/// 2. each row left out that still needs the backfill (one the application holds) is
///    updated in a transaction of its own, which waits for that one row only (within
///    `--lock-timeout-seconds`) and holds nothing else;
/// 3. the batch is recorded in the state table.
///
/// A run that dies between 1 and 3 does the batch again (the update only touches rows
/// that still need it). `bounds`: (lower, upper) key bounds present in `params`.
async fn batch_without_waits(
    db: &mut Db,
    job: &Job<'_>,
    key: &[&crate::schema::Column],
    bounds: (bool, bool),
    params: &[Param],
    end: Option<&Vec<String>>,
    rows_total: &mut i64,
) -> Result<u64> {
    let b = &job.backfill;
    let (lower, upper) = bounds;
    let lock = db.dialect().backfill_keys(b, key, lower, upper, true);
    let (free, mut n) = in_tx!(db, &job.label, {
        let free: Vec<Vec<String>> = db
            .query(&lock, params)
            .await?
            .into_iter()
            .map(|r| r.texts())
            .collect();
        let mut n = 0;
        for chunk in free.chunks(500) {
            let upd = db.dialect().backfill_update_keys(b, key, chunk.len());
            let p: Vec<Param> = chunk
                .iter()
                .flatten()
                .map(|s| Param::Text(Some(s.clone())))
                .collect();
            n += db.exec_params(&upd, &p).await?;
        }
        (free, n)
    })?;
    let free: std::collections::HashSet<Vec<String>> = free.into_iter().collect();
    let plain = db.dialect().backfill_keys(b, key, lower, upper, false);
    let held: Vec<Vec<String>> = db
        .query(&plain, params)
        .await
        .map_err(|e| e.context(&job.label))?
        .into_iter()
        .map(|r| r.texts())
        .filter(|k| !free.contains(k))
        .collect();
    if !held.is_empty() {
        tracing::debug!(
            rows = held.len(),
            "backfill: rows held by the application are updated one by one"
        );
    }
    let one = db.dialect().backfill_update_keys(b, key, 1);
    for k in &held {
        let p: Vec<Param> = k.iter().map(|s| Param::Text(Some(s.clone()))).collect();
        n += in_tx!(db, &job.label, db.exec_params(&one, &p).await?)?;
    }
    let total = *rows_total + n as i64;
    in_tx!(db, &job.label, record(db, job, end, total).await?)?;
    *rows_total = total;
    Ok(n)
}
