//! Expand / backfill / contract migrations from files.
//!
//! A migration file lists operations ([`ops`]). Each phase asks every operation for its
//! statements, and runs them:
//! - **expand**: additive changes and sync triggers; old and new application both work;
//! - **backfill**: existing rows get the new shape, in primary-key batches;
//! - **contract**: the old shape goes away; the result equals a native ALTER;
//! - **abort**: undo an expanded, not yet contracted migration without losing data.
//!
//! The state table ([`state`]) records each migration's phase and checksum; a runner
//! lock keeps one runner at a time. Without `execute` every phase only prints its
//! statements.

mod backfill;
pub mod catalog;
pub mod db;
pub mod dialect;
pub mod file;
pub mod ops;
pub mod state;
pub mod stmt;
use state::PhaseState;

use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Format, Reporter};
use crate::schema::Table;
use crate::throttle::Throttle;
use db::{Db, PhaseTarget};
use file::MigrationFile;
use ops::{Cx, Probe, Stmt, StmtKind};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Expand,
    Backfill,
    Contract,
    Abort,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::Backfill => "backfill",
            Phase::Contract => "contract",
            Phase::Abort => "abort",
        }
    }
}

pub struct PhaseOptions {
    pub execute: bool,
    pub allow_changed: bool,
    pub batch_size: u64,
    pub lock_timeout: Duration,
    pub format: Format,
    /// The control socket's knobs for the backfill (chunk-size, panic, nice-ratio) and
    /// its status.
    pub control: std::sync::Arc<crate::control::Control>,
}

fn mig_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Migration, msg)
}

/// What to do with a migration in its current state.
enum Decision {
    Run { resuming: bool },
    Noop(String),
}

fn decide(phase: Phase, state: &PhaseState, id: &str) -> Result<Decision> {
    use Decision::*;
    use PhaseState as S;
    let out_of_order = |need: &str| {
        Err(mig_err(format!(
            "{id}: cannot {} while the migration is {}: {need}",
            phase.name(),
            if *state == S::Pending { "not started" } else { state.as_str() }
        ))
        .with_hint("phases run in order: expand, backfill, contract (or abort before contract); `godwit status` shows where each migration stands"))
    };
    match (phase, state) {
        (Phase::Expand, S::Pending | S::Aborted) => Ok(Run { resuming: false }),
        (Phase::Expand, S::Expanding) => Ok(Run { resuming: true }),
        (Phase::Expand, S::Expanded | S::Backfilling | S::Backfilled) => {
            Ok(Noop(format!("{id} is already expanded")))
        }
        (Phase::Expand, S::Complete) => Ok(Noop(format!("{id} is complete"))),
        (Phase::Expand, _) => out_of_order("finish that phase first"),
        (Phase::Backfill, S::Expanded) => Ok(Run { resuming: false }),
        (Phase::Backfill, S::Backfilling) => Ok(Run { resuming: true }),
        (Phase::Backfill, S::Backfilled | S::Complete) => {
            Ok(Noop(format!("{id} is already backfilled")))
        }
        (Phase::Backfill, S::Pending | S::Aborted | S::Expanding) => {
            out_of_order("run `godwit expand` first")
        }
        (Phase::Backfill, _) => out_of_order("finish that phase first"),
        (Phase::Contract, S::Backfilled) => Ok(Run { resuming: false }),
        (Phase::Contract, S::Contracting) => Ok(Run { resuming: true }),
        (Phase::Contract, S::Complete) => Ok(Noop(format!("{id} is already contracted"))),
        (Phase::Contract, S::Expanded | S::Backfilling) => {
            out_of_order("run `godwit backfill` first")
        }
        (Phase::Contract, S::Pending | S::Aborted | S::Expanding) => {
            out_of_order("run `godwit expand` first")
        }
        (Phase::Contract, _) => out_of_order("finish that phase first"),
        (Phase::Abort, S::Expanding | S::Expanded | S::Backfilling | S::Backfilled) => {
            Ok(Run { resuming: false })
        }
        (Phase::Abort, S::Aborting) => Ok(Run { resuming: true }),
        (Phase::Abort, S::Pending | S::Aborted) => Ok(Noop(format!("{id}: nothing to abort"))),
        (Phase::Abort, S::Complete) => Err(mig_err(format!(
            "{id} is already contracted: abort is only possible before contract"
        ))
        .with_hint("write a new migration that reverses it")),
        (Phase::Abort, _) => out_of_order("finish the contract with `godwit contract`"),
    }
}

