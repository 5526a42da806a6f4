//! Risk rules: one file per rule. Each has an id, a severity and a message that names
//! the fix. `run_all` runs them in a fixed order.

mod destructive_drop;
mod fk_without_not_valid;
mod insufficient_disk;
mod lock_on_large_table;
mod long_transactions;
mod missing_primary_key;
mod not_null_with_nulls;
mod rename_breaks_code;
mod rewrite_large_table;
mod type_truncation;
mod unique_duplicates;

use super::{Finding, Plan, PlanOptions};

/// A rule: its id and the check.
pub struct Rule {
    pub id: &'static str,
    pub check: fn(&Plan, &PlanOptions) -> Vec<Finding>,
}

/// Every rule, in the order findings are reported.
pub const RULES: &[Rule] = &[
    lock_on_large_table::RULE,
    rewrite_large_table::RULE,
    unique_duplicates::RULE,
    not_null_with_nulls::RULE,
    type_truncation::RULE,
    destructive_drop::RULE,
    rename_breaks_code::RULE,
    fk_without_not_valid::RULE,
    long_transactions::RULE,
    missing_primary_key::RULE,
    insufficient_disk::RULE,
];

pub fn run_all(plan: &Plan, o: &PlanOptions) -> Vec<Finding> {
    RULES.iter().flat_map(|r| (r.check)(plan, o)).collect()
}

/// Plans built by hand for the rules' unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::plan::*;
    use crate::target::{kind_of_scheme, EngineKind};

    /// Facts of a small MariaDB table.
    pub fn mysql_facts() -> Facts {
        facts(mysql())
    }

    /// A plan of `changes` on a small MariaDB table.
    pub fn mysql_plan(changes: Vec<Change>) -> Plan {
        plan(mysql(), changes)
    }

    /// A plan of `changes` on a small PostgreSQL table.
    pub fn pg_plan(changes: Vec<Change>) -> Plan {
        plan(kind_of_scheme("postgres").unwrap(), changes)
    }

    fn mysql() -> EngineKind {
        kind_of_scheme("mysql").unwrap()
    }

    fn facts(engine: EngineKind) -> Facts {
        let mysql = engine == mysql();
        Facts {
            engine,
            server_version: "test".into(),
            version: if mysql { (10, 11, 0) } else { (15, 0, 0) },
            mariadb: mysql,
            schema: "s".into(),
            table: "t".into(),
            row_estimate: 10,
            data_bytes: 16384,
            index_bytes: 0,
            avg_row_bytes: 100,
            columns: vec![Column {
                name: "id".into(),
                column_type: "int".into(),
                data_type: "int".into(),
                ..Default::default()
            }],
            indexes: vec![Index::primary(&["id"])],
            proven_not_null: vec![],
            row_format: None,
            free_bytes: None,
            replicas: None,
            long_transactions: vec![],
            settings: vec![],
            sample: None,
            mysql: Default::default(),
            pg: Default::default(),
        }
    }

    fn plan(engine: EngineKind, changes: Vec<Change>) -> Plan {
        let mysql_engine = engine == mysql();
        let f = facts(engine);
        let overall = changes
            .first()
            .cloned()
            .unwrap_or_else(|| Change::new(String::new(), ChangeKind::Other));
        Plan {
            engine,
            server_version: "test".into(),
            table: "t".into(),
            alter: String::new(),
            estimate: estimate::estimate_with(&f, !mysql_engine, false),
            facts: f,
            changes,
            overall,
            checks: vec![],
            recommendation: Recommendation {
                strategy: Strategy::Native,
                statements: vec![],
                reason: String::new(),
            },
            findings: vec![],
            validates_constraints_later: !mysql_engine,
        }
    }

    pub fn change(op: ChangeKind, cols: &[&str]) -> Change {
        let mut c = Change::new(format!("{op:?}"), op);
        c.columns = cols.iter().map(|s| s.to_string()).collect();
        c
    }

    pub fn large(p: &mut Plan) {
        p.facts.row_estimate = 50_000_000;
        p.facts.data_bytes = 10 << 30;
    }
}
