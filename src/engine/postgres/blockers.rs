//! Who holds a lock on the table that the cut-over's `ACCESS EXCLUSIVE` lock waits for
//! (docs/how-it-works.md, "Blocked cut-overs"): every granted lock on the relation
//! (`pg_locks`) of a session other than godwit's (sessions named `godwit …`), with what
//! `pg_stat_activity` says of it. Any granted lock conflicts with `ACCESS EXCLUSIVE`, so
//! the list is exact. `--kill-blockers` ends them with `pg_terminate_backend`.

use super::conn::{self, pg_err};
use super::PgEngine;
use crate::engine::Blocker;
use crate::error::{Error, ErrorKind, Result};

/// Parameter: the table, quoted and qualified. Columns: pid, user, client address, age
/// in seconds (of the transaction, else of the statement), state, statement, start of
/// the transaction.
const BLOCKERS: &str = "SELECT a.pid, COALESCE(a.usename::text, ''), host(a.client_addr), \
    GREATEST(0, EXTRACT(epoch FROM clock_timestamp() - COALESCE(a.xact_start, a.query_start, a.backend_start)))::float8, \
    COALESCE(a.state, ''), left(a.query, 200), COALESCE(a.xact_start::text, '') \
    FROM pg_stat_activity a \
    WHERE a.pid <> pg_backend_pid() AND COALESCE(a.application_name, '') NOT LIKE 'godwit %' \
    AND a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'relation' AND l.granted AND l.relation = $1::text::regclass) \
    ORDER BY a.pid";

impl PgEngine {
    pub(super) async fn blockers(&self) -> Result<Vec<Blocker>> {
        let c = conn::connect(&self.target, "blockers").await?;
        let rows = c
            .query(BLOCKERS, &[&self.orig_q()])
            .await
            .map_err(|e| pg_err(e, "reading the sessions that block the cut-over"))?;
        let mut out = Vec::new();
        for r in rows {
            let get = |e| pg_err(e, "reading the sessions that block the cut-over");
            let pid: i32 = r.try_get(0).map_err(get)?;
            let age: f64 = r.try_get(3).map_err(get)?;
            out.push(Blocker {
                id: pid as u64,
                user: r.try_get(1).map_err(get)?,
                host: r.try_get(2).map_err(get)?,
                age_seconds: age as u64,
                state: r.try_get(4).map_err(get)?,
                query: r.try_get(5).map_err(get)?,
                exact: true,
                since: r.try_get(6).map_err(get)?,
            });
        }
        Ok(out)
    }

    pub(super) async fn kill(&self, id: u64) -> Result<()> {
        let pid = i32::try_from(id).map_err(|_| Error::internal("not a backend pid"))?;
        let c = conn::connect(&self.target, "blockers").await?;
        let ended: bool = c
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, &format!("ending session {id}")))?;
        if !ended {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("session {id} could not be ended (gone already, or not allowed)"),
            ));
        }
        Ok(())
    }
}
