//! `godwit plan PATH`: the plan of migration files. For every migration not yet complete,
//! every phase still to run and every statement in it: the SQL, the lock it takes, whether
//! it rewrites or scans the table, and an estimated duration from the table's live facts;
//! for the backfill, its row estimate and batches. Nothing on the server changes: the
//! statements come from the same code the phase commands run (planning as if the earlier
//! phases had run), ALTER TABLE statements are classified by the engine's ALTER planner
//! ([`PlanEngine::classify_statement`]), and the rest have their known locks.

use super::estimate::{DEFAULT_ROWS_PER_SEC, MIN_SAMPLE_ROWS, WRITE_FACTOR};
use super::{Change, Facts, PlanEngine, PlanOptions, PlanSession};
use crate::error::Result;
use crate::phases::db::{Db, PhaseConnector};
use crate::phases::ops::Stmt;
use crate::phases::state::PhaseState;
use crate::phases::{self, file, state, Phase};
use crate::target::Target;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MigrationPlanOptions {
    pub plan: PlanOptions,
    pub batch_size: u64,
    pub max_rows_per_second: Option<u32>,
}

/// One migration's plan: what `godwit plan PATH` prints (one `plan` event each in JSON).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationPlan {
    pub migration: String,
    pub name: String,
    /// Where it stands (`pending` when never run).
    pub state: PhaseState,
    pub phases: Vec<PhasePlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    pub phase: &'static str,
    /// Abort is listed as the alternative to contract.
    pub alternative: bool,
    pub statements: Vec<StatementPlan>,
    pub backfills: Vec<BackfillPlan>,
    /// How the statements run together (PostgreSQL: one transaction).
    pub note: Option<String>,
    /// The phase cannot be planned yet (e.g. it needs an earlier migration applied).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementPlan {
    /// The operation (1-based) that runs it.
    pub operation: usize,
    pub sql: String,
    /// The table whose facts the estimate uses.
    pub table: Option<String>,
    /// `alter_table`, `check`, `trigger`, `function`, `index`, `view`, `grant`, `rename`,
    /// `lock`, `session`, `sql`.
    pub kind: &'static str,
    /// The lock taken: a PostgreSQL lock mode, MySQL `ALGORITHM=…, LOCK=…` or a
    /// metadata lock, `none`, or `unknown`.
    pub lock: String,
    pub blocks_writes: bool,
    pub blocks_reads: bool,
    pub rewrite: bool,
    pub scan: bool,
    /// PostgreSQL: part of the phase's one transaction (its lock is held to the commit).
    pub in_transaction: bool,
    /// Rows of `table` (estimate), when known.
    pub rows: Option<u64>,
    /// Estimated duration; `None` when the table's facts are unknown.
    pub estimated_seconds: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackfillPlan {
    pub operation: usize,
    pub table: String,
    pub sql: String,
    pub lock: String,
    pub rows: Option<u64>,
    pub batch_size: u64,
    pub batches: Option<u64>,
    pub rows_per_sec: f64,
    pub estimated_seconds: Option<u64>,
}

/// Read rates (rows/s) for the estimates: a scan reads at the sampled rate; a rewrite or
/// a backfill writes at a fraction of it (see [`super::estimate`]).
fn rates(f: &Facts) -> (f64, f64) {
    let read = match f.sample {
        Some(s) if s.rows >= MIN_SAMPLE_ROWS && s.millis > 0 => {
            (s.rows as f64 * 1000.0 / s.millis as f64).max(1.0)
        }
        _ => DEFAULT_ROWS_PER_SEC * WRITE_FACTOR,
    };
    (read, (read / WRITE_FACTOR).max(1.0))
}

fn secs(rows: u64, rate: f64) -> u64 {
    (rows as f64 / rate).ceil() as u64
}

/// What a statement does, before the estimate (built by the engine's
/// [`PlanEngine::classify_statement`]).
#[derive(Debug, Clone)]
pub struct StatementClass {
    pub kind: &'static str,
    pub lock: String,
    pub blocks_writes: bool,
    pub blocks_reads: bool,
    pub rewrite: bool,
    pub scan: bool,
    pub reason: String,
}

