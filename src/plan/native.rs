//! `godwit run --attempt-native`: run an instant / catalog-only change on the server
//! directly, with the safe clause and a lock wait timeout, instead of copying the table.

use super::{Algorithm, Plan};
use crate::error::Result;
use crate::target::{EngineKind, Target};

/// The native statement for a plan whose change is instant (MySQL/MariaDB
/// `ALGORITHM=INSTANT`) or catalog-only (PostgreSQL: no rewrite, no scan); `None`
/// otherwise.
pub fn native_statement(p: &Plan) -> Option<String> {
    let clauses = p
        .changes
        .iter()
        .map(|c| c.clause.clone())
        .collect::<Vec<_>>()
        .join(", ");
    match p.engine {
        EngineKind::Mysql => {
            if p.overall.algorithm != Some(Algorithm::Instant) {
                return None;
            }
            let q = crate::engine::mysql::sql::qualified(&p.facts.schema, &p.facts.table);
            Some(format!("ALTER TABLE {q} {clauses}, ALGORITHM=INSTANT"))
        }
        EngineKind::Postgres => {
            let catalog_only = !p.overall.rewrite && !p.overall.scan;
            let is_alter = p
                .changes
                .iter()
                .all(|c| !c.clause.to_uppercase().starts_with("CREATE"));
            if !catalog_only || !is_alter {
                return None;
            }
            let q = crate::engine::postgres::sql::qualified(&p.facts.schema, &p.facts.table);
            Some(format!("ALTER TABLE {q} {clauses}"))
        }
    }
}

/// Run `stmt` waiting at most `lock_wait_secs` for the table's lock.
pub async fn execute(target: &Target, stmt: &str, lock_wait_secs: u64) -> Result<()> {
    match target.kind {
        EngineKind::Mysql => {
            let mut s = crate::engine::mysql::facts::Session::connect_writable(target).await?;
            let r = s.execute_native(stmt, lock_wait_secs).await;
            s.close().await;
            r
        }
        EngineKind::Postgres => {
            let mut s = crate::engine::postgres::facts::Session::connect_writable(target).await?;
            s.execute_native(stmt, lock_wait_secs).await
        }
    }
}
