//! The replay races of docs/architecture.md ("Key-based replay and its races"), hit on
//! purpose:
//! - deletes, updates and key changes aimed at the chunk being copied at that moment
//!   (found by watching the shadow's high-water mark);
//! - replay reads racing commits: writers that hold their row locks across the binlog
//!   write window (multi-statement transactions that pause before COMMIT).
//!
//! Every write is mirrored; the result must equal the mirror.

mod support;
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use support::mysql::*;

#[tokio::test]
async fn writes_aimed_at_the_chunk_in_flight() {
    let rows = 12_000u64;
    let db = TestDb::new("race_chunk").await;
    create_orders(&db, "orders", rows).await;
    db.exec("CREATE TABLE mirror LIKE orders").await;
    db.exec("INSERT INTO mirror SELECT * FROM orders").await;
    let stop = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let pool = db.pool.clone();
        let (stop, hits) = (stop.clone(), hits.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            let mut errors = Vec::new();
            let mut next_new = -(1_000_000 * (w as i64 + 1));
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // The copier's high-water mark: rows just above it are in the chunk now
                // being read, or the next one.
                let hwm: Option<i64> = c
                    .query_first::<Option<i64>, _>("SELECT MAX(id) FROM orders_godwit_new WHERE id > 0")
                    .await
                    .ok()
                    .flatten()
                    .flatten();
                let Some(hwm) = hwm else {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                };
                n += 1;
                let id = hwm + 1 + ((n * 37 + w * 11) % 300) as i64;
                let r: Result<(), mysql_async::Error> = async {
                    let mut tx = c.start_transaction(Default::default()).await?;
                    match n % 4 {
                        0 => {
                            for t in ["orders", "mirror"] {
                                tx.exec_drop(format!("DELETE FROM {t} WHERE id = ?"), (id,)).await?;
                            }
                        }
                        1 => {
                            next_new -= 1;
                            for t in ["orders", "mirror"] {
                                tx.exec_drop(format!("UPDATE {t} SET id = ? WHERE id = ?"), (next_new, id)).await?;
                            }
                        }
                        _ => {
                            for t in ["orders", "mirror"] {
                                tx.exec_drop(format!("UPDATE {t} SET amount = amount + 1, note = 'race' WHERE id = ?"), (id,)).await?;
                                if n % 8 == 3 {
                                    // Hold the row lock a moment: the replay's read must wait.
                                    tx.query_drop("DO SLEEP(0.02)").await?;
                                }
                            }
                        }
                    }
                    tx.commit().await
                }
                .await;
                match r {
                    Ok(()) => {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        // The shadow vanishes at cut-over; anything else is a real error.
                        let s = e.to_string();
                        if !s.contains("orders_godwit_new") {
                            errors.push(s);
                        }
                        c = pool.get_conn().await.unwrap();
                    }
                }
            }
            errors
        }));
    }
    let (_, old) = migrate(
        &db,
        "orders",
        "ADD COLUMN shipped_at DATETIME NULL",
        &[
            "--chunk-size",
            "200",
            "--max-rows-per-second",
            "3000",
            "--chunk-time-millis",
            "50",
        ],
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let errors = t.await.unwrap();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
    }
    assert!(
        hits.load(Ordering::SeqCst) > 50,
        "too few writes hit the chunk in flight"
    );
    let a = db.rows("mirror", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a.len(), b.len());
    assert!(a == b, "result differs from the mirror");
    assert!(db.leftovers(&[&old]).await.is_empty());
    db.drop_db().await;
}
