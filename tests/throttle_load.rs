//! Load counters of `--max-load` / `--critical-load` on both engines: an unknown counter
//! is refused at start (exit 2, nothing created) by `run` and by the phase commands, and
//! a threshold that is exceeded really holds the copy until the load goes away.
//!
//! The load a test controls is a lock wait it creates and ends itself (MariaDB:
//! `Innodb_row_lock_current_waits`, PostgreSQL: `waiting`), so nothing depends on timing.

mod support;
use std::time::Duration;
use support::{godwit, LiveRun, Run};

/// Wait (bounded) until `probe` returns true.
async fn until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The run's exit, at most two minutes away.
async fn finish(live: LiveRun) -> Run {
    tokio::time::timeout(Duration::from_secs(120), live.finish())
        .await
        .expect("godwit did not finish within 2 minutes")
}

fn assert_bad_counter(r: &Run, counter: &str, flag: &str) {
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let err = r.event("error").unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(err["kind"], "bad_input", "{err}");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(&format!("`{counter}`")), "{msg}");
    assert!(msg.starts_with(flag), "{msg}");
}

/// The throttled state came with a reason naming `counter`, before any row was copied, and
/// the copy went on after it.
fn assert_held_then_resumed(r: &Run, counter: &str) {
    let held = r
        .events
        .iter()
        .position(|e| e["event"] == "state" && e["state"] == "throttled")
        .unwrap_or_else(|| panic!("never throttled:\n{}", r.stdout));
    let reason = r.events[held]["message"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{counter}=")) && reason.contains("--max-load"),
        "{reason}"
    );
    let copied_before = r.events[..held]
        .iter()
        .any(|e| e["event"] == "progress" && e["rows_copied"].as_u64() > Some(0));
    assert!(!copied_before, "rows were copied before the hold");
    let states = r.states();
    let after: Vec<&String> = states
        .iter()
        .skip_while(|s| *s != "throttled")
        .skip_while(|s| *s == "throttled")
        .collect();
    assert_eq!(
        after.first().map(|s| s.as_str()),
        Some("copy"),
        "{states:?}"
    );
}

const MIGRATION: &str = r#"name = "add flag"

[[operations]]
type = "add_column"
table = "orders"
column = { name = "flag", type = "int" }
up = "1"
"#;

mod mariadb {
    use super::*;
    use mysql_async::prelude::Queryable;
    use support::mysql::*;

