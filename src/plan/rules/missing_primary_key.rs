//! `missing-primary-key`: without a primary key (or a non-null unique key) neither the
//! online copy nor row-based replication can address rows efficiently.

use super::Rule;
use crate::plan::{ChangeKind, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "missing-primary-key",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    let has_pk = p.facts.primary_key().is_some();
    let adds_pk = p.changes.iter().any(|c| c.op == ChangeKind::AddPrimaryKey);
    let drops_pk = p.changes.iter().any(|c| c.op == ChangeKind::DropPrimaryKey);
    if (has_pk && !drops_pk) || adds_pk {
        return vec![];
    }
    vec![Finding {
        rule: RULE.id,
        severity: Severity::Warning,
        message: format!(
            "{} {} no primary key: `godwit run` needs one (or a NOT NULL unique key), and replicas scan for every changed row",
            p.table,
            if drops_pk { "would have" } else { "has" }
        ),
        fix: "add a primary key first (e.g. an auto-increment / identity id column)".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;

    #[test]
    fn fires_without_pk_only() {
        let mut p = mysql_plan(vec![change(ChangeKind::AddColumn, &["x"])]);
        assert!(check(&p, &PlanOptions::default()).is_empty());
        p.facts.indexes.clear();
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
    }
}
