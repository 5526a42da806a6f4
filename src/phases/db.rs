//! One connection for a phase command: statements, the catalog, the runner lock.
//!
//! [`PhaseDb`] is what a phase needs from a connection; each engine implements it in
//! `engine/<name>/phases.rs` (with its [`Dialect`]), and its [`PhaseConnector`] opens it;
//! the command layer hands the connector in. What is spelled differently per engine is asked of the
//! dialect; the rest is written once here.

use super::dialect::Dialect;
pub use super::stmt::Param;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::Table;
use crate::target::Target;
use async_trait::async_trait;
use std::time::Duration;

/// A lock wait that ran out is a cut-over failure for `godwit run`; in a phase it means
/// another session held a row or the table longer than `--lock-timeout-seconds`.
pub fn relabel(e: Error) -> Error {
    if e.kind != ErrorKind::CutOverFailed {
        return e;
    }
    let mut relabelled = Error::new(ErrorKind::Migration, e.message).with_hint(
        "another session held a lock longer than --lock-timeout-seconds; run the phase again (a backfill resumes after its last finished batch), or raise the timeout",
    );
    // Kept: the phase commands name the sessions holding the lock (`cli/blockers.rs`).
    relabelled.code = e.code;
    relabelled
}

/// What a name in the current database / schema is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    View,
}

/// One row of a catalog or state query: every value as the server's text (NULL as
/// `None`), read through typed accessors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextRow(pub Vec<Option<String>>);

impl TextRow {
    /// The value of column `i`; `None` for NULL or a column the row does not have.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.0.get(i).and_then(|v| v.as_deref())
    }
    /// The value of column `i` as an owned string (`None` for NULL).
    pub fn opt(&self, i: usize) -> Option<String> {
        self.get(i).map(str::to_string)
    }
    /// The value of column `i`; NULL reads as the empty string.
    pub fn text(&self, i: usize) -> String {
        self.get(i).unwrap_or_default().to_string()
    }
    /// The value of column `i` as an integer (`None` for NULL or not a number).
    pub fn int(&self, i: usize) -> Option<i64> {
        self.get(i).and_then(|s| s.trim().parse().ok())
    }
    /// Column `i` as a boolean the catalog spells `1` or `true`.
    pub fn flag(&self, i: usize) -> bool {
        matches!(self.get(i), Some("1" | "true"))
    }
    /// Every value, NULL as the empty string.
    pub fn texts(&self) -> Vec<String> {
        (0..self.0.len()).map(|i| self.text(i)).collect()
    }
}

/// Rows of text values.
pub type Rows = Vec<TextRow>;

/// A phase command's connection to one engine.
#[async_trait]
pub trait PhaseDb: Send {
    /// How this engine spells the phases' statements.
    fn dialect(&self) -> &dyn Dialect;
    async fn exec(&mut self, sql: &str) -> Result<()>;
    /// Run with parameters; returns affected rows.
    async fn exec_params(&mut self, sql: &str, params: &[Param]) -> Result<u64>;
    /// Rows of text values (the query must select text; see [`Dialect::text`]).
    async fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows>;
    /// Current values of the load counters `names` (`--max-load`), read by the engine's
    /// own counter code; an unknown name is a `BadInput` error.
    async fn load_values(&mut self, names: &[String]) -> Result<Vec<f64>>;
    /// The table or view `name` in the current database / schema, read by the engine's
    /// one catalog reader; `None` when it does not exist.
    async fn read_table(&mut self, name: &str) -> Result<Option<Table>>;
    /// True when a locking read can skip rows other transactions hold (`FOR UPDATE SKIP
    /// LOCKED`): the backfill then never waits for a row while it holds others.
    fn skips_locked_rows(&self) -> bool {
        false
    }
    /// Statements that make row-lock waits fail at once inside a transaction (the first
    /// statement after `BEGIN`) and, if needed, one that restores the session after it;
    /// `None` where the server cannot refuse to wait.
    fn refuse_lock_waits(&self) -> Option<(String, Option<String>)> {
        None
    }
    /// Refuse a sync trigger the server cannot add next to the table's own triggers.
    async fn check_trigger_support(&mut self, _table: &str) -> Result<()> {
        Ok(())
    }
}

/// Opens a phase command's connection (one per engine; the command layer gets it from
/// `dispatch::by_kind`).
#[async_trait]
pub trait PhaseConnector: Send + Sync {
    /// Connect for a phase command; lock waits end after `lock_timeout`.
    async fn connect(&self, target: &Target, lock_timeout: Duration) -> Result<Db>;
    /// How the server reads SQL text: the migration files' fragments are checked with it
    /// before anything connects.
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules;
}

/// A phase command's connection.
pub type Db = Box<dyn PhaseDb>;

/// Where a phase command runs: the server, and the engine's connector for it.
#[derive(Clone, Copy)]
pub struct PhaseTarget<'a> {
    pub connector: &'static dyn PhaseConnector,
    pub target: &'a Target,
}

impl PhaseTarget<'_> {
    /// Connect; lock waits end after `lock_timeout`.
    pub async fn connect(&self, lock_timeout: Duration) -> Result<Db> {
        self.connector.connect(self.target, lock_timeout).await
    }
}

impl dyn PhaseDb {
    /// From here on the session refuses to write (`godwit plan`).
    pub async fn read_only(&mut self) -> Result<()> {
        let sql = self.dialect().read_only();
        self.exec(sql).await
    }

    /// Bind parameter `n` (1-based): `?` (MySQL) or `$n` (PostgreSQL).
    pub fn ph(&self, n: usize) -> String {
        self.dialect().placeholder(n)
    }

    /// The single-runner lock (session level). A second runner gets a clear error. A
    /// runner that has just exited may still hold it for a moment (the server drops a
    /// closed session's locks asynchronously), so a few short retries come first.
    pub async fn try_lock(&mut self) -> Result<()> {
        for _ in 0..20 {
            if self.try_lock_once().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::new(
            ErrorKind::Migration,
            "another godwit phase command is running against this database (runner lock held)",
        )
        .with_hint("wait for it to finish; only one runner at a time may change migrations"))
    }

    async fn try_lock_once(&mut self) -> Result<bool> {
        let (sql, params, taken) = self.dialect().runner_lock();
        let r = self.query(&sql, &params).await?;
        Ok(r.first().and_then(|r| r.get(0)) == Some(taken))
    }

    /// Is `name` a table, a view, or nothing, in the current database / schema?
    pub async fn relation_kind(&mut self, name: &str) -> Result<Option<RelKind>> {
        let sql = self.dialect().catalog().relation_kind;
        let r = self
            .query(sql, &[Param::Text(Some(name.to_string()))])
            .await?;
        Ok(match r.first().and_then(|r| r.get(0)) {
            Some("v") => Some(RelKind::View),
            Some(_) => Some(RelKind::Table),
            None => None,
        })
    }

    pub async fn table_exists(&mut self, table: &str) -> Result<bool> {
        Ok(self.relation_kind(table).await? == Some(RelKind::Table))
    }

    /// The table (or view) as the catalog describes it now; None if it does not exist.
    pub async fn table_info(&mut self, table: &str) -> Result<Option<Table>> {
        if self.relation_kind(table).await?.is_none() {
            return Ok(None);
        }
        self.read_table(table).await
    }
}

/// The first line of a statement, for error messages.
pub fn short(sql: &str) -> String {
    let l = sql.lines().next().unwrap_or_default();
    let l: String = l.chars().take(160).collect();
    format!("running `{l}`")
}
