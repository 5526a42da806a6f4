//! The phases on MySQL/MariaDB: how their statements are spelled ([`Mysql`], the
//! dialect), the catalog queries, and the phase commands' connection ([`MysqlPhaseDb`]).

use super::conn_err as driver_err;
use super::session::{self, SessionKind};
use super::sql::{qualified, quote};
use crate::error::{Error, ErrorKind, Result};
use crate::phases::catalog::CatalogSql;
use crate::phases::db::{relabel, short, Db, Param, PhaseConnector, PhaseDb, Rows, TextRow};
use crate::phases::dialect::Dialect;
use crate::phases::ops::{
    mentions, AddForeignKey, Chain, Cond, Filter, Stmt, StmtKind, Trigger, Val,
};
use crate::schema::{Column, Grant, Table};
use crate::target::Target;
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use std::time::Duration;

pub struct Mysql {
    pub db: String,
}

/// A string literal for DDL where bind parameters are not possible (comments).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl Mysql {
    fn val(&self, v: &Val, info: &Table) -> String {
        self.val_of(v, info, "NEW")
    }

    /// `v` over the row `row` (`NEW`, or `OLD` in an UPDATE trigger).
    fn val_of(&self, v: &Val, info: &Table, row: &str) -> String {
        match v {
            Val::Col(c) => format!("{row}.{}", quote(c)),
            Val::Expr(e) => {
                // MySQL triggers name the row's columns NEW.c: give the user's
                // expression a one-row derived table with the bare names it uses. Only
                // those: a trigger naming a column fails every write once the column is
                // dropped (another operation may drop one while this trigger lives).
                let cols: Vec<String> = info
                    .columns
                    .iter()
                    .filter(|c| mentions(e, &c.name))
                    .map(|c| format!("{row}.{0} AS {0}", quote(&c.name)))
                    .collect();
                if cols.is_empty() {
                    return format!("({e})");
                }
                format!(
                    "(SELECT ({e}) FROM (SELECT {}) AS `_godwit_row`)",
                    cols.join(", ")
                )
            }
        }
    }

    /// A trigger condition; `Cond::Always` is handled by [`Mysql::chain`].
    fn cond(&self, c: &Cond, info: &Table) -> String {
        match c {
            Cond::IsNull(c) => format!("NEW.{} IS NULL", quote(c)),
            Cond::Changed(c) => format!("NOT (NEW.{0} <=> OLD.{0})", quote(c)),
            // MySQL has no CAST to every column type: the comparison converts as usual.
            Cond::Differs(c, v) => format!("NOT (NEW.{} <=> {})", quote(c), self.val(v, info)),
            Cond::Holds(e) => self.val(&Val::Expr(e.clone()), info),
            Cond::Was(c, v) => format!("OLD.{} <=> {}", quote(c), self.val_of(v, info, "OLD")),
            Cond::All(cs) => cs
                .iter()
                .map(|c| format!("({})", self.cond(c, info)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Cond::Any(cs) => cs
                .iter()
                .map(|c| format!("({})", self.cond(c, info)))
                .collect::<Vec<_>>()
                .join(" OR "),
            Cond::Not(c) => format!("NOT ({})", self.cond(c, info)),
            Cond::Always => "TRUE".into(),
        }
    }

    fn chain(&self, chain: &Chain, info: &Table) -> String {
        let mut out = String::new();
        for (i, b) in chain.iter().enumerate() {
            let set = format!("SET NEW.{} = {};", quote(&b.col), self.val(&b.val, info));
            let cond = match &b.cond {
                Cond::Always => {
                    if i == 0 {
                        out.push_str(&set);
                    } else {
                        out.push_str(&format!(" ELSE {set}"));
                    }
                    break;
                }
                c => self.cond(c, info),
            };
            let kw = if i == 0 { "IF" } else { " ELSEIF" };
            out.push_str(&format!("{kw} {cond} THEN {set}"));
        }
        if chain
            .first()
            .is_some_and(|b| !matches!(b.cond, Cond::Always))
        {
            out.push_str(" END IF;");
        }
        out
    }

    fn column_def(&self, col: &Column, not_null: bool) -> String {
        let mut d = col.column_type.clone();
        if let Some(c) = &col.collation {
            d.push_str(&format!(" COLLATE {c}"));
        }
        d.push_str(if not_null { " NOT NULL" } else { " NULL" });
        if let Some(def) = &col.default {
            if !def.eq_ignore_ascii_case("null") {
                d.push_str(&format!(" DEFAULT {def}"));
            }
        }
        if let Some(c) = col.comment.as_ref().filter(|c| !c.is_empty()) {
            d.push_str(&format!(" COMMENT {}", literal(c)));
        }
        d
    }
}

impl Dialect for Mysql {
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules {
        &super::SQL_RULES
    }
    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }
    fn read_only(&self) -> &'static str {
        "SET SESSION TRANSACTION READ ONLY"
    }
    fn transactional_ddl(&self) -> bool {
        false
    }
    fn after_failure(&self) -> &'static [&'static str] {
        &["UNLOCK TABLES", "SET SESSION foreign_key_checks = 1"]
    }
    fn runner_lock(&self) -> (String, Vec<Param>, &'static str) {
        let name = format!("godwit_phases.{}", self.db);
        (
            "SELECT GET_LOCK(?, 0)".into(),
            vec![Param::Text(Some(name))],
            "1",
        )
    }
    fn catalog(&self) -> &'static CatalogSql {
        &CATALOG
    }
    fn create_state_table(&self, t: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (id VARCHAR(191) PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             checksum VARCHAR(64) NOT NULL, phase VARCHAR(20) NOT NULL, backfill_op BIGINT NOT NULL DEFAULT 0, \
             backfill_after TEXT NULL, rows_backfilled BIGINT NOT NULL DEFAULT 0, applied_by VARCHAR(255) NULL, \
             started_at DATETIME(6) NULL, expanded_at DATETIME(6) NULL, backfilled_at DATETIME(6) NULL, \
             contracted_at DATETIME(6) NULL, aborted_at DATETIME(6) NULL, updated_at DATETIME(6) NULL) ENGINE=InnoDB"
        )
    }
    fn now(&self) -> &'static str {
        "CURRENT_TIMESTAMP(6)"
    }
    fn current_user(&self) -> &'static str {
        "CURRENT_USER()"
    }
    fn quote(&self, ident: &str) -> String {
        quote(ident)
    }
    fn table(&self, table: &str) -> String {
        qualified(&self.db, table)
    }
    fn add_column(&self, table: &str, col: &str, ty: &str, default: Option<&str>) -> Stmt {
        let def = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {ty} NULL{def}",
                self.table(table),
                quote(col)
            ),
        )
    }
    fn add_column_like(&self, table: &str, col: &str, like: &Column) -> Stmt {
        let mut ty = like.column_type.clone();
        if let Some(c) = &like.collation {
            ty.push_str(&format!(" COLLATE {c}"));
        }
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {ty} NULL",
                self.table(table),
                quote(col)
            ),
        )
    }
    fn drop_column(&self, table: &str, col: &str) -> Stmt {
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
                self.table(table),
                quote(col)
            ),
        )
    }
    fn create_trigger(&self, table: &str, tag: &str, t: &Trigger, info: &Table) -> Vec<Stmt> {
        let mut out = Vec::new();
        for (suffix, event, chains) in [("bi", "INSERT", &t.insert), ("bu", "UPDATE", &t.update)] {
            if chains.is_empty() {
                continue;
            }
            let body: Vec<String> = chains.iter().map(|c| self.chain(c, info)).collect();
            out.push(Stmt::new(
                StmtKind::CreateTrigger,
                format!(
                    "CREATE OR REPLACE TRIGGER {} BEFORE {event} ON {} FOR EACH ROW BEGIN {} END",
                    qualified(&self.db, &format!("{tag}_{suffix}")),
                    self.table(table),
                    body.join(" ")
                ),
            ));
        }
        out
    }
    fn drop_trigger(&self, _table: &str, tag: &str) -> Vec<Stmt> {
        ["bi", "bu"]
            .iter()
            .map(|s| {
                Stmt::new(
                    StmtKind::DropTrigger,
                    format!(
                        "DROP TRIGGER IF EXISTS {}",
                        qualified(&self.db, &format!("{tag}_{s}"))
                    ),
                )
            })
            .collect()
    }
    fn not_null_expand(&self, _table: &str, _col: &str, _tag: &str) -> Vec<Stmt> {
        vec![]
    }
    fn not_null_abort(&self, _table: &str, _tag: &str) -> Vec<Stmt> {
        vec![]
    }
    fn set_not_null(&self, table: &str, col: &Column, _tag: &str) -> Vec<Stmt> {
        vec![Stmt::new(
            StmtKind::SetNotNull,
            format!(
                "ALTER TABLE {} MODIFY COLUMN {} {}, ALGORITHM=INPLACE, LOCK=NONE",
                self.table(table),
                quote(&col.name),
                self.column_def(col, true)
            ),
        )]
    }
    fn add_index(&self, table: &str, name: &str, cols: &[String], unique: bool) -> Vec<Stmt> {
        let cols: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        vec![Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD {}INDEX IF NOT EXISTS {} ({}), ALGORITHM=INPLACE, LOCK=NONE",
                self.table(table),
                if unique { "UNIQUE " } else { "" },
                quote(name),
                cols.join(", ")
            ),
        )]
    }
    fn drop_index(&self, table: &str, name: &str) -> Stmt {
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP INDEX IF EXISTS {}, ALGORITHM=INPLACE, LOCK=NONE",
                self.table(table),
                quote(name)
            ),
        )
    }
    fn drop_synced_column(&self, table: &str, col: &str, tag: Option<&str>) -> Vec<Stmt> {
        let Some(tag) = tag else {
            return vec![self.drop_column(table, col)];
        };
        // Without the lock a write between the two statements would meet the trigger
        // naming a dropped column, or the NOT NULL column without the trigger that fills
        // it. Under the lock the drop is instant (MariaDB 10.4+, MySQL 8.0.29+; NOCOPY
        // when the column is indexed). The ALTER first: should it fail, the trigger stays.
        let mut out = vec![
            Stmt::new(
                StmtKind::Lock,
                format!("LOCK TABLES {} WRITE", self.table(table)),
            ),
            self.drop_column(table, col),
        ];
        out.extend(self.drop_trigger(table, tag));
        out.push(Stmt::new(StmtKind::Unlock, "UNLOCK TABLES"));
        out
    }
    fn rename_contract(&self, table: &str, from: &str, to: &str, tag: &str) -> Vec<Stmt> {
        // Without the lock a write between dropping the trigger and the ALTER would set
        // only the copy column and be lost.
        let mut out = vec![Stmt::new(
            StmtKind::Lock,
            format!("LOCK TABLES {} WRITE", self.table(table)),
        )];
        out.extend(self.drop_trigger(table, tag));
        out.push(Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP COLUMN {}, RENAME COLUMN {} TO {}",
                self.table(table),
                quote(to),
                quote(from),
                quote(to)
            ),
        ));
        out.push(Stmt::new(StmtKind::Unlock, "UNLOCK TABLES"));
        out
    }
    fn retype_contract(
        &self,
        table: &str,
        from: &str,
        col: &Column,
        after: Option<&str>,
        indexes: &[(String, String)],
        tag: &str,
    ) -> Vec<Stmt> {
        // The ALTER comes before dropping the triggers: should it fail, they still keep
        // both columns in sync. Under the lock no write can meet the stale triggers.
        // Dropping and re-adding in one ALTER is metadata only (ALGORITHM=NOCOPY).
        let mut parts: Vec<String> = indexes
            .iter()
            .map(|(_, orig)| format!("DROP INDEX {}", quote(orig)))
            .collect();
        parts.push(format!("DROP COLUMN {}", quote(&col.name)));
        parts.push(format!(
            "CHANGE COLUMN {} {} {} {}",
            quote(from),
            quote(&col.name),
            self.column_def(col, !col.nullable),
            match after {
                Some(a) => format!("AFTER {}", quote(a)),
                None => "FIRST".into(),
            }
        ));
        parts.extend(
            indexes
                .iter()
                .map(|(copy, orig)| format!("RENAME INDEX {} TO {}", quote(copy), quote(orig))),
        );
        let mut out = vec![
            Stmt::new(
                StmtKind::Lock,
                format!("LOCK TABLES {} WRITE", self.table(table)),
            ),
            Stmt::new(
                StmtKind::Alter,
                format!("ALTER TABLE {} {}", self.table(table), parts.join(", ")),
            ),
        ];
        out.extend(self.drop_trigger(table, tag));
        out.push(Stmt::new(StmtKind::Unlock, "UNLOCK TABLES"));
        out
    }
    fn temp_table(&self, name: &str, defs: &str) -> String {
        format!("CREATE TEMPORARY TABLE {} ({defs})", quote(name))
    }
    fn temp_table_like(&self, name: &str, table: &str) -> String {
        format!(
            "CREATE TEMPORARY TABLE {} LIKE {}",
            quote(name),
            self.table(table)
        )
    }
    fn drop_temp_table(&self, name: &str) -> String {
        format!("DROP TEMPORARY TABLE IF EXISTS {}", quote(name))
    }
    fn check_expand(&self, _table: &str, _name: &str, _check: &str) -> Vec<Stmt> {
        vec![]
    }
    fn check_contract(&self, table: &str, name: &str, check: &str, present: bool) -> Vec<Stmt> {
        if present {
            return vec![];
        }
        // Measured on MariaDB 10.11: INSTANT, NOCOPY and INPLACE are refused for ADD
        // CONSTRAINT … CHECK; COPY allows LOCK=SHARED at best. Left to the server so
        // that one able to do better does.
        vec![Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({check})",
                self.table(table),
                quote(name)
            ),
        )]
    }
    fn check_abort(&self, _table: &str, _name: &str) -> Vec<Stmt> {
        vec![]
    }
    fn key_params(&self, key: &[&Column], _first: usize) -> String {
        vec!["?"; key.len()].join(", ")
    }
    fn filter(&self, f: &Filter) -> String {
        match f {
            Filter::IsNull(c) => format!("{} IS NULL", quote(c)),
            Filter::Differs(a, b) => format!("NOT ({} <=> {})", quote(a), quote(b)),
            Filter::Holds(e) => format!("({e})"),
        }
    }
    fn begin(&self) -> &'static str {
        "START TRANSACTION"
    }
    fn text(&self, expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }
    fn foreign_key_needs_index(&self) -> bool {
        true
    }
    fn add_foreign_key(&self, fk: &AddForeignKey, index: Option<&str>) -> Vec<Stmt> {
        // With foreign_key_checks=0 InnoDB adds the key in place (instant when an index
        // exists) and does not read the existing rows; from then on every write is checked.
        let idx = index
            .map(|i| {
                let cols: Vec<String> = fk.columns.iter().map(|c| quote(c)).collect();
                format!(
                    "ADD INDEX IF NOT EXISTS {} ({}), ",
                    quote(i),
                    cols.join(", ")
                )
            })
            .unwrap_or_default();
        vec![
            Stmt::new(
                StmtKind::ForeignKeyChecks(false),
                "SET SESSION foreign_key_checks = 0",
            ),
            Stmt::new(
                StmtKind::AddForeignKey,
                format!(
                    "ALTER TABLE {} {idx}ADD CONSTRAINT {} {}, ALGORITHM=INPLACE, LOCK=NONE",
                    self.table(&fk.table),
                    quote(&fk.name),
                    self.fk_clause(fk)
                        .replacen("FOREIGN KEY", "FOREIGN KEY IF NOT EXISTS", 1)
                ),
            ),
            Stmt::new(
                StmtKind::ForeignKeyChecks(true),
                "SET SESSION foreign_key_checks = 1",
            ),
        ]
    }
    fn validate_foreign_key(&self, fk: &AddForeignKey, index: Option<&str>) -> Vec<Stmt> {
        // InnoDB has nothing to validate: the rows were checked by the guard query.
        index
            .map(|i| {
                Stmt::new(
                    StmtKind::RenameIndex,
                    format!(
                        "ALTER TABLE {} RENAME INDEX {} TO {}, ALGORITHM=INPLACE, LOCK=NONE",
                        self.table(&fk.table),
                        quote(i),
                        quote(&fk.name)
                    ),
                )
            })
            .into_iter()
            .collect()
    }
    fn drop_foreign_key(&self, table: &str, name: &str, index: Option<&str>) -> Vec<Stmt> {
        let idx = index
            .map(|i| format!(", DROP INDEX IF EXISTS {}", quote(i)))
            .unwrap_or_default();
        vec![Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP FOREIGN KEY IF EXISTS {}{idx}, ALGORITHM=INPLACE, LOCK=NONE",
                self.table(table),
                quote(name)
            ),
        )]
    }
    fn create_view(&self, view: &str, table: &str, _grants: &[Grant]) -> Vec<Stmt> {
        // MERGE keeps the view updatable (and LAST_INSERT_ID working); INVOKER: writers
        // need their own privileges on the table, the view lends them none.
        vec![Stmt::new(
            StmtKind::CreateView,
            format!(
            "CREATE OR REPLACE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW {} AS SELECT * FROM {}",
            self.table(view),
            self.table(table)
        ),
        )]
    }
    fn drop_view(&self, view: &str) -> Stmt {
        Stmt::new(
            StmtKind::DropView,
            format!("DROP VIEW IF EXISTS {}", self.table(view)),
        )
    }
    fn swap_view_for_table(&self, from: &str, to: &str, temp: &str) -> Vec<Stmt> {
        // One RENAME TABLE is atomic and may rename a view: the view steps aside and the
        // table takes its name in the same statement; the view is dropped after.
        let old = temp;
        vec![
            Stmt::new(
                StmtKind::RenameTable,
                format!(
                    "RENAME TABLE {} TO {}, {} TO {}",
                    self.table(to),
                    self.table(old),
                    self.table(from),
                    self.table(to)
                ),
            ),
            self.drop_view(old),
        ]
    }
    fn rename_table(&self, from: &str, to: &str) -> Stmt {
        Stmt::new(
            StmtKind::RenameTable,
            format!("RENAME TABLE {} TO {}", self.table(from), self.table(to)),
        )
    }
}

