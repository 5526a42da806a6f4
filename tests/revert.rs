//! Lossless revert after the cut-over (issue #11, item 4): `godwit run --revert-window`
//! keeps replaying the new table's changes into the old table after the swap, and
//! `godwit revert` swaps back with every write since the cut-over kept. Writers run the
//! whole time and mirror every write into `orders_mirror` in the same transaction, so
//! the expected content is known whatever the timing; every test ends with the table
//! equal to the mirror and nothing of godwit's left.
mod support;

use support::both::{Db, Engine};
use support::mysql::{create_orders, TestDb, Writers, ORDERS_COLS};
use support::{LiveRun, Run};

const ROWS: u64 = 3000;
/// Widens a column and adds one: every row maps back (as long as the values fit).
const ALTER: &str = "ADD COLUMN extra INT, MODIFY amount DECIMAL(14,2) NOT NULL";

async fn setup(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    create_orders(&db, "orders", ROWS).await;
    create_orders(&db, "orders_mirror", ROWS).await;
    db
}

fn run_args<'a>(db: &'a TestDb, alter: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--url",
        &db.url,
        "--table",
        "orders",
        "--alter",
        alter,
        "--execute",
        "--format",
        "json",
        "--chunk-size",
        "200",
        "--chunk-time-millis",
        "10",
    ];
    v.extend_from_slice(extra);
    v
}

async fn revert(db: &TestDb, extra: &[&str]) -> Run {
    let mut v = vec![
        "revert", "--url", &db.url, "--table", "orders", "--format", "json",
    ];
    v.extend_from_slice(extra);
    support::godwit(&v, &[]).await
}

/// Wait until the window run says the window is open (after its `done`).
async fn window_open(live: &mut LiveRun) -> serde_json::Value {
    live.wait_for(120, |e| e["event"] == "done").await;
    live.wait_for(30, |e| e["event"] == "revert" && e["window"] == "open")
        .await
}

fn kill9(live: &LiveRun) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &live.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -9 failed");
}

