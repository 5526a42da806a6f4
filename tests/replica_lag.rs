//! Replica-lag throttling on real replicas (`--max-lag-millis`, docs/throttling.md): a
//! private primary with a MariaDB replica (GTID replication, `report_host`) or a
//! PostgreSQL streaming standby (`pg_basebackup -R`), started by this test binary only.
//!
//! One case table for both engines: the replica's replay is paused mid-copy (`STOP SLAVE
//! SQL_THREAD` / `pg_wal_replay_pause()`) while a mirrored writer runs; the copy stops
//! advancing and godwit reports `throttled` naming the replica and its lag; replay
//! resumes and the run finishes with the table equal to the mirror, on the primary and
//! on the replica, and nothing of godwit's (the heartbeat table included) left on
//! either. The same for a phases backfill; and a replica that cannot be reached holds the
//! copy until SIGTERM ends the run (exit 30, cleaned up). Nothing asserts timings.

mod support;
use std::time::Duration;
use support::both::{Db, Engine, MirrorWriter};
use support::{LiveRun, Run};

/// A private primary and its replica (or standby); both stopped on drop.
struct Pair {
    engine: Engine,
    /// The primary's server URL (root / postgres, no password).
    server: String,
    replica_port: u16,
    dir: String,
}

impl Pair {
    fn start(engine: Engine) -> Pair {
        let root = env!("CARGO_MANIFEST_DIR");
        let (start, var, port) = match engine {
            Engine::Maria => (
                "start_mariadb && start_mariadb_replica",
                "GODWIT_TEST_MYSQL_URL",
                "MYSQL_REPLICA_PORT",
            ),
            Engine::Postgres => (
                "start_postgres && start_postgres_standby",
                "GODWIT_TEST_POSTGRES_URL",
                "PG_STANDBY_PORT",
            ),
        };
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {root}/scripts/lib/servers.sh && {start} >&2 && echo \"${var} ${port} $GODWIT_RUN_DIR\""
            ))
            .env_remove("GODWIT_RUN_DIR")
            .env("GODWIT_MARIADB_BUFFER_POOL", "128M")
            .env("GODWIT_PG_SHARED_BUFFERS", "64MB")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("start a primary and its replica");
        assert!(out.status.success(), "primary and replica did not start");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let parts: Vec<&str> = text.split(' ').collect();
        assert_eq!(parts.len(), 3, "{text}");
        Pair {
            engine,
            server: parts[0].to_string(),
            replica_port: parts[1].parse().unwrap(),
            dir: parts[2].to_string(),
        }
    }

    fn replica(&self) -> String {
        format!("127.0.0.1:{}", self.replica_port)
    }

    /// `url` (a database on the primary) on the replica.
    fn on_replica(&self, url: &str) -> String {
        let (scheme_host, db) = url.rsplit_once('/').unwrap();
        let (base, _) = scheme_host.rsplit_once(':').unwrap();
        format!("{base}:{}/{db}", self.replica_port)
    }

    async fn replica_exec(&self, sql: &str) {
        let url = self.on_replica(&self.server);
        match self.engine {
            Engine::Maria => {
                use mysql_async::prelude::Queryable;
                let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                    .await
                    .unwrap();
                c.query_drop(sql).await.unwrap();
                c.disconnect().await.unwrap();
            }
            Engine::Postgres => {
                support::postgres::connect(&url)
                    .await
                    .batch_execute(sql)
                    .await
                    .unwrap();
            }
        }
    }

    async fn pause(&self) {
        self.replica_exec(match self.engine {
            Engine::Maria => "STOP SLAVE SQL_THREAD",
            Engine::Postgres => "SELECT pg_wal_replay_pause()",
        })
        .await
    }

    async fn resume(&self) {
        self.replica_exec(match self.engine {
            Engine::Maria => "START SLAVE SQL_THREAD",
            Engine::Postgres => "SELECT pg_wal_replay_resume()",
        })
        .await
    }

    /// The database `db` as the replica holds it.
    async fn replica_db(&self, db: &Db) -> Db {
        let url = self.on_replica(db.url());
        match db {
            Db::Maria(d) => Db::Maria(support::mysql::TestDb {
                name: d.name.clone(),
                pool: mysql_async::Pool::new(mysql_async::Opts::from_url(&url).unwrap()),
                url,
            }),
            Db::Postgres(d) => Db::Postgres(support::postgres::TestDb {
                name: d.name.clone(),
                client: support::postgres::connect(&url).await,
                server: self.on_replica(&self.server),
                url,
            }),
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for m in mariadb mariadb-replica; do [ -f {0}/$m/mysqld.pid ] && kill $(cat {0}/$m/mysqld.pid) 2>/dev/null; done; \
                 for p in postgres-standby postgres; do [ -d {0}/$p/data ] && runuser -u godwitpg -- /usr/lib/postgresql/15/bin/pg_ctl -D {0}/$p/data -m immediate stop >/dev/null 2>&1; done; \
                 sleep 1; rm -rf {0}",
                self.dir
            ))
            .status();
    }
}