    fn run_args<'a>(db: &'a TestDb, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "run",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN x INT",
            "--execute",
            "--format",
            "json",
        ];
        a.extend_from_slice(extra);
        a
    }

    #[tokio::test]
    async fn unknown_counter_is_refused_before_anything_is_created() {
        let db = TestDb::new("load_my_bad").await;
        create_orders(&db, "orders", 200).await;
        let before = db.rows("orders", ORDERS_COLS, "id").await;
        let create = db.show_create("orders").await;
        for (flag, value, counter) in [
            (
                "--max-load",
                "Threads_running=50,Threads_runing=5",
                "Threads_runing",
            ),
            ("--critical-load", "waiting=1", "waiting"),
            ("--max-load", "Ssl_cipher=1", "Ssl_cipher"),
        ] {
            let r = godwit(&run_args(&db, &[flag, value]), &[]).await;
            assert_bad_counter(&r, counter, flag);
            assert!(
                r.event("error").unwrap()["hint"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("SHOW GLOBAL STATUS"),
                "{}",
                r.stdout
            );
            assert!(db.leftovers(&[]).await.is_empty(), "created something");
        }
        // The phase commands refuse it the same way, before the state table exists.
        let (dir, d) = support::phases::write_migration(&db.name, "0001_add_flag.toml", MIGRATION);
        let r = godwit(
            &[
                "migrate",
                &d,
                "--url",
                &db.url,
                "--execute",
                "--format",
                "json",
                "--max-load",
                "No_such_counter=1",
            ],
            &[],
        )
        .await;
        assert_bad_counter(&r, "No_such_counter", "--max-load");
        let all_godwit: Vec<String> = db
            .query(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME LIKE '\\_godwit%'",
                db.name
            ))
            .await;
        assert!(all_godwit.is_empty(), "created: {all_godwit:?}");
        assert_eq!(db.show_create("orders").await, create);
        assert_eq!(db.rows("orders", ORDERS_COLS, "id").await, before);
        std::fs::remove_dir_all(dir).ok();
        db.drop_db().await;
    }

    async fn row_lock_waits(db: &TestDb) -> u64 {
        let v: Vec<(String, u64)> = db
            .query("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_current_waits'")
            .await;
        v[0].1
    }

    /// A row lock wait the test holds makes `Innodb_row_lock_current_waits` 1: the copy
    /// waits, with the counter as the reason, and finishes once the wait is over.
    #[tokio::test(flavor = "multi_thread")]
    async fn max_load_holds_until_the_row_lock_wait_ends() {
        let db = TestDb::new("load_my_hold").await;
        create_orders(&db, "orders", 1000).await;
        db.exec("CREATE TABLE gate (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO gate VALUES (1, 0)")
            .await;
        let mut holder = db.conn().await;
        holder.query_drop("BEGIN").await.unwrap();
        holder
            .query_drop("SELECT v FROM gate WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();
        let mut waiter = db.conn().await;
        let waiting = tokio::spawn(async move {
            waiter
                .query_drop("SET SESSION innodb_lock_wait_timeout = 300")
                .await
                .unwrap();
            waiter
                .query_drop("UPDATE gate SET v = v + 1 WHERE id = 1")
                .await
                .unwrap();
        });
        until("the row lock wait", || async {
            row_lock_waits(&db).await >= 1
        })
        .await;

        let mut live = LiveRun::start(
            &run_args(&db, &["--max-load", "Innodb_row_lock_current_waits=0"]),
            &[],
        );
        live.wait_for(60, |e| e["event"] == "state" && e["state"] == "throttled")
            .await;
        holder.query_drop("COMMIT").await.unwrap();
        // Back to the pool: `drop_db` waits for every connection of it.
        drop(holder);
        waiting.await.unwrap();
        let run = finish(live).await;
        run.expect_ok();
        assert_held_then_resumed(&run, "Innodb_row_lock_current_waits");
        let old = run.event("done").unwrap()["old_table"]
            .as_str()
            .unwrap()
            .to_string();
        assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id")
            .await;
        db.drop_db().await;
    }
}

mod postgres {
    use super::*;
    use support::postgres::TestDb;

    async fn setup(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        db.exec(
            "CREATE TABLE orders (id int PRIMARY KEY, note text); \
             INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 1000) i; \
             CREATE TABLE gate (id int PRIMARY KEY, v int NOT NULL); INSERT INTO gate VALUES (1, 0);",
        )
        .await;
        db
    }

