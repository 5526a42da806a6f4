//! `sql`: raw statements. `up` runs in expand, `down` in abort, `contract` (optional)
//! in contract. They are the user's: write them idempotent (`IF [NOT] EXISTS`).

use super::{need, Cx, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSql {
    pub up: String,
    pub down: Option<String>,
    pub contract: Option<String>,
}

impl Op for RawSql {
    fn describe(&self) -> String {
        let first = self.up.lines().next().unwrap_or_default();
        format!("sql: {first}")
    }
    fn table(&self) -> Option<&str> {
        None
    }
    fn validate(&self) -> Result<(), String> {
        need("up", &self.up)
    }
    fn expand(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![Stmt::new(self.up.trim())])
    }
    fn contract(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(self.contract.iter().map(|s| Stmt::new(s.trim())).collect())
    }
    fn abort(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        match &self.down {
            Some(d) => Ok(vec![Stmt::new(d.trim())]),
            None => Err("no `down`: this migration cannot be aborted automatically".into()),
        }
    }
}
