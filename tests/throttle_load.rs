//! Load counters of `--max-load` / `--critical-load`, one case table on MariaDB and
//! PostgreSQL: an unknown counter is refused at start (exit 2, nothing created) by `run`
//! and by the phase commands; every counter name is read; a critical threshold crossed by
//! godwit's own connections stops the run (exit 31) and removes what it made; a threshold
//! that is exceeded really holds the copy until the load goes away.
//!
//! The load a test controls is a lock wait it creates and ends itself (MariaDB:
//! `Innodb_row_lock_current_waits`, PostgreSQL: `waiting`), so nothing depends on timing.

mod support;
use std::time::Duration;
use support::both::{run_args_on, Conn, Db, Engine};
use support::{godwit, LiveRun, Run};

const ALTER: &str = "ADD COLUMN x INT";

const MIGRATION: &str = r#"name = "add flag"

[[operations]]
type = "add_column"
table = "orders"
column = { name = "flag", type = "int" }
up = "1"
"#;

/// A database of its own with `orders` (1,000 rows) and `gate` (one row, for lock waits).
async fn setup(e: Engine, prefix: &str) -> Db {
    let db = Db::empty(e, prefix).await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(40))")
        .await;
    db.exec(e.pick(
        "INSERT INTO orders SELECT seq, CONCAT('n', seq) FROM seq_1_to_1000",
        "INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 1000) i",
    ))
    .await;
    db.exec("CREATE TABLE gate (id INT PRIMARY KEY, v INT NOT NULL)")
        .await;
    db.exec("INSERT INTO gate VALUES (1, 0)").await;
    db
}

/// `godwit run` adding a column to `orders`, the old table dropped, then `extra`.
fn run_args<'a>(db: &'a Db, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = run_args_on(db.url(), "orders", ALTER, &["--ok-to-drop-table"]);
    a.extend_from_slice(extra);
    a
}

/// Every row of `table` as text, in key order.
async fn rows(db: &Db, table: &str) -> Vec<String> {
    db.strings(&format!(
        "SELECT CONCAT_WS('|', id, COALESCE(note, 'NULL')) FROM {table} ORDER BY id"
    ))
    .await
}

/// The whole definition of `orders` (MariaDB: `SHOW CREATE TABLE`; PostgreSQL: columns,
/// constraints, indexes, options, triggers, sequences), for "nothing changed" checks.
async fn definition(db: &Db) -> Vec<String> {
    match db {
        Db::Maria(m) => vec![m.show_create("orders").await],
        Db::Postgres(p) => p.definition("orders").await,
    }
}

/// What a migrated table and its natively altered twin share: MariaDB's `SHOW CREATE
/// TABLE` without the table's name; PostgreSQL's columns with their type, nullability and
/// default.
async fn shape(db: &Db, table: &str) -> Vec<String> {
    match db {
        Db::Maria(m) => vec![m
            .show_create(table)
            .await
            .replacen(&format!("`{table}`"), "`T`", 1)],
        Db::Postgres(p) => p.columns(table).await,
    }
}

/// `expected`: a copy of `orders` (definition and rows) altered by the server itself.
async fn native_twin(db: &Db) {
    match db {
        Db::Maria(_) => {
            db.exec("CREATE TABLE expected LIKE orders").await;
            db.exec("INSERT INTO expected SELECT * FROM orders").await;
        }
        Db::Postgres(_) => {
            db.exec("CREATE TABLE expected (LIKE orders INCLUDING ALL)")
                .await;
            db.exec("INSERT INTO expected SELECT * FROM orders").await;
        }
    }
    db.exec(&format!("ALTER TABLE expected {ALTER}")).await;
}

