//! User text is untrusted, and exit codes tell the truth (issue #9), on both engines with a
//! writer running:
//! - hostile `--alter` strings (extra statements, comments, quoting tricks, clauses that
//!   move the table): exit 2 in a dry run and with --execute, nothing sent, nothing changed;
//! - hostile migration-file fields: refused before anything runs;
//! - the server lost right after the swap: exit 35, a `done` event with
//!   `cleanup_complete: false`, and `godwit cleanup` finishes the job;
//! - the server dropping godwit's sessions mid-run: exit 10 (unreachable), and the next
//!   run removes what the dead run left and migrates.
mod support;

use support::both::{Db, Engine, Writer, ROWS, WRITER_IDS};
use support::proxy::{host_port, Proxy};
use support::{godwit, LiveRun, Run};

/// Hostile `--alter` strings and the engines they are aimed at.
const HOSTILE: &[(&str, &[Engine])] = &[
    ("ADD COLUMN x INT; DROP TABLE victim", BOTH),
    ("ADD COLUMN x INT\n; DROP TABLE victim", BOTH),
    ("ADD COLUMN x INT;DROP TABLE victim", BOTH),
    ("ADD COLUMN x INT; ; DROP TABLE victim", BOTH),
    (
        "ALTER TABLE orders ADD COLUMN x INT; DROP TABLE victim",
        BOTH,
    ),
    (
        "ALTER TABLE orders ADD COLUMN x INT; ALTER TABLE victim ADD y INT",
        BOTH,
    ),
    ("ADD COLUMN x INT; DROP TABLE victim; --", BOTH),
    ("ADD COLUMN x INT /* a */; /* b */ DROP TABLE victim", BOTH),
    ("ADD COLUMN x INT -- c\n; DROP TABLE victim", BOTH),
    ("ADD COLUMN x INT /* unclosed ; DROP TABLE victim", BOTH),
    (
        "ADD COLUMN x VARCHAR(9) DEFAULT 'unclosed; DROP TABLE victim",
        BOTH,
    ),
    (
        "ADD COLUMN x VARCHAR(9) DEFAULT 'a\\'; DROP TABLE victim; -- '",
        BOTH,
    ),
    ("ALTER TABLE victim DROP COLUMN id", BOTH),
    ("RENAME TO stolen", BOTH),
    ("", BOTH),
    ("  ;  ", BOTH),
    // MariaDB: executable comments, `#` comments, `--` without a space, backticks.
    ("ADD COLUMN x INT /*!; DROP TABLE victim */", MY),
    ("ADD COLUMN x INT /*!50000 , DROP COLUMN note */", MY),
    ("ADD COLUMN x INT /*M!100000 ; DROP TABLE victim */", MY),
    ("ADD COLUMN x INT # c\n; DROP TABLE victim", MY),
    ("ADD COLUMN x INT DEFAULT 1--1; DROP TABLE victim", MY),
    ("ADD COLUMN `x INT; DROP TABLE victim", MY),
    ("ADD COLUMN `a``b` INT; DROP TABLE victim", MY),
    (
        "ADD COLUMN x VARCHAR(9) DEFAULT \"a\\\"; DROP TABLE victim; -- \"",
        MY,
    ),
    ("RENAME AS stolen", MY),
    ("DISCARD TABLESPACE", MY),
    // PostgreSQL: dollar quotes, nested comments, E'' strings, moves.
    ("ADD COLUMN x text DEFAULT $$;$$; DROP TABLE victim", PG),
    ("ADD COLUMN x int DEFAULT (1); DROP TABLE victim; --", PG),
    (
        "ADD COLUMN x text DEFAULT $a$ $b$ $a$; DROP TABLE victim",
        PG,
    ),
    ("ADD COLUMN x int /* */ */ ; DROP TABLE victim", PG),
    (
        "ADD COLUMN x int /* nested /* */ still */; DROP TABLE victim",
        PG,
    ),
    ("ADD COLUMN x int DEFAULT 1$$;$$; DROP TABLE victim", PG),
    (
        "ADD COLUMN x text DEFAULT $$ unclosed; DROP TABLE victim",
        PG,
    ),
    (
        "ADD COLUMN x text DEFAULT E'\\''; DROP TABLE victim; --",
        PG,
    ),
    ("ADD COLUMN \"x int; DROP TABLE victim", PG),
    ("ADD COLUMN x int; COMMIT; DROP TABLE victim", PG),
    ("SET SCHEMA other", PG),
    ("SET TABLESPACE pg_default", PG),
    ("INHERIT victim", PG),
    ("ADD COLUMN x int, SET SCHEMA other", PG),
];
/// Clauses that move the table: `run` refuses them, `plan` describes them.
const MOVES: &[&str] = &[
    "RENAME TO stolen",
    "RENAME AS stolen",
    "DISCARD TABLESPACE",
    "SET SCHEMA other",
    "SET TABLESPACE pg_default",
    "INHERIT victim",
    "ADD COLUMN x int, SET SCHEMA other",
];
const BOTH: &[Engine] = &[Engine::Maria, Engine::Postgres];
const MY: &[Engine] = &[Engine::Maria];
const PG: &[Engine] = &[Engine::Postgres];

