//! Never start over (issue #11, item 1): godwit killed with SIGKILL in every state, with a
//! writer running the whole time, and the same command run again. The rerun resumes from
//! the checkpoint (it keeps the shadow, does not copy again what was copied, replays from
//! the saved binlog position or LSN — on PostgreSQL with the keys parked during the copy
//! and the slot the dead run left). The result equals the original plus every committed
//! write, and nothing of godwit's is left.
mod support;

use support::both::{Db, Engine, MirrorWriter, ROWS, WRITER_IDS};
use support::{LiveRun, Run};

const ALTER: &str = "ADD COLUMN extra INT, ADD INDEX by_v (v)";
const PG_ALTER: &str = "ADD COLUMN extra INT, ALTER COLUMN note TYPE varchar(80)";

fn alter(db: &Db) -> &'static str {
    match db.engine() {
        Engine::Maria => ALTER,
        Engine::Postgres => PG_ALTER,
    }
}

fn args<'a>(db: &'a Db, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = support::both::run_args(
        db.url(),
        alter(db),
        &[
            "--ok-to-drop-table",
            "--chunk-size",
            "100",
            "--chunk-time-millis",
            "10",
        ],
    );
    v.extend_from_slice(extra);
    v
}

/// The saved checkpoint of `orders`, if there is one.
async fn checkpoint(db: &Db) -> Option<serde_json::Value> {
    let exists = match db.engine() {
        Engine::Maria => "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_godwit_checkpoint'",
        Engine::Postgres => "SELECT relname::text FROM pg_class WHERE relname = '_godwit_checkpoint' AND relnamespace = 'public'::regnamespace",
    };
    if db.strings(exists).await.is_empty() {
        return None;
    }
    let s = db
        .strings("SELECT state FROM _godwit_checkpoint WHERE table_name = 'orders'")
        .await;
    serde_json::from_str(s.first()?).ok()
}

/// The checkpoint's rows_copied, if there is one.
async fn checkpoint_rows(db: &Db) -> Option<u64> {
    checkpoint(db).await?["rows_copied"].as_u64()
}

/// The first key part of a saved key (an integer on MariaDB, text on PostgreSQL).
fn first_key(k: &serde_json::Value) -> i64 {
    k[0]["Int"]
        .as_i64()
        .or_else(|| k[0]["Text"].as_str().and_then(|t| t.parse().ok()))
        .unwrap_or_else(|| panic!("not a key: {k}"))
}

/// The migration is complete (the new column exists): killed after the swap, before it
/// said `done`. On MariaDB the rerun finishes the cleanup from the checkpoint; without a
/// checkpoint left (killed after removing it, or PostgreSQL) `godwit cleanup` does.
async fn finished_before_the_kill(db: &Db) -> bool {
    if !db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra "))
    {
        return false;
    }
    if checkpoint_rows(db).await.is_some() {
        return false;
    }
    support::godwit(
        &[
            "cleanup",
            "--url",
            db.url(),
            "--table",
            "orders",
            "--execute",
            "--include-old-tables",
        ],
        &[],
    )
    .await
    .expect_ok();
    true
}

async fn assert_done(db: &Db, run: &Run) {
    run.expect_ok();
    assert_same(db).await;
}

