//! Concurrent writers through copy and cut-over: every write is mirrored into a twin table
//! in the same transaction; after the run the migrated table must equal the mirror.
mod support;

use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use support::postgres::TestDb;
use tokio_postgres::Client;

async fn one_write(
    c: &mut Client,
    op: u32,
    rng_id: i64,
    val: i32,
) -> Result<(), tokio_postgres::Error> {
    let tx = c.transaction().await?;
    let pick = tx
        .query_opt(
            "SELECT id FROM t WHERE id >= $1 ORDER BY id LIMIT 1 FOR UPDATE",
            &[&rng_id],
        )
        .await?
        .map(|r| r.get::<_, i64>(0));
    match (op, pick) {
        (0, _) | (_, None) => {
            let id: i64 = tx
                .query_one("INSERT INTO t (v, pad) VALUES ($1::int, repeat('p', $1::int % 300)) RETURNING id", &[&val])
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO mirror (id, v, pad) VALUES ($1, $2::int, repeat('p', $2::int % 300))",
                &[&id, &val],
            )
            .await?;
        }
        (1, Some(id)) => {
            tx.execute(
                "UPDATE t SET v = $2::int, pad = pad || 'u' WHERE id = $1::int8",
                &[&id, &val],
            )
            .await?;
            tx.execute(
                "UPDATE mirror SET v = $2::int, pad = pad || 'u' WHERE id = $1::int8",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_through_copy_and_cut_over() {
    let db = TestDb::new("pg_conc").await;
    db.exec(
        "CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL, pad text); \
         INSERT INTO t (v, pad) SELECT i, repeat('x', i % 200) FROM generate_series(1, 30000) i; \
         CREATE TABLE mirror (id bigint PRIMARY KEY, v int NOT NULL, pad text); \
         INSERT INTO mirror SELECT * FROM t;",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (url, stop, ops) = (db.url.clone(), stop.clone(), ops.clone());
        writers.push(tokio::spawn(async move {
            let mut c = support::postgres::connect(&url).await;
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (op, id, val) = {
                    let mut r = rand::rng();
                    (
                        r.random_range(0..4u32),
                        r.random_range(1..32_000i64),
                        r.random_range(0..1_000_000i32),
                    )
                };
                match one_write(&mut c, op, id, val).await {
                    Ok(()) => {
                        ops.fetch_add(1, Ordering::SeqCst);
                    }
                    // Two writers picking the same row wait for each other; a deadlock
                    // between them is the application's business, not godwit's.
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) => {}
                    Err(e) => errors.push(format!("{e:?}")),
                }
            }
            errors
        }));
    }
    let run = db
        .migrate(
            "t",
            "ALTER COLUMN v TYPE bigint, ADD COLUMN note text DEFAULT 'n'",
            &["--chunk-size", "500", "--max-rows-per-second", "15000"],
        )
        .await;
    let during = ops.load(Ordering::SeqCst);
    // Keep writing into the new table for a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut errors = Vec::new();
    for w in writers {
        errors.extend(w.await.unwrap());
    }
    run.expect_ok();
    assert!(
        errors.is_empty(),
        "{} writer errors, first: {:?}",
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        during > 100,
        "writers made only {during} writes during the run"
    );
    let got = db.rows("t", "id, v, pad", "id").await;
    let want = db.rows("mirror", "id, v, pad", "id").await;
    assert_eq!(got.len(), want.len(), "row counts differ");
    assert!(got == want, "the migrated table differs from the mirror");
    assert_eq!(db.strings("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'v'").await, vec!["bigint"]);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}
