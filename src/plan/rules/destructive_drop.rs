//! `destructive-drop`: dropping a column or table loses data for good.

use super::Rule;
use crate::plan::{ChangeKind, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "destructive-drop",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.changes
        .iter()
        .filter(|c| matches!(c.op, ChangeKind::DropColumn | ChangeKind::DropTable))
        .map(|c| Finding {
            rule: RULE.id,
            severity: Severity::Warning,
            message: format!("`{}` destroys data ({})", c.clause, c.columns.join(", ")),
            fix: "stop reading and writing it in the application first, take a backup, then drop it in a separate contract phase".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;

    #[test]
    fn fires_on_drop_not_on_add() {
        let p = mysql_plan(vec![change(ChangeKind::DropColumn, &["a"])]);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        let p = mysql_plan(vec![change(ChangeKind::AddColumn, &["a"])]);
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
