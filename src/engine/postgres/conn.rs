//! Connections and driver errors.

use super::sql::{qualified, RELATION_EXISTS, SESSION_OPTIONS};
use crate::error::{Error, ErrorKind, Result, ServerCode, UNREACHABLE_HINT};
use crate::target::Target;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Map a driver error to a godwit error. Server errors keep the server's text and code.
pub fn pg_err(e: tokio_postgres::Error, what: &str) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().clone();
        // Class 08 (connection exception) and 57P01-57P05 (admin or crash shutdown,
        // cannot connect now, database dropped, idle session timeout): the server is
        // going away or dropped this session.
        let going_away = code.code().starts_with("08")
            || matches!(code.code(), "57P01" | "57P02" | "57P03" | "57P04" | "57P05");
        let kind = if going_away {
            ErrorKind::Unreachable
        } else if code == SqlState::INVALID_PASSWORD
            || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ErrorKind::Authentication
        } else if code == SqlState::INSUFFICIENT_PRIVILEGE {
            ErrorKind::Privileges
        } else if code == SqlState::UNDEFINED_TABLE || code == SqlState::INVALID_CATALOG_NAME {
            ErrorKind::TableMissing
        } else if code == SqlState::LOCK_NOT_AVAILABLE || code == SqlState::T_R_DEADLOCK_DETECTED {
            ErrorKind::CutOverFailed
        } else if code == SqlState::UNIQUE_VIOLATION
            || code == SqlState::NOT_NULL_VIOLATION
            || code == SqlState::CHECK_VIOLATION
            || code == SqlState::FOREIGN_KEY_VIOLATION
            || code == SqlState::EXCLUSION_VIOLATION
            || code.code().starts_with("22")
        {
            ErrorKind::DataError
        } else {
            ErrorKind::Internal
        };
        let mut msg = format!("{what}: {} (SQLSTATE {})", db.message(), code.code());
        if let Some(d) = db.detail() {
            msg.push_str(&format!("; {d}"));
        }
        let err = Error::new(kind, msg).with_code(ServerCode::Postgres(code.code().to_string()));
        return match kind {
            ErrorKind::Unreachable => err.with_hint(UNREACHABLE_HINT),
            ErrorKind::Authentication => err.with_hint(
                "check the user in --url and the password (PGPASSWORD, ~/.pgpass, --password-file or the URL)",
            ),
            ErrorKind::Privileges => err.with_hint(
                "the migration user needs REPLICATION (or superuser) and must own the table; see docs/postgres.md",
            ),
            ErrorKind::DataError => err.with_hint(
                "the existing or concurrently written data does not fit the new table; fix the data or the ALTER. The original table is unchanged",
            ),
            _ => err,
        };
    }
    // No server error: the connection itself failed (closed, I/O, connect, timeout).
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io || e.to_string().contains("connect") {
        return Error::new(
            ErrorKind::Unreachable,
            format!("{what}: cannot reach the server: {e}"),
        )
        .with_hint(UNREACHABLE_HINT);
    }
    Error::internal(format!("{what}: {e}"))
}

/// Open one session with godwit's pinned settings.
pub async fn connect(target: &Target, purpose: &str) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.database)
        .application_name(format!("godwit {purpose}"))
        .options(SESSION_OPTIONS)
        .connect_timeout(Duration::from_secs(15));
    if let Some(p) = target.password() {
        cfg.password(p);
    }
    if target
        .params
        .iter()
        .any(|(k, v)| k == "sslmode" && (v == "require" || v.starts_with("verify")))
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "TLS connections to PostgreSQL are not supported by this build",
        )
        .with_hint("connect over a trusted network or a local tunnel, without sslmode=require"));
    }
    let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
        let e = pg_err(e, &format!("connecting to {target}"));
        Error {
            message: target.scrub(&e.message),
            ..e
        }
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection closed: {e}");
        }
    });
    Ok(client)
}

/// Run one statement without parameters, through the extended protocol: the server
/// refuses a text that holds a second statement, so nothing but the one intended
/// statement can run, whatever user text it carries (docs/architecture.md, "User text").
/// Whether a table, index or other relation `schema.name` exists.
pub async fn relation_exists(c: &Client, schema: &str, name: &str) -> Result<bool> {
    c.query_one(RELATION_EXISTS, &[&qualified(schema, name)])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg_err(e, "looking up a name"))
}

pub async fn batch(c: &Client, sql: &str, what: &str) -> Result<()> {
    tracing::trace!(sql, "exec");
    c.execute(sql, &[])
        .await
        .map(|_| ())
        .map_err(|e| pg_err(e, what))
}
