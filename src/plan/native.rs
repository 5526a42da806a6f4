//! `godwit run --attempt-native`: run an instant / catalog-only change on the server
//! directly, with the safe clause and a lock wait timeout, instead of copying the table.

//! The statement comes from [`PlanEngine::native_statement`].

use super::PlanEngine;
use crate::error::Result;
use crate::target::Target;

/// Run `stmt` waiting at most `lock_wait_secs` for the table's lock.
pub async fn execute(
    engine: &dyn PlanEngine,
    target: &Target,
    stmt: &str,
    lock_wait_secs: u64,
) -> Result<()> {
    let mut s = engine.open(target, true).await?;
    let r = s.execute_native(stmt, lock_wait_secs).await;
    s.close().await;
    r
}
