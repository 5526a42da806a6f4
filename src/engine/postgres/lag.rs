//! Replica lag on PostgreSQL (`--max-lag-millis`, docs/throttling.md).
//!
//! Every walsender of `pg_stat_replication` counts (standbys and logical subscribers;
//! base backups in progress do not). A physical standby's lag is read from the LSNs: the
//! primary's current LSN is sampled at every reading, and a standby whose `replay_lsn`
//! is behind is late by the time since the primary first had WAL past that LSN (this
//! sees a paused replay at once, where `replay_lag` stays at its last value); the larger
//! of that and `replay_lag` counts. A logical subscriber's lag is its `replay_lag`.
//! Standbys named with `--throttle-control-replicas` are also read directly: the
//! heartbeat row (`_godwit_heartbeat` in the table's schema, written on the primary
//! every `--heartbeat-interval-millis`) gives lag = the standby's `clock_timestamp()` −
//! the applied heartbeat, and a paused replay (`pg_is_wal_replay_paused()`) counts as
//! lagging. The heartbeat also keeps WAL moving, so that standbys report their
//! position while the application is idle.

use super::conn::{self, pg_err};
use super::sql::qualified;
use crate::error::{Error, ErrorKind, Result};
use crate::target::Target;
use crate::throttle::lag::{
    replica_name, secs, LagMonitor, LagOptions, ReplicaLag, HEARTBEAT_TABLE, STALE_HEARTBEAT,
};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_postgres::Client;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// LSN samples kept (one per reading): the longest lag the LSNs can tell.
const SAMPLES: usize = 3000;

/// Walsenders other than base backups, with the LSN numbers as float8 (exact up to 2^53).
const WALSENDERS: &str =
    "SELECT coalesce(host(r.client_addr), 'local'), coalesce(r.application_name, ''), \
    coalesce(r.state, ''), pg_wal_lsn_diff(r.replay_lsn, '0/0')::float8, \
    extract(epoch FROM r.replay_lag)::float8, coalesce(s.slot_type, 'physical'), \
    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 \
    FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid \
    WHERE r.state IS DISTINCT FROM 'backup' ORDER BY r.pid";

const CURRENT_LSN: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8";

struct Standby {
    name: String,
    target: Target,
    conn: Mutex<Option<Client>>,
    seen: std::sync::Mutex<Option<Instant>>,
}

pub struct PgLag {
    target: Target,
    table: String,
    run_id: String,
    conn: Mutex<Option<Client>>,
    standbys: Vec<Standby>,
    /// (when, the primary's LSN then), oldest first.
    samples: std::sync::Mutex<VecDeque<(Instant, f64)>>,
    started: Instant,
    /// Said once: the walsenders' state is hidden from this user.
    hidden_warned: std::sync::atomic::AtomicBool,
    /// Write the heartbeat table (not while a FOR ALL TABLES publication would send it
    /// to subscribers that do not have it).
    use_table: bool,
}

async fn open(target: &Target, what: &str) -> Result<Client> {
    match tokio::time::timeout(CONNECT_TIMEOUT, conn::connect(target, "lag")).await {
        Err(_) => Err(Error::new(
            ErrorKind::Unreachable,
            format!("{what}: no answer within {}", secs(CONNECT_TIMEOUT)),
        )),
        Ok(r) => r.map_err(|e| e.context(what)),
    }
}

