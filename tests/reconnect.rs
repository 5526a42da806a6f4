//! Lost connections during `godwit run` (docs/how-it-works.md, "Lost connections"): the
//! change stream's or the copy's connection is killed mid-copy while writers change the
//! table (every write mirrored into a twin table in the same transaction). godwit
//! reconnects and the result equals the mirror; with `--reconnect-timeout-seconds 0` the
//! same kill ends the run with exit 10, the original unchanged. Nothing of godwit's is
//! left either way (tables, slots, publications).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{LiveRun, Run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The binlog dump thread (MySQL/MariaDB); the backend reading the slot (PostgreSQL).
    Stream,
    /// The copy's connection(s).
    Copier,
}

struct Case {
    name: &'static str,
    victim: Victim,
    reconnect_timeout: &'static str,
    /// Exit 0 and equal to the mirror; otherwise exit 10 with the original unchanged.
    reconnects: bool,
}

const CASES: [Case; 3] = [
    Case {
        name: "stream killed mid-copy",
        victim: Victim::Stream,
        reconnect_timeout: "60",
        reconnects: true,
    },
    Case {
        name: "copier killed mid-copy",
        victim: Victim::Copier,
        reconnect_timeout: "60",
        reconnects: true,
    },
    Case {
        name: "stream killed, --reconnect-timeout-seconds 0",
        victim: Victim::Stream,
        reconnect_timeout: "0",
        reconnects: false,
    },
];

/// Rows at start, and the copy's pace: the copy takes several seconds, so a kill lands
/// in it.
const ROWS: u64 = 12_000;
const RATE: &str = "2000";

fn run_args<'a>(url: &'a str, table: &'a str, alter: &'a str, case: &'a Case) -> Vec<&'a str> {
    vec![
        "run",
        "--url",
        url,
        "--table",
        table,
        "--alter",
        alter,
        "--execute",
        "--ok-to-drop-table",
        "--format",
        "json",
        "--chunk-size",
        "100",
        "--max-rows-per-second",
        RATE,
        "--reconnect-timeout-seconds",
        case.reconnect_timeout,
    ]
}

