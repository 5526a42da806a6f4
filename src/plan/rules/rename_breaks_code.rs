//! `rename-breaks-code`: a renamed column or table breaks running application code.

use super::Rule;
use crate::plan::{ChangeKind, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "rename-breaks-code",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.changes
        .iter()
        .filter(|c| {
            matches!(c.op, ChangeKind::RenameColumn | ChangeKind::RenameTable)
                || (c.op == ChangeKind::ChangeColumn && c.new_name.is_some())
        })
        .map(|c| Finding {
            rule: RULE.id,
            severity: Severity::Warning,
            message: format!(
                "`{}` renames {} to {}: code using the old name fails at once",
                c.clause,
                if c.op == ChangeKind::RenameTable { p.table.clone() } else { c.columns.join(", ") },
                c.new_name.clone().unwrap_or_default()
            ),
            fix: "use phases: add the new name (column, or a view for a table), write both, switch reads, then drop the old".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;

    #[test]
    fn fires_on_rename_not_on_modify() {
        let mut c = change(ChangeKind::RenameColumn, &["a"]);
        c.new_name = Some("b".into());
        let p = pg_plan(vec![c]);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        let p = pg_plan(vec![change(ChangeKind::ChangeColumn, &["a"])]);
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