/// The migrated `orders` equals its twin `expected` (definition and every row, the new
/// column included), and nothing of godwit's is left.
async fn assert_same_as_twin(db: &Db) {
    assert_eq!(shape(db, "orders").await, shape(db, "expected").await);
    let q = |t: &str| {
        format!("SELECT CONCAT_WS('|', id, COALESCE(note, 'NULL'), COALESCE(x, -1)) FROM {t} ORDER BY id")
    };
    let (got, want) = (
        db.strings(&q("orders")).await,
        db.strings(&q("expected")).await,
    );
    assert_eq!(got.len(), want.len(), "row counts differ");
    assert!(got == want, "rows differ");
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Everything with godwit's name in the database: [`Db::leftovers`] and, on PostgreSQL,
/// any relation (index, sequence, view, the phases' state table) or function too.
async fn anything_of_godwit(db: &Db) -> Vec<String> {
    let mut v = db.leftovers().await;
    if db.engine() == Engine::Postgres {
        v.extend(
            db.strings(
                "SELECT 'relation ' || relname FROM pg_class WHERE relname LIKE '%godwit%' \
                 UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '%godwit%'",
            )
            .await,
        );
    }
    v
}

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

/// An unknown counter (a typo, another engine's name, a non-numeric status variable) is
/// refused with exit 2 before anything is created, the error's hint saying what is valid;
/// `godwit migrate` refuses it the same way, before its state table exists.
async fn unknown_counter_is_refused_before_anything_is_created(e: Engine) {
    let db = setup(e, "load_bad").await;
    let before = (definition(&db).await, rows(&db, "orders").await);
    // (flag, value, the counter the error names)
    let refused: &[(&str, &str, &str)] = e.pick(
        &[
            (
                "--max-load",
                "Threads_running=50,Threads_runing=5",
                "Threads_runing",
            ),
            ("--critical-load", "waiting=1", "waiting"),
            ("--max-load", "Ssl_cipher=1", "Ssl_cipher"),
        ],
        &[
            (
                "--max-load",
                "active=50,Innodb_row_lock_current_waits=0",
                "Innodb_row_lock_current_waits",
            ),
            ("--critical-load", "Threads_runing=100", "Threads_runing"),
        ],
    );
    let hint_names: &[&str] = e.pick(
        &["SHOW GLOBAL STATUS"],
        &[
            "active",
            "waiting",
            "connections",
            "replication_lag_ms",
            "xact_age_s",
        ],
    );
    for &(flag, value, counter) in refused {
        let r = godwit(&run_args(&db, &[flag, value]), &[]).await;
        assert_bad_counter(&r, counter, flag);
        let hint = r.event("error").unwrap()["hint"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for valid in hint_names {
            assert!(hint.contains(valid), "{hint}");
        }
        assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
    }
    let (value, counter) = e.pick(("No_such_counter=1", "No_such_counter"), ("lag=1", "lag"));
    let (dir, d) = support::phases::write_migration(db.name(), "0001_add_flag.toml", MIGRATION);
    let r = godwit(
        &[
            "migrate",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--max-load",
            value,
        ],
        &[],
    )
    .await;
    assert_bad_counter(&r, counter, "--max-load");
    assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
    assert_eq!((definition(&db).await, rows(&db, "orders").await), before);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// Every counter name (PostgreSQL: all of them; MariaDB: a few status variables) is
/// accepted in any case, and a run under thresholds no counter reaches migrates normally.
async fn every_counter_is_read(e: Engine) {
    let db = setup(e, "load_all").await;
    native_twin(&db).await;
    let (max, critical) = e.pick(
        (
            "Threads_running=100000,THREADS_CONNECTED=100000,innodb_row_lock_current_waits=100000",
            "Threads_running=100000,Threads_connected=100000,Innodb_row_lock_current_waits=100000",
        ),
        (
            "active=100000,WAITING=100000,connections=100000,replication_lag_ms=1e12,xact_age_s=1e12",
            "Threads_running=100000,Threads_connected=100000,active_connections=100000",
        ),
    );
    let r = godwit(
        &run_args(&db, &["--max-load", max, "--critical-load", critical]),
        &[],
    )
    .await;
    r.expect_ok();
    assert!(!r.states().contains(&"throttled".to_string()));
    assert_same_as_twin(&db).await;
    db.drop_db().await;
}

/// godwit's own connections count in the connection counter (MariaDB:
/// `Threads_connected`; PostgreSQL: `connections`): above 1 the run stops (exit 31) and
/// removes what it created, the original unchanged.
async fn critical_load_on_connections_stops_and_cleans_up(e: Engine) {
    let db = setup(e, "load_crit").await;
    let before = (definition(&db).await, rows(&db, "orders").await);
    let counter = e.pick("Threads_connected", "connections");
    let threshold = format!("{counter}=1");
    let r = godwit(&run_args(&db, &["--critical-load", &threshold]), &[]).await;
    assert_eq!(r.code, 31, "{}\n{}", r.stdout, r.stderr);
    let msg = r.event("error").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains(&format!("{counter}=")), "{msg}");
    assert_eq!(anything_of_godwit(&db).await, Vec::<String>::new());
    assert_eq!((definition(&db).await, rows(&db, "orders").await), before);
    db.drop_db().await;
}

/// A lock wait the test holds makes the engine's counter 1 (MariaDB: a row lock, so
/// `Innodb_row_lock_current_waits`; PostgreSQL: a table lock, so `waiting`): the copy
/// waits, with the counter as the reason, and finishes once the wait is over.
async fn max_load_holds_until_the_lock_wait_ends(e: Engine) {
    let db = setup(e, "load_hold").await;
    native_twin(&db).await;
    // PostgreSQL: SHARE MODE assigns no transaction id, so creating the replication slot
    // does not wait for this transaction; the UPDATE then waits for its table lock.
    let mut holder = Conn::connect(e, db.url()).await;
    holder
        .batch(e.pick(
            "BEGIN; SELECT v FROM gate WHERE id = 1 FOR UPDATE",
            "BEGIN; LOCK TABLE gate IN SHARE MODE",
        ))
        .await
        .unwrap();
    let mut waiter = Conn::connect(e, db.url()).await;
    let waiting = tokio::spawn(async move {
        waiter
            .batch(e.pick(
                "SET SESSION innodb_lock_wait_timeout = 300; UPDATE gate SET v = v + 1 WHERE id = 1",
                "UPDATE gate SET v = v + 1 WHERE id = 1",
            ))
            .await
            .unwrap();
        waiter.close().await;
    });
    // A session of this database waiting for a lock.
    let waits = e.pick(
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.INNODB_TRX t \
         JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
         WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()",
        "SELECT count(*)::text FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    );
    until("the lock wait", || async {
        db.strings(waits).await[0].parse::<u64>().unwrap() >= 1
    })
    .await;

    let counter = e.pick("Innodb_row_lock_current_waits", "waiting");
    let threshold = format!("{counter}=0");
    let mut live = LiveRun::start(&run_args(&db, &["--max-load", &threshold]), &[]);
    live.wait_state(60, "throttled").await;
    holder.batch("COMMIT").await.unwrap();
    holder.close().await;
    waiting.await.unwrap();
    let run = live.finish_within(120).await;
    run.expect_ok();
    assert_held_then_resumed(&run, counter);
    assert_same_as_twin(&db).await;
    db.drop_db().await;
}

support::both::cases!(
    unknown_counter_is_refused_before_anything_is_created,
    every_counter_is_read,
    critical_load_on_connections_stops_and_cleans_up,
    max_load_holds_until_the_lock_wait_ends,
);
