//! Dry-run planning (`godwit plan`): what an ALTER will lock, rewrite and cost, and how to
//! run it safely.
//!
//! The flow: read live facts from the server (read-only), parse the ALTER with sqlparser,
//! classify every clause per engine and version (the engine's [`PlanEngine`], in
//! `engine/<name>/classify.rs`), run bounded data checks the risk rules need, estimate the
//! online path ([`estimate`]), run the rules ([`rules`]) and recommend a way to run it.
//! Nothing on the server changes.
//!
//! This module names no engine: it reaches one only through the [`PlanEngine`] its caller
//! hands it (the command layer gets it from `dispatch::by_kind`), and the engines depend on
//! the types defined here, never the other way.

pub mod estimate;
pub mod native;
pub mod phases;
pub mod render;
pub mod rules;

use crate::error::Result;
pub use crate::schema::{Column, Index};
use crate::target::{EngineKind, Target};
use async_trait::async_trait;
use serde::Serialize;

/// What the planner needs from one engine: its read-only session, the classifier of its
/// ALTER clauses and of the statements phases run, and its recommendation. One
/// implementation per engine (`engine/<name>/planner.rs`).
#[async_trait]
pub trait PlanEngine: Send + Sync {
    /// Open a session on the server: read-only for `godwit plan`, writable for
    /// `godwit run --attempt-native`.
    async fn open(&self, target: &Target, writable: bool) -> Result<Box<dyn PlanSession>>;
    /// Checks on `--alter` made before connecting; returns the text
    /// [`PlanSession::classify`] takes.
    fn prepare(&self, alter: &str) -> Result<String>;
    /// How to run the ALTER, from its classification.
    fn recommend(
        &self,
        facts: &Facts,
        changes: &[Change],
        overall: &Change,
        clauses: &str,
        opts: &PlanOptions,
    ) -> Recommendation;
    /// The native statement for a plan whose change is instant / catalog-only; `None`
    /// otherwise (`godwit run --attempt-native`).
    fn native_statement(&self, p: &Plan) -> Option<String>;
    /// Classify one statement a phase runs (see [`phases`]). `cx` carries what earlier
    /// statements of the phase changed.
    fn classify_statement(
        &self,
        stmt: &crate::phases::ops::Stmt,
        facts: Option<&Facts>,
        cx: &mut phases::StatementContext,
    ) -> phases::StatementClass;
    /// DDL is transactional: a phase's statements (but concurrent and guarded ones) run
    /// in one transaction.
    fn transactional_ddl(&self) -> bool;
    /// The locks a backfill batch takes.
    fn backfill_lock(&self) -> &'static str;
    /// A classified change as the plan's text output shows it.
    fn change_label(&self, c: &Change) -> String;
    /// The log replicas apply (binary log / WAL) carries the index changes too.
    fn log_carries_indexes(&self) -> bool;
    /// Run natively, the ALTER `all` replays serially on replicas after it ran there.
    fn native_replays_serially(&self, all: &Change) -> bool;
    /// A constraint can be added `NOT VALID` and validated later while writes go on.
    fn validates_constraints_later(&self) -> bool;
    /// How the server reads SQL text (the lexer of `--alter`).
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules;
}

/// The ALTER classified: every clause, the ALTER as a whole, and its clauses as text for
/// the recommended statements.
pub struct Classified {
    pub changes: Vec<Change>,
    pub overall: Change,
    pub clauses: String,
}

/// A session on the server for the planner.
#[async_trait]
pub trait PlanSession: Send {
    /// The table's facts.
    async fn facts(&mut self, table: &str, o: &PlanOptions) -> Result<Facts>;
    /// Classify the ALTER (as [`PlanEngine::prepare`] returned it) against `facts`.
    async fn classify(&mut self, table: &str, alter: &str, facts: &Facts) -> Result<Classified>;
    /// Bounded data checks: each reads at most `limit` rows.
    async fn probes(
        &mut self,
        facts: &Facts,
        probes: &[DataProbe],
        limit: u64,
    ) -> Result<Vec<ProbeResult>>;
    /// Run `stmt` waiting at most `lock_wait_secs` for the table's lock.
    async fn execute_native(&mut self, stmt: &str, lock_wait_secs: u64) -> Result<()>;
    /// Close the session.
    async fn close(self: Box<Self>);
}