async fn run(url: &str, alter: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "run", "--url", url, "--table", "orders", "--alter", alter, "--format", "json",
    ];
    args.extend_from_slice(extra);
    godwit(&args, &[]).await
}

async fn hostile_alters_are_refused(engine: Engine) {
    let db = Db::new(engine, "hostile").await;
    if engine == Engine::Postgres {
        db.exec("CREATE SCHEMA other").await;
    }
    let writer = Writer::start(engine, db.url().to_string());
    let before = db.snapshot().await;
    let cases: Vec<&str> = HOSTILE
        .iter()
        .filter(|(_, e)| e.contains(&engine))
        .map(|(a, _)| *a)
        .collect();
    assert!(cases.len() >= 20, "{engine:?}: {} cases", cases.len());
    for alter in cases {
        for extra in [
            &[][..],
            &["--execute"][..],
            &["--attempt-native", "--execute"][..],
        ] {
            let r = run(db.url(), alter, extra).await;
            assert_eq!(
                r.code, 2,
                "{engine:?} {extra:?} {alter:?}: expected exit 2\nstdout: {}\nstderr: {}",
                r.stdout, r.stderr
            );
            let err = r
                .event("error")
                .unwrap_or_else(|| panic!("no error event: {}", r.stdout));
            assert_eq!(err["kind"], "bad_input", "{alter:?}: {err}");
            assert!(err["hint"].is_string(), "{alter:?}: no hint in {err}");
            assert!(
                !r.states().iter().any(|s| s == "prepare"),
                "{alter:?}: a refused run must not get to creating anything: {:?}",
                r.states()
            );
            assert_eq!(
                db.snapshot().await,
                before,
                "{engine:?} {alter:?} changed something"
            );
        }
        let plan = godwit(
            &[
                "plan",
                "--url",
                db.url(),
                "--table",
                "orders",
                "--alter",
                alter,
            ],
            &[],
        )
        .await;
        // `godwit plan` plans what moves the table (it runs nothing); everything else
        // it refuses like `run`.
        if !MOVES.contains(&alter) {
            assert_eq!(plan.code, 2, "plan {alter:?}: {}", plan.stderr);
        }
        assert_eq!(
            db.snapshot().await,
            before,
            "plan {alter:?} changed something"
        );
    }
    let written = writer.stop().await;
    assert!(!written.is_empty(), "the writer wrote nothing");
    assert_eq!(db.snapshot().await, before);
    // The same table still migrates, with the writer's rows.
    let r = run(
        db.url(),
        "ADD COLUMN x INT",
        &["--execute", "--ok-to-drop-table"],
    )
    .await;
    r.expect_ok();
    assert_eq!(db.rows(WRITER_IDS).await, before.2);
    assert_eq!(db.count("1 = 1").await, ROWS as usize + written.len());
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_alters_are_refused_mariadb() {
    hostile_alters_are_refused(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_alters_are_refused_postgres() {
    hostile_alters_are_refused(Engine::Postgres).await;
}

/// Migration-file fields spliced into godwit's statements cannot carry statements; an
/// `sql` operation's statements run one by one and are shown one by one.
async fn hostile_migration_files(engine: Engine) {
    let db = Db::new(engine, "hostile_files").await;
    let before = db.snapshot().await;
    let dir = tempdir();
    let bad = [
        r#"type = "add_column"
table = "orders"
up = "(v); DROP TABLE victim"
column = { name = "x", type = "int" }"#,
        r#"type = "add_column"
table = "orders"
up = "v -- "
column = { name = "x", type = "int" }"#,
        r#"type = "add_column"
table = "orders"
column = { name = "x", type = "int", default = "0) , ADD COLUMN z INT, ADD COLUMN w INT DEFAULT (0" }"#,
        r#"type = "set_not_null"
table = "orders"
column = "note"
up = "coalesce(note, 'x')); DELETE FROM victim; SELECT (1""#,
        r#"type = "add_check"
table = "orders"
name = "c"
check = "v > 0 /* */ OR 1 = 1"
column = "v"
up = "1""#,
    ];
    for (i, op) in bad.iter().enumerate() {
        let path = dir.join(format!("{:04}_bad.toml", i + 1));
        std::fs::write(&path, format!("name = \"bad\"\n[[operations]]\n{op}\n")).unwrap();
        for extra in [&[][..], &["--execute"][..]] {
            let mut args = vec!["expand", path.to_str().unwrap(), "--url", db.url()];
            args.extend_from_slice(extra);
            let r = godwit(&args, &[]).await;
            assert_eq!(
                r.code, 40,
                "{engine:?} {op}: expected exit 40\nstdout: {}\nstderr: {}",
                r.stdout, r.stderr
            );
            assert!(r.stderr.contains("fix:"), "{}", r.stderr);
            let now = db.snapshot().await;
            assert!(
                now == before,
                "{op} changed something: {:?} / {:?} / {} / {:?}",
                now.0,
                now.1,
                now.2 == before.2,
                now.3
            );
            assert_eq!(now.3, before.3, "{op} left objects");
        }
        std::fs::remove_file(&path).unwrap();
    }
    // Two statements in one `sql` field: shown as two, run as two.
    let path = dir.join("0100_two.toml");
    std::fs::write(
        &path,
        "name = \"two\"\n[[operations]]\ntype = \"sql\"\nup = \"CREATE TABLE a (x INT); -- one\\nCREATE TABLE b (x INT);\"\ndown = \"DROP TABLE a; DROP TABLE b\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let dry = godwit(&["expand", p, "--url", db.url(), "--format", "json"], &[]).await;
    dry.expect_ok();
    let shown: Vec<String> = dry
        .events
        .iter()
        .filter(|e| e["event"] == "statement")
        .filter_map(|e| e["sql"].as_str().map(str::to_string))
        .collect();
    assert!(
        shown.contains(&"CREATE TABLE a (x INT)".to_string())
            && shown.contains(&"CREATE TABLE b (x INT)".to_string()),
        "dry run shows {shown:?}\n{}",
        dry.stdout
    );
    godwit(&["expand", p, "--url", db.url(), "--execute"], &[])
        .await
        .expect_ok();
    let n = db
        .strings(match engine {
            Engine::Maria => "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('a', 'b')",
            Engine::Postgres => "SELECT count(*)::text FROM pg_class WHERE relname IN ('a', 'b') AND relkind = 'r'",
        })
        .await;
    assert_eq!(n, vec!["2"]);
    godwit(&["abort", p, "--url", db.url(), "--execute"], &[])
        .await
        .expect_ok();
    assert_eq!(db.victim().await, before.0);
    db.drop_db().await;
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(support::unique_name("godwit_hostile"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_migration_files_mariadb() {
    hostile_migration_files(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_migration_files_postgres() {
    hostile_migration_files(Engine::Postgres).await;
}

/// The server goes away right after the swap: the migration succeeded, and godwit says so
/// (exit 35, `done` with `cleanup_complete: false`, what is left); `godwit cleanup`
/// finishes the job.
async fn server_lost_after_swap(engine: Engine) {
    let db = Db::new(engine, "after_swap").await;
    let before = db.rows(WRITER_IDS).await;
    let proxy = Proxy::start(&host_port(db.url())).await;
    let via = proxy.url(db.url());
    let writer = Writer::start(engine, db.url().to_string());
    let mut live = LiveRun::start(
        &[
            "run",
            "--url",
            &via,
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN x INT NOT NULL DEFAULT 5",
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
            "--debug-after-swap-hold-millis",
            "1500",
        ],
        &[],
    );
    live.wait_for(120, |e| e["event"] == "state" && e["state"] == "cleanup")
        .await;
    proxy.cut();
    let r = live.finish().await;
    let written = writer.stop().await;
    assert_eq!(
        r.code, 35,
        "{engine:?}: expected exit 35\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    let done = r
        .event("done")
        .unwrap_or_else(|| panic!("no done event: {}", r.stdout));
    assert_eq!(done["cleanup_complete"], false, "{done}");
    let old = done["old_table"].as_str().unwrap().to_string();
    let left: Vec<String> = done["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(left.iter().any(|l| l.contains(&old)), "{left:?}");
    let err = r.event("error").unwrap();
    assert_eq!(err["kind"], "swapped_cleanup_incomplete");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("succeeded") && msg.contains(&old), "{msg}");
    assert!(
        err["hint"].as_str().unwrap().contains("godwit cleanup"),
        "{err}"
    );
    assert!(
        !r.events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("unchanged"))),
        "must not say the original is unchanged:\n{}",
        r.stdout
    );
    // The migration is live: new column, every original row and every committed write.
    assert_eq!(db.columns("orders").await.len(), 4);
    assert_eq!(db.rows(WRITER_IDS).await, before);
    // Every committed write is there (a write whose answer was lost may be too).
    let n = db.count(&format!("id > {WRITER_IDS}")).await;
    assert!(n >= written.len(), "writes lost: {n} of {}", written.len());
    // `godwit cleanup` removes what is left.
    let c = godwit(
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
    .await;
    c.expect_ok();
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_lost_after_swap_mariadb() {
    server_lost_after_swap(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_lost_after_swap_postgres() {
    server_lost_after_swap(Engine::Postgres).await;
}

/// The server goes away mid-run (PostgreSQL: the sessions are terminated, SQLSTATE 57P01;
/// MariaDB: the network to the server is cut) while the run waits to cut over: exit 10 with
/// the hint to run again, the original unchanged; cleaning up failed with the server gone,
/// so the next run removes what was left (and says so) and migrates.
async fn server_lost_mid_run(engine: Engine) {
    let db = Db::new(engine, "killed").await;
    let before = db.rows(WRITER_IDS).await;
    let proxy = Proxy::start(&host_port(db.url())).await;
    let via = match engine {
        Engine::Maria => proxy.url(db.url()),
        Engine::Postgres => db.url().to_string(),
    };
    let flag = tempdir().join("postpone");
    std::fs::write(&flag, "").unwrap();
    let mut live = LiveRun::start(
        &[
            "run",
            "--url",
            &via,
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN x INT",
            "--execute",
            "--format",
            "json",
            "--postpone-cut-over-flag-file",
            flag.to_str().unwrap(),
            // Fail at once instead of reconnecting (tests/reconnect.rs covers that).
            "--reconnect-timeout-seconds",
            "0",
        ],
        &[],
    );
    live.wait_for(120, |e| e["event"] == "state" && e["state"] == "postponed")
        .await;
    match &db {
        Db::Postgres(d) => {
            d.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'godwit%'").await;
        }
        Db::Maria(_) => proxy.cut(),
    }
    let r = live.finish().await;
    assert_eq!(
        r.code,
        10,
        "{engine:?}: expected exit 10\nstdout: {}\nstderr: {}",
        r.stdout
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n"),
        r.stderr
    );
    let err = r.event("error").unwrap();
    assert_eq!(err["kind"], "unreachable", "{err}");
    assert!(err["hint"].as_str().unwrap().contains("again"), "{err}");
    assert!(
        r.events
            .iter()
            .any(|e| e["state"] == "failed" && e["message"].as_str().unwrap().contains("unchanged")),
        "{}",
        r.stdout
    );
    assert_eq!(db.columns("orders").await.len(), 3);
    assert_eq!(db.rows(WRITER_IDS).await, before);
    assert!(
        !db.leftovers().await.is_empty(),
        "cleanup could not have run"
    );
    // The next run takes over what the dead run left, and migrates.
    std::fs::remove_file(&flag).unwrap();
    let r = run(
        db.url(),
        "ADD COLUMN x INT",
        &["--execute", "--ok-to-drop-table"],
    )
    .await;
    r.expect_ok();
    // It resumes from the dead run's checkpoint.
    assert!(r.event("resume").is_some(), "{engine:?}: {}", r.stdout);
    assert_eq!(db.columns("orders").await.len(), 4);
    assert_eq!(db.rows(WRITER_IDS).await, before);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_lost_mid_run_mariadb() {
    server_lost_mid_run(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_lost_mid_run_postgres() {
    server_lost_mid_run(Engine::Postgres).await;
}
