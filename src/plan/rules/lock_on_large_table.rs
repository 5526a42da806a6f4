//! `lock-on-large-table`: writes wait while a change works through a large table.

use super::Rule;
use crate::plan::{is_large, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "lock-on-large-table",
    check,
};

fn check(p: &Plan, o: &PlanOptions) -> Vec<Finding> {
    if !is_large(&p.facts, o) {
        return vec![];
    }
    p.changes
        .iter()
        .filter(|c| c.blocks_writes && c.heavy())
        .map(|c| Finding {
            rule: RULE.id,
            severity: Severity::Error,
            message: format!(
                "`{}` blocks writes to {} (~{} rows) while it {}",
                c.clause,
                p.table,
                p.facts.row_estimate,
                if c.rewrite { "rewrites the table" } else { "scans the table" }
            ),
            fix: "run it with `godwit run` (shadow copy, short cut-over), or use the non-blocking form in the recommendation".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;
    use crate::plan::{ChangeKind, PgLock};

    #[test]
    fn fires_on_large_blocking_scan_only() {
        let mut c = change(ChangeKind::SetNotNull, &["a"]);
        c.pg_lock = Some(PgLock::AccessExclusive);
        c.blocks_writes = true;
        c.scan = true;
        let mut p = pg_plan(vec![c.clone()]);
        assert!(check(&p, &PlanOptions::default()).is_empty(), "small table");
        large(&mut p);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        c.scan = false; // catalog-only twin
        let mut p = pg_plan(vec![c]);
        large(&mut p);
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
