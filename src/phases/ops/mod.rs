//! Operations of a migration file: one file per operation, each behind [`Op`].
//!
//! An operation says *what* to run in each phase as statements and trigger rules; the
//! engine's [`Dialect`](super::dialect::Dialect) says *how* that is spelled, and the
//! runner decides *when*.

mod add_check;
mod add_column;
mod add_foreign_key;
mod add_index;
mod change_column_type;
mod drop_column;
mod drop_index;
mod rename_column;
mod rename_table;
mod set_not_null;
mod sql;

pub use add_check::AddCheck;
pub use add_column::AddColumn;
pub use add_foreign_key::AddForeignKey;
pub use add_index::AddIndex;
pub use change_column_type::ChangeColumnType;
pub use drop_column::DropColumn;
pub use drop_index::DropIndex;
pub use rename_column::RenameColumn;
pub use rename_table::RenameTable;
pub use set_not_null::SetNotNull;
pub use sql::RawSql;

use super::dialect::Dialect;
pub use super::stmt::{
    Backfill, Branch, Chain, Cond, Filter, Guard, Probe, Stmt, StmtKind, Trigger, Val,
};
use crate::schema::Table;
use serde::Deserialize;
use std::collections::HashMap;

/// Whether the SQL expression `expr` names the column `col`: as a whole word, in any
/// case, quoted or not. A mention inside a string literal counts too (harmless: the
/// column is then only watched for nothing).
pub(crate) fn mentions(expr: &str, col: &str) -> bool {
    let (e, c) = (expr.to_lowercase(), col.to_lowercase());
    let word =
        |ch: Option<char>| ch.is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == '$');
    e.match_indices(&c)
        .any(|(i, _)| !word(e[..i].chars().next_back()) && !word(e[i + c.len()..].chars().next()))
}

/// The branch of an UPDATE trigger that re-evaluates `expr` into `col` when the write
/// changes a column `expr` reads (`col` excepted) and does not write `col` itself. With
/// `derived_only`, only when `col` held `expr` of the row before the write — a value
/// the trigger or the backfill derived, not one an application wrote (the two cannot be
/// told apart when equal: such a value follows the row too). None when `expr` reads no
/// column of the table.
pub(crate) fn follow_sources(
    info: &Table,
    col: &str,
    expr: &str,
    derived_only: bool,
) -> Option<Branch> {
    let changed: Vec<Cond> = info
        .columns
        .iter()
        .filter(|c| c.name != col && mentions(expr, &c.name))
        .map(|c| Cond::Changed(c.name.clone()))
        .collect();
    if changed.is_empty() {
        return None;
    }
    let mut all = vec![
        Cond::Not(Box::new(Cond::Changed(col.to_string()))),
        Cond::Any(changed),
    ];
    if derived_only {
        all.push(Cond::Was(col.to_string(), Val::Expr(expr.to_string())));
    }
    Some(Branch {
        cond: Cond::All(all),
        col: col.to_string(),
        val: Val::Expr(expr.to_string()),
    })
}

/// What an operation knows while it plans a phase.
pub struct Cx<'a> {
    pub sql: &'a dyn Dialect,
    /// The operation's table as it is now (None for `sql`).
    pub table: Option<&'a Table>,
    /// Every table or view an operation names ([`Op::table`] and [`Op::relations`]) that
    /// exists now, by name.
    pub catalog: &'a HashMap<String, Table>,
    /// Base name of this operation's triggers (unique per migration and operation).
    pub tag: String,
    /// The phase was started before and did not finish: objects may already exist.
    pub resuming: bool,
    /// Only planning (a dry run): the catalog may be from before the earlier phases ran;
    /// plan as if they had.
    pub planning: bool,
}

/// An empty catalog, for unit tests of operations that need none.
#[cfg(test)]
pub(crate) fn no_catalog() -> &'static HashMap<String, Table> {
    static EMPTY: std::sync::OnceLock<HashMap<String, Table>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(HashMap::new)
}

