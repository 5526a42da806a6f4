//! PostgreSQL: the lock each clause takes, and whether it rewrites the table, scans it, or
//! only touches the catalog, per server version. Pure functions over the parsed clause
//! and the table's facts.
//!
//! Checked on PostgreSQL 15 by `tests/plan_postgres.rs` (relfilenode, `pg_locks`, and the
//! transaction's sequential-scan counter for every corpus entry).

use super::classify_clauses::{self as pg_clauses, Clause, ClauseKind, PgClause};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Change, ChangeKind, Facts, PgLock, PlanOptions, Recommendation, Strategy};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnDef, ColumnOption, DataType, Expr, Statement,
    TableConstraint,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The parsed input: the clauses of an ALTER TABLE, or a CREATE INDEX.
#[derive(Debug, Clone)]
pub enum Parsed {
    Alter(Vec<AlterClause>),
    CreateIndex(Box<sqlparser::ast::CreateIndex>),
}

/// One clause of an ALTER TABLE.
#[derive(Debug, Clone)]
pub enum AlterClause {
    /// Parsed by sqlparser; `text` is the user's clause when sqlparser was given it without
    /// a part it cannot read (see [`super::classify_clauses`]).
    Sql {
        op: Box<AlterTableOperation>,
        text: Option<String>,
    },
    /// Read from its tokens.
    Read(PgClause),
}

impl AlterClause {
    /// The clause as it will be run.
    pub fn text(&self) -> String {
        match self {
            AlterClause::Sql { op, text } => text.clone().unwrap_or_else(|| op.to_string()),
            AlterClause::Read(c) => c.text.clone(),
        }
    }
}

/// Parse `--alter`: a clause list, `ALTER TABLE … clauses`, or `CREATE [UNIQUE] INDEX
/// [CONCURRENTLY] … ON table (…)`. Clauses sqlparser does not read are read from their
/// tokens ([`super::classify_clauses`]); the others are parsed by sqlparser one by one.
pub fn parse(table: &str, alter: &str) -> Result<Parsed> {
    let bad = |e: String| {
        Error::new(ErrorKind::BadInput, format!("cannot parse the ALTER: {e}")).with_hint(
            "give ALTER TABLE clauses (ADD COLUMN …, ALTER COLUMN …) or one CREATE INDEX statement",
        )
    };
    let trimmed = crate::plan::as_statement(&super::SQL_RULES, alter, "t")?;
    let trimmed = trimmed.as_str();
    if trimmed
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("CREATE"))
    {
        let stmts =
            Parser::parse_sql(&PostgreSqlDialect {}, trimmed).map_err(|e| bad(e.to_string()))?;
        return match stmts.into_iter().next() {
            Some(Statement::CreateIndex(ci)) => Ok(Parsed::CreateIndex(Box::new(ci))),
            _ => Err(bad(
                "only CREATE INDEX is planned besides ALTER TABLE".into()
            )),
        };
    }
    let _ = table;
    let (head, clauses) = pg_clauses::split(trimmed)?;
    let mut ops = Vec::new();
    for c in clauses {
        match c {
            Clause::Read(r) => ops.push(AlterClause::Read(r)),
            Clause::Parsed { sql, text } => {
                let stmt = if head.is_empty() {
                    sql
                } else {
                    format!("{head} {sql}")
                };
                let stmts = Parser::parse_sql(&PostgreSqlDialect {}, &stmt)
                    .map_err(|e| bad(e.to_string()))?;
                match stmts.into_iter().next() {
                    Some(Statement::AlterTable(a)) if !a.operations.is_empty() => {
                        ops.extend(a.operations.into_iter().map(|op| AlterClause::Sql {
                            op: Box::new(op),
                            text: text.clone(),
                        }))
                    }
                    _ => return Err(bad("expected ALTER TABLE clauses".into())),
                }
            }
        }
    }
    if ops.is_empty() {
        return Err(bad("expected ALTER TABLE clauses".into()));
    }
    Ok(Parsed::Alter(ops))
}

/// The clause list as text (for the recommended statements).
pub fn clause_text(p: &Parsed) -> String {
    match p {
        Parsed::Alter(ops) => ops
            .iter()
            .map(AlterClause::text)
            .collect::<Vec<_>>()
            .join(", "),
        Parsed::CreateIndex(ci) => ci.to_string(),
    }
}

fn collect_functions(e: &Expr, out: &mut Vec<String>) {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    match e {
        Expr::Function(f) => {
            out.push(
                f.name
                    .0
                    .last()
                    .map(|p| p.to_string().trim_matches('"').to_lowercase())
                    .unwrap_or_default(),
            );
            if let FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(x),
                        ..
                    } = a
                    {
                        collect_functions(x, out);
                    }
                }
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            collect_functions(left, out);
            collect_functions(right, out);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            collect_functions(expr, out)
        }
        _ => {}
    }
}

fn default_expr(d: &ColumnDef) -> Option<&Expr> {
    d.options.iter().find_map(|o| match &o.option {
        ColumnOption::Default(e) => Some(e),
        _ => None,
    })
}

