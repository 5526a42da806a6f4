use super::{Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Partitioned tables and partitions are refused for now: the swap would have to
/// re-attach partitions and the publication would need publish_via_partition_root.
pub struct Partitioned;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Partitioned {
    fn name(&self) -> &'static str {
        "partitioning"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let t = format!("{}.{}", cx.info.schema, cx.info.name);
        if cx.info.kind == 'p' {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("table {t} is partitioned; godwit does not migrate partitioned tables yet"),
            )
            .with_hint("use a native ALTER TABLE (many changes are metadata-only on partitioned tables), or migrate each partition's data with a new partitioned table"));
        }
        if cx.info.is_partition {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("table {t} is a partition; godwit does not migrate partitions (the swap would detach it)"),
            )
            .with_hint("alter the partitioned parent table instead"));
        }
        if cx.info.kind != 'r' {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{t} is not an ordinary table (relkind '{}')", cx.info.kind),
            ));
        }
        Ok(())
    }
}