impl StatementClass {
    pub fn new(kind: &'static str, lock: &str, reason: &str) -> StatementClass {
        StatementClass {
            kind,
            lock: lock.to_string(),
            blocks_writes: false,
            blocks_reads: false,
            rewrite: false,
            scan: false,
            reason: reason.to_string(),
        }
    }
    pub fn scan(mut self) -> StatementClass {
        self.scan = true;
        self
    }
    pub fn blocking(mut self, writes: bool, reads: bool) -> StatementClass {
        self.blocks_writes = writes;
        self.blocks_reads = reads;
        self
    }
    /// A statement the ALTER planner classified as `c`, its lock shown as `lock`.
    pub fn from_change(c: &Change, lock: String) -> StatementClass {
        StatementClass {
            kind: if c.clause.to_uppercase().starts_with("CREATE") {
                "index"
            } else {
                "alter_table"
            },
            lock,
            blocks_writes: c.blocks_writes,
            blocks_reads: c.blocks_reads,
            rewrite: c.rewrite,
            scan: c.scan || c.heavy(),
            reason: c.reason.clone(),
        }
    }
}

/// What earlier statements of a phase changed, for the classification of later ones.
#[derive(Debug, Clone, Default)]
pub struct StatementContext {
    /// MySQL/MariaDB: `SET SESSION foreign_key_checks = 0` ran (for the whole phase).
    pub fk_checks_off: bool,
    /// PostgreSQL: a `CHECK (col IS NOT NULL)` was validated by this operation, so its
    /// `SET NOT NULL` does not scan.
    pub not_null_proven: bool,
}

impl StatementContext {
    /// The next operation's statements start.
    pub fn next_operation(&mut self) {
        self.not_null_proven = false;
    }
}

/// `IF [NOT] EXISTS` does not change what a statement locks; sqlparser does not know
/// every place godwit writes it.
pub fn without_if_exists(sql: &str) -> String {
    sql.replace(" IF NOT EXISTS", "").replace(" IF EXISTS", "")
}

/// The order the runner uses: checks first; on PostgreSQL the one transaction before the
/// standalone statements in expand, after them otherwise.
fn execution_order(
    stmts: Vec<StatementPlan>,
    transactional_ddl: bool,
    phase: Phase,
) -> Vec<StatementPlan> {
    let (checks, rest): (Vec<_>, Vec<_>) = stmts.into_iter().partition(|s| s.kind == "check");
    let rest = if transactional_ddl {
        let (tx, alone): (Vec<_>, Vec<_>) = rest.into_iter().partition(|s| s.in_transaction);
        if phase == Phase::Expand {
            tx.into_iter().chain(alone).collect()
        } else {
            alone.into_iter().chain(tx).collect()
        }
    } else {
        rest
    };
    checks.into_iter().chain(rest).collect()
}

/// The phases still to run from `state`, and whether each is the alternative (abort).
fn remaining(state: &PhaseState) -> Vec<(Phase, bool)> {
    use Phase::*;
    use PhaseState as S;
    match state {
        S::Pending | S::Aborted | S::Expanding => vec![
            (Expand, false),
            (Backfill, false),
            (Contract, false),
            (Abort, true),
        ],
        S::Expanded | S::Backfilling => vec![(Backfill, false), (Contract, false), (Abort, true)],
        S::Backfilled => vec![(Contract, false), (Abort, true)],
        S::Contracting => vec![(Contract, false)],
        S::Aborting => vec![(Abort, false)],
        _ => vec![],
    }
}

struct Planner<'a> {
    db: Db,
    engine: &'static dyn PlanEngine,
    facts: Box<dyn PlanSession>,
    cache: HashMap<String, Option<Facts>>,
    opts: &'a MigrationPlanOptions,
}

