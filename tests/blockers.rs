//! A cut-over that does not stall behind other people's locks (issue #13, item 4): a
//! session holds a transaction open that read the table (it keeps a lock on it), so
//! every cut-over attempt times out. Each failed attempt names it (`cut_over_blocked`:
//! id, user); without --kill-blockers the run ends with exit 32, the error names it and
//! the original is untouched; with --force-cut-over-after and --kill-blockers its session
//! is ended and the migration completes. Both engines, a mirrored writer running.
mod support;

use support::both::{Conn, Db, Engine, MirrorWriter};

const PASSWORD: &str = "Blk-pw-4410";
const USER: &str = "godwit_blocker";

/// The MariaDB cases run one at a time: MariaDB refreshes `INNODB_TRX` only when nobody
/// read it in the last 100 ms, so cases polling it at once can each see it stale, and
/// the `metadata_lock_info` plugin one case installs is server-wide.
static MARIADB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A case's turn: held for the whole case on MariaDB (see [`MARIADB`]); nothing to wait
/// for on PostgreSQL.
async fn turn(engine: Engine) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    match engine {
        Engine::Maria => Some(MARIADB.lock().await),
        Engine::Postgres => None,
    }
}

/// The URL of the test's database through a login of its own (the blocker's user).
async fn blocker_url(db: &Db) -> String {
    db.url_as(USER, PASSWORD).await
}

/// A session with an open transaction that read `orders`.
struct Blocker(Conn);

impl Blocker {
    async fn open(db: &Db) -> (Blocker, u64) {
        let url = blocker_url(db).await;
        let e = db.engine();
        let mut c = Conn::connect(e, &url).await;
        c.batch(e.pick(
            "START TRANSACTION; SELECT COUNT(*) FROM orders",
            "BEGIN; SELECT count(*) FROM orders",
        ))
        .await
        .unwrap();
        let id = c
            .first(e.pick("SELECT CONNECTION_ID()", "SELECT pg_backend_pid()"))
            .await
            .unwrap()
            .unwrap();
        (Blocker(c), id.parse().unwrap())
    }

    /// Whether the session still answers.
    async fn alive(&mut self) -> bool {
        self.0.batch("SELECT 1").await.is_ok()
    }

    async fn commit(mut self) {
        self.0.batch("COMMIT").await.unwrap();
        self.0.close().await;
    }
}

fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = support::both::run_args(
        url,
        "ADD COLUMN extra INT",
        &["--ok-to-drop-table", "--cut-over-lock-timeout-seconds", "1"],
    );
    v.extend_from_slice(extra);
    v
}

/// The `cut_over_blocked` events that name session `id` of the blocker's user.
fn named(run: &support::Run, id: u64) -> usize {
    run.events
        .iter()
        .filter(|e| e["event"] == "cut_over_blocked")
        .filter(|e| {
            e["blockers"]
                .as_array()
                .is_some_and(|bs| bs.iter().any(|b| b["id"] == id && b["user"] == USER))
        })
        .count()
}

async fn a_blocker_is_named_and_the_run_ends_with_32(engine: Engine) {
    let _one_at_a_time = turn(engine).await;
    let db = Db::new(engine, "blk_report").await;
    let writer = MirrorWriter::start(&db, 21).await;
    let (mut blocker, id) = Blocker::open(&db).await;
    let before_columns = db.columns("orders").await;
    // An on-before-cut-over hook that notes each of its runs: it runs before every attempt.
    let hooks = std::env::temp_dir().join(format!(
        "godwit-blk-hooks-{engine:?}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&hooks);
    std::fs::create_dir_all(&hooks).unwrap();
    let log = hooks.join("runs.log");
    let script = hooks.join("on-before-cut-over-note");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho run >> '{}'\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hooks_path = hooks.display().to_string();
    let run = support::godwit(
        &args(
            db.url(),
            &["--cut-over-retries", "3", "--hooks-path", &hooks_path],
        ),
        &[],
    )
    .await;
    assert_eq!(run.code, 32, "{}\n{}", run.stdout, run.stderr);
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(runs.lines().count(), 3, "on-before-cut-over runs: {runs:?}");
    let _ = std::fs::remove_dir_all(&hooks);
    assert_eq!(
        named(&run, id),
        3,
        "every failed attempt names the blocker:\n{}",
        run.stdout
    );
    let err = run.event("error").unwrap();
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("session {id} ({USER}")),
        "{message}"
    );
    assert!(err["hint"].as_str().unwrap().contains("--kill-blockers"));
    assert!(run.event("blocker_killed").is_none());
    // Untouched, and the blocker's session lives on.
    assert!(blocker.alive().await);
    blocker.commit().await;
    writer.stop().await;
    assert_eq!(db.columns("orders").await, before_columns);
    let (orders, mirror) = db.orders_and_mirror().await;
    assert!(orders == mirror, "orders differs from its mirror");
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;
}

/// MariaDB: install the `metadata_lock_info` plugin (left installed: tests running at the
/// same time may rely on it). False when this server cannot load it.
async fn metadata_lock_info(db: &Db) -> bool {
    if db.engine() != Engine::Maria {
        return false;
    }
    let mut admin = Conn::open(db).await;
    let installed = admin
        .first("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'")
        .await
        .unwrap();
    let ok = installed.is_some()
        || match admin.batch("INSTALL SONAME 'metadata_lock_info'").await {
            Ok(()) => true,
            // Installed by a test running at the same time.
            Err(e) if e.contains("exists") => true,
            Err(e) => {
                eprintln!("the metadata_lock_info plugin cannot be installed here: {e}");
                false
            }
        };
    admin.close().await;
    ok
}

