//! The phases on PostgreSQL: how their statements are spelled ([`Postgres`], the
//! dialect), the catalog queries, and the phase commands' connection ([`PgPhaseDb`]).

use super::conn::{connect as pg_connect, pg_err as driver_err};
use super::sql::{qualified, quote};
use crate::error::{Error, Result};
use crate::phases::catalog::CatalogSql;
use crate::phases::db::{relabel, short, Db, Param, PhaseConnector, PhaseDb, Rows, TextRow};
use crate::phases::dialect::Dialect;
use crate::phases::ops::{AddForeignKey, Chain, Cond, Filter, Stmt, StmtKind, Trigger, Val};
use crate::schema::{Column, Grant, Table};
use crate::target::Target;
use async_trait::async_trait;
use std::time::Duration;

pub struct Postgres {
    pub schema: String,
    /// `server_version_num`, e.g. 150004.
    pub version: u32,
}

impl Postgres {
    fn val(v: &Val) -> String {
        Self::val_of(v, "NEW")
    }

    /// `v` over the row `row` (`NEW`, or `OLD` in an UPDATE trigger).
    fn val_of(v: &Val, row: &str) -> String {
        match v {
            Val::Col(c) => format!("{row}.{}", quote(c)),
            // The user's expression names the row's columns bare: select it from the row.
            Val::Expr(e) => format!("(SELECT ({e}) FROM (SELECT {row}.*) AS _godwit_row)"),
        }
    }

    /// The column's type has no equality operator (json, xml, geometric types): values
    /// are compared as text.
    fn no_equality(c: &str, info: &Table) -> bool {
        let ty = info
            .column_exact(c)
            .map(|k| k.column_type.to_lowercase())
            .unwrap_or_default();
        matches!(
            ty.as_str(),
            "json" | "xml" | "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle"
        )
    }

    /// `expr` in a form `IS DISTINCT FROM` can compare as the column `c`'s values.
    fn comparable(expr: String, c: &str, info: &Table) -> String {
        if Self::no_equality(c, info) {
            format!("({expr})::text")
        } else {
            expr
        }
    }

