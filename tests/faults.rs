//! Fault tests (issue #11, item 5), one case table run on MariaDB and PostgreSQL, with a
//! writer inserting the whole time:
//! - SIGTERM in every state before the swap (copy, catch-up, verify, postponed, a cut-over
//!   attempt blocked by another session): a clean stop, exit 30, the original and every
//!   committed write untouched, nothing of godwit's left (no checkpoint either: README,
//!   "Ctrl-C or SIGTERM");
//! - the server restarted (clean shutdown and start) mid-copy and while the run is caught
//!   up and postponed: godwit reconnects and finishes, the result holds every row and
//!   every committed write, nothing left; a second run started after the restart is
//!   refused (the first one holds the table's runner lock again).
mod support;

use std::path::PathBuf;
use support::both::{Db, Engine, Writer, ROWS, WRITER_IDS};
use support::{LiveRun, PrivateServer, Run};

fn alter(engine: Engine) -> &'static str {
    match engine {
        Engine::Maria => "ADD COLUMN extra INT, ADD INDEX by_v (v)",
        Engine::Postgres => "ADD COLUMN extra INT, ALTER COLUMN note TYPE varchar(80)",
    }
}

fn flag_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("godwit-faults-{}-{name}", std::process::id()))
}

fn args(db: &Db, rate: &str, extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "run",
        "--url",
        db.url(),
        "--table",
        "orders",
        "--alter",
        alter(db.engine()),
        "--execute",
        "--format",
        "json",
        "--ok-to-drop-table",
        "--chunk-size",
        "100",
        "--max-rows-per-second",
        rate,
        "--cut-over-lock-timeout-seconds",
        "1",
        "--cut-over-retries",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend_from_slice(extra);
    v
}

fn start(args: &[String]) -> LiveRun {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    LiveRun::start(&a, &[])
}

fn signal(live: &LiveRun, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &live.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn is_state(e: &serde_json::Value, state: &str) -> bool {
    e["event"] == "state" && e["state"] == state
}

/// Where SIGTERM is sent.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Rows are being copied.
    Copy,
    /// On entering the catch-up (a postpone flag keeps the run short of the swap).
    CatchUp,
    /// On entering verification (likewise).
    Verify,
    /// Caught up and postponed.
    Postponed,
    /// After a cut-over attempt failed because another session holds the table.
    CutOverBlocked,
}

/// A session that keeps the table from being locked for the cut-over while letting
/// the writer go on: an open transaction that touched it.
async fn blocker(db: &Db) -> Box<dyn std::any::Any + Send> {
    match db {
        Db::Maria(m) => {
            use mysql_async::prelude::Queryable;
            let mut c = m.conn().await;
            c.query_drop("BEGIN").await.unwrap();
            // Changes nothing (no binlog event), but holds the table's metadata lock.
            c.query_drop("UPDATE orders SET v = v WHERE id = 1")
                .await
                .unwrap();
            Box::new(c)
        }
        Db::Postgres(p) => {
            let c = p.conn().await;
            c.batch_execute("BEGIN").await.unwrap();
            c.batch_execute("SELECT 1 FROM orders LIMIT 1")
                .await
                .unwrap();
            Box::new(c)
        }
    }
}

