//! Replica lag on MySQL/MariaDB (`--max-lag-millis`, docs/throttling.md).
//!
//! The heartbeat: one row per run in `_godwit_heartbeat` of the target database,
//! `(run_id, ts)`, `ts` set to the primary's `UTC_TIMESTAMP(6)` every
//! `--heartbeat-interval-millis` (binary logging left on: the row must replicate). On each
//! replica, lag = the replica's `UTC_TIMESTAMP(6)` − the `ts` it has applied, so replica
//! and primary clocks must agree (NTP; exact on one machine). A replica whose
//! `SHOW SLAVE STATUS` says the IO or SQL thread is not running, or that cannot be read,
//! counts as lagging. Replicas come from `--throttle-control-replicas` or `SHOW SLAVE
//! HOSTS` (replicas started with `report_host`).

use super::conn_err;
use super::session::{self, SessionKind};
use super::sql::{qualified, quote};
use crate::error::{Error, ErrorKind, Result};
use crate::target::Target;
use crate::throttle::lag::{
    replica_name, secs, LagMonitor, LagOptions, ReplicaLag, HEARTBEAT_TABLE, STALE_HEARTBEAT,
};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A replica's connection attempt gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct Replica {
    name: String,
    opts: Opts,
    conn: Mutex<Option<Conn>>,
    /// When its heartbeat row was last read (a missing row is lag since then).
    seen: std::sync::Mutex<Option<Instant>>,
    /// `SHOW SLAVE STATUS` is refused (privileges): the heartbeat alone tells.
    no_status: std::sync::atomic::AtomicBool,
}

pub struct MysqlLag {
    db: String,
    run_id: String,
    primary: Opts,
    conn: Mutex<Option<Conn>>,
    replicas: Vec<Replica>,
    started: Instant,
}

/// The options of the session builder (`session.rs`, online settings) for `host:port`
/// with the primary's user and password; the database only on the primary (a replica
/// may filter it out).
fn opts_for(target: &Target, host: &str, port: u16, db: bool) -> Opts {
    let mut t = target.clone();
    t.host = host.to_string();
    t.port = port;
    session::options(&t, SessionKind::Online)
        .db_name(db.then(|| target.database.clone()))
        .into()
}

async fn open(opts: &Opts, what: &str) -> Result<Conn> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts.clone())).await {
        Err(_) => Err(Error::new(
            ErrorKind::Unreachable,
            format!("{what}: no answer within {}", secs(CONNECT_TIMEOUT)),
        )),
        Ok(r) => r.map_err(|e| conn_err(e, what)),
    }
}

/// The replica-lag monitor of `target`, or `None` when no replica is given and none is
/// found (then there is no lag check and no heartbeat table).
pub async fn monitor(target: &Target, opts: &LagOptions) -> Result<Option<MysqlLag>> {
    let primary = opts_for(target, &target.host, target.port, true);
    let list = match &opts.replicas {
        Some(given) => given.clone(),
        None => {
            let mut c = open(&primary, &format!("connecting to {target}")).await?;
            let found = discover(&mut c).await;
            let _ = c.disconnect().await;
            match found {
                Ok(list) => list,
                Err(e) => {
                    tracing::info!(
                        "no replica-lag check: the replicas cannot be listed ({e}); name them with --throttle-control-replicas"
                    );
                    return Ok(None);
                }
            }
        }
    };
    if list.is_empty() {
        tracing::info!(
            "no replica-lag check: no replica found with SHOW SLAVE HOSTS (replicas appear there with report_host set) and none given with --throttle-control-replicas"
        );
        return Ok(None);
    }
    let replicas = list
        .iter()
        .map(|(h, p)| Replica {
            name: replica_name(h, *p),
            opts: opts_for(target, h, *p, false),
            conn: Mutex::new(None),
            seen: std::sync::Mutex::new(None),
            no_status: Default::default(),
        })
        .collect::<Vec<_>>();
    tracing::info!(
        "replica-lag check on {} (--max-lag-millis {})",
        replicas
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        opts.max_lag.as_millis()
    );
    Ok(Some(MysqlLag {
        db: target.database.clone(),
        run_id: crate::throttle::lag::run_id(),
        primary,
        conn: Mutex::new(None),
        replicas,
        started: Instant::now(),
    }))
}

