use super::{one, Check, CheckCtx};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;

/// Slots need REPLICATION (or superuser); a publication for one table needs ownership of
/// the table and CREATE on the database.
pub struct Privileges;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Privileges {
    fn name(&self) -> &'static str {
        "privileges"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let (superuser, replication): (bool, bool) = {
            let r = cx
                .conn
                .query_one(
                    "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user",
                    &[],
                )
                .await
                .map_err(|e| {
                    crate::engine::postgres::conn::pg_err(e, "reading the user's attributes")
                })?;
            (
                r.try_get(0).map_err(|e| {
                    crate::engine::postgres::conn::pg_err(e, "reading the user's attributes")
                })?,
                r.try_get(1).map_err(|e| {
                    crate::engine::postgres::conn::pg_err(e, "reading the user's attributes")
                })?,
            )
        };
        if superuser {
            return Ok(());
        }
        let user: String = one(cx, "SELECT current_user::text", &[]).await?;
        if !replication {
            return Err(Error::new(
                ErrorKind::Privileges,
                format!("user {user} has neither the REPLICATION attribute nor superuser; godwit needs a logical replication slot"),
            )
            .with_hint(format!("ALTER ROLE \"{user}\" REPLICATION;")));
        }
        let owner: bool = one(
            cx,
            "SELECT pg_has_role(current_user, $1::text, 'USAGE')",
            &[&cx.info.owner],
        )
        .await?;
        if !owner {
            return Err(Error::new(
                ErrorKind::Privileges,
                format!(
                    "user {user} does not own table {}.{} (owner: {}); a publication for one table and the table swap need ownership",
                    cx.info.schema, cx.info.name, cx.info.owner
                ),
            )
            .with_hint(format!("GRANT \"{}\" TO \"{user}\"; or run godwit as the owner", cx.info.owner)));
        }
        let create: bool = one(
            cx,
            "SELECT has_database_privilege(current_database(), 'CREATE')",
            &[],
        )
        .await?;
        if !create {
            return Err(Error::new(
                ErrorKind::Privileges,
                format!("user {user} lacks CREATE on the database (needed for the publication)"),
            )
            .with_hint(format!("GRANT CREATE ON DATABASE <db> TO \"{user}\";")));
        }
        Ok(())
    }
}