/// Functions called by defaults (their volatility decides whether ADD COLUMN rewrites).
pub fn functions_called(p: &Parsed) -> Vec<String> {
    let mut out = Vec::new();
    if let Parsed::Alter(ops) = p {
        for o in ops {
            let AlterClause::Sql { op: o, .. } = o else {
                continue;
            };
            match o.as_ref() {
                AlterTableOperation::AddColumn { column_def, .. } => {
                    if let Some(e) = default_expr(column_def) {
                        collect_functions(e, &mut out);
                    }
                }
                AlterTableOperation::AlterColumn {
                    op: AlterColumnOperation::SetDefault { value },
                    ..
                } => collect_functions(value, &mut out),
                _ => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn set(c: &mut Change, lock: PgLock, rewrite: bool, scan: bool, reason: impl Into<String>) {
    c.pg_lock = Some(lock);
    c.rewrite = rewrite;
    c.scan = scan || rewrite;
    c.blocks_writes = lock.blocks_writes();
    c.blocks_reads = lock.blocks_reads();
    c.reason = reason.into();
}

fn ident_cols(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter()
        .map(|c| crate::plan::unquote(&c.column.expr.to_string()))
        .collect()
}

/// Classify every clause.
pub fn classify_all(p: &Parsed, f: &Facts, volatile: &[String]) -> Result<Vec<Change>> {
    Ok(match p {
        Parsed::CreateIndex(ci) => vec![create_index(ci)],
        Parsed::Alter(ops) => ops
            .iter()
            .map(|o| match o {
                AlterClause::Sql { op, text } => {
                    let mut c = classify(op, f, volatile);
                    if let Some(t) = text {
                        // `TYPE … COLLATE x`: a new collation rebuilds the column's indexes.
                        let indexed = c
                            .columns
                            .first()
                            .and_then(|k| f.column(k))
                            .is_some_and(|k| f.indexed(&k.name));
                        if c.op == ChangeKind::ChangeType && !c.rewrite && indexed {
                            c.scan = true;
                            c.reason = "the type stays binary-coercible (no rewrite), but a new collation rebuilds the column's indexes under ACCESS EXCLUSIVE".into();
                        }
                        c.clause = t.clone();
                    }
                    c
                }
                AlterClause::Read(r) => classify_read(r, f),
            })
            .collect(),
    })
}

fn create_index(ci: &sqlparser::ast::CreateIndex) -> Change {
    let mut c = Change::new(
        ci.to_string(),
        if ci.unique {
            ChangeKind::AddUnique
        } else {
            ChangeKind::AddIndex
        },
    );
    c.columns = ident_cols(&ci.columns);
    c.new_name = ci
        .name
        .as_ref()
        .map(|n| crate::plan::unquote(&n.to_string()));
    if ci.concurrently {
        set(
            &mut c,
            PgLock::ShareUpdateExclusive,
            false,
            true,
            "CREATE INDEX CONCURRENTLY scans the table twice while writes continue",
        );
    } else {
        set(
            &mut c,
            PgLock::Share,
            false,
            true,
            "CREATE INDEX without CONCURRENTLY blocks writes while it scans the table",
        );
    }
    c
}

/// A PostgreSQL type's canonical name and modifiers: `timestamp(3) with time zone` →
/// (`timestamptz`, [3]).
fn pg_type(t: &str) -> (String, Vec<u64>) {
    let t = t.trim().to_lowercase();
    let (name, args) = crate::plan::type_parts(&t);
    let zoned = t.contains("with time zone") || name == "timestamptz" || name == "timetz";
    let unzoned = t.contains("without time zone");
    let name = match name.as_str() {
        "character varying" | "varchar" => "varchar",
        "integer" | "int" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "numeric" | "decimal" => "numeric",
        "character" | "char" | "bpchar" => "bpchar",
        "double precision" | "float8" => "float8",
        "real" | "float4" => "float4",
        "timestamp"
        | "timestamptz"
        | "timestamp without time zone"
        | "timestamp with time zone" => {
            if zoned && !unzoned {
                "timestamptz"
            } else {
                "timestamp"
            }
        }
        "time" | "timetz" | "time without time zone" | "time with time zone" => {
            if zoned && !unzoned {
                "timetz"
            } else {
                "time"
            }
        }
        other => other,
    }
    .to_string();
    (name, args)
}

/// Does changing a column of type `old` to `new` rewrite the table? Binary-coercible
/// changes do not: varchar(n) → varchar(m ≥ n), → text, text → varchar,
/// numeric(p,s) → numeric(p' ≥ p, s), → numeric, cidr → inet, a timestamp gaining
/// precision. timestamp ↔ timestamptz does not either when the session's TimeZone is
/// UTC at every instant (`session_utc`, PostgreSQL 12+) and the new type has no precision
/// below 6 (a precision is applied to the converted value, measured on 15: timestamp →
/// timestamptz(3) rewrites, → timestamptz(6) does not).
pub fn type_change_rewrites(old: &str, new: &DataType, session_utc: bool) -> bool {
    let (o, oa) = pg_type(old);
    let (n, na) = pg_type(&new.to_string());
    if o == n && oa == na {
        return false;
    }
    // An unconstrained timestamp has precision 6.
    let precision = |a: &[u64]| a.first().copied().unwrap_or(6);
    match (o.as_str(), n.as_str()) {
        ("varchar", "varchar") => match (oa.first(), na.first()) {
            (_, None) => false,
            (Some(ol), Some(nl)) => nl < ol,
            (None, Some(_)) => true,
        },
        ("varchar", "text") => false,
        ("text", "varchar") => !na.is_empty(),
        ("numeric", "numeric") => match (oa.as_slice(), na.as_slice()) {
            (_, []) => false,
            ([op, os], [np, ns]) => !(np >= op && ns == os),
            ([op], [np]) => np < op,
            ([op], [np, 0]) => np < op,
            _ => true,
        },
        ("varbit" | "bit varying", "varbit" | "bit varying") => match (oa.first(), na.first()) {
            (_, None) => false,
            (Some(ol), Some(nl)) => nl < ol,
            _ => true,
        },
        ("cidr", "inet") => false,
        ("timestamp", "timestamp") | ("timestamptz", "timestamptz") => {
            precision(&na) < precision(&oa)
        }
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => {
            !session_utc || precision(&na) < 6
        }
        _ => true,
    }
}

/// `USING` that is the column itself (or the column cast to the new type): the
/// conversion is the type's own, as without `USING`.
fn using_is_plain(e: &Expr, col: &str, new: &DataType) -> bool {
    let is_col = |e: &Expr| match e {
        Expr::Identifier(i) => i.value == col,
        _ => false,
    };
    match e {
        Expr::Nested(x) => using_is_plain(x, col, new),
        Expr::Cast {
            expr, data_type, ..
        } => is_col(expr) && pg_type(&data_type.to_string()) == pg_type(&new.to_string()),
        e => is_col(e),
    }
}

/// Classify one clause.
pub fn classify(op: &AlterTableOperation, f: &Facts, volatile: &[String]) -> Change {
    let v = f.version;
    let text = op.to_string();
    use AlterTableOperation as A;
    match op {
        A::AddColumn { column_def, .. } => {
            let mut c = Change::new(text, ChangeKind::AddColumn);
            c.columns = vec![column_def.name.value.clone()];
            c.new_type = Some(column_def.data_type.to_string());
            add_column(&mut c, column_def, f, volatile);
            c
        }
        A::DropColumn { column_names, .. } => {
            let mut c = Change::new(text, ChangeKind::DropColumn);
            c.columns = column_names.iter().map(|i| i.value.clone()).collect();
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "DROP COLUMN only marks the column dropped in the catalog",
            );
            c
        }
        A::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let mut c = Change::new(text, ChangeKind::RenameColumn);
            c.columns = vec![old_column_name.value.clone()];
            c.new_name = Some(new_column_name.value.clone());
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "a rename is a catalog change (brief ACCESS EXCLUSIVE lock)",
            );
            c
        }
        A::RenameTable { table_name } => {
            let mut c = Change::new(text, ChangeKind::RenameTable);
            let n = match table_name {
                sqlparser::ast::RenameTableNameKind::As(n)
                | sqlparser::ast::RenameTableNameKind::To(n) => n.to_string(),
            };
            c.new_name = Some(crate::plan::unquote(&n));
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "a rename is a catalog change (brief ACCESS EXCLUSIVE lock)",
            );
            c
        }
        A::RenameConstraint { old_name, new_name } => {
            let mut c = Change::new(text, ChangeKind::RenameConstraint);
            c.new_name = Some(new_name.value.clone());
            let _ = old_name;
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "renaming a constraint is a catalog change",
            );
            c
        }
        A::AlterColumn { column_name, op } => {
            let col = column_name.value.clone();
            let mut c;
            match op {
                AlterColumnOperation::SetDefault { .. } => {
                    c = Change::new(text, ChangeKind::SetDefault);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        false,
                        "a default is a catalog change; existing rows keep their values",
                    );
                }
                AlterColumnOperation::DropDefault => {
                    c = Change::new(text, ChangeKind::DropDefault);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        false,
                        "dropping a default is a catalog change",
                    );
                }
                AlterColumnOperation::DropNotNull => {
                    c = Change::new(text, ChangeKind::DropNotNull);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        false,
                        "dropping NOT NULL is a catalog change",
                    );
                }
                AlterColumnOperation::SetNotNull => {
                    c = Change::new(text, ChangeKind::SetNotNull);
                    let proven = v >= (12, 0, 0)
                        && f.proven_not_null
                            .iter()
                            .any(|p| p.eq_ignore_ascii_case(&col));
                    let already = f.column(&col).map(|k| !k.nullable).unwrap_or(false);
                    if proven || already {
                        set(
                            &mut c,
                            PgLock::AccessExclusive,
                            false,
                            false,
                            "a valid CHECK (col IS NOT NULL) proves it: no scan (PostgreSQL 12+)",
                        );
                    } else {
                        set(
                            &mut c,
                            PgLock::AccessExclusive,
                            false,
                            true,
                            "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
                        );
                    }
                }
                AlterColumnOperation::SetDataType {
                    data_type, using, ..
                } => {
                    c = Change::new(text, ChangeKind::ChangeType);
                    c.new_type = Some(data_type.to_string());
                    retype(&mut c, &col, data_type, using.as_ref(), f);
                }
                AlterColumnOperation::AddGenerated { .. } => {
                    c = Change::new(text, ChangeKind::Other);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        false,
                        "adding identity to a column is a catalog change",
                    );
                }
            }
            c.columns = vec![col];
            c
        }
        A::AddConstraint {
            constraint,
            not_valid,
        } => {
            let mut c;
            match constraint {
                TableConstraint::ForeignKey(fk) => {
                    c = Change::new(text, ChangeKind::AddForeignKey);
                    c.columns = fk.columns.iter().map(|i| i.value.clone()).collect();
                    if *not_valid {
                        set(&mut c, PgLock::ShareRowExclusive, false, false, "NOT VALID: no scan; run VALIDATE CONSTRAINT later (SHARE UPDATE EXCLUSIVE)");
                    } else {
                        set(&mut c, PgLock::ShareRowExclusive, false, true, "the foreign key is validated by scanning the table under SHARE ROW EXCLUSIVE (writes wait)");
                    }
                }
                TableConstraint::Check(_) => {
                    c = Change::new(text, ChangeKind::AddCheck);
                    if *not_valid {
                        set(
                            &mut c,
                            PgLock::AccessExclusive,
                            false,
                            false,
                            "NOT VALID: catalog only; run VALIDATE CONSTRAINT later",
                        );
                    } else {
                        set(
                            &mut c,
                            PgLock::AccessExclusive,
                            false,
                            true,
                            "the CHECK is validated by scanning the table under ACCESS EXCLUSIVE",
                        );
                    }
                }
                TableConstraint::Unique(u) => {
                    c = Change::new(text, ChangeKind::AddUnique);
                    c.columns = ident_cols(&u.columns);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        true,
                        "the unique index is built under ACCESS EXCLUSIVE",
                    );
                }
                TableConstraint::PrimaryKey(p) => {
                    c = Change::new(text, ChangeKind::AddPrimaryKey);
                    c.columns = ident_cols(&p.columns);
                    set(&mut c, PgLock::AccessExclusive, false, true, "the primary key index is built (and NOT NULL checked) under ACCESS EXCLUSIVE");
                }
                TableConstraint::PrimaryKeyUsingIndex(_) | TableConstraint::UniqueUsingIndex(_) => {
                    c = Change::new(text, ChangeKind::Other);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        false,
                        "USING INDEX attaches an existing index: catalog only",
                    );
                }
                _ => {
                    c = Change::new(text, ChangeKind::Other);
                    set(
                        &mut c,
                        PgLock::AccessExclusive,
                        false,
                        true,
                        "not classified: assuming a scan under ACCESS EXCLUSIVE",
                    );
                }
            }
            c.not_valid = *not_valid;
            c
        }
        A::ValidateConstraint { .. } => {
            let mut c = Change::new(text, ChangeKind::ValidateConstraint);
            set(
                &mut c,
                PgLock::ShareUpdateExclusive,
                false,
                true,
                "VALIDATE scans the table but lets reads and writes continue",
            );
            c
        }
        A::DropConstraint { name, .. } => {
            let mut c = Change::new(text, ChangeKind::DropConstraint);
            c.new_name = Some(name.value.clone());
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "dropping a constraint is a catalog change",
            );
            c
        }
        A::SetOptionsParens { .. } => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            set(
                &mut c,
                PgLock::ShareUpdateExclusive,
                false,
                false,
                "storage parameters are a catalog change",
            );
            c
        }
        A::SetLogged | A::SetUnlogged => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            set(
                &mut c,
                PgLock::AccessExclusive,
                true,
                true,
                "changing persistence rewrites the table",
            );
            c
        }
        A::DisableTrigger { .. }
        | A::EnableTrigger { .. }
        | A::EnableAlwaysTrigger { .. }
        | A::EnableReplicaTrigger { .. } => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            set(
                &mut c,
                PgLock::ShareRowExclusive,
                false,
                false,
                "enabling/disabling triggers takes SHARE ROW EXCLUSIVE",
            );
            c
        }
        A::ReplicaIdentity { .. }
        | A::OwnerTo { .. }
        | A::EnableRowLevelSecurity
        | A::DisableRowLevelSecurity
        | A::ForceRowLevelSecurity
        | A::NoForceRowLevelSecurity => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            set(
                &mut c,
                PgLock::AccessExclusive,
                false,
                false,
                "a catalog change",
            );
            c
        }
        _ => {
            let mut c = Change::new(text, ChangeKind::Other);
            set(
                &mut c,
                PgLock::AccessExclusive,
                true,
                true,
                "not classified: assuming a rewrite under ACCESS EXCLUSIVE",
            );
            c
        }
    }
}