/// The catalog queries of the phases (see [`CatalogSql`]).
const CATALOG: CatalogSql = CatalogSql {
    row_estimate: "SELECT CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    relation_kind: "SELECT CASE WHEN TABLE_TYPE = 'VIEW' THEN 'v' ELSE 'r' END FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
};

/// A phase command's connection to MySQL/MariaDB.
pub struct MysqlPhaseDb {
    conn: mysql_async::Conn,
    dialect: Mysql,
    version: String,
    /// `--lock-timeout-seconds`, the session's lock wait bound.
    lock_timeout: Duration,
}

fn conn_err(e: mysql_async::Error, what: &str) -> Error {
    relabel(driver_err(e, what))
}

fn my_text(v: mysql_async::Value) -> Option<String> {
    use mysql_async::Value as V;
    match v {
        V::NULL => None,
        V::Bytes(b) => Some(String::from_utf8_lossy(&b).to_string()),
        V::Int(i) => Some(i.to_string()),
        V::UInt(u) => Some(u.to_string()),
        V::Float(f) => Some(f.to_string()),
        V::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn my_param(p: &Param) -> mysql_async::Value {
    match p {
        Param::Text(Some(s)) => mysql_async::Value::Bytes(s.clone().into_bytes()),
        Param::Text(None) => mysql_async::Value::NULL,
        Param::Int(i) => mysql_async::Value::Int(*i),
    }
}

/// Opens [`MysqlPhaseDb`]s.
pub struct MysqlPhases;

#[async_trait]
impl PhaseConnector for MysqlPhases {
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules {
        &super::SQL_RULES
    }
    async fn connect(&self, target: &Target, lock_timeout: Duration) -> Result<Db> {
        let opts = session::options(target, SessionKind::Phases { lock_timeout });
        let mut conn = session::connect(target, opts).await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| conn_err(e, "reading the server version"))?
            .unwrap_or_default();
        Ok(Box::new(MysqlPhaseDb {
            conn,
            dialect: Mysql {
                db: target.database.clone(),
            },
            version,
            lock_timeout,
        }))
    }
}

#[async_trait]
impl PhaseDb for MysqlPhaseDb {
    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }
    fn skips_locked_rows(&self) -> bool {
        // The same servers whose shared-lock reads can skip locked rows.
        super::sql::ShareLock::for_server(
            self.version.contains("MariaDB"),
            super::parse_version(&self.version),
        )
        .can_refuse()
    }
    fn refuse_lock_waits(&self) -> Option<(String, Option<String>)> {
        // MariaDB takes 0 (no wait); MySQL's smallest value is 1 s, which can still close
        // a deadlock, so MySQL goes straight to the SKIP LOCKED batch. Restored to the
        // session's own bound (--lock-timeout-seconds, see session.rs).
        (self.version.contains("MariaDB") && self.skips_locked_rows()).then(|| {
            (
                "SET SESSION innodb_lock_wait_timeout = 0".to_string(),
                Some(format!(
                    "SET SESSION innodb_lock_wait_timeout = {}",
                    self.lock_timeout.as_secs().max(1)
                )),
            )
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        tracing::debug!(sql, "exec");
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| conn_err(e, &short(sql)))
    }

    async fn exec_params(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        tracing::trace!(sql, "exec_params");
        let ps: Vec<mysql_async::Value> = params.iter().map(my_param).collect();
        self.conn
            .exec_drop(sql, ps)
            .await
            .map_err(|e| conn_err(e, &short(sql)))?;
        Ok(self.conn.affected_rows())
    }

    async fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows> {
        tracing::trace!(sql, "query");
        let ps: Vec<mysql_async::Value> = params.iter().map(my_param).collect();
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, ps)
            .await
            .map_err(|e| conn_err(e, &short(sql)))?;
        Ok(rows
            .into_iter()
            .map(|r| TextRow(r.unwrap().into_iter().map(my_text).collect()))
            .collect())
    }

    async fn load_values(&mut self, names: &[String]) -> Result<Vec<f64>> {
        super::load::read(&mut self.conn, names).await
    }

    async fn read_table(&mut self, name: &str) -> Result<Option<Table>> {
        let db = self.dialect.db.clone();
        let t = super::inspect::read(&mut self.conn, &db, name)
            .await
            .map_err(relabel)?;
        Ok(t.map(|(_, t)| t))
    }

    /// MySQL before 5.7.2 and MariaDB before 10.2.3 allow one trigger per event and
    /// timing: refuse there when the table already has one.
    async fn check_trigger_support(&mut self, table: &str) -> Result<()> {
        let version = &self.version;
        let mariadb = version.to_lowercase().contains("mariadb");
        let v: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(3)
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        let v = (
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
            v.get(2).copied().unwrap_or(0),
        );
        let multi = if mariadb {
            v >= (10, 2, 3)
        } else {
            v >= (5, 7, 2)
        };
        if multi {
            return Ok(());
        }
        let n = self
            .query(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? AND ACTION_TIMING = 'BEFORE'",
                &[Param::Text(Some(table.to_string()))],
            )
            .await?;
        if n.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Triggers,
                format!("table `{table}` already has a BEFORE trigger and this server allows only one per event (MySQL < 5.7.2 / MariaDB < 10.2.3)"),
            )
            .with_hint("upgrade the server, or fold the existing trigger's work into a `sql` operation"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn an_expression_mentions_whole_column_names_only() {
        assert!(mentions("CONCAT('c', id)", "id"));
        assert!(mentions("COALESCE(`Qty`, 0) * 2", "qty"));
        assert!(!mentions("CONCAT('c', id)", "c_id"));
        assert!(!mentions("valid + 1", "id"));
        assert!(!mentions("id_2 + 1", "id"));
        assert!(mentions("`my col` + 1", "my col"));
    }
}
