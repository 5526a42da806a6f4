//! The control socket, `godwit ctl` and the metrics (issue #13, items 2 and 5), on both
//! engines with a mirrored writer running: a `godwit run` steered through its socket
//! (throttle, chunk-size, unpostpone), one stopped with `panic`, the phases' backfill
//! answering `status`, and `godwit ctl` against a path where nothing listens.
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::both::{Db, Engine, MirrorWriter, ROWS};
use support::{godwit, LiveRun};

const ALTER: &str = "ADD COLUMN extra INT";

fn sock_path(tag: &str, engine: Engine) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "godwit-ctl-{tag}-{}-{engine:?}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// What `echo LINE | nc -U PATH` prints.
async fn send(path: &Path, line: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    s.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn status_json(path: &Path) -> serde_json::Value {
    let a = send(path, "status json").await;
    serde_json::from_str(a.trim()).unwrap_or_else(|e| panic!("status json: {e}: {a}"))
}

/// GET /metrics; returns the body.
async fn scrape(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: godwit\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

fn run_args<'a>(db: &'a Db, sock: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = support::both::run_args(
        db.url(),
        ALTER,
        &[
            "--ok-to-drop-table",
            "--chunk-size",
            "100",
            "--chunk-time-millis",
            "10",
            "--max-rows-per-second",
            "300",
            "--serve-socket-file",
            sock,
        ],
    );
    v.extend_from_slice(extra);
    v
}

async fn steer_a_run(engine: Engine) {
    let db = Db::new(engine, "ctl_run").await;
    let writer = MirrorWriter::start(&db, 5).await;
    let sock = sock_path("run", engine);
    let sock_s = sock.to_string_lossy().to_string();
    let flag = std::env::temp_dir().join(format!(
        "godwit-ctl-postpone-{}-{engine:?}",
        std::process::id()
    ));
    std::fs::write(&flag, "").unwrap();
    let flag_s = flag.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &run_args(
            &db,
            &sock_s,
            &[
                "--postpone-cut-over-flag-file",
                &flag_s,
                "--metrics-addr",
                "127.0.0.1:0",
            ],
        ),
        &[],
    );
    let serving = live.wait_for(60, |e| e["event"] == "serving").await;
    assert_eq!(serving["socket"], sock_s.as_str(), "{serving}");
    let metrics = serving["metrics"]
        .as_str()
        .expect("metrics url")
        .to_string();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    // Copying: metrics answer.
    live.wait_for(120, |e| e["event"] == "progress" && e["state"] == "copy")
        .await;
    let first = scrape(&metrics).await;
    for name in [
        "godwit_rows_copied_total",
        "godwit_rows_estimate",
        "godwit_keys_replayed_total",
        "godwit_dirty_keys",
        "godwit_stream_lag_seconds",
        "godwit_replica_lag_seconds",
        "godwit_throttled",
        "godwit_chunk_size",
        "godwit_chunk_seconds",
        "godwit_cut_over_attempts_total",
        "godwit_eta_seconds",
    ] {
        assert!(
            first.contains(&format!("# TYPE {name} ")),
            "{name}:\n{first}"
        );
    }
    let copied_first = metric(&first, "godwit_rows_copied_total");
    assert!(copied_first < ROWS as f64, "copy already over: {first}");

    // throttle: the state says so, and no row is copied while it holds.
    let a = send(&sock, "throttle").await;
    assert!(a.starts_with("throttled"), "{a}");
    live.wait_state(30, "throttled").await;
    let held: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let p = live
                .wait_for(30, |e| {
                    e["event"] == "progress" && e["state"] == "throttled"
                })
                .await;
            v.push(p["rows_copied"].as_u64().unwrap());
        }
        v
    };
    let s = status_json(&sock).await;
    assert_eq!(s["state"], "throttled", "{s}");
    assert_eq!(s["forced_throttle"], true, "{s}");
    assert_eq!(s["table"], "orders", "{s}");
    assert!(
        s["throttle_reason"]
            .as_str()
            .is_some_and(|r| r.contains("control socket")),
        "{s}"
    );
    let held_now = s["progress"]["rows_copied"].as_u64().unwrap();
    assert!(
        held.iter().all(|&r| r == held[0]) && held_now == held[0],
        "rows advanced while throttled: {held:?}, then {held_now}"
    );
    let m = scrape(&metrics).await;
    assert_eq!(metric(&m, "godwit_throttled"), 1.0, "{m}");
    assert_eq!(metric(&m, "godwit_forced_throttle"), 1.0, "{m}");

    // chunk-size=N: reflected in `status json` (and `chunk-size=?`).
    assert_eq!(
        send(&sock, "chunk-size=150").await,
        "chunk-size set to 150\n"
    );
    assert_eq!(status_json(&sock).await["chunk_size"], 150);
    assert_eq!(send(&sock, "chunk-size=?").await, "150\n");
    // The other knobs: set, then read back.
    assert_eq!(
        send(&sock, "nice-ratio=0.5").await,
        "nice-ratio set to 0.5\n"
    );
    assert_eq!(
        send(&sock, "max-lag-millis=1500").await,
        "max-lag-millis set to 1500\n"
    );
    let s = status_json(&sock).await;
    assert_eq!(s["nice_ratio"], 0.5, "{s}");
    assert_eq!(s["max_lag_millis"], 1500, "{s}");
    assert!(send(&sock, "nice-ratio=-1").await.starts_with("error: "));
    assert_eq!(send(&sock, "nice-ratio=0").await, "nice-ratio set to 0\n");

    // no-throttle: the copy goes on.
    let a = send(&sock, "no-throttle").await;
    assert!(a.starts_with("no-throttle"), "{a}");
    live.wait_state(30, "copy").await;
    let after = held[0];
    live.wait_for(60, |e| {
        e["event"] == "progress" && e["rows_copied"].as_u64().is_some_and(|r| r > after)
    })
    .await;

    // Postponed: the read-only commands.
    live.wait_state(180, "postponed").await;
    let text = send(&sock, "status").await;
    assert!(text.contains("# Migrating `orders`"), "{text}");
    assert!(text.contains("# State: postponed"), "{text}");
    assert!(text.contains("unpostpone"), "{text}");
    let sup = send(&sock, "sup").await;
    assert!(
        sup.starts_with("Copy: ") && sup.contains("State: postponed"),
        "{sup}"
    );
    let s = status_json(&sock).await;
    assert_eq!(s["state"], "postponed", "{s}");
    assert_eq!(s["postponing"], true, "{s}");
    // The copy is over: what status says is what the run ends with (not ROWS: the
    // writer deletes rows the copy may not have reached yet).
    let copied_when_postponed = s["progress"]["rows_copied"].as_u64().unwrap();
    assert!(copied_when_postponed > ROWS as u64 / 2, "{s}");
    let help = send(&sock, "help").await;
    for c in [
        "status",
        "sup",
        "throttle",
        "no-throttle",
        "chunk-size=",
        "nice-ratio=",
        "max-load=",
        "critical-load=",
        "max-lag-millis=",
        "unpostpone",
        "panic",
    ] {
        assert!(help.contains(c), "help lacks {c}: {help}");
    }
    let bad = send(&sock, "drop table orders").await;
    assert!(bad.starts_with("error: unknown command"), "{bad}");
    // `godwit ctl`: the answer on stdout; a refused command exits 4.
    let r = godwit(&["ctl", "--socket", &sock_s, "sup"], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("Copy: "), "{r:?}");
    let r = godwit(&["ctl", "--socket", &sock_s, "bogus"], &[]).await;
    assert_eq!(r.code, 4, "{r:?}");
    let m = scrape(&metrics).await;
    assert!(
        metric(&m, "godwit_rows_copied_total") > copied_first,
        "rows copied did not increase: {copied_first} then\n{m}"
    );
    assert_eq!(metric(&m, "godwit_throttled"), 0.0, "{m}");

    // unpostpone: the cut-over happens though the flag file is still there.
    assert_eq!(send(&sock, "unpostpone").await, "Unpostponed\n");
    let run = live.finish().await;
    writer.stop().await;
    run.expect_ok();
    let done = run
        .event("done")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(
        done["rows_copied"].as_u64(),
        Some(copied_when_postponed),
        "{done}"
    );
    assert!(!sock.exists(), "the socket file is left at exit");
    assert!(flag.exists());
    std::fs::remove_file(&flag).unwrap();
    let (got, want) = db.orders_and_mirror().await;
    assert!(got == want, "orders differs from the writer's mirror");
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    let left = db.leftovers().await;
    assert!(
        left.iter().all(|t| t == "orders_mirror"),
        "left behind: {left:?}"
    );
    db.drop_db().await;
}

