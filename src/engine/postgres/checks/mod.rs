//! Preflight checks, one file per check. Each names the setting or object that is wrong
//! and how to fix it.

mod key;
mod leftovers;
mod partitioned;
mod persistence;
mod privileges;
mod publications;
mod slots;
mod wal_level;

use super::inspect::RelInfo;
use super::PgEngine;
use crate::engine::Scope;
use crate::error::Result;
use crate::schema::Table;
use tokio_postgres::Client;

pub struct CheckCtx<'a> {
    pub conn: &'a Client,
    pub orig: &'a Table,
    pub info: &'a RelInfo,
    pub engine: &'a PgEngine,
}

pub use crate::engine::check::Check;

fn preflight_checks<'a>() -> Vec<Box<dyn Check<CheckCtx<'a>>>> {
    vec![
        Box::new(wal_level::WalLevel),
        Box::new(persistence::Persistence),
        Box::new(partitioned::Partitioned),
        Box::new(privileges::Privileges),
        Box::new(key::ReplicaIdentity),
        Box::new(publications::AllTablesPublication),
        Box::new(slots::FreeSlot),
        Box::new(leftovers::Leftovers),
    ]
}

pub async fn run(scope: Scope, cx: &mut CheckCtx<'_>) -> Result<()> {
    let checks = match scope {
        Scope::Preflight => preflight_checks(),
        // A resumed run takes over the dead run's slot and objects.
        Scope::Resume => {
            let skip = [slots::FreeSlot.name(), leftovers::Leftovers.name()];
            preflight_checks()
                .into_iter()
                .filter(|c| !skip.contains(&c.name()))
                .collect()
        }
    };
    crate::engine::check::run_all(checks, cx).await
}

/// One value from a one-row query.
pub(crate) async fn one<T>(
    cx: &CheckCtx<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<T>
where
    T: for<'r> tokio_postgres::types::FromSql<'r>,
{
    cx.conn
        .query_one(sql, params)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| super::conn::pg_err(e, "running a preflight check"))
}
