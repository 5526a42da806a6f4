//! The PostgreSQL side of `godwit plan`: its read-only session ([`super::facts`]), the
//! ALTER classifier ([`super::classify`]) and the classifier of the statements a phase
//! runs, behind [`PlanEngine`].

use super::classify;
use super::facts::Session;
use crate::error::Result;
use crate::phases::ops::{Stmt, StmtKind};
use crate::plan::phases::{without_if_exists, StatementClass as Class, StatementContext};
use crate::plan::{
    Change, Classified, DataProbe, Facts, Plan, PlanEngine, PlanOptions, PlanSession, ProbeResult,
    Recommendation,
};
use crate::target::Target;
use async_trait::async_trait;

/// The planner of PostgreSQL.
pub struct PgPlanner;

fn lock_label(c: &Change) -> String {
    c.pg_lock.map(|l| l.as_str()).unwrap_or("?").to_string()
}

#[async_trait]
impl PlanEngine for PgPlanner {
    async fn open(&self, target: &Target, writable: bool) -> Result<Box<dyn PlanSession>> {
        Ok(Box::new(if writable {
            Session::connect_writable(target).await?
        } else {
            Session::connect(target).await?
        }))
    }
    /// Parsed after the facts are read (see [`PlanSession::classify`]).
    fn prepare(&self, alter: &str) -> Result<String> {
        Ok(alter.to_string())
    }
    fn recommend(
        &self,
        facts: &Facts,
        changes: &[Change],
        overall: &Change,
        clauses: &str,
        opts: &PlanOptions,
    ) -> Recommendation {
        classify::recommend(facts, changes, overall, clauses, opts)
    }
    fn native_statement(&self, p: &Plan) -> Option<String> {
        let catalog_only = !p.overall.rewrite && !p.overall.scan;
        let is_alter = p
            .changes
            .iter()
            .all(|c| !c.clause.to_uppercase().starts_with("CREATE"));
        if !catalog_only || !is_alter {
            return None;
        }
        let clauses = p
            .changes
            .iter()
            .map(|c| c.clause.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let q = super::sql::qualified(&p.facts.schema, &p.facts.table);
        Some(format!("ALTER TABLE {q} {clauses}"))
    }
    fn classify_statement(
        &self,
        stmt: &Stmt,
        facts: Option<&Facts>,
        cx: &mut StatementContext,
    ) -> Class {
        let mut c = classify_statement(stmt, facts);
        match stmt.kind {
            // SET NOT NULL after a validated CHECK (col IS NOT NULL) does not scan.
            StmtKind::ProveNotNull => cx.not_null_proven = true,
            StmtKind::SetNotNull if cx.not_null_proven => {
                c.scan = false;
                c.reason =
                    "the CHECK (… IS NOT NULL) validated just before proves it: catalog only"
                        .into();
            }
            _ => {}
        }
        c
    }
    fn transactional_ddl(&self) -> bool {
        true
    }
    fn backfill_lock(&self) -> &'static str {
        "ROW EXCLUSIVE; row locks on one batch at a time"
    }
    fn change_label(&self, c: &Change) -> String {
        let what = if c.rewrite {
            "rewrite"
        } else if c.scan {
            "scan"
        } else {
            "catalog"
        };
        format!("{}, {what}", c.pg_lock.map(|l| l.as_str()).unwrap_or("?"))
    }
    fn log_carries_indexes(&self) -> bool {
        true
    }
    fn native_replays_serially(&self, _all: &Change) -> bool {
        false
    }
    fn validates_constraints_later(&self) -> bool {
        true
    }
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules {
        &super::SQL_RULES
    }
}

#[async_trait]
impl PlanSession for Session {
    async fn facts(&mut self, table: &str, o: &PlanOptions) -> Result<Facts> {
        Session::facts(self, table, o).await
    }
    async fn classify(&mut self, table: &str, alter: &str, facts: &Facts) -> Result<Classified> {
        let parsed = classify::parse(table, alter)?;
        let funcs = classify::functions_called(&parsed);
        let volatile = self.volatile_functions(&funcs).await?;
        let changes = classify::classify_all(&parsed, facts, &volatile)?;
        let overall = classify::combine(&changes);
        let clauses = classify::clause_text(&parsed);
        Ok(Classified {
            changes,
            overall,
            clauses,
        })
    }
    async fn probes(
        &mut self,
        facts: &Facts,
        probes: &[DataProbe],
        limit: u64,
    ) -> Result<Vec<ProbeResult>> {
        Session::probes(self, facts, probes, limit).await
    }
    async fn execute_native(&mut self, stmt: &str, lock_wait_secs: u64) -> Result<()> {
        Session::execute_native(self, stmt, lock_wait_secs).await
    }
    /// The connection closes when the session is dropped.
    async fn close(self: Box<Self>) {}
}

