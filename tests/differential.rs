//! Differential tests, the server as the oracle (issue #12); docs/differential.md.
//!
//! For every ALTER of the corpus (`tests/differential/<engine>.txt`, format in
//! `tests/support/differential.rs`) over base tables rich in types
//! (`tests/differential/<engine>.sql`):
//!
//! 1. twin tables, same definition and rows, in two fresh databases (MariaDB) or schemas
//!    (PostgreSQL);
//! 2. `writer` cases: a writer applies the same inserts, updates, key changes and deletes
//!    to both twins, one transaction each; godwit starts on its twin with a postpone flag
//!    file, copies and replays under the writer, and waits; the writer stops;
//! 3. `godwit plan --format json` on the native twin, then the native `ALTER TABLE`:
//!    MariaDB — the predicted ALGORITHM/LOCK must be accepted, the next cheaper algorithm
//!    and the next weaker lock refused (the accepted attempt is the native ALTER);
//!    PostgreSQL — the lock and rewrite seen on the server (in a transaction rolled back)
//!    must be the predicted ones, then the ALTER runs;
//! 4. `godwit run --execute --ok-to-drop-table` on the other twin (writer cases: the flag
//!    file goes and godwit cuts over);
//! 5. the definitions (`SHOW CREATE TABLE` / a catalog dump, with only the schema and
//!    godwit's own `_godwit_new_` names normalized) and every row (as text) must be equal,
//!    and nothing of godwit's left. Where the server refuses the ALTER, godwit must refuse
//!    it too, with exit 19 or 33 and the server's message, and change nothing.
//!
//! A case tagged `known:<id>` is expected to differ (a known defect, described in the
//! corpus); it is printed, not failed. Env: `GODWIT_DIFF_PARALLEL` (cases at once,
//! default 4), `GODWIT_DIFF_ONLY=text` (only cases whose line contains the text),
//! `GODWIT_WRITE_DIFF_SUMMARY=1` (rewrite the tables in docs/differential.md).

#[path = "support/differential.rs"]
mod differential;
mod support;

use differential::*;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::Run;

/// Longest time one case may take (setup, plan, native ALTER, godwit, comparison).
const CASE_TIMEOUT_SECS: u64 = 240;

/// A base table: its integer key column (for the writer) and the SQL creating it.
struct Base {
    key: String,
    sql: String,
}

