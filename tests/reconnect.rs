//! Lost connections during `godwit run` (docs/how-it-works.md, "Lost connections"), one
//! case table on MariaDB and PostgreSQL: the change stream's or the copy's connection is
//! killed mid-copy, or the network is cut (briefly, or for longer than
//! `--reconnect-timeout-seconds`), while writers change the table (every write mirrored
//! into a twin table in the same transaction). godwit reconnects and the result equals
//! the mirror; when it may not reconnect (`--reconnect-timeout-seconds 0`, or the network
//! stays gone) the run ends with exit 10, the original unchanged and equal to the mirror,
//! and `godwit cleanup` removes what it kept. Nothing of godwit's is left either way
//! (tables, triggers, slots, publications).
//!
//! Also, on PostgreSQL: the main session (replay, runner lock) lost during and after the
//! copy, and the persistent slot of a killed run removed by `godwit cleanup` or taken
//! over by the next run.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::both::{run_args_on, Conn, Db, Engine};
use support::proxy::{host_port, Proxy};
use support::{godwit, LiveRun, Run};

/// Rows at start, and the copy's pace: the copy takes several seconds, so a kill lands
/// in it.
const ROWS: i64 = 12_000;
const RATE: &str = "2000";

/// The migration: `v` becomes a bigint and `shipped_at` is added (PostgreSQL: also a
/// column with a default).
fn alter(e: Engine) -> &'static str {
    e.pick(
        "MODIFY v BIGINT NOT NULL, ADD COLUMN shipped_at DATETIME NULL",
        "ALTER COLUMN v TYPE bigint, ADD COLUMN note text DEFAULT 'n', ADD COLUMN shipped_at timestamp",
    )
}

/// `godwit run` on `t` through `url`, in chunks of 100 rows at RATE rows a second, the
/// old table dropped, trying to reconnect for `reconnect_timeout` seconds.
fn run_args<'a>(url: &'a str, alter: &'a str, reconnect_timeout: &'a str) -> Vec<&'a str> {
    run_args_on(
        url,
        "t",
        alter,
        &[
            "--ok-to-drop-table",
            "--chunk-size",
            "100",
            "--max-rows-per-second",
            RATE,
            "--reconnect-timeout-seconds",
            reconnect_timeout,
        ],
    )
}

/// `t` with ROWS rows (ids 1..=ROWS, the counter above them), its mirror, and four
/// writers already writing.
async fn setup(e: Engine, prefix: &str) -> (Db, Writers) {
    let db = Db::empty(e, prefix).await;
    match e {
        Engine::Maria => {
            db.exec("CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(400))")
                .await;
            db.exec(&format!(
                "INSERT INTO t (v, pad) SELECT seq, REPEAT('x', seq % 200) FROM seq_1_to_{ROWS}"
            ))
            .await;
            db.exec("CREATE TABLE mirror LIKE t").await;
        }
        Engine::Postgres => {
            db.exec("CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL, pad text)")
                .await;
            db.exec(&format!(
                "INSERT INTO t (v, pad) SELECT i, repeat('x', i % 200) FROM generate_series(1, {ROWS}) i"
            ))
            .await;
            db.exec("CREATE TABLE mirror (id bigint PRIMARY KEY, v int NOT NULL, pad text)")
                .await;
        }
    }
    db.exec("INSERT INTO mirror SELECT * FROM t").await;
    let writers = Writers::start(&db);
    (db, writers)
}

/// Writers mirroring every write of theirs into `mirror`, until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Writers {
    fn start(db: &Db) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (e, url) = (db.engine(), db.url().to_string());
        let tasks = (0..4u64)
            .map(|w| {
                let (stop, ops, url) = (stop.clone(), ops.clone(), url.clone());
                tokio::spawn(async move { write(e, &url, w, &stop, &ops).await })
            })
            .collect();
        Writers { stop, ops, tasks }
    }

    /// Stop; asserts the writers wrote and had no error.
    async fn stop(self, name: &str) {
        self.stop.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.unwrap());
        }
        assert!(errors.is_empty(), "{name}: writer errors: {errors:?}");
        assert!(self.ops.load(Ordering::SeqCst) > 0, "{name}: no writes");
    }
}

