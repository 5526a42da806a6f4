use super::{Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Rows are found again by key: the table needs a primary key or a NOT NULL unique key.
pub struct UsableKey;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for UsableKey {
    fn name(&self) -> &'static str {
        "usable key"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        if cx.orig.unique_keys.iter().any(|k| k.usable()) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NoKey,
            format!("table `{}` has no primary key and no unique key on NOT NULL columns", cx.table),
        )
        .with_hint("add a primary key (or a unique key on NOT NULL columns) first; godwit needs it to find rows again"))
    }
}
