//! `drop_column`: the new application stops writing the column; contract drops it.
//!
//! expand: when `down` is given, a trigger fills the column with `down` for rows the new
//! application writes without it (so a NOT NULL column does not reject them), and
//! computes a value `down` gave again when a write changes what `down` reads.
//! contract: drop the trigger and the column, with no write in between. abort: drop the
//! trigger.

use super::{follow_sources, missing_column, need, Branch, Cond, Cx, Op, Stmt, Trigger, Val};
use crate::schema::Table;
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
    /// Insert: a row without the column gets `down`. Update: a value `down` gave (the row
    /// held `down` of itself) is computed again when the write changes a column `down`
    /// reads and does not write this column, so the old application keeps reading what
    /// `down` says of the row.
    fn trigger(&self, info: &Table) -> Option<Trigger> {
        let down = self.down.as_ref()?;
        let chain = vec![Branch {
            cond: Cond::IsNull(self.column.clone()),
            col: self.column.clone(),
            val: Val::Expr(down.clone()),
        }];
        Some(Trigger {
            insert: vec![chain],
            update: follow_sources(info, &self.column, down, true)
                .map(|b| vec![b])
                .into_iter()
                .collect(),
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
            .column_exact(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        match self.trigger(info) {
            Some(t) => Ok(cx.sql.create_trigger(&self.table, &cx.tag, &t, info)),
            None if !col.nullable && col.default.is_none() => Err(format!(
                "column `{}` is NOT NULL without a default: give `down` (the value for rows the new application writes)",
                self.column
            )),
            None => Ok(vec![]),
        }
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let tag = self.down.as_ref().map(|_| cx.tag.as_str());
        Ok(cx.sql.drop_synced_column(&self.table, &self.column, tag))
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(match self.down {
            Some(_) => cx.sql.drop_trigger(&self.table, &cx.tag),
            None => vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::engine::postgres::phases::Postgres;
    use crate::phases::dialect::Dialect;
    use crate::schema::{Column, Index};

    fn info() -> Table {
        Table {
            name: "t".into(),
            columns: vec![
                Column::declared("id", "int"),
                Column::declared("a", "int"),
                Column {
                    nullable: false,
                    ..Column::declared("legacy", "int")
                },
            ],
            indexes: vec![Index::primary(&["id"])],
            ..Table::default()
        }
    }

    #[test]
    fn a_value_down_gave_follows_the_row() {
        let op = DropColumn {
            table: "t".into(),
            column: "legacy".into(),
            down: Some("a * 3".into()),
        };
        let t = op.trigger(&info()).unwrap();
        assert_eq!(t.update.len(), 1);
        let i = info();
        let pg = Postgres {
            schema: "public".into(),
            version: 150_000,
        };
        let out = pg.create_trigger("t", "_godwit_t_1", &t, &i)[0].sql.clone();
        assert!(
            out.contains("(OLD.\"legacy\" IS NOT DISTINCT FROM CAST((SELECT (a * 3) FROM (SELECT OLD.*) AS _godwit_row) AS int))"),
            "{out}"
        );
        let my = Mysql { db: "d".into() };
        let out = my.create_trigger("t", "_godwit_t_1", &t, &i)[1].sql.clone();
        assert!(
            out.contains(
                "(OLD.`legacy` <=> (SELECT (a * 3) FROM (SELECT OLD.`a` AS `a`) AS `_godwit_row`))"
            ),
            "{out}"
        );
    }
}
