//! How each engine spells the phases' statements. The operations say what; a dialect
//! says how. Identifiers go through the engine's `quote`; user expressions are the
//! user's SQL and are inserted as written.

use super::catalog::{ColumnInfo, TableInfo};
use super::ops::{Backfill, Stmt, Trigger, Val};

pub trait Dialect: Sync + Send {
    fn quote(&self, ident: &str) -> String;
    /// The qualified table name.
    fn table(&self, table: &str) -> String;
    /// A nullable column (the old application does not write it).
    fn add_column(&self, table: &str, col: &str, ty: &str, default: Option<&str>) -> Stmt;
    /// A nullable column of the same type as `like`, without default.
    fn add_column_like(&self, table: &str, col: &str, like: &ColumnInfo) -> Stmt;
    fn drop_column(&self, table: &str, col: &str) -> Stmt;
    /// `a = b, c = (expr)`: the SET list of a backfill batch.
    fn set_list(&self, set: &[(String, Val)]) -> String {
        set.iter()
            .map(|(c, v)| {
                let v = match v {
                    Val::Col(x) => self.quote(x),
                    Val::Expr(e) => format!("({e})"),
                };
                format!("{} = {v}", self.quote(c))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// `ALTER TABLE … ALTER COLUMN … SET DEFAULT …` (metadata only on both engines).
    fn set_default(&self, table: &str, col: &str, default: &str) -> Stmt {
        Stmt::new(format!(
            "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {default}",
            self.table(table),
            self.quote(col)
        ))
    }
    fn create_trigger(&self, table: &str, tag: &str, t: &Trigger, info: &TableInfo) -> Vec<Stmt>;
    fn drop_trigger(&self, table: &str, tag: &str) -> Vec<Stmt>;
    /// Expand of a coming NOT NULL (PostgreSQL: a NOT VALID check that contract validates).
    fn not_null_expand(&self, table: &str, col: &str, tag: &str) -> Vec<Stmt>;
    /// Undo [`Dialect::not_null_expand`].
    fn not_null_abort(&self, table: &str, tag: &str) -> Vec<Stmt>;
    fn set_not_null(&self, table: &str, col: &ColumnInfo, tag: &str) -> Vec<Stmt>;
    fn add_index(&self, table: &str, name: &str, cols: &[String], unique: bool) -> Vec<Stmt>;
    fn drop_index(&self, table: &str, name: &str) -> Stmt;
    /// Contract of a rename: remove the sync trigger and the copy column, rename the
    /// original, with no write in between.
    fn rename_contract(&self, table: &str, from: &str, to: &str, tag: &str) -> Vec<Stmt>;
    /// Contract of a type change: the new column `from` takes the name, the definition
    /// `col` (new type; the old column's nullability, default and comment) and, on MySQL,
    /// the place (after `after`, first when None) of the old column `col.name`, which
    /// goes; each copied index `(copy, original)` takes its original's name. No write
    /// falls in between.
    fn retype_contract(
        &self,
        table: &str,
        from: &str,
        col: &ColumnInfo,
        after: Option<&str>,
        indexes: &[(String, String)],
        tag: &str,
    ) -> Vec<Stmt>;
    /// `CREATE TEMPORARY TABLE name (defs)`, for probes.
    fn temp_table(&self, name: &str, defs: &str) -> String;
    /// An empty temporary table with `table`'s columns, for probes.
    fn temp_table_like(&self, name: &str, table: &str) -> String;
    fn drop_temp_table(&self, name: &str) -> String;
    /// Expand of a CHECK constraint. PostgreSQL: added `NOT VALID` (new rows are checked
    /// at once, existing ones at contract); MySQL: nothing (the trigger keeps new rows
    /// valid).
    fn check_expand(&self, table: &str, name: &str, check: &str) -> Vec<Stmt>;
    /// Contract of a CHECK constraint. PostgreSQL: `VALIDATE` (no write lock); MySQL:
    /// `ADD CONSTRAINT` unless `present` (MariaDB copies the table: ALGORITHM=COPY,
    /// LOCK=SHARED, writes wait).
    fn check_contract(&self, table: &str, name: &str, check: &str, present: bool) -> Vec<Stmt>;
    /// Undo [`Dialect::check_expand`].
    fn check_abort(&self, table: &str, name: &str) -> Vec<Stmt>;
    /// The next batch's last key: `SELECT key… WHERE key > lower ORDER BY key LIMIT 1
    /// OFFSET n-1`, keys as text. Parameters: lower key parts (if `lower`).
    fn batch_end(&self, b: &Backfill, key: &[&ColumnInfo], lower: bool, size: u64) -> String;
    /// The backfill UPDATE for one batch. Parameters: lower key parts (if `lower`), then
    /// upper key parts (if `upper`).
    fn backfill_update(
        &self,
        b: &Backfill,
        key: &[&ColumnInfo],
        lower: bool,
        upper: bool,
    ) -> String;
    /// Statement texts for `BEGIN` and `COMMIT`.
    fn begin(&self) -> &'static str {
        "BEGIN"
    }
}