/// Rows added to the case table's 3,000 so that the copy lasts a while.
const MORE: i64 = 30_000;

async fn add_rows(db: &Db) {
    db.exec(&match db.engine() {
        Engine::Maria => format!(
            "INSERT INTO orders (id, v, note) SELECT seq, seq * 7, 'more' FROM seq_3001_to_{MORE}"
        ),
        Engine::Postgres => format!(
            "INSERT INTO orders (id, v, note) SELECT i, i * 7, 'more' FROM generate_series(3001, {MORE}) i"
        ),
    })
    .await;
}

/// Every object of godwit's in `db` (tables and triggers anywhere in it, slots,
/// publications), the phases' state table excepted.
async fn godwit_objects(db: &Db) -> Vec<String> {
    let sql = match db.engine() {
        Engine::Maria => "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%godwit%' AND TABLE_NAME <> '_godwit_migrations' \
             UNION ALL SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE '%godwit%'",
        Engine::Postgres => "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE '%godwit%' AND c.relname NOT LIKE '_godwit_migrations%' \
             UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE '%godwit%' \
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE '%godwit%' \
             UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE '%godwit%'",
    };
    db.strings(sql).await
}

async fn heartbeat(db: &Db) -> Vec<String> {
    let mut v = godwit_objects(db).await;
    v.retain(|o| o.ends_with("_godwit_heartbeat"));
    v
}

