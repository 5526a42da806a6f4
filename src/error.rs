//! One error type for the library, and the exit code each kind maps to.
//!
//! Exit codes are part of godwit's contract with scripts: they are documented in the
//! README and never reused for a different meaning.

use std::fmt;

/// What went wrong, at the granularity a script may want to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad command-line input (flag values, URL, --alter text we refuse before the server).
    BadInput,
    /// The server cannot be reached.
    Unreachable,
    /// The server refused the credentials.
    Authentication,
    /// The table does not exist.
    TableMissing,
    /// A server setting prevents an online migration (binlog, wal_level, ...).
    ServerSettings,
    /// The user lacks a privilege the migration needs.
    Privileges,
    /// The table has no primary key or non-null unique key.
    NoKey,
    /// The ALTER leaves no unique key shared by the old and new table.
    NoSharedKey,
    /// Foreign keys on or to the table.
    ForeignKeys,
    /// Triggers on the table.
    Triggers,
    /// The server rejected the ALTER.
    InvalidAlter,
    /// Objects left from an earlier run.
    Leftovers,
    /// The table or its key uses something godwit does not support (yet).
    Unsupported,
    /// The server has no free replication slot (PostgreSQL).
    ReplicationSlots,
    /// Stopped by the user (signal).
    Aborted,
    /// Stopped because a --critical-load threshold was crossed.
    CriticalLoad,
    /// The cut-over could not take its locks within the retries; original intact.
    CutOverFailed,
    /// Existing or concurrent data does not fit the new schema.
    DataError,
    /// The original table's schema changed during the migration.
    SourceChanged,
    /// A phase or migration file problem (expand/contract).
    Migration,
    /// A plan found risks at or above --fail-on.
    PlanRisk,
    /// The tables were swapped (the migration succeeded), but a later step failed: what
    /// is left is named in the message, `godwit cleanup` removes it.
    SwappedCleanupIncomplete,
    /// Verification found rows that differ between the original and the new table and
    /// repairing them did not help (the run stops before the swap; the original is
    /// unchanged), or `godwit verify` found the two tables different.
    VerifyMismatch,
    /// A checkpoint of an earlier run stands in the way (a different change, `--resume`
    /// without one, or one that can no longer be resumed): `--restart` discards it.
    Checkpoint,
    /// The change cannot be reverted without losing data: `--revert-window` with an
    /// ALTER whose reverse mapping is lossy (refused before the copy), or a write during
    /// the revert window that the old table cannot hold (the window closed).
    RevertImpossible,
    /// Anything else: a bug or an unexpected server error.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind. Stable; documented in README.md.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Unreachable => 10,
            ErrorKind::Authentication => 11,
            ErrorKind::TableMissing => 12,
            ErrorKind::ServerSettings => 13,
            ErrorKind::Privileges => 14,
            ErrorKind::NoKey => 15,
            ErrorKind::NoSharedKey => 16,
            ErrorKind::ForeignKeys => 17,
            ErrorKind::Triggers => 18,
            ErrorKind::InvalidAlter => 19,
            ErrorKind::Leftovers => 20,
            ErrorKind::Unsupported => 21,
            ErrorKind::ReplicationSlots => 22,
            ErrorKind::Aborted => 30,
            ErrorKind::CriticalLoad => 31,
            ErrorKind::CutOverFailed => 32,
            ErrorKind::DataError => 33,
            ErrorKind::SourceChanged => 34,
            ErrorKind::SwappedCleanupIncomplete => 35,
            ErrorKind::VerifyMismatch => 36,
            ErrorKind::Checkpoint => 37,
            ErrorKind::RevertImpossible => 38,
            ErrorKind::Migration => 40,
            ErrorKind::PlanRisk => 41,
        }
    }
}

/// The hint for [`ErrorKind::Unreachable`].
pub const UNREACHABLE_HINT: &str = "check host and port in --url and that the server is running (it may be restarting or failing over), then run godwit again";

/// The server's own code for an error: decisions match on it, never on message text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ServerCode {
    /// A MySQL/MariaDB error number.
    Mysql(u16),
    /// A PostgreSQL SQLSTATE.
    Postgres(String),
}

impl fmt::Display for ServerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerCode::Mysql(n) => write!(f, "{n}"),
            ServerCode::Postgres(s) => f.write_str(s),
        }
    }
}

/// A library error: what happened, and what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// How to fix it, when there is something to say.
    pub hint: Option<String>,
    /// The server's error code, when the server reported the error.
    pub code: Option<ServerCode>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  fix: {h}")?;
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the server refused a row for a duplicate value of a unique key
    /// (MySQL/MariaDB 1062, PostgreSQL 23505).
    pub fn is_unique_violation(&self) -> bool {
        matches!(&self.code, Some(ServerCode::Mysql(1062)))
            || matches!(&self.code, Some(ServerCode::Postgres(s)) if s == "23505")
    }

    /// True when the server rolled this transaction back to resolve a conflict with
    /// another one, so that running it again may succeed: a deadlock's victim (MySQL
    /// 1213, PostgreSQL 40P01) or a serialization failure (40001). A lock not granted in
    /// time is not one: that wait is bounded by the user's own timeout.
    pub fn is_conflict_victim(&self) -> bool {
        match &self.code {
            Some(ServerCode::Mysql(c)) => *c == 1213,
            Some(ServerCode::Postgres(s)) => matches!(s.as_str(), "40P01" | "40001"),
            None => false,
        }
    }

    /// True when a lock was not granted within the time allowed (MySQL 1205, or 3572 for
    /// `NOWAIT`; PostgreSQL 55P03).
    pub fn is_lock_not_granted(&self) -> bool {
        match &self.code {
            Some(ServerCode::Mysql(c)) => matches!(c, 1205 | 3572),
            Some(ServerCode::Postgres(s)) => s == "55P03",
            None => false,
        }
    }

    /// True when the server answered with this PostgreSQL SQLSTATE.
    pub fn is_sqlstate(&self, state: &str) -> bool {
        matches!(&self.code, Some(ServerCode::Postgres(s)) if s == state)
    }

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            code: None,
        }
    }
    pub fn with_code(mut self, code: ServerCode) -> Self {
        self.code = Some(code);
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadInput, message)
    }
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(format!("I/O error: {e}"))
    }
}
