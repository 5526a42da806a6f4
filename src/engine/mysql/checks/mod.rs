//! Preflight checks, one file per check. Each names the setting or object that is wrong
//! and how to fix it.

mod binlog;
mod foreign_keys;
mod key;
mod leftovers;
mod name_length;
mod privileges;
mod triggers;

use super::MysqlEngine;
use crate::engine::Scope;
use crate::error::Result;
use crate::schema::Table;
use mysql_async::Conn;

pub struct CheckCtx<'a> {
    pub conn: &'a mut Conn,
    pub db: &'a str,
    pub table: &'a str,
    pub orig: &'a Table,
    pub engine: &'a MysqlEngine,
}

pub use crate::engine::check::Check;

fn preflight_checks<'a>() -> Vec<Box<dyn Check<CheckCtx<'a>>>> {
    vec![
        Box::new(binlog::BinlogSettings),
        Box::new(privileges::Privileges),
        Box::new(key::UsableKey),
        Box::new(name_length::NameLength),
        Box::new(foreign_keys::ForeignKeys),
        Box::new(triggers::Triggers),
        Box::new(leftovers::Leftovers),
    ]
}

pub async fn run(scope: Scope, cx: &mut CheckCtx<'_>) -> Result<()> {
    let mut checks = preflight_checks();
    if scope == Scope::Resume {
        checks.retain(|c| c.name() != leftovers::NAME);
    }
    crate::engine::check::run_all(checks, cx).await
}
