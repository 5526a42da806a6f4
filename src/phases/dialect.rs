//! How each engine spells the phases' statements. The operations say what; a dialect
//! says how. Identifiers go through the engine's `quote`; user expressions are the
//! user's SQL and are inserted as written.

use super::catalog::CatalogSql;
use super::stmt::{AddForeignKey, Backfill, Filter, Param, Stmt, StmtKind, Trigger, Val};
use crate::schema::{Column, Grant, Table};

pub trait Dialect: Sync + Send {
    /// How the server reads user text (see `ddl::lex`).
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules;
    fn quote(&self, ident: &str) -> String;
    /// The qualified table name.
    fn table(&self, table: &str) -> String;
    /// A nullable column (the old application does not write it).
    fn add_column(&self, table: &str, col: &str, ty: &str, default: Option<&str>) -> Stmt;
    /// A nullable column of the same type as `like`, without default.
    fn add_column_like(&self, table: &str, col: &str, like: &Column) -> Stmt;
    fn drop_column(&self, table: &str, col: &str) -> Stmt;
    /// Contract of `drop_column`: the column and its sync trigger (`tag`, if any) go with
    /// no write in between.
    fn drop_synced_column(&self, table: &str, col: &str, tag: Option<&str>) -> Vec<Stmt> {
        let mut out = tag.map(|t| self.drop_trigger(table, t)).unwrap_or_default();
        out.push(self.drop_column(table, col));
        out
    }
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
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {default}",
                self.table(table),
                self.quote(col)
            ),
        )
    }
    fn create_trigger(&self, table: &str, tag: &str, t: &Trigger, info: &Table) -> Vec<Stmt>;
    fn drop_trigger(&self, table: &str, tag: &str) -> Vec<Stmt>;
    /// Expand of a coming NOT NULL (PostgreSQL: a NOT VALID check that contract validates).
    fn not_null_expand(&self, table: &str, col: &str, tag: &str) -> Vec<Stmt>;
    /// Undo [`Dialect::not_null_expand`].
    fn not_null_abort(&self, table: &str, tag: &str) -> Vec<Stmt>;
    fn set_not_null(&self, table: &str, col: &Column, tag: &str) -> Vec<Stmt>;
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
        col: &Column,
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
    /// Bind parameters for a key, cast to its column types where the engine needs it,
    /// numbered from `first` where the engine numbers them.
    fn key_params(&self, key: &[&Column], first: usize) -> String;
    /// The condition of a backfill [`Filter`].
    fn filter(&self, f: &Filter) -> String;
    /// The next batch's last key: `SELECT key… WHERE key > lower ORDER BY key LIMIT 1
    /// OFFSET n-1`, keys as text. Parameters: lower key parts (if `lower`).
    fn batch_end(&self, b: &Backfill, key: &[&Column], lower: bool, size: u64) -> String {
        let k = key_list(self, key);
        let sel = key_texts(self, key);
        let cond = if lower {
            format!(" WHERE ({k}) > ({})", self.key_params(key, 1))
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM {}{cond} ORDER BY {k} LIMIT 1 OFFSET {}",
            sel.join(", "),
            self.table(&b.table),
            size.saturating_sub(1)
        )
    }
    /// The backfill UPDATE for one batch. Parameters: lower key parts (if `lower`), then
    /// upper key parts (if `upper`).
    fn backfill_update(&self, b: &Backfill, key: &[&Column], lower: bool, upper: bool) -> String {
        let conds = batch_conds(self, b, key, lower, upper);
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.table(&b.table),
            self.set_list(&b.set),
            conds.join(" AND ")
        )
    }
    /// The keys (as text) of the batch's rows that still need the backfill, in key
    /// order; with `lock`, locked `FOR UPDATE SKIP LOCKED` (rows other transactions hold
    /// are left out). Parameters as [`Dialect::backfill_update`].
    fn backfill_keys(
        &self,
        b: &Backfill,
        key: &[&Column],
        lower: bool,
        upper: bool,
        lock: bool,
    ) -> String {
        let k = key_list(self, key);
        let sel = key_texts(self, key);
        let conds = batch_conds(self, b, key, lower, upper);
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {k}{}",
            sel.join(", "),
            self.table(&b.table),
            conds.join(" AND "),
            if lock { " FOR UPDATE SKIP LOCKED" } else { "" }
        )
    }
    /// The backfill UPDATE of `n` rows named by their keys (key parts as parameters, key
    /// after key).
    fn backfill_update_keys(&self, b: &Backfill, key: &[&Column], n: usize) -> String {
        let k = key_list(self, key);
        let list: Vec<String> = (0..n)
            .map(|i| format!("({})", self.key_params(key, 1 + i * key.len())))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {} AND ({k}) IN ({})",
            self.table(&b.table),
            self.set_list(&b.set),
            self.filter(&b.filter),
            list.join(", ")
        )
    }
    /// `expr` as text (what [`super::db::Db::query`] reads).
    fn text(&self, expr: &str) -> String;
    /// Rows of `table` whose key in `columns` is set (every column non-NULL: MATCH SIMPLE)
    /// and missing from `references`: `(SELECT labels… LIMIT 1, SELECT COUNT(*))`, the
    /// labels read as text.
    fn orphans(
        &self,
        table: &str,
        columns: &[String],
        references: (&str, &[String]),
        labels: &[String],
    ) -> (String, String) {
        let q = |c: &str| self.quote(c);
        let set: Vec<String> = columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", q(c)))
            .collect();
        let join: Vec<String> = columns
            .iter()
            .zip(references.1)
            .map(|(c, r)| format!("p.{} = c.{}", q(r), q(c)))
            .collect();
        let from = format!(
            "FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            self.table(table),
            set.join(" AND "),
            self.table(references.0),
            join.join(" AND ")
        );
        let sel: Vec<String> = labels
            .iter()
            .map(|c| self.text(&format!("c.{}", q(c))))
            .collect();
        (
            format!("SELECT {} {from} LIMIT 1", sel.join(", ")),
            format!("SELECT {} {from}", self.text("COUNT(*)")),
        )
    }
    /// `ON DELETE …` / `ON UPDATE …` of a foreign key, with a leading space, or nothing.
    fn fk_actions(&self, fk: &AddForeignKey) -> String {
        let mut s = String::new();
        if let Some(a) = fk.on_delete() {
            s.push_str(&format!(" ON DELETE {a}"));
        }
        if let Some(a) = fk.on_update() {
            s.push_str(&format!(" ON UPDATE {a}"));
        }
        s
    }
    /// `FOREIGN KEY (cols) REFERENCES parent (cols) [actions]`.
    fn fk_clause(&self, fk: &AddForeignKey) -> String {
        let list = |cols: &[String]| {
            cols.iter()
                .map(|c| self.quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "FOREIGN KEY ({}) REFERENCES {} ({}){}",
            list(&fk.columns),
            self.table(&fk.references_table),
            list(&fk.references_columns),
            self.fk_actions(fk)
        )
    }
    /// InnoDB needs an index on a foreign key's columns (and builds one if missing).
    fn foreign_key_needs_index(&self) -> bool {
        false
    }
    /// Expand of a foreign key: enforced for new writes, existing rows not checked.
    /// `index`: build a supporting index under this name in the same statement.
    fn add_foreign_key(&self, fk: &AddForeignKey, index: Option<&str>) -> Vec<Stmt>;
    /// Contract of a foreign key whose rows were checked: PostgreSQL marks it valid;
    /// MySQL renames the index expand built (`index`) to the constraint's name.
    fn validate_foreign_key(&self, fk: &AddForeignKey, index: Option<&str>) -> Vec<Stmt>;
    /// Drop a foreign key (and the index expand built for it).
    fn drop_foreign_key(&self, table: &str, name: &str, index: Option<&str>) -> Vec<Stmt>;
    /// An updatable view `view` showing every column of `table` (with the table's
    /// privileges on PostgreSQL).
    fn create_view(&self, view: &str, table: &str, grants: &[Grant]) -> Vec<Stmt>;
    fn drop_view(&self, view: &str) -> Stmt;
    /// Replace the view `to` by the table `from` renamed to `to`, with no moment where
    /// `to` does not exist. `temp` is a name the view may be parked under on the way.
    fn swap_view_for_table(&self, from: &str, to: &str, temp: &str) -> Vec<Stmt>;
    /// A plain `RENAME TABLE` / `ALTER TABLE … RENAME TO`.
    fn rename_table(&self, from: &str, to: &str) -> Stmt;
    /// Statement texts for `BEGIN` and `COMMIT`.
    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    // The session, the catalog and the state table.

    /// Bind parameter `n` (1-based).
    fn placeholder(&self, n: usize) -> String;
    /// The statement after which the session refuses to write (`godwit plan`).
    fn read_only(&self) -> &'static str;
    /// DDL is transactional: a phase's plain statements run in one transaction (the
    /// concurrent ones alone), and probes in a transaction that is rolled back.
    fn transactional_ddl(&self) -> bool;
    /// Statements that put the session back after a phase's statement failed (e.g. a
    /// `LOCK TABLES` still held); errors of these are ignored.
    fn after_failure(&self) -> &'static [&'static str] {
        &[]
    }
    /// The runner lock: a query returning one text value, its parameters, and the value
    /// that means the lock was taken.
    fn runner_lock(&self) -> (String, Vec<Param>, &'static str);
    /// The catalog queries.
    fn catalog(&self) -> &'static CatalogSql;
    /// `CREATE TABLE IF NOT EXISTS` of the state table `table` (qualified).
    fn create_state_table(&self, table: &str) -> String;
    /// The current time, for the state table's timestamps.
    fn now(&self) -> &'static str;
    /// The current user as text.
    fn current_user(&self) -> &'static str;
}

