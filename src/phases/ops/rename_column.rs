//! `rename_column`: both names work while expanded.
//!
//! expand: a copy column under the new name (same type, nullable, no default) and a
//! trigger that keeps the two equal whichever one a writer sets. backfill: copy values.
//! contract: drop the copy and rename the original, in one locked step: the result is
//! exactly a native RENAME COLUMN (position, type, default, indexes, constraints kept).

use super::{missing_column, need, Backfill, Branch, Cond, Cx, Filter, Op, Stmt, Trigger, Val};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    pub table: String,
    pub from: String,
    pub to: String,
}

impl RenameColumn {
    fn trigger(&self) -> Trigger {
        let (a, b) = (&self.from, &self.to);
        Trigger {
            // The old application never names `to`: NULL there means "not written".
            insert: vec![vec![
                Branch {
                    cond: Cond::IsNull(b.clone()),
                    col: b.clone(),
                    val: Val::Col(a.clone()),
                },
                Branch {
                    cond: Cond::Always,
                    col: a.clone(),
                    val: Val::Col(b.clone()),
                },
            ]],
            update: vec![vec![
                Branch {
                    cond: Cond::Changed(b.clone()),
                    col: a.clone(),
                    val: Val::Col(b.clone()),
                },
                Branch {
                    cond: Cond::Changed(a.clone()),
                    col: b.clone(),
                    val: Val::Col(a.clone()),
                },
            ]],
        }
    }
}

impl Op for RenameColumn {
    fn describe(&self) -> String {
        format!("rename column {}.{} to {}", self.table, self.from, self.to)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("from", &self.from)?;
        need("to", &self.to)?;
        if self.from == self.to {
            return Err("`from` and `to` are the same".into());
        }
        Ok(())
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let from = info
            .column_exact(&self.from)
            .ok_or_else(|| missing_column(&self.table, &self.from))?;
        if info.column_exact(&self.to).is_some() && !cx.resuming {
            return Err(format!(
                "column `{}` already exists in table `{}`",
                self.to, self.table
            ));
        }
        let mut out = vec![cx.sql.add_column_like(&self.table, &self.to, from)];
        out.extend(
            cx.sql
                .create_trigger(&self.table, &cx.tag, &self.trigger(), info),
        );
        Ok(out)
    }
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        Some(Backfill {
            table: self.table.clone(),
            set: vec![(self.to.clone(), Val::Col(self.from.clone()))],
            filter: Filter::Differs(self.to.clone(), self.from.clone()),
        })
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        if info.column_exact(&self.from).is_none() {
            if info.column_exact(&self.to).is_some() {
                return Ok(vec![]); // done by an earlier, interrupted contract
            }
            return Err(missing_column(&self.table, &self.from));
        }
        Ok(cx
            .sql
            .rename_contract(&self.table, &self.from, &self.to, &cx.tag))
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        if info.column_exact(&self.from).is_none() {
            return Err(missing_column(&self.table, &self.from));
        }
        let mut out = cx.sql.drop_trigger(&self.table, &cx.tag);
        out.push(cx.sql.drop_column(&self.table, &self.to));
        Ok(out)
    }
}
