use super::{Check, CheckCtx};
use crate::engine::mysql::conn_err;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use mysql_async::prelude::*;

/// Foreign keys on or to the table would point at the old table after the swap.
pub struct ForeignKeys;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for ForeignKeys {
    fn name(&self) -> &'static str {
        "foreign keys"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let rows: Vec<(String, String, String, String)> = cx
            .conn
            .exec(
                "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, CONSTRAINT_SCHEMA FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)",
                (cx.db, cx.table, cx.db, cx.table),
            )
            .await
            .map_err(|e| conn_err(e, "reading foreign keys"))?;
        if let Some((name, child, parent, schema)) = rows.first() {
            let dir = if child == cx.table {
                format!("`{child}` has foreign key `{name}` to `{parent}`")
            } else {
                format!("`{schema}`.`{child}` has foreign key `{name}` referencing `{parent}`")
            };
            return Err(Error::new(
                ErrorKind::ForeignKeys,
                format!("{dir}; after the swap it would point at the old table ({} foreign key(s) in all)", rows.len()),
            )
            .with_hint("drop the foreign keys for the migration and add them back after it, or run the ALTER natively"));
        }
        Ok(())
    }
}
