//! `sql`: raw statements. `up` runs in expand, `down` in abort, `contract` (optional)
//! in contract. They are the user's: write them idempotent (`IF [NOT] EXISTS`).
//! A field may hold several statements: they are split with the engine's quoting rules
//! (`ddl::lex`) and each runs on its own, never as one batch.

use super::{need, Cx, Op, Stmt, StmtKind};
use crate::ddl::lex;
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
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        statements(cx, "up", &self.up)
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        match &self.contract {
            Some(c) => statements(cx, "contract", c),
            None => Ok(vec![]),
        }
    }
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        match &self.down {
            Some(d) => statements(cx, "down", d),
            None => Err("no `down`: this migration cannot be aborted automatically".into()),
        }
    }
}

/// The statements of one field, each run (and shown in a dry run) on its own.
fn statements(cx: &Cx, field: &str, text: &str) -> Result<Vec<Stmt>, String> {
    let st = lex::split(cx.sql.engine(), text, &format!("field `{field}`"))
        .map_err(|e| e.to_string())?;
    if st.is_empty() {
        return Err(format!("field `{field}` holds no statement"));
    }
    Ok(st
        .into_iter()
        .map(|s| Stmt::new(StmtKind::User, s))
        .collect())
}