    /// A trigger condition; `Cond::Always` is handled by [`Postgres::chain`].
    fn cond(c: &Cond, info: &Table) -> String {
        match c {
            Cond::IsNull(c) => format!("NEW.{} IS NULL", quote(c)),
            Cond::Changed(c) => format!(
                "{} IS DISTINCT FROM {}",
                Self::comparable(format!("NEW.{}", quote(c)), c, info),
                Self::comparable(format!("OLD.{}", quote(c)), c, info)
            ),
            // Compared as the column's type: an expression of another type (one that
            // assignment would convert) must not make the comparison itself fail.
            Cond::Differs(c, v) => match info.column_exact(c) {
                Some(col) => format!(
                    "NEW.{} IS DISTINCT FROM CAST({} AS {})",
                    quote(c),
                    Self::val(v),
                    col.column_type
                ),
                None => format!("NEW.{} IS DISTINCT FROM {}", quote(c), Self::val(v)),
            },
            Cond::Holds(e) => Self::val(&Val::Expr(e.clone())),
            // Compared as the column's type, as for `Differs`.
            Cond::Was(c, v) => {
                let derived = match info.column_exact(c) {
                    Some(col) => format!("CAST({} AS {})", Self::val_of(v, "OLD"), col.column_type),
                    None => Self::val_of(v, "OLD"),
                };
                format!(
                    "{} IS NOT DISTINCT FROM {}",
                    Self::comparable(format!("OLD.{}", quote(c)), c, info),
                    Self::comparable(derived, c, info)
                )
            }
            Cond::All(cs) => cs
                .iter()
                .map(|c| format!("({})", Self::cond(c, info)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Cond::Any(cs) => cs
                .iter()
                .map(|c| format!("({})", Self::cond(c, info)))
                .collect::<Vec<_>>()
                .join(" OR "),
            Cond::Not(c) => format!("NOT ({})", Self::cond(c, info)),
            Cond::Always => "TRUE".into(),
        }
    }

    fn chain(chain: &Chain, info: &Table) -> String {
        let mut out = String::new();
        for (i, b) in chain.iter().enumerate() {
            let set = format!("NEW.{} := {};", quote(&b.col), Self::val(&b.val));
            let cond = match &b.cond {
                Cond::Always => {
                    if i == 0 {
                        out.push_str(&set);
                    } else {
                        out.push_str(&format!(" ELSE {set}"));
                    }
                    break;
                }
                c => Self::cond(c, info),
            };
            let kw = if i == 0 { "IF" } else { " ELSIF" };
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

    fn function(&self, tag: &str) -> String {
        qualified(&self.schema, &format!("{tag}_fn"))
    }
}

impl Dialect for Postgres {
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules {
        &super::SQL_RULES
    }
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
    fn read_only(&self) -> &'static str {
        "SET default_transaction_read_only = on"
    }
    fn transactional_ddl(&self) -> bool {
        true
    }
    fn runner_lock(&self) -> (String, Vec<Param>, &'static str) {
        (
            "SELECT pg_try_advisory_lock(hashtext('godwit_phases.' || current_schema()))::text"
                .into(),
            vec![],
            "true",
        )
    }
    fn catalog(&self) -> &'static CatalogSql {
        &CATALOG
    }
    fn create_state_table(&self, t: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, \
             phase text NOT NULL, backfill_op bigint NOT NULL DEFAULT 0, backfill_after text, \
             rows_backfilled bigint NOT NULL DEFAULT 0, applied_by text, started_at timestamptz, \
             expanded_at timestamptz, backfilled_at timestamptz, contracted_at timestamptz, \
             aborted_at timestamptz, updated_at timestamptz)"
        )
    }
    fn now(&self) -> &'static str {
        "now()"
    }
    fn current_user(&self) -> &'static str {
        "current_user::text"
    }
    fn quote(&self, ident: &str) -> String {
        quote(ident)
    }
    fn table(&self, table: &str) -> String {
        qualified(&self.schema, table)
    }
    fn add_column(&self, table: &str, col: &str, ty: &str, default: Option<&str>) -> Stmt {
        let def = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {ty}{def}",
                self.table(table),
                quote(col)
            ),
        )
    }
    fn add_column_like(&self, table: &str, col: &str, like: &Column) -> Stmt {
        let coll = like
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{coll}",
                self.table(table),
                quote(col),
                like.column_type
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
        let ins: Vec<String> = t.insert.iter().map(|c| Self::chain(c, info)).collect();
        let upd: Vec<String> = t.update.iter().map(|c| Self::chain(c, info)).collect();
        let events = match (ins.is_empty(), upd.is_empty()) {
            (false, false) => "INSERT OR UPDATE",
            (false, true) => "INSERT",
            (true, false) => "UPDATE",
            (true, true) => return vec![],
        };
        // A BEFORE trigger that only assigns NEW cannot recurse; no pg_trigger_depth()
        // guard is needed.
        vec![
            Stmt::new(StmtKind::Function, format!(
                "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $godwit$\nBEGIN\n  IF TG_OP = 'INSERT' THEN\n    {}\n  ELSE\n    {}\n  END IF;\n  RETURN NEW;\nEND\n$godwit$",
                self.function(tag),
                if ins.is_empty() { "NULL;".into() } else { ins.join("\n    ") },
                if upd.is_empty() { "NULL;".into() } else { upd.join("\n    ") },
            )),
            Stmt::new(StmtKind::CreateTrigger, format!(
                "CREATE OR REPLACE TRIGGER {} BEFORE {events} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
                quote(tag),
                self.table(table),
                self.function(tag)
            )),
        ]
    }
    fn drop_trigger(&self, table: &str, tag: &str) -> Vec<Stmt> {
        vec![
            Stmt::new(
                StmtKind::DropTrigger,
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    quote(tag),
                    self.table(table)
                ),
            ),
            Stmt::new(
                StmtKind::Function,
                format!("DROP FUNCTION IF EXISTS {}()", self.function(tag)),
            ),
        ]
    }
    fn not_null_expand(&self, table: &str, col: &str, tag: &str) -> Vec<Stmt> {
        self.check_expand(
            table,
            &format!("{tag}_nn"),
            &format!("{} IS NOT NULL", quote(col)),
        )
    }
    fn not_null_abort(&self, table: &str, tag: &str) -> Vec<Stmt> {
        self.check_abort(table, &format!("{tag}_nn"))
    }
    fn set_not_null(&self, table: &str, col: &Column, tag: &str) -> Vec<Stmt> {
        // VALIDATE scans under SHARE UPDATE EXCLUSIVE on its own; SET NOT NULL then uses
        // the validated check and does not scan under ACCESS EXCLUSIVE.
        let t = self.table(table);
        let chk = quote(&format!("{tag}_nn"));
        vec![
            Stmt::concurrent(
                StmtKind::ProveNotNull,
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {chk}"),
            ),
            Stmt::new(
                StmtKind::SetNotNull,
                format!(
                    "ALTER TABLE {t} ALTER COLUMN {} SET NOT NULL",
                    quote(&col.name)
                ),
            ),
            Stmt::new(
                StmtKind::Alter,
                format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {chk}"),
            ),
        ]
    }
    fn add_index(&self, table: &str, name: &str, cols: &[String], unique: bool) -> Vec<Stmt> {
        let cols: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        vec![
            // An interrupted CONCURRENTLY build leaves an invalid index behind.
            Stmt::concurrent(
                StmtKind::DropIndexConcurrently,
                format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    qualified(&self.schema, name)
                ),
            ),
            Stmt::concurrent(
                StmtKind::CreateIndex,
                format!(
                    "CREATE {}INDEX CONCURRENTLY {} ON {} ({})",
                    if unique { "UNIQUE " } else { "" },
                    quote(name),
                    self.table(table),
                    cols.join(", ")
                ),
            ),
        ]
    }
    fn drop_index(&self, _table: &str, name: &str) -> Stmt {
        Stmt::concurrent(
            StmtKind::DropIndexConcurrently,
            format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                qualified(&self.schema, name)
            ),
        )
    }
    fn rename_contract(&self, table: &str, from: &str, to: &str, tag: &str) -> Vec<Stmt> {
        let t = self.table(table);
        let mut out = self.drop_trigger(table, tag);
        out.push(Stmt::new(
            StmtKind::Alter,
            format!("ALTER TABLE {t} DROP COLUMN {}", quote(to)),
        ));
        out.push(Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                quote(from),
                quote(to)
            ),
        ));
        out
    }
    fn retype_contract(
        &self,
        table: &str,
        from: &str,
        col: &Column,
        _after: Option<&str>,
        indexes: &[(String, String)],
        tag: &str,
    ) -> Vec<Stmt> {
        // Column order cannot change without a rewrite: the column stays last.
        // DROP COLUMN takes the old column's indexes with it.
        let mut out = self.rename_contract(table, from, &col.name, tag);
        if let Some(d) = &col.default {
            out.push(self.set_default(table, &col.name, d));
        }
        for (copy, orig) in indexes {
            out.push(Stmt::new(
                StmtKind::RenameIndex,
                format!(
                    "ALTER INDEX {} RENAME TO {}",
                    qualified(&self.schema, copy),
                    quote(orig)
                ),
            ));
        }
        out
    }
    fn temp_table(&self, name: &str, defs: &str) -> String {
        format!("CREATE TEMPORARY TABLE {} ({defs})", quote(name))
    }
    fn temp_table_like(&self, name: &str, table: &str) -> String {
        format!(
            "CREATE TEMPORARY TABLE {} (LIKE {})",
            quote(name),
            self.table(table)
        )
    }
    fn drop_temp_table(&self, name: &str) -> String {
        format!("DROP TABLE IF EXISTS pg_temp.{}", quote(name))
    }
    fn check_expand(&self, table: &str, name: &str, check: &str) -> Vec<Stmt> {
        let mut out = self.check_abort(table, name);
        out.push(Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({check}) NOT VALID",
                self.table(table),
                quote(name)
            ),
        ));
        out
    }
    fn check_contract(&self, table: &str, name: &str, _check: &str, _present: bool) -> Vec<Stmt> {
        // SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans.
        vec![Stmt::concurrent(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                self.table(table),
                quote(name)
            ),
        )]
    }
    fn check_abort(&self, table: &str, name: &str) -> Vec<Stmt> {
        vec![Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                self.table(table),
                quote(name)
            ),
        )]
    }
    fn text(&self, expr: &str) -> String {
        format!("({expr})::text")
    }
    /// `$n::text::type, …` starting at parameter `first`.
    fn key_params(&self, key: &[&Column], first: usize) -> String {
        key.iter()
            .enumerate()
            .map(|(i, c)| format!("${}::text::{}", first + i, c.column_type))
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn filter(&self, f: &Filter) -> String {
        match f {
            Filter::IsNull(c) => format!("{} IS NULL", quote(c)),
            Filter::Differs(a, b) => format!("{} IS DISTINCT FROM {}", quote(a), quote(b)),
            Filter::Holds(e) => format!("({e})"),
        }
    }
    fn add_foreign_key(&self, fk: &AddForeignKey, _index: Option<&str>) -> Vec<Stmt> {
        // NOT VALID: SHARE ROW EXCLUSIVE on both tables for a moment, no scan; new rows
        // are checked from the commit on.
        vec![Stmt::new(
            StmtKind::AddForeignKey,
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID",
                self.table(&fk.table),
                quote(&fk.name),
                self.fk_clause(fk)
            ),
        )]
    }
    fn validate_foreign_key(&self, fk: &AddForeignKey, _index: Option<&str>) -> Vec<Stmt> {
        // SHARE UPDATE EXCLUSIVE on the table, ROW SHARE on the referenced one: reads and
        // writes go on while it scans. A valid key validates again as a no-op.
        vec![Stmt::concurrent(
            StmtKind::ValidateForeignKey,
            format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                self.table(&fk.table),
                quote(&fk.name)
            ),
        )]
    }
    fn drop_foreign_key(&self, table: &str, name: &str, _index: Option<&str>) -> Vec<Stmt> {
        vec![Stmt::new(
            StmtKind::Alter,
            format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                self.table(table),
                quote(name)
            ),
        )]
    }
    fn create_view(&self, view: &str, table: &str, grants: &[Grant]) -> Vec<Stmt> {
        // security_invoker (15+): writers use their own privileges on the table, the view
        // lends them none. The table's privileges are granted on the view too, so every
        // role that can use the old name can use the new one.
        let opts = if self.version >= 150_000 {
            " WITH (security_invoker = true)"
        } else {
            ""
        };
        let v = self.table(view);
        let mut out = vec![Stmt::new(
            StmtKind::CreateView,
            format!(
                "CREATE OR REPLACE VIEW {v}{opts} AS SELECT * FROM {}",
                self.table(table)
            ),
        )];
        for g in grants {
            let who = if g.grantee == "PUBLIC" {
                "PUBLIC".to_string()
            } else {
                quote(&g.grantee)
            };
            out.push(Stmt::new(
                StmtKind::Grant,
                format!("GRANT {} ON {v} TO {who}", g.privilege),
            ));
        }
        out
    }
    fn drop_view(&self, view: &str) -> Stmt {
        Stmt::new(
            StmtKind::DropView,
            format!("DROP VIEW IF EXISTS {}", self.table(view)),
        )
    }
    fn swap_view_for_table(&self, from: &str, to: &str, _temp: &str) -> Vec<Stmt> {
        // Both in the phase's one transaction: nobody sees `to` missing.
        vec![self.drop_view(to), self.rename_table(from, to)]
    }
    fn rename_table(&self, from: &str, to: &str) -> Stmt {
        Stmt::new(
            StmtKind::RenameTable,
            format!("ALTER TABLE {} RENAME TO {}", self.table(from), quote(to)),
        )
    }
}

