use super::{one, Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Logical decoding needs `wal_level = logical`.
pub struct WalLevel;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for WalLevel {
    fn name(&self) -> &'static str {
        "wal_level"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let level: String = one(cx, "SELECT current_setting('wal_level')", &[]).await?;
        if level == "logical" {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ServerSettings,
            format!("wal_level is '{level}'; godwit follows changes by logical decoding, which needs wal_level = logical"),
        )
        .with_hint("run ALTER SYSTEM SET wal_level = logical; then restart the server (a reload is not enough)"))
    }
}