/// A type without its modifiers: `timestamp(3) without time zone` → `timestamp without time
/// zone`.
fn without_modifiers(t: &str) -> String {
    match (t.find('('), t.find(')')) {
        (Some(a), Some(b)) if b > a => format!("{}{}", t[..a].trim_end(), &t[b + 1..]),
        _ => t.to_string(),
    }
}

/// Storage parameters that take ACCESS EXCLUSIVE (PostgreSQL 15's `reloptions.c`); the
/// others take SHARE UPDATE EXCLUSIVE.
const EXCLUSIVE_PARAMETERS: &[&str] = &["user_catalog_table"];

/// Classify a clause read from its tokens.
fn classify_read(r: &PgClause, f: &Facts) -> Change {
    use ClauseKind as K;
    let kind = match &r.kind {
        K::AlterConstraint => ChangeKind::Other,
        _ => ChangeKind::TableOption,
    };
    let mut c = Change::new(r.text.clone(), kind);
    c.columns = r.column.iter().cloned().collect();
    let same = |want: &str, have: &Option<String>| have.as_deref() == Some(want);
    match &r.kind {
        K::SetStatistics => set(
            &mut c,
            PgLock::ShareUpdateExclusive,
            false,
            false,
            "the column's statistics target is a catalog change",
        ),
        K::ColumnOptions => set(
            &mut c,
            PgLock::ShareUpdateExclusive,
            false,
            false,
            "the column's options (n_distinct, …) are a catalog change",
        ),
        K::SetStorage => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "SET STORAGE is a catalog change: existing values keep their storage",
        ),
        K::SetCompression => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "SET COMPRESSION is a catalog change: existing values stay compressed as they are",
        ),
        K::Identity => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "the identity's options and sequence are a catalog change",
        ),
        K::DropExpression => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "DROP EXPRESSION keeps the stored values: a catalog change",
        ),
        K::AlterConstraint => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "changing a constraint's deferrability is a catalog change",
        ),
        K::ClusterOn | K::SetWithoutCluster => set(
            &mut c,
            PgLock::ShareUpdateExclusive,
            false,
            false,
            "the index to CLUSTER on is a catalog mark: nothing is reordered",
        ),
        K::SetWithoutOids => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "SET WITHOUT OIDS does nothing (tables have no OIDs since PostgreSQL 12)",
        ),
        K::SetAccessMethod(am) if same(am, &f.pg.access_method) => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            format!("the table already uses the access method {am}: nothing to do"),
        ),
        K::SetAccessMethod(am) => set(
            &mut c,
            PgLock::AccessExclusive,
            true,
            true,
            format!("a new access method ({am}) rewrites the table under ACCESS EXCLUSIVE"),
        ),
        K::SetTablespace(ts) if same(ts, &f.pg.tablespace) => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            format!("the table is already in tablespace {ts}: nothing to do"),
        ),
        K::SetTablespace(ts) => set(
            &mut c,
            PgLock::AccessExclusive,
            true,
            true,
            format!("the table's files are copied to tablespace {ts} under ACCESS EXCLUSIVE"),
        ),
        K::StorageParameters(names) => {
            let exclusive = names
                .iter()
                .any(|n| EXCLUSIVE_PARAMETERS.contains(&n.as_str()));
            set(
                &mut c,
                if exclusive {
                    PgLock::AccessExclusive
                } else {
                    PgLock::ShareUpdateExclusive
                },
                false,
                false,
                "storage parameters are a catalog change",
            )
        }
        K::RowSecurity => set(
            &mut c,
            PgLock::AccessExclusive,
            false,
            false,
            "row level security is a catalog change",
        ),
    }
    c
}

