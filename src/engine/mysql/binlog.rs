//! Following the binlog: a task reads the replication stream from the position taken
//! before the shadow was created, keeps only row events of the original table, and
//! sends their keys (never their values) to the core.

use super::rowimage::{read_row, ColumnLayout, KeyDecode};
use crate::engine::{ChangeStream, Key, Position, StreamBatch};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

enum Msg {
    Keys(Vec<Key>),
    /// The position right after a DDL statement on the table (sent before its error).
    DdlAt(Position),
    Pos(Position, u32),
    Err(Error),
}

pub struct BinlogStream {
    rx: mpsc::Receiver<Msg>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// An error read after keys in the same poll: the keys go out first, the error with
    /// the next poll (after the swap, those keys are writes that missed the final flush).
    pending: Option<Error>,
    /// Where the DDL statement that stopped the stream ends.
    ddl_at: Option<Position>,
}

pub struct StreamConfig {
    pub opts: Opts,
    pub db: String,
    pub table: String,
    pub columns: usize,
    pub key: Vec<(usize, KeyDecode)>,
    pub start: (String, u64),
    pub mariadb: bool,
}

/// Set in the server id of every godwit binlog stream (so that the replica-lag discovery
/// can tell them from replicas in `SHOW SLAVE HOSTS`).
pub(crate) const STREAM_SERVER_ID_BIT: u32 = 0x8000_0000;

/// A server id no real replica is likely to use; two streams with one id evict each other.
fn server_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    STREAM_SERVER_ID_BIT | ((std::process::id() << 12) ^ nanos) & 0x7fff_ffff
}

pub async fn open(cfg: StreamConfig) -> Result<BinlogStream> {
    let (tx, rx) = mpsc::channel(4096);
    let task = tokio::spawn(async move {
        if let Err(e) = follow(&cfg, &tx).await {
            let _ = tx.send(Msg::Err(e)).await;
        }
    });
    Ok(BinlogStream {
        rx,
        task: Some(task),
        pending: None,
        ddl_at: None,
    })
}

fn stream_err(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("binlog stream failed: {e}"))
}

/// A driver error of the stream's connection: classified like every other (a lost
/// connection or a server going away is `Unreachable`).
fn conn_stream_err(e: mysql_async::Error) -> Error {
    super::conn_err(e, "binlog stream")
}

fn layout_of(tme: &TableMapEvent<'_>) -> Result<Vec<ColumnLayout>> {
    (0..tme.columns_count() as usize)
        .map(|i| {
            let ty = tme
                .get_column_type(i)
                .map_err(stream_err)?
                .ok_or_else(|| stream_err("table map shorter than its column count"))?;
            let meta = tme.get_column_metadata(i).unwrap_or(&[]).to_vec();
            Ok(ColumnLayout { ty, meta })
        })
        .collect()
}

