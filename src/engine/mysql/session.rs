//! Every MySQL/MariaDB connection godwit opens is built here: the connection options
//! from the target, the session settings of each kind of session, and one way to
//! connect (a bounded wait, driver errors mapped, the password scrubbed from messages).
//!
//! The kinds differ on purpose:
//! - [`SessionKind::Online`] (the online ALTER, the planner's facts): UTC, so TIMESTAMP
//!   keys bind exactly; strict mode, so a value that does not fit fails instead of
//!   being cut; `NO_AUTO_VALUE_ON_ZERO`, so a copied row with id 0 keeps it.
//! - [`SessionKind::Phases`]: the phases create triggers, which keep the `sql_mode` of
//!   the session that created them, and backfill with the application's expressions,
//!   which must see the server's own time zone as the application does: strict mode
//!   only, the server's time zone, READ COMMITTED (backfill batches take record locks
//!   only and skip the application's uncommitted rows: no deadlock with its inserts),
//!   and the lock waits bounded by `--lock-timeout`.

use super::conn_err;
use crate::error::{Error, ErrorKind, Result};
use crate::target::Target;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::time::Duration;

/// What a session is for (see the module's documentation).
pub(crate) enum SessionKind {
    Online,
    Phases { lock_timeout: Duration },
}

impl SessionKind {
    fn setup(&self) -> Vec<String> {
        match self {
            SessionKind::Online => vec![
                "SET SESSION time_zone = '+00:00'".into(),
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'".into(),
            ],
            SessionKind::Phases { lock_timeout } => {
                let secs = lock_timeout.as_secs().max(1);
                vec![
                    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'".into(),
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".into(),
                    format!("SET SESSION lock_wait_timeout = {secs}"),
                    format!("SET SESSION innodb_lock_wait_timeout = {secs}"),
                ]
            }
        }
    }
}

/// The connection options for `target` with the settings of `kind` (TCP only: a
/// loopback host never silently becomes a local socket of another server).
pub(crate) fn options(target: &Target, kind: SessionKind) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(target.host.clone())
        .tcp_port(target.port)
        .user(Some(target.user.clone()))
        .pass(target.password().map(str::to_string))
        .db_name(Some(target.database.clone()))
        .prefer_socket(false)
        .setup(kind.setup())
}

/// Connect with `opts`, waiting at most 15 s; errors name `target` without its password.
pub(crate) async fn connect(target: &Target, opts: impl Into<Opts>) -> Result<Conn> {
    tokio::time::timeout(Duration::from_secs(15), Conn::new(opts.into()))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Unreachable,
                format!("no answer from {target} within 15 s"),
            )
            .with_hint("check host and port in --url, and that the server is running")
        })?
        .map_err(|e| {
            let e = conn_err(e, &format!("connecting to {target}"));
            Error {
                message: target.scrub(&e.message),
                ..e
            }
        })
}