/// `panic` mid-copy: exit 30, the original unchanged, nothing left, the socket removed.
async fn panic_mid_copy(engine: Engine) {
    let db = Db::new(engine, "ctl_panic").await;
    let writer = MirrorWriter::start(&db, 9).await;
    let cols = db.columns("orders").await;
    let sock = sock_path("panic", engine);
    let sock_s = sock.to_string_lossy().to_string();
    let mut live = LiveRun::start(&run_args(&db, &sock_s, &[]), &[]);
    live.wait_for(120, |e| e["event"] == "progress" && e["state"] == "copy")
        .await;
    let r = godwit(&["ctl", "--socket", &sock_s, "panic"], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("panic: "), "{r:?}");
    let run = live.finish().await;
    writer.stop().await;
    assert_eq!(run.code, 30, "{}\n{}", run.stdout, run.stderr);
    let err = run.event("error").expect("error event");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("panic")),
        "{err}"
    );
    assert!(!sock.exists(), "the socket file is left at exit");
    assert_eq!(db.columns("orders").await, cols);
    let (got, want) = db.orders_and_mirror().await;
    assert!(got == want, "orders differs from the writer's mirror");
    let left = db.leftovers().await;
    assert!(
        left.iter().all(|t| t == "orders_mirror"),
        "left behind: {left:?}"
    );
    db.drop_db().await;
}