/// The replica holds what the primary holds in `orders` (it catches up after the
/// pause) and nothing of godwit's; checked until true, at most a minute.
async fn replica_converges(pair: &Pair, db: &Db) {
    let replica = pair.replica_db(db).await;
    let (want, _) = db.orders_and_mirror().await;
    let q = match db.engine() {
        Engine::Maria => {
            "SELECT CONCAT_WS('|', id, v, IFNULL(note, 'NULL')) FROM orders ORDER BY id"
        }
        Engine::Postgres => {
            "SELECT concat_ws('|', id, v, coalesce(note, 'NULL')) FROM orders ORDER BY id"
        }
    };
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..120 {
        last = (replica.strings(q).await, godwit_objects(&replica).await);
        if last.0 == want && last.1.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "the replica did not converge: {} rows (primary {}), godwit objects {:?}",
        last.0.len(),
        want.len(),
        last.1
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// After the first event from `from_ts` on matching `held`, events up to the release: they span at least
/// one second, and `advance` (a counter of rows written, on some events) stays the same
/// over them — on at least `min` events.
fn assert_held(
    r: &Run,
    from_ts: u64,
    held: impl Fn(&serde_json::Value) -> bool,
    released: impl Fn(&serde_json::Value) -> bool,
    advance: impl Fn(&serde_json::Value) -> Option<u64>,
    min: usize,
) -> serde_json::Value {
    let start = r
        .events
        .iter()
        .position(|e| e["ts_ms"].as_u64() >= Some(from_ts) && held(e))
        .unwrap_or_else(|| panic!("never held:\n{}", r.stdout));
    let end = start
        + r.events[start..]
            .iter()
            .position(&released)
            .unwrap_or_else(|| panic!("never released:\n{}", r.stdout));
    let during = &r.events[start..end];
    let ts = |e: &serde_json::Value| e["ts_ms"].as_u64().unwrap();
    let span = ts(&during[during.len() - 1]) - ts(&during[0]);
    assert!(
        span >= 1000,
        "the hold's events span {span} ms:\n{}",
        r.stdout
    );
    let seen: Vec<u64> = during.iter().filter_map(&advance).collect();
    assert!(seen.len() >= min, "{seen:?}:\n{}", r.stdout);
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "advanced while held: {seen:?}\n{}",
        r.stdout
    );
    // It went on after the release.
    let after: Vec<u64> = r.events[end..].iter().filter_map(&advance).collect();
    assert!(
        after.last() > seen.last(),
        "no progress after the release: {after:?}\n{}",
        r.stdout
    );
    r.events[start].clone()
}

fn run_args<'a>(db: &'a Db, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = support::both::run_args(
        db.url(),
        "ADD COLUMN extra INT",
        &[
            "--ok-to-drop-table",
            "--chunk-size",
            "500",
            "--max-rows-per-second",
            "2500",
        ],
    );
    a.extend_from_slice(extra);
    a
}

/// `godwit run` while the replica's replay is paused mid-copy.
async fn run_held_by_a_paused_replica(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_run").await;
    add_rows(&db).await;
    let writer = MirrorWriter::start(&db, 7).await;
    let replica = pair.replica();
    // MariaDB: the replica found by SHOW SLAVE HOSTS; PostgreSQL: the standby named
    // (its heartbeat read there) besides the walsenders of pg_stat_replication.
    let mut extra = vec!["--max-lag-millis", "500"];
    if pair.engine == Engine::Postgres {
        extra.extend(["--throttle-control-replicas", replica.as_str()]);
    }
    let mut live = LiveRun::start(&run_args(&db, &extra), &[]);
    let copying = live.wait_copied(120, 1).await;
    let paused_at = copying["ts_ms"].as_u64().unwrap();
    pair.pause().await;
    let held = live.wait_state(60, "throttled").await;
    // Two progress events while held, a second apart or more; then resume.
    let t0 = held["ts_ms"].as_u64().unwrap();
    let p1 = live
        .wait_for(60, |e| {
            e["event"] == "progress" && e["ts_ms"].as_u64() > Some(t0)
        })
        .await;
    let t1 = p1["ts_ms"].as_u64().unwrap();
    live.wait_for(60, |e| {
        e["event"] == "progress" && e["ts_ms"].as_u64() >= Some(t1 + 1000)
    })
    .await;
    pair.resume().await;
    let r = live.finish_within(180).await;
    r.expect_ok();
    let ops = writer.stop().await;
    assert!(ops > 0);

    let held = assert_held(
        &r,
        paused_at,
        |e| e["event"] == "state" && e["state"] == "throttled",
        |e| e["event"] == "state" && e["state"] != "throttled",
        |e| (e["event"] == "progress").then(|| e["rows_copied"].as_u64().unwrap()),
        2,
    );
    let reason = held["message"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1") && reason.contains("lag"),
        "{reason}"
    );
    let ev = r
        .event("throttled")
        .unwrap_or_else(|| panic!("no throttled event:\n{}", r.stdout));
    assert_eq!(ev["reason"], reason, "{ev}");
    assert!(
        ev["replica"].as_str().unwrap().contains("127.0.0.1"),
        "{ev}"
    );
    // The copy went on after the release, to the last row.
    let done = r.event("done").unwrap();
    assert!(
        done["rows_copied"].as_u64().unwrap() >= MORE as u64,
        "{done}"
    );

    let (orders, mirror) = db.orders_and_mirror().await;
    assert_eq!(orders.len(), mirror.len());
    assert!(orders == mirror, "orders differs from its mirror");
    assert_eq!(godwit_objects(&db).await, Vec::<String>::new());
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    replica_converges(pair, &db).await;
    db.drop_db().await;
}

