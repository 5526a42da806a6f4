//! The MySQL/MariaDB side of `godwit plan`: its read-only session ([`super::facts`]),
//! the ALTER classifier ([`super::classify`]) and the classifier of the statements a
//! phase runs, behind [`PlanEngine`].

use super::classify;
use super::facts::Session;
use crate::error::Result;
use crate::phases::ops::{Stmt, StmtKind};
use crate::plan::phases::{without_if_exists, StatementClass as Class, StatementContext};
use crate::plan::{
    Algorithm, Change, ChangeKind, Classified, DataProbe, Facts, MyLock, Plan, PlanEngine,
    PlanOptions, PlanSession, ProbeResult, Recommendation,
};
use crate::target::Target;
use async_trait::async_trait;

/// The planner of MySQL/MariaDB.
pub struct MysqlPlanner;

fn lock_label(c: &Change) -> String {
    format!(
        "ALGORITHM={}, LOCK={}",
        c.algorithm.map(|a| a.as_str()).unwrap_or("?"),
        c.mysql_lock.map(|l| l.as_str()).unwrap_or("?")
    )
}

#[async_trait]
impl PlanEngine for MysqlPlanner {
    async fn open(&self, target: &Target, writable: bool) -> Result<Box<dyn PlanSession>> {
        Ok(Box::new(if writable {
            Session::connect_writable(target).await?
        } else {
            Session::connect(target).await?
        }))
    }
    fn prepare(&self, alter: &str) -> Result<String> {
        crate::plan::as_statement(&super::SQL_RULES, alter, "`t`")
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
        if p.overall.algorithm != Some(Algorithm::Instant) {
            return None;
        }
        let clauses = p
            .changes
            .iter()
            .map(|c| c.clause.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let q = super::sql::qualified(&p.facts.schema, &p.facts.table);
        Some(format!("ALTER TABLE {q} {clauses}, ALGORITHM=INSTANT"))
    }
    fn classify_statement(
        &self,
        stmt: &Stmt,
        facts: Option<&Facts>,
        cx: &mut StatementContext,
    ) -> Class {
        if let StmtKind::ForeignKeyChecks(on) = stmt.kind {
            cx.fk_checks_off = !on;
        }
        classify_statement(stmt, facts, cx.fk_checks_off)
    }
    fn transactional_ddl(&self) -> bool {
        false
    }
    fn backfill_lock(&self) -> &'static str {
        "row locks on one batch at a time (READ COMMITTED)"
    }
    fn change_label(&self, c: &Change) -> String {
        format!(
            "{} LOCK={}",
            c.algorithm.map(|a| a.as_str()).unwrap_or("?"),
            c.mysql_lock.map(|l| l.as_str()).unwrap_or("?")
        )
    }
    fn log_carries_indexes(&self) -> bool {
        false
    }
    fn native_replays_serially(&self, all: &Change) -> bool {
        all.algorithm.is_some_and(|a| a != Algorithm::Instant)
    }
    fn validates_constraints_later(&self) -> bool {
        false
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
    async fn classify(&mut self, _table: &str, stmt: &str, facts: &Facts) -> Result<Classified> {
        let changes = classify::classify_all(stmt, facts)?;
        let clauses = classify::clause_text(&changes);
        let overall = classify::combine(&changes, facts);
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
    async fn close(self: Box<Self>) {
        Session::close(*self).await
    }
}

/// The `ALGORITHM=` / `LOCK=` a MySQL statement demands (the server refuses it otherwise).
fn demanded(sql: &str, what: &str) -> Option<String> {
    let up = sql.to_uppercase();
    let i = up.find(&format!("{what}="))?;
    Some(
        up[i + what.len() + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect(),
    )
}

/// What a phase statement locks, from its kind; the ALTER planner classifies the kinds
/// whose lock depends on what they change.
fn classify_statement(stmt: &Stmt, facts: Option<&Facts>, fk_checks_off: bool) -> Class {
    use StmtKind as K;
    let sql = stmt.sql.as_str();
    match stmt.kind {
        K::Guard => {
            return Class::new(
                "check",
                "none",
                "a consistent read (no locks); reads the table",
            )
            .scan()
        }
        K::Session | K::ForeignKeyChecks(_) => {
            return Class::new("session", "none", "a session setting")
        }
        K::Comment => return Class::new("sql", "none", "shown only, not run"),
        K::Lock => {
            return Class::new(
                "lock",
                "LOCK TABLES WRITE",
                "reads and writes of the table wait until UNLOCK TABLES (a few statements later)",
            )
            .blocking(true, true)
        }
        K::Unlock => return Class::new("lock", "none", "releases LOCK TABLES"),
        K::CreateTrigger | K::DropTrigger => return Class::new(
            "trigger",
            "metadata lock (brief, exclusive)",
            "waits for open transactions on the table; statements that come later wait behind it",
        ),
        K::Function => return Class::new("function", "none", "no table lock"),
        K::CreateView | K::DropView => {
            return Class::new(
                "view",
                "metadata lock on the view",
                "the table is not locked",
            )
        }
        K::Grant => return Class::new("grant", "none", "a catalog change on the view"),
        K::RenameTable => return Class::new(
            "rename",
            "metadata lock (brief, exclusive)",
            "an atomic rename of every name in the statement; waits for open transactions on them",
        ),
        K::RenameIndex => {
            return Class::new(
                "alter_table",
                "ALGORITHM=INSTANT, LOCK=NONE",
                "renaming an index is a metadata change",
            )
        }
        K::Alter
        | K::AddForeignKey
        | K::ValidateForeignKey
        | K::ProveNotNull
        | K::SetNotNull
        | K::CreateIndex
        | K::DropIndexConcurrently
        | K::User => {}
    }
    let fallback = |why: String| {
        let lock = demanded(sql, "LOCK").unwrap_or_else(|| "?".into());
        let alg = demanded(sql, "ALGORITHM").unwrap_or_else(|| "?".into());
        let mut c = Class::new(
            "alter_table",
            &format!("ALGORITHM={alg}, LOCK={lock}"),
            &why,
        );
        c.blocks_writes = lock != "NONE";
        c
    };
    let user = stmt.kind == K::User;
    let unclassified = || Class::new("sql", "unknown", "user SQL: not classified");
    let Some(f) = facts else {
        if user {
            return unclassified();
        }
        return fallback(
            "the table's facts are unknown: the ALGORITHM/LOCK the statement demands".into(),
        );
    };
    let mut f = f.clone();
    if fk_checks_off {
        f.settings.retain(|(k, _)| k != "foreign_key_checks");
        f.settings
            .push(("foreign_key_checks".to_string(), "0".to_string()));
    }
    match classify::classify_all(&without_if_exists(sql), &f) {
        Ok(changes) => {
            let all = classify::combine(&changes, &f);
            let mut c = Class::from_change(&all, lock_label(&all));
            c.scan |= changes.iter().any(|x| {
                matches!(
                    x.op,
                    ChangeKind::AddIndex | ChangeKind::AddUnique | ChangeKind::AddPrimaryKey
                )
            });
            // The statement names ALGORITHM/LOCK: the server runs it so or refuses it.
            let want_lock = demanded(sql, "LOCK").and_then(|l| match l.as_str() {
                "NONE" => Some(MyLock::None),
                "SHARED" => Some(MyLock::Shared),
                _ => None,
            });
            if let (Some(w), Some(got)) = (want_lock, all.mysql_lock) {
                if w < got {
                    let alg = demanded(sql, "ALGORITHM").unwrap_or_else(|| "?".into());
                    c.reason = format!(
                        "the statement demands ALGORITHM={alg}, LOCK={}: the server runs it so or refuses it, never blocks (the ALTER planner expected {}: {})",
                        w.as_str(),
                        c.lock,
                        c.reason
                    );
                    c.lock = format!("ALGORITHM={alg}, LOCK={}", w.as_str());
                    c.blocks_writes = w > MyLock::None;
                    c.blocks_reads = false;
                }
            }
            c
        }
        Err(_) if user => unclassified(),
        Err(e) => fallback(format!("not classified ({})", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_godwit_writes_are_classified_without_facts() {
        let c = classify_statement(
            &Stmt::new(StmtKind::Lock, "LOCK TABLES `d`.`t` WRITE"),
            None,
            false,
        );
        assert!(c.blocks_writes && c.blocks_reads);
        let c = classify_statement(
            &Stmt::new(
                StmtKind::Alter,
                "ALTER TABLE `d`.`t` ADD INDEX IF NOT EXISTS `i` (`a`), ALGORITHM=INPLACE, LOCK=NONE",
            ),
            None,
            false,
        );
        assert_eq!(c.lock, "ALGORITHM=INPLACE, LOCK=NONE");
        assert!(!c.blocks_writes);
        // The kind decides, not the text: user SQL that locks is not taken for godwit's.
        let c = classify_statement(
            &Stmt::new(StmtKind::User, "LOCK TABLES `d`.`t` WRITE"),
            None,
            false,
        );
        assert_eq!((c.kind, c.lock.as_str()), ("sql", "unknown"));
    }
}
