//! `fk-without-not-valid`: adding a foreign key validates every row while writes wait.

use super::Rule;
use crate::plan::{ChangeKind, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "fk-without-not-valid",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.changes
        .iter()
        .filter(|c| c.op == ChangeKind::AddForeignKey && !c.not_valid)
        .map(|c| Finding {
            rule: RULE.id,
            severity: Severity::Warning,
            message: format!("`{}` checks every existing row while writes wait", c.clause),
            fix: if p.validates_constraints_later {
                "add it NOT VALID, then run ALTER TABLE … VALIDATE CONSTRAINT … (writes continue)".into()
            } else {
                "add the foreign key with `godwit run`, or natively with foreign_key_checks=0 after checking the data".into()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;

    #[test]
    fn fires_without_not_valid_only() {
        let mut c = change(ChangeKind::AddForeignKey, &["a"]);
        let p = pg_plan(vec![c.clone()]);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        c.not_valid = true;
        let p = pg_plan(vec![c]);
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
