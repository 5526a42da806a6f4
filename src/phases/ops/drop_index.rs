//! `drop_index`: the old application may still need the index, so it stays until
//! contract, which drops it online (PostgreSQL `DROP INDEX CONCURRENTLY`, MySQL
//! `ALGORITHM=INPLACE, LOCK=NONE`). expand only checks; abort has nothing to undo.

use super::{need, Cx, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropIndex {
    pub table: String,
    pub name: String,
}

impl Op for DropIndex {
    fn describe(&self) -> String {
        format!("drop index {} on {}", self.name, self.table)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("name", &self.name)
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let Some(idx) = info.index(&self.name) else {
            if cx.resuming {
                return Ok(vec![]);
            }
            return Err(format!(
                "index `{}` does not exist on `{}`",
                self.name, self.table
            ));
        };
        if idx.primary {
            return Err(format!(
                "index `{}` is the primary key of `{}`: drop_index does not drop primary keys",
                self.name, self.table
            ));
        }
        if let Some(c) = &idx.constraint {
            return Err(format!(
                "index `{}` is used by constraint `{c}`: drop the constraint instead (a `sql` operation with ALTER TABLE … DROP CONSTRAINT)",
                self.name
            ));
        }
        Ok(vec![])
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![cx.sql.drop_index(&self.table, &self.name)])
    }
    fn abort(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![])
    }
}
