//! `unique-duplicates`: a new unique index or primary key over data that has duplicates
//! fails (after doing all the work).

use super::Rule;
use crate::plan::{DataProbe, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "unique-duplicates",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.checks
        .iter()
        .filter(|r| r.found)
        .filter_map(|r| match &r.probe {
            DataProbe::Duplicates { columns } => Some(Finding {
                rule: RULE.id,
                severity: Severity::Error,
                message: format!(
                    "({}) holds duplicate values, e.g. {}: the unique key cannot be built",
                    columns.join(", "),
                    r.example.clone().unwrap_or_default()
                ),
                fix: "remove or merge the duplicates first (SELECT … GROUP BY … HAVING COUNT(*) > 1), then add the key".into(),
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
    fn fires_only_when_duplicates_were_found() {
        let mut p = mysql_plan(vec![]);
        let mut r = ProbeResult {
            probe: DataProbe::Duplicates {
                columns: vec!["a".into()],
            },
            found: true,
            example: Some("a=1 (2 rows)".into()),
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
