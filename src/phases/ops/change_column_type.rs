//! `change_column_type`: give a column a new type while old and new application write.
//!
//! expand: a nullable column `new_name` of the new type, copies of the column's indexes
//! over it, and a trigger: a write of `column` (old application) sets `new_name = up`, a
//! write of `new_name` (new application) sets `column = down`. backfill: `up` for rows
//! still without a value. contract: drop the old column and give the new one its name,
//! NOT NULL, default, comment, index names and (MySQL) place, in one locked step.
//!
//! Before anything changes, expand proves the change on the server: the type exists,
//! the old default fits it, `up` converts every existing row (read once, into a
//! temporary table) and `down` is a valid expression.

use super::{
    missing_column, need, Backfill, Branch, Cond, Cx, Filter, Op, Probe, Stmt, Trigger, Val,
};
use crate::schema::{Column, Index, Table};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeColumnType {
    pub table: String,
    pub column: String,
    /// The new type, as in `ALTER … TYPE` / `MODIFY` (`type` names the operation).
    pub new_type: String,
    /// SQL over the row: the new-type value from the old columns.
    pub up: String,
    /// SQL over the row: the old-type value from the new column (`new_name`).
    pub down: String,
    /// The new column's name while expanded; default `<column>_new`.
    pub new_name: Option<String>,
}

impl ChangeColumnType {
    fn new_col(&self) -> String {
        self.new_name
            .clone()
            .unwrap_or_else(|| format!("{}_new", self.column))
    }

    fn trigger(&self) -> Trigger {
        let (old, new) = (&self.column, self.new_col());
        let up = || Val::Expr(self.up.clone());
        let down = || Val::Expr(self.down.clone());
        Trigger {
            // The old application never names the new column: NULL there means "not
            // written", and the new application's value wins otherwise.
            insert: vec![vec![
                Branch {
                    cond: Cond::IsNull(new.clone()),
                    col: new.clone(),
                    val: up(),
                },
                Branch {
                    cond: Cond::Always,
                    col: old.clone(),
                    val: down(),
                },
            ]],
            // A new value equal to `up` of the row is a copy (the backfill, or the branch
            // below on an earlier write), not a write of the new application: the old
            // column keeps its value instead of becoming down(up(value)).
            update: vec![vec![
                Branch {
                    cond: Cond::All(vec![
                        Cond::Changed(new.clone()),
                        Cond::Differs(new.clone(), up()),
                    ]),
                    col: old.clone(),
                    val: down(),
                },
                Branch {
                    cond: Cond::Changed(old.clone()),
                    col: new.clone(),
                    val: up(),
                },
                // Not backfilled yet: fill it now (a NOT NULL column's check needs it).
                Branch {
                    cond: Cond::IsNull(new.clone()),
                    col: new,
                    val: up(),
                },
            ]],
        }
    }

    /// The column, refusing what godwit cannot carry onto a new column.
    fn checked<'a>(&self, info: &'a Table) -> Result<&'a Column, String> {
        let col = info
            .column_exact(&self.column)
            .ok_or_else(|| missing_column(&self.table, &self.column))?;
        if info.primary_columns().contains(&self.column) {
            return Err(format!(
                "column `{}` is part of the primary key of `{}`: change_column_type cannot replace a key column (the backfill walks the key); use `godwit run` with the ALTER instead",
                self.column, self.table
            ));
        }
        let uses = info.uses_of(&self.column);
        if !uses.is_empty() {
            return Err(format!(
                "column `{}` is used by {}: change_column_type replaces the column and cannot carry that over; drop it first (a `sql` operation) or use `godwit run` with the ALTER",
                self.column,
                uses.join(", ")
            ));
        }
        for i in self.indexes(info) {
            if !i.plain || i.constraint.is_some() || i.primary {
                return Err(format!(
                    "index `{}` on `{}` is not a plain index over whole columns{}: change_column_type rebuilds only plain (unique) B-tree indexes; drop it first or use `godwit run`",
                    i.name,
                    self.column,
                    i.constraint
                        .as_ref()
                        .map(|c| format!(" (it belongs to constraint `{c}`)"))
                        .unwrap_or_default()
                ));
            }
        }
        Ok(col)
    }

    /// The indexes over the old column, in the table's key order.
    fn indexes<'a>(&self, info: &'a Table) -> Vec<&'a Index> {
        info.indexes
            .iter()
            .filter(|i| i.covers(&self.column))
            .collect()
    }

    /// `(copy, original)` names of the copied indexes.
    fn index_copies(&self, info: &Table, tag: &str) -> Vec<(String, String)> {
        self.indexes(info)
            .iter()
            .enumerate()
            .map(|(n, i)| (format!("{tag}_i{}", n + 1), i.name.clone()))
            .collect()
    }

    /// The table as the trigger sees it: with the new column.
    fn with_new(&self, info: &Table) -> Table {
        let mut t = info.clone();
        if t.column_exact(&self.new_col()).is_none() {
            t.columns
                .push(Column::declared(&self.new_col(), &self.new_type));
        }
        t
    }
}

