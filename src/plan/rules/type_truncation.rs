//! `type-truncation`: a narrower type that existing values do not fit (strings too long,
//! numbers out of range).

use super::Rule;
use crate::plan::{DataProbe, Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "type-truncation",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    p.checks
        .iter()
        .filter(|r| r.found)
        .filter_map(|r| {
            let (column, what) = match &r.probe {
                DataProbe::TooLong { column, max_chars } => (column, format!("longer than {max_chars} characters")),
                DataProbe::OutOfRange { column, min, max } => (column, format!("outside {min}..{max}")),
                _ => return None,
            };
            Some(Finding {
                rule: RULE.id,
                severity: Severity::Error,
                message: format!(
                    "column {column} holds values {what} (e.g. {}): the new type would cut or reject them",
                    r.example.clone().unwrap_or_default()
                ),
                fix: "fix those values first, or pick a type wide enough for the data".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;
    use crate::plan::ProbeResult;

    #[test]
    fn fires_only_when_values_do_not_fit() {
        let mut p = mysql_plan(vec![]);
        let mut r = ProbeResult {
            probe: DataProbe::TooLong {
                column: "b".into(),
                max_chars: 5,
            },
            found: true,
            example: Some("id=1".into()),
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