/// One writer on a session of its own (READ COMMITTED on both engines): inserts, updates,
/// deletes and primary-key moves, each with its copy into `mirror` in one transaction. An
/// update, delete or move first locks the row it changes (`SELECT … FOR UPDATE`), so no
/// other transaction changes that row, in `t` or in the mirror, until this one commits:
/// both statements see the same row. A deadlock's victim is no error (the next write
/// goes on).
async fn write(
    e: Engine,
    url: &str,
    writer: u64,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(writer * 7919 + 1);
    let mut c = Conn::connect(e, url).await;
    if e == Engine::Maria {
        c.batch("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await
            .unwrap();
    }
    let mut errors = Vec::new();
    let mut moved = 0i64;
    while !stop.load(Ordering::SeqCst) && errors.len() < 20 {
        let op = rng.random_range(0..4u32);
        let id = rng.random_range(1..ROWS + 2000);
        let v = rng.random_range(0..1_000_000i32);
        moved += 1;
        // MariaDB moves a row to a negative id, unique per writer: never one the table's
        // counter hands out (PostgreSQL takes the next value of the sequence).
        let new_id = -((writer as i64 + 1) * 1_000_000 + moved);
        match one_write(&mut c, e, op, id, v, new_id).await {
            Ok(()) => {
                ops.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) if err.contains("ERROR 1213 ") || err.contains("(40P01)") => {}
            Err(err) => errors.push(err),
        }
    }
    c.close().await;
    errors
}

/// One write (op 0: insert; 1: update; 2: delete; 3: move to `new_id`) of the first row
/// with an id from `id` on (an insert when there is none), and its copy into `mirror`, in
/// one transaction.
async fn one_write(
    c: &mut Conn,
    e: Engine,
    op: u32,
    id: i64,
    v: i32,
    new_id: i64,
) -> Result<(), String> {
    c.batch("BEGIN").await?;
    let r = async {
        let pick = match op {
            0 => None,
            _ => {
                c.first(&format!(
                    "SELECT id FROM t WHERE id >= {id} ORDER BY id LIMIT 1 FOR UPDATE"
                ))
                .await?
            }
        };
        match (op, pick) {
            (0, _) | (_, None) => {
                let insert = format!("INSERT INTO t (v, pad) VALUES ({v}, REPEAT('p', {v} % 100))");
                let new = match e {
                    Engine::Maria => {
                        c.batch(&insert).await?;
                        c.first("SELECT LAST_INSERT_ID()").await?
                    }
                    Engine::Postgres => c.first(&format!("{insert} RETURNING id")).await?,
                }
                .ok_or("the insert returned no id")?;
                c.batch(&format!(
                    "INSERT INTO mirror (id, v, pad) VALUES ({new}, {v}, REPEAT('p', {v} % 100))"
                ))
                .await
            }
            (1, Some(id)) => {
                c.batch(&format!("UPDATE t SET v = {v} WHERE id = {id}"))
                    .await?;
                c.batch(&format!("UPDATE mirror SET v = {v} WHERE id = {id}"))
                    .await
            }
            (2, Some(id)) => {
                c.batch(&format!("DELETE FROM t WHERE id = {id}")).await?;
                c.batch(&format!("DELETE FROM mirror WHERE id = {id}"))
                    .await
            }
            (_, Some(id)) => {
                let new = match e {
                    Engine::Maria => {
                        c.batch(&format!("UPDATE t SET id = {new_id} WHERE id = {id}"))
                            .await?;
                        new_id.to_string()
                    }
                    Engine::Postgres => c
                        .first(&format!(
                            "UPDATE t SET id = nextval('t_id_seq') WHERE id = {id} RETURNING id"
                        ))
                        .await?
                        .ok_or("the move returned no id")?,
                };
                c.batch(&format!("UPDATE mirror SET id = {new} WHERE id = {id}"))
                    .await
            }
        }
    }
    .await;
    match r {
        Ok(()) => c.batch("COMMIT").await,
        Err(err) => {
            let _ = c.batch("ROLLBACK").await;
            Err(err)
        }
    }
}

/// Stop the writers, then: `t` equals the mirror, it is migrated (`v` a bigint,
/// `shipped_at` there) or not as `migrated` says, and nothing of godwit's is left.
async fn check(name: &str, db: &Db, writers: Writers, migrated: bool) {
    writers.stop(name).await;
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
            "{name}: the table ({} rows) differs from the mirror of all writes ({} rows): \
             only in the table {only_got:?}, only in the mirror {only_want:?}",
            got.len(),
            want.len()
        );
    }
    let cols = db.columns("t").await;
    assert_eq!(
        (
            cols.iter().any(|c| c.starts_with("v bigint")),
            cols.iter().any(|c| c.starts_with("shipped_at "))
        ),
        (migrated, migrated),
        "{name}: migrated = {migrated}: {cols:?}"
    );
    let left = db.leftovers().await;
    assert!(left.is_empty(), "{name}: left behind: {left:?}");
}

