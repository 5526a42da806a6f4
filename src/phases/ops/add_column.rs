//! `add_column`: add a column; rows written by the old application get `up`.
//!
//! expand: ADD COLUMN (nullable while the old application runs), trigger filling NULLs
//! with `up` and computing it again when a write changes a column `up` reads without
//! writing the new column. backfill: `up` for existing rows. contract: NOT NULL if
//! asked, drop trigger.

use super::{
    follow_sources, need, Backfill, Branch, Cond, Cx, Filter, Op, Probe, Stmt, Trigger, Val,
};
use crate::schema::{Column, Table};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// SQL expression, as in `DEFAULT …`.
    pub default: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    pub table: String,
    pub column: ColumnDef,
    /// SQL expression over the row's columns: the value for existing rows and for rows
    /// the old application writes without the column.
    pub up: Option<String>,
}

impl AddColumn {
    /// Insert: a row without the column gets `up`. Update: `up` again when the write
    /// changes a column `up` reads and does not write the new column itself (the old
    /// application never names it: a write that does is the new application's, and
    /// stays); a row not backfilled yet gets it too.
    fn trigger(&self, info: &Table) -> Option<Trigger> {
        let up = self.up.as_ref()?;
        let col = &self.column.name;
        let fill = Branch {
            cond: Cond::IsNull(col.clone()),
            col: col.clone(),
            val: Val::Expr(up.clone()),
        };
        let mut update = vec![fill.clone()];
        update.extend(follow_sources(info, col, up, false));
        Some(Trigger {
            insert: vec![vec![fill]],
            update: vec![update],
        })
    }
}