impl Cx<'_> {
    pub fn info(&self) -> Result<&Table, String> {
        self.table
            .ok_or_else(|| "internal: no table information".to_string())
    }
    /// A table or view named by the operation, if it exists now.
    pub fn relation(&self, name: &str) -> Option<&Table> {
        self.catalog.get(name)
    }
}

/// One operation: its statements per phase. A phase run twice must not fail or do
/// anything twice: statements are written to be idempotent or guarded by the catalog.
pub trait Op {
    /// One line for status and dry runs.
    fn describe(&self) -> String;
    /// The table it works on, if any: it must exist when a phase is planned.
    fn table(&self) -> Option<&str>;
    /// Other tables or views it needs to know about, which may or may not exist.
    fn relations(&self) -> Vec<&str> {
        vec![]
    }
    /// Checks that need no server.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Probes run before expand changes anything (see [`Probe`]).
    fn probes(&self, _cx: &Cx) -> Result<Vec<Probe>, String> {
        Ok(vec![])
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String>;
    fn backfill(&self, _cx: &Cx) -> Option<Backfill> {
        None
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String>;
    /// Undo `expand` without losing data written meanwhile.
    fn abort(&self, cx: &Cx) -> Result<Vec<Stmt>, String>;
}

/// Every operation a file may use (`type = "…"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    AddColumn(AddColumn),
    RenameColumn(RenameColumn),
    SetNotNull(SetNotNull),
    DropColumn(DropColumn),
    AddIndex(AddIndex),
    ChangeColumnType(ChangeColumnType),
    DropIndex(DropIndex),
    AddCheck(AddCheck),
    Sql(RawSql),
    AddForeignKey(AddForeignKey),
    RenameTable(RenameTable),
}

impl Operation {
    pub const KINDS: &'static [&'static str] = &[
        "add_column",
        "rename_column",
        "set_not_null",
        "drop_column",
        "add_index",
        "change_column_type",
        "drop_index",
        "add_check",
        "sql",
        "add_foreign_key",
        "rename_table",
    ];

    pub fn op(&self) -> &dyn Op {
        match self {
            Operation::AddColumn(o) => o,
            Operation::RenameColumn(o) => o,
            Operation::SetNotNull(o) => o,
            Operation::DropColumn(o) => o,
            Operation::AddIndex(o) => o,
            Operation::ChangeColumnType(o) => o,
            Operation::DropIndex(o) => o,
            Operation::AddCheck(o) => o,
            Operation::Sql(o) => o,
            Operation::AddForeignKey(o) => o,
            Operation::RenameTable(o) => o,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.op().validate()
    }

    /// The user's SQL fragments that godwit splices into statements of its own
    /// (expressions, types, defaults), by field. Each must stay in its place: checked by
    /// `ddl::lex::fragment` before a phase plans anything.
    pub fn fragments(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, Option<&str>)> = match self {
            Operation::AddColumn(o) => vec![
                ("column.type", Some(&o.column.type_)),
                ("column.default", o.column.default.as_deref()),
                ("up", o.up.as_deref()),
            ],
            Operation::SetNotNull(o) => vec![("up", Some(&o.up))],
            Operation::DropColumn(o) => vec![("down", o.down.as_deref())],
            Operation::ChangeColumnType(o) => vec![
                ("new_type", Some(&o.new_type)),
                ("up", Some(&o.up)),
                ("down", Some(&o.down)),
            ],
            Operation::AddCheck(o) => vec![("check", Some(&o.check)), ("up", Some(&o.up))],
            Operation::RenameColumn(_)
            | Operation::AddIndex(_)
            | Operation::DropIndex(_)
            | Operation::Sql(_)
            | Operation::AddForeignKey(_)
            | Operation::RenameTable(_) => vec![],
        };
        out.retain(|(_, v)| v.is_some());
        out.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// Column and table names must be non-empty (quoting handles everything else).
pub(crate) fn need(field: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err(format!("field `{field}` is empty"))
    } else {
        Ok(())
    }
}

pub(crate) fn missing_column(table: &str, col: &str) -> String {
    format!("column `{col}` does not exist in table `{table}`")
}