/// `ALTER COLUMN col TYPE new [USING e]`.
fn retype(c: &mut Change, col: &str, new: &DataType, using: Option<&Expr>, f: &Facts) {
    let Some(old) = f.column(col) else {
        return set(
            c,
            PgLock::AccessExclusive,
            true,
            true,
            "the column does not exist; the server will refuse the ALTER",
        );
    };
    if using.is_some_and(|e| !using_is_plain(e, col, new)) {
        return set(
            c,
            PgLock::AccessExclusive,
            true,
            true,
            "USING computes every value anew: the table and its indexes are rewritten under ACCESS EXCLUSIVE",
        );
    }
    // A domain is stored as the type under it: to that type the values stay; to a domain
    // with constraints every value is checked, which rewrites the table. A domain column's
    // own type modifier is -1 (the domain holds it): a length or precision coercion from it
    // cannot be proven to widen, so it rewrites (shortstr over varchar(20) → varchar(40)).
    let (old_base, _) = f.pg.base_type(&old.column_type);
    let old_type = if old_base != old.column_type {
        without_modifiers(&old_base)
    } else {
        old_base
    };
    let (new_base, new_checked) = f.pg.base_type(&new.to_string());
    if new_checked {
        return set(
            c,
            PgLock::AccessExclusive,
            true,
            true,
            "the new type is a domain with constraints: every value is checked and the table rewritten under ACCESS EXCLUSIVE",
        );
    }
    let new = &if new_base != new.to_string() {
        match Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&new_base)
            .and_then(|mut p| p.parse_data_type())
        {
            Ok(t) => t,
            Err(_) => new.clone(),
        }
    } else {
        new.clone()
    };
    let (o, _) = pg_type(&old_type);
    let (n, _) = pg_type(&new.to_string());
    let zone_change = matches!(
        (o.as_str(), n.as_str()),
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp")
    );
    let session_utc = f.version >= (12, 0, 0) && f.pg.time_zone_is_utc;
    let zone = f.pg.time_zone.as_deref().unwrap_or("unknown");
    if type_change_rewrites(&old_type, new, session_utc) {
        let why = if zone_change && !session_utc {
            format!("{o} → {n} converts every value in the session TimeZone ({zone}, not UTC): the table and its indexes are rewritten under ACCESS EXCLUSIVE (a session with TimeZone UTC would not rewrite it, PostgreSQL 12+)")
        } else {
            "the type change is not binary-coercible: the table and its indexes are rewritten under ACCESS EXCLUSIVE".to_string()
        };
        return set(c, PgLock::AccessExclusive, true, true, why);
    }
    if zone_change {
        // The values stay; the indexes over the column change operator class and are
        // rebuilt (a scan).
        c.needs_utc_session = true;
        return set(
            c,
            PgLock::AccessExclusive,
            false,
            f.indexed(&old.name),
            format!("{o} → {n} in a session with TimeZone UTC (godwit's sessions set it; this plan assumes {zone}) keeps every value: no rewrite (PostgreSQL 12+){}; in a session with another TimeZone the table is rewritten", if f.indexed(&old.name) { ", but the column's indexes are rebuilt" } else { "" }),
        );
    }
    set(
        c,
        PgLock::AccessExclusive,
        false,
        false,
        "binary-coercible type change: catalog only",
    );
}