impl Op for AddColumn {
    fn describe(&self) -> String {
        format!(
            "add column {}.{} {}{}",
            self.table,
            self.column.name,
            self.column.type_,
            if self.column.nullable {
                ""
            } else {
                " NOT NULL"
            }
        )
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("column.name", &self.column.name)?;
        need("column.type", &self.column.type_)?;
        if !self.column.nullable && self.up.is_none() && self.column.default.is_none() {
            return Err(format!(
                "column `{}` is NOT NULL: it needs `up` or `default` for the existing rows",
                self.column.name
            ));
        }
        Ok(())
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        if info.column_exact(&self.column.name).is_some() && !cx.resuming {
            return Err(format!(
                "column `{}` already exists in table `{}`",
                self.column.name, self.table
            ));
        }
        // With `up`, existing rows must stay NULL until the backfill computes them (a
        // default would fill them first and the backfill would skip them): the default
        // is set at contract instead.
        let default = if self.up.is_some() {
            None
        } else {
            self.column.default.as_deref()
        };
        let mut out =
            vec![cx
                .sql
                .add_column(&self.table, &self.column.name, &self.column.type_, default)];
        if let Some(t) = self.trigger(info) {
            out.extend(cx.sql.create_trigger(&self.table, &cx.tag, &t, info));
        }
        if !self.column.nullable {
            out.extend(
                cx.sql
                    .not_null_expand(&self.table, &self.column.name, &cx.tag),
            );
        }
        Ok(out)
    }
    /// Before expand: the type (and default) are valid, and `up` gives every existing row
    /// a value the column can hold; otherwise the old application's writes would fail
    /// in the trigger once expanded.
    fn probes(&self, cx: &Cx) -> Result<Vec<Probe>, String> {
        if cx.info()?.column_exact(&self.column.name).is_some() {
            return Ok(vec![]);
        }
        let q = |s: &str| cx.sql.quote(s);
        let probe = format!("{}_probe", cx.tag);
        let col = &self.column;
        let not_null = if col.nullable { "NULL" } else { "NOT NULL" };
        let default = col
            .default
            .as_ref()
            .map(|d| format!(" DEFAULT {d}"))
            .unwrap_or_default();
        let mut out = vec![
            Probe::cleanup(cx.sql.drop_temp_table(&probe)),
            Probe::new(
                cx.sql.temp_table(
                    &probe,
                    &format!("{} {}{default} {not_null}", q(&col.name), col.type_),
                ),
                format!(
                    "`column`: `{}`{default} is not a column the server accepts",
                    col.type_
                ),
            ),
        ];
        if let Some(up) = &self.up {
            out.push(Probe::new(
                format!(
                    "INSERT INTO {} ({}) SELECT ({up}) FROM {}",
                    q(&probe),
                    q(&col.name),
                    cx.sql.table(&self.table)
                ),
                format!(
                    "`up` cannot give every existing row of `{}` a `{}`{} value",
                    self.table,
                    col.type_,
                    if col.nullable { "" } else { " NOT NULL" }
                ),
            ));
        }
        out.push(Probe::cleanup(cx.sql.drop_temp_table(&probe)));
        Ok(out)
    }
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        let up = self.up.as_ref()?;
        Some(Backfill {
            table: self.table.clone(),
            set: vec![(self.column.name.clone(), Val::Expr(up.clone()))],
            filter: Filter::IsNull(self.column.name.clone()),
        })
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let mut out = Vec::new();
        if let (Some(_), Some(d)) = (&self.up, &self.column.default) {
            out.push(cx.sql.set_default(&self.table, &self.column.name, d));
        }
        if !self.column.nullable {
            let col = info
                .column_exact(&self.column.name)
                .cloned()
                .unwrap_or_else(|| Column::declared(&self.column.name, &self.column.type_))
                .with_default(self.column.default.clone());
            if col.nullable {
                out.extend(cx.sql.set_not_null(&self.table, &col, &cx.tag));
            }
        }
        if self.up.is_some() {
            out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        }
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let mut out = Vec::new();
        if self.up.is_some() {
            out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        }
        out.extend(cx.sql.not_null_abort(&self.table, &cx.tag));
        out.push(cx.sql.drop_column(&self.table, &self.column.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::engine::postgres::phases::Postgres;
    use crate::phases::dialect::Dialect;

    fn expand(sql: &dyn Dialect, up: &str) -> String {
        let info = Table {
            name: "t".into(),
            columns: vec![
                Column::declared("id", "int"),
                Column::declared("qty", "int"),
                Column::declared("note", "text"),
            ],
            indexes: vec![crate::schema::Index::primary(&["id"])],
            ..Table::default()
        };
        let op = AddColumn {
            table: "t".into(),
            column: ColumnDef {
                name: "score".into(),
                type_: "INT".into(),
                nullable: true,
                default: None,
            },
            up: Some(up.into()),
        };
        let cx = Cx {
            sql,
            catalog: crate::phases::ops::no_catalog(),
            planning: false,
            table: Some(&info),
            tag: "_godwit_t_1".into(),
            resuming: false,
        };
        op.expand(&cx)
            .unwrap()
            .iter()
            .map(|s| s.sql.clone())
            .collect::<Vec<_>>()
            .join(";\n")
    }

    #[test]
    fn up_is_computed_again_when_what_it_reads_changes() {
        let pg = Postgres {
            schema: "public".into(),
            version: 150_000,
        };
        let out = expand(&pg, "COALESCE(qty, 0) * 2");
        assert!(
            out.contains("ELSIF (NOT (NEW.\"score\" IS DISTINCT FROM OLD.\"score\")) AND ((NEW.\"qty\" IS DISTINCT FROM OLD.\"qty\")) THEN NEW.\"score\" := (SELECT (COALESCE(qty, 0) * 2) FROM (SELECT NEW.*) AS _godwit_row);"),
            "{out}"
        );
        let my = Mysql { db: "d".into() };
        let out = expand(&my, "COALESCE(qty, 0) * 2");
        assert!(
            out.contains("ELSEIF (NOT (NOT (NEW.`score` <=> OLD.`score`))) AND ((NOT (NEW.`qty` <=> OLD.`qty`))) THEN SET NEW.`score` ="),
            "{out}"
        );
        // An `up` that reads no column is not computed again.
        let out = expand(&pg, "42");
        assert!(!out.contains("ELSIF"), "{out}");
    }
}