/// `a, b`: the key columns, quoted.
/// The key columns as text, aliased: `"id"::text` would be an output column named "id",
/// and ORDER BY "id" would then sort the keys as text (batches of uneven, unbounded size).
fn key_texts<D: Dialect + ?Sized>(d: &D, key: &[&Column]) -> Vec<String> {
    key.iter()
        .enumerate()
        .map(|(i, c)| format!("{} AS _godwit_k{i}", d.text(&d.quote(&c.name))))
        .collect()
}

/// A backfill batch's conditions: the rows that still need it, after the lower key
/// bound (parameters first) and up to the upper one.
fn batch_conds<D: Dialect + ?Sized>(
    d: &D,
    b: &Backfill,
    key: &[&Column],
    lower: bool,
    upper: bool,
) -> Vec<String> {
    let k = key_list(d, key);
    let mut conds = vec![d.filter(&b.filter)];
    let mut next = 1;
    if lower {
        conds.push(format!("({k}) > ({})", d.key_params(key, next)));
        next += key.len();
    }
    if upper {
        conds.push(format!("({k}) <= ({})", d.key_params(key, next)));
    }
    conds
}

fn key_list<D: Dialect + ?Sized>(d: &D, key: &[&Column]) -> String {
    key.iter()
        .map(|c| d.quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}
