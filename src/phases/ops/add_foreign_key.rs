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

use super::{missing_column, need, Cx, Guard, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKey {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
}

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
        let q = |c: &str| cx.sql.quote(c);
        let set: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", q(c)))
            .collect();
        let join: Vec<String> = self
            .columns
            .iter()
            .zip(&self.references_columns)
            .map(|(c, r)| format!("p.{} = c.{}", q(r), q(c)))
            .collect();
        let from = format!(
            "FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            cx.sql.table(&self.table),
            set.join(" AND "),
            cx.sql.table(&self.references_table),
            join.join(" AND ")
        );
        let mut labels = self.columns.clone();
        labels.extend(key.iter().filter(|k| !self.columns.contains(k)).cloned());
        let sel: Vec<String> = labels
            .iter()
            .map(|c| cx.sql.text(&format!("c.{}", q(c))))
            .collect();
        Stmt::guard(
            format!("SELECT {} {from} LIMIT 1", sel.join(", ")),
            Guard {
                what: format!(
                    "foreign key `{}`: rows of `{}` whose ({}) is not in `{}` ({})",
                    self.name,
                    self.table,
                    self.columns.join(", "),
                    self.references_table,
                    self.references_columns.join(", ")
                ),
                count_sql: format!("SELECT {} {from}", cx.sql.text("COUNT(*)")),
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
            if info.column(c).is_none() {
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
            if parent.column(c).is_none() {
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
        let mut out = vec![self.orphans(cx, &info.primary_key)];
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
        let built = info.indexes.iter().any(|i| i == &temp)
            || (cx.planning && cx.sql.foreign_key_needs_index() && !self.has_index(cx)?);
        if !cx.planning && !info.foreign_keys.iter().any(|f| f == &self.name) {
            return Err(format!(
                "the foreign key `{}` is missing from `{}`: was it dropped by hand? `godwit abort`, then expand again",
                self.name, self.table
            ));
        }
        let mut out = vec![self.orphans(cx, &info.primary_key)];
        out.extend(
            cx.sql
                .validate_foreign_key(self, built.then_some(temp.as_str())),
        );
        Ok(out)
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let temp = Self::index_name(&cx.tag);
        let built = cx.info()?.indexes.iter().any(|i| i == &temp) || cx.planning;
        Ok(cx.sql.drop_foreign_key(
            &self.table,
            &self.name,
            (built && cx.sql.foreign_key_needs_index()).then_some(temp.as_str()),
        ))
    }
}
