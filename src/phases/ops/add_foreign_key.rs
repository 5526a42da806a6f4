//! `add_foreign_key`: a foreign key added without a long lock.
//!
//! expand: the key is added *enforced for new writes*, existing rows unchecked, so the
//! add is short: PostgreSQL `NOT VALID`; MySQL/MariaDB with `foreign_key_checks=0` in the
//! session, `ALGORITHM=INPLACE, LOCK=NONE` (InnoDB does not check existing rows then).
//! InnoDB needs an index on the referencing columns: when there is none, expand builds
//! it online under a godwit name and contract renames it to the constraint's name, which
//! is what a direct `ADD FOREIGN KEY` would have created (so abort can tell it apart from
//! an index the user had).
//! contract: existing rows are checked for orphans by a query (the phase is refused with
//! the count and an example if there are any); PostgreSQL then runs `VALIDATE
//! CONSTRAINT` (SHARE UPDATE EXCLUSIVE: reads and writes go on).
//! abort: drop the key (and the index expand built).
//!
//! Nothing is synced while expanded: the key lives on the one table and applies to every
//! writer from expand on, old application or new. An old application that writes rows
//! the key forbids gets errors from expand on: that is the point of adding it.

pub use super::super::stmt::AddForeignKey;
use super::{missing_column, need, Cx, Guard, Op, Stmt};

const ACTIONS: &[&str] = &[
    "CASCADE",
    "SET NULL",
    "SET DEFAULT",
    "RESTRICT",
    "NO ACTION",
];

/// `on_delete` / `on_update` as SQL, upper case and single-spaced.
fn action(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|a| {
        a.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    })
}

impl AddForeignKey {
    pub fn on_delete(&self) -> Option<String> {
        action(&self.on_delete)
    }
    pub fn on_update(&self) -> Option<String> {
        action(&self.on_update)
    }

    /// The godwit name of the supporting index expand builds on MySQL.
    pub fn index_name(tag: &str) -> String {
        format!("{tag}_fk")
    }

    /// Rows whose key is set (every column non-NULL: MATCH SIMPLE) and not in the
    /// referenced table.
    fn orphans(&self, cx: &Cx, key: &[String]) -> Stmt {
        let mut labels = self.columns.clone();
        labels.extend(key.iter().filter(|k| !self.columns.contains(k)).cloned());
        let (first, count_sql) = cx.sql.orphans(
            &self.table,
            &self.columns,
            (&self.references_table, &self.references_columns),
            &labels,
        );
        Stmt::guard(
            first,
            Guard {
                what: format!(
                    "foreign key `{}`: rows of `{}` whose ({}) is not in `{}` ({})",
                    self.name,
                    self.table,
                    self.columns.join(", "),
                    self.references_table,
                    self.references_columns.join(", ")
                ),
                count_sql,
                key_len: self.columns.len(),
                labels,
                hint: "fix or delete those rows (or add the missing referenced rows), then run the phase again; `godwit abort` removes the key".into(),
            },
        )
    }

    /// Does the table have an index InnoDB can use for the key (so none is built)?
    fn has_index(&self, cx: &Cx) -> Result<bool, String> {
        Ok(cx.info()?.index_leading(&self.columns).is_some())
    }
}