/// Thresholds and limits from the command line.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// A table with at least this many rows is large.
    pub large_table_rows: u64,
    /// A table with at least this many bytes (data + indexes) is large.
    pub large_table_bytes: u64,
    /// A transaction open longer than this blocks a cut-over.
    pub long_trx_seconds: u64,
    /// Data checks read at most this many rows.
    pub check_rows: u64,
    /// Rows read by the copy-speed sample.
    pub sample_rows: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            large_table_rows: 1_000_000,
            large_table_bytes: 1 << 30,
            long_trx_seconds: 60,
            check_rows: 1_000_000,
            sample_rows: 10_000,
        }
    }
}

/// A transaction that has been open for a while.
#[derive(Debug, Clone, Serialize)]
pub struct LongTransaction {
    pub id: String,
    pub seconds: u64,
    pub state: String,
}

/// A timed, read-only sample of the table in key order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub rows: u64,
    pub millis: u64,
}

/// What the server told us, read-only: the table's columns and indexes as the engine's
/// one catalog reader reports them (the table model of [`crate::schema`]), and what the
/// server and the session add.
#[derive(Debug, Clone)]
pub struct Facts {
    pub engine: EngineKind,
    /// Version string as the server reports it.
    pub server_version: String,
    pub version: (u32, u32, u32),
    pub mariadb: bool,
    pub schema: String,
    pub table: String,
    pub row_estimate: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
    pub avg_row_bytes: u64,
    pub columns: Vec<Column>,
    /// Every index, in the order the engine reports them.
    pub indexes: Vec<Index>,
    /// PostgreSQL: columns a valid `CHECK (col IS NOT NULL)` proves non-null.
    pub proven_not_null: Vec<String>,
    /// MySQL: ROW_FORMAT; PostgreSQL: persistence.
    pub row_format: Option<String>,
    /// Free space on the table's file system, when the server exposes it.
    pub free_bytes: Option<u64>,
    /// Replicas the server reports (None: not visible with these privileges).
    pub replicas: Option<u32>,
    pub long_transactions: Vec<LongTransaction>,
    /// Settings that change the classification or the cost.
    pub settings: Vec<(String, String)>,
    pub sample: Option<Sample>,
    /// MySQL/MariaDB: what the character set and table option rules need.
    pub mysql: MysqlFacts,
    /// PostgreSQL: the session the ALTER would run in.
    pub pg: PgFacts,
}

/// `Facts` as the plan's JSON shows them (a column's `indexed` and `prefix_indexed`
/// come from the indexes; an index lists its key columns, then its included ones).
#[derive(Serialize)]
struct FactsJson<'a> {
    engine: EngineKind,
    server_version: &'a str,
    schema: &'a str,
    table: &'a str,
    row_estimate: u64,
    data_bytes: u64,
    index_bytes: u64,
    avg_row_bytes: u64,
    columns: Vec<ColumnJson<'a>>,
    indexes: Vec<IndexJson<'a>>,
    row_format: &'a Option<String>,
    free_bytes: Option<u64>,
    replicas: Option<u32>,
    long_transactions: &'a [LongTransaction],
    settings: &'a [(String, String)],
    sample: Option<Sample>,
}

#[derive(Serialize)]
struct ColumnJson<'a> {
    name: &'a str,
    column_type: &'a str,
    data_type: &'a str,
    nullable: bool,
    charset: &'a Option<String>,
    indexed: bool,
    generated: bool,
    collation: &'a Option<String>,
    prefix_indexed: bool,
    auto_increment: bool,
    virtual_column: bool,
}

#[derive(Serialize)]
struct IndexJson<'a> {
    name: &'a str,
    columns: Vec<&'a str>,
    unique: bool,
    primary: bool,
    kind: &'a str,
}