/// Read `tests/differential/<file>`: the `-- fixtures` section and the `-- table:` ones.
fn load_bases(file: &str) -> (String, HashMap<String, Arc<Base>>) {
    let path = format!("{}/tests/differential/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut fixtures = String::new();
    let mut bases: HashMap<String, Arc<Base>> = HashMap::new();
    let mut current: Option<(String, String, String)> = None;
    let mut in_fixtures = false;
    let mut flush = |cur: &mut Option<(String, String, String)>| {
        if let Some((name, key, sql)) = cur.take() {
            bases.insert(name, Arc::new(Base { key, sql }));
        }
    };
    for line in text.lines() {
        if line.trim() == "-- fixtures" {
            flush(&mut current);
            in_fixtures = true;
        } else if let Some(rest) = line.strip_prefix("-- table: ") {
            flush(&mut current);
            in_fixtures = false;
            let mut w = rest.split_whitespace();
            let name = w.next().expect("table name").to_string();
            let key = w
                .next()
                .and_then(|k| k.strip_prefix("key="))
                .unwrap_or_else(|| panic!("{path}: -- table: NAME key=COL"))
                .to_string();
            current = Some((name, key, String::new()));
        } else if let Some((_, _, sql)) = current.as_mut() {
            sql.push_str(line);
            sql.push('\n');
        } else if in_fixtures {
            fixtures.push_str(line);
            fixtures.push('\n');
        }
    }
    flush(&mut current);
    (fixtures, bases)
}

fn parallelism() -> usize {
    std::env::var("GODWIT_DIFF_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// The cases to run (all, or those `GODWIT_DIFF_ONLY` selects) and whether that is all.
fn selected(corpus: &Corpus) -> (Vec<Case>, bool) {
    match std::env::var("GODWIT_DIFF_ONLY") {
        Ok(only) if !only.is_empty() => (
            corpus
                .cases
                .iter()
                .filter(|c| {
                    format!("{}:{} {} | {}", corpus.file, c.line, c.base, c.alter).contains(&only)
                })
                .cloned()
                .collect(),
            false,
        ),
        _ => (corpus.cases.clone(), true),
    }
}

fn failed(case: Case, why: String) -> Verdict {
    Verdict {
        case,
        run: RunResult::Differs(why.clone()),
        plan: PlanResult::Differs(why),
        notes: Vec::new(),
    }
}

/// Run `f` on every case, at most `parallel` at once; a case that panics or times out is
/// a failed verdict, not a failed suite.
async fn run_cases<F, Fut>(cases: Vec<Case>, parallel: usize, f: F) -> Vec<Verdict>
where
    F: Fn(Case) -> Fut,
    Fut: Future<Output = Verdict> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for c in cases {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let fut = f(c.clone());
        tasks.push((
            c,
            tokio::spawn(async move {
                let _permit = permit;
                let t0 = std::time::Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(CASE_TIMEOUT_SECS), fut).await;
                (r, t0.elapsed())
            }),
        ));
    }
    let mut out = Vec::new();
    let mut times = Vec::new();
    for (c, t) in tasks {
        out.push(match t.await {
            Ok((r, took)) => {
                times.push((took, format!("line {} {} | {}", c.line, c.base, c.alter)));
                match r {
                    Ok(v) => v,
                    Err(_) => failed(c, format!("timed out after {CASE_TIMEOUT_SECS} s")),
                }
            }
            Err(e) => {
                let why = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                failed(c, format!("the harness panicked: {why}"))
            }
        });
    }
    times.sort();
    let total: Duration = times.iter().map(|(d, _)| *d).sum();
    if !times.is_empty() {
        eprintln!(
            "{} cases, {:.1} s of case time; slowest: {}",
            times.len(),
            total.as_secs_f64(),
            times
                .iter()
                .rev()
                .take(3)
                .map(|(d, c)| format!("{:.1} s {c}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out
}

/// Report, write the summary when asked (full runs only), fail on unexpected divergences.
fn finish(key: &str, title: &str, corpus: &Corpus, mut verdicts: Vec<Verdict>, full: bool) {
    verdicts.sort_by_key(|v| v.case.line);
    let failures = report(corpus, &verdicts);
    let known = verdicts
        .iter()
        .filter(|v| v.run_judged(corpus) == Judged::Known || v.plan_judged(corpus) == Judged::Known)
        .count();
    eprintln!(
        "{title}: {} cases, {} with a known defect, {} unexpected",
        verdicts.len(),
        known,
        failures.len()
    );
    if full && std::env::var("GODWIT_WRITE_DIFF_SUMMARY").as_deref() == Ok("1") {
        write_summary(key, &summary(title, corpus, &verdicts));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from the server without a known: tag:\n\n{}",
        failures.len(),
        verdicts.len(),
        failures.join("\n\n")
    );
}

/// `godwit plan --format json`: the plan event, or why there is none.
async fn plan_json(url: &str, table: &str, alter: &str) -> Result<serde_json::Value, String> {
    let r = support::godwit(
        &[
            "plan", "--url", url, "--table", table, "--alter", alter, "--format", "json",
        ],
        &[],
    )
    .await;
    if r.code != 0 {
        return Err(format!(
            "godwit plan exits {}: {}",
            r.code,
            error_message(&r)
        ));
    }
    r.event("plan")
        .cloned()
        .ok_or_else(|| format!("godwit plan printed no plan: {}", r.stdout))
}

/// `godwit run --execute` with small chunks, so that copy and replay interleave.
async fn godwit_run(url: &str, table: &str, alter: &str) -> Run {
    support::godwit(
        &[
            "run",
            "--url",
            url,
            "--table",
            table,
            "--alter",
            alter,
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
            "--chunk-size",
            "50",
        ],
        &[],
    )
    .await
}

/// The message of a failed godwit run (its `error` event, else stderr).
fn error_message(r: &Run) -> String {
    r.event("error")
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| r.stderr.trim().to_string())
}

/// Why the server refused the native ALTER.
struct Refusal {
    message: String,
    /// The data does not fit (PostgreSQL SQLSTATE class 22/23; MariaDB errors about
    /// values: truncation, range, NULL, duplicates, CHECK), as opposed to the definition.
    data: bool,
}

/// The verdict on `godwit run`: `native` is the server's outcome, `same` the comparison
/// of the twins afterwards, `names` what message normalization replaces. A refusal must
/// be exit 19 (InvalidAlter) or 33 (DataError) with the server's message; where the
/// server refused the data, godwit's copy may meet it another way (another first row, a
/// column before a constraint, "Column 'c' cannot be null" for "Data truncated for column
/// 'c'"): exit 33 with another message is accepted and noted.
fn judge_run(
    native: &Result<(), Refusal>,
    run: &Run,
    same: Result<(), String>,
    names: &[(&str, &str)],
    notes: &mut Vec<String>,
) -> RunResult {
    let msg = error_message(run);
    match (native, run.code) {
        (Ok(()), 0) => match same {
            Ok(()) => RunResult::Same,
            Err(d) => RunResult::Differs(d),
        },
        (Ok(()), code) => RunResult::Differs(format!(
            "the server accepts the ALTER; godwit exits {code}: {msg}"
        )),
        (Err(e), 0) => RunResult::Differs(format!(
            "the server refuses the ALTER ({}); godwit migrated",
            e.message
        )),
        (Err(e), code) => {
            let server = &e.message;
            if code != 19 && code != 33 {
                return RunResult::Differs(format!(
                    "both refuse, but godwit exits {code}, not 19/33: {msg} (server: {server})"
                ));
            }
            let (want, got) = (
                normalize_message(server, names),
                normalize_message(&msg, names),
            );
            if !got.contains(&want) {
                if code == 33 && e.data {
                    notes.push(format!(
                        "both refuse for the data, worded differently: server: {server}; godwit: {msg}"
                    ));
                } else {
                    return RunResult::Differs(format!(
                        "both refuse, with other messages: server: {server}; godwit (exit {code}): {msg}"
                    ));
                }
            }
            match same {
                Ok(()) => RunResult::Refused,
                Err(d) => RunResult::Differs(format!(
                    "both refuse, but the tables differ afterwards: {d}"
                )),
            }
        }
    }
}

/// `godwit run` for a writer case, with a postpone flag file: returns once godwit waits
/// to cut over (true) or has exited (false), so the writer can stop before the swap and
/// every write is made under the old definition on both twins.
async fn start_postponed(
    url: &str,
    table: &str,
    alter: &str,
    forward: bool,
    flag: &std::path::Path,
) -> (support::LiveRun, bool) {
    std::fs::write(flag, b"").unwrap();
    let flag = flag.to_string_lossy().to_string();
    let mut args = vec![
        "run",
        "--url",
        url,
        "--table",
        table,
        "--alter",
        alter,
        "--execute",
        "--ok-to-drop-table",
        "--format",
        "json",
        "--chunk-size",
        "50",
        "--postpone-cut-over-flag-file",
        &flag,
    ];
    if forward {
        // Small chunks (100 rows), several between two replays: a row moved past the end
        // is copied again by the last chunk before its old copy is replayed away.
        args.extend(["--chunk-time-millis", "10"]);
    }
    let mut live = support::LiveRun::start(&args, &[]);
    let postponed = live
        .wait_until(CASE_TIMEOUT_SECS / 2, |e| {
            e["event"] == "state" && e["state"] == "postponed"
        })
        .await
        .is_some();
    (live, postponed)
}

/// For a writer case that migrated: note when none of the writer's changes reached the
/// replay (the writes all came before the copy read the rows).
fn replay_note(case: &Case, run: &Run, notes: &mut Vec<String>) {
    if case.writer && run.code == 0 {
        let replayed = run
            .event("done")
            .and_then(|d| d["keys_replayed"].as_u64())
            .unwrap_or(0);
        if replayed == 0 {
            notes.push("the writer's changes were all copied, none replayed".into());
        }
    }
}

/// A flag file of this case's own.
fn flag_file(engine: &str, case: &Case) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "godwit-diff-{engine}-{}-{}",
        std::process::id(),
        case.line
    ))
}

/// Render a value read through the text protocol.
fn text(v: &mysql_async::Value) -> String {
    match v {
        mysql_async::Value::NULL => "NULL".into(),
        mysql_async::Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("0x{}", hex::encode(b)),
        },
        other => format!("{other:?}"),
    }
}