/// The replica-lag monitor of `target` for a table in `schema` (`None`: the session's
/// current schema), or `None` when no standby is given and none is connected.
pub async fn monitor(
    target: &Target,
    schema: Option<&str>,
    opts: &LagOptions,
) -> Result<Option<PgLag>> {
    let c = conn::connect(target, "lag").await?;
    local_commit(&c).await?;
    let schema = match schema {
        Some(s) => s.to_string(),
        None => c
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(|e| pg_err(e, "reading the current schema"))?
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| "public".into()),
    };
    let given = opts.replicas.clone().unwrap_or_default();
    if given.is_empty() {
        let n = c
            .query(WALSENDERS, &[])
            .await
            .map_err(|e| pg_err(e, "reading pg_stat_replication"))?
            .len();
        if n == 0 {
            tracing::info!(
                "no replica-lag check: no standby or subscriber in pg_stat_replication and none given with --throttle-control-replicas"
            );
            return Ok(None);
        }
    }
    let all_tables: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE puballtables)",
            &[],
        )
        .await
        .map_err(|e| pg_err(e, "looking for FOR ALL TABLES publications"))?
        .get(0);
    let use_table = !all_tables;
    if all_tables {
        tracing::info!(
            "no heartbeat table: a FOR ALL TABLES publication would send it to subscribers that do not have it; standbys' lag is read from their replay position instead"
        );
    }
    let standbys = given
        .iter()
        .map(|(h, p)| {
            let mut t = target.clone();
            t.host = h.clone();
            t.port = *p;
            Standby {
                name: replica_name(h, *p),
                target: t,
                conn: Mutex::new(None),
                seen: std::sync::Mutex::new(None),
            }
        })
        .collect::<Vec<_>>();
    tracing::info!(
        "replica-lag check on the walsenders of pg_stat_replication{} (--max-lag-millis {})",
        if standbys.is_empty() {
            String::new()
        } else {
            format!(
                " and {}",
                standbys
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        opts.max_lag.as_millis()
    );
    Ok(Some(PgLag {
        target: target.clone(),
        table: qualified(&schema, HEARTBEAT_TABLE),
        run_id: crate::throttle::lag::run_id(),
        conn: Mutex::new(Some(c)),
        standbys,
        samples: std::sync::Mutex::new(VecDeque::new()),
        started: Instant::now(),
        hidden_warned: Default::default(),
        use_table,
    }))
}

/// `godwit cleanup`: the heartbeat table of `schema` when it exists and no run wrote to
/// it for [`STALE_HEARTBEAT`] (its runs were killed); dropped when `drop`.
pub async fn stale_heartbeat(
    target: &Target,
    schema: Option<&str>,
    drop: bool,
) -> Result<Option<String>> {
    let c = conn::connect(target, "cleanup").await?;
    let schema = match schema {
        Some(s) => s.to_string(),
        None => c
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(|e| pg_err(e, "reading the current schema"))?
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| "public".into()),
    };
    let table = qualified(&schema, HEARTBEAT_TABLE);
    let fresh = c
        .query_one(
            &format!(
                "SELECT count(*) FROM {table} WHERE ts > clock_timestamp() - interval '{} seconds'",
                STALE_HEARTBEAT.as_secs()
            ),
            &[],
        )
        .await;
    match fresh {
        Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => Ok(None),
        Err(e) => Err(pg_err(e, "reading the heartbeat table")),
        Ok(r) if r.get::<_, i64>(0) > 0 => Ok(None),
        Ok(_) => {
            if drop {
                c.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])
                    .await
                    .map_err(|e| pg_err(e, "dropping the heartbeat table"))?;
            }
            Ok(Some(format!("{schema}.{HEARTBEAT_TABLE}")))
        }
    }
}

/// How late a standby at `replay` is: the time since the primary first had WAL past it
/// (`samples`: oldest first). Zero when it has everything sampled.
fn lsn_lag(samples: &VecDeque<(Instant, f64)>, replay: f64, now: Instant) -> Duration {
    samples
        .iter()
        .find(|(_, lsn)| *lsn > replay)
        .map(|(t, _)| now.saturating_duration_since(*t))
        .unwrap_or_default()
}