impl Serialize for Facts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        FactsJson {
            engine: self.engine,
            server_version: &self.server_version,
            schema: &self.schema,
            table: &self.table,
            row_estimate: self.row_estimate,
            data_bytes: self.data_bytes,
            index_bytes: self.index_bytes,
            avg_row_bytes: self.avg_row_bytes,
            columns: self
                .columns
                .iter()
                .map(|c| ColumnJson {
                    name: &c.name,
                    column_type: &c.column_type,
                    data_type: &c.data_type,
                    nullable: c.nullable,
                    charset: &c.charset,
                    indexed: self.indexed(&c.name),
                    generated: c.generated,
                    collation: &c.collation,
                    prefix_indexed: self.prefix_indexed(&c.name),
                    auto_increment: c.auto_increment,
                    virtual_column: c.virtual_column,
                })
                .collect(),
            indexes: self
                .indexes
                .iter()
                .map(|i| IndexJson {
                    name: &i.name,
                    columns: i
                        .columns
                        .iter()
                        .flatten()
                        .chain(&i.included)
                        .map(String::as_str)
                        .collect(),
                    unique: i.unique,
                    primary: i.primary,
                    kind: &i.kind,
                })
                .collect(),
            row_format: &self.row_format,
            free_bytes: self.free_bytes,
            replicas: self.replicas,
            long_transactions: &self.long_transactions,
            settings: &self.settings,
            sample: self.sample,
        }
        .serialize(s)
    }
}

/// PostgreSQL facts about the session the ALTER would run in (godwit's own: `godwit run
/// --attempt-native` opens its session with the same settings as the plan's), the table's
/// storage and the database's domains.
#[derive(Debug, Clone, Default)]
pub struct PgFacts {
    /// The session's `TimeZone` (godwit's sessions set `UTC`).
    pub time_zone: Option<String>,
    /// The zone is UTC at every instant (UTC, Etc/UTC, GMT, `+00`…): PostgreSQL 12+ then
    /// converts timestamp ↔ timestamptz without rewriting the table.
    pub time_zone_is_utc: bool,
    /// The table's access method (`heap`).
    pub access_method: Option<String>,
    /// The tablespace the table's files are in (the database's default when it names none).
    pub tablespace: Option<String>,
    /// The domains the session sees.
    pub domains: Vec<PgDomain>,
}

/// A PostgreSQL domain.
#[derive(Debug, Clone, Default)]
pub struct PgDomain {
    /// Its name, lower case as the catalog has it, without schema.
    pub name: String,
    /// The type it is over, as `format_type` writes it (`integer`, `character varying(20)`,
    /// or another domain).
    pub base: String,
    /// It has constraints of its own (a CHECK or NOT NULL).
    pub constrained: bool,
}

impl PgFacts {
    /// The domain named `type_name` (written as in an ALTER: perhaps schema-qualified or
    /// quoted).
    pub fn domain(&self, type_name: &str) -> Option<&PgDomain> {
        let t = type_name.trim();
        let last = t.rsplit('.').next().unwrap_or(t);
        let n = if last.starts_with('"') {
            last.trim_matches('"').to_string()
        } else {
            last.to_lowercase()
        };
        self.domains.iter().find(|d| d.name == n)
    }
    /// `type_name` with its domains taken away (the type at the bottom of the chain), and
    /// whether any domain on the way has constraints.
    pub fn base_type(&self, type_name: &str) -> (String, bool) {
        let mut t = type_name.to_string();
        let mut constrained = false;
        for _ in 0..16 {
            match self.domain(&t) {
                Some(d) => {
                    constrained |= d.constrained;
                    t = d.base.clone();
                }
                None => break,
            }
        }
        (t, constrained)
    }
}

/// MySQL/MariaDB facts for the character set and table option rules.
#[derive(Debug, Clone, Default)]
pub struct MysqlFacts {
    /// The table's storage engine (`InnoDB`).
    pub engine: Option<String>,
    /// The table's default collation: what a column gets when a `MODIFY` names no
    /// character set.
    pub table_collation: Option<String>,
    /// The database's default collation (`CONVERT TO CHARACTER SET DEFAULT`).
    pub schema_collation: Option<String>,
    /// The server's character sets: (name, default collation, longest character in bytes).
    pub charsets: Vec<(String, String, u64)>,
}

impl MysqlFacts {
    /// Bytes of the longest character of `charset` (`utf8` is `utf8mb3`).
    pub fn max_bytes(&self, charset: &str) -> Option<u64> {
        let cs = canonical_charset(charset);
        self.charsets
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(&cs))
            .map(|(.., m)| *m)
    }
    /// The default collation of `charset`.
    pub fn default_collation(&self, charset: &str) -> Option<String> {
        let cs = canonical_charset(charset);
        self.charsets
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(&cs))
            .map(|(_, c, _)| c.to_lowercase())
    }
}

/// `utf8` is `utf8mb3` (MariaDB 10.6+ and MySQL 8 name it so); names are lower case.
pub fn canonical_charset(name: &str) -> String {
    let n = name.trim().trim_matches(['`', '\'', '"']).to_lowercase();
    if n == "utf8" {
        "utf8mb3".into()
    } else {
        n
    }
}

