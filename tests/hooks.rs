//! Hooks (`--hooks-path`, issue #13 item 3): executables named for the points of a
//! migration run in order with GODWIT_* variables and never see the password; a failing
//! `on-before-cut-over` postpones the cut-over until it succeeds; `on-failure` tells the
//! error; a hook that hangs is killed and the run goes on; the phase commands run
//! on-startup and on-success. Both engines, a mirrored writer running, a user with a
//! password; every migration ends equal to the mirror with nothing of godwit's left.
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use support::both::{Db, Engine, MirrorWriter};
use support::LiveRun;

const PASSWORD: &str = "Hk-pw-7731-secret";
const ALTER: &str = "ADD COLUMN extra INT";

/// A login with a password on the test's server, and the URL of the test's database
/// through it.
async fn user_url(db: &Db, user: &str) -> String {
    db.url_as(user, PASSWORD).await
}

fn database_name(db: &Db) -> String {
    db.url().rsplit('/').next().unwrap().to_string()
}

/// A directory of its own for the hooks, with the log they append to.
fn hooks_dir(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(support::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("hooks.log");
    (dir, log)
}

fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Appends its name, its arguments and its whole environment to the log.
fn logging(log: &Path) -> String {
    format!(
        "{{ echo \"== $(basename \"$0\") $*\"; env | sort; echo; }} >> '{}'",
        log.display()
    )
}

/// Each hook's run, in order: (file name, its environment).
fn read_log(log: &Path) -> Vec<(String, HashMap<String, String>)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("== ") {
            out.push((rest.trim().to_string(), HashMap::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once('='), out.last_mut()) {
            last.1.insert(k.to_string(), v.to_string());
        }
    }
    out
}

fn first(runs: &[(String, HashMap<String, String>)], prefix: &str) -> usize {
    runs.iter()
        .position(|(f, _)| f.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} never ran: {:?}", names(runs)))
}

fn names(runs: &[(String, HashMap<String, String>)]) -> Vec<&str> {
    runs.iter().map(|(f, _)| f.as_str()).collect()
}

async fn assert_mirrored_and_clean(db: &Db) {
    let (orders, mirror) = db.orders_and_mirror().await;
    assert_eq!(orders.len(), mirror.len(), "row counts differ");
    assert!(orders == mirror, "orders differs from its mirror");
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn every_point_runs_in_order_without_the_password(engine: Engine) {
    let db = Db::new(engine, "hooks_all").await;
    let url = user_url(&db, "godwit_hk_all").await;
    let (dir, log) = hooks_dir("godwit-hooks");
    let gate = dir.join("gate");
    for point in [
        "on-startup",
        "on-validated",
        "on-rowcount-complete",
        "on-before-row-copy",
        "on-row-copy-complete",
        "on-begin-postponed",
        "on-success",
        "on-failure",
    ] {
        script(&dir, &format!("{point}-log"), &logging(&log));
    }
    // Runs in the background, beside the others: a log of its own.
    let status_log = dir.join("status.log");
    script(&dir, "on-status-log", &logging(&status_log));
    // Postpones the cut-over until the test creates the gate file.
    script(
        &dir,
        "on-before-cut-over-gate.sh",
        &format!("{}\n[ -f '{}' ]", logging(&log), gate.display()),
    );
    // Hangs: killed at the timeout, and the run goes on.
    script(&dir, "on-rowcount-complete-zz-hang", "sleep 60");
    // Not executable: a warning, never run.
    std::fs::write(dir.join("on-success-off"), "#!/bin/sh\nexit 1\n").unwrap();

    let writer = MirrorWriter::start(&db, 13).await;
    let hooks_path = dir.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &[
            "run",
            "--url",
            &url,
            "--table",
            "orders",
            "--alter",
            ALTER,
            "--execute",
            "--format",
            "json",
            "--chunk-size",
            "200",
            "--chunk-time-millis",
            "10",
            "--hooks-path",
            &hooks_path,
            "--hooks-timeout-seconds",
            "2",
            "--hooks-status-interval",
            "1",
            "--ok-to-drop-table",
        ],
        &[],
    );
    let postponed = live
        .wait_for(120, |e| e["event"] == "state" && e["state"] == "postponed")
        .await;
    assert!(
        postponed["message"]
            .as_str()
            .unwrap()
            .contains("on-before-cut-over"),
        "{postponed}"
    );
    // Asked again while postponed; the copy stays in sync meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    std::fs::write(&gate, "go").unwrap();
    let run = live.finish().await;
    run.expect_ok();
    writer.stop().await;
    assert_mirrored_and_clean(&db).await;

    let runs = read_log(&log);
    let order = [
        "on-startup",
        "on-validated",
        "on-rowcount-complete",
        "on-before-row-copy",
        "on-row-copy-complete",
        // Its failure postpones: on-begin-postponed follows, then it is asked again.
        "on-before-cut-over",
        "on-begin-postponed",
        "on-success",
    ];
    let at: Vec<usize> = order.iter().map(|p| first(&runs, p)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "out of order: {:?}",
        names(&runs)
    );
    let before = runs
        .iter()
        .filter(|(f, _)| f.starts_with("on-before-cut-over"))
        .count();
    assert!(before >= 2, "on-before-cut-over ran {before} times");
    let status = read_log(&status_log);
    assert!(!status.is_empty(), "on-status never ran");
    assert!(status
        .iter()
        .all(|(f, env)| f == "on-status-log" && env["GODWIT_HOOK"] == "on-status"));
    assert!(!runs.iter().any(|(f, _)| f.starts_with("on-failure")));

    let (_, env) = &runs[at[7]];
    let var = |k: &str| env.get(k).cloned().unwrap_or_default();
    assert_eq!(var("GODWIT_HOOK"), "on-success");
    assert_eq!(var("GODWIT_STATE"), "done");
    assert_eq!(var("GODWIT_TABLE_NAME"), "orders");
    assert_eq!(var("GODWIT_DATABASE_NAME"), database_name(&db));
    assert_eq!(var("GODWIT_USER"), "godwit_hk_all");
    assert_eq!(var("GODWIT_ALTER"), ALTER);
    assert!(var("GODWIT_OLD_TABLE_NAME").starts_with("_godwit_old_orders"));
    assert!(var("GODWIT_SHADOW_TABLE_NAME").contains("orders"));
    assert!(!var("GODWIT_HOST").is_empty() && !var("GODWIT_PORT").is_empty());
    let copied: u64 = var("GODWIT_ROWS_COPIED").parse().unwrap();
    assert!(copied >= 3000, "rows copied {copied}");
    assert!(var("GODWIT_ROWS_ESTIMATE").parse::<u64>().is_ok());
    let (_, startup) = &runs[at[0]];
    assert_eq!(
        startup.get("GODWIT_STATE").map(String::as_str),
        Some("preflight")
    );
    let (_, postponing) = &runs[at[6] + 1];
    assert_eq!(
        postponing.get("GODWIT_STATE").map(String::as_str),
        Some("postponed")
    );
    // No variable, argument or name holds the password, nor any variable of the test's
    // own environment beyond PATH, HOME and LANG.
    let text =
        std::fs::read_to_string(&log).unwrap() + &std::fs::read_to_string(&status_log).unwrap();
    assert!(!text.contains(PASSWORD), "the password reached a hook");
    for (_, env) in runs.iter().chain(&status) {
        for k in env.keys() {
            assert!(
                k.starts_with("GODWIT_")
                    || ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"]
                        .contains(&k.as_str()),
                "unexpected variable {k}"
            );
        }
    }

    let hang = run
        .events
        .iter()
        .find(|e| e["event"] == "hook" && e["file"] == "on-rowcount-complete-zz-hang")
        .expect("hook event of the hanging hook");
    assert_eq!(hang["timed_out"], true, "{hang}");
    assert!(run
        .events
        .iter()
        .any(|e| e["event"] == "warning" && e["hook"] == "on-success-off"));
    std::fs::remove_dir_all(&dir).ok();
    db.drop_db().await;
}

/// A failing run: on-failure with the error and the exit code; no on-success; the
/// original untouched.
async fn on_failure_tells_the_error(engine: Engine) {
    let db = Db::new(engine, "hooks_fail").await;
    let url = user_url(&db, "godwit_hk_fail").await;
    let (dir, log) = hooks_dir("godwit-hooks-fail");
    for point in ["on-startup", "on-success", "on-failure"] {
        script(&dir, &format!("{point}-log"), &logging(&log));
    }
    let before = db.snapshot().await;
    let hooks_path = dir.to_string_lossy().to_string();
    // The column exists already: the server refuses the ALTER on the shadow.
    let run = support::godwit(
        &[
            "run",
            "--url",
            &url,
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN v INT",
            "--execute",
            "--format",
            "json",
            "--hooks-path",
            &hooks_path,
        ],
        &[],
    )
    .await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert_eq!(db.snapshot().await, before, "the original changed");
    let runs = read_log(&log);
    assert_eq!(names(&runs), ["on-startup-log", "on-failure-log"]);
    let env = &runs[1].1;
    assert_eq!(env["GODWIT_EXIT_CODE"], run.code.to_string());
    let err = run.event("error").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        env["GODWIT_ERROR_MESSAGE"].contains(&err),
        "{} vs {err}",
        env["GODWIT_ERROR_MESSAGE"]
    );
    assert!(!std::fs::read_to_string(&log).unwrap().contains(PASSWORD));
    std::fs::remove_dir_all(&dir).ok();
    db.drop_db().await;
}