impl Op for ChangeColumnType {
    fn describe(&self) -> String {
        format!(
            "change type of {}.{} to {}",
            self.table, self.column, self.new_type
        )
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("column", &self.column)?;
        need("new_type", &self.new_type)?;
        need("up", &self.up)?;
        need("down", &self.down)?;
        if let Some(n) = &self.new_name {
            need("new_name", n)?;
            if n == &self.column {
                return Err("`new_name` must differ from `column`".into());
            }
        }
        Ok(())
    }
    fn probes(&self, cx: &Cx) -> Result<Vec<Probe>, String> {
        let info = cx.info()?;
        let old = self.checked(info)?;
        let q = |s: &str| cx.sql.quote(s);
        let probe = format!("{}_probe", cx.tag);
        let new = self.new_col();
        let not_null = if old.nullable { "NULL" } else { "NOT NULL" };
        let mut out = vec![
            Probe::cleanup(cx.sql.drop_temp_table(&probe)),
            Probe::new(
                cx.sql
                    .temp_table(&probe, &format!("{} {} {not_null}", q(&new), self.new_type)),
                format!(
                    "`new_type`: `{}` is not a column type the server accepts",
                    self.new_type
                ),
            ),
        ];
        if let Some(d) = &old.default {
            out.push(Probe::new(
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {d}",
                    q(&probe),
                    q(&new)
                ),
                format!(
                    "the default of `{}` ({d}) cannot be carried to type `{}` (a direct ALTER refuses it too): change or drop the default first",
                    self.column, self.new_type
                ),
            ));
        }
        out.push(Probe::new(
            format!(
                "INSERT INTO {} ({}) SELECT ({}) FROM {}",
                q(&probe),
                q(&new),
                self.up,
                cx.sql.table(&self.table)
            ),
            format!(
                "`up` cannot convert every existing row of `{}` to `{}`{}",
                self.table,
                self.new_type,
                if old.nullable { "" } else { " NOT NULL" }
            ),
        ));
        out.push(Probe::new(
            format!(
                "SELECT ({}) FROM {}, {} LIMIT 0",
                self.down,
                cx.sql.table(&self.table),
                q(&probe)
            ),
            format!("`down` is not a valid expression over the row and the new column `{new}`"),
        ));
        out.push(Probe::cleanup(cx.sql.drop_temp_table(&probe)));
        Ok(out)
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let old = self.checked(info)?;
        let new = self.new_col();
        if info.column_exact(&new).is_some() && !cx.resuming {
            return Err(format!(
                "column `{new}` already exists in table `{}`: name another one in `new_name`",
                self.table
            ));
        }
        let mut out = vec![cx.sql.add_column(&self.table, &new, &self.new_type, None)];
        out.extend(cx.sql.create_trigger(
            &self.table,
            &cx.tag,
            &self.trigger(),
            &self.with_new(info),
        ));
        if !old.nullable {
            out.extend(cx.sql.not_null_expand(&self.table, &new, &cx.tag));
        }
        for ((copy, _), idx) in self
            .index_copies(info, &cx.tag)
            .iter()
            .zip(self.indexes(info))
        {
            let cols: Vec<String> = idx
                .columns
                .iter()
                .flatten()
                .map(|c| {
                    if c == &self.column {
                        new.clone()
                    } else {
                        c.clone()
                    }
                })
                .collect();
            out.extend(cx.sql.add_index(&self.table, copy, &cols, idx.unique));
        }
        Ok(out)
    }
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        Some(Backfill {
            table: self.table.clone(),
            set: vec![(self.new_col(), Val::Expr(self.up.clone()))],
            filter: Filter::IsNull(self.new_col()),
        })
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let new_name = self.new_col();
        let (Some(old), Some(new)) = (
            info.column_exact(&self.column),
            info.column_exact(&new_name),
        ) else {
            if info.column_exact(&self.column).is_some() {
                // Done by an earlier, interrupted contract but for the triggers.
                return Ok(cx.sql.drop_trigger(&self.table, &cx.tag));
            }
            return Err(missing_column(&self.table, &self.column));
        };
        let mut out = Vec::new();
        if !old.nullable && new.nullable {
            out.extend(cx.sql.set_not_null(&self.table, new, &cx.tag));
        }
        let after = info
            .columns
            .iter()
            .take_while(|c| c.name != self.column)
            .last()
            .map(|c| c.name.as_str());
        let fin = Column {
            name: self.column.clone(),
            column_type: new.column_type.clone(),
            nullable: old.nullable,
            default: old.default.clone(),
            collation: new.collation.clone(),
            comment: old.comment.clone(),
            ..Column::default()
        };
        out.extend(cx.sql.retype_contract(
            &self.table,
            &new_name,
            &fin,
            after,
            &self.index_copies(info, &cx.tag),
            &cx.tag,
        ));
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let mut out: Vec<Stmt> = self
            .index_copies(info, &cx.tag)
            .iter()
            .map(|(copy, _)| cx.sql.drop_index(&self.table, copy))
            .collect();
        out.extend(cx.sql.drop_trigger(&self.table, &cx.tag));
        out.extend(cx.sql.not_null_abort(&self.table, &cx.tag));
        out.push(cx.sql.drop_column(&self.table, &self.new_col()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::engine::postgres::phases::Postgres;
    use crate::phases::dialect::Dialect;
    use crate::schema::Index;

    fn op() -> ChangeColumnType {
        ChangeColumnType {
            table: "items".into(),
            column: "price".into(),
            new_type: "DECIMAL(10,2)".into(),
            up: "CAST(price AS DECIMAL(10,2))".into(),
            down: "CAST(price_new AS CHAR)".into(),
            new_name: None,
        }
    }

    fn col(name: &str, ty: &str, nullable: bool) -> Column {
        Column {
            nullable,
            ..Column::declared(name, ty)
        }
    }

    fn info(with_new: bool) -> Table {
        let mut columns = vec![
            col("id", "int", false),
            col("price", "varchar(20)", false),
            col("note", "text", true),
        ];
        columns[1].default = Some("'0'".into());
        if with_new {
            columns.push(col("price_new", "decimal(10,2)", true));
        }
        Table {
            name: "items".into(),
            columns,
            indexes: vec![
                Index::primary(&["id"]),
                Index {
                    name: "idx_price".into(),
                    columns: vec![Some("price".into())],
                    plain: true,
                    valid: true,
                    ..Index::default()
                },
            ],
            ..Table::default()
        }
    }

    fn cx<'a>(sql: &'a dyn Dialect, info: &'a Table) -> Cx<'a> {
        Cx {
            sql,
            catalog: crate::phases::ops::no_catalog(),
            planning: false,
            table: Some(info),
            tag: "_godwit_t_1".into(),
            resuming: false,
        }
    }

    fn text(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n")
    }

    #[test]
    fn mysql_contract_puts_the_column_back_in_place_in_one_locked_alter() {
        let my = Mysql { db: "d".into() };
        let i = info(true);
        let out = text(&op().contract(&cx(&my, &i)).unwrap());
        assert!(
            out.contains(
                "MODIFY COLUMN `price_new` decimal(10,2) NOT NULL, ALGORITHM=INPLACE, LOCK=NONE"
            ),
            "{out}"
        );
        assert!(out.contains("LOCK TABLES `d`.`items` WRITE"), "{out}");
        assert!(
            out.contains("ALTER TABLE `d`.`items` DROP INDEX `idx_price`, DROP COLUMN `price`, CHANGE COLUMN `price_new` `price` decimal(10,2) NOT NULL DEFAULT '0' AFTER `id`, RENAME INDEX `_godwit_t_1_i1` TO `idx_price`"),
            "{out}"
        );
        // The ALTER before the triggers go, the unlock last.
        let alter = out.find("DROP COLUMN").unwrap();
        assert!(alter < out.find("DROP TRIGGER").unwrap(), "{out}");
        assert!(out.ends_with("UNLOCK TABLES"), "{out}");
    }

    #[test]
    fn mysql_first_column_goes_back_first() {
        let my = Mysql { db: "d".into() };
        let mut i = info(true);
        i.columns.swap(0, 1);
        i.indexes.retain(|x| !x.primary);
        let out = text(&op().contract(&cx(&my, &i)).unwrap());
        assert!(out.contains(" FIRST"), "{out}");
    }

    #[test]
    fn postgres_contract_renames_sets_default_and_index_names() {
        let pg = Postgres {
            schema: "public".into(),
            version: 150_000,
        };
        let mut i = info(true);
        i.columns[3].column_type = "numeric(10,2)".into();
        let out = op().contract(&cx(&pg, &i)).unwrap();
        assert!(out[0].concurrent && out[0].sql.contains("VALIDATE CONSTRAINT"));
        let out = text(&out);
        assert!(
            out.contains("ALTER COLUMN \"price_new\" SET NOT NULL"),
            "{out}"
        );
        assert!(out.contains("DROP COLUMN \"price\""), "{out}");
        assert!(
            out.contains("RENAME COLUMN \"price_new\" TO \"price\""),
            "{out}"
        );
        assert!(
            out.contains("ALTER COLUMN \"price\" SET DEFAULT '0'"),
            "{out}"
        );
        assert!(
            out.contains("ALTER INDEX \"public\".\"_godwit_t_1_i1\" RENAME TO \"idx_price\""),
            "{out}"
        );
    }

    #[test]
    fn trigger_leaves_the_old_column_alone_when_the_new_value_is_a_copy() {
        let pg = Postgres {
            schema: "public".into(),
            version: 150_000,
        };
        let i = info(false);
        let out = text(&op().expand(&cx(&pg, &i)).unwrap());
        assert!(
            out.contains("IF (NEW.\"price_new\" IS DISTINCT FROM OLD.\"price_new\") AND (NEW.\"price_new\" IS DISTINCT FROM CAST((SELECT (CAST(price AS DECIMAL(10,2))) FROM (SELECT NEW.*) AS _godwit_row) AS DECIMAL(10,2))) THEN NEW.\"price\" :="),
            "{out}"
        );
        assert!(
            out.contains("CREATE INDEX CONCURRENTLY \"_godwit_t_1_i1\" ON \"public\".\"items\" (\"price_new\")"),
            "{out}"
        );
        assert!(
            out.contains("CHECK (\"price_new\" IS NOT NULL) NOT VALID"),
            "{out}"
        );
    }

    #[test]
    fn refuses_key_columns_used_columns_and_odd_indexes() {
        let my = Mysql { db: "d".into() };
        let mut i = info(false);
        let mut o = op();
        o.column = "id".into();
        assert!(o.expand(&cx(&my, &i)).unwrap_err().contains("primary key"));
        i.column_uses
            .push(("price".into(), "foreign key `fk`".into()));
        assert!(op()
            .expand(&cx(&my, &i))
            .unwrap_err()
            .contains("foreign key `fk`"));
        i.column_uses.clear();
        i.indexes[1].plain = false;
        assert!(op()
            .expand(&cx(&my, &i))
            .unwrap_err()
            .contains("not a plain index"));
    }
}