impl PgLag {
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>> {
        let mut g = self.conn.lock().await;
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            let c = open(&self.target, "connecting to the primary").await?;
            local_commit(&c).await?;
            *g = Some(c);
        }
        Ok(g)
    }

    async fn write(&self, c: &Client) -> std::result::Result<u64, tokio_postgres::Error> {
        c.execute(
            &format!(
                "INSERT INTO {} (run_id, ts) VALUES ($1, clock_timestamp()) ON CONFLICT (run_id) DO UPDATE SET ts = EXCLUDED.ts",
                self.table
            ),
            &[&self.run_id],
        )
        .await
    }

    /// The walsenders' lag, from the primary.
    async fn walsenders(&self) -> Result<Vec<ReplicaLag>> {
        let rows = {
            let g = self.client().await?;
            let Some(c) = g.as_ref() else {
                return Err(Error::internal("no connection"));
            };
            c.query(WALSENDERS, &[])
                .await
                .map_err(|e| pg_err(e, "reading pg_stat_replication"))?
        };
        let now = Instant::now();
        let current = match rows.first() {
            Some(r) => r.get::<_, Option<f64>>(6),
            None => self.current_lsn().await?,
        };
        let mut samples = self
            .samples
            .lock()
            .map_err(|_| Error::internal("lag samples poisoned"))?;
        if let Some(l) = current {
            samples.push_back((now, l));
            while samples.len() > SAMPLES {
                samples.pop_front();
            }
        }
        let mut out = Vec::new();
        for r in rows {
            let addr: String = r.get(0);
            let app: String = r.get(1);
            let state: String = r.get(2);
            if state.is_empty() {
                // A user without pg_read_all_stats sees the walsenders, not their state.
                if !self
                    .hidden_warned
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        "cannot see the replication state in pg_stat_replication (it needs superuser or pg_read_all_stats): those standbys' lag is not checked; GRANT pg_read_all_stats TO the user, or name the standbys with --throttle-control-replicas"
                    );
                }
                continue;
            }
            let replay: Option<f64> = r.get(3);
            let replay_lag = r
                .get::<_, Option<f64>>(4)
                .map(|s| Duration::from_secs_f64(s.max(0.0)));
            let kind: String = r.get(5);
            let name = if app.is_empty() {
                addr.clone()
            } else {
                format!("{addr} ({app})")
            };
            let (lag, why) = if kind == "logical" {
                (Some(replay_lag.unwrap_or_default()), None)
            } else {
                match replay {
                    Some(replay) => {
                        let l = lsn_lag(&samples, replay, now).max(replay_lag.unwrap_or_default());
                        (Some(l), None)
                    }
                    None => (
                        None,
                        Some(format!("it has replayed nothing yet (state {state})")),
                    ),
                }
            };
            let why = why.or_else(|| {
                (state != "streaming").then(|| {
                    format!(
                        "its walsender is in state {state}, not streaming{}",
                        lag.map(|l| format!("; lag {}", secs(l)))
                            .unwrap_or_default()
                    )
                })
            });
            out.push(ReplicaLag { name, lag, why });
        }
        Ok(out)
    }

    async fn current_lsn(&self) -> Result<Option<f64>> {
        let g = self.client().await?;
        let Some(c) = g.as_ref() else {
            return Err(Error::internal("no connection"));
        };
        c.query_one(CURRENT_LSN, &[])
            .await
            .map(|r| r.get(0))
            .map_err(|e| pg_err(e, "reading the current WAL position"))
    }

    async fn standby(&self, s: &Standby) -> ReplicaLag {
        let mut g = s.conn.lock().await;
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            match open(&s.target, &format!("connecting to standby {}", s.name)).await {
                Ok(c) => *g = Some(c),
                // The database is not there yet: the standby has not replayed its
                // creation, so it is behind by at least the time since the first
                // heartbeat (or its last one read).
                Err(e) if e.is_sqlstate("3D000") => {
                    return ReplicaLag {
                        name: s.name.clone(),
                        lag: Some(self.missing(s, Instant::now())),
                        why: None,
                    }
                }
                Err(e) => return unreadable(&s.name, e),
            }
        }
        let Some(c) = g.as_ref() else {
            return unreadable(&s.name, Error::internal("no connection"));
        };
        match self.measure(s, c).await {
            Ok(r) => r,
            Err(e) => {
                *g = None;
                unreadable(&s.name, e)
            }
        }
    }

    /// The lag of a standby that has no heartbeat row (yet): the time since its last
    /// one was read, or since the first was written.
    fn missing(&self, s: &Standby, now: Instant) -> Duration {
        let since = s
            .seen
            .lock()
            .ok()
            .and_then(|x| *x)
            .unwrap_or(self.started)
            .max(self.started);
        now.saturating_duration_since(since)
    }

    /// Without the heartbeat table: the standby's own replay LSN against the primary's
    /// samples, and its recovery state.
    async fn measure_lsn(&self, s: &Standby, c: &Client, now: Instant) -> Result<ReplicaLag> {
        let row = c
            .query_one(
                "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
                 pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8",
                &[],
            )
            .await
            .map_err(|e| pg_err(e, "reading the replay position"))?;
        let (recovery, paused, replay): (bool, bool, Option<f64>) =
            (row.get(0), row.get(1), row.get(2));
        let lag = {
            let samples = self
                .samples
                .lock()
                .map_err(|_| Error::internal("lag samples poisoned"))?;
            lsn_lag(&samples, replay.unwrap_or(0.0), now)
        };
        Ok(ReplicaLag {
            name: s.name.clone(),
            lag: Some(lag),
            why: standby_why(recovery, paused, lag),
        })
    }

    async fn measure(&self, s: &Standby, c: &Client) -> Result<ReplicaLag> {
        let now = Instant::now();
        if !self.use_table {
            return self.measure_lsn(s, c, now).await;
        }
        let got = c
            .query_opt(
                &format!(
                    "SELECT extract(epoch FROM clock_timestamp() - ts)::float8 FROM {} WHERE run_id = $1",
                    self.table
                ),
                &[&self.run_id],
            )
            .await;
        let missing = || self.missing(s, now);
        let lag = match got {
            Ok(Some(row)) => {
                if let Ok(mut x) = s.seen.lock() {
                    *x = Some(now);
                }
                Duration::from_secs_f64(row.get::<_, Option<f64>>(0).unwrap_or(0.0).max(0.0))
            }
            Ok(None) => missing(),
            // The table is not there (yet, or a run that ended dropped it).
            Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => missing(),
            Err(e) => return Err(pg_err(e, "reading the heartbeat")),
        };
        let row = c
            .query_one(
                "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END",
                &[],
            )
            .await
            .map_err(|e| pg_err(e, "reading the recovery state"))?;
        let (recovery, paused): (bool, bool) = (row.get(0), row.get(1));
        let why = standby_why(recovery, paused, lag);
        Ok(ReplicaLag {
            name: s.name.clone(),
            lag: Some(lag),
            why,
        })
    }
}

