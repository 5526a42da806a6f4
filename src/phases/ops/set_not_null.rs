//! `set_not_null`: make a column NOT NULL; NULLs become `up`.
//!
//! expand: a trigger turns NULLs written by the old application into `up`. backfill: `up`
//! for existing NULLs. contract: NOT NULL (PostgreSQL through a validated CHECK, so the
//! ACCESS EXCLUSIVE lock does not scan), drop the trigger.

use super::{missing_column, need, Backfill, Branch, Cond, Cx, Filter, Op, Stmt, Trigger, Val};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNotNull {
    pub table: String,
    pub column: String,
    /// SQL expression over the row: the value that replaces NULL.
    pub up: String,
}

impl SetNotNull {
    fn trigger(&self) -> Trigger {
        let chain = vec![Branch {
            cond: Cond::IsNull(self.column.clone()),
            col: self.column.clone(),
            val: Val::Expr(self.up.clone()),
        }];
        Trigger {
            insert: vec![chain.clone()],
            update: vec![chain],
        }
    }
}

impl Op for SetNotNull {
    fn describe(&self) -> String {
        format!("set {}.{} NOT NULL", self.table, self.column)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("column", &self.column)?;
        need("up", &self.up)
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let col = info
            .column(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        if !col.nullable && !cx.resuming {
            return Err(format!(
                "column `{}` of `{}` is already NOT NULL",
                self.column, self.table
            ));
        }
        let mut out = cx
            .sql
            .create_trigger(&self.table, &cx.tag, &self.trigger(), info);
        out.extend(cx.sql.not_null_expand(&self.table, &self.column, &cx.tag));
        Ok(out)
    }
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        Some(Backfill {
            table: self.table.clone(),
            set: vec![(self.column.clone(), Val::Expr(self.up.clone()))],
            filter: Filter::IsNull(self.column.clone()),
        })
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let col = info
            .column(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        let mut out = Vec::new();
        if col.nullable {
            out.extend(cx.sql.set_not_null(&self.table, col, &cx.tag));
        }
        out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let mut out = cx.sql.not_null_abort(&self.table, &cx.tag);
        out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        Ok(out)
    }
}