/// Without a way to tell who holds a lock on the table (MariaDB without
/// `metadata_lock_info`), `--kill-blockers` ends nobody: the run ends with exit 32.
async fn spared_then_exit_32(db: Db, writer: MirrorWriter, mut blocker: Blocker, id: u64) {
    let run = support::godwit(
        &args(db.url(), &["--cut-over-retries", "3", "--kill-blockers"]),
        &[],
    )
    .await;
    assert_eq!(run.code, 32, "{}\n{}", run.stdout, run.stderr);
    assert!(run
        .events
        .iter()
        .any(|e| e["event"] == "blocker_spared" && e["id"] == id));
    assert!(blocker.alive().await);
    blocker.commit().await;
    writer.stop().await;
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;
}

async fn force_cut_over_after_kills_the_blocker_and_completes(engine: Engine) {
    let _one_at_a_time = turn(engine).await;
    let db = Db::new(engine, "blk_kill").await;
    let exact = engine == Engine::Postgres || metadata_lock_info(&db).await;
    let writer = MirrorWriter::start(&db, 22).await;
    let (mut blocker, id) = Blocker::open(&db).await;
    if !exact {
        return spared_then_exit_32(db, writer, blocker, id).await;
    }
    let run = support::godwit(
        &args(
            db.url(),
            &[
                "--cut-over-retries",
                "10",
                "--force-cut-over-after",
                "2s",
                "--kill-blockers",
            ],
        ),
        &[],
    )
    .await;
    run.expect_ok();
    assert!(named(&run, id) >= 1, "{}", run.stdout);
    let killed: Vec<&serde_json::Value> = run
        .events
        .iter()
        .filter(|e| e["event"] == "blocker_killed")
        .collect();
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0]["id"], id);
    assert_eq!(killed[0]["user"], USER);
    // Its connection is gone.
    assert!(!blocker.alive().await);
    writer.stop().await;
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    let (orders, mirror) = db.orders_and_mirror().await;
    assert!(orders == mirror, "orders differs from its mirror");
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;
}

/// MariaDB with the `metadata_lock_info` plugin: the blockers are the sessions that hold
/// a metadata lock on the table (`exact`), not every open transaction: a session with a
/// transaction open on another table is not named.
#[tokio::test(flavor = "multi_thread")]
async fn with_metadata_lock_info_only_the_table_s_lock_holders_are_named_mariadb() {
    let _one_at_a_time = MARIADB.lock().await;
    let db = Db::new(Engine::Maria, "blk_mli").await;
    if !metadata_lock_info(&db).await {
        eprintln!("skipped: no metadata_lock_info plugin");
        db.drop_db().await;
        return;
    }
    let writer = MirrorWriter::start(&db, 23).await;
    let (mut blocker, id) = Blocker::open(&db).await;
    // A transaction open on another table: no lock on `orders`.
    let mut other = Conn::open(&db).await;
    other
        .batch("START TRANSACTION; SELECT COUNT(*) FROM victim")
        .await
        .unwrap();
    let other_id: u64 = other
        .first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let run = support::godwit(&args(db.url(), &["--cut-over-retries", "2"]), &[]).await;
    assert_eq!(run.code, 32, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(named(&run, id), 2, "{}", run.stdout);
    for e in run
        .events
        .iter()
        .filter(|e| e["event"] == "cut_over_blocked")
    {
        for b in e["blockers"].as_array().unwrap() {
            assert_eq!(b["exact"], true, "{e}");
            assert_ne!(
                b["id"], other_id,
                "a session without a lock on the table: {e}"
            );
        }
    }
    other.batch("COMMIT").await.unwrap();
    other.close().await;
    assert!(blocker.alive().await);
    blocker.commit().await;
    writer.stop().await;
    let (orders, mirror) = db.orders_and_mirror().await;
    assert!(orders == mirror, "orders differs from its mirror");
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;
}

/// The phase commands: a DDL statement whose lock wait runs out names the session that
/// held the lock; the expand is undone.
async fn a_phase_whose_lock_wait_runs_out_names_the_blocker(engine: Engine) {
    let _one_at_a_time = turn(engine).await;
    let db = Db::new(engine, "blk_phase").await;
    let writer = MirrorWriter::start(&db, 24).await;
    let (mut blocker, id) = Blocker::open(&db).await;
    let before_columns = db.columns("orders").await;
    let files = std::env::temp_dir().join(support::unique_name("godwit-blk-files"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("0001_extra.toml"),
        "name = \"extra\"\n[[operations]]\ntype = \"add_column\"\ntable = \"orders\"\ncolumn = { name = \"extra\", type = \"INT\", nullable = true }\n",
    )
    .unwrap();
    let path = files.to_string_lossy().to_string();
    let run = support::godwit(
        &[
            "expand",
            &path,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--lock-timeout-seconds",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 40, "{}\n{}", run.stdout, run.stderr);
    let message = run.event("error").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("held by session {id} ({USER}")),
        "{message}"
    );
    assert!(blocker.alive().await);
    blocker.commit().await;
    writer.stop().await;
    assert_eq!(db.columns("orders").await, before_columns);
    let (orders, mirror) = db.orders_and_mirror().await;
    assert!(orders == mirror, "orders differs from its mirror");
    let left: Vec<String> = db
        .leftovers()
        .await
        .into_iter()
        .filter(|l| !l.contains("_godwit_migrations"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&files).ok();
    db.drop_db().await;
}

support::both::cases!(
    multi_thread:
    a_blocker_is_named_and_the_run_ends_with_32,
    force_cut_over_after_kills_the_blocker_and_completes,
    a_phase_whose_lock_wait_runs_out_names_the_blocker,
);
