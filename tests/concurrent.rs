//! Migrations while the application writes, one case table on MariaDB and PostgreSQL:
//! four writers insert (with the table's own ids), update, delete and move rows to a new
//! primary key for the whole run, through the cut-over and after it. Every write is
//! mirrored into a twin table in the same transaction; the result must equal the mirror,
//! and nothing of godwit's is left behind.
//!
//! Also, on MariaDB: the cut-over's lock connection killed while the RENAME is queued
//! behind it must not swap; the run retries and nothing is lost.
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use support::both::{Conn, Db, Engine};
use support::{LiveRun, Run};

/// `t` with `rows` rows (ids 1..=rows, the counter above them) and its mirror.
async fn setup(prefix: &str, e: Engine, rows: u32) -> Db {
    let db = Db::empty(e, prefix).await;
    match e {
        Engine::Maria => {
            db.exec("CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(400))")
                .await;
            db.exec(&format!(
                "INSERT INTO t (v, pad) SELECT seq, REPEAT('x', seq % 200) FROM seq_1_to_{rows}"
            ))
            .await;
            db.exec("CREATE TABLE mirror LIKE t").await;
        }
        Engine::Postgres => {
            db.exec("CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL, pad text)")
                .await;
            db.exec(&format!(
                "INSERT INTO t (v, pad) SELECT i, repeat('x', i % 200) FROM generate_series(1, {rows}) i"
            ))
            .await;
            db.exec("CREATE TABLE mirror (id bigint PRIMARY KEY, v int NOT NULL, pad text)")
                .await;
        }
    }
    db.exec("INSERT INTO mirror SELECT * FROM t").await;
    db
}

/// Writers mirroring every write of theirs into `mirror`, until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Writers {
    fn start(db: &Db, n: u64, rows: u32) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (e, url) = (db.engine(), db.url().to_string());
        let tasks = (0..n)
            .map(|w| {
                let (stop, ops, url) = (stop.clone(), ops.clone(), url.clone());
                tokio::spawn(async move { write(e, &url, w, rows, &stop, &ops).await })
            })
            .collect();
        Writers { stop, ops, tasks }
    }

    fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Stop; returns the writes made and asserts there was no error.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.unwrap());
        }
        assert!(
            errors.is_empty(),
            "{} writer errors, first: {:?}",
            errors.len(),
            errors.iter().take(3).collect::<Vec<_>>()
        );
        self.ops.load(Ordering::SeqCst)
    }
}