/// A statement in the binlog that changes the original table's definition: `ALTER TABLE`,
/// `DROP TABLE`, `DROP INDEX … ON`, `RENAME TABLE` (the table renamed) or `TRUNCATE` whose
/// target is `db`.`table` (an unqualified name is in `schema`, the statement's default
/// database). Only target names count: a column or a shadow table whose name contains the
/// table's (`ALTER TABLE t_godwit_new MODIFY t …`) is not a change of the table.
fn is_ddl_on(query: &str, schema: &str, db: &str, table: &str) -> bool {
    use sqlparser::dialect::MySqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, query).tokenize() else {
        // Unreadable: any whole word equal to the table's name counts (errs on the safe side).
        let t = table.to_ascii_lowercase();
        return query
            .to_ascii_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .any(|w| w == t);
    };
    let toks: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let kw = |i: usize, k: &str| matches!(toks.get(i), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let ident = |i: usize| match toks.get(i) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    // `name` or `db.name` at i: whether it is the table, and the index after it.
    let name_at = |i: usize| -> Option<(bool, usize)> {
        let first = ident(i)?;
        let (d, t, next) = if toks.get(i + 1) == Some(&Token::Period) {
            (Some(first), ident(i + 2)?, i + 3)
        } else {
            (None, first, i + 1)
        };
        let in_db = d.as_deref().unwrap_or(schema).eq_ignore_ascii_case(db);
        Some((in_db && t.eq_ignore_ascii_case(table), next))
    };
    let skip = |mut i: usize, words: &[&str]| {
        while words.iter().any(|w| kw(i, w)) {
            i += 1;
        }
        i
    };
    if kw(0, "ALTER") {
        let i = skip(1, &["ONLINE", "OFFLINE", "IGNORE"]);
        kw(i, "TABLE") && name_at(skip(i + 1, &["IF", "EXISTS"])).is_some_and(|(m, _)| m)
    } else if kw(0, "DROP") {
        let i = skip(1, &["TEMPORARY"]);
        if kw(i, "TABLE") || kw(i, "TABLES") {
            let mut i = skip(i + 1, &["IF", "EXISTS"]);
            while let Some((m, next)) = name_at(i) {
                if m {
                    return true;
                }
                if toks.get(next) != Some(&Token::Comma) {
                    break;
                }
                i = next + 1;
            }
            false
        } else if kw(i, "INDEX") || kw(i, "KEY") {
            (i..toks.len())
                .find(|&j| kw(j, "ON"))
                .and_then(|j| name_at(j + 1))
                .is_some_and(|(m, _)| m)
        } else {
            false
        }
    } else if kw(0, "RENAME") && (kw(1, "TABLE") || kw(1, "TABLES")) {
        // RENAME TABLE a TO b [, c TO d]: the tables renamed are a and c.
        let mut i = 2;
        while let Some((m, next)) = name_at(i) {
            if m {
                return true;
            }
            match name_at(next + 1) {
                Some((_, after)) if kw(next, "TO") && toks.get(after) == Some(&Token::Comma) => {
                    i = after + 1
                }
                _ => break,
            }
        }
        false
    } else if kw(0, "TRUNCATE") {
        name_at(skip(1, &["TABLE"])).is_some_and(|(m, _)| m)
    } else {
        false
    }
}