/// `godwit cleanup`: the heartbeat table when it exists and no run wrote to it for
/// [`STALE_HEARTBEAT`] (its runs were killed); dropped when `drop`.
pub async fn stale_heartbeat(target: &Target, drop: bool) -> Result<Option<String>> {
    let mut c = open(
        &opts_for(target, &target.host, target.port, true),
        &format!("connecting to {target}"),
    )
    .await?;
    let table = qualified(&target.database, HEARTBEAT_TABLE);
    let fresh: std::result::Result<Option<Option<i64>>, _> = c
        .query_first(format!(
            "SELECT CAST(SUM(ts > UTC_TIMESTAMP(6) - INTERVAL {} SECOND) AS SIGNED) FROM {table}",
            STALE_HEARTBEAT.as_secs()
        ))
        .await;
    let r = match fresh {
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(None),
        Err(e) => Err(conn_err(e, "reading the heartbeat table")),
        Ok(n) if n.flatten().unwrap_or(0) > 0 => Ok(None),
        Ok(_) => {
            if drop {
                c.query_drop(format!("DROP TABLE IF EXISTS {table}"))
                    .await
                    .map_err(|e| conn_err(e, "dropping the heartbeat table"))?;
            }
            Ok(Some(HEARTBEAT_TABLE.to_string()))
        }
    };
    let _ = c.disconnect().await;
    r
}

/// Replicas registered with the primary (`report_host`/`report_port`).
async fn discover(c: &mut Conn) -> Result<Vec<(String, u16)>> {
    let rows: Vec<Row> = match c.query("SHOW SLAVE HOSTS").await {
        Ok(r) => r,
        // MySQL 8.4 knows only the new spelling.
        Err(_) => c
            .query("SHOW REPLICAS")
            .await
            .map_err(|e| conn_err(e, "listing the replicas (SHOW SLAVE HOSTS)"))?,
    };
    let mut out = Vec::new();
    for row in rows {
        let host = text(&row, &["Host"]).unwrap_or_default();
        let port = text(&row, &["Port"])
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let id = text(&row, &["Server_id"]).and_then(|i| i.parse::<u32>().ok());
        // Binlog readers register too: godwit's own streams (this run's and other
        // runs'), which report no port; they are not replicas.
        if id.is_some_and(|i| i & super::binlog::STREAM_SERVER_ID_BIT != 0) || port.is_none() {
            tracing::debug!(host, ?id, "not a replica: a binlog reader without a port");
            continue;
        }
        if let (false, Some(port)) = (host.is_empty(), port) {
            if !out.contains(&(host.clone(), port)) {
                out.push((host, port));
            }
        }
    }
    Ok(out)
}

