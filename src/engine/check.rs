//! Preflight checks: one small unit per check (a file each, under each engine's
//! `checks/`), run in order; the first failure stops the run with its own error.

use crate::error::Result;
use async_trait::async_trait;

/// A check over an engine's context `C` (its connection, the table, …).
#[async_trait]
pub trait Check<C: Send>: Send + Sync {
    fn name(&self) -> &'static str;
    async fn run(&self, cx: &mut C) -> Result<()>;
}

/// Run `checks` in order; return the first failure.
pub async fn run_all<C: Send>(checks: Vec<Box<dyn Check<C>>>, cx: &mut C) -> Result<()> {
    for c in checks {
        tracing::debug!(check = c.name(), "preflight");
        c.run(cx).await?;
    }
    Ok(())
}