/// Wait until the copy runs, and a little into it.
async fn wait_for_copy(live: &mut LiveRun) {
    live.wait_state(60, "copy").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// What every case checks about the run itself: reconnected (exit 0, a `reconnect`
/// event `restored`, a WARN line about the lost connection), or exit 10 saying the
/// timeout of 0 forbade it.
fn check_run(name: &str, reconnects: bool, run: &Run) {
    if reconnects {
        assert_eq!(
            run.code, 0,
            "{name}: expected success\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        let restored = run
            .events
            .iter()
            .any(|e| e["event"] == "reconnect" && e["status"] == "restored");
        assert!(
            restored,
            "{name}: no reconnect event; stdout:\n{}",
            run.stdout
        );
        assert!(
            run.stderr.contains("lost the connection"),
            "{name}: no WARN line about the lost connection; stderr:\n{}",
            run.stderr
        );
    } else {
        assert_eq!(
            run.code, 10,
            "{name}: expected exit 10\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        let err = run.event("error").expect("an error event");
        let msg = err["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("--reconnect-timeout-seconds is 0"),
            "{name}: the message does not say why it did not reconnect: {msg}"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The binlog dump thread (MariaDB); the backend reading the slot (PostgreSQL).
    Stream,
    /// The copy's connection(s).
    Copier,
    /// The main session (PostgreSQL: replay, runner lock).
    Main,
}

/// The local TCP ports of the process `pid` (its connections to the server).
fn tcp_ports_of(pid: u32) -> Vec<u16> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|f| std::fs::read_link(f.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && sockets.iter().any(|s| s == f[9]) {
                if let Some(p) = f[1].rsplit(':').next() {
                    ports.extend(u16::from_str_radix(p, 16).ok());
                }
            }
        }
    }
    ports
}

/// Kill the connection(s) of `victim` of the godwit run `pid` once (polling, for at most
/// 30 s: the copy statement is only seen while it runs); returns how many.
async fn kill(db: &Db, pid: u32, victim: Victim) -> usize {
    let mut c = Conn::open(db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let found = match db.engine() {
            Engine::Maria => {
                let ids: Vec<String> = match victim {
                    // This run's dump thread only: other runs on the server stream too.
                    Victim::Stream => {
                        let ports = tcp_ports_of(pid);
                        c.texts("SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                            .await
                            .unwrap()
                            .into_iter()
                            .filter(|r| {
                                let host = r[1].clone().unwrap_or_default();
                                let port = host.rsplit(':').next().and_then(|p| p.parse().ok());
                                port.is_some_and(|p: u16| ports.contains(&p))
                            })
                            .filter_map(|r| r[0].clone())
                            .collect()
                    }
                    Victim::Copier => c
                        .texts(&format!(
                            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'INSERT IGNORE INTO %godwit\\_new%'",
                            db.name()
                        ))
                        .await
                        .unwrap()
                        .into_iter()
                        .filter_map(|r| r[0].clone())
                        .collect(),
                    Victim::Main => panic!("no main session to find on MariaDB"),
                };
                for id in &ids {
                    let _ = c.batch(&format!("KILL {id}")).await;
                }
                ids.len()
            }
            Engine::Postgres => {
                let app = match victim {
                    Victim::Stream => "godwit stream",
                    Victim::Copier => "godwit copy",
                    Victim::Main => "godwit main",
                };
                c.texts(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = '{app}'"
                ))
                .await
                .unwrap()
                .len()
            }
        };
        if found > 0 {
            c.close().await;
            return found;
        }
        tokio::time::sleep(Duration::from_millis(db.engine().pick(1, 10))).await;
    }
    panic!("no {victim:?} connection of godwit's found to kill");
}

/// A connection of godwit's killed mid-copy; with `reconnects` godwit may reconnect (for
/// 60 s), otherwise not at all (`--reconnect-timeout-seconds 0`).
async fn killed_mid_copy(e: Engine, prefix: &str, victim: Victim, reconnects: bool) {
    let name = format!("{victim:?} killed mid-copy, reconnects = {reconnects}");
    let (db, writers) = setup(e, prefix).await;
    let timeout = if reconnects { "60" } else { "0" };
    let mut live = LiveRun::start(&run_args(db.url(), alter(e), timeout), &[]);
    wait_for_copy(&mut live).await;
    let killed = kill(&db, live.pid(), victim).await;
    let run = live.finish_within(300).await;
    check_run(&name, reconnects, &run);
    assert!(killed > 0);
    if !reconnects {
        // Stopped because it may not reconnect: the run stays resumable (its shadow and
        // checkpoint are kept) until `godwit cleanup` removes them; the original is
        // unchanged.
        let left = db.leftovers().await;
        assert!(
            left.iter().any(|t| t.ends_with("_godwit_checkpoint")),
            "{name}: not resumable: {left:?}"
        );
        godwit(
            &["cleanup", "--url", db.url(), "--table", "t", "--execute"],
            &[],
        )
        .await
        .expect_ok();
    }
    check(&name, &db, writers, reconnects).await;
    db.drop_db().await;
}

async fn stream_killed_mid_copy(e: Engine) {
    killed_mid_copy(e, "reconn_stream", Victim::Stream, true).await;
}

async fn copier_killed_mid_copy(e: Engine) {
    killed_mid_copy(e, "reconn_copy", Victim::Copier, true).await;
}

async fn stream_killed_with_reconnect_timeout_0(e: Engine) {
    killed_mid_copy(e, "reconn_never", Victim::Stream, false).await;
}

/// The network cut for longer than `--reconnect-timeout-seconds`: exit 10 saying how
/// long godwit tried, the original unchanged; what could not be removed without the
/// server is removed by `godwit cleanup` once it answers.
async fn network_cut_longer_than_the_timeout(e: Engine) {
    let (db, writers) = setup(e, "reconn_gone").await;
    let proxy = Proxy::start(&host_port(db.url())).await;
    let url = proxy.url(db.url());
    let mut live = LiveRun::start(&run_args(&url, alter(e), "2"), &[]);
    wait_for_copy(&mut live).await;
    proxy.cut();
    let run = live.finish_within(300).await;
    assert_eq!(
        run.code, 10,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let msg = run.event("error").unwrap()["message"].to_string();
    assert!(
        msg.contains("gave up after reconnecting for")
            && msg.contains("--reconnect-timeout-seconds 2"),
        "{msg}"
    );
    assert!(run
        .events
        .iter()
        .any(|e| e["event"] == "reconnect" && e["status"] == "retrying"));
    godwit(
        &["cleanup", "--url", db.url(), "--table", "t", "--execute"],
        &[],
    )
    .await
    .expect_ok();
    check("network gone for good", &db, writers, false).await;
    db.drop_db().await;
}

/// Every connection of godwit's dropped at once mid-copy, and new ones refused for a
/// second (the network, or a server restart).
async fn short_network_cut_mid_copy(e: Engine) {
    let (db, writers) = setup(e, "reconn_cut").await;
    let proxy = Proxy::start(&host_port(db.url())).await;
    let url = proxy.url(db.url());
    let mut live = LiveRun::start(&run_args(&url, alter(e), "60"), &[]);
    wait_for_copy(&mut live).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();
    let run = live.finish_within(300).await;
    check_run("network cut mid-copy", true, &run);
    check("network cut mid-copy", &db, writers, true).await;
    db.drop_db().await;
}

/// A run whose cut-over is postponed by a flag file `godwit-reconnect-DB` in the temp
/// directory, through `url`; returns it (in the postponed state) and the flag file.
async fn postponed_run(db: &Db, url: &str) -> (LiveRun, std::path::PathBuf) {
    let flag = std::env::temp_dir().join(format!("godwit-reconnect-{}", db.name()));
    std::fs::write(&flag, b"").unwrap();
    let flag_s = flag.to_string_lossy().to_string();
    let mut args = run_args(url, alter(db.engine()), "60");
    args.extend(["--postpone-cut-over-flag-file", flag_s.as_str()]);
    let mut live = LiveRun::start(&args, &[]);
    live.wait_state(120, "postponed").await;
    (live, flag)
}

/// Every connection of godwit's dropped at once after the copy (while postponed), and
/// new ones refused for a second: stream, main session and replay come back.
async fn short_network_cut_after_the_copy(e: Engine) {
    let (db, writers) = setup(e, "reconn_cut_after").await;
    let proxy = Proxy::start(&host_port(db.url())).await;
    let url = proxy.url(db.url());
    let (mut live, flag) = postponed_run(&db, &url).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();
    live.wait_for(60, |v| {
        v["event"] == "reconnect" && v["status"] == "restored"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish_within(300).await;
    check_run("network cut after the copy", true, &run);
    check("network cut after the copy", &db, writers, true).await;
    db.drop_db().await;
}

support::both::cases!(
    stream_killed_mid_copy,
    copier_killed_mid_copy,
    stream_killed_with_reconnect_timeout_0,
    network_cut_longer_than_the_timeout,
    short_network_cut_mid_copy,
    short_network_cut_after_the_copy,
);

/// PostgreSQL: the main session (the replay, which parks keys during the copy; the runner
/// lock) terminated during the copy: a new one takes the runner lock again, the keys
/// parked so far are still in their table, and the run ends equal to the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn main_session_lost_during_the_copy_postgres() {
    let e = Engine::Postgres;
    let (db, writers) = setup(e, "pg_reconn_main_copy").await;
    let mut live = LiveRun::start(&run_args(db.url(), alter(e), "60"), &[]);
    wait_for_copy(&mut live).await;
    assert!(kill(&db, live.pid(), Victim::Main).await > 0);
    live.wait_for(60, |v| {
        v["event"] == "reconnect" && v["status"] == "restored"
    })
    .await;
    let run = live.finish_within(300).await;
    run.expect_ok();
    // Lost and restored during the copy, not after it.
    let at = |f: &dyn Fn(&serde_json::Value) -> bool| run.events.iter().position(f);
    let restored = at(&|e| e["event"] == "reconnect" && e["status"] == "restored");
    let catch_up = at(&|e| e["event"] == "state" && e["state"] == "catch_up");
    assert!(
        restored.is_some() && restored < catch_up,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    check("main session lost during the copy", &db, writers, true).await;
    db.drop_db().await;
}

/// PostgreSQL: the main session (replay after the copy, the runner lock) terminated while
/// the cut-over is postponed: a new one takes the runner lock again and the replay goes
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn main_session_lost_after_the_copy_postgres() {
    let (db, writers) = setup(Engine::Postgres, "pg_reconn_main").await;
    let (mut live, flag) = postponed_run(&db, db.url()).await;
    assert!(kill(&db, live.pid(), Victim::Main).await > 0);
    // Flushes run every half second while postponed: the next one reconnects.
    live.wait_for(60, |v| {
        v["event"] == "reconnect" && v["status"] == "restored"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish_within(300).await;
    run.expect_ok();
    check("main session lost", &db, writers, true).await;
    db.drop_db().await;
}

/// Wait until no session holds the table's runner lock (the server ends the session of a
/// killed or finished godwit a moment after the process is gone).
async fn wait_runner_lock_free(db: &support::postgres::TestDb) {
    let key = godwit::engine::postgres::runner_lock_key(&db.name, "public", "t");
    for _ in 0..200 {
        let got: bool = db
            .client
            .query_one("SELECT pg_try_advisory_lock(1735353463, $1)", &[&key])
            .await
            .unwrap()
            .get(0);
        if got {
            db.client
                .execute("SELECT pg_advisory_unlock(1735353463, $1)", &[&key])
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the runner lock stayed taken");
}

/// PostgreSQL: the slot is persistent: a godwit killed with SIGKILL leaves it (nothing
/// else can drop it) with the rest it made and its checkpoint, `godwit cleanup` lists and
/// drops them all, and the next run on the table resumes from what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runs_slot_is_removed_by_cleanup_or_the_next_run_postgres() {
    let e = Engine::Postgres;
    let (db, writers) = setup(e, "pg_reconn_kill").await;
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let slot = |v: &[String]| v.iter().any(|l| l.starts_with("slot "));
    for cleanup_first in [true, false] {
        wait_runner_lock_free(pg).await;
        let mut live = LiveRun::start(&run_args(db.url(), alter(e), "60"), &[]);
        wait_for_copy(&mut live).await;
        live.signal(9);
        live.finish().await;
        assert!(slot(&db.leftovers().await), "{:?}", db.leftovers().await);
        if cleanup_first {
            let listed = godwit(
                &[
                    "cleanup",
                    "--url",
                    db.url(),
                    "--table",
                    "t",
                    "--format",
                    "json",
                ],
                &[],
            )
            .await;
            for what in ["replication slot _godwit_slot_", "_godwit_park_t"] {
                assert!(listed.stdout.contains(what), "{what}: {}", listed.stdout);
            }
            assert!(
                slot(&db.leftovers().await),
                "a dry cleanup removed something"
            );
            // While a run holds the table's runner lock, nothing is removed (the slot is
            // in use only while it is read: that alone does not tell).
            let key = godwit::engine::postgres::runner_lock_key(&pg.name, "public", "t");
            let holder = pg.conn().await;
            holder
                .execute("SELECT pg_advisory_lock(1735353463, $1)", &[&key])
                .await
                .unwrap();
            let refused = godwit(
                &["cleanup", "--url", db.url(), "--table", "t", "--execute"],
                &[],
            )
            .await;
            assert_eq!(refused.code, 20, "{}", refused.stderr);
            assert!(
                slot(&db.leftovers().await),
                "removed while a run held the lock"
            );
            holder
                .execute("SELECT pg_advisory_unlock(1735353463, $1)", &[&key])
                .await
                .unwrap();
            godwit(
                &["cleanup", "--url", db.url(), "--table", "t", "--execute"],
                &[],
            )
            .await
            .expect_ok();
            assert_eq!(db.leftovers().await, Vec::<String>::new());
        }
    }
    // The second kill's slot, shadow and parked keys are taken over by the next run.
    wait_runner_lock_free(pg).await;
    let run = godwit(
        &run_args_on(db.url(), "t", alter(e), &["--ok-to-drop-table"]),
        &[],
    )
    .await;
    run.expect_ok();
    let resume = run.event("resume").expect("a resume event");
    assert_eq!(resume["stage"], "copy", "{resume}");
    check("killed run", &db, writers, true).await;
    db.drop_db().await;
}
