//! `rewrite-large-table`: the table is rebuilt, which on a large table takes long, needs
//! a second copy on disk and floods replicas.

use super::Rule;
use crate::plan::{is_large, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "rewrite-large-table",
    check,
};

fn check(p: &Plan, o: &PlanOptions) -> Vec<Finding> {
    if !is_large(&p.facts, o) || !p.overall.rewrite {
        return vec![];
    }
    vec![Finding {
        rule: RULE.id,
        severity: Severity::Warning,
        message: format!(
            "the ALTER rewrites {} (~{} rows, {} bytes)",
            p.table,
            p.facts.row_estimate,
            p.facts.total_bytes()
        ),
        fix: "run it with `godwit run` (throttled copy, replica-lag aware), or choose a change that avoids the rewrite".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;
    use crate::plan::ChangeKind;

    #[test]
    fn fires_on_large_rewrite_only() {
        let mut c = change(ChangeKind::ChangeType, &["a"]);
        c.rewrite = true;
        let mut p = mysql_plan(vec![c]);
        large(&mut p);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        p.overall.rewrite = false;
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
