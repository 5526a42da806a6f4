//! The PostgreSQL side of `godwit plan`: its read-only session ([`super::facts`]), the
//! ALTER classifier ([`super::classify`]) and the classifier of the statements a phase
//! runs, behind [`PlanEngine`].

use super::classify;
use super::facts::Session;
use crate::error::Result;
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
        sql: &str,
        facts: Option<&Facts>,
        cx: &mut StatementContext,
    ) -> Class {
        let up = sql.to_uppercase();
        let mut c = classify_statement(sql, facts);
        // SET NOT NULL after a validated CHECK (col IS NOT NULL) does not scan.
        if up.contains(" VALIDATE CONSTRAINT ") && up.trim_end().ends_with("_NN\"") {
            cx.not_null_proven = true;
        } else if up.ends_with(" SET NOT NULL") && cx.not_null_proven {
            c.scan = false;
            c.reason =
                "the CHECK (… IS NOT NULL) validated just before proves it: catalog only".into();
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

fn classify_statement(sql: &str, facts: Option<&Facts>) -> Class {
    use crate::plan::PgLock as L;
    let up = sql.trim_start().to_uppercase();
    let pg = |kind, lock: L, reason: &str| {
        Class::new(kind, lock.as_str(), reason).blocking(lock.blocks_writes(), lock.blocks_reads())
    };
    if up.starts_with("SELECT") {
        return pg(
            "check",
            L::AccessShare,
            "reads the table; reads and writes go on",
        )
        .scan();
    }
    if up.starts_with("CREATE OR REPLACE FUNCTION") || up.starts_with("DROP FUNCTION") {
        return Class::new("function", "none", "no table lock");
    }
    if up.starts_with("CREATE OR REPLACE TRIGGER") {
        return pg(
            "trigger",
            L::ShareRowExclusive,
            "writes wait until the phase's transaction commits (no scan: a moment)",
        );
    }
    if up.starts_with("DROP TRIGGER") {
        return pg(
            "trigger",
            L::AccessExclusive,
            "held until the phase's transaction commits (a moment)",
        );
    }
    if up.starts_with("DROP INDEX CONCURRENTLY") {
        return pg(
            "index",
            L::ShareUpdateExclusive,
            "waits for transactions using the index; reads and writes go on",
        );
    }
    if up.starts_with("CREATE OR REPLACE VIEW") {
        return pg(
            "view",
            L::AccessShare,
            "on the table (the view itself is new)",
        );
    }
    if up.starts_with("DROP VIEW") {
        return Class::new(
            "view",
            L::AccessExclusive.as_str(),
            "on the view only: statements through the view wait; the table is not locked",
        );
    }
    if up.starts_with("GRANT") {
        return Class::new("grant", "none", "a catalog change on the view");
    }
    let is_alter = up.starts_with("ALTER TABLE");
    if !(is_alter || up.starts_with("CREATE")) {
        return Class::new("sql", "unknown", "user SQL: not classified");
    }
    let Some(f) = facts else {
        return Class::new(
            if is_alter { "alter_table" } else { "index" },
            "unknown",
            "the table's facts are unknown",
        );
    };
    let classified = classify::parse(&f.table, &without_if_exists(sql))
        .and_then(|p| classify::classify_all(&p, f, &[]));
    let mut c = match classified {
        Ok(changes) => {
            let all = classify::combine(&changes);
            Class::from_change(&all, lock_label(&all))
        }
        Err(e) => Class::new(
            "alter_table",
            "unknown",
            &format!("not classified ({})", e.message),
        ),
    };
    if up.contains(" FOREIGN KEY ") {
        c.reason
            .push_str("; the referenced table is locked SHARE ROW EXCLUSIVE as well");
    } else if up.contains(" VALIDATE CONSTRAINT ") {
        c.reason
            .push_str("; a foreign key's referenced table gets ROW SHARE");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_godwit_writes_are_classified_without_facts() {
        let c = classify_statement("CREATE OR REPLACE TRIGGER \"x\" BEFORE INSERT ON \"s\".\"t\" FOR EACH ROW EXECUTE FUNCTION f()", None);
        assert_eq!(c.lock, "SHARE ROW EXCLUSIVE");
        let c = classify_statement("SELECT 1", None);
        assert!(c.scan && !c.blocks_writes);
    }
}
