use super::{one, Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// A FOR ALL TABLES publication would publish the shadow table to its subscribers.
pub struct AllTablesPublication;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for AllTablesPublication {
    fn name(&self) -> &'static str {
        "FOR ALL TABLES publications"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let names: Option<String> = one(
            cx,
            "SELECT string_agg(pubname::text, ', ') FROM pg_publication WHERE puballtables",
            &[],
        )
        .await?;
        match names {
            None => Ok(()),
            Some(n) => Err(Error::new(
                ErrorKind::Unsupported,
                format!("publication(s) {n} are FOR ALL TABLES: they would replicate godwit's shadow table to their subscribers"),
            )
            .with_hint("change them to list their tables (ALTER PUBLICATION ... SET TABLE ...), or use a native ALTER TABLE")),
        }
    }
}
