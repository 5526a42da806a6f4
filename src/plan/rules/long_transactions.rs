//! `long-transactions`: an open transaction holds a metadata/table lock that the ALTER
//! (or godwit's cut-over) must wait for — and everything queues behind the ALTER.

use super::Rule;
use crate::plan::{Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "long-transactions",
    check,
};

fn check(p: &Plan, o: &PlanOptions) -> Vec<Finding> {
    let long: Vec<_> = p
        .facts
        .long_transactions
        .iter()
        .filter(|t| t.seconds >= o.long_trx_seconds)
        .collect();
    if long.is_empty() {
        return vec![];
    }
    let oldest = long.iter().map(|t| t.seconds).max().unwrap_or(0);
    vec![Finding {
        rule: RULE.id,
        severity: Severity::Warning,
        message: format!(
            "{} transaction(s) open for more than {} s (oldest {} s, id {}): the ALTER's lock and the cut-over wait for them, and queries queue behind",
            long.len(),
            o.long_trx_seconds,
            oldest,
            long[0].id
        ),
        fix: "let them finish or end them before running; keep a short lock_wait_timeout / lock_timeout".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;
    use crate::plan::LongTransaction;

    #[test]
    fn fires_above_the_threshold_only() {
        let mut p = mysql_plan(vec![]);
        p.facts.long_transactions.push(LongTransaction {
            id: "7".into(),
            seconds: 5,
            state: String::new(),
        });
        assert!(check(&p, &PlanOptions::default()).is_empty());
        p.facts.long_transactions[0].seconds = 600;
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
    }
}