/// A writer's outcome.
struct WriterStats {
    ops: u64,
    retried: u64,
    errors: Vec<String>,
}

/// Which write a writer transaction makes.
#[derive(Clone, Copy)]
enum Write {
    Insert { id: i64, w: i64 },
    Update { id: i64, w: i64 },
    Delete { id: i64 },
    Rekey { id: i64, new: i64 },
}

/// Keys the writer's inserts start above; base rows have keys from 100000 up.
const INSERT_KEYS: i64 = 1_000_000;
/// Keys moved backwards go below this.
const MOVED_KEYS: i64 = 100_000;

/// The next write: inserts with fresh keys (from 1,000,000 up), updates of `w`, deletes
/// and key changes of rows this writer knows to exist: backwards (below 100,000, behind
/// the copy) or, with `forward`, past every row (the copy's last chunk reads them again).
fn next_write(
    rng: &mut rand::rngs::StdRng,
    live: &[i64],
    next: &mut i64,
    moved: &mut i64,
    forward: bool,
) -> Write {
    use rand::Rng;
    let op = rng.random_range(0..100);
    let w = rng.random_range(0..1_000_000);
    if live.is_empty() || op < 35 {
        *next += 1;
        return Write::Insert { id: *next, w };
    }
    let id = live[rng.random_range(0..live.len())];
    // Forwards: half the writes are key changes.
    let op = if forward && op >= 50 { 95 } else { op };
    match op {
        35..=74 => Write::Update { id, w },
        75..=89 => Write::Delete { id },
        _ if forward => {
            *next += 1;
            Write::Rekey { id, new: *next }
        }
        _ => {
            *moved -= 1;
            Write::Rekey { id, new: *moved }
        }
    }
}

