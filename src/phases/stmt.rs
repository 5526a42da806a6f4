//! The statement model of the phases: what an operation asks to run ([`Stmt`] with its
//! [`StmtKind`], [`Probe`], trigger rules, [`Backfill`]) and the bind parameters of the
//! runner's own queries ([`Param`]). Plain data: the operations (`ops/`) build it, the
//! engine's [`Dialect`](super::dialect::Dialect) spells it, the runner runs it. It imports
//! neither, so the three depend on it and not on each other in a circle.

use serde::Deserialize;

/// A bind parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(Option<String>),
    Int(i64),
}

/// What a phase statement is, set by the code that builds it. `godwit plan PATH` takes
/// a statement's lock from its kind (a fixed lock, or the engine's ALTER planner for the
/// kinds whose lock depends on the table), never from its SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    /// An ALTER TABLE whose lock depends on what it changes and on the table: the
    /// engine's ALTER planner classifies it (parsed, with the table's facts).
    Alter,
    /// ALTER TABLE … ADD … FOREIGN KEY: the referenced table is locked as well.
    AddForeignKey,
    /// ALTER TABLE … VALIDATE CONSTRAINT of a foreign key: the referenced table is read.
    ValidateForeignKey,
    /// ALTER TABLE … VALIDATE CONSTRAINT of a CHECK (col IS NOT NULL) that proves the
    /// next [`StmtKind::SetNotNull`] of the operation, which then does not scan.
    ProveNotNull,
    /// ALTER TABLE … SET NOT NULL (or MODIFY … NOT NULL).
    SetNotNull,
    /// Renaming an index: metadata only.
    RenameIndex,
    /// CREATE INDEX (classified by the ALTER planner, like [`StmtKind::Alter`]).
    CreateIndex,
    /// DROP INDEX CONCURRENTLY.
    DropIndexConcurrently,
    CreateTrigger,
    DropTrigger,
    /// CREATE OR REPLACE FUNCTION / DROP FUNCTION (a trigger's function).
    Function,
    CreateView,
    DropView,
    /// GRANT on a view.
    Grant,
    /// Renaming a table (or swapping a view for it).
    RenameTable,
    /// MySQL `LOCK TABLES … WRITE`, held until [`StmtKind::Unlock`].
    Lock,
    Unlock,
    /// A session setting (`SET SESSION …`).
    Session,
    /// A session setting that turns the checking of foreign keys off (`false`) or on
    /// again (`true`) for the statements after it.
    ForeignKeyChecks(bool),
    /// A precondition query (see [`Stmt::guard`]).
    Guard,
    /// The user's own SQL (the `sql` operation): classified from its parse when it is
    /// an ALTER TABLE, otherwise unknown.
    User,
    /// Shown in a dry run, never run (e.g. the backfill's statement, a probe).
    Comment,
}

/// One statement a phase runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub sql: String,
    /// PostgreSQL `… CONCURRENTLY`: must run outside a transaction.
    pub concurrent: bool,
    /// A precondition, not a change: `sql` is a query that finds an offending row. Every
    /// guard of a phase runs before any of its statements; one that finds a row refuses
    /// the phase, and nothing has changed.
    pub guard: Option<Guard>,
}

/// A precondition query (see [`Stmt::guard`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Guard {
    /// What the offending rows are, for the error: "rows of `orders` whose … ".
    pub what: String,
    /// `SELECT COUNT(*) …` over the same rows, as text; run only when `sql` found one.
    pub count_sql: String,
    /// Names of the columns `sql` returns, for the example in the error.
    pub labels: Vec<String>,
    /// The first `key_len` columns are the offending values; the rest identify the row.
    pub key_len: usize,
    /// What to do about it.
    pub hint: String,
}

impl Stmt {
    pub fn new(kind: StmtKind, sql: impl Into<String>) -> Stmt {
        Stmt {
            kind,
            sql: sql.into(),
            concurrent: false,
            guard: None,
        }
    }
    pub fn concurrent(kind: StmtKind, sql: impl Into<String>) -> Stmt {
        Stmt {
            kind,
            sql: sql.into(),
            concurrent: true,
            guard: None,
        }
    }
    pub fn guard(sql: impl Into<String>, guard: Guard) -> Stmt {
        Stmt {
            kind: StmtKind::Guard,
            sql: sql.into(),
            concurrent: false,
            guard: Some(guard),
        }
    }
}

/// A statement run before expand changes anything, to prove that it will work (a type
/// the server knows, an expression that converts every row). It changes nothing: probes
/// use temporary tables only and, on PostgreSQL, run in a transaction rolled back.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub sql: String,
    /// What a failure means, for the error message (the server's message follows).
    pub fails: String,
    /// Clean-up: run even after an earlier probe failed; its own failure is ignored.
    pub cleanup: bool,
}

impl Probe {
    pub fn new(sql: impl Into<String>, fails: impl Into<String>) -> Probe {
        Probe {
            sql: sql.into(),
            fails: fails.into(),
            cleanup: false,
        }
    }
    pub fn cleanup(sql: impl Into<String>) -> Probe {
        Probe {
            sql: sql.into(),
            fails: String::new(),
            cleanup: true,
        }
    }
}

/// A condition in a sync trigger, on the row being written (`NEW`, and `OLD` on update).
#[derive(Debug, Clone)]
pub enum Cond {
    IsNull(String),
    /// The statement changed this column (`NEW.c IS DISTINCT FROM OLD.c`); update only.
    Changed(String),
    /// The column's value differs from `val` taken as the column's type (NULL-safe).
    Differs(String, Val),
    /// A user SQL condition over the row is true (NULL counts as false, as in a CHECK).
    Holds(String),
    /// Before the write the column held `val` computed over the row before the write
    /// (NULL-safe; update only): its value was derived, not written.
    Was(String, Val),
    /// Every condition holds.
    All(Vec<Cond>),
    /// At least one condition holds.
    Any(Vec<Cond>),
    /// The condition does not hold.
    Not(Box<Cond>),
    Always,
}

/// A value a trigger or a backfill assigns.
#[derive(Debug, Clone)]
pub enum Val {
    /// Another column of the same row.
    Col(String),
    /// A user SQL expression over the row's columns (`up` / `down`).
    Expr(String),
}

/// `IF cond THEN col = val [ELSIF …]`: the first branch whose condition holds.
#[derive(Debug, Clone)]
pub struct Branch {
    pub cond: Cond,
    pub col: String,
    pub val: Val,
}

pub type Chain = Vec<Branch>;

/// The rules of one operation's sync trigger (BEFORE INSERT / BEFORE UPDATE, per row).
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    pub insert: Vec<Chain>,
    pub update: Vec<Chain>,
}

/// Which rows a backfill batch touches.
#[derive(Debug, Clone)]
pub enum Filter {
    IsNull(String),
    /// `a IS DISTINCT FROM b`
    Differs(String, String),
    /// A user SQL condition over the row is true (NULL counts as false).
    Holds(String),
}

/// Backfill: `UPDATE table SET col = val … WHERE key in batch AND filter`.
#[derive(Debug, Clone)]
pub struct Backfill {
    pub table: String,
    pub set: Vec<(String, Val)>,
    pub filter: Filter,
}

/// The `add_foreign_key` operation's fields (the operation itself is
/// `ops/add_foreign_key.rs`); the dialect spells the constraint from them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKey {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
}