/// The catalog queries of the phases (see [`CatalogSql`]).
const CATALOG: CatalogSql = CatalogSql {
    row_estimate: "SELECT greatest(c.reltuples, 0)::bigint::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1::text AND c.relkind IN ('r','p')",
    relation_kind: "SELECT CASE WHEN c.relkind = 'v' THEN 'v' ELSE 'r' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1::text AND c.relkind IN ('r','p','v')",
};

/// A phase command's connection to PostgreSQL.
pub struct PgPhaseDb {
    client: tokio_postgres::Client,
    dialect: Postgres,
}

fn pg_err(e: tokio_postgres::Error, what: &str) -> Error {
    relabel(driver_err(e, what))
}

fn pg_params(params: &[Param]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

/// Opens [`PgPhaseDb`]s.
pub struct PgPhases;

#[async_trait]
impl PhaseConnector for PgPhases {
    fn sql_rules(&self) -> &'static crate::ddl::SqlRules {
        &super::SQL_RULES
    }
    async fn connect(&self, target: &Target, lock_timeout: Duration) -> Result<Db> {
        let client = pg_connect(target, "phases").await?;
        let ms = lock_timeout.as_millis().max(1);
        client
            .batch_execute(&format!("SET lock_timeout = {ms}"))
            .await
            .map_err(|e| pg_err(e, "setting lock_timeout"))?;
        let schema: String = client
            .query_one("SELECT current_schema()::text", &[])
            .await
            .and_then(|r| r.try_get::<_, Option<String>>(0))
            .map_err(|e| pg_err(e, "reading the current schema"))?
            .ok_or_else(|| Error::bad_input("no current schema: set search_path for the user"))?;
        let version: u32 = client
            .query_one("SELECT current_setting('server_version_num')", &[])
            .await
            .and_then(|r| r.try_get::<_, String>(0))
            .map_err(|e| pg_err(e, "reading the server version"))?
            .parse()
            .unwrap_or(0);
        Ok(Box::new(PgPhaseDb {
            client,
            dialect: Postgres { schema, version },
        }))
    }
}

