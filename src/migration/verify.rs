//! Verification before the cut-over (docs/how-it-works.md, "Verify before the swap").
//!
//! The original is held against writes for a moment (as for a cut-over, reads go on), the
//! stream is read up to a fence taken under that hold and the dirty keys are replayed, and
//! then both tables are read from snapshots taken at that same moment: with replay exact,
//! the two snapshots hold the same rows. The hold is released at once; the comparison
//! runs chunk by chunk on the snapshots while replay goes on.
//!
//! A chunk whose digests differ is repaired: every key of the range, in either table, is
//! replayed (re-read from the original). The repaired ranges are compared again under new
//! snapshots. A difference that survives two repairs stops the run before the swap, with
//! the original unchanged — unless it is only in columns compared through a type
//! conversion the engine cannot reproduce exactly (then those columns are reported as not
//! verified).

use super::{Migration, FLUSH_INTERVAL, FLUSH_KEYS};
use crate::engine::{CompareColumns, Key, VerifyView};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::state::State;
use crate::schema::Table;
use std::time::{Duration, Instant};

/// A key range (`after`, `upto`]; None is open-ended.
pub type Range = (Option<Key>, Option<Key>);

/// Comparison rounds: the first over the whole table, then the repaired ranges.
const ROUNDS: u32 = 3;
/// Rows per compared chunk.
pub(super) const VERIFY_CHUNK: u64 = 100_000;
/// How often the stream is read and replayed while chunks are compared. Every chunk
/// (about 50 ms) was too often: on PostgreSQL each read decodes again the WAL since the
/// slot's restart point, 150–200 ms whenever the server wrote some (autovacuum of the new
/// table after its copy), and it took half of the verification's time on a 2M-row table.
const SERVE_INTERVAL: Duration = Duration::from_secs(1);
/// Keys replayed per repair call.
const REPAIR_BATCH: usize = 2_000;

/// What the verification compared and repaired.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Chunks compared in the first round.
    pub chunks: u64,
    /// Rows of the original compared in the first round.
    pub rows: u64,
    /// Comparison rounds run (1 when nothing differed).
    pub rounds: u32,
    /// Ranges that differed and were re-copied.
    pub repaired_ranges: u64,
    /// Keys replayed by those repairs.
    pub repaired_keys: u64,
    pub columns: CompareColumns,
    /// The converted columns could not be confirmed (their conversion is not reproduced
    /// exactly by the comparison); every other column matched.
    pub converted_unconfirmed: bool,
    pub millis: u64,
}

/// Compare one range in `view`. Returns the rows the original holds in it and whether
/// the digests differ.
async fn compare_range(
    view: &mut dyn VerifyView,
    r: &Range,
    converted: bool,
) -> Result<(u64, bool)> {
    let (a, b) = view.digest(r.0.as_ref(), r.1.as_ref(), converted).await?;
    if a != b {
        tracing::warn!(
            after = ?r.0, upto = ?r.1, original = ?a, new = ?b,
            "verify: a chunk differs between the original and the new table"
        );
    }
    Ok((a.rows, a != b))
}

/// What a comparison of two tables found (`godwit verify`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Comparison {
    pub chunks: u64,
    pub rows: u64,
    /// Ranges whose digests differ, as (after, upto) keys rendered for people.
    pub differing: Vec<(Option<String>, Option<String>)>,
}

/// Compare the whole of both tables in `view`, chunk by chunk.
pub async fn compare_all(view: &mut dyn VerifyView) -> Result<Comparison> {
    let mut out = Comparison::default();
    let mut after: Option<Key> = None;
    loop {
        let upto = view.next_bound(after.as_ref(), VERIFY_CHUNK).await?;
        let r = (after.clone(), upto.clone());
        let (rows, differs) = compare_range(view, &r, true).await?;
        out.rows += rows;
        out.chunks += 1;
        if differs {
            let show = |k: &Option<Key>| k.as_ref().map(|k| format!("{k:?}"));
            out.differing.push((show(&r.0), show(&r.1)));
        }
        match upto {
            None => return Ok(out),
            Some(k) => after = Some(k),
        }
    }
}