/// `orders` equals the writer's mirror, has the new column, and nothing of godwit's is
/// left.
async fn assert_same(db: &Db) {
    let (got, want) = db.orders_and_mirror().await;
    assert_eq!(got.len(), want.len(), "row counts differ");
    assert!(got == want, "orders differs from the writer's mirror");
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Kill during the copy once the checkpoint shows `at` rows copied, then rerun to the
/// end: it resumes the copy after the checkpoint's key.
async fn killed_during_copy(engine: Engine, at: u64) {
    let db = Db::new(engine, "resume_copy").await;
    let writer = MirrorWriter::start(&db, at).await;
    let live = LiveRun::start(&args(&db, &["--max-rows-per-second", "600"]), &[]);
    let mut waited = 0;
    while checkpoint_rows(&db).await.unwrap_or(0) < at {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 1000, "no checkpoint with {at} rows");
    }
    live.signal(9);
    let first_run = live.finish().await;
    // The checkpoint was reported (`checkpoint` event) with the stage it saved.
    let said = first_run
        .event("checkpoint")
        .unwrap_or_else(|| panic!("no checkpoint event:\n{}", first_run.stdout));
    assert_eq!(said["stage"], "copy", "{said}");
    let rerun = LiveRun::start(&args(&db, &[]), &[]).finish().await;
    writer.stop().await;
    let r = rerun
        .event("resume")
        .unwrap_or_else(|| panic!("no resume event:\n{}\n{}", rerun.stdout, rerun.stderr));
    assert_eq!(r["stage"], "copy", "{r}");
    let before = r["rows_copied"].as_u64().unwrap();
    assert!(before >= at, "{r}");
    // The copy went on after the checkpoint's key, not from the start.
    let first = first_key(&r["copied_upto"]);
    assert!(first >= at as i64 - 100, "{r}");
    let done = rerun.event("done").expect("done event");
    let by_rerun = done["rows_copied"].as_u64().unwrap() - before;
    assert!(
        by_rerun < ROWS as u64 - at + 200,
        "the rerun copied {by_rerun} rows: {done}"
    );
    assert_done(&db, &rerun).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_early_in_the_copy_mariadb() {
    killed_during_copy(Engine::Maria, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_late_in_the_copy_mariadb() {
    killed_during_copy(Engine::Maria, (ROWS as u64) * 8 / 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_early_in_the_copy_postgres() {
    killed_during_copy(Engine::Postgres, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_late_in_the_copy_postgres() {
    killed_during_copy(Engine::Postgres, (ROWS as u64) * 8 / 10).await;
}

/// Kill while the cut-over is postponed (copy done, in sync): the rerun resumes after
/// the copy.
async fn killed_while_postponed(engine: Engine) {
    let db = Db::new(engine, "resume_post").await;
    let flag =
        std::env::temp_dir().join(format!("godwit-postpone-{}-{engine:?}", std::process::id()));
    std::fs::write(&flag, "").unwrap();
    let writer = MirrorWriter::start(&db, 7).await;
    let flag_s = flag.to_string_lossy().to_string();
    let mut live = LiveRun::start(&args(&db, &["--postpone-cut-over-flag-file", &flag_s]), &[]);
    live.wait_state(120, "postponed").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    live.signal(9);
    let _ = live.finish().await;
    std::fs::remove_file(&flag).unwrap();
    let rerun = LiveRun::start(&args(&db, &[]), &[]).finish().await;
    writer.stop().await;
    let r = rerun.event("resume").expect("resume event");
    assert_eq!(r["stage"], "copied", "{r}");
    assert!(
        !rerun.states().contains(&"copy".to_string()),
        "copied again: {:?}",
        rerun.states()
    );
    assert_done(&db, &rerun).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_postponed_mariadb() {
    killed_while_postponed(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_postponed_postgres() {
    killed_while_postponed(Engine::Postgres).await;
}

/// Killed KILLS times at seeded moments (copy, catch-up, verify, postponed: the cut-over is
/// postponed until the last kill, so every run is killed before it ends; each moment is
/// a seeded delay after the run got past its start, so a slow machine kills as late): every rerun
/// after a kill that left a checkpoint resumes it, and the last one ends equal.
/// Seeded kill points per engine.
const KILLS: usize = 20;

async fn killed_many_times(engine: Engine, seed: u64) {
    let db = Db::new(engine, "resume_many").await;
    let writer = MirrorWriter::start(&db, seed).await;
    let flag = std::env::temp_dir().join(format!(
        "godwit-resume-many-{}-{engine:?}",
        std::process::id()
    ));
    std::fs::write(&flag, "").unwrap();
    let flag_s = flag.to_string_lossy().to_string();
    let mut x = seed;
    let mut kills = 0;
    let mut history = Vec::new();
    // The last kill left a checkpoint: the next run must resume it.
    let mut left = false;
    let mut resumed = 0;
    let run: Option<Run> = loop {
        let live = LiveRun::start(
            &args(
                &db,
                &[
                    "--max-rows-per-second",
                    "400",
                    "--postpone-cut-over-flag-file",
                    &flag_s,
                ],
            ),
            &[],
        );
        // xorshift: the kill points are the same on every machine for a seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = x % 900;
        // Past its start: the shadow (or the checkpoint it resumes) is there.
        let mut live = live;
        live.wait_until(60, |e| {
            (e["event"] == "state" && e["state"] != "preflight" && e["state"] != "prepare")
                || e["event"] == "resume"
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        if kills == KILLS {
            std::fs::remove_file(&flag).unwrap();
            let r = live.finish().await;
            assert!(
                !left || r.event("resume").is_some(),
                "the last run did not resume: {}\n{}",
                r.stdout,
                r.stderr
            );
            break Some(r);
        }
        live.signal(9);
        let r = live.finish().await;
        // Past its start (killed before it read the checkpoint, it could not say).
        let progressed = r
            .states()
            .iter()
            .any(|s| s != "preflight" && s != "prepare");
        if left && progressed {
            assert!(
                r.event("resume").is_some(),
                "run {} did not resume the checkpoint: {}\n{}",
                kills + 1,
                r.stdout,
                r.stderr
            );
        }
        resumed += usize::from(r.event("resume").is_some());
        eprintln!(
            "kill {}: after {delay} ms, in state {:?}, resumed: {}",
            kills + 1,
            r.states().last(),
            r.event("resume").is_some()
        );
        history.push(format!(
            "killed after {delay} ms; events:\n{}\nstderr:\n{}",
            r.stdout,
            r.stderr
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        ));
        kills += 1;
        if r.event("done").is_some() {
            // It finished before the kill: that is an end too.
            break Some(r);
        }
        if finished_before_the_kill(&db).await {
            // Killed after its last step (the checkpoint removed) but before it said
            // `done`: the migration is complete, a rerun would apply the ALTER again.
            break None;
        }
        left = checkpoint(&db).await.is_some();
    };
    let _ = std::fs::remove_file(&flag);
    assert_eq!(kills, KILLS, "{}", history.join("\n"));
    assert!(
        resumed >= KILLS / 2,
        "{kills} kills and {resumed} resumed:\n{}",
        history.join("\n")
    );
    writer.stop().await;
    let history = history.join("\n");
    if let Some(run) = &run {
        assert_eq!(run.code, 0, "{}\nearlier runs:\n{history}", run.stdout);
        assert_done(&db, run).await;
    } else {
        assert_same(&db).await;
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_twenty_seeded_points_mariadb() {
    killed_many_times(Engine::Maria, 0x9e37_79b9_7f4a_7c15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_twenty_seeded_points_postgres() {
    killed_many_times(Engine::Postgres, 0x2545_f491_4f6c_dd1d).await;
}

/// A checkpoint of another change is refused (exit 37, nothing touched); `--restart`
/// discards it; `--resume` without a checkpoint is refused.
#[tokio::test(flavor = "multi_thread")]
async fn another_change_is_refused_until_restart_mariadb() {
    let engine = Engine::Maria;
    let db = Db::new(engine, "resume_other").await;
    let want = db.rows(WRITER_IDS).await;
    let live = LiveRun::start(&args(&db, &["--max-rows-per-second", "600"]), &[]);
    while checkpoint_rows(&db).await.unwrap_or(0) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    live.signal(9);
    let _ = live.finish().await;
    let url = db.url().to_string();
    let other = |extra: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let mut a = vec![
                "run",
                "--url",
                &url,
                "--table",
                "orders",
                "--alter",
                "ADD COLUMN other INT",
                "--execute",
                "--format",
                "json",
                "--ok-to-drop-table",
            ];
            a.extend_from_slice(extra);
            support::godwit(&a, &[]).await
        }
    };
    // `godwit status --table` shows where the dead run stopped.
    let st = support::godwit(
        &[
            "status",
            "--url",
            db.url(),
            "--table",
            "orders",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    st.expect_ok();
    let cp = &st.event("checkpoint").expect("checkpoint event")["checkpoint"];
    assert_eq!(cp["alter"], ALTER, "{cp}");
    assert_eq!(cp["stage"], "copy", "{cp}");
    assert!(cp["rows_copied"].as_u64().unwrap() >= 300, "{cp}");
    let r = other(&[]).await;
    assert_eq!(r.code, 37, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(ALTER) || r.stderr.contains(ALTER),
        "{}",
        r.stderr
    );
    assert!(
        checkpoint_rows(&db).await.is_some(),
        "the checkpoint was touched"
    );
    let r = other(&["--restart"]).await;
    r.expect_ok();
    assert!(r.event("resume").is_none());
    assert_eq!(&db.rows(WRITER_IDS).await, &want);
    assert!(
        db.leftovers().await.is_empty(),
        "{:?}",
        db.leftovers().await
    );
    let r = other(&["--resume"]).await;
    assert_eq!(r.code, 37, "{}", r.stderr);
    db.drop_db().await;
}

/// The PostgreSQL checkpoint table: created by the first save, one row per table, saved
/// by an upsert that sets only `state` and `saved_at` (a column added later keeps its
/// value), dropped with its last row; `godwit cleanup` lists and removes a table's row.
#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_table_postgres() {
    let db = Db::new(Engine::Postgres, "resume_cp").await;
    let target = godwit::target::Target::parse(db.url(), None).unwrap();
    let open = |t: &'static str| {
        let target = target.clone();
        async move {
            godwit::dispatch::connect(&target, t, &Default::default())
                .await
                .unwrap()
        }
    };
    let (a, b) = (open("orders").await, open("victim").await);
    assert_eq!(a.load_checkpoint().await.unwrap(), None);
    a.drop_checkpoint().await.unwrap();
    a.save_checkpoint("one").await.unwrap();
    b.save_checkpoint("other").await.unwrap();
    db.exec("ALTER TABLE _godwit_checkpoint ADD COLUMN note text")
        .await;
    db.exec("UPDATE _godwit_checkpoint SET note = 'kept'").await;
    a.save_checkpoint("two").await.unwrap();
    assert_eq!(a.load_checkpoint().await.unwrap().as_deref(), Some("two"));
    assert_eq!(
        db.strings("SELECT note FROM _godwit_checkpoint WHERE table_name = 'orders'")
            .await,
        vec!["kept".to_string()]
    );
    let listed = support::godwit(
        &[
            "cleanup",
            "--url",
            db.url(),
            "--table",
            "victim",
            "--include-old-tables",
        ],
        &[],
    )
    .await;
    listed.expect_ok();
    assert!(
        listed.stdout.contains("_godwit_checkpoint"),
        "{}",
        listed.stdout
    );
    a.drop_checkpoint().await.unwrap();
    assert_eq!(a.load_checkpoint().await.unwrap(), None);
    assert_eq!(b.load_checkpoint().await.unwrap().as_deref(), Some("other"));
    support::godwit(
        &[
            "cleanup",
            "--url",
            db.url(),
            "--table",
            "victim",
            "--execute",
        ],
        &[],
    )
    .await
    .expect_ok();
    assert_eq!(b.load_checkpoint().await.unwrap(), None);
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    a.close().await.unwrap();
    b.close().await.unwrap();
    db.drop_db().await;
}

/// A godwit replication slot that no run is using (here: of a table no run is
/// migrating) is named at the start, with the WAL it holds back, as a warning (a WARN line
/// and a `warning` event); the run goes on.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_slot_holding_wal_is_warned_about_postgres() {
    let db = Db::new(Engine::Postgres, "resume_slot").await;
    let want = db.rows(WRITER_IDS).await;
    let slot = format!("_godwit_slot_gone_{:08x}", std::process::id());
    db.exec(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .await;
    db.exec("CREATE TABLE filler AS SELECT generate_series(1, 20000) i")
        .await;
    let run = support::godwit(&args(&db, &[]), &[]).await;
    db.exec(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await;
    run.expect_ok();
    let w = run
        .events
        .iter()
        .find(|e| e["event"] == "warning" && e["slot"] == slot.as_str())
        .unwrap_or_else(|| panic!("no warning about {slot}:\n{}", run.stdout));
    assert!(w["retained_wal_bytes"].as_i64().unwrap() > 0, "{w}");
    assert!(w["message"].as_str().unwrap().contains("of WAL"), "{w}");
    assert!(run.stderr.contains(&slot), "{}", run.stderr);
    // This run's own slot is not an old one (slots of other tests' databases may be).
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let here: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["event"] == "warning" && e["database"] == pg.name.as_str())
        .collect();
    assert_eq!(here.len(), 1, "{}", run.stdout);
    assert_eq!(db.rows(WRITER_IDS).await, want);
    assert!(
        db.leftovers().await.is_empty(),
        "{:?}",
        db.leftovers().await
    );
    db.drop_db().await;
}

/// Kill a PostgreSQL run during the copy (once its checkpoint shows rows copied).
async fn killed_pg_run(db: &Db) {
    let live = LiveRun::start(&args(db, &["--max-rows-per-second", "600"]), &[]);
    let mut waited = 0;
    while checkpoint_rows(db).await.unwrap_or(0) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 1000, "no checkpoint");
    }
    live.signal(9);
    let _ = live.finish().await;
}

/// What a killed PostgreSQL run leaves is shown by `godwit status` and `godwit cleanup`;
/// a slot that was dropped, or advanced past the checkpoint, cannot be resumed: exit 37
/// saying why, nothing touched, and `--restart` starts over.
#[tokio::test(flavor = "multi_thread")]
async fn a_slot_that_cannot_resume_is_refused_postgres() {
    let db = Db::new(Engine::Postgres, "resume_slot_gone").await;
    let want = db.rows(WRITER_IDS).await;
    for damage in ["dropped", "advanced"] {
        killed_pg_run(&db).await;
        let st = support::godwit(
            &[
                "status",
                "--url",
                db.url(),
                "--table",
                "orders",
                "--format",
                "json",
            ],
            &[],
        )
        .await;
        st.expect_ok();
        let cp = &st.event("checkpoint").expect("checkpoint event")["checkpoint"];
        assert_eq!(cp["stage"], "copy", "{cp}");
        assert!(cp["position"].as_u64().is_some(), "an LSN: {cp}");
        let listed =
            support::godwit(&["cleanup", "--url", db.url(), "--table", "orders"], &[]).await;
        listed.expect_ok();
        for what in [
            "_godwit_new_orders",
            "_godwit_park_orders",
            "replication slot _godwit_slot_orders_",
            "publication _godwit_pub_orders_",
            "_godwit_checkpoint",
        ] {
            assert!(listed.stdout.contains(what), "{what}: {}", listed.stdout);
        }
        let slot = db
            .strings("SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database()")
            .await;
        assert_eq!(slot.len(), 1, "{slot:?}");
        let slot = &slot[0];
        // Wait until the dead run's sessions are gone (the slot is free).
        for _ in 0..200 {
            let active = db
                .strings(&format!(
                    "SELECT active::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
                ))
                .await;
            if active == ["false"] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        db.exec("INSERT INTO victim VALUES (4)").await;
        let why = match damage {
            "dropped" => {
                db.exec(&format!("SELECT pg_drop_replication_slot('{slot}')"))
                    .await;
                "is gone"
            }
            _ => {
                db.exec(&format!(
                    "SELECT pg_replication_slot_advance('{slot}', pg_current_wal_lsn())"
                ))
                .await;
                "moved past the checkpoint"
            }
        };
        let before = db.leftovers().await;
        let r = support::godwit(&args(&db, &[]), &[]).await;
        assert_eq!(r.code, 37, "{damage}: {}\n{}", r.stdout, r.stderr);
        let err = r.event("error").expect("error event");
        let msg = err["message"].as_str().unwrap();
        assert!(msg.contains(slot) && msg.contains(why), "{damage}: {msg}");
        assert!(err["hint"].as_str().unwrap().contains("--restart"), "{err}");
        assert_eq!(db.leftovers().await, before, "{damage}: touched");
        assert!(
            checkpoint(&db).await.is_some(),
            "{damage}: checkpoint touched"
        );
        let r = support::godwit(&args(&db, &["--restart"]), &[]).await;
        r.expect_ok();
        assert!(r.event("resume").is_none());
        assert_eq!(db.rows(WRITER_IDS).await, want);
        let left = db.leftovers().await;
        assert!(left.is_empty(), "left behind: {left:?}");
        // Back to the original schema for the next round.
        db.exec("ALTER TABLE orders DROP COLUMN extra").await;
        db.exec("DELETE FROM victim WHERE id = 4").await;
    }
    db.drop_db().await;
}

/// Killed right after the swap, before its cleanup: the rerun sees the tables swapped,
/// only finishes the cleanup (the old table, and on PostgreSQL the dead run's slot,
/// publication and park table) and says `done`.
async fn killed_after_the_swap(engine: Engine) {
    let db = Db::new(engine, "resume_swapped").await;
    let writer = MirrorWriter::start(&db, 11).await;
    let mut live = LiveRun::start(&args(&db, &["--debug-after-swap-hold-millis", "5000"]), &[]);
    live.wait_state(120, "cleanup").await;
    live.signal(9);
    let _ = live.finish().await;
    assert!(checkpoint(&db).await.is_some(), "no checkpoint left");
    let rerun = LiveRun::start(&args(&db, &[]), &[]).finish().await;
    writer.stop().await;
    let r = rerun
        .event("resume")
        .unwrap_or_else(|| panic!("no resume event:\n{}\n{}", rerun.stdout, rerun.stderr));
    assert_eq!(r["swapped"], true, "{r}");
    assert_done(&db, &rerun).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_swap_mariadb() {
    killed_after_the_swap(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_swap_postgres() {
    killed_after_the_swap(Engine::Postgres).await;
}
