//! The change stream: `pgoutput` read through `pg_logical_slot_peek_binary_changes`,
//! acknowledged with `pg_replication_slot_advance` once the core has written the keys.
//!
//! A peek always starts again at the slot's confirmed position, so it re-returns what was
//! delivered but not yet acknowledged: transactions whose commit lies before the last one
//! delivered are skipped, and `upto_nchanges` is raised by the rows still unacknowledged
//! so every peek can reach new changes.
//!
//! Race rule (docs/architecture.md, "Key-based replay and its races", 2): a commit can be
//! decoded before it is visible (e.g. while it waits for a synchronous standby). Keys are
//! handed out only once every transaction that changed them is visible to a fresh
//! snapshot, so the replay read sees their effect.

use super::conn::pg_err;
use super::pgoutput::{decode, format_lsn, parse_lsn, Message, Value};
use super::sql;
use crate::engine::{ChangeStream, Key, KeyPart, Position, StreamBatch};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::Client;

/// New changes asked for per peek (whole transactions are always returned).
const BATCH: usize = 20_000;
const POLL_PAUSE: Duration = Duration::from_millis(25);
/// Ask for a new decoding restart point after this much WAL (see [`RestartPoints`]).
const RESTART_POINT_EVERY: u64 = 32 << 20;
/// Seconds from 1970-01-01 to 2000-01-01 (PostgreSQL timestamps).
const PG_EPOCH: u64 = 946_684_800;