/// One writer: each write and its copy into `mirror` in one transaction (retried after a
/// deadlock, as an application would). Rows moved to a new key get negative ids, unique per
/// writer.
async fn write(
    e: Engine,
    url: &str,
    writer: u64,
    rows: u32,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(writer + 7);
    let mut conn = Conn::connect(e, url).await;
    let mut errors = Vec::new();
    let mut moved = 0u64;
    while !stop.load(Ordering::SeqCst) && errors.len() < 10 {
        let id = rng.random_range(1..=rows as i64 + 2000);
        let v = rng.random_range(0..1_000_000i64);
        let both = |f: &dyn Fn(&str) -> String| -> Vec<String> {
            ["t", "mirror"].iter().map(|t| f(t)).collect()
        };
        // On PostgreSQL each write is one statement whose CTE changes `t` and the mirror
        // changes exactly the rows it returned: one snapshot for both. Two READ COMMITTED
        // statements take two, and the second can see a row whose insert committed after
        // the first looked (the mirror would then hold a write `t` never got). InnoDB's
        // UPDATE waits for the inserting transaction instead, so there the two statements
        // stay apart.
        let stmts: Vec<String> = match rng.random_range(0..4u32) {
            0 => e.pick(
                vec![
                    format!("INSERT INTO t (v, pad) VALUES ({v}, REPEAT('p', {v} % 300))"),
                    "INSERT INTO mirror (id, v, pad) SELECT id, v, pad FROM t WHERE id = LAST_INSERT_ID()"
                        .into(),
                ],
                vec![format!(
                    "WITH n AS (INSERT INTO t (v, pad) VALUES ({v}, repeat('p', {v} % 300)) RETURNING id, v, pad) \
                     INSERT INTO mirror (id, v, pad) SELECT id, v, pad FROM n"
                )],
            ),
            1 => e.pick(
                both(&|t| format!("UPDATE {t} SET v = {v}, pad = CONCAT(pad, 'u') WHERE id = {id}")),
                vec![format!(
                    "WITH c AS (UPDATE t SET v = {v}, pad = pad || 'u' WHERE id = {id} RETURNING id) \
                     UPDATE mirror SET v = {v}, pad = pad || 'u' WHERE id IN (SELECT id FROM c)"
                )],
            ),
            2 => e.pick(
                both(&|t| format!("DELETE FROM {t} WHERE id = {id}")),
                vec![format!(
                    "WITH c AS (DELETE FROM t WHERE id = {id} RETURNING id) \
                     DELETE FROM mirror WHERE id IN (SELECT id FROM c)"
                )],
            ),
            _ => {
                moved += 1;
                // Negative: never an id the table's counter hands out (on MariaDB a
                // larger id moved into the table would push the counter up to it).
                let new = -((writer * 1_000_000 + moved) as i64);
                e.pick(
                    both(&|t| format!("UPDATE {t} SET id = {new} WHERE id = {id}")),
                    vec![format!(
                        "WITH c AS (UPDATE t SET id = {new} WHERE id = {id} RETURNING id) \
                         UPDATE mirror SET id = {new} WHERE id = {id} AND EXISTS (SELECT 1 FROM c)"
                    )],
                )
            }
        };
        match conn.transaction_retried(&stmts).await {
            Ok(()) => {
                ops.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => errors.push(err),
        }
    }
    conn.close().await;
    errors
}

/// `t` against `mirror`: every row equal; nothing of godwit's left.
async fn assert_mirrored(db: &Db) {
    let q = |t: &str| {
        format!("SELECT CONCAT_WS('|', id, v, COALESCE(pad, 'NULL')) FROM {t} ORDER BY id")
    };
    let (got, want) = (db.strings(&q("t")).await, db.strings(&q("mirror")).await);
    if got != want {
        let (g, w): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
            (got.iter().collect(), want.iter().collect());
        let only_got: Vec<_> = g.difference(&w).take(10).collect();
        let only_want: Vec<_> = w.difference(&g).take(10).collect();
        panic!(
            "the result ({} rows) differs from the mirror of all writes ({} rows): only in the result {only_got:?}, \
             only in the mirror {only_want:?}",
            got.len(),
            want.len()
        );
    }
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `godwit run` on `t`, the old table dropped after the swap, then `extra`.
fn run_args<'a>(db: &'a Db, alter: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = support::both::run_args_on(db.url(), "t", alter, &["--ok-to-drop-table"]);
    a.extend_from_slice(extra);
    a
}

/// `godwit run` on `table` with `alter` and `extra`, its cut-over postponed by a flag
/// file; returns once the run waits in `postponed`. Removing the flag (`Postponed::go`)
/// lets it swap.
struct Postponed {
    live: LiveRun,
    flag: std::path::PathBuf,
}

impl Postponed {
    async fn start(db: &Db, table: &str, alter: &str, extra: &[&str]) -> Postponed {
        let flag = std::env::temp_dir().join(format!("godwit-postpone-{}", db.name()));
        std::fs::write(&flag, b"").unwrap();
        let flag_s = flag.to_string_lossy().to_string();
        let mut args = vec![
            "--ok-to-drop-table",
            "--postpone-cut-over-flag-file",
            &flag_s,
        ];
        args.extend_from_slice(extra);
        let mut live = LiveRun::start(
            &support::both::run_args_on(db.url(), table, alter, &args),
            &[],
        );
        live.wait_state(120, "postponed").await;
        Postponed { live, flag }
    }

    /// Let the cut-over go, and wait for the run's end.
    async fn go(self) -> Run {
        std::fs::remove_file(&self.flag).unwrap();
        self.live.finish().await
    }
}

async fn writers_through_copy_and_cut_over(e: Engine) {
    let rows = 20_000;
    let db = setup("conc_main", e, rows).await;
    let writers = Writers::start(&db, 4, rows);
    // The writers get going before the copy starts.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let alter = e.pick(
        "ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_v (v), MODIFY v BIGINT NOT NULL",
        "ALTER COLUMN v TYPE bigint, ADD COLUMN note text DEFAULT 'n', ADD COLUMN shipped_at timestamp",
    );
    let run: Run = support::godwit(
        &run_args(
            &db,
            alter,
            &["--chunk-size", "500", "--max-rows-per-second", "10000"],
        ),
        &[],
    )
    .await;
    let during = writers.ops();
    // Writes go on into the new table after the swap.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    writers.stop().await;
    run.expect_ok();
    assert!(
        during > 100,
        "the writers made only {during} writes during the run"
    );
    let done = run.event("done").unwrap();
    assert!(
        done["keys_replayed"].as_u64().unwrap() > 0,
        "no change was replayed: {done}"
    );
    let cols = db.columns("t").await;
    assert!(
        cols.iter().any(|c| c.starts_with("shipped_at "))
            && cols.iter().any(|c| c.starts_with("v bigint")),
        "{cols:?}"
    );
    assert_mirrored(&db).await;
    db.drop_db().await;
}

