use super::{Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Rows are found again by key, and the change stream names rows by their replica
/// identity: the table needs a primary key (or a usable REPLICA IDENTITY). Without one,
/// adding the table to a publication would also make the application's UPDATE and
/// DELETE fail.
pub struct ReplicaIdentity;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for ReplicaIdentity {
    fn name(&self) -> &'static str {
        "usable key and replica identity"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let t = format!("{}.{}", cx.info.schema, cx.info.name);
        if !cx.orig.unique_keys.iter().any(|k| k.usable()) {
            return Err(Error::new(
                ErrorKind::NoKey,
                format!("table {t} has no primary key and no unique key on NOT NULL columns"),
            )
            .with_hint("add a primary key first; godwit needs it to find rows again"));
        }
        let ok = match cx.info.replica_identity {
            'f' => true,
            'd' | 'i' => !cx.info.identity_columns.is_empty(),
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let what = match cx.info.replica_identity {
            'n' => "REPLICA IDENTITY NOTHING".to_string(),
            'd' => "no primary key (REPLICA IDENTITY DEFAULT)".to_string(),
            other => format!("replica identity '{other}'"),
        };
        Err(Error::new(
            ErrorKind::NoKey,
            format!("table {t} has {what}: the change stream cannot name the rows that change"),
        )
        .with_hint(format!(
            "add a primary key, or ALTER TABLE {t} REPLICA IDENTITY USING INDEX <unique index on NOT NULL columns>"
        )))
    }
}
