use super::{Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Unlogged and temporary tables write no WAL, so logical decoding never sees their
/// changes.
pub struct Persistence;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Persistence {
    fn name(&self) -> &'static str {
        "logged table"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let t = format!("{}.{}", cx.info.schema, cx.info.name);
        let what = match cx.info.persistence {
            'u' => "unlogged",
            't' => "temporary",
            _ => return Ok(()),
        };
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "table {t} is {what}: its changes are not in the WAL, so godwit cannot follow them"
            ),
        )
        .with_hint(if what == "unlogged" {
            "use a native ALTER TABLE, or ALTER TABLE ... SET LOGGED first"
        } else {
            "alter temporary tables in place with ALTER TABLE"
        }))
    }
}