/// A --hooks-path that is not a directory: exit 2, nothing done.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_hooks_directory_is_refused() {
    let db = Db::new(Engine::Maria, "hooks_missing").await;
    let before = db.snapshot().await;
    let run = support::godwit(
        &[
            "run",
            "--url",
            db.url(),
            "--table",
            "orders",
            "--alter",
            ALTER,
            "--execute",
            "--hooks-path",
            "/nonexistent/godwit-hooks",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--hooks-path"), "{}", run.stderr);
    assert_eq!(db.snapshot().await, before);
    db.drop_db().await;
}

/// The phase commands: on-startup and on-success around `godwit migrate --complete`.
async fn phase_commands_run_startup_and_success_hooks(engine: Engine) {
    let db = Db::new(engine, "hooks_phases").await;
    let url = user_url(&db, "godwit_hk_phases").await;
    let (dir, log) = hooks_dir("godwit-hooks-phases");
    for point in ["on-startup", "on-success", "on-failure"] {
        script(&dir, &format!("{point}-log"), &logging(&log));
    }
    let files = std::env::temp_dir().join(support::unique_name("godwit-hooks-files"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("0001_extra.toml"),
        r#"name = "extra"
[[operations]]
type = "add_column"
table = "orders"
column = { name = "extra", type = "INT", nullable = true }
up = "v + 1"
"#,
    )
    .unwrap();
    let writer = MirrorWriter::start(&db, 5).await;
    let (hooks_path, files_path) = (
        dir.to_string_lossy().to_string(),
        files.to_string_lossy().to_string(),
    );
    let run = support::godwit(
        &[
            "migrate",
            &files_path,
            "--url",
            &url,
            "--execute",
            "--complete",
            "--hooks-path",
            &hooks_path,
        ],
        &[],
    )
    .await;
    run.expect_ok();
    writer.stop().await;
    let runs = read_log(&log);
    assert_eq!(names(&runs), ["on-startup-log", "on-success-log"]);
    let env = &runs[1].1;
    assert_eq!(env["GODWIT_PHASE"], "expand+backfill+contract");
    assert_eq!(env["GODWIT_DATABASE_NAME"], database_name(&db));
    assert_eq!(env["GODWIT_MIGRATION_PATH"], files_path);
    assert!(!std::fs::read_to_string(&log).unwrap().contains(PASSWORD));
    // Filled by the backfill (the writer, not writing the column, goes on after the
    // contract).
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    assert!(db.count("extra = v + 1").await > 0);
    let (orders, mirror) = db.orders_and_mirror().await;
    assert!(orders == mirror, "orders differs from its mirror");
    // The state table stays: it is the record of the migrations.
    let left: Vec<String> = db
        .leftovers()
        .await
        .into_iter()
        .filter(|l| !l.contains("_godwit_migrations"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&files).ok();
    db.drop_db().await;
}

support::both::cases!(
    multi_thread:
    every_point_runs_in_order_without_the_password,
    on_failure_tells_the_error,
    phase_commands_run_startup_and_success_hooks,
);