impl Op for AddForeignKey {
    fn describe(&self) -> String {
        format!(
            "add foreign key {} on {} ({}) references {} ({})",
            self.name,
            self.table,
            self.columns.join(", "),
            self.references_table,
            self.references_columns.join(", ")
        )
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn relations(&self) -> Vec<&str> {
        vec![&self.references_table]
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("name", &self.name)?;
        need("references_table", &self.references_table)?;
        if self.columns.is_empty() {
            return Err("field `columns` is empty: name at least one column".into());
        }
        if self.columns.len() != self.references_columns.len() {
            return Err(format!(
                "`columns` has {} columns but `references_columns` has {}",
                self.columns.len(),
                self.references_columns.len()
            ));
        }
        for c in self.columns.iter().chain(&self.references_columns) {
            need("columns", c)?;
        }
        for (field, v) in [
            ("on_delete", self.on_delete()),
            ("on_update", self.on_update()),
        ] {
            if let Some(a) = v {
                if !ACTIONS.contains(&a.as_str()) {
                    return Err(format!(
                        "field `{field}` is `{a}`: use one of {}",
                        ACTIONS.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        for c in &self.columns {
            if info.column_exact(c).is_none() {
                return Err(missing_column(&self.table, c));
            }
        }
        let parent = cx
            .relation(&self.references_table)
            .filter(|p| !p.view)
            .ok_or_else(|| {
                format!(
                    "the referenced table `{}` does not exist",
                    self.references_table
                )
            })?;
        for c in &self.references_columns {
            if parent.column_exact(c).is_none() {
                return Err(missing_column(&self.references_table, c));
            }
        }
        if parent.index_leading(&self.references_columns).is_none() {
            return Err(format!(
                "`{}` has no primary key or unique index on ({}): a foreign key must reference one",
                self.references_table,
                self.references_columns.join(", ")
            ));
        }
        let exists = info.foreign_keys.iter().any(|f| f == &self.name);
        if exists && !cx.resuming {
            return Err(format!(
                "a foreign key `{}` already exists on `{}`",
                self.name, self.table
            ));
        }
        let mut out = vec![self.orphans(cx, &info.primary_columns())];
        if !exists {
            let index = (cx.sql.foreign_key_needs_index() && !self.has_index(cx)?)
                .then(|| Self::index_name(&cx.tag));
            out.extend(cx.sql.add_foreign_key(self, index.as_deref()));
        }
        Ok(out)
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let temp = Self::index_name(&cx.tag);
        let built = info.has_index(&temp)
            || (cx.planning && cx.sql.foreign_key_needs_index() && !self.has_index(cx)?);
        if !cx.planning && !info.foreign_keys.iter().any(|f| f == &self.name) {
            return Err(format!(
                "the foreign key `{}` is missing from `{}`: was it dropped by hand? `godwit abort`, then expand again",
                self.name, self.table
            ));
        }
        let mut out = vec![self.orphans(cx, &info.primary_columns())];
        out.extend(
            cx.sql
                .validate_foreign_key(self, built.then_some(temp.as_str())),
        );
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let temp = Self::index_name(&cx.tag);
        let built = cx.info()?.has_index(&temp) || cx.planning;
        Ok(cx.sql.drop_foreign_key(
            &self.table,
            &self.name,
            (built && cx.sql.foreign_key_needs_index()).then_some(temp.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::engine::postgres::phases::Postgres;
    use crate::schema::{Column, Index, Table};
    use std::collections::HashMap;

    fn fk(on_delete: Option<&str>) -> AddForeignKey {
        AddForeignKey {
            table: "orders".into(),
            name: "fk".into(),
            columns: vec!["customer_id".into()],
            references_table: "customers".into(),
            references_columns: vec!["id".into()],
            on_delete: on_delete.map(str::to_string),
            on_update: None,
        }
    }

    fn table(name: &str, cols: &[&str], indexes: &[(&str, &[&str])]) -> Table {
        let mut t = Table {
            name: name.into(),
            columns: cols.iter().map(|c| Column::declared(c, "int")).collect(),
            indexes: indexes
                .iter()
                .map(|(n, c)| Index {
                    name: n.to_string(),
                    columns: c.iter().map(|x| Some(x.to_string())).collect(),
                    unique: *n == "PRIMARY",
                    primary: *n == "PRIMARY",
                    valid: true,
                    ..Index::default()
                })
                .collect(),
            ..Default::default()
        };
        if !t.indexes.iter().any(|i| i.primary) {
            t.indexes.push(Index::primary(&["id"]));
        }
        t
    }

    fn catalog(child_indexes: &[(&str, &[&str])]) -> HashMap<String, Table> {
        let mut m = HashMap::new();
        m.insert(
            "orders".into(),
            table("orders", &["id", "customer_id"], child_indexes),
        );
        m.insert(
            "customers".into(),
            table("customers", &["id"], &[("PRIMARY", &["id"])]),
        );
        m
    }

    fn expand(
        sql: &dyn crate::phases::dialect::Dialect,
        cat: &HashMap<String, Table>,
    ) -> Vec<Stmt> {
        let cx = Cx {
            sql,
            table: cat.get("orders"),
            catalog: cat,
            tag: "_godwit_x_1".into(),
            resuming: false,
            planning: false,
        };
        fk(Some("set  null")).expand(&cx).unwrap()
    }

    #[test]
    fn validation() {
        assert!(fk(Some("cascade")).validate().is_ok());
        assert!(fk(Some("explode"))
            .validate()
            .unwrap_err()
            .contains("on_delete"));
        let mut f = fk(None);
        f.references_columns.push("x".into());
        assert!(f.validate().unwrap_err().contains("references_columns"));
        assert_eq!(
            fk(Some("set  null")).on_delete().as_deref(),
            Some("SET NULL")
        );
    }

    #[test]
    fn mysql_builds_an_index_only_when_none_leads_with_the_columns() {
        let my = Mysql { db: "d".into() };
        let s = expand(&my, &catalog(&[("PRIMARY", &["id"])]));
        assert!(s[0].guard.is_some(), "the orphan check comes first");
        assert_eq!(s[1].sql, "SET SESSION foreign_key_checks = 0");
        assert!(
            s[2].sql
                .contains("ADD INDEX IF NOT EXISTS `_godwit_x_1_fk` (`customer_id`)"),
            "{}",
            s[2].sql
        );
        assert!(
            s[2].sql
                .contains("ON DELETE SET NULL, ALGORITHM=INPLACE, LOCK=NONE"),
            "{}",
            s[2].sql
        );
        assert_eq!(s[3].sql, "SET SESSION foreign_key_checks = 1");
        let s = expand(&my, &catalog(&[("k", &["customer_id", "id"])]));
        assert!(!s[2].sql.contains("ADD INDEX"), "{}", s[2].sql);
    }

    #[test]
    fn postgres_adds_not_valid() {
        let pg = Postgres {
            schema: "s".into(),
            version: 150_000,
        };
        let s = expand(&pg, &catalog(&[]));
        assert_eq!(s.len(), 2);
        assert!(
            s[1].sql.ends_with("ON DELETE SET NULL NOT VALID"),
            "{}",
            s[1].sql
        );
    }

    #[test]
    fn the_referenced_table_must_exist_and_be_indexed() {
        let my = Mysql { db: "d".into() };
        let mut cat = catalog(&[]);
        cat.get_mut("customers").unwrap().indexes.clear();
        let cx = Cx {
            sql: &my,
            table: cat.get("orders"),
            catalog: &cat,
            tag: "t".into(),
            resuming: false,
            planning: false,
        };
        assert!(fk(None)
            .expand(&cx)
            .unwrap_err()
            .contains("no primary key or unique index"));
        cat.remove("customers");
        let cx = Cx {
            sql: &my,
            table: cat.get("orders"),
            catalog: &cat,
            tag: "t".into(),
            resuming: false,
            planning: false,
        };
        assert!(fk(None).expand(&cx).unwrap_err().contains("does not exist"));
    }
}