/// The original schema, the mirror's rows, nothing of godwit's.
async fn assert_reverted(db: &TestDb, original: &str) {
    assert_eq!(
        without_counter(&db.show_create("orders").await),
        original,
        "schema not back"
    );
    let a = db.rows("orders_mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a.len(), b.len(), "row counts differ");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "row {i} differs");
    }
    let left = db.leftovers(&[]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Only the AUTO_INCREMENT counter may differ from the original definition.
fn without_counter(create: &str) -> String {
    create
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn let_writes_happen() {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

/// (a) The run is alive during the window: `godwit revert` asks it to hand over, then
/// swaps back.
#[tokio::test(flavor = "multi_thread")]
async fn revert_after_a_cut_over_under_writes_equals_the_mirror_mariadb() {
    let db = setup("revert_live").await;
    let original = without_counter(&db.show_create("orders").await);
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(
        &run_args(
            &db,
            ALTER,
            &["--revert-window", "10m", "--ok-to-drop-table"],
        ),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    assert!(db.show_create("orders").await.contains("`extra`"));
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let window = live.finish().await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    r.expect_ok();
    assert_eq!(window.code, 0, "the window run: {}", window.stderr);
    assert!(
        window
            .events
            .iter()
            .any(|e| e["event"] == "revert" && e["handed_over"] == true),
        "no handover: {}",
        window.stdout
    );
    assert!(r.event("done").is_some(), "no done: {}", r.stdout);
    assert!(r.states().contains(&"cut_over".to_string()));
    assert!(!db.tables().await.contains(&old));
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// (b) The run is killed (SIGKILL) during the window; writes go on; `godwit revert`
/// swaps back from its last checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn revert_after_the_window_run_was_killed_equals_the_mirror_mariadb() {
    let db = setup("revert_killed").await;
    let original = without_counter(&db.show_create("orders").await);
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(&run_args(&db, ALTER, &["--revert-window", "10m"]), &[]);
    window_open(&mut live).await;
    let_writes_happen().await;
    kill9(&live);
    let _ = live.finish().await;
    let_writes_happen().await;
    let status = support::godwit(&["status", "--url", &db.url, "--table", "orders"], &[]).await;
    status.expect_ok();
    assert!(
        status.stdout.contains("revert window") && status.stdout.contains("is open until"),
        "{}",
        status.stdout
    );
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    r.expect_ok();
    assert!(r.event("done").is_some());
    assert_reverted(&db, &original).await;
    // Nothing to revert any more.
    assert_eq!(revert(&db, &[]).await.code, 37);
    db.drop_db().await;
}

/// Ctrl-C/SIGTERM during the window: the run stops replaying and exits 0, the window
/// stays open (its checkpoint kept); `godwit cleanup --execute --include-old-tables`
/// closes it.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_keeps_the_window_and_cleanup_closes_it_mariadb() {
    let db = setup("revert_term").await;
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(&run_args(&db, ALTER, &["--revert-window", "10m"]), &[]);
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    let_writes_happen().await;
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &live.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let run = live.finish().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let stopped = run
        .events
        .iter()
        .find(|e| e["event"] == "revert" && e["stopped"] == true)
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(stopped["message"]
        .as_str()
        .unwrap()
        .contains("godwit cleanup"));
    assert!(db.tables().await.contains(&old));
    assert!(db
        .tables()
        .await
        .contains(&"_godwit_checkpoint".to_string()));
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    support::godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--execute",
            "--include-old-tables",
        ],
        &[],
    )
    .await
    .expect_ok();
    assert_eq!(revert(&db, &[]).await.code, 37);
    assert!(db.show_create("orders").await.contains("`extra`"));
    let a = db.rows("orders_mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a, b, "the new table differs from the mirror");
    assert!(
        db.leftovers(&[]).await.is_empty(),
        "{:?}",
        db.leftovers(&[]).await
    );
    db.drop_db().await;
}

/// A revert whose cut-over cannot take its lock (a transaction holds the table) fails
/// with both tables as they were and the window kept; the next `godwit revert` works.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_revert_keeps_the_window_mariadb() {
    use mysql_async::prelude::Queryable;
    let db = setup("revert_retry").await;
    let original = without_counter(&db.show_create("orders").await);
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(&run_args(&db, ALTER, &["--revert-window", "10m"]), &[]);
    window_open(&mut live).await;
    let_writes_happen().await;
    // An open transaction that wrote the table: the cut-over's lock waits for it.
    let mut blocker = db.conn().await;
    blocker.query_drop("START TRANSACTION").await.unwrap();
    blocker
        .query_drop("UPDATE orders_mirror SET note = note WHERE id = -424242")
        .await
        .unwrap();
    blocker
        .query_drop("UPDATE orders SET note = note WHERE id = -424242")
        .await
        .unwrap();
    let r = revert(
        &db,
        &[
            "--cut-over-retries",
            "1",
            "--cut-over-lock-timeout-seconds",
            "1",
        ],
    )
    .await;
    assert_eq!(r.code, 32, "{}\n{}", r.stdout, r.stderr);
    let window = live.finish().await;
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert!(db.show_create("orders").await.contains("`extra`"));
    // The old table (taken over under the shadow's name) is no leftover: cleanup
    // without --include-old-tables would leave it.
    let listed = support::godwit(&["cleanup", "--url", &db.url, "--table", "orders"], &[]).await;
    listed.expect_ok();
    assert!(
        !listed.stdout.contains("orders_godwit_new"),
        "{}",
        listed.stdout
    );
    let listed = support::godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--include-old-tables",
        ],
        &[],
    )
    .await;
    assert!(
        listed.stdout.contains("orders_godwit_new"),
        "{}",
        listed.stdout
    );
    assert!(db.tables().await.contains(&"orders_godwit_new".to_string()));
    blocker.query_drop("ROLLBACK").await.unwrap();
    drop(blocker);
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    r.expect_ok();
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// A renamed column maps back to its old name; writes made after the swap under the new
/// name are in the original after the revert.
#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_column_maps_back_mariadb() {
    let db = setup("revert_rename").await;
    let original = without_counter(&db.show_create("orders").await);
    let mut live = LiveRun::start(
        &run_args(
            &db,
            "CHANGE note memo VARCHAR(300) NULL, ADD COLUMN extra INT NOT NULL DEFAULT 5",
            &["--revert-window", "10m"],
        ),
        &[],
    );
    window_open(&mut live).await;
    assert!(db.show_create("orders").await.contains("`memo`"));
    db.exec(
        "UPDATE orders SET memo = 'after the swap', extra = 9 WHERE id = 10; \
         DELETE FROM orders WHERE id = 11; \
         INSERT INTO orders (id, user_id, amount, memo, created_at) VALUES (5000000, 1, 2.50, 'new', '2025-01-01'); \
         UPDATE orders SET id = 5000001 WHERE id = 12; \
         UPDATE orders_mirror SET note = 'after the swap' WHERE id = 10; \
         DELETE FROM orders_mirror WHERE id = 11; \
         INSERT INTO orders_mirror (id, user_id, amount, note, created_at) VALUES (5000000, 1, 2.50, 'new', '2025-01-01'); \
         UPDATE orders_mirror SET id = 5000001 WHERE id = 12",
    )
    .await;
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let window = live.finish().await;
    r.expect_ok();
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// (c) A change that drops a column cannot be reverted: refused before the copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_lossy_change_is_refused_with_a_revert_window_mariadb() {
    let db = setup("revert_lossy").await;
    let before = (db.show_create("orders").await, db.tables().await);
    let r = support::godwit(
        &run_args(&db, "DROP COLUMN note", &["--revert-window", "30m"]),
        &[],
    )
    .await;
    assert_eq!(r.code, 38, "{}\n{}", r.stdout, r.stderr);
    let err = r.event("error").expect("error event");
    assert!(err["message"].as_str().unwrap().contains("`note`"), "{err}");
    assert_eq!((db.show_create("orders").await, db.tables().await), before);
    assert!(db.leftovers(&[]).await.is_empty());
    db.drop_db().await;
}

