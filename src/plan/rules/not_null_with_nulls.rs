//! `not-null-with-nulls`: making a column NOT NULL (or part of a primary key) while it
//! holds NULLs fails.

use super::Rule;
use crate::plan::{DataProbe, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "not-null-with-nulls",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.checks
        .iter()
        .filter(|r| r.found)
        .filter_map(|r| match &r.probe {
            DataProbe::Nulls { column } => Some(Finding {
                rule: RULE.id,
                severity: Severity::Error,
                message: format!(
                    "column {column} holds NULLs (e.g. the row with {}): NOT NULL will fail",
                    r.example.clone().unwrap_or_default()
                ),
                fix: format!("backfill first: UPDATE … SET {column} = <value> WHERE {column} IS NULL (in batches), or give a DEFAULT"),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;
    use crate::plan::ProbeResult;

    #[test]
    fn fires_only_when_nulls_were_found() {
        let mut p = pg_plan(vec![]);
        let mut r = ProbeResult {
            probe: DataProbe::Nulls { column: "a".into() },
            found: true,
            example: Some("id=3".into()),
            rows_checked: 10,
            complete: true,
        };
        p.checks.push(r.clone());
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        r.found = false;
        p.checks = vec![r];
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