async fn follow(cfg: &StreamConfig, tx: &mpsc::Sender<Msg>) -> Result<()> {
    let mut conn = Conn::new(cfg.opts.clone()).await.map_err(conn_stream_err)?;
    if cfg.mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(stream_err)?;
    }
    // Heartbeats every second let an idle stream report its position.
    conn.query_drop("SET @master_heartbeat_period = 1000000000")
        .await
        .map_err(stream_err)?;
    let req = BinlogStreamRequest::new(server_id())
        .with_filename(cfg.start.0.as_bytes())
        .with_pos(cfg.start.1);
    let mut stream = conn.get_binlog_stream(req).await.map_err(|e| {
        Error::new(ErrorKind::Privileges, format!("cannot open the binlog stream: {e}"))
            .with_hint("grant REPLICATION SLAVE (and REPLICATION CLIENT / BINLOG MONITOR) to the migration user")
    })?;
    let mut file = cfg.start.0.clone();
    let mut table_id: Option<u64> = None;
    let mut layout: Vec<ColumnLayout> = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(conn_stream_err)?;
        let header = ev.header();
        let log_pos = u64::from(header.log_pos());
        let ts = header.timestamp();
        let data = ev.read_data().map_err(stream_err)?;
        let mut boundary = false;
        match data {
            Some(EventData::RotateEvent(r)) => {
                let mut name = r.name_raw().to_vec();
                // The first, fake Rotate of a checksummed stream carries 4 CRC bytes.
                if log_pos == 0 && name.len() == file.len() + 4 && name.starts_with(file.as_bytes())
                {
                    name.truncate(file.len());
                }
                file = String::from_utf8_lossy(&name).to_string();
                tracing::debug!(file = ?file, pos = r.position(), log_pos, "binlog rotate");
                let _ = tx
                    .send(Msg::Pos(
                        Position::Binlog {
                            file: file.clone(),
                            pos: r.position(),
                        },
                        ts,
                    ))
                    .await;
                continue;
            }
            Some(EventData::TableMapEvent(tme))
                if tme.database_name() == cfg.db.as_str()
                    && tme.table_name() == cfg.table.as_str() =>
            {
                if tme.columns_count() as usize != cfg.columns {
                    return Err(Error::new(
                            ErrorKind::SourceChanged,
                            format!(
                                "table `{}` now has {} columns instead of {}: its definition changed during the migration",
                                cfg.table,
                                tme.columns_count(),
                                cfg.columns
                            ),
                        )
                        .with_hint("do not alter the table while godwit migrates it; run godwit again"));
                }
                layout = layout_of(&tme)?;
                table_id = Some(tme.table_id());
            }
            Some(EventData::RowsEvent(re)) if Some(re.table_id()) == table_id => {
                let keys = keys_of(&re, &layout, &cfg.key)?;
                if !keys.is_empty() && tx.send(Msg::Keys(keys)).await.is_err() {
                    return Ok(());
                }
            }
            Some(EventData::QueryEvent(q)) => {
                let text = q.query();
                if is_ddl_on(&text, &q.schema(), &cfg.db, &cfg.table) {
                    let at = Position::Binlog {
                        file: file.clone(),
                        pos: log_pos,
                    };
                    let _ = tx.send(Msg::DdlAt(at)).await;
                    return Err(Error::new(
                        ErrorKind::SourceChanged,
                        format!(
                            "a DDL statement changed `{}` during the migration: {}",
                            cfg.table,
                            text.chars().take(200).collect::<String>()
                        ),
                    )
                    .with_hint(
                        "do not alter the table while godwit migrates it; run godwit again",
                    ));
                }
                boundary = true;
            }
            Some(EventData::XidEvent(_)) | Some(EventData::HeartbeatEvent) | None => {
                boundary = true
            }
            _ => {}
        }
        if boundary && log_pos > 0 {
            let pos = Position::Binlog {
                file: file.clone(),
                pos: log_pos,
            };
            if tx.send(Msg::Pos(pos, ts)).await.is_err() {
                return Ok(());
            }
        }
    }
    Err(Error::new(
        crate::error::ErrorKind::Unreachable,
        "binlog stream: the server closed the binlog stream",
    )
    .with_hint(crate::error::UNREACHABLE_HINT))
}

fn keys_of(
    re: &RowsEventData<'_>,
    layout: &[ColumnLayout],
    key: &[(usize, KeyDecode)],
) -> Result<Vec<Key>> {
    let before: Vec<bool> = re
        .columns_before_image()
        .map(|s| s.iter().map(|x| *x).collect())
        .unwrap_or_default();
    let after: Vec<bool> = re
        .columns_after_image()
        .map(|s| s.iter().map(|x| *x).collect())
        .unwrap_or_default();
    let (has_before, has_after) = match re {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => (false, true),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => (true, false),
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => (true, true),
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(Error::new(
                ErrorKind::ServerSettings,
                "the binlog carries partial JSON updates",
            )
            .with_hint("SET GLOBAL binlog_row_value_options = ''"))
        }
    };
    let data = re.rows_data();
    let mut pos = 0;
    let mut keys = Vec::new();
    let bad = |e: super::rowimage::RowImageError| stream_err(e);
    while pos < data.len() {
        let mut old = None;
        if has_before {
            let (k, used) = read_row(layout, &before, key, &data[pos..]).map_err(bad)?;
            pos += used;
            old = k;
        }
        if has_after {
            let (k, used) = read_row(layout, &after, key, &data[pos..]).map_err(bad)?;
            pos += used;
            if let Some(k) = k {
                if old.as_ref() != Some(&k) {
                    keys.push(k);
                }
            }
        }
        if let Some(k) = old {
            keys.push(k);
        }
    }
    Ok(keys)
}