async fn sigterm_at(engine: Engine, moment: Moment) {
    let db = Db::new(engine, &format!("fault_term_{moment:?}").to_lowercase()).await;
    let before = db.snapshot().await;
    let flag = flag_path(&format!("term-{engine:?}-{moment:?}"));
    let _ = std::fs::remove_file(&flag);
    let mut extra = vec![];
    if !matches!(moment, Moment::Copy) {
        std::fs::write(&flag, b"").unwrap();
        extra = vec![
            "--postpone-cut-over-flag-file".to_string(),
            flag.display().to_string(),
        ];
    }
    let rate = if matches!(moment, Moment::Copy) {
        "1500"
    } else {
        "100000"
    };
    let writer = Writer::start(engine, db.url().to_string());
    let mut live = start(&args(&db, rate, &extra));
    let mut held = None;
    match moment {
        Moment::Copy => {
            live.wait_for(120, |e| {
                e["event"] == "progress" && e["rows_copied"].as_u64() > Some(0)
            })
            .await;
        }
        Moment::CatchUp => {
            live.wait_for(120, |e| is_state(e, "catch_up")).await;
        }
        Moment::Verify => {
            live.wait_for(120, |e| is_state(e, "verify")).await;
        }
        Moment::Postponed => {
            live.wait_for(120, |e| is_state(e, "postponed")).await;
        }
        Moment::CutOverBlocked => {
            live.wait_for(120, |e| is_state(e, "postponed")).await;
            held = Some(blocker(&db).await);
            std::fs::remove_file(&flag).unwrap();
            live.wait_for(120, |e| e["event"] == "cut_over_retry").await;
        }
    }
    signal(&live, "-TERM");
    let run = live.finish().await;
    drop(held);
    let written = writer.stop().await;
    let _ = std::fs::remove_file(&flag);
    assert_eq!(
        run.code, 30,
        "{engine:?} {moment:?}: {}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(run.event("error").unwrap()["kind"], "aborted");
    assert!(run.event("done").is_none(), "{moment:?}: reported done");
    let after = db.snapshot().await;
    assert_eq!(
        after, before,
        "{engine:?} {moment:?}: the original changed or something was left"
    );
    check_writes(&db, &written).await;
    db.drop_db().await;
}

/// Every write that committed is in `orders`, and nothing else above WRITER_IDS.
async fn check_writes(db: &Db, written: &[i64]) {
    assert!(!written.is_empty(), "the writer wrote nothing");
    let sql = match db.engine() {
        Engine::Maria => {
            format!("SELECT CAST(id AS CHAR) FROM orders WHERE id > {WRITER_IDS} ORDER BY id")
        }
        Engine::Postgres => {
            format!("SELECT id::text FROM orders WHERE id > {WRITER_IDS} ORDER BY id")
        }
    };
    let got: Vec<i64> = db
        .strings(&sql)
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, written, "committed writes lost or invented");
}

macro_rules! sigterm_cases {
    ($($name:ident: $engine:expr, $moment:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            sigterm_at($engine, $moment).await;
        }
    )*};
}

sigterm_cases! {
    sigterm_in_copy_mariadb: Engine::Maria, Moment::Copy;
    sigterm_in_copy_postgres: Engine::Postgres, Moment::Copy;
    sigterm_in_catch_up_mariadb: Engine::Maria, Moment::CatchUp;
    sigterm_in_catch_up_postgres: Engine::Postgres, Moment::CatchUp;
    sigterm_in_verify_mariadb: Engine::Maria, Moment::Verify;
    sigterm_in_verify_postgres: Engine::Postgres, Moment::Verify;
    sigterm_while_postponed_mariadb: Engine::Maria, Moment::Postponed;
    sigterm_while_postponed_postgres: Engine::Postgres, Moment::Postponed;
    sigterm_in_a_blocked_cut_over_mariadb: Engine::Maria, Moment::CutOverBlocked;
    sigterm_in_a_blocked_cut_over_postgres: Engine::Postgres, Moment::CutOverBlocked;
}

/// Where the server restart lands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RestartAt {
    Copy,
    Postponed,
    /// During the verification (godwit stopped with SIGSTOP in it, so the restart lands
    /// there whatever the machine's speed).
    Verify,
    /// While the cut-over holds its lock (before the swap).
    CutOver,
}