/// An identifier without its quotes (`` `a` `` or `"a"`), as sqlparser renders it.
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    let quoted =
        (s.starts_with('`') && s.ends_with('`')) || (s.starts_with('"') && s.ends_with('"'));
    if quoted && s.len() >= 2 {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// A collation's name with `utf8_` spelled `utf8mb3_`, lower case.
pub fn canonical_collation(name: &str) -> String {
    let n = name.trim().trim_matches(['`', '\'', '"']).to_lowercase();
    match n.strip_prefix("utf8_") {
        Some(rest) => format!("utf8mb3_{rest}"),
        None => n,
    }
}

/// The character set a collation belongs to (the part before the first `_`, `utf8mb3`
/// for `utf8_…`).
pub fn collation_charset(collation: &str) -> String {
    let c = canonical_collation(collation);
    c.split('_').next().unwrap_or("").to_string()
}

impl Facts {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
    pub fn primary_key(&self) -> Option<&Index> {
        self.indexes.iter().find(|i| i.primary)
    }
    /// The column `name` is stored in an index (a key column or an included one).
    pub fn indexed(&self, name: &str) -> bool {
        self.indexes.iter().any(|i| i.contains(name))
    }
    /// An index holds only a prefix of the column `name` (MySQL `KEY (c(10))`).
    pub fn prefix_indexed(&self, name: &str) -> bool {
        self.indexes
            .iter()
            .any(|i| i.prefixed.iter().any(|c| c == name))
    }
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn total_bytes(&self) -> u64 {
        self.data_bytes + self.index_bytes
    }
}

/// A bounded data check that a rule needs (run by the engine's facts module).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum DataProbe {
    /// Does the column hold NULLs?
    Nulls { column: String },
    /// Do these columns hold duplicate values?
    Duplicates { columns: Vec<String> },
    /// Does the column hold strings longer than `max_chars`?
    TooLong { column: String, max_chars: u64 },
    /// Does the column hold numbers outside `min..=max`?
    OutOfRange {
        column: String,
        min: i128,
        max: i128,
    },
}

/// What a probe found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub probe: DataProbe,
    pub found: bool,
    /// An offending value or key, rendered as text.
    pub example: Option<String>,
    pub rows_checked: u64,
    /// False when the check stopped at `--check-rows` before the end of the table.
    pub complete: bool,
}

/// MySQL/MariaDB ALGORITHM, cheapest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    Copy,
    Inplace,
    /// MariaDB: in place without rebuilding the clustered index.
    Nocopy,
    Instant,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Copy => "COPY",
            Algorithm::Inplace => "INPLACE",
            Algorithm::Nocopy => "NOCOPY",
            Algorithm::Instant => "INSTANT",
        }
    }
}

/// MySQL/MariaDB LOCK, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MyLock {
    None,
    Shared,
    Exclusive,
}

impl MyLock {
    pub fn as_str(self) -> &'static str {
        match self {
            MyLock::None => "NONE",
            MyLock::Shared => "SHARED",
            MyLock::Exclusive => "EXCLUSIVE",
        }
    }
}

/// PostgreSQL table lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PgLock {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl PgLock {
    pub fn as_str(self) -> &'static str {
        match self {
            PgLock::AccessShare => "ACCESS SHARE",
            PgLock::RowShare => "ROW SHARE",
            PgLock::RowExclusive => "ROW EXCLUSIVE",
            PgLock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            PgLock::Share => "SHARE",
            PgLock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            PgLock::Exclusive => "EXCLUSIVE",
            PgLock::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }
    /// The `pg_locks.mode` name.
    pub fn from_pg_locks(mode: &str) -> Option<PgLock> {
        Some(match mode {
            "AccessShareLock" => PgLock::AccessShare,
            "RowShareLock" => PgLock::RowShare,
            "RowExclusiveLock" => PgLock::RowExclusive,
            "ShareUpdateExclusiveLock" => PgLock::ShareUpdateExclusive,
            "ShareLock" => PgLock::Share,
            "ShareRowExclusiveLock" => PgLock::ShareRowExclusive,
            "ExclusiveLock" => PgLock::Exclusive,
            "AccessExclusiveLock" => PgLock::AccessExclusive,
            _ => return None,
        })
    }
    /// Conflicts with the ROW EXCLUSIVE lock that INSERT/UPDATE/DELETE take.
    pub fn blocks_writes(self) -> bool {
        self >= PgLock::Share
    }
    /// Conflicts with the ACCESS SHARE lock that SELECT takes.
    pub fn blocks_reads(self) -> bool {
        self == PgLock::AccessExclusive
    }
}

