//! Migrations while the application writes: 4+ writers doing inserts, updates, deletes
//! and primary-key changes for the whole run, through the cut-over. Every write is
//! mirrored into a twin table in the same transaction; the result must equal the mirror.

mod support;
use support::mysql::*;
use support::LiveRun;

async fn setup(prefix: &str, rows: u64) -> TestDb {
    let db = TestDb::new(prefix).await;
    create_orders(&db, "orders", rows).await;
    db.exec("CREATE TABLE mirror LIKE orders").await;
    db.exec("INSERT INTO mirror SELECT * FROM orders").await;
    db
}

async fn check_against_mirror(db: &TestDb, old: &str) {
    let a = db.rows("mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(
        a.len(),
        b.len(),
        "row count: mirror {} vs result {}",
        a.len(),
        b.len()
    );
    assert!(a == b, "result differs from the mirror of all writes");
    let left = db.leftovers(&[old]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn writers_through_copy_and_cut_over() {
    let rows = 20_000;
    let db = setup("conc_main", rows).await;
    let writers = Writers::start(&db, "orders", "mirror", 6, rows);
    // Let the writers get going before the copy starts.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (run, old) = migrate(
        &db,
        "orders",
        "ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_status (status)",
        &["--chunk-size", "500", "--max-rows-per-second", "10000"],
    )
    .await;
    // Keep writing after the swap: writes land in the new table.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    assert!(stats.ops > 500, "writers did too little: {}", stats.ops);
    let done = run.event("done").unwrap();
    assert!(
        done["keys_replayed"].as_u64().unwrap() > 0,
        "no change was replayed: {done}"
    );
    check_against_mirror(&db, &old).await;
    db.drop_db().await;
}

#[tokio::test]
async fn writers_while_cut_over_is_postponed() {
    let rows = 5_000;
    let db = setup("conc_postpone", rows).await;
    let flag = std::env::temp_dir().join(format!("godwit-postpone-{}", db.name));
    std::fs::write(&flag, b"").unwrap();
    let writers = Writers::start(&db, "orders", "mirror", 4, rows);
    let flag_s = flag.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &[
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
            "--postpone-cut-over-flag-file",
            &flag_s,
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "state" && e["state"] == "postponed")
        .await;
    // Stay postponed for a while under writes; nothing may be swapped yet.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        db.show_create("orders").await.find("`x`").is_none(),
        "swapped while postponed"
    );
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish().await;
    run.expect_ok();
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    let old = run.event("done").unwrap()["old_table"]
        .as_str()
        .unwrap()
        .to_string();
    check_against_mirror(&db, &old).await;
    db.drop_db().await;
}

/// Kill the cut-over's lock connection while the RENAME is queued behind it: the RENAME
/// must fail (the sentry table still exists), the run must retry, and nothing is lost.
#[tokio::test]
async fn killed_lock_connection_does_not_swap() {
    let rows = 3_000;
    let db = setup("conc_kill", rows).await;
    let writers = Writers::start(&db, "orders", "mirror", 4, rows);
    let mut live = LiveRun::start(
        &[
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
            "--debug-cut-over-hold-millis",
            "20000",
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "state" && e["state"] == "cut_over")
        .await;
    // Find the lock holder by its hold statement, and kill it.
    let mut killed = false;
    for _ in 0..400 {
        let ids: Vec<u64> = db
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%godwit cut-over hold%' AND INFO NOT LIKE '%PROCESSLIST%'")
            .await;
        if let Some(id) = ids.first() {
            // While the lock is held, the table must not be swapped.
            let renames: Vec<u64> = db
                .query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME TABLE%'")
                .await;
            assert_eq!(renames[0], 1, "the RENAME should be queued behind the lock");
            db.exec(&format!("KILL {id}")).await;
            killed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(killed, "never saw the cut-over lock holder");
    let run = live.finish().await;
    run.expect_ok();
    let done = run.event("done").unwrap();
    assert!(
        done["cut_over_attempts"].as_u64().unwrap() >= 2,
        "expected a retry: {done}"
    );
    assert!(run.events.iter().any(|e| e["event"] == "cut_over_retry"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stats = writers.stop().await;
    assert!(stats.errors.is_empty(), "writer errors: {:?}", stats.errors);
    let old = done["old_table"].as_str().unwrap().to_string();
    check_against_mirror(&db, &old).await;
    db.drop_db().await;
}