/// Wait until the copy runs (a first progress event in the copy state).
async fn wait_for_copy(live: &mut LiveRun) {
    live.wait_for(60, |v| v["event"] == "state" && v["state"] == "copy")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// What every case checks about the run itself.
fn check_run(case: &Case, run: &Run) {
    if case.reconnects {
        assert_eq!(
            run.code, 0,
            "{}: expected success\nstdout:\n{}\nstderr:\n{}",
            case.name, run.stdout, run.stderr
        );
        let restored = run
            .events
            .iter()
            .any(|e| e["event"] == "reconnect" && e["status"] == "restored");
        assert!(
            restored,
            "{}: no reconnect event; stdout:\n{}",
            case.name, run.stdout
        );
        assert!(
            run.stderr.contains("lost the connection"),
            "{}: no WARN line about the lost connection; stderr:\n{}",
            case.name,
            run.stderr
        );
    } else {
        assert_eq!(
            run.code, 10,
            "{}: expected exit 10\nstdout:\n{}\nstderr:\n{}",
            case.name, run.stdout, run.stderr
        );
        let err = run.event("error").expect("an error event");
        let msg = err["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("--reconnect-timeout-seconds is 0"),
            "{}: the message does not say why it did not reconnect: {msg}",
            case.name
        );
    }
}

mod mysql {
    use super::*;
    use mysql_async::prelude::Queryable;
    use support::mysql::*;

    /// Kill godwit's connection of `victim` once (polling the process list); returns the
    /// connection ids killed.
    async fn kill(db: &TestDb, victim: Victim) -> Vec<u64> {
        let sql = match victim {
            Victim::Stream => "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'".to_string(),
            // The copy statement is only seen while it runs: poll until one is caught.
            Victim::Copier => format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'INSERT IGNORE INTO %godwit\\_new%'",
                db.name
            ),
        };
        let mut c = db.conn().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            let ids: Vec<u64> = c.query(&sql).await.unwrap();
            if !ids.is_empty() {
                for id in &ids {
                    let _ = c.query_drop(format!("KILL {id}")).await;
                }
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("no {victim:?} connection of godwit's found to kill");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lost_connections() {
        for case in &CASES {
            let db = TestDb::new("reconn").await;
            create_orders(&db, "orders", ROWS).await;
            db.exec("CREATE TABLE mirror LIKE orders").await;
            db.exec("INSERT INTO mirror SELECT * FROM orders").await;
            let writers = Writers::start(&db, "orders", "mirror", 4, ROWS);
            let alter = "ADD COLUMN shipped_at DATETIME NULL";
            let mut live = LiveRun::start(&run_args(&db.url, "orders", alter, case), &[]);
            wait_for_copy(&mut live).await;
            let killed = kill(&db, case.victim).await;
            let run = live.finish().await;
            let stats = writers.stop().await;
            assert!(
                stats.errors.is_empty(),
                "{}: writer errors: {:?}",
                case.name,
                stats.errors
            );
            check_run(case, &run);
            assert!(!killed.is_empty());
            let a = db.rows("mirror", ORDERS_COLS, "id").await;
            let b = db.rows("orders", ORDERS_COLS, "id").await;
            assert_eq!(a.len(), b.len(), "{}: row counts differ", case.name);
            assert!(a == b, "{}: the table differs from the mirror", case.name);
            let shipped: Vec<u64> = db
                .query(&format!(
                    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'shipped_at'",
                    db.name
                ))
                .await;
            assert_eq!(
                shipped,
                vec![u64::from(case.reconnects)],
                "{}: new column present = migrated",
                case.name
            );
            if !case.reconnects {
                // Stopped because the server was gone: the run stays resumable (its
                // shadow and checkpoint are kept) until `godwit cleanup` removes them.
                let left = db.leftovers(&[]).await;
                assert!(
                    left.iter().any(|t| t == "_godwit_checkpoint"),
                    "{}: not resumable: {left:?}",
                    case.name
                );
                support::godwit(
                    &[
                        "cleanup",
                        "--url",
                        &db.url,
                        "--table",
                        "orders",
                        "--execute",
                    ],
                    &[],
                )
                .await
                .expect_ok();
            }
            let left = db.leftovers(&[]).await;
            assert!(left.is_empty(), "{}: left behind: {left:?}", case.name);
            db.drop_db().await;
        }
    }

    /// The network cut for longer than `--reconnect-timeout-seconds`: exit 10 saying how
    /// long godwit tried, the original unchanged; what could not be removed without the
    /// server is removed by `godwit cleanup` once it answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn network_cut_longer_than_the_timeout() {
        let db = TestDb::new("reconn_gone").await;
        create_orders(&db, "orders", ROWS).await;
        db.exec("CREATE TABLE mirror LIKE orders").await;
        db.exec("INSERT INTO mirror SELECT * FROM orders").await;
        let writers = Writers::start(&db, "orders", "mirror", 4, ROWS);
        let proxy = support::proxy::Proxy::start(&support::proxy::host_port(&db.url)).await;
        let url = proxy.url(&db.url);
        let case = Case {
            name: "network gone for good",
            victim: Victim::Stream,
            reconnect_timeout: "2",
            reconnects: false,
        };
        let alter = "ADD COLUMN shipped_at DATETIME NULL";
        let mut live = LiveRun::start(&run_args(&url, "orders", alter, &case), &[]);
        wait_for_copy(&mut live).await;
        proxy.cut();
        let run = live.finish().await;
        let stats = writers.stop().await;
        assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
        assert_eq!(
            run.code, 10,
            "stdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        let msg = run.event("error").unwrap()["message"].to_string();
        assert!(
            msg.contains("gave up after reconnecting for")
                && msg.contains("--reconnect-timeout-seconds 2"),
            "{msg}"
        );
        assert!(run
            .events
            .iter()
            .any(|e| e["event"] == "reconnect" && e["status"] == "retrying"));
        let a = db.rows("mirror", ORDERS_COLS, "id").await;
        let b = db.rows("orders", ORDERS_COLS, "id").await;
        assert!(a == b, "the original differs from the mirror");
        let cleanup = support::godwit(
            &[
                "cleanup",
                "--url",
                &db.url,
                "--table",
                "orders",
                "--execute",
            ],
            &[],
        )
        .await;
        cleanup.expect_ok();
        let left = db.leftovers(&[]).await;
        assert!(left.is_empty(), "left behind: {left:?}");
        db.drop_db().await;
    }

    /// Every connection of godwit's dropped at once mid-copy, and new ones refused for a
    /// second (the network, or a server restart).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn short_network_cut_mid_copy() {
        let db = TestDb::new("reconn_cut").await;
        create_orders(&db, "orders", ROWS).await;
        db.exec("CREATE TABLE mirror LIKE orders").await;
        db.exec("INSERT INTO mirror SELECT * FROM orders").await;
        let writers = Writers::start(&db, "orders", "mirror", 4, ROWS);
        let proxy = support::proxy::Proxy::start(&support::proxy::host_port(&db.url)).await;
        let url = proxy.url(&db.url);
        let case = &CASES[0];
        let alter = "ADD COLUMN shipped_at DATETIME NULL";
        let mut live = LiveRun::start(&run_args(&url, "orders", alter, case), &[]);
        wait_for_copy(&mut live).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.restore();
        let run = live.finish().await;
        let stats = writers.stop().await;
        assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
        check_run(case, &run);
        let a = db.rows("mirror", ORDERS_COLS, "id").await;
        let b = db.rows("orders", ORDERS_COLS, "id").await;
        assert_eq!(a.len(), b.len(), "row counts differ");
        assert!(a == b, "the table differs from the mirror");
        let left = db.leftovers(&[]).await;
        assert!(left.is_empty(), "left behind: {left:?}");
        db.drop_db().await;
    }
}

mod postgres {
    use super::*;
    use support::postgres::TestDb;
    use tokio_postgres::Client;

    async fn one_write(
        c: &mut Client,
        op: u32,
        id: i64,
        val: i32,
    ) -> Result<(), tokio_postgres::Error> {
        let tx = c.transaction().await?;
        let pick = tx
            .query_opt(
                "SELECT id FROM t WHERE id >= $1 ORDER BY id LIMIT 1 FOR UPDATE",
                &[&id],
            )
            .await?
            .map(|r| r.get::<_, i64>(0));
        match (op, pick) {
            (0, _) | (_, None) => {
                let id: i64 = tx
                    .query_one("INSERT INTO t (v, pad) VALUES ($1::int, repeat('p', $1::int % 100)) RETURNING id", &[&val])
                    .await?
                    .get(0);
                tx.execute(
                    "INSERT INTO mirror (id, v, pad) VALUES ($1, $2::int, repeat('p', $2::int % 100))",
                    &[&id, &val],
                )
                .await?;
            }
            (1, Some(id)) => {
                tx.execute("UPDATE t SET v = $2::int WHERE id = $1::int8", &[&id, &val])
                    .await?;
                tx.execute(
                    "UPDATE mirror SET v = $2::int WHERE id = $1::int8",
                    &[&id, &val],
                )
                .await?;
            }
            (2, Some(id)) => {
                tx.execute("DELETE FROM t WHERE id = $1", &[&id]).await?;
                tx.execute("DELETE FROM mirror WHERE id = $1", &[&id])
                    .await?;
            }
            (_, Some(id)) => {
                let new: i64 = tx
                    .query_one(
                        "UPDATE t SET id = nextval('t_id_seq') WHERE id = $1 RETURNING id",
                        &[&id],
                    )
                    .await?
                    .get(0);
                tx.execute("UPDATE mirror SET id = $2 WHERE id = $1", &[&id, &new])
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Terminate godwit's backends named `app`; returns how many.
    async fn kill(db: &TestDb, app: &str) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            let n = db
                .client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
                    &[&app],
                )
                .await
                .unwrap()
                .len();
            if n > 0 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no backend named {app:?} found to terminate");
    }

    struct Writers {
        stop: Arc<AtomicBool>,
        ops: Arc<AtomicU64>,
        tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
    }

    async fn setup(prefix: &str) -> (TestDb, Writers) {
        let db = TestDb::new(prefix).await;
        db.exec(&format!(
            "CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL, pad text); \
             INSERT INTO t (v, pad) SELECT i, repeat('x', i % 200) FROM generate_series(1, {ROWS}) i; \
             CREATE TABLE mirror (id bigint PRIMARY KEY, v int NOT NULL, pad text); \
             INSERT INTO mirror SELECT * FROM t;"
        ))
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let (url, stop, ops) = (db.url.clone(), stop.clone(), ops.clone());
            tasks.push(tokio::spawn(async move {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(w * 7919 + 1);
                let mut c = support::postgres::connect(&url).await;
                let mut errors = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let op = rng.random_range(0..4u32);
                    let id = rng.random_range(1..(ROWS as i64 + 2000));
                    let val = rng.random_range(0..1_000_000i32);
                    match one_write(&mut c, op, id, val).await {
                        Ok(()) => {
                            ops.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e)
                            if e.code()
                                == Some(
                                    &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
                                ) => {}
                        Err(e) => errors.push(format!("{e:?}")),
                    }
                }
                errors
            }));
        }
        (db, Writers { stop, ops, tasks })
    }

    /// Stop the writers, then: the table equals the mirror, `v` has type `ty` (bigint
    /// once migrated), nothing of godwit's is left.
    async fn check(name: &str, db: &TestDb, writers: Writers, ty: &str) {
        writers.stop.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        for w in writers.tasks {
            errors.extend(w.await.unwrap());
        }
        assert!(errors.is_empty(), "{name}: writer errors: {errors:?}");
        assert!(writers.ops.load(Ordering::SeqCst) > 0, "{name}: no writes");
        let got = db.rows("t", "id, v, pad", "id").await;
        let want = db.rows("mirror", "id, v, pad", "id").await;
        assert_eq!(got.len(), want.len(), "{name}: row counts differ");
        assert!(got == want, "{name}: the table differs from the mirror");
        let have = db
            .strings("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'v'")
            .await;
        assert_eq!(have, vec![ty], "{name}");
        assert_eq!(db.leftovers().await, Vec::<String>::new(), "{name}");
    }

    const ALTER: &str = "ALTER COLUMN v TYPE bigint, ADD COLUMN note text DEFAULT 'n'";

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lost_connections() {
        for case in &CASES {
            let (db, writers) = setup("pg_reconn").await;
            let mut live = LiveRun::start(&run_args(&db.url, "t", ALTER, case), &[]);
            wait_for_copy(&mut live).await;
            let killed = match case.victim {
                Victim::Stream => kill(&db, "godwit stream").await,
                Victim::Copier => kill(&db, "godwit copy").await,
            };
            let run = live.finish().await;
            check_run(case, &run);
            assert!(killed > 0);
            if !case.reconnects {
                // Stopped with exit 10, what it made kept for a rerun to resume; removed
                // here instead, the original unchanged.
                assert!(
                    !db.leftovers().await.is_empty(),
                    "{}: nothing kept to resume",
                    case.name
                );
                support::godwit(
                    &["cleanup", "--url", &db.url, "--table", "t", "--execute"],
                    &[],
                )
                .await
                .expect_ok();
            }
            let ty = if case.reconnects { "bigint" } else { "integer" };
            check(case.name, &db, writers, ty).await;
            db.drop_db().await;
        }
    }

    /// The main session (the replay, which parks keys during the copy; the runner lock)
    /// terminated during the copy: a new one takes the runner lock again, the keys parked
    /// so far are still in their table, and the run ends equal to the mirror.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn main_session_lost_during_the_copy() {
        let (db, writers) = setup("pg_reconn_main_copy").await;
        let mut live = LiveRun::start(&run_args(&db.url, "t", ALTER, &CASES[0]), &[]);
        wait_for_copy(&mut live).await;
        assert!(kill(&db, "godwit main").await > 0);
        live.wait_for(60, |v| {
            v["event"] == "reconnect" && v["status"] == "restored"
        })
        .await;
        let run = live.finish().await;
        run.expect_ok();
        // Lost and restored during the copy, not after it.
        let at = |f: &dyn Fn(&serde_json::Value) -> bool| run.events.iter().position(f);
        let restored = at(&|e| e["event"] == "reconnect" && e["status"] == "restored");
        let catch_up = at(&|e| e["event"] == "state" && e["state"] == "catch_up");
        assert!(
            restored.is_some() && restored < catch_up,
            "{}\n{}",
            run.stdout,
            run.stderr
        );
        check("main session lost during the copy", &db, writers, "bigint").await;
        db.drop_db().await;
    }

    /// The main session (replay after the copy, the runner lock) terminated while the
    /// cut-over is postponed: a new one takes the runner lock again and the replay goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn main_session_lost_after_the_copy() {
        let (db, writers) = setup("pg_reconn_main").await;
        let flag = std::env::temp_dir().join(format!("godwit-reconnect-{}", db.name));
        std::fs::write(&flag, b"").unwrap();
        let flag_s = flag.to_string_lossy().to_string();
        let mut args = run_args(&db.url, "t", ALTER, &CASES[0]);
        args.extend(["--postpone-cut-over-flag-file", flag_s.as_str()]);
        let mut live = LiveRun::start(&args, &[]);
        live.wait_for(120, |v| v["event"] == "state" && v["state"] == "postponed")
            .await;
        assert!(kill(&db, "godwit main").await > 0);
        // Flushes run every half second while postponed: the next one reconnects.
        live.wait_for(60, |v| {
            v["event"] == "reconnect" && v["status"] == "restored"
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::remove_file(&flag).unwrap();
        let run = live.finish().await;
        run.expect_ok();
        check("main session lost", &db, writers, "bigint").await;
        db.drop_db().await;
    }

    /// Wait until no session holds the table's runner lock (the server ends the session
    /// of a killed or finished godwit a moment after the process is gone).
    async fn wait_runner_lock_free(db: &TestDb) {
        let key = godwit::engine::postgres::runner_lock_key(&db.name, "public", "t");
        for _ in 0..200 {
            let got: bool = db
                .client
                .query_one("SELECT pg_try_advisory_lock(1735353463, $1)", &[&key])
                .await
                .unwrap()
                .get(0);
            if got {
                db.client
                    .execute("SELECT pg_advisory_unlock(1735353463, $1)", &[&key])
                    .await
                    .unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the runner lock stayed taken");
    }

    /// The slot is persistent now: a godwit killed with SIGKILL leaves it (nothing else
    /// can drop it) with the rest it made and its checkpoint, `godwit cleanup` lists and
    /// drops them all, and the next run on the table resumes from what is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_killed_runs_slot_is_removed_by_cleanup_or_the_next_run() {
        let (db, writers) = setup("pg_reconn_kill").await;
        let slot = |v: &[String]| v.iter().any(|l| l.starts_with("slot "));
        for cleanup_first in [true, false] {
            wait_runner_lock_free(&db).await;
            let mut live = LiveRun::start(&run_args(&db.url, "t", ALTER, &CASES[0]), &[]);
            wait_for_copy(&mut live).await;
            support::phases::signal(live.pid(), 9);
            live.finish().await;
            assert!(slot(&db.leftovers().await), "{:?}", db.leftovers().await);
            if cleanup_first {
                let listed = support::godwit(
                    &[
                        "cleanup", "--url", &db.url, "--table", "t", "--format", "json",
                    ],
                    &[],
                )
                .await;
                for what in ["replication slot _godwit_slot_", "_godwit_park_t"] {
                    assert!(listed.stdout.contains(what), "{what}: {}", listed.stdout);
                }
                assert!(
                    slot(&db.leftovers().await),
                    "a dry cleanup removed something"
                );
                // While a run holds the table's runner lock, nothing is removed (the
                // slot is in use only while it is read: that alone does not tell).
                let key = godwit::engine::postgres::runner_lock_key(&db.name, "public", "t");
                let holder = db.conn().await;
                holder
                    .execute("SELECT pg_advisory_lock(1735353463, $1)", &[&key])
                    .await
                    .unwrap();
                let refused = support::godwit(
                    &["cleanup", "--url", &db.url, "--table", "t", "--execute"],
                    &[],
                )
                .await;
                assert_eq!(refused.code, 20, "{}", refused.stderr);
                assert!(
                    slot(&db.leftovers().await),
                    "removed while a run held the lock"
                );
                holder
                    .execute("SELECT pg_advisory_unlock(1735353463, $1)", &[&key])
                    .await
                    .unwrap();
                let done = support::godwit(
                    &["cleanup", "--url", &db.url, "--table", "t", "--execute"],
                    &[],
                )
                .await;
                done.expect_ok();
                assert_eq!(db.leftovers().await, Vec::<String>::new());
            }
        }
        // The second kill's slot, shadow and parked keys are taken over by the next run.
        wait_runner_lock_free(&db).await;
        let run = db.migrate("t", ALTER, &[]).await;
        run.expect_ok();
        let resume = run.event("resume").expect("a resume event");
        assert_eq!(resume["stage"], "copy", "{resume}");
        check("killed run", &db, writers, "bigint").await;
        db.drop_db().await;
    }

    /// Every connection of godwit's dropped at once after the copy (while postponed), and
    /// new ones refused for a second: stream, main session and replay come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn short_network_cut_after_the_copy() {
        let (db, writers) = setup("pg_reconn_cut").await;
        let proxy = support::proxy::Proxy::start(&support::proxy::host_port(&db.url)).await;
        let url = proxy.url(&db.url);
        let flag = std::env::temp_dir().join(format!("godwit-reconnect-{}", db.name));
        std::fs::write(&flag, b"").unwrap();
        let flag_s = flag.to_string_lossy().to_string();
        let mut args = run_args(&url, "t", ALTER, &CASES[0]);
        args.extend(["--postpone-cut-over-flag-file", flag_s.as_str()]);
        let mut live = LiveRun::start(&args, &[]);
        live.wait_for(120, |v| v["event"] == "state" && v["state"] == "postponed")
            .await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.restore();
        live.wait_for(60, |v| {
            v["event"] == "reconnect" && v["status"] == "restored"
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::remove_file(&flag).unwrap();
        let run = live.finish().await;
        run.expect_ok();
        check("network cut", &db, writers, "bigint").await;
        db.drop_db().await;
    }
}