/// What a clause does, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    AddColumn,
    DropColumn,
    RenameColumn,
    ChangeColumn,
    SetDefault,
    DropDefault,
    SetNotNull,
    DropNotNull,
    ChangeType,
    AddIndex,
    AddUnique,
    AddPrimaryKey,
    DropPrimaryKey,
    DropIndex,
    AddForeignKey,
    AddCheck,
    DropConstraint,
    ValidateConstraint,
    RenameConstraint,
    RenameIndex,
    RenameTable,
    DropTable,
    TableOption,
    Other,
}

/// One clause of the ALTER, classified.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The clause as parsed (normalized by sqlparser).
    pub clause: String,
    pub op: ChangeKind,
    /// Columns the clause is about (the column, or the key columns).
    pub columns: Vec<String>,
    /// New name for renames.
    pub new_name: Option<String>,
    /// New column type (as written) for type changes.
    pub new_type: Option<String>,
    /// `NOT VALID` was given (PostgreSQL constraints).
    pub not_valid: bool,
    /// MySQL/MariaDB: the cheapest ALGORITHM the server accepts.
    pub algorithm: Option<Algorithm>,
    /// MySQL/MariaDB: the weakest LOCK the server accepts with that algorithm.
    pub mysql_lock: Option<MyLock>,
    /// PostgreSQL: the lock taken on the table.
    pub pg_lock: Option<PgLock>,
    /// The table (or its clustered index) is rebuilt.
    pub rewrite: bool,
    /// The whole table is read (validation, index build) without being rewritten.
    pub scan: bool,
    /// Application writes wait while the change runs (beyond a brief metadata lock).
    pub blocks_writes: bool,
    /// Application reads wait while the change runs.
    pub blocks_reads: bool,
    /// Why the clause is classified so.
    pub reason: String,
    /// MariaDB: how an instant clause is done (some kinds stop being instant together).
    #[serde(skip)]
    pub instant_kind: InstantKind,
    /// PostgreSQL: the classification holds in a session whose TimeZone is UTC.
    #[serde(skip)]
    pub needs_utc_session: bool,
    /// MySQL/MariaDB: where the clause places its column: `Some("")` for `FIRST`,
    /// `Some(c)` for `AFTER c`.
    #[serde(skip)]
    pub position: Option<String>,
}

/// MariaDB: how the server carries out an instant clause. Measured on 10.11: a table
/// option with an instant rename or type change is done in place (NOCOPY), unless the
/// statement also changes the row format (add, drop, reorder columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstantKind {
    /// Only the server's own metadata (defaults, CHECK constraints, comments, ENUM
    /// appends, the table's name).
    #[default]
    Metadata,
    /// A new row format version: ADD/DROP COLUMN, reordering columns.
    RowFormat,
    /// InnoDB's dictionary: renaming a column or an index, dropping a foreign key,
    /// extending a VARCHAR, utf8mb3 → utf8mb4, a new collation.
    Engine,
    /// A table option: AUTO_INCREMENT, COMMENT, the default character set or
    /// collation, STATS_….
    TableOption,
}

impl Change {
    pub fn new(clause: String, op: ChangeKind) -> Change {
        Change {
            clause,
            op,
            columns: Vec::new(),
            new_name: None,
            new_type: None,
            not_valid: false,
            algorithm: None,
            mysql_lock: None,
            pg_lock: None,
            rewrite: false,
            scan: false,
            blocks_writes: false,
            blocks_reads: false,
            reason: String::new(),
            instant_kind: InstantKind::Metadata,
            needs_utc_session: false,
            position: None,
        }
    }
    /// Work proportional to the table's size happens under this change's lock.
    pub fn heavy(&self) -> bool {
        self.rewrite || self.scan || self.algorithm == Some(Algorithm::Copy)
    }
}