#[async_trait]
impl ChangeStream for BinlogStream {
    async fn poll(&mut self, wait: Duration) -> Result<StreamBatch> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut batch = StreamBatch::default();
        let deadline = tokio::time::Instant::now() + wait;
        let mut got_any = false;
        loop {
            let msg = if got_any {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                }
            } else {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(m)) => Some(m),
                    Ok(None) => return Err(stream_err("the binlog reader stopped")),
                    Err(_) => None,
                }
            };
            let Some(msg) = msg else { break };
            got_any = true;
            match msg {
                Msg::Keys(mut k) => batch.keys.append(&mut k),
                Msg::DdlAt(p) => self.ddl_at = Some(p),
                Msg::Pos(p, ts) => {
                    batch.position = Some(p);
                    if ts > 0 {
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        batch.lag = Some(Duration::from_secs(now.saturating_sub(u64::from(ts))));
                    }
                }
                Msg::Err(e) if batch.keys.is_empty() => return Err(e),
                Msg::Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
            if batch.keys.len() >= 50_000 {
                break;
            }
        }
        Ok(batch)
    }

    async fn ack(&mut self, _position: &Position) -> Result<()> {
        // The binlog is not consumed: nothing to acknowledge on the server.
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        Ok(())
    }

    fn swap_position(&self) -> Option<Position> {
        self.ddl_at.clone()
    }
}

impl Drop for BinlogStream {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_ddl_on, BinlogStream, Msg};
    use crate::engine::{ChangeStream, KeyPart};
    use crate::error::{Error, ErrorKind};
    use std::time::Duration;

    #[tokio::test]
    async fn keys_read_before_an_error_are_returned_first() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut s = BinlogStream {
            rx,
            task: None,
            pending: None,
            ddl_at: None,
        };
        // A write that reached the old table after the final flush, then the swap's RENAME.
        tx.send(Msg::Keys(vec![vec![KeyPart::Int(7)]]))
            .await
            .unwrap();
        tx.send(Msg::Err(Error::new(ErrorKind::SourceChanged, "RENAME")))
            .await
            .unwrap();
        let b = s.poll(Duration::from_millis(10)).await.unwrap();
        assert_eq!(b.keys, vec![vec![KeyPart::Int(7)]]);
        let e = s.poll(Duration::from_millis(10)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::SourceChanged);
    }

    #[test]
    fn ddl_detection_matches_whole_names() {
        let on = |q: &str| is_ddl_on(q, "db", "db", "orders");
        assert!(on("ALTER TABLE `orders` ADD x INT"));
        assert!(on("alter online table IF EXISTS db.orders add x int"));
        assert!(on("drop table if exists db.orders"));
        assert!(on("DROP TABLE `a`, `orders` /* generated by server */"));
        assert!(on("DROP INDEX idx ON orders"));
        assert!(on("RENAME TABLE a TO b, `db`.`orders` TO `orders_old`"));
        assert!(on("TRUNCATE orders"));
        assert!(on("/* comment */ TRUNCATE TABLE `orders`"));
        assert!(!on("ALTER TABLE `_godwit_new_orders` ADD x INT"));
        assert!(!on("CREATE TABLE `_godwit_new_orders` LIKE `orders`"));
        assert!(!on("BEGIN"));
        // Another table whose column, index or new name is the table's name.
        assert!(!on("ALTER TABLE `orders_godwit_new` MODIFY orders TIME(3)"));
        assert!(!on(
            "ALTER TABLE `db`.`t_godwit_new` RENAME COLUMN d TO d2, RENAME COLUMN orders TO o2"
        ));
        assert!(!on("DROP INDEX orders ON other"));
        assert!(!on("RENAME TABLE a TO orders"));
        // Another database.
        assert!(!on("ALTER TABLE other.orders ADD x INT"));
        assert!(!is_ddl_on(
            "ALTER TABLE orders ADD x INT",
            "other",
            "db",
            "orders"
        ));
        assert!(is_ddl_on(
            "ALTER TABLE db.orders ADD x INT",
            "other",
            "db",
            "orders"
        ));
    }
}
