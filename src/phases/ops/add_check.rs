//! `add_check`: add a CHECK constraint; rows that violate it get `up` in `column`.
//!
//! expand: a trigger replaces `column` with `up` when a written row violates the check,
//! so the old application's writes keep working; PostgreSQL also adds the constraint
//! `NOT VALID` (BEFORE triggers run before constraints: a fixed row passes). backfill:
//! `up` for the violating rows. contract: PostgreSQL `VALIDATE CONSTRAINT` (SHARE UPDATE
//! EXCLUSIVE: writes go on); MariaDB `ADD CONSTRAINT`, which the server can only do by
//! copying the table (ALGORITHM=COPY, LOCK=SHARED: reads go on, writes wait); then the
//! trigger goes.
//!
//! A CHECK passes when its condition is NULL; so does the trigger's test
//! (`NOT (check)` is NULL, not true).

use super::{
    missing_column, need, Backfill, Branch, Cond, Cx, Filter, Op, Probe, Stmt, Trigger, Val,
};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCheck {
    pub table: String,
    /// The constraint's name.
    pub name: String,
    /// The condition, as in `CHECK (…)`.
    pub check: String,
    /// The column `up` replaces in a violating row.
    pub column: String,
    /// SQL over the row: the value that makes a violating row pass.
    pub up: String,
}

impl AddCheck {
    fn violates(&self) -> String {
        format!("NOT ({})", self.check)
    }

    fn trigger(&self) -> Trigger {
        let chain = vec![Branch {
            cond: Cond::Holds(self.violates()),
            col: self.column.clone(),
            val: Val::Expr(self.up.clone()),
        }];
        Trigger {
            insert: vec![chain.clone()],
            update: vec![chain],
        }
    }
}

impl Op for AddCheck {
    fn describe(&self) -> String {
        format!("add check {} on {} ({})", self.name, self.table, self.check)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("name", &self.name)?;
        need("check", &self.check)?;
        need("column", &self.column)?;
        need("up", &self.up)
    }
    fn probes(&self, cx: &Cx) -> Result<Vec<Probe>, String> {
        let probe = format!("{}_probe", cx.tag);
        let q = |s: &str| cx.sql.quote(s);
        Ok(vec![
            Probe::cleanup(cx.sql.drop_temp_table(&probe)),
            Probe::new(
                cx.sql.temp_table_like(&probe, &self.table),
                format!("cannot copy the definition of `{}`", self.table),
            ),
            Probe::new(
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({})",
                    q(&probe),
                    q(&self.name),
                    self.check
                ),
                "`check` is not a CHECK constraint the server accepts on this table",
            ),
            Probe::new(
                format!(
                    "UPDATE {} SET {} = ({}) WHERE {}",
                    q(&probe),
                    q(&self.column),
                    self.up,
                    self.violates()
                ),
                format!("`up` is not a valid value for `{}`", self.column),
            ),
            Probe::cleanup(cx.sql.drop_temp_table(&probe)),
        ])
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        if info.column_exact(&self.column).is_none() {
            return Err(missing_column(&self.table, &self.column));
        }
        if info.has_check(&self.name) && !cx.resuming {
            return Err(format!(
                "a CHECK constraint `{}` already exists on `{}`",
                self.name, self.table
            ));
        }
        let mut out = cx
            .sql
            .create_trigger(&self.table, &cx.tag, &self.trigger(), info);
        out.extend(cx.sql.check_expand(&self.table, &self.name, &self.check));
        Ok(out)
    }
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        Some(Backfill {
            table: self.table.clone(),
            set: vec![(self.column.clone(), Val::Expr(self.up.clone()))],
            filter: Filter::Holds(self.violates()),
        })
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        // The constraint first: until it holds, the trigger keeps writes valid.
        let mut out = cx.sql.check_contract(
            &self.table,
            &self.name,
            &self.check,
            info.has_check(&self.name),
        );
        out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let mut out = cx.sql.check_abort(&self.table, &self.name);
        out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::engine::postgres::phases::Postgres;
    use crate::phases::dialect::Dialect;
    use crate::schema::{Column, Table};

    fn op() -> AddCheck {
        AddCheck {
            table: "t".into(),
            name: "qty_pos".into(),
            check: "qty >= 0".into(),
            column: "qty".into(),
            up: "0".into(),
        }
    }

    fn info() -> Table {
        Table {
            name: "t".into(),
            columns: vec![
                Column::declared("id", "int"),
                Column::declared("qty", "int"),
            ],
            ..Table::default()
        }
    }

    fn plan(sql: &dyn Dialect, phase: &str, checks: &[&str]) -> Vec<Stmt> {
        let mut i = info();
        i.checks = checks
            .iter()
            .map(|s| crate::schema::Check {
                name: s.to_string(),
                clause: String::new(),
                validated: true,
            })
            .collect();
        let cx = Cx {
            sql,
            catalog: crate::phases::ops::no_catalog(),
            planning: false,
            table: Some(&i),
            tag: "_godwit_t_1".into(),
            resuming: false,
        };
        match phase {
            "expand" => op().expand(&cx).unwrap(),
            "contract" => op().contract(&cx).unwrap(),
            _ => op().abort(&cx).unwrap(),
        }
    }

    #[test]
    fn a_violation_is_the_check_being_false_not_null() {
        // `IF NOT (check)`: NULL is not a violation, as for the constraint itself.
        let my = Mysql { db: "d".into() };
        let out = plan(&my, "expand", &[]);
        assert_eq!(out.len(), 2, "MySQL: the trigger only");
        assert!(
            out[0].sql.contains("IF (SELECT (NOT (qty >= 0)) FROM (SELECT NEW.`qty` AS `qty`) AS `_godwit_row`) THEN SET NEW.`qty` = (0);"),
            "{}",
            out[0].sql
        );
        let b = op().backfill(&Cx {
            sql: &my,
            catalog: crate::phases::ops::no_catalog(),
            planning: false,
            table: None,
            tag: String::new(),
            resuming: false,
        });
        let sql = my.backfill_update(&b.unwrap(), &[], false, false);
        assert!(sql.ends_with("WHERE (NOT (qty >= 0))"), "{sql}");
    }

    #[test]
    fn postgres_adds_not_valid_then_validates_without_blocking_writes() {
        let pg = Postgres {
            schema: "public".into(),
            version: 150_000,
        };
        let out = plan(&pg, "expand", &[]);
        assert!(out
            .last()
            .unwrap()
            .sql
            .ends_with("ADD CONSTRAINT \"qty_pos\" CHECK (qty >= 0) NOT VALID"));
        let out = plan(&pg, "contract", &["qty_pos"]);
        assert!(out[0].concurrent && out[0].sql.contains("VALIDATE CONSTRAINT \"qty_pos\""));
        let out = plan(&pg, "abort", &["qty_pos"]);
        assert!(out[0].sql.contains("DROP CONSTRAINT IF EXISTS \"qty_pos\""));
    }

    #[test]
    fn mysql_adds_the_constraint_at_contract_once() {
        let my = Mysql { db: "d".into() };
        let out = plan(&my, "contract", &[]);
        assert!(out[0]
            .sql
            .starts_with("ALTER TABLE `d`.`t` ADD CONSTRAINT `qty_pos` CHECK (qty >= 0)"));
        // Resumed after the ALTER: only the triggers are left to drop.
        let out = plan(&my, "contract", &["qty_pos"]);
        assert!(out.iter().all(|s| s.sql.starts_with("DROP TRIGGER")));
    }
}