/// (d) The window expires: the old table goes (--ok-to-drop-table), then the checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn the_window_expires_and_cleans_up_mariadb() {
    let db = setup("revert_expire").await;
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(
        &run_args(&db, ALTER, &["--revert-window", "4s", "--ok-to-drop-table"]),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    // The old table exists during the window, even with --ok-to-drop-table.
    assert!(db.tables().await.contains(&old));
    let run = live.finish().await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.events
            .iter()
            .any(|e| e["event"] == "revert" && e["window"] == "closed" && e["reason"] == "expired"),
        "{}",
        run.stdout
    );
    assert!(db.show_create("orders").await.contains("`extra`"));
    let a = db.rows("orders_mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a, b, "the new table differs from the mirror");
    assert!(
        db.leftovers(&[]).await.is_empty(),
        "{:?}",
        db.leftovers(&[]).await
    );
    let r = revert(&db, &[]).await;
    assert_eq!(r.code, 37, "{}", r.stdout);
    db.drop_db().await;
}

/// (e) A write after the swap that the old table cannot hold (wider DECIMAL): the window
/// closes with a message naming the column; a revert is refused afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_cannot_map_back_closes_the_window_mariadb() {
    let db = setup("revert_nomap").await;
    db.exec("ALTER TABLE orders_mirror MODIFY amount DECIMAL(14,2) NOT NULL")
        .await;
    let writers = Writers::start(&db, "orders", "orders_mirror", 2, ROWS);
    let mut live = LiveRun::start(
        &run_args(
            &db,
            ALTER,
            &["--revert-window", "10m", "--ok-to-drop-table"],
        ),
        &[],
    );
    window_open(&mut live).await;
    let_writes_happen().await;
    // Fits DECIMAL(14,2), not the original DECIMAL(12,2).
    db.exec(
        "INSERT INTO orders (id, user_id, amount, created_at) VALUES (900000000, 1, 123456789012.34, '2025-01-01'); \
         INSERT INTO orders_mirror (id, user_id, amount, created_at) VALUES (900000000, 1, 123456789012.34, '2025-01-01')",
    )
    .await;
    let run = live.finish().await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    assert_eq!(run.code, 38, "{}\n{}", run.stdout, run.stderr);
    let closed = run
        .events
        .iter()
        .find(|e| e["event"] == "revert" && e["window"] == "closed")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(closed["reason"], "data_error");
    assert!(
        closed["message"].as_str().unwrap().contains("amount"),
        "{closed}"
    );
    let r = revert(&db, &[]).await;
    assert_eq!(r.code, 37, "{}", r.stdout);
    let a = db.rows("orders_mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a, b, "the new table differs from the mirror");
    assert!(
        db.leftovers(&[]).await.is_empty(),
        "{:?}",
        db.leftovers(&[]).await
    );
    db.drop_db().await;
}

/// PostgreSQL has no revert window yet: refused before anything is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_revert_window_is_refused_on_postgres() {
    let db = Db::new(Engine::Postgres, "revert_pg").await;
    let before = db.snapshot().await;
    let r = support::godwit(
        &[
            "run",
            "--url",
            db.url(),
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN extra INT",
            "--execute",
            "--format",
            "json",
            "--revert-window",
            "30m",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 21, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(db.snapshot().await, before);
    db.drop_db().await;
}
