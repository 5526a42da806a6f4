//! The replay races of docs/architecture.md ("Key-based replay and its races"), hit on
//! purpose.
mod support;

use std::time::Duration;
use support::postgres::TestDb;

/// Wait until the shadow holds `rows` rows (the copy is done and the run is postponed).
async fn wait_copied(db: &TestDb, table: &str, rows: i64) {
    for _ in 0..600 {
        let exists = db
            .one_i64(&format!(
                "SELECT count(*) FROM pg_class WHERE relname = '_godwit_new_{table}'"
            ))
            .await;
        if exists == 1
            && db
                .one_i64(&format!("SELECT count(*) FROM _godwit_new_{table}"))
                .await
                >= rows
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the copy did not finish");
}

/// A commit that is decodable but not yet visible (held waiting for a synchronous standby
/// that does not exist): replay must wait for it, not read the old row and move on.
#[tokio::test(flavor = "multi_thread")]
async fn decoded_but_invisible_commit_is_waited_for() {
    let db = TestDb::new("pg_race_vis").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 1000) i;",
    )
    .await;
    let flag = std::env::temp_dir().join(format!("{}.postpone", db.name));
    std::fs::write(&flag, "").unwrap();
    let child = support::spawn_godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN w int",
            "--execute",
            "--ok-to-drop-table",
            "--postpone-cut-over-flag-file",
            flag.to_str().unwrap(),
        ],
        &[],
    );
    wait_copied(&db, "t", 1000).await;
    let admin = support::postgres::connect(&db.server).await;
    // Only sessions with synchronous_commit = on wait (the server default here is off, and
    // godwit's fence uses 'local'), so other tests running meanwhile are not held.
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'godwit_nonexistent'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = db.conn().await;
    let held = tokio::spawn(async move {
        writer
            .batch_execute(
                "SET synchronous_commit = on; BEGIN; INSERT INTO t VALUES (5000, 'held'); UPDATE t SET v = 'changed' WHERE id = 10; DELETE FROM t WHERE id = 20; COMMIT;",
            )
            .await
    });
    // The commit is flushed and decodable, but not visible.
    let mut waiting = false;
    for _ in 0..100 {
        if db
            .one_i64("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
            .await
            > 0
        {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting, "the writer's commit did not wait for the standby");
    assert_eq!(
        db.one_i64("SELECT count(*) FROM t WHERE id = 5000").await,
        0
    );
    // Give godwit time to decode it and (wrongly) replay it if it did not wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    held.await.unwrap().unwrap();
    let expected = db.rows("t", "id, v", "id").await;
    assert_eq!(
        db.one_i64("SELECT count(*) FROM t WHERE id = 5000").await,
        1
    );
    std::fs::remove_file(&flag).unwrap();
    let run = support::finish(child).await;
    run.expect_ok();
    assert_eq!(db.rows("t", "id, v", "id").await, expected);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

/// Deletes and updates aimed at the chunk being copied at that moment.
#[tokio::test(flavor = "multi_thread")]
async fn writes_into_the_chunk_in_flight() {
    let db = TestDb::new("pg_race_chunk").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT i, 0 FROM generate_series(1, 20000) i; \
         CREATE TABLE mirror (id int PRIMARY KEY, v int); INSERT INTO mirror SELECT * FROM t;",
    )
    .await;
    let child = support::spawn_godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--execute",
            "--ok-to-drop-table",
            "--chunk-size",
            "300",
            "--max-rows-per-second",
            "6000",
        ],
        &[],
    );
    let writer = db.conn().await;
    let mut hits = 0;
    for _ in 0..2000 {
        let exists = db
            .one_i64("SELECT count(*) FROM pg_class WHERE relname = '_godwit_new_t'")
            .await;
        if exists == 0 {
            if hits > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // The copier's high-water mark: the next chunk starts right above it.
        let Ok(row) = writer
            .query_one("SELECT COALESCE(max(id), 0) FROM _godwit_new_t", &[])
            .await
        else {
            break;
        };
        let hw: i32 = row.get(0);
        if hw >= 20000 {
            break;
        }
        let mut stmts = String::from("BEGIN;");
        for table in ["t", "mirror"] {
            stmts.push_str(&format!(
                "DELETE FROM {table} WHERE id IN ({a}, {b}); UPDATE {table} SET v = v + 1 WHERE id IN ({c}, {d}); UPDATE {table} SET id = -id WHERE id = {e};",
                a = hw + 1, b = hw + 150, c = hw + 2, d = hw + 299, e = hw + 100
            ));
        }
        stmts.push_str("COMMIT;");
        writer.batch_execute(&stmts).await.unwrap();
        hits += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run = support::finish(child).await;
    run.expect_ok();
    assert!(hits > 5, "only {hits} writes hit the copy");
    assert_eq!(
        db.rows("t", "id, v", "id").await,
        db.rows("mirror", "id, v", "id").await
    );
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}
