//! `godwit run --attempt-native`: run an instant / catalog-only change on the server
//! directly, with the safe clause and a lock wait timeout, instead of copying the table.

use super::Plan;
use crate::error::Result;
use crate::target::Target;

/// The native statement for a plan whose change is instant (MySQL/MariaDB
/// `ALGORITHM=INSTANT`) or catalog-only (PostgreSQL: no rewrite, no scan); `None`
/// otherwise.
pub fn native_statement(p: &Plan) -> Option<String> {
    crate::engine::by_kind(p.engine).planner.native_statement(p)
}

/// Run `stmt` waiting at most `lock_wait_secs` for the table's lock.
pub async fn execute(target: &Target, stmt: &str, lock_wait_secs: u64) -> Result<()> {
    let mut s = crate::engine::by_kind(target.kind)
        .planner
        .open(target, true)
        .await?;
    let r = s.execute_native(stmt, lock_wait_secs).await;
    s.close().await;
    r
}