/// How to run the ALTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Run it on the server directly, with the statements given.
    Native,
    /// Run it with `godwit run` (shadow copy, short cut-over).
    Online,
    /// Split into expand/contract phases the application can roll through.
    Phases,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub strategy: Strategy,
    /// Statements to run (native), or the godwit command line (online), or the phases.
    pub statements: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A risk a rule found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// The whole plan: what `godwit plan` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub engine: EngineKind,
    pub server_version: String,
    pub table: String,
    pub alter: String,
    pub facts: Facts,
    pub changes: Vec<Change>,
    /// The ALTER as a whole (MySQL: the worst of its clauses, as the server runs them
    /// together; PostgreSQL: the strongest lock, rewrite if any clause rewrites).
    pub overall: Change,
    pub checks: Vec<ProbeResult>,
    pub estimate: estimate::Estimate,
    pub recommendation: Recommendation,
    pub findings: Vec<Finding>,
    /// The engine can add a constraint `NOT VALID` and validate it later while writes go
    /// on ([`PlanEngine::validates_constraints_later`]); what the rules' fixes suggest.
    #[serde(skip)]
    pub validates_constraints_later: bool,
}

impl Plan {
    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Is the table large by the options' thresholds?
pub fn is_large(f: &Facts, o: &PlanOptions) -> bool {
    f.row_estimate >= o.large_table_rows || f.total_bytes() >= o.large_table_bytes
}

/// The probes the changes need.
pub fn probes_for(changes: &[Change], facts: &Facts) -> Vec<DataProbe> {
    let mut out = Vec::new();
    for c in changes {
        match c.op {
            ChangeKind::SetNotNull | ChangeKind::AddPrimaryKey => {
                for col in &c.columns {
                    if facts.column(col).map(|k| k.nullable).unwrap_or(false) {
                        out.push(DataProbe::Nulls {
                            column: col.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
        if matches!(c.op, ChangeKind::AddUnique | ChangeKind::AddPrimaryKey)
            && !c.columns.is_empty()
            && c.columns.iter().all(|k| facts.column(k).is_some())
        {
            out.push(DataProbe::Duplicates {
                columns: c.columns.clone(),
            });
        }
        if matches!(c.op, ChangeKind::ChangeType | ChangeKind::ChangeColumn) {
            if let (Some(col), Some(t)) = (c.columns.first(), c.new_type.as_deref()) {
                if let Some(old) = facts.column(col) {
                    if let Some(p) = shrink_probe(col, &old.column_type, t) {
                        out.push(p);
                    }
                }
            }
        }
        if c.op == ChangeKind::ChangeColumn {
            // MODIFY … NOT NULL on a nullable column
            if let Some(col) = c.columns.first() {
                if c.reason.contains("NULL → NOT NULL")
                    && facts.column(col).map(|k| k.nullable).unwrap_or(false)
                {
                    out.push(DataProbe::Nulls {
                        column: col.clone(),
                    });
                }
            }
        }
    }
    out.dedup();
    out
}

/// Parse `name(n[,m])` into (name, args).
pub fn type_parts(t: &str) -> (String, Vec<u64>) {
    let t = t.trim().to_lowercase();
    let (name, rest) = match t.find('(') {
        Some(i) => (t[..i].trim().to_string(), &t[i + 1..]),
        None => (
            t.split_whitespace()
                .take_while(|w| *w != "unsigned" && *w != "signed")
                .collect::<Vec<_>>()
                .join(" "),
            "",
        ),
    };
    let args = rest
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    (name, args)
}

fn int_range(name: &str, unsigned: bool) -> Option<(i128, i128)> {
    let bits = match name {
        "tinyint" => 8,
        "smallint" | "int2" => 16,
        "mediumint" => 24,
        "int" | "integer" | "int4" => 32,
        "bigint" | "int8" => 64,
        _ => return None,
    };
    Some(if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    })
}

fn is_string_type(name: &str) -> bool {
    matches!(
        name,
        "varchar" | "char" | "character varying" | "character" | "bpchar" | "nvarchar"
    )
}

/// A probe for a type change that may cut existing data.
pub fn shrink_probe(column: &str, old: &str, new: &str) -> Option<DataProbe> {
    let (on, oa) = type_parts(old);
    let (nn, na) = type_parts(new);
    if is_string_type(&nn) {
        let new_len = *na.first()?;
        let shrinks = match oa.first() {
            Some(&ol) if is_string_type(&on) => new_len < ol,
            _ => true,
        };
        return shrinks.then(|| DataProbe::TooLong {
            column: column.to_string(),
            max_chars: new_len,
        });
    }
    let old_unsigned = old.to_lowercase().contains("unsigned");
    let new_unsigned = new.to_lowercase().contains("unsigned");
    let (nmin, nmax) = int_range(&nn, new_unsigned)?;
    let shrinks = match int_range(&on, old_unsigned) {
        Some((omin, omax)) => nmin > omin || nmax < omax,
        None => true,
    };
    shrinks.then(|| DataProbe::OutOfRange {
        column: column.to_string(),
        min: nmin,
        max: nmax,
    })
}

/// `--alter` as one statement: a clause list gets `ALTER TABLE <placeholder>` in front.
/// The text must be exactly one statement (see `ddl::lex`); comments are dropped.
pub fn as_statement(
    rules: &'static crate::ddl::SqlRules,
    alter: &str,
    placeholder: &str,
) -> Result<String> {
    let t = crate::ddl::lex::single(rules, alter, "--alter").map_err(|e| match e.hint {
        Some(_) => e,
        None => e.with_hint("give the clauses, e.g. --alter \"ADD COLUMN note TEXT\""),
    })?;
    let words: Vec<&str> = t.split_whitespace().take(4).collect();
    let first = words.first().copied().unwrap_or("");
    // `ALTER [ONLINE|IGNORE] TABLE …` is a statement; `ALTER COLUMN …` is a clause.
    let alter_table = first.eq_ignore_ascii_case("ALTER")
        && words[1..].iter().any(|w| w.eq_ignore_ascii_case("TABLE"));
    if alter_table || first.eq_ignore_ascii_case("CREATE") {
        Ok(t)
    } else {
        Ok(format!("ALTER TABLE {placeholder} {t}"))
    }
}

/// Read facts, classify, check, estimate and judge. Changes nothing on the server.
pub async fn plan_alter(
    engine: &dyn PlanEngine,
    target: &Target,
    table: &str,
    alter: &str,
    opts: &PlanOptions,
) -> Result<Plan> {
    // One statement, for this table (a rename of the table is planned, not refused).
    crate::ddl::clause_text(engine.sql_rules(), table, alter)?;
    let stmt = engine.prepare(alter)?;
    let mut session = engine.open(target, false).await?;
    let facts = session.facts(table, opts).await?;
    let Classified {
        changes,
        overall,
        clauses,
    } = session.classify(table, &stmt, &facts).await?;
    let probes = probes_for(&changes, &facts);
    let checks = session.probes(&facts, &probes, opts.check_rows).await?;
    session.close().await;
    let est = estimate::estimate(engine, &facts, &overall);
    let recommendation = engine.recommend(&facts, &changes, &overall, &clauses, opts);
    let mut plan = Plan {
        engine: target.kind,
        server_version: facts.server_version.clone(),
        table: facts.table.clone(),
        alter: alter.trim().to_string(),
        facts,
        changes,
        overall,
        checks,
        estimate: est,
        recommendation,
        findings: Vec::new(),
        validates_constraints_later: engine.validates_constraints_later(),
    };
    plan.findings = rules::run_all(&plan, opts);
    Ok(plan)
}

#[cfg(test)]
mod facts_tests {
    use super::*;

    #[test]
    fn the_json_of_facts_derives_indexed_columns_from_the_indexes() {
        let mut f = rules::fixture::mysql_facts();
        f.columns.push(Column::declared("note", "text"));
        f.columns.push(Column::declared("extra", "int"));
        f.indexes.push(Index {
            name: "k_note".into(),
            columns: vec![Some("note".into()), None],
            included: vec!["extra".into()],
            prefixed: vec!["note".into()],
            kind: "BTREE".into(),
            ..Index::default()
        });
        assert!(f.indexed("id") && f.indexed("note") && f.indexed("extra"));
        assert!(f.prefix_indexed("note") && !f.prefix_indexed("id"));
        let v = serde_json::to_value(&f).unwrap();
        let cols = v["columns"].as_array().unwrap();
        assert_eq!(cols[1]["name"], "note");
        assert_eq!(cols[1]["indexed"], true);
        assert_eq!(cols[1]["prefix_indexed"], true);
        assert_eq!(cols[2]["prefix_indexed"], false);
        assert_eq!(
            v["indexes"][1]["columns"],
            serde_json::json!(["note", "extra"])
        );
        assert_eq!(v["indexes"][0]["primary"], true);
        // What only the classifiers read stays out of the plan's JSON.
        assert!(v.get("mysql").is_none() && v.get("proven_not_null").is_none());
    }
}