impl Planner<'_> {
    /// The table's facts (None when it does not exist, e.g. the view of a rename).
    async fn facts(&mut self, table: &str) -> Result<Option<Facts>> {
        if let Some(f) = self.cache.get(table) {
            return Ok(f.clone());
        }
        let f = if self.db.table_exists(table).await? {
            Some(self.facts.facts(table, &self.opts.plan).await?)
        } else {
            None
        };
        self.cache.insert(table.to_string(), f.clone());
        Ok(f)
    }

    async fn statements(
        &mut self,
        f: &file::MigrationFile,
        phase: Phase,
        per_op: Vec<(usize, Vec<Stmt>)>,
    ) -> Result<Vec<StatementPlan>> {
        let engine = self.engine;
        let mut out = Vec::new();
        let mut cx = StatementContext::default();
        for (i, stmts) in per_op {
            cx.next_operation();
            let op = f.operations[i].op();
            let table = op
                .table()
                .or_else(|| op.relations().first().copied())
                .map(str::to_string);
            let facts = match &table {
                Some(t) => self.facts(t).await?,
                None => None,
            };
            for s in stmts {
                let c = engine.classify_statement(&s, facts.as_ref(), &mut cx);
                let rows = facts.as_ref().map(|f| f.row_estimate);
                let estimated_seconds = facts.as_ref().map(|f| {
                    let (read, write) = rates(f);
                    if c.rewrite {
                        secs(f.row_estimate, write)
                    } else if c.scan {
                        secs(f.row_estimate, read)
                    } else {
                        0
                    }
                });
                out.push(StatementPlan {
                    operation: i + 1,
                    in_transaction: engine.transactional_ddl()
                        && !s.concurrent
                        && s.guard.is_none(),
                    sql: s.sql,
                    table: table.clone(),
                    kind: c.kind,
                    lock: c.lock,
                    blocks_writes: c.blocks_writes,
                    blocks_reads: c.blocks_reads,
                    rewrite: c.rewrite,
                    scan: c.scan,
                    rows,
                    estimated_seconds,
                    reason: c.reason,
                });
            }
        }
        Ok(execution_order(out, engine.transactional_ddl(), phase))
    }

    async fn backfills(&mut self, f: &file::MigrationFile) -> Result<Vec<BackfillPlan>> {
        let mut out = Vec::new();
        for (i, b, sql) in phases::backfills(&self.db, f) {
            let facts = self.facts(&b.table).await?;
            let rows = facts.as_ref().map(|f| f.row_estimate);
            let mut rate = facts
                .as_ref()
                .map(|f| rates(f).1)
                .unwrap_or(DEFAULT_ROWS_PER_SEC);
            if let Some(m) = self.opts.max_rows_per_second {
                rate = rate.min(m as f64);
            }
            let lock = self.engine.backfill_lock();
            out.push(BackfillPlan {
                operation: i + 1,
                table: b.table.clone(),
                sql,
                lock: lock.into(),
                rows,
                batch_size: self.opts.batch_size,
                batches: rows.map(|r| r.div_ceil(self.opts.batch_size.max(1)).max(1)),
                rows_per_sec: (rate * 10.0).round() / 10.0,
                estimated_seconds: rows.map(|r| secs(r, rate)),
            });
        }
        Ok(out)
    }
}

