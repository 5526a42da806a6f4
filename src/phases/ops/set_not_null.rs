//! `set_not_null`: make a column NOT NULL; NULLs become `up`.
//!
//! expand: a trigger turns NULLs written by the old application into `up`, and computes
//! a value `up` gave again when a write changes what `up` reads. backfill: `up` for
//! existing NULLs. contract: NOT NULL (PostgreSQL through a validated CHECK, so the
//! ACCESS EXCLUSIVE lock does not scan), drop the trigger.

use super::{
    follow_sources, missing_column, need, Backfill, Branch, Cond, Cx, Filter, Op, Stmt, Trigger,
    Val,
};
use crate::schema::Table;
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
    /// A NULL written becomes `up`; on update, a value `up` gave (the row held `up` of
    /// itself) is computed again when the write changes a column `up` reads and does not
    /// write this column: the row keeps the value a NULL would get now.
    fn trigger(&self, info: &Table) -> Trigger {
        let fill = Branch {
            cond: Cond::IsNull(self.column.clone()),
            col: self.column.clone(),
            val: Val::Expr(self.up.clone()),
        };
        let mut update = vec![fill.clone()];
        update.extend(follow_sources(info, &self.column, &self.up, true));
        Trigger {
            insert: vec![vec![fill]],
            update: vec![update],
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
            .column_exact(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        if !col.nullable && !cx.resuming {
            return Err(format!(
                "column `{}` of `{}` is already NOT NULL",
                self.column, self.table
            ));
        }
        let mut out = cx
            .sql
            .create_trigger(&self.table, &cx.tag, &self.trigger(info), info);
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
            .column_exact(&self.column)
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