const MIGRATION: &str = r#"name = "add flag"

[[operations]]
type = "add_column"
table = "orders"
column = { name = "flag", type = "int" }
up = "1"
"#;

/// The phases' backfill while the replica's replay is paused.
async fn backfill_held_by_a_paused_replica(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_fill").await;
    add_rows(&db).await;
    let name = db.url().rsplit_once('/').unwrap().1.to_string();
    let (dir, d) = support::phases::write_migration(&name, "0001_add_flag.toml", MIGRATION);
    let mut live = LiveRun::start(
        &[
            "migrate",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--batch-size",
            "500",
            "--max-rows-per-second",
            "2500",
            "--max-lag-millis",
            "500",
        ],
        &[],
    );
    let filling = live.wait_backfilled(120, 1).await;
    let paused_at = filling["ts_ms"].as_u64().unwrap();
    pair.pause().await;
    let held = live.wait_for(60, |e| e["event"] == "throttled").await;
    // The backfill says `throttled` once per cause: give the hold a while, then resume.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resumed_at = now_ms();
    pair.resume().await;
    let r = live.finish_within(180).await;
    r.expect_ok();
    // No batch between the hold and the resume; batches after it.
    let t0 = held["ts_ms"].as_u64().unwrap();
    let batches = |from: u64, to: u64| {
        r.events
            .iter()
            .filter(|e| {
                e["event"] == "backfill_progress"
                    && e["ts_ms"].as_u64().is_some_and(|t| t > from && t < to)
            })
            .count()
    };
    assert_eq!(
        batches(t0, resumed_at),
        0,
        "batches while held:\n{}",
        r.stdout
    );
    assert!(batches(resumed_at, u64::MAX) > 0, "{}", r.stdout);
    assert!(t0 >= paused_at);
    let reason = held["reason"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1") && reason.contains("lag"),
        "{reason}"
    );
    // Every row backfilled; the heartbeat table is gone (the expand's triggers and the
    // state table stay until the contract).
    assert_eq!(db.count("flag IS NULL").await, 0);
    assert_eq!(db.count("flag = 1").await, MORE as usize);
    assert_eq!(heartbeat(&db).await, Vec::<String>::new());
    let replica = pair.replica_db(&db).await;
    for _ in 0..120 {
        if replica.count("flag = 1").await == MORE as usize && heartbeat(&replica).await.is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(replica.count("flag = 1").await, MORE as usize);
    assert_eq!(heartbeat(&replica).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A replica given that cannot be reached holds the copy (reason: it cannot be read);
/// SIGTERM ends the run: exit 30, everything removed, the table unchanged.
async fn unreachable_replica_holds_until_sigterm(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_gone").await;
    let before = db.snapshot().await;
    let mut live = LiveRun::start(
        &run_args(&db, &["--throttle-control-replicas", "127.0.0.1:1"]),
        &[],
    );
    let held = live.wait_state(60, "throttled").await;
    let reason = held["message"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1:1") && reason.contains("cannot be read"),
        "{reason}"
    );
    // Still held a while later.
    let t0 = held["ts_ms"].as_u64().unwrap();
    live.wait_for(60, |e| {
        e["event"] == "progress" && e["ts_ms"].as_u64() >= Some(t0 + 1000)
    })
    .await;
    live.signal(15);
    let r = live.finish_within(180).await;
    assert_eq!(r.code, 30, "{}\n{}", r.stdout, r.stderr);
    assert!(
        !r.events
            .iter()
            .any(|e| e["event"] == "progress" && e["rows_copied"].as_u64() > Some(0)),
        "rows were copied: {}",
        r.stdout
    );
    assert!(!r.stderr.contains("password"), "{}", r.stderr);
    assert_eq!(db.snapshot().await, before);
    assert_eq!(godwit_objects(&db).await, Vec::<String>::new());
    db.drop_db().await;
}

/// `godwit cleanup` lists (and with --execute drops) a heartbeat table that killed runs
/// left, and never one a live run writes to.
async fn cleanup_removes_a_stale_heartbeat(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_clean").await;
    let (create, stale, fresh) = match db.engine() {
        Engine::Maria => (
            "CREATE TABLE _godwit_heartbeat (run_id VARCHAR(96) PRIMARY KEY, ts DATETIME(6) NOT NULL)",
            "INSERT INTO _godwit_heartbeat VALUES ('dead', UTC_TIMESTAMP(6) - INTERVAL 5 MINUTE)",
            "INSERT INTO _godwit_heartbeat VALUES ('live', UTC_TIMESTAMP(6))",
        ),
        Engine::Postgres => (
            "CREATE TABLE _godwit_heartbeat (run_id text PRIMARY KEY, ts timestamptz NOT NULL)",
            "INSERT INTO _godwit_heartbeat VALUES ('dead', clock_timestamp() - interval '5 minutes')",
            "INSERT INTO _godwit_heartbeat VALUES ('live', clock_timestamp())",
        ),
    };
    db.exec(create).await;
    db.exec(fresh).await;
    db.exec(stale).await;
    let cleanup = |execute: bool| {
        let url = db.url().to_string();
        async move {
            let mut args = vec![
                "cleanup", "--url", &url, "--table", "orders", "--format", "json",
            ];
            if execute {
                args.push("--execute");
            }
            let r = support::godwit(&args, &[]).await;
            r.expect_ok();
            r.event("cleanup").unwrap()["objects"].clone()
        }
    };
    // A run wrote a moment ago: not a leftover.
    assert_eq!(cleanup(true).await, serde_json::json!([]));
    assert_eq!(heartbeat(&db).await.len(), 1);
    db.exec("DELETE FROM _godwit_heartbeat WHERE run_id = 'live'")
        .await;
    let listed = cleanup(false).await;
    assert!(listed.to_string().contains("_godwit_heartbeat"), "{listed}");
    assert_eq!(heartbeat(&db).await.len(), 1);
    assert_eq!(cleanup(true).await, listed);
    assert_eq!(heartbeat(&db).await, Vec::<String>::new());
    db.drop_db().await;
}

/// Two runs on two tables of one database share the heartbeat table: the one that ends
/// first leaves it to the other, the last one removes it; both succeed.
async fn two_runs_share_the_heartbeat(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_two").await;
    add_rows(&db).await;
    db.exec("CREATE TABLE small (id BIGINT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))")
        .await;
    db.exec("INSERT INTO small SELECT id, v, note FROM orders WHERE id <= 3000")
        .await;
    let mut long_args = run_args(&db, &[]);
    let rate = long_args.iter().position(|a| *a == "2500").unwrap();
    long_args[rate] = "1500";
    let mut long = LiveRun::start(&long_args, &[]);
    long.wait_copied(120, 1).await;
    let mut short_args = run_args(&db, &[]);
    short_args[4] = "small";
    let short = support::godwit(&short_args, &[]).await;
    short.expect_ok();
    // The long run still writes its heartbeat: the table stays.
    assert!(
        long.wait_until(0, |e| e["event"] == "done").await.is_none(),
        "the long run ended first"
    );
    assert_eq!(
        heartbeat(&db).await.len(),
        1,
        "the first run to end dropped it"
    );
    let r = long.finish_within(180).await;
    r.expect_ok();
    assert_eq!(godwit_objects(&db).await, Vec::<String>::new());
    db.drop_db().await;
}

/// PostgreSQL with a FOR ALL TABLES publication (which would send a heartbeat table to
/// subscribers that lack it): no heartbeat table; a named standby's paused replay still
/// holds the backfill (its replay position read on it), and the backfill finishes.
async fn pg_all_tables_publication_no_heartbeat_table(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_pub").await;
    add_rows(&db).await;
    db.exec("CREATE PUBLICATION lag_all FOR ALL TABLES").await;
    let name = db.url().rsplit_once('/').unwrap().1.to_string();
    let (dir, d) = support::phases::write_migration(&name, "0001_add_flag.toml", MIGRATION);
    let replica = pair.replica();
    let mut live = LiveRun::start(
        &[
            "migrate",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--batch-size",
            "500",
            "--max-rows-per-second",
            "2500",
            "--max-lag-millis",
            "500",
            "--throttle-control-replicas",
            &replica,
        ],
        &[],
    );
    live.wait_backfilled(120, 1).await;
    pair.pause().await;
    let held = live.wait_for(60, |e| e["event"] == "throttled").await;
    let reason = held["reason"].as_str().unwrap().to_string();
    // Named by the reading on the standby (`host:port`) or, when the primary's
    // pg_stat_replication saw the lag first (a loaded machine), by its address and
    // application name: the same standby either way.
    let host = replica
        .rsplit_once(':')
        .map_or(replica.as_str(), |(h, _)| h);
    assert!(
        (reason.contains(&replica) || reason.contains(&format!("{host} (")))
            && reason.contains("lag"),
        "{reason}"
    );
    assert_eq!(heartbeat(&db).await, Vec::<String>::new());
    pair.resume().await;
    let r = live.finish_within(180).await;
    r.expect_ok();
    assert_eq!(db.count("flag = 1").await, MORE as usize);
    assert_eq!(heartbeat(&db).await, Vec::<String>::new());
    db.exec("DROP PUBLICATION lag_all").await;
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// The backfill held by a replica that cannot be reached: SIGTERM stops it (exit 30,
/// resumable) and the heartbeat, there while it ran, is removed.
async fn backfill_unreachable_replica_sigterm(pair: &Pair) {
    let db = Db::new_on(pair.engine, &pair.server, "lag_fgone").await;
    let name = db.url().rsplit_once('/').unwrap().1.to_string();
    let (dir, d) = support::phases::write_migration(&name, "0001_add_flag.toml", MIGRATION);
    let mut live = LiveRun::start(
        &[
            "migrate",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--throttle-control-replicas",
            "127.0.0.1:1",
        ],
        &[],
    );
    let held = live.wait_for(60, |e| e["event"] == "throttled").await;
    let reason = held["reason"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1:1") && reason.contains("cannot be read"),
        "{reason}"
    );
    assert_eq!(heartbeat(&db).await.len(), 1, "no heartbeat while running");
    live.signal(15);
    let r = live.finish_within(180).await;
    assert_eq!(r.code, 30, "{}\n{}", r.stdout, r.stderr);
    assert!(r.event("backfill_progress").is_none(), "{}", r.stdout);
    assert_eq!(db.count("flag IS NOT NULL").await, 0);
    assert_eq!(heartbeat(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn case(engine: Engine) {
    let pair = Pair::start(engine);
    run_held_by_a_paused_replica(&pair).await;
    backfill_held_by_a_paused_replica(&pair).await;
    unreachable_replica_holds_until_sigterm(&pair).await;
    cleanup_removes_a_stale_heartbeat(&pair).await;
    two_runs_share_the_heartbeat(&pair).await;
    backfill_unreachable_replica_sigterm(&pair).await;
    if engine == Engine::Postgres {
        pg_all_tables_publication_no_heartbeat_table(&pair).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_replica_lag_holds_copy_and_backfill() {
    case(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_standby_lag_holds_copy_and_backfill() {
    case(Engine::Postgres).await;
}