fn add_column(c: &mut Change, d: &ColumnDef, f: &Facts, volatile: &[String]) {
    let dt = d.data_type.to_string().to_lowercase();
    let serial = matches!(
        dt.as_str(),
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    );
    let identity_or_stored = d.options.iter().any(|o| {
        matches!(
            &o.option,
            ColumnOption::Generated { .. } | ColumnOption::Identity(_)
        )
    });
    let default = default_expr(d);
    let mut funcs = Vec::new();
    if let Some(e) = default {
        collect_functions(e, &mut funcs);
    }
    let volatile_default = funcs.iter().any(|n| volatile.contains(n));
    let non_null_default = default.is_some_and(
        |e| !matches!(e, Expr::Value(v) if v.to_string().eq_ignore_ascii_case("NULL")),
    );
    let not_null = d
        .options
        .iter()
        .any(|o| matches!(o.option, ColumnOption::NotNull));
    let check = d
        .options
        .iter()
        .any(|o| matches!(o.option, ColumnOption::Check(_)));
    let unique = d.options.iter().any(|o| {
        matches!(
            o.option,
            ColumnOption::Unique(_) | ColumnOption::PrimaryKey(_)
        )
    });
    let (_, domain_checked) = f.pg.base_type(&d.data_type.to_string());
    if domain_checked {
        return set(
            c,
            PgLock::AccessExclusive,
            true,
            true,
            "the column's type is a domain with constraints: every row is checked against them and the table rewritten under ACCESS EXCLUSIVE",
        );
    }
    if serial || identity_or_stored || volatile_default {
        let why = if serial {
            "a serial column is filled from a sequence: the table is rewritten under ACCESS EXCLUSIVE"
        } else if identity_or_stored {
            "an identity or stored generated column is computed for every row: the table is rewritten under ACCESS EXCLUSIVE"
        } else {
            "a volatile default is evaluated per row: the table is rewritten under ACCESS EXCLUSIVE"
        };
        return set(c, PgLock::AccessExclusive, true, true, why);
    }
    if non_null_default && f.version < (11, 0, 0) {
        return set(
            c,
            PgLock::AccessExclusive,
            true,
            true,
            "before PostgreSQL 11 a non-null default rewrites the table",
        );
    }
    if unique {
        return set(
            c,
            PgLock::AccessExclusive,
            false,
            true,
            "the column's unique index is built under ACCESS EXCLUSIVE",
        );
    }
    if check || (not_null && !non_null_default) {
        return set(
            c,
            PgLock::AccessExclusive,
            false,
            true,
            "the new column's constraint is verified by scanning the table",
        );
    }
    set(
        c,
        PgLock::AccessExclusive,
        false,
        false,
        "ADD COLUMN with a constant default is a catalog change (PostgreSQL 11+)",
    );
}