    fn run_args<'a>(db: &'a TestDb, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "run",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN x int",
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
        ];
        a.extend_from_slice(extra);
        a
    }

    /// Every object whose name starts with `_godwit` (and this database's slots).
    async fn anything_of_godwit(db: &TestDb) -> Vec<String> {
        let mut v = db.leftovers().await;
        v.extend(
            db.strings("SELECT relname::text FROM pg_class WHERE relname LIKE '\\_godwit%'")
                .await,
        );
        v
    }

    #[tokio::test]
    async fn unknown_counter_is_refused_before_anything_is_created() {
        let db = setup("load_pg_bad").await;
        let before = db.rows("orders", "id, note", "id").await;
        for (flag, value, counter) in [
            (
                "--max-load",
                "active=50,Innodb_row_lock_current_waits=0",
                "Innodb_row_lock_current_waits",
            ),
            ("--critical-load", "Threads_runing=100", "Threads_runing"),
        ] {
            let r = godwit(&run_args(&db, &[flag, value]), &[]).await;
            assert_bad_counter(&r, counter, flag);
            let hint = r.event("error").unwrap()["hint"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for valid in [
                "active",
                "waiting",
                "connections",
                "replication_lag_ms",
                "xact_age_s",
            ] {
                assert!(hint.contains(valid), "{hint}");
            }
            assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
        }
        let (dir, d) = support::phases::write_migration(&db.name, "0001_add_flag.toml", MIGRATION);
        let r = godwit(
            &[
                "migrate",
                &d,
                "--url",
                &db.url,
                "--execute",
                "--format",
                "json",
                "--max-load",
                "lag=1",
            ],
            &[],
        )
        .await;
        assert_bad_counter(&r, "lag", "--max-load");
        assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
        assert_eq!(db.rows("orders", "id, note", "id").await, before);
        assert_eq!(db.columns("orders").await.len(), 2);
        std::fs::remove_dir_all(dir).ok();
        db.drop_db().await;
    }

    /// Every counter name is accepted (in any case) and a run under thresholds no counter
    /// reaches migrates normally.
    #[tokio::test]
    async fn every_counter_is_read() {
        let db = setup("load_pg_all").await;
        db.native_twin("orders", "expected", "ADD COLUMN x int")
            .await;
        let r = godwit(
            &run_args(
                &db,
                &[
                    "--max-load",
                    "active=100000,WAITING=100000,connections=100000,replication_lag_ms=1e12,xact_age_s=1e12",
                    "--critical-load",
                    "Threads_running=100000,Threads_connected=100000,active_connections=100000",
                ],
            ),
            &[],
        )
        .await;
        r.expect_ok();
        assert!(!r.states().contains(&"throttled".to_string()));
        db.assert_same("orders", "expected", "id").await;
        db.drop_db().await;
    }

    /// godwit's own connections count in `connections`: above 1 the run stops (exit 31)
    /// and removes what it created.
    #[tokio::test]
    async fn critical_load_on_connections_stops_and_cleans_up() {
        let db = setup("load_pg_crit").await;
        let before = db.rows("orders", "id, note", "id").await;
        let r = godwit(&run_args(&db, &["--critical-load", "connections=1"]), &[]).await;
        assert_eq!(r.code, 31, "{}\n{}", r.stdout, r.stderr);
        let msg = r.event("error").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("connections="), "{msg}");
        assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
        assert_eq!(db.rows("orders", "id, note", "id").await, before);
        assert_eq!(db.columns("orders").await.len(), 2);
        db.drop_db().await;
    }

    /// A lock wait the test holds makes `waiting` 1: the copy waits, with the counter as
    /// the reason, and finishes once the wait is over.
    #[tokio::test(flavor = "multi_thread")]
    async fn max_load_holds_until_the_lock_wait_ends() {
        let db = setup("load_pg_hold").await;
        db.native_twin("orders", "expected", "ADD COLUMN x int")
            .await;
        // SHARE MODE assigns no transaction id, so creating the replication slot does not
        // wait for this transaction; the UPDATE then waits for its table lock.
        let holder = db.conn().await;
        holder
            .batch_execute("BEGIN; LOCK TABLE gate IN SHARE MODE")
            .await
            .unwrap();
        let waiter = db.conn().await;
        let waiting = tokio::spawn(async move {
            waiter
                .batch_execute("UPDATE gate SET v = v + 1 WHERE id = 1")
                .await
                .unwrap();
        });
        until("the lock wait", || async {
            db.one_i64(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .await
                >= 1
        })
        .await;

        let mut live = LiveRun::start(&run_args(&db, &["--max-load", "waiting=0"]), &[]);
        live.wait_for(60, |e| e["event"] == "state" && e["state"] == "throttled")
            .await;
        holder.batch_execute("COMMIT").await.unwrap();
        waiting.await.unwrap();
        let run = finish(live).await;
        run.expect_ok();
        assert_held_then_resumed(&run, "waiting");
        db.assert_same("orders", "expected", "id").await;
        db.drop_db().await;
    }
}
