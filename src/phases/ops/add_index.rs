//! `add_index`: built online in expand (PostgreSQL `CONCURRENTLY`, MySQL
//! `ALGORITHM=INPLACE, LOCK=NONE`); abort drops it; contract has nothing to do.

use super::{missing_column, need, Cx, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddIndex {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    #[serde(default)]
    pub unique: bool,
}

impl Op for AddIndex {
    fn describe(&self) -> String {
        format!(
            "add {}index {} on {} ({})",
            if self.unique { "unique " } else { "" },
            self.name,
            self.table,
            self.columns.join(", ")
        )
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("name", &self.name)?;
        if self.columns.is_empty() {
            return Err("field `columns` is empty: name at least one column".into());
        }
        for c in &self.columns {
            need("columns", c)?;
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
        if info.has_index(&self.name) && !cx.resuming {
            return Err(format!(
                "index `{}` already exists on `{}`",
                self.name, self.table
            ));
        }
        Ok(cx
            .sql
            .add_index(&self.table, &self.name, &self.columns, self.unique))
    }
    fn contract(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![])
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![cx.sql.drop_index(&self.table, &self.name)])
    }
}