/// Short, stable base name for one operation's triggers and constraints.
fn tag(id: &str, op: usize) -> String {
    format!("_godwit_{}_{}", &file::checksum(id.as_bytes())[..8], op + 1)
}

fn op_label(f: &MigrationFile, i: usize) -> String {
    format!(
        "{}: operation #{} ({})",
        f.path.display(),
        i + 1,
        f.operations[i].op().describe()
    )
}

/// Catalog information for every table and view the migration's operations name. An
/// operation's [`ops::Op::table`] must exist (as a table); its other relations may not.
async fn tables(db: &mut Db, f: &MigrationFile) -> Result<HashMap<String, Table>> {
    let mut out = HashMap::new();
    for (i, op) in f.operations.iter().enumerate() {
        let op = op.op();
        if let Some(t) = op.table() {
            if !out.contains_key(t) {
                if let Some(info) = db.table_info(t).await? {
                    out.insert(t.to_string(), info);
                }
            }
            if out.get(t).is_none_or(|i| i.view) {
                return Err(Error::new(
                    ErrorKind::TableMissing,
                    format!("{}: table `{t}` does not exist", op_label(f, i)),
                ));
            }
        }
        for r in op.relations() {
            if !out.contains_key(r) {
                if let Some(info) = db.table_info(r).await? {
                    out.insert(r.to_string(), info);
                }
            }
        }
    }
    Ok(out)
}

/// The statements of one phase, per operation (index, statements), in order. With
/// `planning`, operations plan as if the earlier phases had run (dry runs, `godwit plan`,
/// and the undo of an expand, planned before it runs).
pub async fn phase_statements(
    db: &mut Db,
    f: &MigrationFile,
    phase: Phase,
    resuming: bool,
    planning: bool,
) -> Result<Vec<(usize, Vec<Stmt>)>> {
    per_op(db, f, resuming, planning, |op, cx| match phase {
        Phase::Expand => op.expand(cx),
        Phase::Contract => op.contract(cx),
        Phase::Abort => op.abort(cx),
        Phase::Backfill => Ok(vec![]),
    })
    .await
}

/// `g` for every operation of `f`, with what it knows of its table; an error names the
/// operation.
async fn per_op<T>(
    db: &mut Db,
    f: &MigrationFile,
    resuming: bool,
    planning: bool,
    g: impl Fn(&dyn ops::Op, &Cx) -> std::result::Result<T, String>,
) -> Result<Vec<(usize, T)>> {
    let infos = tables(db, f).await?;
    let mut out = Vec::new();
    for (i, op) in f.operations.iter().enumerate() {
        let op = op.op();
        let cx = Cx {
            sql: db.dialect(),
            table: op.table().and_then(|t| infos.get(t)),
            catalog: &infos,
            tag: tag(&f.id, i),
            resuming,
            planning,
        };
        let v = g(op, &cx).map_err(|m| mig_err(format!("{}: {m}", op_label(f, i))))?;
        out.push((i, v));
    }
    Ok(out)
}

/// The statements of one phase, in order.
async fn phase_statements_in_order(
    db: &mut Db,
    f: &MigrationFile,
    phase: Phase,
    resuming: bool,
    planning: bool,
) -> Result<Vec<Stmt>> {
    Ok(phase_statements(db, f, phase, resuming, planning)
        .await?
        .into_iter()
        .flat_map(|(_, s)| s)
        .collect())
}