/// Plan every migration in `path` that is not complete. Reads the server; changes nothing.
/// `engine` classifies the statements; `connector` opens the phases' connection.
pub async fn plan_migrations(
    engine: &'static dyn PlanEngine,
    connector: &dyn PhaseConnector,
    target: &Target,
    path: &Path,
    opts: &MigrationPlanOptions,
) -> Result<Vec<MigrationPlan>> {
    let files = file::load(path, connector.sql_rules())?;
    let mut db = connector.connect(target, Duration::from_secs(5)).await?;
    db.read_only().await?;
    let rows = state::read_all(&mut db).await?;
    let mut p = Planner {
        db,
        engine,
        facts: engine.open(target, false).await?,
        cache: HashMap::new(),
        opts,
    };
    let mut out = Vec::new();
    for f in &files {
        let st = rows
            .iter()
            .find(|r| r.id == f.id)
            .map(|r| r.phase.clone())
            .unwrap_or_default();
        if st == PhaseState::Complete {
            continue;
        }
        let mut plans = Vec::new();
        for (phase, alternative) in remaining(&st) {
            let mut pp = PhasePlan {
                phase: phase.name(),
                alternative,
                statements: vec![],
                backfills: vec![],
                note: None,
                error: None,
            };
            if phase == Phase::Backfill {
                pp.backfills = p.backfills(f).await?;
            } else {
                let resuming = matches!(
                    (phase, &st),
                    (Phase::Expand, PhaseState::Expanding)
                        | (Phase::Contract, PhaseState::Contracting)
                        | (Phase::Abort, PhaseState::Aborting)
                );
                match phases::phase_statements(&mut p.db, f, phase, resuming, true).await {
                    Ok(per_op) => pp.statements = p.statements(f, phase, per_op).await?,
                    Err(e) => pp.error = Some(e.message),
                }
                if p.engine.transactional_ddl() && pp.statements.iter().any(|s| s.in_transaction) {
                    pp.note = Some(
                        "the statements marked in_transaction run in one transaction: each lock is held until it commits".into(),
                    );
                }
            }
            plans.push(pp);
        }
        out.push(MigrationPlan {
            migration: f.id.clone(),
            name: f.name.clone(),
            state: st,
            phases: plans,
        });
    }
    p.facts.close().await;
    Ok(out)
}

fn human_secs(s: Option<u64>) -> String {
    match s {
        None => "?".into(),
        Some(0) => "<1s".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn short(sql: &str, n: usize) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        format!("{}…", one.chars().take(n - 1).collect::<String>())
    }
}

/// The plan as text: a table per phase.
pub fn text(plans: &[MigrationPlan]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if plans.is_empty() {
        let _ = writeln!(s, "every migration is complete: nothing to plan");
    }
    for m in plans {
        let _ = writeln!(s, "{} — {} ({})", m.migration, m.name, m.state);
        for p in &m.phases {
            let _ = writeln!(
                s,
                "  {}{}",
                p.phase,
                if p.alternative {
                    " (instead of contract)"
                } else {
                    ""
                }
            );
            if let Some(e) = &p.error {
                let _ = writeln!(s, "    cannot plan yet: {e}");
                continue;
            }
            if p.phase == "backfill" {
                if p.backfills.is_empty() {
                    let _ = writeln!(s, "    nothing to backfill");
                }
                for b in &p.backfills {
                    let _ = writeln!(
                        s,
                        "    op {}: {} ~{} rows in {} batches of {} at ~{:.0} rows/s, ~{}; {}",
                        b.operation,
                        b.table,
                        b.rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                        b.batches
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "?".into()),
                        b.batch_size,
                        b.rows_per_sec,
                        human_secs(b.estimated_seconds),
                        b.lock
                    );
                    let _ = writeln!(s, "      {}", short(&b.sql, 110));
                }
                continue;
            }
            if p.statements.is_empty() {
                let _ = writeln!(s, "    no statements");
                continue;
            }
            let _ = writeln!(
                s,
                "    {:>2}  {:<32} {:<8} {:>10} {:>6}  statement",
                "op", "lock", "work", "rows", "est."
            );
            for st in &p.statements {
                let work = if st.rewrite {
                    "rewrite"
                } else if st.scan {
                    "scan"
                } else {
                    "catalog"
                };
                let lock = format!("{}{}", st.lock, if st.in_transaction { " *" } else { "" });
                let _ = writeln!(
                    s,
                    "    {:>2}  {:<32} {:<8} {:>10} {:>6}  {}",
                    st.operation,
                    short(&lock, 32),
                    work,
                    st.rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                    human_secs(st.estimated_seconds),
                    short(&st.sql, 70)
                );
            }
            if let Some(n) = &p.note {
                let _ = writeln!(s, "    * {n}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_phases_follow_the_state() {
        assert_eq!(remaining(&PhaseState::Pending).len(), 4);
        assert_eq!(remaining(&PhaseState::Backfilled)[0].0, Phase::Contract);
        assert!(remaining(&PhaseState::Complete).is_empty());
    }
}