/// A column of a `SHOW` row as text, by any of its names.
fn text(row: &Row, names: &[&str]) -> Option<String> {
    let cols = row.columns_ref();
    let i = cols
        .iter()
        .position(|c| names.iter().any(|n| c.name_str().eq_ignore_ascii_case(n)))?;
    match row.as_ref(i)? {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).to_string()),
        Value::NULL => None,
        v => Some(v.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl MysqlLag {
    fn table(&self) -> String {
        qualified(&self.db, HEARTBEAT_TABLE)
    }

    async fn write(&self, c: &mut Conn) -> std::result::Result<(), mysql_async::Error> {
        c.exec_drop(
            format!(
                "INSERT INTO {} (run_id, ts) VALUES (?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
                self.table()
            ),
            (&self.run_id,),
        )
        .await
    }

    async fn create(&self, c: &mut Conn) -> Result<()> {
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(96) NOT NULL PRIMARY KEY, {} DATETIME(6) NOT NULL) ENGINE=InnoDB COMMENT='godwit replica-lag heartbeat: one row per running godwit, removed when the last run ends'",
            self.table(),
            quote("run_id"),
            quote("ts")
        ))
        .await
        .map_err(|e| {
            conn_err(e, &format!("creating the heartbeat table {HEARTBEAT_TABLE}"))
                .with_hint("grant CREATE, INSERT, UPDATE, DELETE and DROP on the database, or run without replicas to watch")
        })
    }

    async fn read_one(&self, r: &Replica) -> ReplicaLag {
        let mut guard = r.conn.lock().await;
        if guard.is_none() {
            match open(&r.opts, &format!("connecting to replica {}", r.name)).await {
                Ok(c) => *guard = Some(c),
                Err(e) => return unreadable(r, e),
            }
        }
        let Some(c) = guard.as_mut() else {
            return unreadable(r, Error::internal("no connection"));
        };
        match self.measure(r, c).await {
            Ok(reading) => reading,
            Err(e) => {
                *guard = None;
                unreadable(r, e)
            }
        }
    }

    async fn measure(&self, r: &Replica, c: &mut Conn) -> Result<ReplicaLag> {
        let got: std::result::Result<Option<Option<i64>>, _> = c
            .exec_first(
                format!(
                    "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) FROM {} WHERE run_id = ?",
                    self.table()
                ),
                (&self.run_id,),
            )
            .await;
        let now = Instant::now();
        let lag = match got {
            Ok(Some(Some(us))) => {
                if let Ok(mut s) = r.seen.lock() {
                    *s = Some(now);
                }
                Duration::from_micros(us.max(0) as u64)
            }
            // Not there (yet, or the table was re-created): behind by at least the time
            // since the row was last read, or since the first heartbeat.
            Ok(_) => missing(r, self.started, now),
            Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => {
                missing(r, self.started, now)
            }
            Err(e) => return Err(conn_err(e, "reading the heartbeat")),
        };
        let mut why = None;
        if !r.no_status.load(std::sync::atomic::Ordering::Relaxed) {
            match status(c).await {
                Ok(None) => {}
                Ok(Some(stopped)) => why = Some(format!("{stopped}; lag {}", secs(lag))),
                Err(mysql_async::Error::Server(e))
                    if matches!(e.code, 1227 | 1142 | 1044 | 1045) =>
                {
                    tracing::info!(
                        "replica {}: SHOW SLAVE STATUS refused ({}); its heartbeat alone tells its lag",
                        r.name,
                        e.message
                    );
                    r.no_status
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return Err(conn_err(e, "reading SHOW SLAVE STATUS")),
            }
        }
        Ok(ReplicaLag {
            name: r.name.clone(),
            lag: Some(lag),
            why,
        })
    }

    async fn primary(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Conn>>> {
        let mut g = self.conn.lock().await;
        if g.is_none() {
            *g = Some(open(&self.primary, "connecting to the primary for the heartbeat").await?);
        }
        Ok(g)
    }
}

fn missing(r: &Replica, started: Instant, now: Instant) -> Duration {
    let since = r
        .seen
        .lock()
        .ok()
        .and_then(|s| *s)
        .unwrap_or(started)
        .max(started);
    now.saturating_duration_since(since)
}

fn unreadable(r: &Replica, e: Error) -> ReplicaLag {
    ReplicaLag {
        name: r.name.clone(),
        lag: None,
        why: Some(format!("cannot be read: {}", e.message)),
    }
}

/// `Some(why)` when replication is not running (IO or SQL thread), or is not set up.
async fn status(c: &mut Conn) -> std::result::Result<Option<String>, mysql_async::Error> {
    let rows: Vec<Row> = match c.query("SHOW SLAVE STATUS").await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
            c.query("SHOW REPLICA STATUS").await?
        }
        Err(e) => return Err(e),
    };
    let Some(row) = rows.first() else {
        return Ok(Some("replication is not configured on it".into()));
    };
    let io = text(row, &["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or_default();
    let sql = text(row, &["Slave_SQL_Running", "Replica_SQL_Running"]).unwrap_or_default();
    if io == "Yes" && sql == "Yes" {
        return Ok(None);
    }
    let mut why = format!("replication stopped (IO thread: {io}, SQL thread: {sql})");
    for col in ["Last_SQL_Error", "Last_IO_Error"] {
        if let Some(e) = text(row, &[col]).filter(|e| !e.is_empty()) {
            why.push_str(&format!(", {col}: {e}"));
        }
    }
    Ok(Some(why))
}

#[async_trait]
impl LagMonitor for MysqlLag {
    fn replicas(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.name.clone()).collect()
    }

    async fn heartbeat(&self) -> Result<()> {
        let mut g = self.primary().await?;
        let Some(c) = g.as_mut() else {
            return Err(Error::internal("no heartbeat connection"));
        };
        let r = match self.write(c).await {
            // The table is made on first use, and again when a run that ended dropped
            // it meanwhile.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => {
                self.create(c).await?;
                self.write(c).await
            }
            r => r,
        };
        if let Err(e) = r {
            *g = None;
            return Err(conn_err(e, "writing the heartbeat"));
        }
        Ok(())
    }

    async fn read(&self) -> Vec<ReplicaLag> {
        futures_util::future::join_all(self.replicas.iter().map(|r| self.read_one(r))).await
    }

    async fn close(&self) -> Result<()> {
        let mut c = open(&self.primary, "connecting to the primary").await?;
        let r = async {
            c.exec_drop(
                format!("DELETE FROM {} WHERE run_id = ?", self.table()),
                (&self.run_id,),
            )
            .await?;
            let others: Option<i64> = c
                .query_first(format!(
                    "SELECT COUNT(*) FROM {} WHERE ts > UTC_TIMESTAMP(6) - INTERVAL {} SECOND",
                    self.table(),
                    STALE_HEARTBEAT.as_secs()
                ))
                .await?;
            if others.unwrap_or(0) == 0 {
                c.query_drop(format!("DROP TABLE IF EXISTS {}", self.table()))
                    .await?;
            }
            Ok::<(), mysql_async::Error>(())
        }
        .await;
        let _ = c.disconnect().await;
        match r {
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(()),
            r => r.map_err(|e| conn_err(e, "removing the heartbeat")),
        }
    }
}