/// Run every guard of a phase: the first that finds a row refuses the phase.
async fn run_guards(
    db: &mut Db,
    phase: Phase,
    stmts: &[Stmt],
    rep: &Reporter,
    id: &str,
) -> Result<()> {
    for s in stmts {
        let Some(g) = &s.guard else { continue };
        rep.emit(
            "statement",
            serde_json::json!({"migration": id, "phase": phase.name(), "sql": s.sql, "check": true, "executed": true}),
        );
        let Some(row) = db.query(&s.sql, &[]).await?.into_iter().next() else {
            continue;
        };
        let n = db
            .query(&g.count_sql, &[])
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.opt(0))
            .unwrap_or_else(|| "?".into());
        let show =
            |(l, v): (&String, &Option<String>)| format!("{l}={}", v.as_deref().unwrap_or("NULL"));
        let pairs: Vec<(&String, &Option<String>)> = g.labels.iter().zip(&row.0).collect();
        let (key, rest) = pairs.split_at(g.key_len.min(pairs.len()));
        let mut example = key.iter().copied().map(show).collect::<Vec<_>>().join(", ");
        if !rest.is_empty() {
            example.push_str(&format!(
                " (row {})",
                rest.iter()
                    .copied()
                    .map(show)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Err(Error::new(
            ErrorKind::Migration,
            format!(
                "{id}: {} refused: {}: {n} row{}, e.g. {example}",
                phase.name(),
                g.what,
                if n == "1" { "" } else { "s" }
            ),
        )
        .with_hint(g.hint.clone()));
    }
    Ok(())
}

/// Every operation's probes, with the operation's label.
async fn plan_probes(db: &mut Db, f: &MigrationFile) -> Result<Vec<(String, Vec<Probe>)>> {
    Ok(per_op(db, f, false, false, |op, cx| op.probes(cx))
        .await?
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(i, p)| (op_label(f, i), p))
        .collect())
}

/// Run the probes before anything changes: the first failure refuses the phase, naming
/// the operation, what the probe proves and the server's answer. PostgreSQL runs them in
/// a transaction that is rolled back.
async fn run_probes(db: &mut Db, probes: &[(String, Vec<Probe>)]) -> Result<()> {
    for (label, ps) in probes {
        let transactional = db.dialect().transactional_ddl();
        if transactional {
            db.exec("BEGIN").await?;
        }
        let mut failed: Option<Error> = None;
        for p in ps {
            if p.cleanup {
                if !transactional || failed.is_none() {
                    let _ = db.exec(&p.sql).await;
                }
                continue;
            }
            if failed.is_some() {
                continue;
            }
            if let Err(e) = db.exec(&p.sql).await {
                failed = Some(
                    mig_err(format!("{label}: {}: {}", p.fails, e.message)).with_hint(
                        "fix the migration file; nothing was changed (godwit checks this before expanding)",
                    ),
                );
            }
        }
        if transactional {
            db.exec("ROLLBACK").await?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// Run statements (not the guards: [`run_guards`] ran them). PostgreSQL: the plain
/// statements in one transaction (expand: before the standalone `CONCURRENTLY` ones;
/// contract/abort: after them).
async fn execute(
    db: &mut Db,
    phase: Phase,
    stmts: &[Stmt],
    rep: &Reporter,
    id: &str,
) -> Result<()> {
    let emit = |s: &Stmt| {
        rep.emit(
            "statement",
            serde_json::json!({"migration": id, "phase": phase.name(), "sql": s.sql, "executed": true}),
        )
    };
    let stmts: Vec<&Stmt> = stmts.iter().filter(|s| s.guard.is_none()).collect();
    if !db.dialect().transactional_ddl() {
        for s in stmts {
            emit(s);
            if let Err(e) = db.exec(&s.sql).await {
                for undo in db.dialect().after_failure() {
                    let _ = db.exec(undo).await;
                }
                return Err(e);
            }
        }
        return Ok(());
    }
    let (alone, plain): (Vec<&Stmt>, Vec<&Stmt>) = stmts.iter().partition(|s| s.concurrent);
    if phase != Phase::Expand {
        for s in &alone {
            emit(s);
            db.exec(&s.sql).await?;
        }
    }
    if !plain.is_empty() {
        db.exec("BEGIN").await?;
        for s in &plain {
            emit(s);
            if let Err(e) = db.exec(&s.sql).await {
                let _ = db.exec("ROLLBACK").await;
                return Err(e);
            }
        }
        if let Err(e) = db.exec("COMMIT").await {
            let _ = db.exec("ROLLBACK").await;
            return Err(e);
        }
    }
    if phase == Phase::Expand {
        for s in &alone {
            emit(s);
            db.exec(&s.sql).await?;
        }
    }
    Ok(())
}

fn print_plan(rep: &Reporter, format: Format, f: &MigrationFile, phase: Phase, stmts: &[Stmt]) {
    match format {
        Format::Json => {
            for s in stmts {
                rep.emit(
                    "statement",
                    serde_json::json!({"migration": f.id, "phase": phase.name(), "sql": s.sql, "check": s.guard.is_some(), "executed": false}),
                );
            }
        }
        Format::Text => {
            println!("-- {}: {} ({} statements)", f.id, phase.name(), stmts.len());
            for s in stmts {
                if s.guard.is_some() {
                    println!("-- check: refused if this finds a row");
                }
                println!("{};", s.sql);
            }
        }
    }
}

/// Every operation's backfill (index, backfill, the batch UPDATE as text).
pub fn backfills(db: &Db, f: &MigrationFile) -> Vec<(usize, ops::Backfill, String)> {
    let mut out = Vec::new();
    let none = HashMap::new();
    for (i, op) in f.operations.iter().enumerate() {
        let cx = Cx {
            sql: db.dialect(),
            table: None,
            catalog: &none,
            tag: tag(&f.id, i),
            resuming: false,
            planning: true,
        };
        if let Some(b) = op.op().backfill(&cx) {
            let sql = db.dialect().backfill_update(&b, &[], false, false);
            out.push((i, b, sql));
        }
    }
    out
}

fn backfill_plan(db: &Db, f: &MigrationFile, batch: u64) -> Vec<Stmt> {
    backfills(db, f)
        .into_iter()
        .map(|(_, _, sql)| {
            Stmt::new(
                StmtKind::Comment,
                format!("-- in batches of {batch} rows by primary key:\n{sql}"),
            )
        })
        .collect()
}

fn report(rep: &Reporter, format: Format, id: &str, phase: Phase, result: &str, message: &str) {
    match format {
        Format::Json => rep.emit(
            "phase",
            serde_json::json!({"migration": id, "phase": phase.name(), "result": result, "message": message}),
        ),
        Format::Text => println!("{id}: {}: {message}", phase.name()),
    }
}

/// Refuse files changed after they were applied.
fn check_checksums(files: &[MigrationFile], rows: &[state::Row], allow: bool) -> Result<()> {
    for f in files {
        if let Some(r) = rows.iter().find(|r| r.id == f.id) {
            if r.phase != PhaseState::Aborted && r.checksum != f.checksum && !allow {
                return Err(mig_err(format!(
                    "{} changed after it was applied (phase {}; checksum {} recorded, {} now)",
                    f.path.display(),
                    r.phase,
                    r.checksum,
                    f.checksum
                ))
                .with_hint(
                    "restore the applied file, or pass --allow-changed if the change is harmless",
                ));
            }
        }
    }
    Ok(())
}

/// The migration a phase command works on: the first one not complete.
fn target<'a>(
    files: &'a [MigrationFile],
    rows: &[state::Row],
) -> Option<(&'a MigrationFile, PhaseState)> {
    files.iter().find_map(|f| {
        let p = rows
            .iter()
            .find(|r| r.id == f.id)
            .map(|r| r.phase.clone())
            .unwrap_or_default();
        (p != PhaseState::Complete).then_some((f, p))
    })
}

/// Run the phases `phases` in order on the first unfinished migration (and, with
/// `continue_after_contract`, on the following ones).
pub async fn run(
    at: PhaseTarget<'_>,
    path: &Path,
    phases: &[Phase],
    continue_after_contract: bool,
    opts: &PhaseOptions,
    throttle: &mut Throttle,
    rep: &Reporter,
) -> Result<()> {
    let files = file::load(path, at.connector.sql_rules())?;
    let mut db = at.connect(opts.lock_timeout).await?;
    let dbr = &mut db;
    throttle
        .validate(|names| async move { dbr.load_values(&names).await })
        .await?;
    if opts.execute {
        db.try_lock().await?;
        state::ensure(&mut db).await?;
    }
    let mut rows = state::read_all(&mut db).await?;
    check_checksums(&files, &rows, opts.allow_changed)?;
    // The dry run of several phases pretends each one finished.
    let mut pretend: HashMap<String, PhaseState> = HashMap::new();
    loop {
        let Some((f, phase_now)) = target(&files, &rows) else {
            let p = phases.first().copied().unwrap_or(Phase::Expand);
            if p == Phase::Abort && path.is_file() {
                return Err(decide(Phase::Abort, &PhaseState::Complete, &files[0].id)
                    .err()
                    .unwrap_or_else(|| mig_err("nothing to abort")));
            }
            report(
                rep,
                opts.format,
                "-",
                p,
                "noop",
                "every migration is complete",
            );
            return Ok(());
        };
        let mut state_now = pretend.get(&f.id).cloned().unwrap_or(phase_now);
        for &phase in phases {
            match decide(phase, &state_now, &f.id)? {
                Decision::Noop(m) => report(rep, opts.format, &f.id, phase, "noop", &m),
                Decision::Run { resuming } => {
                    run_phase(&mut db, f, phase, resuming, opts, throttle, rep, &rows).await?;
                    state_now = match phase {
                        Phase::Expand => PhaseState::Expanded,
                        Phase::Backfill => PhaseState::Backfilled,
                        Phase::Contract => PhaseState::Complete,
                        Phase::Abort => PhaseState::Aborted,
                    };
                }
            }
        }
        if !(continue_after_contract && state_now == PhaseState::Complete) {
            return Ok(());
        }
        if opts.execute {
            rows = state::read_all(&mut db).await?;
        } else {
            pretend.insert(f.id.clone(), state_now.clone());
            rows.retain(|r| r.id != f.id);
            rows.push(state::Row {
                id: f.id.clone(),
                checksum: f.checksum.clone(),
                phase: state_now,
                backfill_op: 0,
                backfill_after: None,
                rows_backfilled: 0,
                applied_by: None,
                updated_at: None,
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    db: &mut Db,
    f: &MigrationFile,
    phase: Phase,
    resuming: bool,
    opts: &PhaseOptions,
    throttle: &mut Throttle,
    rep: &Reporter,
    rows: &[state::Row],
) -> Result<()> {
    if phase == Phase::Backfill {
        if !opts.execute {
            print_plan(
                rep,
                opts.format,
                f,
                phase,
                &backfill_plan(db, f, opts.batch_size),
            );
            return Ok(());
        }
        state::set_phase(
            db,
            &f.id,
            &f.name,
            &f.checksum,
            PhaseState::Backfilling,
            None,
        )
        .await?;
        let row = rows.iter().find(|r| r.id == f.id);
        let start_op = row.map(|r| r.backfill_op).unwrap_or(0);
        let mut total = row.map(|r| r.rows_backfilled).unwrap_or(0);
        for (i, op) in f.operations.iter().enumerate() {
            if (i as i64) < start_op {
                continue;
            }
            let none = HashMap::new();
            let cx = Cx {
                sql: db.dialect(),
                table: None,
                catalog: &none,
                tag: tag(&f.id, i),
                resuming,
                planning: false,
            };
            let Some(b) = op.op().backfill(&cx) else {
                continue;
            };
            let after = if i as i64 == start_op {
                row.and_then(|r| r.backfill_after.as_deref())
                    .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            } else {
                None
            };
            let job = backfill::Job {
                id: &f.id,
                op_index: i as i64,
                label: op_label(f, i),
                backfill: b,
                after,
            };
            total = backfill::run(db, job, opts, throttle, rep, total).await?;
        }
        state::set_phase(
            db,
            &f.id,
            &f.name,
            &f.checksum,
            PhaseState::Backfilled,
            Some("backfilled_at"),
        )
        .await?;
        report(
            rep,
            opts.format,
            &f.id,
            phase,
            "done",
            &format!("{total} rows backfilled"),
        );
        return Ok(());
    }
    if phase == Phase::Expand {
        for op in &f.operations {
            if let Some(t) = op.op().table() {
                db.check_trigger_support(t).await?;
            }
        }
    }
    let stmts = phase_statements_in_order(db, f, phase, resuming, !opts.execute).await?;
    let probes = if phase == Phase::Expand {
        plan_probes(db, f).await?
    } else {
        vec![]
    };
    if !opts.execute {
        let mut shown: Vec<Stmt> = probes
            .iter()
            .flat_map(|(_, ps)| ps)
            .map(|p| {
                Stmt::new(
                    StmtKind::Comment,
                    format!("-- check first, changing nothing: {}", p.sql),
                )
            })
            .collect();
        shown.extend(stmts);
        print_plan(rep, opts.format, f, phase, &shown);
        return Ok(());
    }
    run_probes(db, &probes).await?;
    // Before anything changes: a failed precondition leaves the migration where it was.
    run_guards(db, phase, &stmts, rep, &f.id).await?;
    // Planned before anything runs, so a failed expand can be undone.
    let undo = if phase == Phase::Expand {
        phase_statements_in_order(db, f, Phase::Abort, true, true)
            .await
            .ok()
    } else {
        None
    };
    let (during, after, stamp) = match phase {
        Phase::Expand => (PhaseState::Expanding, PhaseState::Expanded, "expanded_at"),
        Phase::Contract => (
            PhaseState::Contracting,
            PhaseState::Complete,
            "contracted_at",
        ),
        _ => (PhaseState::Aborting, PhaseState::Aborted, "aborted_at"),
    };
    state::set_phase(db, &f.id, &f.name, &f.checksum, during, None).await?;
    if let Err(e) = execute(db, phase, &stmts, rep, &f.id).await {
        if let Some(undo) = undo {
            tracing::warn!("expand failed; undoing what it did");
            for s in &undo {
                if let Err(u) = db.exec(&s.sql).await {
                    tracing::debug!("undo step failed (may not have been done): {u}");
                }
            }
            let _ = db.exec("UNLOCK TABLES").await;
            state::set_phase(
                db,
                &f.id,
                &f.name,
                &f.checksum,
                PhaseState::Aborted,
                Some("aborted_at"),
            )
            .await?;
            return Err(e.context(format!(
                "{}: expand failed and was undone",
                f.path.display()
            )));
        }
        return Err(e.context(format!("{}: {}", f.path.display(), phase.name())));
    }
    if phase == Phase::Abort {
        state::set_backfill(db, &f.id, 0, None, 0).await?;
    }
    state::set_phase(db, &f.id, &f.name, &f.checksum, after, Some(stamp)).await?;
    report(
        rep,
        opts.format,
        &f.id,
        phase,
        "done",
        &format!("{} statements run", stmts.len()),
    );
    Ok(())
}

/// `godwit status`: every migration file and its state.
pub async fn status(
    at: PhaseTarget<'_>,
    path: Option<&Path>,
    format: Format,
    rep: &Reporter,
) -> Result<()> {
    let files = match path {
        Some(p) => file::load(p, at.connector.sql_rules())?,
        None => vec![],
    };
    let mut db = at.connect(Duration::from_secs(5)).await?;
    let rows = state::read_all(&mut db).await?;
    let mut lines = Vec::new();
    for f in &files {
        let r = rows.iter().find(|r| r.id == f.id);
        let changed = r.is_some_and(|r| r.checksum != f.checksum && r.phase != PhaseState::Aborted);
        lines.push(serde_json::json!({
            "migration": f.id, "name": f.name,
            "phase": r.map(|r| r.phase.as_str()).unwrap_or(PhaseState::Pending.as_str()),
            "changed": changed,
            "rows_backfilled": r.map(|r| r.rows_backfilled).unwrap_or(0),
            "applied_by": r.and_then(|r| r.applied_by.clone()),
            "updated_at": r.and_then(|r| r.updated_at.clone()),
        }));
    }
    for r in &rows {
        if path.is_none() || !files.iter().any(|f| f.id == r.id) {
            lines.push(serde_json::json!({
                "migration": r.id, "phase": r.phase, "changed": false,
                "file_missing": path.is_some(),
                "rows_backfilled": r.rows_backfilled, "applied_by": r.applied_by, "updated_at": r.updated_at,
            }));
        }
    }
    for l in &lines {
        match format {
            Format::Json => rep.emit("migration", l.clone()),
            Format::Text => println!(
                "{:<40} {:<12}{}{}",
                l["migration"].as_str().unwrap_or_default(),
                l["phase"].as_str().unwrap_or_default(),
                if l["changed"] == true { " CHANGED" } else { "" },
                if l["file_missing"] == true {
                    " (file missing)"
                } else {
                    ""
                }
            ),
        }
    }
    Ok(())
}
