use super::{Check, CheckCtx};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// A shadow or sentry from an earlier run means that run may still be going, or died.
pub struct Leftovers;

pub const NAME: &str = "leftovers";

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Leftovers {
    fn name(&self) -> &'static str {
        NAME
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let found = cx.engine.leftovers().await?;
        if found.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Leftovers,
            format!("found objects of an earlier godwit run on `{}`: {}", cx.table, found.join(", ")),
        )
        .with_hint(format!(
            "if no other godwit run is migrating this table, remove them with: godwit cleanup --url <URL> --table {}",
            cx.table
        )))
    }
}
