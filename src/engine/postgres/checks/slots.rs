use super::{one, Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// The migration needs one replication slot.
pub struct FreeSlot;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for FreeSlot {
    fn name(&self) -> &'static str {
        "free replication slot"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let free: i64 = one(
            cx,
            "SELECT current_setting('max_replication_slots')::int8 - (SELECT count(*) FROM pg_replication_slots)",
            &[],
        )
        .await?;
        if free > 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ReplicationSlots,
            "no free replication slot: every slot allowed by max_replication_slots is in use",
        )
        .with_hint("drop an unused slot (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('name')) or raise max_replication_slots (needs a restart)"))
    }
}