/// The statement as a whole: the strongest lock, rewrite/scan if any clause does.
pub fn combine(changes: &[Change]) -> Change {
    let text = changes
        .iter()
        .map(|c| c.clause.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let mut all = Change::new(text, ChangeKind::Other);
    let lock = changes
        .iter()
        .filter_map(|c| c.pg_lock)
        .max()
        .unwrap_or(PgLock::AccessExclusive);
    let rewrite = changes.iter().any(|c| c.rewrite);
    let scan = changes.iter().any(|c| c.scan);
    let reason = changes
        .iter()
        .find(|c| c.rewrite == rewrite && c.scan == scan)
        .or_else(|| changes.iter().find(|c| c.pg_lock == Some(lock)))
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    set(&mut all, lock, rewrite, scan, reason);
    all
}

/// Native with safe statements, `godwit run`, or phases.
pub fn recommend(
    f: &Facts,
    changes: &[Change],
    all: &Change,
    clauses: &str,
    o: &PlanOptions,
) -> Recommendation {
    let q = format!(
        "{}.{}",
        super::sql::quote(&f.schema),
        super::sql::quote(&f.table)
    );
    let large = crate::plan::is_large(f, o);
    let timeout = "SET lock_timeout = '5s'".to_string();
    if changes.iter().any(|c| {
        matches!(
            c.op,
            ChangeKind::RenameColumn | ChangeKind::RenameTable | ChangeKind::DropColumn
        )
    }) {
        return Recommendation {
            strategy: Strategy::Phases,
            statements: vec![
                "expand: add the new column (or a view with the new name) and write to both".into(),
                "backfill, then switch reads to the new name".into(),
                format!("contract: {timeout}; ALTER TABLE {q} {clauses}"),
            ],
            reason: "renaming or dropping breaks application code that still uses the old name; roll it out in phases".into(),
        };
    }
    if all.rewrite {
        return Recommendation {
            strategy: if large || all.blocks_writes { Strategy::Online } else { Strategy::Native },
            statements: vec![format!(
                "godwit run --url URL --table {} --alter \"{}\" --execute",
                f.table,
                clauses.replace('"', "\\\"")
            )],
            reason: "the table is rewritten under ACCESS EXCLUSIVE: reads and writes wait for the whole rewrite; godwit copies it online instead".into(),
        };
    }
    let mut safe = Vec::new();
    let mut rest = Vec::new();
    let mut reasons = Vec::new();
    for c in changes {
        match c.op {
            ChangeKind::AddForeignKey | ChangeKind::AddCheck if !c.not_valid && c.scan => {
                let name = format!("{}_{}_chk", f.table, c.columns.join("_"));
                let body = c.clause.trim_start_matches("ADD ").to_string();
                let body = if c.clause.to_uppercase().starts_with("ADD CONSTRAINT") {
                    c.clause.clone()
                } else {
                    format!("ADD CONSTRAINT {} {}", super::sql::quote(&name), body)
                };
                let cname = constraint_name(&body).unwrap_or(name);
                safe.push(format!("ALTER TABLE {q} {body} NOT VALID"));
                safe.push(format!("ALTER TABLE {q} VALIDATE CONSTRAINT {}", cname));
                reasons.push("NOT VALID + VALIDATE: the scan runs under SHARE UPDATE EXCLUSIVE");
            }
            ChangeKind::SetNotNull if c.scan => {
                let col = c.columns.first().cloned().unwrap_or_default();
                let cname = super::sql::quote(&format!("{}_{}_not_null", f.table, col));
                let qc = super::sql::quote(&col);
                safe.push(format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {cname} CHECK ({qc} IS NOT NULL) NOT VALID"
                ));
                safe.push(format!("ALTER TABLE {q} VALIDATE CONSTRAINT {cname}"));
                safe.push(format!("ALTER TABLE {q} ALTER COLUMN {qc} SET NOT NULL"));
                safe.push(format!("ALTER TABLE {q} DROP CONSTRAINT {cname}"));
                reasons.push("a validated CHECK (col IS NOT NULL) lets SET NOT NULL skip its scan (PostgreSQL 12+)");
            }
            ChangeKind::AddIndex | ChangeKind::AddUnique
                if c.scan && c.pg_lock != Some(PgLock::ShareUpdateExclusive) =>
            {
                let cols = c
                    .columns
                    .iter()
                    .map(|k| super::sql::quote(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let name = format!(
                    "{}_{}_{}",
                    f.table,
                    c.columns.join("_"),
                    if c.op == ChangeKind::AddUnique {
                        "key"
                    } else {
                        "idx"
                    }
                );
                let qn = super::sql::quote(&name);
                let uniq = if c.op == ChangeKind::AddUnique {
                    "UNIQUE "
                } else {
                    ""
                };
                safe.push(format!(
                    "CREATE {uniq}INDEX CONCURRENTLY {qn} ON {q} ({cols})"
                ));
                if c.clause.to_uppercase().starts_with("ADD") {
                    safe.push(format!(
                        "ALTER TABLE {q} ADD CONSTRAINT {qn} UNIQUE USING INDEX {qn}"
                    ));
                }
                reasons.push("CONCURRENTLY builds the index while writes continue");
            }
            ChangeKind::AddPrimaryKey => {
                let cols = c
                    .columns
                    .iter()
                    .map(|k| super::sql::quote(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let qn = super::sql::quote(&format!("{}_pkey", f.table));
                safe.push(format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {qn} ON {q} ({cols})"
                ));
                safe.push(format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {qn} PRIMARY KEY USING INDEX {qn}"
                ));
                reasons.push("build the key's index CONCURRENTLY, then attach it");
            }
            _ => rest.push(c.clause.clone()),
        }
    }
    let mut statements = vec![timeout];
    if changes.iter().any(|c| c.needs_utc_session) {
        statements.push("SET TimeZone = 'UTC'".into());
        reasons.push("the plan assumes a session with TimeZone UTC (as godwit's): timestamp ↔ timestamptz then keeps the table");
    }
    if !rest.is_empty() {
        statements.push(format!("ALTER TABLE {q} {}", rest.join(", ")));
    }
    statements.extend(safe);
    let reason = if reasons.is_empty() && all.scan {
        format!("no rewrite, but the table or its indexes are read under {}: reads and writes wait as that lock says; lock_timeout keeps it from queueing behind long transactions", all.pg_lock.map(|l| l.as_str()).unwrap_or("ACCESS EXCLUSIVE"))
    } else if reasons.is_empty() {
        "catalog-only change: a brief lock; lock_timeout keeps it from queueing behind long transactions".to_string()
    } else {
        reasons.join("; ")
    };
    Recommendation {
        strategy: Strategy::Native,
        statements,
        reason,
    }
}

fn constraint_name(body: &str) -> Option<String> {
    let mut w = body.split_whitespace();
    while let Some(x) = w.next() {
        if x.eq_ignore_ascii_case("CONSTRAINT") {
            return w.next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::EngineKind;

    fn dt(s: &str) -> DataType {
        let p = parse("t", &format!("ALTER COLUMN x TYPE {s}")).unwrap();
        match p {
            Parsed::Alter(ops) => match &ops[0] {
                AlterClause::Sql { op, .. } => match op.as_ref() {
                    AlterTableOperation::AlterColumn {
                        op: AlterColumnOperation::SetDataType { data_type, .. },
                        ..
                    } => data_type.clone(),
                    _ => panic!(),
                },
                _ => panic!(),
            },
            _ => panic!(),
        }
    }

    #[test]
    fn binary_coercible_type_changes() {
        let r = |old: &str, new: &str| type_change_rewrites(old, &dt(new), true);
        assert!(!r("character varying(50)", "varchar(100)"));
        assert!(!r("character varying(50)", "text"));
        assert!(r("character varying(50)", "varchar(20)"));
        assert!(!r("numeric(10,2)", "numeric(12,2)"));
        assert!(r("numeric(10,2)", "numeric(10,3)"));
        assert!(r("integer", "bigint"));
        assert!(!r("integer", "int"));
        assert!(r("text", "varchar(500)"));
        assert!(!r("timestamp(3) without time zone", "timestamp(6)"));
        assert!(r("timestamp without time zone", "timestamp(3)"));
    }

    #[test]
    fn timestamp_to_timestamptz_depends_on_the_session_time_zone() {
        let ts = "timestamp without time zone";
        assert!(!type_change_rewrites(ts, &dt("timestamptz"), true));
        assert!(!type_change_rewrites(
            ts,
            &dt("timestamp with time zone"),
            true
        ));
        assert!(type_change_rewrites(ts, &dt("timestamptz"), false));
        assert!(type_change_rewrites(ts, &dt("timestamptz(3)"), true));
        assert!(!type_change_rewrites(
            "timestamp(3) with time zone",
            &dt("timestamp"),
            true
        ));
        assert!(type_change_rewrites(
            "timestamp(3) with time zone",
            &dt("timestamp"),
            false
        ));
    }

    fn facts() -> Facts {
        let mut f = Facts {
            engine: EngineKind::Postgres,
            server_version: "PostgreSQL 15.0".into(),
            version: (15, 0, 0),
            mariadb: false,
            schema: "public".into(),
            table: "t".into(),
            row_estimate: 10,
            data_bytes: 8192,
            index_bytes: 0,
            avg_row_bytes: 100,
            columns: vec![],
            indexes: vec![],
            proven_not_null: vec![],
            row_format: None,
            free_bytes: None,
            replicas: None,
            long_transactions: vec![],
            settings: vec![],
            sample: None,
            mysql: Default::default(),
            pg: Default::default(),
        };
        f.pg.access_method = Some("heap".into());
        f.pg.tablespace = Some("pg_default".into());
        f.pg.domains = vec![
            crate::plan::PgDomain {
                name: "posint".into(),
                base: "integer".into(),
                constrained: true,
            },
            crate::plan::PgDomain {
                name: "shortstr".into(),
                base: "character varying(20)".into(),
                constrained: false,
            },
        ];
        for (name, t) in [("pos", "posint"), ("dom", "shortstr"), ("i", "integer")] {
            f.columns.push(crate::plan::Column {
                name: name.into(),
                column_type: t.into(),
                nullable: true,
                ..Default::default()
            });
        }
        f
    }

    fn overall(alter: &str) -> (Option<PgLock>, bool) {
        let p = parse("t", alter).unwrap();
        let all = combine(&classify_all(&p, &facts(), &[]).unwrap());
        (all.pg_lock, all.rewrite)
    }

    #[test]
    fn domains_are_their_base_types_unless_constrained() {
        let ae = Some(PgLock::AccessExclusive);
        assert_eq!(overall("ALTER COLUMN pos TYPE integer"), (ae, false));
        assert_eq!(overall("ALTER COLUMN i TYPE posint"), (ae, true));
        assert_eq!(overall("ALTER COLUMN i TYPE shortstr"), (ae, true));
        assert_eq!(overall("ALTER COLUMN dom TYPE varchar(40)"), (ae, true));
        assert_eq!(overall("ALTER COLUMN dom TYPE text"), (ae, false));
        assert_eq!(overall("ADD COLUMN n posint DEFAULT 7"), (ae, true));
        assert_eq!(overall("ADD COLUMN n shortstr"), (ae, false));
    }

    #[test]
    fn clauses_read_from_tokens_are_planned() {
        let (ae, sue) = (
            Some(PgLock::AccessExclusive),
            Some(PgLock::ShareUpdateExclusive),
        );
        assert_eq!(overall("ALTER COLUMN i SET STATISTICS 100"), (sue, false));
        assert_eq!(overall("ALTER COLUMN i SET (n_distinct = 5)"), (sue, false));
        assert_eq!(overall("ALTER COLUMN i SET STORAGE PLAIN"), (ae, false));
        assert_eq!(overall("ALTER COLUMN i RESTART WITH 5"), (ae, false));
        assert_eq!(overall("CLUSTER ON t_i_idx"), (sue, false));
        assert_eq!(
            overall("SET (fillfactor = 70, toast.autovacuum_enabled = false)"),
            (sue, false)
        );
        assert_eq!(overall("SET (user_catalog_table = true)"), (ae, false));
        assert_eq!(overall("SET ACCESS METHOD heap"), (ae, false));
        assert_eq!(overall("SET ACCESS METHOD columnar"), (ae, true));
        assert_eq!(overall("SET TABLESPACE pg_default"), (ae, false));
        assert_eq!(overall("SET TABLESPACE fast"), (ae, true));
        assert_eq!(overall("FORCE ROW LEVEL SECURITY"), (ae, false));
        assert_eq!(
            overall("ALTER COLUMN i SET STATISTICS 100, ALTER COLUMN i TYPE bigint"),
            (ae, true)
        );
        let p = parse("t", "ALTER COLUMN i TYPE integer COLLATE \"C\", ADD CONSTRAINT u UNIQUE (i) WITH (fillfactor = 70), SET WITHOUT CLUSTER").unwrap();
        assert_eq!(
            clause_text(&p),
            "ALTER COLUMN i TYPE integer COLLATE \"C\", ADD CONSTRAINT u UNIQUE (i) WITH (fillfactor = 70), SET WITHOUT CLUSTER"
        );
    }

    #[test]
    fn create_index_and_parse_errors() {
        let p = parse("t", "CREATE INDEX CONCURRENTLY i ON t (a)").unwrap();
        assert!(matches!(p, Parsed::CreateIndex(_)));
        let e = parse("t", "ADD COLUMN").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
    }
}