/// Why a standby counts as lagging whatever its lag: not a standby, or replay paused.
fn standby_why(recovery: bool, paused: bool, lag: Duration) -> Option<String> {
    if !recovery {
        Some(format!(
            "it is not a standby (pg_is_in_recovery() is false); lag {}",
            secs(lag)
        ))
    } else if paused {
        Some(format!(
            "WAL replay is paused (pg_wal_replay_pause()); lag {}",
            secs(lag)
        ))
    } else {
        None
    }
}

/// The heartbeat never waits for a synchronous standby (it may be the one lagging).
async fn local_commit(c: &Client) -> Result<()> {
    c.execute("SET synchronous_commit = local", &[])
        .await
        .map(|_| ())
        .map_err(|e| pg_err(e, "setting synchronous_commit"))
}

fn unreadable(name: &str, e: Error) -> ReplicaLag {
    ReplicaLag {
        name: name.to_string(),
        lag: None,
        why: Some(format!("cannot be read: {}", e.message)),
    }
}

#[async_trait]
impl LagMonitor for PgLag {
    fn replicas(&self) -> Vec<String> {
        let mut v = vec!["the walsenders of pg_stat_replication".to_string()];
        v.extend(self.standbys.iter().map(|s| s.name.clone()));
        v
    }

    async fn heartbeat(&self) -> Result<()> {
        if !self.use_table {
            return Ok(());
        }
        let mut g = self.client().await?;
        let Some(c) = g.as_ref() else {
            return Err(Error::internal("no connection"));
        };
        let r = match self.write(c).await {
            Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => {
                let create = async {
                    c.execute(
                        &format!(
                            "CREATE TABLE IF NOT EXISTS {} (run_id text PRIMARY KEY, ts timestamptz NOT NULL)",
                            self.table
                        ),
                        &[],
                    )
                    .await?;
                    c.execute(
                        &format!(
                            "COMMENT ON TABLE {} IS 'godwit replica-lag heartbeat: one row per running godwit, removed when the last run ends'",
                            self.table
                        ),
                        &[],
                    )
                    .await
                    .map(|_| ())
                }
                .await;
                match create {
                    // Two runs creating it at once: the other one won.
                    Err(e) if e.code().is_some_and(|c| matches!(c.code(), "23505" | "42P07")) => {}
                    Err(e) => {
                        return Err(pg_err(e, &format!("creating the heartbeat table {HEARTBEAT_TABLE}"))
                            .with_hint("grant CREATE on the schema (and the right to write the table), or run without standbys to watch"))
                    }
                    Ok(()) => {}
                }
                self.write(c).await
            }
            r => r,
        };
        if let Err(e) = r {
            let err = pg_err(e, "writing the heartbeat");
            if err.kind == ErrorKind::Unreachable {
                *g = None;
            }
            return Err(err);
        }
        Ok(())
    }