fn apply_write(live: &mut Vec<i64>, w: Write) {
    match w {
        Write::Insert { id, .. } => live.push(id),
        Write::Update { .. } => {}
        Write::Delete { id } => live.retain(|x| *x != id),
        Write::Rekey { id, new } => {
            for x in live.iter_mut() {
                if *x == id {
                    *x = new;
                }
            }
        }
    }
}

/// The SQL of one write on `table` (`key` is the writer's integer key column).
fn write_sql(table: &str, key: &str, w: Write) -> String {
    match w {
        Write::Insert { id, w } => format!("INSERT INTO {table} ({key}, w) VALUES ({id}, {w})"),
        Write::Update { id, w } => format!("UPDATE {table} SET w = {w} WHERE {key} = {id}"),
        Write::Delete { id } => format!("DELETE FROM {table} WHERE {key} = {id}"),
        Write::Rekey { id, new } => format!("UPDATE {table} SET {key} = {new} WHERE {key} = {id}"),
    }
}

/// A concurrent writer: each transaction applies the same write to both twins.
struct Writer {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<WriterStats>,
}

impl Writer {
    /// Wait until `n` more transactions have committed (at most 30 s).
    async fn wait(&self, n: u64) {
        let n = self.ops.load(Ordering::SeqCst) + n;
        for _ in 0..600 {
            if self.ops.load(Ordering::SeqCst) >= n || self.task.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> WriterStats {
        self.stop.store(true, Ordering::SeqCst);
        match self.task.await {
            Ok(s) => s,
            Err(e) => WriterStats {
                ops: 0,
                retried: 0,
                errors: vec![format!("writer task failed: {e}")],
            },
        }
    }
}

fn writer_notes(s: &WriterStats, notes: &mut Vec<String>) -> Option<String> {
    if s.ops == 0 || !s.errors.is_empty() {
        notes.push(format!(
            "writer: {} transactions, {} retried",
            s.ops, s.retried
        ));
    }
    if s.errors.is_empty() {
        None
    } else {
        Some(format!(
            "the concurrent writer failed ({} transactions committed): {}",
            s.ops,
            s.errors.join(" / ")
        ))
    }
}

mod my {
    use super::*;
    use mysql_async::prelude::*;
    use mysql_async::{Conn, Opts, TxOpts};
    use support::mysql::{check_algorithm, server_url, TestDb};

    /// One case on MariaDB: twins in two fresh databases.
    pub async fn run_case(case: Case, base: Arc<Base>) -> Verdict {
        let t = case.base.clone();
        let a = TestDb::new("dfn").await;
        let b = TestDb::new("dfg").await;
        let mut notes = Vec::new();
        for db in [&a, &b] {
            if let Err(e) = setup(db, &base.sql).await {
                return failed(case, format!("creating the base table: {e}"));
            }
        }
        // Writer cases: godwit copies and replays under the writer, the writer stops before
        // the cut-over, then the native ALTER runs and godwit cuts over.
        let mut live = None;
        let mut writer_failed = None;
        let flag = flag_file("my", &case);
        if case.writer {
            let w = start_writer(&a, &b, &t, &base.key, case.forward).await;
            w.wait(20).await;
            let (l, postponed) =
                start_postponed(&b.url, &t, &case.alter, case.forward, &flag).await;
            if postponed {
                w.wait(20).await;
            }
            writer_failed = writer_notes(&w.stop().await, &mut notes);
            live = Some(l);
        }
        let saved = set_globals(&case.globals).await;
        let plan = plan_json(&a.url, &t, &case.alter)
            .await
            .and_then(|p| prediction(&p));
        let (native, plan) = native(&a, &t, &case.alter, plan).await;
        let run = match live {
            Some(l) => {
                let _ = std::fs::remove_file(&flag);
                l.finish().await
            }
            None => godwit_run(&b.url, &t, &case.alter).await,
        };
        restore_globals(saved).await;
        replay_note(&case, &run, &mut notes);
        let same = compare(&a, &b, &t, &case.volatile).await;
        let shadow = format!("{t}_godwit_new");
        let mut run = judge_run(
            &native,
            &run,
            same,
            &[(&shadow, &t), (&a.name, "N"), (&b.name, "N")],
            &mut notes,
        );
        if let Some(w) = writer_failed {
            run = RunResult::Differs(w);
        }
        a.drop_db().await;
        b.drop_db().await;
        Verdict {
            case,
            run,
            plan,
            notes,
        }
    }

    async fn setup(db: &TestDb, sql: &str) -> Result<(), String> {
        // A connection of its own: the pool's connections are made later, under the
        // case's global settings.
        let mut c = Conn::new(Opts::from_url(&db.url).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        // One statement per query: godwit's connections (and so these) never allow more.
        for s in support::mysql::split(sql) {
            c.query_drop(s).await.map_err(|e| e.to_string())?;
        }
        c.disconnect().await.map_err(|e| e.to_string())
    }

    /// `SET GLOBAL` each setting; returns the old values.
    async fn set_globals(globals: &[(String, String)]) -> Vec<(String, String)> {
        let mut saved = Vec::new();
        if globals.is_empty() {
            return saved;
        }
        let mut c = Conn::new(Opts::from_url(&server_url().await).unwrap())
            .await
            .unwrap();
        for (k, v) in globals {
            let old: Option<String> = c.query_first(format!("SELECT @@GLOBAL.{k}")).await.unwrap();
            c.query_drop(format!("SET GLOBAL {k} = '{v}'"))
                .await
                .unwrap();
            saved.push((k.clone(), old.unwrap_or_default()));
        }
        saved
    }

    async fn restore_globals(saved: Vec<(String, String)>) {
        if saved.is_empty() {
            return;
        }
        let mut c = Conn::new(Opts::from_url(&server_url().await).unwrap())
            .await
            .unwrap();
        for (k, v) in saved {
            c.query_drop(format!("SET GLOBAL {k} = '{v}'"))
                .await
                .unwrap();
        }
    }

    /// The planner's ALGORITHM and LOCK.
    fn prediction(p: &serde_json::Value) -> Result<(String, String), String> {
        let o = &p["overall"];
        match (o["algorithm"].as_str(), o["mysql_lock"].as_str()) {
            (Some(a), Some(l)) => Ok((a.to_string(), l.to_string())),
            _ => Err(format!("the plan predicts no ALGORITHM/LOCK: {o}")),
        }
    }

    /// MariaDB errors about values rather than the definition.
    const DATA_ERRORS: [u16; 12] = [
        1048, 1062, 1138, 1264, 1265, 1292, 1366, 1406, 1452, 1690, 3819, 4025,
    ];

    fn refusal(e: mysql_async::Error) -> Refusal {
        match e {
            mysql_async::Error::Server(s) => Refusal {
                data: DATA_ERRORS.contains(&s.code),
                message: s.message,
            },
            e => Refusal {
                message: e.to_string(),
                data: false,
            },
        }
    }

    /// The native ALTER on `t`, through the prediction check when there is a prediction.
    async fn native(
        a: &TestDb,
        t: &str,
        alter: &str,
        plan: Result<(String, String), String>,
    ) -> (Result<(), Refusal>, PlanResult) {
        let (mismatch, applied) = match &plan {
            Ok((alg, lock)) => {
                let c = check_algorithm(a, t, alter, alg, lock).await;
                (
                    c.mismatch.map(|m| format!("predicted {alg}/{lock}: {m}")),
                    c.applied,
                )
            }
            Err(e) => (Some(e.clone()), false),
        };
        let native = if applied {
            Ok(())
        } else {
            let mut c = a.conn().await;
            c.query_drop(format!("ALTER TABLE `{t}` {alter}"))
                .await
                .map_err(refusal)
        };
        let plan = match (&native, mismatch) {
            (Err(_), _) => PlanResult::NotApplicable,
            (Ok(()), Some(m)) => PlanResult::Differs(m),
            (Ok(()), None) => PlanResult::Match,
        };
        (native, plan)
    }

    /// Same definition, same rows, nothing left behind.
    async fn compare(a: &TestDb, b: &TestDb, t: &str, volatile: &[String]) -> Result<(), String> {
        let (da, db) = (a.show_create(t).await, b.show_create(t).await);
        if da != db {
            let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
            return Err(format!(
                "definitions differ (- native, + godwit):\n{}",
                line_diff(&lines(&da), &lines(&db))
            ));
        }
        let names: Vec<String> = a
            .query(&format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{t}' ORDER BY ORDINAL_POSITION",
                a.name
            ))
            .await;
        let cols = names
            .iter()
            .map(|c| {
                if volatile.contains(c) {
                    format!("(`{c}` IS NULL)")
                } else {
                    format!("`{c}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let render = |rows: Vec<Vec<mysql_async::Value>>| {
            rows.iter()
                .map(|r| r.iter().map(text).collect::<Vec<_>>().join(" | "))
                .collect::<Vec<_>>()
        };
        compare_rows(
            render(a.rows(t, &cols, "1").await),
            render(b.rows(t, &cols, "1").await),
        )?;
        let mut left = a.leftovers(&[]).await;
        left.extend(b.leftovers(&[]).await);
        if !left.is_empty() {
            return Err(format!("left behind: {left:?}"));
        }
        Ok(())
    }

    /// The writer: one connection, each transaction writes `b`'s twin then `a`'s. Its
    /// session clock is fixed, so `CURRENT_TIMESTAMP` defaults are the same in both.
    async fn start_writer(a: &TestDb, b: &TestDb, t: &str, key: &str, forward: bool) -> Writer {
        use rand::SeedableRng;
        let ids: Vec<i64> = a.query(&format!("SELECT `{key}` FROM `{t}`")).await;
        let pool = a.pool.clone();
        let tables = [format!("`{}`.`{t}`", b.name), format!("`{}`.`{t}`", a.name)];
        let key = format!("`{key}`");
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2) = (stop.clone(), ops.clone());
        let task = tokio::spawn(async move {
            let mut s = WriterStats {
                ops: 0,
                retried: 0,
                errors: Vec::new(),
            };
            let mut conn = match pool.get_conn().await {
                Ok(c) => c,
                Err(e) => {
                    s.errors.push(e.to_string());
                    return s;
                }
            };
            if let Err(e) = conn
                .query_drop("SET SESSION timestamp = 1700000000.25")
                .await
            {
                s.errors.push(e.to_string());
                return s;
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut live = ids;
            let (mut next, mut moved) = (INSERT_KEYS, MOVED_KEYS);
            while !stop2.load(Ordering::SeqCst) {
                let w = next_write(&mut rng, &live, &mut next, &mut moved, forward);
                let r: Result<(), mysql_async::Error> = async {
                    let mut opts = TxOpts::default();
                    opts.with_isolation_level(mysql_async::IsolationLevel::ReadCommitted);
                    let mut tx = conn.start_transaction(opts).await?;
                    for table in &tables {
                        tx.query_drop(write_sql(table, &key, w)).await?;
                    }
                    tx.commit().await
                }
                .await;
                match r {
                    Ok(()) => {
                        apply_write(&mut live, w);
                        s.ops += 1;
                        ops2.store(s.ops, Ordering::SeqCst);
                    }
                    Err(mysql_async::Error::Server(e)) if [1205, 1213, 1412].contains(&e.code) => {
                        s.retried += 1;
                    }
                    Err(e) => {
                        s.errors.push(e.to_string());
                        if s.errors.len() >= 3 {
                            break;
                        }
                    }
                }
                if !forward {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            s
        });
        Writer { stop, ops, task }
    }
}

mod pg {
    use super::*;
    use support::postgres::{observe, TestDb};

    /// Run `fixtures` once in the suite's database.
    pub async fn fixtures(db: &TestDb, sql: &str) {
        db.exec(sql).await;
    }

    /// One case on PostgreSQL: twins in two fresh schemas of the suite's database.
    pub async fn run_case(db: Arc<TestDb>, case: Case, base: Arc<Base>) -> Verdict {
        let t = case.base.clone();
        let (sa, sb) = (format!("c{}_n", case.line), format!("c{}_g", case.line));
        let (ta, tb) = (format!("{sa}.{t}"), format!("{sb}.{t}"));
        let mut notes = Vec::new();
        let c = db.conn().await;
        if let Err(e) = c
            .batch_execute(&format!(
                "CREATE SCHEMA {sa}; SET search_path = {sa}, public; {0}; \
                 CREATE SCHEMA {sb}; SET search_path = {sb}, public; {0}",
                base.sql
            ))
            .await
        {
            return failed(case, format!("creating the base table: {e:?}"));
        }
        drop(c);
        let mut live = None;
        let mut writer_failed = None;
        let flag = flag_file("pg", &case);
        if case.writer {
            let w = start_writer(&db, &ta, &tb, &base.key, case.forward).await;
            w.wait(20).await;
            let (l, postponed) =
                start_postponed(&db.url, &tb, &case.alter, case.forward, &flag).await;
            if postponed {
                w.wait(20).await;
            }
            writer_failed = writer_notes(&w.stop().await, &mut notes);
            live = Some(l);
        }
        set_globals(&db, &case.globals).await;
        let plan = plan_json(&db.url, &ta, &case.alter)
            .await
            .and_then(|p| prediction(&p));
        let stmt = format!("ALTER TABLE {ta} {}", case.alter);
        let seen = observe(&db, &ta, &stmt).await;
        let native = match db.conn().await.batch_execute(&stmt).await {
            Ok(()) => Ok(()),
            Err(e) => Err(match e.as_db_error() {
                Some(d) => Refusal {
                    message: d.message().to_string(),
                    data: ["22", "23"].iter().any(|c| d.code().code().starts_with(c)),
                },
                None => Refusal {
                    message: e.to_string(),
                    data: false,
                },
            }),
        };
        let plan = match (&native, plan, seen) {
            (Err(_), _, _) => PlanResult::NotApplicable,
            (Ok(()), Err(e), _) => PlanResult::Differs(e),
            (Ok(()), Ok(_), Err(e)) => {
                PlanResult::Differs(format!("could not observe the ALTER: {e}"))
            }
            (Ok(()), Ok((lock, rewrite)), Ok(seen)) => {
                let seen_lock = serde_json::to_value(seen.lock)
                    .unwrap()
                    .as_str()
                    .unwrap_or("none")
                    .to_string();
                if (seen_lock.as_str(), seen.rewrite) == (lock.as_str(), rewrite) {
                    PlanResult::Match
                } else {
                    PlanResult::Differs(format!(
                        "predicted {lock}, rewrite {rewrite}; the server took {seen_lock}, rewrite {}",
                        seen.rewrite
                    ))
                }
            }
        };
        let run = match live {
            Some(l) => {
                let _ = std::fs::remove_file(&flag);
                l.finish().await
            }
            None => godwit_run(&db.url, &tb, &case.alter).await,
        };
        reset_globals(&db, &case.globals).await;
        replay_note(&case, &run, &mut notes);
        let same = compare(&db, &sa, &sb, &t, &case.volatile, &mut notes).await;
        let shadow = format!("_godwit_new_{t}");
        let mut run = judge_run(
            &native,
            &run,
            same,
            &[(&shadow, &t), (&sa, "N"), (&sb, "N")],
            &mut notes,
        );
        if let Some(w) = writer_failed {
            run = RunResult::Differs(w);
        }
        let _ = db
            .conn()
            .await
            .batch_execute(&format!(
                "DROP SCHEMA {sa} CASCADE; DROP SCHEMA {sb} CASCADE"
            ))
            .await;
        Verdict {
            case,
            run,
            plan,
            notes,
        }
    }

    async fn set_globals(db: &TestDb, globals: &[(String, String)]) {
        for (k, v) in globals {
            db.exec(&format!("ALTER DATABASE \"{}\" SET {k} = '{v}'", db.name))
                .await;
        }
    }

    async fn reset_globals(db: &TestDb, globals: &[(String, String)]) {
        for (k, _) in globals {
            db.exec(&format!("ALTER DATABASE \"{}\" RESET {k}", db.name))
                .await;
        }
    }

    /// The planner's lock (as serialized) and rewrite.
    fn prediction(p: &serde_json::Value) -> Result<(String, bool), String> {
        let o = &p["overall"];
        match (o["pg_lock"].as_str(), o["rewrite"].as_bool()) {
            (Some(l), Some(r)) => Ok((l.to_string(), r)),
            _ => Err(format!("the plan predicts no lock/rewrite: {o}")),
        }
    }

    /// The definition with the schema and godwit's shadow prefix taken out; constraints,
    /// indexes, triggers and sequences sorted again (by their names without the prefix),
    /// columns kept in their order.
    async fn definition(db: &TestDb, schema: &str, t: &str) -> Vec<String> {
        let (mut columns, mut rest): (Vec<String>, Vec<String>) = db
            .definition(&format!("{schema}.{t}"))
            .await
            .into_iter()
            .map(|l| {
                l.replace(&format!("{schema}."), "")
                    .replace("_godwit_new_", "")
            })
            .partition(|l| l.starts_with("column"));
        rest.sort();
        columns.extend(rest);
        columns
    }

    async fn compare(
        db: &TestDb,
        sa: &str,
        sb: &str,
        t: &str,
        volatile: &[String],
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        let godwit_names: Vec<String> = db
            .definition(&format!("{sb}.{t}"))
            .await
            .into_iter()
            .filter(|l| l.contains("_godwit"))
            .collect();
        if !godwit_names.is_empty() {
            notes.push(format!("godwit's names in the result: {godwit_names:?}"));
        }
        let (da, dbb) = (definition(db, sa, t).await, definition(db, sb, t).await);
        if da != dbb {
            return Err(format!(
                "definitions differ (- native, + godwit):\n{}",
                line_diff(&da, &dbb)
            ));
        }
        let vol = volatile
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let cols = db
            .strings(&format!(
                "SELECT string_agg(CASE WHEN attname IN ({}) THEN '(' || quote_ident(attname) || ' IS NULL)' ELSE quote_ident(attname) END, ', ' ORDER BY attnum) \
                 FROM pg_attribute WHERE attrelid = '{sa}.{t}'::regclass AND attnum > 0 AND NOT attisdropped",
                if vol.is_empty() { "NULL".to_string() } else { vol }
            ))
            .await
            .remove(0);
        compare_rows(
            db.rows(&format!("{sa}.{t}"), &cols, "1").await,
            db.rows(&format!("{sb}.{t}"), &cols, "1").await,
        )?;
        let left = db
            .strings(&format!(
                "SELECT relname::text FROM pg_class c WHERE relnamespace IN ('{sa}'::regnamespace, '{sb}'::regnamespace) AND relname LIKE '\\_godwit%' \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.refobjid = '{sb}.{t}'::regclass AND d.deptype IN ('a', 'i'))"
            ))
            .await;
        if !left.is_empty() {
            return Err(format!("left behind: {left:?}"));
        }
        Ok(())
    }

    /// The writer: one connection, each transaction writes `tb` then `ta`.
    async fn start_writer(db: &TestDb, ta: &str, tb: &str, key: &str, forward: bool) -> Writer {
        use rand::SeedableRng;
        let ids: Vec<i64> = db
            .strings(&format!("SELECT {key}::text FROM {ta}"))
            .await
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut client = db.conn().await;
        let tables = [tb.to_string(), ta.to_string()];
        let key = key.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2) = (stop.clone(), ops.clone());
        let task = tokio::spawn(async move {
            let mut s = WriterStats {
                ops: 0,
                retried: 0,
                errors: Vec::new(),
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut live = ids;
            let (mut next, mut moved) = (INSERT_KEYS, MOVED_KEYS);
            while !stop2.load(Ordering::SeqCst) {
                let w = next_write(&mut rng, &live, &mut next, &mut moved, forward);
                let r: Result<(), tokio_postgres::Error> = async {
                    let tx = client.transaction().await?;
                    for table in &tables {
                        tx.batch_execute(&write_sql(table, &key, w)).await?;
                    }
                    tx.commit().await
                }
                .await;
                match r {
                    Ok(()) => {
                        apply_write(&mut live, w);
                        s.ops += 1;
                        ops2.store(s.ops, Ordering::SeqCst);
                    }
                    Err(e)
                        if e.code()
                            .is_some_and(|c| ["40P01", "40001", "55P03"].contains(&c.code())) =>
                    {
                        s.retried += 1;
                    }
                    Err(e) => {
                        s.errors.push(format!("{e:?}"));
                        if s.errors.len() >= 3 {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            s
        });
        Writer { stop, ops, task }
    }
}

async fn mysql_version() -> String {
    use mysql_async::prelude::*;
    let url = support::mysql::server_url().await;
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
        .await
        .unwrap();
    let v: Option<String> = c.query_first("SELECT VERSION()").await.unwrap();
    v.unwrap_or_default()
}

#[tokio::test]
async fn mariadb_alters_match_the_server() {
    let corpus = Corpus::load("mysql.txt");
    assert!(
        corpus.cases.len() >= 150,
        "the corpus has {} cases",
        corpus.cases.len()
    );
    let (_, bases) = load_bases("mysql.sql");
    for c in &corpus.cases {
        assert!(
            bases.contains_key(&c.base),
            "line {}: no base {}",
            c.line,
            c.base
        );
    }
    let (cases, full) = selected(&corpus);
    let (serial, parallel): (Vec<Case>, Vec<Case>) =
        cases.into_iter().partition(|c| !c.globals.is_empty());
    let f = |c: Case| {
        let b = bases[&c.base].clone();
        my::run_case(c, b)
    };
    let mut verdicts = run_cases(parallel, parallelism(), f).await;
    verdicts.extend(run_cases(serial, 1, f).await);
    let title = format!("MariaDB {}", mysql_version().await);
    finish("mysql", &title, &corpus, verdicts, full);
}

#[tokio::test]
async fn postgres_alters_match_the_server() {
    let corpus = Corpus::load("postgres.txt");
    assert!(
        corpus.cases.len() >= 150,
        "the corpus has {} cases",
        corpus.cases.len()
    );
    let (fixtures, bases) = load_bases("postgres.sql");
    for c in &corpus.cases {
        assert!(
            bases.contains_key(&c.base),
            "line {}: no base {}",
            c.line,
            c.base
        );
    }
    let (cases, full) = selected(&corpus);
    let db = Arc::new(support::postgres::TestDb::new("diff").await);
    pg::fixtures(&db, &fixtures).await;
    let (serial, parallel): (Vec<Case>, Vec<Case>) =
        cases.into_iter().partition(|c| !c.globals.is_empty());
    let f = |c: Case| {
        let b = bases[&c.base].clone();
        pg::run_case(db.clone(), c, b)
    };
    let mut verdicts = run_cases(parallel, parallelism(), f).await;
    verdicts.extend(run_cases(serial, 1, f).await);
    let version = db.strings("SHOW server_version").await.remove(0);
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind in the database: {left:?}");
    finish(
        "postgres",
        &format!("PostgreSQL {version}"),
        &corpus,
        verdicts,
        full,
    );
    if let Ok(db) = Arc::try_unwrap(db) {
        db.drop_db().await;
    }
}
