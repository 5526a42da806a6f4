//! `drop_column`: the new application stops writing the column; contract drops it.
//!
//! expand: when `down` is given, a trigger fills the column with `down` for rows the new
//! application writes without it (so a NOT NULL column does not reject them).
//! contract: drop the trigger and the column, with no write in between. abort: drop the
//! trigger.

use super::{missing_column, need, Branch, Cond, Cx, Op, Stmt, Trigger, Val};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropColumn {
    pub table: String,
    pub column: String,
    /// SQL expression over the row: the value for rows written without the column.
    pub down: Option<String>,
}

impl DropColumn {
    fn trigger(&self) -> Option<Trigger> {
        let down = self.down.as_ref()?;
        let chain = vec![Branch {
            cond: Cond::IsNull(self.column.clone()),
            col: self.column.clone(),
            val: Val::Expr(down.clone()),
        }];
        Some(Trigger {
            insert: vec![chain],
            update: vec![],
        })
    }
}

impl Op for DropColumn {
    fn describe(&self) -> String {
        format!("drop column {}.{}", self.table, self.column)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("column", &self.column)
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let col = info
            .column(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        match self.trigger() {
            Some(t) => Ok(cx.sql.create_trigger(&self.table, &cx.tag, &t, info)),
            None if !col.nullable && col.default.is_none() => Err(format!(
                "column `{}` is NOT NULL without a default: give `down` (the value for rows the new application writes)",
                self.column
            )),
            None => Ok(vec![]),
        }
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let tag = self.trigger().map(|_| cx.tag.as_str());
        Ok(cx.sql.drop_synced_column(&self.table, &self.column, tag))
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(match self.trigger() {
            Some(_) => cx.sql.drop_trigger(&self.table, &cx.tag),
            None => vec![],
        })
    }
}
