//! `insufficient-disk`: the shadow copy (or a native rebuild) needs about the table's size
//! again; fires when the server exposes free space and it is not enough.

use super::Rule;
use crate::plan::{Finding, Plan, PlanOptions, Severity};

pub const RULE: Rule = Rule {
    id: "insufficient-disk",
    check,
};

fn check(p: &Plan, _o: &PlanOptions) -> Vec<Finding> {
    let Some(free) = p.estimate.free_bytes else {
        return vec![];
    };
    // Headroom for the log written meanwhile.
    let need = p.estimate.disk_needed_bytes + p.estimate.disk_needed_bytes / 5;
    if need <= free {
        return vec![];
    }
    vec![Finding {
        rule: RULE.id,
        severity: Severity::Error,
        message: format!("the copy needs about {need} bytes but only {free} bytes are free"),
        fix: "free disk space (or grow the volume) before running; the old table is kept until cut-over".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::fixture::*;

    #[test]
    fn fires_when_free_space_is_short() {
        let mut p = pg_plan(vec![]);
        assert!(
            check(&p, &PlanOptions::default()).is_empty(),
            "unknown free space"
        );
        p.estimate.disk_needed_bytes = 1000;
        p.estimate.free_bytes = Some(100);
        assert_eq!(check(&p, &PlanOptions::default()).len(), 1);
        p.estimate.free_bytes = Some(1 << 30);
        assert!(check(&p, &PlanOptions::default()).is_empty());
    }
}
