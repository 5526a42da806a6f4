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
        if info.column(&self.column).is_none() {
            return Err(missing_column(&self.table, &self.column));
        }
        if info.checks.contains(&self.name) && !cx.resuming {
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
            info.checks.contains(&self.name),
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
