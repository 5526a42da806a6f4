//! `rename_table`: both names work while expanded, with no help from the application.
//!
//! expand: a view `to` over `from` (`SELECT *`). Such a view is automatically updatable on
//! both engines: inserts (column defaults, identity / AUTO_INCREMENT, `RETURNING`,
//! `LAST_INSERT_ID()`), updates and deletes through it reach the table. The view runs with
//! the writer's privileges (`SQL SECURITY INVOKER` / `security_invoker`); on PostgreSQL the
//! table's privileges are granted on the view as well.
//! contract: the view steps aside and the table takes its name with no moment where `to`
//! is missing: PostgreSQL drops the view and renames the table in one transaction;
//! MariaDB/MySQL renames the view away and the table to `to` in one `RENAME TABLE`, then
//! drops the view. The result is what a direct rename gives: indexes, constraints,
//! sequences, triggers and grants keep their names and stay with the table.
//! abort: drop the view.
//!
//! Nothing is synced: there is one table, the view is only a second name for it. The
//! view's columns are fixed when it is created: a column added to `from` while expanded
//! is not visible through `to` until contract.

use super::{need, Cx, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameTable {
    pub from: String,
    pub to: String,
}

impl RenameTable {
    /// Where MySQL parks the view during the swap.
    fn temp(&self, cx: &Cx) -> String {
        format!("{}_v", cx.tag)
    }
}

impl Op for RenameTable {
    fn describe(&self) -> String {
        format!("rename table {} to {}", self.from, self.to)
    }
    fn table(&self) -> Option<&str> {
        // `from` is gone once contracted: the catalog is read for both names instead.
        None
    }
    fn relations(&self) -> Vec<&str> {
        vec![&self.from, &self.to]
    }
    fn validate(&self) -> Result<(), String> {
        need("from", &self.from)?;
        need("to", &self.to)?;
        if self.from == self.to {
            return Err("`from` and `to` are the same".into());
        }
        Ok(())
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let from = cx
            .relation(&self.from)
            .filter(|t| !t.view)
            .ok_or_else(|| format!("table `{}` does not exist", self.from))?;
        match cx.relation(&self.to) {
            Some(t) if t.view && cx.resuming => {}
            Some(t) => {
                return Err(format!(
                    "a {} named `{}` already exists",
                    if t.view { "view" } else { "table" },
                    self.to
                ))
            }
            None => {}
        }
        Ok(cx.sql.create_view(&self.to, &self.from, &from.grants))
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let from = cx.relation(&self.from).map(|t| t.view);
        let to = cx.relation(&self.to).map(|t| t.view);
        match (from, to) {
            // Expanded: the view `to` over the table `from`.
            (Some(false), Some(true)) => {
                Ok(cx
                    .sql
                    .swap_view_for_table(&self.from, &self.to, &self.temp(cx)))
            }
            (Some(false), None) if cx.planning => {
                Ok(cx
                    .sql
                    .swap_view_for_table(&self.from, &self.to, &self.temp(cx)))
            }
            // The view is gone (dropped by hand): a plain rename.
            (Some(false), None) => Ok(vec![cx.sql.rename_table(&self.from, &self.to)]),
            // Renamed by an earlier, interrupted contract: only a leftover view may remain.
            (None, Some(false)) => Ok(vec![cx.sql.drop_view(&self.temp(cx))]),
            (Some(false), Some(false)) => Err(format!(
                "both `{}` and `{}` are tables: `{}` must be the view expand created",
                self.from, self.to, self.to
            )),
            _ => Err(format!("table `{}` does not exist", self.from)),
        }
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        if cx.relation(&self.from).is_none_or(|t| t.view) && !cx.planning {
            return Err(format!(
                "table `{}` does not exist: it was already renamed to `{}`",
                self.from, self.to
            ));
        }
        // DROP VIEW refuses a table: a table named `to` is never dropped here.
        Ok(vec![cx.sql.drop_view(&self.to)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::schema::Table;
    use std::collections::HashMap;

    fn contract(rels: &[(&str, bool)], planning: bool) -> Result<Vec<String>, String> {
        let my = Mysql { db: "d".into() };
        let cat: HashMap<String, Table> = rels
            .iter()
            .map(|(n, view)| {
                (
                    n.to_string(),
                    Table {
                        name: n.to_string(),
                        view: *view,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let cx = Cx {
            sql: &my,
            table: None,
            catalog: &cat,
            tag: "_godwit_x_1".into(),
            resuming: false,
            planning,
        };
        let op = RenameTable {
            from: "a".into(),
            to: "b".into(),
        };
        op.contract(&cx)
            .map(|v| v.into_iter().map(|s| s.sql).collect())
    }

    #[test]
    fn contract_follows_the_catalog() {
        let swap = contract(&[("a", false), ("b", true)], false).unwrap();
        assert_eq!(
            swap,
            vec![
                "RENAME TABLE `d`.`b` TO `d`.`_godwit_x_1_v`, `d`.`a` TO `d`.`b`",
                "DROP VIEW IF EXISTS `d`.`_godwit_x_1_v`"
            ]
        );
        // Planning before expand: the swap expand will make possible.
        assert_eq!(contract(&[("a", false)], true).unwrap(), swap);
        // Interrupted after the rename: only the parked view is left.
        assert_eq!(
            contract(&[("b", false)], false).unwrap(),
            vec!["DROP VIEW IF EXISTS `d`.`_godwit_x_1_v`"]
        );
        assert!(contract(&[("a", false), ("b", false)], false).is_err());
    }
}