impl Migration<'_> {
    /// Verify the shadow against the original, repairing what differs (see the module
    /// documentation). An error leaves the original unchanged.
    pub(super) async fn verify(&mut self, shadow: &Table) -> Result<VerifyReport> {
        let t0 = Instant::now();
        let mut report = VerifyReport::default();
        let mut pending: Option<Vec<Range>> = None;
        self.rep.state(
            State::Verify,
            "comparing the original and the new table chunk by chunk",
        );
        // A connection lost during a round (the server restarted, a session killed):
        // the round starts again on new views, with the backoff and time limit of
        // --reconnect-timeout-seconds.
        let policy = self.opts.reconnect.clone();
        let mut outage = policy.outage("during the verification");
        let mut round = 0;
        while round < ROUNDS {
            round += 1;
            report.rounds = round;
            let t_view = Instant::now();
            let mut view = match self.verify_view(shadow).await {
                Ok(v) => v,
                Err(e) => {
                    outage.wait(e).await?;
                    round -= 1;
                    continue;
                }
            };
            tracing::debug!(
                round,
                ms = t_view.elapsed().as_millis() as u64,
                "verify: consistent views taken"
            );
            report.columns = view.columns();
            let r = self
                .compare_in(view.as_mut(), pending.as_deref(), true)
                .await;
            let (bad, rows, chunks) = match r {
                Ok(x) => x,
                Err(e) => {
                    let _ = view.close().await;
                    outage.wait(e).await?;
                    round -= 1;
                    continue;
                }
            };
            outage.recovered();
            if round == 1 {
                report.rows = rows;
                report.chunks = chunks;
            }
            if bad.is_empty() {
                let _ = view.close().await;
                return Ok(self.verified(report, t0));
            }
            if round == ROUNDS {
                // Still different after two repairs. When only the converted columns
                // differ, the comparison's cast is what disagrees with the copy.
                let r = if report.columns.converted.is_empty() {
                    Ok((bad.clone(), 0, 0))
                } else {
                    self.compare_in(view.as_mut(), Some(&bad), false).await
                };
                let _ = view.close().await;
                let (still, _, _) = r?;
                if still.is_empty() {
                    tracing::warn!(
                        columns = ?report.columns.converted,
                        "verify: these columns, compared through their type conversion, differ from the cast that reproduces it; every other column matches"
                    );
                    report.converted_unconfirmed = true;
                    return Ok(self.verified(report, t0));
                }
                return Err(Error::new(
                    ErrorKind::VerifyMismatch,
                    format!(
                        "verification found {} range(s) of the new table that differ from the original and stay different after re-copying them twice (first: keys after {:?} up to {:?}); the original table is unchanged",
                        still.len(),
                        still[0].0,
                        still[0].1
                    ),
                )
                .with_hint("something outside godwit writes the new table, or the original is written without going through the change stream (e.g. sql_log_bin=0, session_replication_role=replica); find it and run again, or run with --skip-verify to swap anyway"));
            }
            let _ = view.close().await;
            self.repair(&bad, &mut report).await?;
            pending = Some(bad);
        }
        Err(Error::internal("verification ended without a verdict"))
    }

    fn verified(&mut self, mut report: VerifyReport, t0: Instant) -> VerifyReport {
        report.millis = t0.elapsed().as_millis() as u64;
        self.rep
            .emit("verify", serde_json::to_value(&report).unwrap_or_default());
        tracing::info!(
            rows = report.rows,
            chunks = report.chunks,
            repaired = report.repaired_ranges,
            ms = report.millis,
            "verify: the new table holds what the original holds"
        );
        report
    }

    /// Compare `ranges` (the whole table when None) in `view`, keeping the stream read
    /// and replayed between chunks. Returns the differing ranges, rows and chunks read.
    async fn compare_in(
        &mut self,
        view: &mut dyn VerifyView,
        ranges: Option<&[Range]>,
        converted: bool,
    ) -> Result<(Vec<Range>, u64, u64)> {
        let mut bad = Vec::new();
        let (mut rows, mut chunks) = (0, 0);
        let mut next = 0usize;
        let mut after: Option<Key> = None;
        let mut served = Instant::now();
        let (mut t_digest, mut t_serve, mut t_bound) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        loop {
            self.check_abort()?;
            self.throttled(State::Verify).await?;
            let r = match ranges {
                Some(list) => match list.get(next) {
                    Some(r) => r.clone(),
                    None => break,
                },
                None => {
                    let t = Instant::now();
                    let upto = view.next_bound(after.as_ref(), VERIFY_CHUNK).await?;
                    t_bound += t.elapsed();
                    (after.clone(), upto)
                }
            };
            next += 1;
            let t = Instant::now();
            let (n, differs) = compare_range(view, &r, converted).await?;
            t_digest += t.elapsed();
            rows += n;
            chunks += 1;
            if served.elapsed() >= SERVE_INTERVAL {
                let t = Instant::now();
                self.serve_stream().await?;
                t_serve += t.elapsed();
                served = Instant::now();
            }
            let last = ranges.is_none() && r.1.is_none();
            after = r.1.clone();
            if differs {
                bad.push(r);
            }
            if last {
                break;
            }
        }
        tracing::debug!(
            chunks,
            digest_ms = t_digest.as_millis() as u64,
            bounds_ms = t_bound.as_millis() as u64,
            serve_ms = t_serve.as_millis() as u64,
            "verify: chunks compared"
        );
        Ok((bad, rows, chunks))
    }

    /// Between chunks: read the stream and replay, so the slot or binlog reader does not
    /// fall behind while a large table is compared.
    async fn serve_stream(&mut self) -> Result<()> {
        self.drain(Duration::ZERO).await?;
        if self.dirty.len() >= FLUSH_KEYS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush().await?;
        }
        self.ack_applied().await
    }

    /// Re-copy `ranges`: replay every key they hold in either table.
    async fn repair(&mut self, ranges: &[Range], report: &mut VerifyReport) -> Result<()> {
        let orig = self.orig()?.clone();
        let mapping = self.mapping()?.clone();
        let mut keys_total = 0u64;
        for (after, upto) in ranges {
            let keys = self
                .engine
                .range_keys(&orig, &mapping, after.as_ref(), upto.as_ref())
                .await?;
            keys_total += keys.len() as u64;
            // Through the replay's own flush (which also meets a unique value moved
            // since, see `Migration::flush`), a bounded number of keys at a time.
            for batch in keys.chunks(REPAIR_BATCH) {
                self.dirty.extend(batch.to_vec());
                self.flush().await?;
            }
        }
        report.repaired_ranges += ranges.len() as u64;
        report.repaired_keys += keys_total;
        self.rep.emit(
            "verify_repair",
            serde_json::json!({ "ranges": ranges.len(), "keys": keys_total }),
        );
        Ok(())
    }

    /// Hold the original, bring the shadow up to a fence under the hold, take the views.
    /// A hold that is not granted is retried like a cut-over attempt.
    async fn verify_view(&mut self, shadow: &Table) -> Result<Box<dyn VerifyView>> {
        let timeout = self.opts.cut_over_timeout;
        let retries = self.opts.cut_over_retries.max(1);
        let mut last = None;
        for attempt in 1..=retries {
            self.check_abort()?;
            self.catch_up_to_server().await?;
            self.flush().await?;
            match self.try_verify_view(shadow, timeout).await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind == ErrorKind::CutOverFailed => {
                    tracing::warn!("verify: holding the table failed (attempt {attempt}): {e}");
                    last = Some(e);
                    let backoff = Duration::from_millis(250u64 << attempt.min(6))
                        .min(Duration::from_secs(10));
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
        let e = last.unwrap_or_else(|| Error::internal("verify not attempted"));
        Err(Error::new(
            ErrorKind::CutOverFailed,
            format!(
                "could not hold the table for a consistent verification in {retries} attempts; the original table is unchanged. Last error: {}",
                e.message
            ),
        )
        .with_hint("find the long transactions on the table, raise --cut-over-lock-timeout-seconds / --cut-over-retries, or run with --skip-verify"))
    }

    async fn try_verify_view(
        &mut self,
        shadow: &Table,
        timeout: Duration,
    ) -> Result<Box<dyn VerifyView>> {
        let orig = self.orig()?.clone();
        let mapping = self.mapping()?.clone();
        let t = Instant::now();
        let mut lock = self
            .engine
            .lock_for_verify(&orig, shadow, &mapping, timeout)
            .await?;
        let locked = t.elapsed();
        let r = async {
            let fence = lock.fence().await?;
            let fenced = t.elapsed();
            self.reach_fence(&fence, timeout, "verify fence").await?;
            let reached = t.elapsed();
            self.flush().await?;
            self.ack_applied().await?;
            tracing::debug!(
                locked_ms = locked.as_millis() as u64,
                fenced_ms = fenced.as_millis() as u64,
                reached_ms = reached.as_millis() as u64,
                flushed_ms = t.elapsed().as_millis() as u64,
                "verify: held, fence read and replayed"
            );
            Ok(())
        }
        .await;
        match r {
            Ok(()) => lock.views().await,
            Err(e) => {
                let _ = lock.release().await;
                Err(e)
            }
        }
    }
}