#[async_trait]
impl PhaseDb for PgPhaseDb {
    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }
    fn skips_locked_rows(&self) -> bool {
        true
    }
    fn refuse_lock_waits(&self) -> Option<(String, Option<String>)> {
        // Until the transaction ends; 1 ms is the shortest wait the setting takes.
        Some(("SET LOCAL lock_timeout = '1ms'".into(), None))
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        tracing::debug!(sql, "exec");
        // The extended protocol: one statement, never a batch.
        self.client
            .execute(sql, &[])
            .await
            .map(|_| ())
            .map_err(|e| pg_err(e, &short(sql)))
    }

    async fn exec_params(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        tracing::trace!(sql, "exec_params");
        let boxed = pg_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.client
            .execute(sql, &refs)
            .await
            .map_err(|e| pg_err(e, &short(sql)))
    }

    async fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows> {
        tracing::trace!(sql, "query");
        let boxed = pg_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self
            .client
            .query(sql, &refs)
            .await
            .map_err(|e| pg_err(e, &short(sql)))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Option<String>>(i))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(TextRow)
                    .map_err(|e| pg_err(e, &short(sql)))
            })
            .collect()
    }

    async fn load_values(&mut self, names: &[String]) -> Result<Vec<f64>> {
        super::load::read(&self.client, names).await
    }

    async fn read_table(&mut self, name: &str) -> Result<Option<Table>> {
        let t = super::inspect::read(&self.client, None, name)
            .await
            .map_err(relabel)?;
        Ok(t.map(|(t, _)| t))
    }
}