/// The phases' backfill serves the same socket: `status` answers with its rows, and
/// `chunk-size=N` sets the batch size.
async fn backfill_answers(engine: Engine) {
    let db = Db::new(engine, "ctl_bf").await;
    let writer = MirrorWriter::start(&db, 3).await;
    let (dir, d) = support::phases::write_migration(
        &support::unique_name("ctl_bf"),
        "0001_double_v.toml",
        r#"name = "double v"
[[operations]]
type = "add_column"
table = "orders"
column = { name = "v2", type = "BIGINT", nullable = true }
up = "v * 2"
"#,
    );
    let sock = sock_path("bf", engine);
    let sock_s = sock.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &[
            "migrate",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--batch-size",
            "100",
            "--max-rows-per-second",
            "400",
            "--serve-socket-file",
            &sock_s,
        ],
        &[],
    );
    let p = live.wait_backfilled(120, 200).await;
    assert!(
        p["eta_seconds"].is_u64() || p["eta_seconds"].is_null(),
        "{p}"
    );
    assert!(p["rows_estimate"].as_u64().is_some(), "{p}");
    let s = status_json(&sock).await;
    assert_eq!(s["kind"], "backfill", "{s}");
    assert_eq!(s["table"], "orders", "{s}");
    assert!(s["progress"]["rows_copied"].as_u64().unwrap() >= 200, "{s}");
    let sup = send(&sock, "sup").await;
    assert!(sup.starts_with("Backfill: "), "{sup}");
    assert_eq!(send(&sock, "chunk-size=50").await, "chunk-size set to 50\n");
    live.wait_for(60, |e| {
        e["event"] == "backfill_progress" && e["batch_size"] == 50
    })
    .await;
    let run = live.finish().await;
    writer.stop().await;
    run.expect_ok();
    assert!(!sock.exists(), "the socket file is left at exit");
    let (got, want) = db.orders_and_mirror().await;
    assert!(got == want, "orders differs from the writer's mirror");
    // The sync trigger kept the writer's rows right; contract removes it.
    assert_eq!(db.count("v2 IS NULL OR v2 <> v * 2").await, 0);
    support::phases::phase(db.url(), "contract", &d)
        .await
        .expect_ok();
    let left = db.leftovers().await;
    assert!(
        left.iter()
            .all(|t| t == "orders_mirror" || t.contains("_godwit_migrations")),
        "left behind: {left:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
    db.drop_db().await;
}