/// Every peek decodes again from the slot's `restart_lsn`, and that only moves to a
/// running-transactions record the slot has been advanced past. The server writes one
/// every 15 s at most, so during a fast copy each peek re-decoded all of the copy's WAL
/// since the last one (measured: peeks growing from 14 ms to 870 ms over a 2M-row copy).
/// A CHECKPOINT writes such a record; it runs on its own session in the background
/// every [`RESTART_POINT_EVERY`] bytes of WAL. It needs superuser or `pg_checkpoint`;
/// without it the server's own records every 15 s remain.
pub struct RestartPoints {
    client: Option<std::sync::Arc<Client>>,
    last: u64,
    running: Option<tokio::task::JoinHandle<()>>,
    denied: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RestartPoints {
    pub fn new(client: Option<Client>, from: u64) -> Self {
        RestartPoints {
            client: client.map(std::sync::Arc::new),
            last: from,
            running: None,
            denied: Default::default(),
        }
    }

    fn maybe_request(&mut self, flushed: u64) {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if self.denied.load(std::sync::atomic::Ordering::Relaxed) {
            self.client = None;
        }
        let Some(c) = self.client.clone() else { return };
        if flushed < self.last + RESTART_POINT_EVERY {
            return;
        }
        self.last = flushed;
        let denied = self.denied.clone();
        self.running = Some(tokio::spawn(async move {
            if let Err(e) = c.batch_execute("CHECKPOINT").await {
                tracing::debug!("CHECKPOINT failed ({e}); decoding restarts only at the server's own running-xacts records");
                denied.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
}

/// Column names and types of the original's first Relation message.
pub type RelationColumns = std::sync::Arc<std::sync::Mutex<Option<Vec<(String, u32)>>>>;

pub struct PgStream {
    pub client: Option<Client>,
    pub slot: String,
    pub publication: String,
    pub table_oid: u32,
    pub key: Vec<String>,
    /// Key column positions in the relation's tuple, by relation oid.
    layout: HashMap<u32, Vec<usize>>,
    /// Column names and types of the first Relation message (DDL detection).
    /// Shared with the engine, so a stream opened again after a lost connection compares
    /// with what the first one saw.
    first_columns: RelationColumns,
    /// End LSN of the last commit delivered.
    delivered: u64,
    /// Where the slot was last advanced to.
    acked: u64,
    /// Delivered, unacknowledged transactions: (end LSN, rows in the peek output).
    pending: VecDeque<(u64, usize)>,
    restart_points: RestartPoints,
    /// The content of the message the cut-over's transaction emits (`swap_marker`):
    /// the stream stops at the end of that transaction.
    swap_marker: Option<String>,
    /// The end LSN of the swap's transaction, once read (docs/how-it-works.md, "Revert").
    swap_at: Option<u64>,
    /// After the swap was read, `close` keeps the slot and the publication (the revert
    /// window's stream goes on from them).
    keep_after_swap: bool,
}

/// The message the cut-over's transaction emits to mark the swap (read by the stream of
/// the run that swapped: the swap's commit is where the revert window's stream starts).
pub fn swap_marker(schema: &str, old: &str) -> String {
    format!("swap {}", super::sql::qualified(schema, old))
}

impl PgStream {
    pub fn new(
        client: Client,
        slot: String,
        publication: String,
        table_oid: u32,
        key: Vec<String>,
        from: u64,
        restart_points: RestartPoints,
    ) -> Self {
        PgStream {
            client: Some(client),
            slot,
            publication,
            table_oid,
            key,
            layout: HashMap::new(),
            first_columns: RelationColumns::default(),
            delivered: from,
            acked: from,
            pending: VecDeque::new(),
            restart_points,
            swap_marker: None,
            swap_at: None,
            keep_after_swap: false,
        }
    }

    /// Stop at the transaction carrying `marker` (the swap); with `keep`, a stream that
    /// read it keeps the slot and the publication when closed.
    pub fn stop_at_swap(&mut self, marker: String, keep: bool) {
        self.swap_marker = Some(marker);
        self.keep_after_swap = keep;
    }

    /// A stream opened again on a slot whose consumer confirmed up to `lsn` (below the
    /// position the core has read): the next acknowledgement moves the slot from there.
    pub fn confirmed_at(&mut self, lsn: u64) {
        self.acked = lsn.min(self.acked);
    }

    /// Compare Relation messages with `cols` (what earlier streams of this run saw).
    pub fn share_columns(&mut self, cols: RelationColumns) {
        self.first_columns = cols;
    }

    fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::internal("the change stream is closed"))
    }

    fn key_of(&self, oid: u32, tuple: &[Value]) -> Result<Option<Key>> {
        if oid != self.table_oid {
            return Ok(None);
        }
        let pos = self
            .layout
            .get(&oid)
            .ok_or_else(|| Error::internal("a change arrived before its relation description"))?;
        let mut key = Vec::with_capacity(pos.len());
        for &p in pos {
            match tuple.get(p) {
                Some(Value::Text(s)) => key.push(KeyPart::Text(s.clone())),
                Some(Value::Unchanged) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "a key value was not sent by the change stream (a TOASTed key column)",
                    )
                    .with_hint("use a table whose key values are short (a few hundred bytes at most)"))
                }
                _ => {
                    return Err(Error::internal(
                        "a change carries no value for a key column; is the replica identity the migration key?",
                    ))
                }
            }
        }
        Ok(Some(key))
    }

    fn relation(&mut self, oid: u32, columns: &[super::pgoutput::RelColumn]) -> Result<()> {
        if oid != self.table_oid {
            return Ok(());
        }
        let sig: Vec<(String, u32)> = columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid))
            .collect();
        let mut first = self
            .first_columns
            .lock()
            .map_err(|_| Error::internal("stream state poisoned"))?;
        match &*first {
            None => *first = Some(sig),
            Some(first) if *first != sig => {
                return Err(Error::new(
                    ErrorKind::SourceChanged,
                    "the original table's definition changed during the migration",
                )
                .with_hint("run godwit again after the other schema change is done"))
            }
            _ => {}
        }
        let mut pos = Vec::new();
        for k in &self.key {
            let p = columns.iter().position(|c| &c.name == k).ok_or_else(|| {
                Error::new(
                    ErrorKind::SourceChanged,
                    format!("key column {k} is missing from the change stream"),
                )
            })?;
            pos.push(p);
        }
        self.layout.insert(oid, pos);
        Ok(())
    }

    /// Wait until a fresh snapshot sees every transaction in `xids`.
    async fn wait_visible(&self, xids: &[u32]) -> Result<()> {
        if xids.is_empty() {
            return Ok(());
        }
        let c = self.client()?;
        let next: i64 = c
            .query_one(sql::NEXT_XID, &[])
            .await
            .map_err(|e| pg_err(e, "reading the transaction counter"))?
            .try_get(0)
            .map_err(|e| pg_err(e, "reading the transaction counter"))?;
        let (epoch, low) = ((next as u64) >> 32, (next as u64) & 0xffff_ffff);
        let mut full: Vec<i64> = xids
            .iter()
            .map(|&x| {
                let e = if u64::from(x) <= low {
                    epoch
                } else {
                    epoch.saturating_sub(1)
                };
                ((e << 32) | u64::from(x)) as i64
            })
            .collect();
        full.sort_unstable();
        full.dedup();
        let started = Instant::now();
        let mut warned = false;
        loop {
            let rows = c
                .query(sql::INVISIBLE_XIDS, &[&full])
                .await
                .map_err(|e| pg_err(e, "waiting for transactions to become visible"))?;
            if rows.is_empty() {
                return Ok(());
            }
            if !warned && started.elapsed() > Duration::from_secs(10) {
                warned = true;
                tracing::warn!(
                    "{} committed transaction(s) are not visible yet (waiting for a synchronous standby?); replay waits for them",
                    rows.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn advance(&mut self, to: u64) -> Result<()> {
        if to <= self.acked {
            return Ok(());
        }
        self.client()?
            .query(sql::ADVANCE, &[&self.slot, &format_lsn(to)])
            .await
            .map_err(|e| pg_err(e, "acknowledging the change stream"))?;
        self.acked = to;
        while self.pending.front().is_some_and(|(end, _)| *end <= to) {
            self.pending.pop_front();
        }
        Ok(())
    }

    async fn peek_once(&mut self) -> Result<(StreamBatch, bool)> {
        if let Some(at) = self.swap_at {
            return Err(Error::new(
                ErrorKind::SourceChanged,
                format!(
                    "the tables were swapped (the stream read the swap at {})",
                    format_lsn(at)
                ),
            ));
        }
        let c = self.client()?;
        let flushed: String = c
            .query_one(sql::FLUSH_LSN, &[])
            .await
            .map_err(|e| pg_err(e, "reading the WAL position"))?
            .try_get(0)
            .map_err(|e| pg_err(e, "reading the WAL position"))?;
        let flushed = parse_lsn(&flushed).unwrap_or(0);
        self.restart_points.maybe_request(flushed);
        let c = self.client()?;
        let unacked: usize = self.pending.iter().map(|(_, n)| n).sum();
        let limit = (unacked + BATCH).min(i32::MAX as usize) as i32;
        let t0 = Instant::now();
        let rows = c
            .query(
                sql::PEEK,
                &[&self.slot, &limit, &self.publication, &format_lsn(flushed)],
            )
            .await
            .map_err(|e| {
                let e = pg_err(e, "reading the change stream");
                // 42704: undefined_object (the slot or the publication).
                if e.is_sqlstate("42704") {
                    Error::new(ErrorKind::Internal, e.message).with_hint(
                        "the replication slot or publication was removed while godwit ran",
                    )
                } else {
                    e
                }
            })?;
        let complete = rows.len() < limit as usize;
        tracing::trace!(
            rows = rows.len(),
            ms = t0.elapsed().as_millis() as u64,
            "peek"
        );
        let mut keys = Vec::new();
        let mut xids = Vec::new();
        let mut lag = None;
        // The transaction being read: (skip, xid, keys, rows).
        let mut cur: Option<(bool, u32, Vec<Key>, usize)> = None;
        // The transaction being read carries the swap's marker.
        let mut swap_here = false;
        let mut complete = complete;
        for row in rows {
            let data: Vec<u8> = row
                .try_get(2)
                .map_err(|e| pg_err(e, "reading the change stream"))?;
            let lsn_text: String = row
                .try_get(0)
                .map_err(|e| pg_err(e, "reading the change stream"))?;
            let msg = decode(&data).map_err(|e| Error::internal(e.to_string()))?;
            if let Some(t) = cur.as_mut() {
                t.3 += 1;
            }
            match msg {
                Message::Begin { final_lsn, xid, .. } => {
                    cur = Some((final_lsn < self.delivered, xid, Vec::new(), 1));
                    swap_here = false;
                }
                Message::Relation { oid, columns, .. } => self.relation(oid, &columns)?,
                Message::Insert { oid, new } => {
                    if let Some((false, _, k, _)) = cur.as_mut() {
                        if let Some(key) = self.key_of(oid, &new)? {
                            k.push(key);
                        }
                    }
                }
                Message::Update { oid, old, new } => {
                    if let Some((false, _, k, _)) = cur.as_mut() {
                        if let Some(key) = self.key_of(oid, &new)? {
                            k.push(key);
                        }
                        if let Some(old) = old {
                            if let Some(key) = self.key_of(oid, &old)? {
                                k.push(key);
                            }
                        }
                    }
                }
                Message::Delete { oid, old } => {
                    if let Some((false, _, k, _)) = cur.as_mut() {
                        if let Some(key) = self.key_of(oid, &old)? {
                            k.push(key);
                        }
                    }
                }
                Message::Truncate { oids } => {
                    if oids.contains(&self.table_oid) && matches!(cur, Some((false, ..))) {
                        return Err(Error::new(
                            ErrorKind::SourceChanged,
                            "the original table was truncated during the migration",
                        )
                        .with_hint("run godwit again"));
                    }
                }
                Message::Commit { commit_ts, .. } => {
                    let end = parse_lsn(&lsn_text).unwrap_or(0);
                    let mut swapped = false;
                    if let Some((skip, xid, k, n)) = cur.take() {
                        if !skip {
                            if !k.is_empty() {
                                xids.push(xid);
                            }
                            keys.extend(k);
                            self.delivered = self.delivered.max(end);
                            self.pending.push_back((end, n));
                            swapped = swap_here;
                        }
                    }
                    let at = UNIX_EPOCH
                        + Duration::from_secs(PG_EPOCH)
                        + Duration::from_micros(commit_ts.max(0) as u64);
                    lag = Some(SystemTime::now().duration_since(at).unwrap_or_default());
                    if swapped {
                        // Nothing after the swap belongs to this stream: the next poll
                        // says so (the keys read before it are returned first).
                        self.swap_at = Some(end);
                        complete = false;
                        break;
                    }
                }
                Message::Message { prefix, content } => {
                    if prefix == "godwit"
                        && self
                            .swap_marker
                            .as_ref()
                            .is_some_and(|m| m.as_bytes() == content.as_slice())
                    {
                        swap_here = true;
                    }
                }
                Message::Other(_) => {}
            }
        }
        self.wait_visible(&xids).await?;
        let mut pos = self.delivered.max(self.acked);
        if complete {
            // Everything committed before `flushed` has been decoded.
            pos = pos.max(flushed);
            if lag.is_none() {
                lag = Some(Duration::ZERO);
            }
            // The slot moves only when the core acknowledges (never past the position of
            // its last checkpoint: a resumed run reads again from there), not on its own.
        }
        Ok((
            StreamBatch {
                keys,
                position: Some(Position::Lsn(pos)),
                lag,
            },
            complete,
        ))
    }
}

#[async_trait]
impl ChangeStream for PgStream {
    async fn poll(&mut self, wait: Duration) -> Result<StreamBatch> {
        let deadline = Instant::now() + wait;
        loop {
            let (batch, _complete) = self.peek_once().await?;
            if !batch.keys.is_empty() || self.swap_at.is_some() || Instant::now() >= deadline {
                return Ok(batch);
            }
            tokio::time::sleep(POLL_PAUSE).await;
        }
    }

    async fn ack(&mut self, position: &Position) -> Result<()> {
        let Position::Lsn(to) = position else {
            return Err(Error::internal("a PostgreSQL stream acknowledges LSNs"));
        };
        self.advance(*to).await
    }

    async fn close(&mut self) -> Result<()> {
        if self.keep_after_swap && self.swap_at.is_some() {
            // The revert window's stream goes on from the slot and the publication.
            self.client = None;
            return Ok(());
        }
        if let Some(c) = self.client.take() {
            // The slot is persistent (it survives a lost session): drop it here; what
            // fails is dropped by the engine's cleanup, the next run or `godwit cleanup`.
            let _ = c.query(sql::DROP_SLOT, &[&self.slot]).await;
            let _ = c
                .batch_execute(&sql::drop_publication(&self.publication))
                .await;
        }
        Ok(())
    }

    fn swap_position(&self) -> Option<Position> {
        self.swap_at.map(Position::Lsn)
    }
}
