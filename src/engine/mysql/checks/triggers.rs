use super::{Check, CheckCtx};
use crate::engine::mysql::conn_err;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use mysql_async::prelude::*;

/// Triggers stay with the old table at the swap; the new table would run without them.
pub struct Triggers;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Triggers {
    fn name(&self) -> &'static str {
        "triggers"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let names: Vec<String> = cx
            .conn
            .exec(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
                (cx.db, cx.table),
            )
            .await
            .map_err(|e| conn_err(e, "reading triggers"))?;
        if !names.is_empty() {
            return Err(Error::new(
                ErrorKind::Triggers,
                format!(
                    "table `{}` has trigger(s) {}; they would stay on the old table at the swap",
                    cx.table,
                    names.join(", ")
                ),
            )
            .with_hint(
                "drop the triggers for the migration and re-create them on the new table after it",
            ));
        }
        Ok(())
    }
}