/// The server is restarted while godwit copies, while it is caught up and postponed, or
/// while the cut-over holds its lock; godwit reconnects and ends with every row and every
/// committed write.
async fn server_restart(engine: Engine, at: RestartAt) {
    let copying = at == RestartAt::Copy;
    let server = match engine {
        Engine::Maria => PrivateServer::mariadb(&[]),
        Engine::Postgres => PrivateServer::postgres(&[]),
    };
    let db = Db::new_on(engine, &server.url, "fault_restart").await;
    let mut rows = ROWS as usize;
    if at == RestartAt::Verify {
        // Enough rows that the verification is still running when godwit is stopped.
        db.exec(engine.pick(
            "INSERT INTO orders (id, v, note) SELECT 3000 + seq, seq, 'more' FROM seq_1_to_100000",
            "INSERT INTO orders (id, v, note) SELECT 3000 + i, i, 'more' FROM generate_series(1, 100000) i",
        ))
        .await;
        rows += 100_000;
    }
    let original = db.rows(WRITER_IDS).await;
    assert_eq!(original.len(), rows);
    let flag = flag_path(&format!("restart-{engine:?}-{at:?}"));
    let _ = std::fs::remove_file(&flag);
    std::fs::write(&flag, b"").unwrap();
    let mut extra = vec![
        "--postpone-cut-over-flag-file".to_string(),
        flag.display().to_string(),
        "--reconnect-timeout-seconds".to_string(),
        "60".to_string(),
    ];
    if at == RestartAt::CutOver {
        // The first attempt holds the lock for 3 s before it swaps.
        extra.extend([
            "--debug-cut-over-hold-millis".to_string(),
            "3000".to_string(),
        ]);
    }
    let rate = if copying { "600" } else { "100000" };
    let writer = Writer::start(engine, db.url().to_string());
    let mut live = start(&args(&db, rate, &extra));
    if copying {
        live.wait_for(120, |e| {
            e["event"] == "progress" && e["rows_copied"].as_u64() > Some(300)
        })
        .await;
    } else if at != RestartAt::Verify {
        live.wait_for(120, |e| is_state(e, "postponed")).await;
    }
    if at == RestartAt::CutOver {
        std::fs::remove_file(&flag).unwrap();
        live.wait_for(120, |e| is_state(e, "cut_over")).await;
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
    if at == RestartAt::Verify {
        live.wait_for(120, |e| is_state(e, "verify")).await;
        live.signal(19); // SIGSTOP
    }
    server.restart();
    if at == RestartAt::Verify {
        live.signal(18); // SIGCONT
    }
    live.wait_for(120, |e| {
        e["event"] == "reconnect" && e["status"] == "restored"
    })
    .await;
    if at == RestartAt::CutOver {
        // Nothing to do: the next attempt swaps.
    } else if copying || at == RestartAt::Verify {
        live.wait_for(120, |e| is_state(e, "postponed")).await;
    } else {
        // The runner lock went with the session that held it: within a few seconds the
        // run holds it again, so a second run of the same change is refused (exit 20)
        // instead of taking over (or removing) the live run's shadow.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let second = args(&db, rate, &extra);
        let second: Vec<&str> = second.iter().map(|s| s.as_str()).collect();
        let r = support::godwit(&second, &[]).await;
        assert_eq!(r.code, 20, "second run: {}\n{}", r.stdout, r.stderr);
    }
    let _ = std::fs::remove_file(&flag);
    let run: Run = live.finish().await;
    let written = writer.stop().await;
    assert_eq!(run.code, 0, "{engine:?}: {}\n{}", run.stdout, run.stderr);
    assert!(run.event("done").is_some());
    if at == RestartAt::Verify {
        // The connection was lost in the verification, which started again.
        let pos = |f: &dyn Fn(&serde_json::Value) -> bool| run.events.iter().position(f);
        let lost = pos(&|e| e["event"] == "reconnect").expect("a reconnect event");
        let verify = pos(&|e| is_state(e, "verify")).expect("the verify state");
        let postponed = pos(&|e| is_state(e, "postponed")).expect("the postponed state");
        assert!(
            verify < lost && lost < postponed,
            "{engine:?}: the restart did not land in the verification:\n{}",
            run.stdout
        );
    }
    let db = db.reopen().await;
    assert_eq!(
        db.rows(WRITER_IDS).await,
        original,
        "{engine:?}: original rows differ"
    );
    check_writes(&db, &written).await;
    assert!(
        db.columns("orders")
            .await
            .iter()
            .any(|c| c.starts_with("extra ")),
        "the ALTER is not applied"
    );
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
    drop(server);
}

async fn server_restart_mid_copy(e: Engine) {
    server_restart(e, RestartAt::Copy).await;
}

async fn server_restart_while_caught_up(e: Engine) {
    server_restart(e, RestartAt::Postponed).await;
}

async fn server_restart_during_the_verification(e: Engine) {
    server_restart(e, RestartAt::Verify).await;
}

async fn server_restart_inside_the_cut_over(e: Engine) {
    server_restart(e, RestartAt::CutOver).await;
}

support::both::cases!(
    server_restart_mid_copy,
    server_restart_while_caught_up,
    server_restart_during_the_verification,
    server_restart_inside_the_cut_over,
);