/// What a phase statement locks, from its kind; the ALTER planner classifies the kinds
/// whose lock depends on what they change.
fn classify_statement(stmt: &Stmt, facts: Option<&Facts>) -> Class {
    use crate::plan::PgLock as L;
    use StmtKind as K;
    let pg = |kind, lock: L, reason: &str| {
        Class::new(kind, lock.as_str(), reason).blocking(lock.blocks_writes(), lock.blocks_reads())
    };
    match stmt.kind {
        K::Guard => {
            return pg(
                "check",
                L::AccessShare,
                "reads the table; reads and writes go on",
            )
            .scan()
        }
        K::Function => return Class::new("function", "none", "no table lock"),
        K::CreateTrigger => {
            return pg(
                "trigger",
                L::ShareRowExclusive,
                "writes wait until the phase's transaction commits (no scan: a moment)",
            )
        }
        K::DropTrigger => {
            return pg(
                "trigger",
                L::AccessExclusive,
                "held until the phase's transaction commits (a moment)",
            )
        }
        K::DropIndexConcurrently => {
            return pg(
                "index",
                L::ShareUpdateExclusive,
                "waits for transactions using the index; reads and writes go on",
            )
        }
        K::RenameIndex => {
            return Class::new(
                "index",
                L::ShareUpdateExclusive.as_str(),
                "on the index only, a catalog change: reads and writes go on",
            )
        }
        K::CreateView => {
            return pg(
                "view",
                L::AccessShare,
                "on the table (the view itself is new)",
            )
        }
        K::DropView => {
            return Class::new(
                "view",
                L::AccessExclusive.as_str(),
                "on the view only: statements through the view wait; the table is not locked",
            )
        }
        K::Grant => return Class::new("grant", "none", "a catalog change on the view"),
        K::RenameTable => {
            return pg(
                "rename",
                L::AccessExclusive,
                "a catalog change, held until the phase's transaction commits (a moment)",
            )
        }
        K::Session | K::ForeignKeyChecks(_) => {
            return Class::new("session", "none", "a session setting")
        }
        K::Lock | K::Unlock => {
            return pg(
                "lock",
                L::AccessExclusive,
                "held until the phase's transaction commits",
            )
        }
        K::Comment => return Class::new("sql", "none", "shown only, not run"),
        K::Alter
        | K::AddForeignKey
        | K::ValidateForeignKey
        | K::ProveNotNull
        | K::SetNotNull
        | K::CreateIndex
        | K::User => {}
    }
    let user = stmt.kind == K::User;
    let unclassified = || Class::new("sql", "unknown", "user SQL: not classified");
    let index = stmt.kind == K::CreateIndex;
    let Some(f) = facts else {
        if user {
            return unclassified();
        }
        return Class::new(
            if index { "index" } else { "alter_table" },
            "unknown",
            "the table's facts are unknown",
        );
    };
    let classified = classify::parse(&f.table, &without_if_exists(&stmt.sql))
        .and_then(|p| classify::classify_all(&p, f, &[]));
    let mut c = match classified {
        Ok(changes) => {
            let all = classify::combine(&changes);
            Class::from_change(&all, lock_label(&all))
        }
        Err(_) if user => return unclassified(),
        Err(e) => Class::new(
            "alter_table",
            "unknown",
            &format!("not classified ({})", e.message),
        ),
    };
    match stmt.kind {
        K::AddForeignKey => c
            .reason
            .push_str("; the referenced table is locked SHARE ROW EXCLUSIVE as well"),
        K::ValidateForeignKey => c.reason.push_str("; the referenced table gets ROW SHARE"),
        _ => {}
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_godwit_writes_are_classified_without_facts() {
        let c = classify_statement(&Stmt::new(StmtKind::CreateTrigger, "CREATE OR REPLACE TRIGGER \"x\" BEFORE INSERT ON \"s\".\"t\" FOR EACH ROW EXECUTE FUNCTION f()"), None);
        assert_eq!(c.lock, "SHARE ROW EXCLUSIVE");
        let c = classify_statement(
            &Stmt::guard("SELECT 1", crate::phases::ops::Guard::default()),
            None,
        );
        assert!(c.scan && !c.blocks_writes);
        // The kind decides, not the text.
        let c = classify_statement(
            &Stmt::new(StmtKind::User, "CREATE OR REPLACE TRIGGER x"),
            None,
        );
        assert_eq!((c.kind, c.lock.as_str()), ("sql", "unknown"));
    }

    #[test]
    fn a_validated_not_null_check_makes_set_not_null_catalog_only() {
        let mut cx = StatementContext::default();
        let set = Stmt::new(
            StmtKind::SetNotNull,
            "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
        );
        let prove = Stmt::concurrent(
            StmtKind::ProveNotNull,
            "ALTER TABLE t VALIDATE CONSTRAINT k",
        );
        let before = PgPlanner.classify_statement(&set, None, &mut cx);
        assert!(!before.reason.contains("proves"), "{}", before.reason);
        PgPlanner.classify_statement(&prove, None, &mut cx);
        let after = PgPlanner.classify_statement(&set, None, &mut cx);
        assert!(
            !after.scan && after.reason.contains("proves it"),
            "{after:?}"
        );
        // Only within the operation that validated it.
        cx.next_operation();
        let next = PgPlanner.classify_statement(&set, None, &mut cx);
        assert!(!next.reason.contains("proves"), "{}", next.reason);
    }
}