async fn writers_while_the_cut_over_is_postponed(e: Engine) {
    let rows = 5_000;
    let db = setup("conc_postpone", e, rows).await;
    let writers = Writers::start(&db, 4, rows);
    let waiting = Postponed::start(&db, "t", "ADD COLUMN x INT", &[]).await;
    // Postponed for a while under writes: nothing may be swapped yet.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !db.columns("t").await.iter().any(|c| c.starts_with("x ")),
        "swapped while postponed"
    );
    let run = waiting.go().await;
    writers.stop().await;
    run.expect_ok();
    assert!(db.columns("t").await.iter().any(|c| c.starts_with("x ")));
    assert_mirrored(&db).await;
    db.drop_db().await;
}

/// One writer whose transactions lock two hot rows, the higher key first, with a pause
/// between: a replay that waits for one row while holding another (in key order) closes a
/// deadlock with it, and the server then rolls back the lighter transaction, the
/// writer's. A single writer cannot deadlock with itself, so every error is the replay's.
/// The cut-over stays postponed while the replay runs against it.
async fn the_replay_never_makes_the_application_a_deadlock_victim(e: Engine) {
    let rows = 2_000;
    let db = setup("conc_deadlock", e, rows).await;
    let waiting = Postponed::start(&db, "t", "ADD COLUMN x INT", &[]).await;
    let mut conn = Conn::connect(e, db.url()).await;
    let pause = e.pick("DO SLEEP(0.003)", "SELECT pg_sleep(0.003)");
    let bump = |id: i64| -> Vec<String> {
        e.pick(
            ["t", "mirror"]
                .iter()
                .map(|t| format!("UPDATE {t} SET v = v + 1 WHERE id = {id}"))
                .collect(),
            vec![format!(
                "WITH c AS (UPDATE t SET v = v + 1 WHERE id = {id} RETURNING id) \
                 UPDATE mirror SET v = v + 1 WHERE id IN (SELECT id FROM c)"
            )],
        )
    };
    let (mut ok, mut errors) = (0u32, Vec::new());
    let started = std::time::Instant::now();
    let mut i = 0i64;
    while started.elapsed() < std::time::Duration::from_secs(4) {
        // Hot rows 1..=40: always among the keys the next replay reads.
        let (lo, hi) = (1 + i % 40, 1 + (i * 7 + 13) % 40);
        i += 1;
        if lo == hi {
            continue;
        }
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let mut stmts = bump(hi);
        stmts.push(pause.to_string());
        stmts.extend(bump(lo));
        match conn.transaction(&stmts).await {
            Ok(()) => ok += 1,
            Err(err) => errors.push(err),
        }
    }
    conn.close().await;
    let run = waiting.go().await;
    run.expect_ok();
    assert!(
        errors.is_empty(),
        "{} of {} writes failed while godwit replayed, first: {:?}",
        errors.len(),
        errors.len() as u32 + ok,
        errors.first()
    );
    assert!(ok > 100, "only {ok} writes");
    assert_mirrored(&db).await;
    db.drop_db().await;
}