    async fn read(&self) -> Vec<ReplicaLag> {
        let (senders, standbys) = tokio::join!(
            self.walsenders(),
            futures_util::future::join_all(self.standbys.iter().map(|s| self.standby(s)))
        );
        let mut out = match senders {
            Ok(v) => v,
            Err(e) => vec![unreadable("pg_stat_replication (on the primary)", e)],
        };
        out.extend(standbys);
        out
    }

    async fn close(&self) -> Result<()> {
        if !self.use_table {
            return Ok(());
        }
        let c = open(&self.target, "connecting to the primary").await?;
        let r = async {
            c.execute(
                &format!("DELETE FROM {} WHERE run_id = $1", self.table),
                &[&self.run_id],
            )
            .await?;
            let others: i64 = c
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE ts > clock_timestamp() - interval '{} seconds'",
                        self.table,
                        STALE_HEARTBEAT.as_secs()
                    ),
                    &[],
                )
                .await?
                .get(0);
            if others == 0 {
                c.execute(&format!("DROP TABLE IF EXISTS {}", self.table), &[])
                    .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        }
        .await;
        match r {
            Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => Ok(()),
            r => r.map_err(|e| pg_err(e, "removing the heartbeat")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_lag_is_the_time_since_the_primary_first_had_wal_past_the_replay() {
        let t0 = Instant::now();
        let s: VecDeque<(Instant, f64)> = [(0u64, 100.0), (200, 150.0), (400, 150.0), (600, 300.0)]
            .iter()
            .map(|(ms, l)| (t0 + Duration::from_millis(*ms), *l))
            .collect();
        let now = t0 + Duration::from_millis(1000);
        assert_eq!(lsn_lag(&s, 300.0, now), Duration::ZERO);
        assert_eq!(lsn_lag(&s, 400.0, now), Duration::ZERO);
        assert_eq!(lsn_lag(&s, 150.0, now), Duration::from_millis(400));
        assert_eq!(lsn_lag(&s, 120.0, now), Duration::from_millis(800));
        assert_eq!(lsn_lag(&s, 10.0, now), Duration::from_millis(1000));
    }
}