/// SIGTERM during a backfill that serves a socket: it stops after the batch in flight
/// (exit 30), the socket file is removed, and the same command finishes the backfill.
async fn sigterm_stops_the_backfill(engine: Engine) {
    let db = Db::new(engine, "ctl_bf_term").await;
    let writer = MirrorWriter::start(&db, 4).await;
    let (dir, d) = support::phases::write_migration(
        &support::unique_name("ctl_bf_term"),
        "0001_double_v.toml",
        r#"name = "double v"
[[operations]]
type = "add_column"
table = "orders"
column = { name = "v2", type = "BIGINT", nullable = true }
up = "v * 2"
"#,
    );
    let sock = sock_path("bfterm", engine);
    let sock_s = sock.to_string_lossy().to_string();
    let args = |with_socket: bool| {
        let mut v = vec![
            "migrate",
            d.as_str(),
            "--url",
            db.url(),
            "--execute",
            "--format",
            "json",
            "--batch-size",
            "100",
            "--max-rows-per-second",
            "400",
        ];
        if with_socket {
            v.extend(["--serve-socket-file", sock_s.as_str()]);
        }
        v
    };
    let mut live = LiveRun::start(&args(true), &[]);
    live.wait_backfilled(120, 200).await;
    live.signal(15);
    let run = live.finish().await;
    assert_eq!(run.code, 30, "{}\n{}", run.stdout, run.stderr);
    assert!(!sock.exists(), "the socket file is left after SIGTERM");
    let left = db.count("v2 IS NULL").await;
    assert!(left > 0, "the backfill was not stopped mid-way");
    let rerun = LiveRun::start(&args(false), &[]).finish().await;
    writer.stop().await;
    rerun.expect_ok();
    assert_eq!(db.count("v2 IS NULL OR v2 <> v * 2").await, 0);
    let (got, want) = db.orders_and_mirror().await;
    assert!(got == want, "orders differs from the writer's mirror");
    support::phases::phase(db.url(), "contract", &d)
        .await
        .expect_ok();
    let left = db.leftovers().await;
    assert!(
        left.iter()
            .all(|t| t == "orders_mirror" || t.contains("_godwit_migrations")),
        "left behind: {left:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
    db.drop_db().await;
}

/// Nothing listens: `godwit ctl` says so and exits 3.
#[tokio::test]
async fn ctl_without_a_listener() {
    let p = sock_path("dead", Engine::Maria);
    let r = godwit(&["ctl", "--socket", &p.to_string_lossy(), "status"], &[]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("nothing answers"), "{r:?}");
    // A stale socket file (its process gone) too.
    drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
    let r = godwit(&["ctl", "--socket", &p.to_string_lossy(), "status"], &[]).await;
    assert_eq!(r.code, 3, "{r:?}");
    let _ = std::fs::remove_file(&p);
}

support::both::cases!(
    multi_thread:
    steer_a_run,
    panic_mid_copy,
    backfill_answers,
    sigterm_stops_the_backfill,
);
