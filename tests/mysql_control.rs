//! Stopping and holding a migration: signals, --critical-load, --max-load and the
//! throttle flag file. A stopped run leaves the original untouched and nothing behind.

mod support;
use support::mysql::*;
use support::LiveRun;

fn slow_args<'a>(db: &'a TestDb, extra: &[&'a str]) -> Vec<&'a str> {
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
        "--chunk-size",
        "100",
        "--max-rows-per-second",
        "500",
    ];
    a.extend_from_slice(extra);
    a
}

async fn assert_untouched(db: &TestDb, before: &[Vec<mysql_async::Value>], create: &str) {
    assert_eq!(
        db.show_create("orders").await,
        create,
        "the original changed"
    );
    assert_eq!(db.rows("orders", ORDERS_COLS, "id").await, before);
    let left = db.leftovers(&[]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn sigterm_during_copy_cleans_up() {
    let db = TestDb::new("ctl_term").await;
    create_orders(&db, "orders", 5000).await;
    let before = db.rows("orders", ORDERS_COLS, "id").await;
    let create = db.show_create("orders").await;
    let mut live = LiveRun::start(&slow_args(&db, &[]), &[]);
    live.wait_for(60, |e| {
        e["event"] == "progress" && e["rows_copied"].as_u64() > Some(0)
    })
    .await;
    assert!(db.tables().await.contains(&"orders_godwit_new".to_string()));
    unsafe { libc_kill(live.pid() as i32, 15) };
    let run = live.finish().await;
    assert_eq!(run.code, 30, "{}\n{}", run.stdout, run.stderr);
    let err = run.event("error").unwrap();
    assert_eq!(err["kind"], "aborted");
    assert_untouched(&db, &before, &create).await;
    db.drop_db().await;
}

#[tokio::test]
async fn critical_load_aborts_and_cleans_up() {
    let db = TestDb::new("ctl_crit").await;
    create_orders(&db, "orders", 2000).await;
    let before = db.rows("orders", ORDERS_COLS, "id").await;
    let create = db.show_create("orders").await;
    let r = support::godwit(
        &slow_args(&db, &["--critical-load", "Threads_connected=1"]),
        &[],
    )
    .await;
    assert_eq!(r.code, 31, "{}\n{}", r.stdout, r.stderr);
    assert!(r.event("error").unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("Threads_connected"));
    assert_untouched(&db, &before, &create).await;
    db.drop_db().await;
}

#[tokio::test]
async fn max_load_holds_the_copy() {
    let db = TestDb::new("ctl_maxload").await;
    create_orders(&db, "orders", 2000).await;
    let before = db.rows("orders", ORDERS_COLS, "id").await;
    let create = db.show_create("orders").await;
    let mut live = LiveRun::start(&slow_args(&db, &["--max-load", "Threads_connected=1"]), &[]);
    let ev = live
        .wait_for(60, |e| e["event"] == "state" && e["state"] == "throttled")
        .await;
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("Threads_connected"),
        "{ev}"
    );
    unsafe { libc_kill(live.pid() as i32, 2) };
    let run = live.finish().await;
    assert_eq!(run.code, 30);
    assert_untouched(&db, &before, &create).await;
    db.drop_db().await;
}

#[tokio::test]
async fn throttle_flag_file_pauses_and_resumes() {
    let db = TestDb::new("ctl_flag").await;
    create_orders(&db, "orders", 1000).await;
    let flag = std::env::temp_dir().join(format!("godwit-throttle-{}", db.name));
    std::fs::write(&flag, b"").unwrap();
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
            "--throttle-flag-file",
            &flag_s,
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "state" && e["state"] == "throttled")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let copied: Vec<u64> = db.query("SELECT COUNT(*) FROM orders_godwit_new").await;
    assert_eq!(copied[0], 0, "copied while throttled");
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish().await;
    run.expect_ok();
    let old = run.event("done").unwrap()["old_table"]
        .as_str()
        .unwrap()
        .to_string();
    assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id").await;
    db.drop_db().await;
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A DDL on the original during the migration stops it (exit 34) and cleans up.
#[tokio::test]
async fn ddl_on_the_original_stops_the_run() {
    let db = TestDb::new("ctl_ddl").await;
    create_orders(&db, "orders", 1000).await;
    let flag = std::env::temp_dir().join(format!("godwit-ddl-{}", db.name));
    std::fs::write(&flag, b"").unwrap();
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
    db.exec("ALTER TABLE orders ADD COLUMN sneaky INT").await;
    let run = live.finish().await;
    std::fs::remove_file(&flag).ok();
    assert_eq!(run.code, 34, "{}\n{}", run.stdout, run.stderr);
    assert!(run.event("error").unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("changed"));
    assert!(db.show_create("orders").await.contains("`sneaky`"));
    assert!(db.leftovers(&[]).await.is_empty(), "left behind");
    db.drop_db().await;
}