/// A unique value moves from row to row: one transaction gives row B a fresh value, the
/// next gives B's old value to row A. A replay that reads A as it is now, while the
/// shadow still holds B's old row (B's change not read yet, or in a later batch), meets
/// B's value twice; the run must sort that out itself (B's change is always behind it in
/// the stream) and end equal to the mirror. Two writers, each with its own hot rows, for
/// the whole copy and a postponed cut-over.
async fn unique_values_move_between_rows(e: Engine) {
    let rows = 3_000i64;
    let db = Db::empty(e, "conc_unique").await;
    for t in ["u", "mirror"] {
        db.exec(&format!(
            "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, code BIGINT NOT NULL, v INT NOT NULL, \
             CONSTRAINT {t}_code UNIQUE (code))"
        ))
        .await;
    }
    db.exec(&e.pick(
        format!("INSERT INTO u SELECT seq, seq, 0 FROM seq_1_to_{rows}"),
        format!("INSERT INTO u SELECT i, i, 0 FROM generate_series(1, {rows}) i"),
    ))
    .await;
    db.exec("INSERT INTO mirror SELECT * FROM u").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2i64)
        .map(|w| {
            let (stop, url) = (stop.clone(), db.url().to_string());
            tokio::spawn(async move {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64 + 11);
                let mut conn = Conn::connect(e, &url).await;
                // This writer's rows (ids 1..=60 of its parity) and their codes.
                let mut codes: std::collections::BTreeMap<i64, i64> =
                    (1..=60).filter(|i| i % 2 == w).map(|i| (i, i)).collect();
                let ids: Vec<i64> = codes.keys().copied().collect();
                let (mut fresh, mut ok, mut errors) = (10_000_000 * (w + 1), 0u64, Vec::new());
                let set = |id: i64, code: i64| -> Vec<String> {
                    ["u", "mirror"]
                        .iter()
                        .map(|t| format!("UPDATE {t} SET code = {code}, v = v + 1 WHERE id = {id}"))
                        .collect()
                };
                while !stop.load(Ordering::SeqCst) && errors.len() < 10 {
                    let a = ids[rng.random_range(0..ids.len())];
                    let b = ids[rng.random_range(0..ids.len())];
                    if a == b {
                        continue;
                    }
                    fresh += 1;
                    let freed = codes[&b];
                    for (id, code) in [(b, fresh), (a, freed)] {
                        match conn.transaction_retried(&set(id, code)).await {
                            Ok(()) => {
                                codes.insert(id, code);
                                ok += 1;
                            }
                            Err(err) => errors.push(err),
                        }
                    }
                }
                conn.close().await;
                (ok, errors)
            })
        })
        .collect();
    let waiting = Postponed::start(&db, "u", "ADD COLUMN x INT", &["--chunk-size", "200"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let run = waiting.go().await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = 0;
    for w in writers {
        let (ok, errors) = w.await.unwrap();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
        writes += ok;
    }
    run.expect_ok();
    assert!(writes > 200, "only {writes} writes");
    let q = |t: &str| format!("SELECT CONCAT_WS('|', id, code, v) FROM {t} ORDER BY id");
    assert_eq!(db.strings(&q("u")).await, db.strings(&q("mirror")).await);
    assert!(db.columns("u").await.iter().any(|c| c.starts_with("x ")));
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;
}

support::both::cases!(
    writers_through_copy_and_cut_over,
    writers_while_the_cut_over_is_postponed,
    the_replay_never_makes_the_application_a_deadlock_victim,
    unique_values_move_between_rows,
);

/// MariaDB: kill the cut-over's lock connection while the RENAME is queued behind it. The
/// RENAME must fail (the sentry table still exists), the run retries, nothing is lost.
#[tokio::test]
async fn killed_lock_connection_does_not_swap_mariadb() {
    let rows = 3_000;
    let db = setup("conc_kill", Engine::Maria, rows).await;
    let Db::Maria(maria) = &db else {
        unreachable!()
    };
    let writers = Writers::start(&db, 4, rows);
    let mut live = LiveRun::start(
        &run_args(
            &db,
            "ADD COLUMN x INT",
            &["--debug-cut-over-hold-millis", "20000"],
        ),
        &[],
    );
    live.wait_for(60, |ev| ev["event"] == "state" && ev["state"] == "cut_over")
        .await;
    // Find the lock holder by its hold statement, and kill it.
    let mut killed = false;
    for _ in 0..400 {
        let ids: Vec<u64> = maria
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%godwit cut-over hold%' AND INFO NOT LIKE '%PROCESSLIST%'")
            .await;
        if let Some(id) = ids.first() {
            // While the lock is held, the table must not be swapped.
            let renames: Vec<u64> = maria
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
    writers.stop().await;
    assert_mirrored(&db).await;
    db.drop_db().await;
}
