use super::{Check, CheckCtx};
use crate::engine::mysql::cutover;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// The sentry cut-over names its tables `<table>_godwit_cut` / `<table>_godwit_new`, which
/// must fit MySQL's 64 characters: say so now, not after hours of copying.
pub struct NameLength;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for NameLength {
    fn name(&self) -> &'static str {
        "table name length"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        if !cx.engine.uses_sentry() || cutover::sentry_name(cx.table).is_some() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "table name `{}` has {} characters; the cut-over on this server needs at most 52",
                cx.table,
                cx.table.chars().count()
            ),
        )
        .with_hint("rename the table to a shorter name first (RENAME TABLE is instant)"))
    }
}
