//! MySQL 8 / MariaDB 10.x–11.x: the cheapest ALGORITHM and weakest LOCK for each clause,
//! per server version. Pure functions over the parsed clause and the table's facts.
//!
//! Checked on MariaDB 10.11 by `tests/plan_mysql.rs` (each corpus entry runs with the
//! predicted `ALGORITHM=…, LOCK=…` and must fail with the next cheaper one).

use super::classify_clauses::{self as mysql_clauses, Clause, OptKind, TableOpt};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{
    canonical_charset, canonical_collation, collation_charset, unquote, Algorithm, Change,
    ChangeKind, Facts, InstantKind, MyLock, PlanOptions, Recommendation, Strategy,
};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnDef, ColumnOption, DataType,
    GeneratedExpressionMode, MySQLColumnPosition, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

type V = (u32, u32, u32);

/// The clauses as text, for the recommended statements.
pub fn clause_text(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| c.clause.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What every clause's classification may need from the others.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The statement adds a primary key.
    pub adds_pk: bool,
    /// The table's default collation once the statement's table options apply: what a
    /// `MODIFY` without a character set gets.
    pub table_collation: Option<String>,
}

/// The default collation of `charset` (`DEFAULT`: the database's).
fn default_collation(f: &Facts, charset: &str) -> Option<String> {
    if charset.eq_ignore_ascii_case("default") {
        return f.mysql.schema_collation.as_deref().map(canonical_collation);
    }
    let cs = canonical_charset(charset);
    f.mysql.default_collation(&cs).or(Some(match cs.as_str() {
        "latin1" => "latin1_swedish_ci".to_string(),
        _ => format!("{cs}_general_ci"),
    }))
}

/// Parse the ALTER statement and classify each clause. Clauses sqlparser does not parse
/// (`RENAME INDEX`, `FORCE`, table options, `CONVERT TO CHARACTER SET`) are read from
/// their tokens ([`mysql_clauses`]); the others are parsed by sqlparser. The changes come
/// in the order of the clauses.
pub fn classify_all(sql: &str, facts: &Facts) -> Result<Vec<Change>> {
    let parse_err = |e: sqlparser::parser::ParserError| {
        Error::new(
            ErrorKind::BadInput,
            format!("cannot parse the ALTER: {e}"),
        )
        .with_hint("godwit plan understands ADD/DROP/MODIFY/CHANGE/RENAME COLUMN, ADD/DROP/RENAME INDEX and KEY, constraints, table options (ENGINE, ROW_FORMAT, AUTO_INCREMENT, CHARSET, COMMENT, …), FORCE, CONVERT TO CHARACTER SET and RENAME TO")
    };
    let (head, clauses) = mysql_clauses::split(sql)?;
    let parsed: Vec<&str> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::Parsed(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let stmt = if head.is_empty() {
        parsed.first().map(|s| s.to_string())
    } else if parsed.is_empty() {
        None
    } else {
        Some(format!("{head} {}", parsed.join(", ")))
    };
    let ops = match stmt {
        None => Vec::new(),
        Some(stmt) => {
            let stmts = Parser::parse_sql(&MySqlDialect {}, &stmt).map_err(parse_err)?;
            match stmts.as_slice() {
                [Statement::AlterTable(a)] => a.operations.clone(),
                _ => return Err(Error::bad_input("--alter must be one ALTER TABLE")),
            }
        }
    };
    let ops: Vec<_> = ops
        .into_iter()
        .filter(|o| {
            !matches!(
                o,
                AlterTableOperation::Algorithm { .. } | AlterTableOperation::Lock { .. }
            )
        })
        .collect();
    let opts: Vec<&TableOpt> = clauses
        .iter()
        .flat_map(|c| match c {
            Clause::Options(o) => o.iter().collect(),
            _ => vec![],
        })
        .collect();
    if ops.is_empty() && opts.is_empty() {
        return Err(Error::bad_input("the ALTER has no clause to plan"));
    }
    let mut cx = Ctx {
        adds_pk: ops.iter().any(|o| {
            matches!(
                o,
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::PrimaryKey(_),
                    ..
                }
            )
        }),
        table_collation: facts
            .mysql
            .table_collation
            .as_deref()
            .map(canonical_collation),
    };
    for o in &opts {
        match &o.kind {
            OptKind::DefaultCharset(cs) => cx.table_collation = default_collation(facts, cs),
            OptKind::DefaultCollate(c) => cx.table_collation = Some(canonical_collation(c)),
            OptKind::Convert { charset, collation } => {
                cx.table_collation = match collation {
                    Some(c) => Some(canonical_collation(c)),
                    None => default_collation(facts, charset),
                }
            }
            _ => {}
        }
    }
    // In the clauses' order: one parsed operation per clause sqlparser read.
    let mut ops = ops.iter();
    let mut out = Vec::new();
    for c in &clauses {
        match c {
            Clause::Parsed(_) => out.extend(ops.next().map(|o| classify(o, facts, &cx))),
            Clause::Options(os) => out.extend(os.iter().map(|o| classify_option(o, facts, &cx))),
            Clause::Hint => {}
        }
    }
    out.extend(ops.map(|o| classify(o, facts, &cx)));
    clustered_index(&mut out, facts);
    Ok(out)
}

/// The key InnoDB clusters the table on: the primary key, else the first UNIQUE key whose
/// columns are all NOT NULL. `(columns, name, is the primary key)`.
fn clustered_key(f: &Facts) -> Option<(Vec<String>, String, bool)> {
    if let Some(p) = f.indexes.iter().find(|i| i.primary) {
        return Some((p.column_names(), p.name.clone(), true));
    }
    f.indexes
        .iter()
        .find(|i| {
            i.unique
                && !i.columns.is_empty()
                && i.columns.iter().all(|c| {
                    c.as_deref()
                        .and_then(|c| f.column(c))
                        .is_some_and(|k| !k.nullable)
                })
        })
        .map(|i| (i.column_names(), i.name.clone(), false))
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// MariaDB: clauses that change which key the table is clustered on, seen together
/// (measured on 10.11, `tests/differential`). On a table without primary key, clustered
/// on its first UNIQUE NOT NULL key K: `ADD PRIMARY KEY` on K's columns keeps the clustered
/// index (NOCOPY), and with `DROP INDEX K` it is a rename (INSTANT); dropping K or one of
/// its columns without a new primary key re-clusters the table (COPY). On a table with a
/// primary key, `DROP PRIMARY KEY, ADD UNIQUE KEY` on the same NOT NULL columns keeps the
/// clustered index (INSTANT).
fn clustered_index(changes: &mut [Change], f: &Facts) {
    if !f.mariadb {
        return;
    }
    let Some((cols, name, primary)) = clustered_key(f) else {
        return;
    };
    let keep = |c: &mut Change, a: Algorithm, why: &str| {
        set(c, a, MyLock::None, why);
        c.instant_kind = InstantKind::Metadata;
    };
    if primary {
        let drops_pk = changes.iter().any(|c| c.op == ChangeKind::DropPrimaryKey);
        let same_unique = changes.iter().any(|c| {
            c.op == ChangeKind::AddUnique
                && same_columns(&c.columns, &cols)
                && cols
                    .iter()
                    .all(|k| f.column(k).is_some_and(|k| !k.nullable))
        });
        if drops_pk && same_unique {
            for c in changes.iter_mut().filter(|c| {
                c.op == ChangeKind::DropPrimaryKey
                    || (c.op == ChangeKind::AddUnique && same_columns(&c.columns, &cols))
            }) {
                keep(
                    c,
                    Algorithm::Instant,
                    "the new UNIQUE key on the primary key's NOT NULL columns keeps the clustered index: metadata only",
                );
            }
        }
        return;
    }
    let adds_pk = changes
        .iter()
        .any(|c| c.op == ChangeKind::AddPrimaryKey && same_columns(&c.columns, &cols));
    let drops_key = changes.iter().any(|c| {
        c.op == ChangeKind::DropIndex
            && c.new_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
    });
    if adds_pk {
        for c in changes.iter_mut().filter(|c| {
            c.op == ChangeKind::AddPrimaryKey
                || (c.op == ChangeKind::DropIndex
                    && c.new_name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&name)))
        }) {
            if drops_key {
                keep(
                    c,
                    Algorithm::Instant,
                    "the table is clustered on this UNIQUE NOT NULL key already: it becomes the primary key by a rename (metadata only)",
                );
            } else if c.op == ChangeKind::AddPrimaryKey {
                keep(
                    c,
                    Algorithm::Nocopy,
                    "the table is clustered on a UNIQUE NOT NULL key on these columns already: the primary key is added without a rebuild",
                );
            }
        }
        return;
    }
    if changes.iter().any(|c| c.op == ChangeKind::AddPrimaryKey) {
        return;
    }
    for c in changes.iter_mut() {
        let drops_cluster = (c.op == ChangeKind::DropIndex
            && c.new_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name)))
            || (c.op == ChangeKind::DropColumn
                && c.columns
                    .iter()
                    .any(|k| cols.iter().any(|x| x.eq_ignore_ascii_case(k))));
        if drops_cluster {
            set(
                c,
                Algorithm::Copy,
                MyLock::Shared,
                &format!("the table has no primary key and is clustered on {name}: dropping it (or its column) re-clusters the table by copying it"),
            );
        }
    }
}

fn ident_list(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter()
        .map(|c| unquote(&c.column.expr.to_string()))
        .collect()
}

fn set(c: &mut Change, a: Algorithm, l: MyLock, reason: &str) {
    c.algorithm = Some(a);
    c.mysql_lock = Some(l);
    c.rewrite = matches!(a, Algorithm::Copy | Algorithm::Inplace);
    c.blocks_writes = l >= MyLock::Shared;
    c.blocks_reads = l == MyLock::Exclusive;
    c.reason = reason.to_string();
}

/// MySQL: instant ADD/DROP COLUMN is refused once the table reached its row-version limit.
fn row_versions_exhausted(f: &Facts) -> bool {
    if f.mariadb {
        return false;
    }
    let limit = if f.version >= (9, 1, 0) { 255 } else { 64 };
    f.setting("total_row_versions")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|v| v >= limit)
}

/// MySQL 8.0.29–8.0.31 wrote a redo format for instant ADD/DROP anywhere that breaks crash
/// recovery and backups.
fn redo_bug_note(f: &Facts) -> &'static str {
    if !f.mariadb && f.version >= (8, 0, 29) && f.version <= (8, 0, 31) {
        " — caution: 8.0.29–8.0.31 have a redo-log bug with instant ADD/DROP (upgrade, or use INPLACE)"
    } else {
        ""
    }
}

/// MySQL has no NOCOPY: the same work is INPLACE without a rebuild.
fn nocopy(f: &Facts) -> Algorithm {
    if f.mariadb {
        Algorithm::Nocopy
    } else {
        Algorithm::Inplace
    }
}

/// Classify one clause sqlparser parsed.
pub fn classify(op: &AlterTableOperation, f: &Facts, cx: &Ctx) -> Change {
    let adds_pk = cx.adds_pk;
    let v: V = f.version;
    let maria = f.mariadb;
    let text = op.to_string();
    use AlterTableOperation as A;
    match op {
        A::AddColumn {
            column_def,
            column_position,
            ..
        } => {
            let mut c = Change::new(text, ChangeKind::AddColumn);
            c.columns = vec![column_def.name.value.clone()];
            c.new_type = Some(column_def.data_type.to_string());
            add_column(&mut c, column_def, column_position.as_ref(), f, v, maria);
            c
        }
        A::DropColumn { column_names, .. } => {
            let mut c = Change::new(text, ChangeKind::DropColumn);
            c.columns = column_names.iter().map(|i| i.value.clone()).collect();
            let indexed = c
                .columns
                .iter()
                .any(|n| f.column(n).is_some_and(|k| f.indexed(&k.name)));
            let instant_drop = if maria {
                v >= (10, 4, 0)
            } else {
                v >= (8, 0, 29) && !row_versions_exhausted(f)
            };
            if indexed && maria && instant_drop {
                set(
                    &mut c,
                    Algorithm::Nocopy,
                    MyLock::None,
                    "dropping an indexed column drops its index in place (no table rebuild)",
                );
            } else if instant_drop && !indexed {
                set(
                    &mut c,
                    Algorithm::Instant,
                    MyLock::None,
                    "instant DROP COLUMN (MariaDB 10.4+, MySQL 8.0.29+)",
                );
                c.instant_kind = InstantKind::RowFormat;
            } else {
                set(
                    &mut c,
                    Algorithm::Inplace,
                    MyLock::None,
                    "DROP COLUMN rebuilds the table in place on this version",
                );
            }
            c
        }
        A::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let mut c = Change::new(text, ChangeKind::RenameColumn);
            c.columns = vec![old_column_name.value.clone()];
            c.new_name = Some(new_column_name.value.clone());
            rename_column(&mut c, f, v, maria);
            c
        }
        A::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => {
            let mut c = Change::new(text, ChangeKind::ChangeColumn);
            c.columns = vec![old_name.value.clone()];
            if old_name.value != new_name.value {
                c.new_name = Some(new_name.value.clone());
            }
            modify(
                &mut c,
                &old_name.value,
                data_type,
                options,
                column_position.as_ref(),
                f,
                cx,
            );
            if c.new_name.is_some() && c.algorithm == Some(Algorithm::Instant) {
                rename_column(&mut c, f, v, maria);
            }
            c
        }
        A::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => {
            let mut c = Change::new(text, ChangeKind::ChangeColumn);
            c.columns = vec![col_name.value.clone()];
            modify(
                &mut c,
                &col_name.value,
                data_type,
                options,
                column_position.as_ref(),
                f,
                cx,
            );
            c
        }
        A::AlterColumn { column_name, op } => {
            let (kind, alg) = match op {
                AlterColumnOperation::SetDefault { .. } => {
                    (ChangeKind::SetDefault, Algorithm::Instant)
                }
                AlterColumnOperation::DropDefault => (ChangeKind::DropDefault, Algorithm::Instant),
                _ => (ChangeKind::Other, Algorithm::Copy),
            };
            let mut c = Change::new(text, kind);
            c.columns = vec![column_name.value.clone()];
            if alg == Algorithm::Instant {
                set(&mut c, alg, MyLock::None, "a default is metadata only");
            } else {
                set(
                    &mut c,
                    alg,
                    MyLock::Shared,
                    "not classified: assuming a table copy",
                );
            }
            c
        }
        A::AddConstraint { constraint, .. } => add_constraint(text, constraint, f, v, maria),
        A::DropPrimaryKey { .. } => {
            let mut c = Change::new(text, ChangeKind::DropPrimaryKey);
            if adds_pk {
                set(
                    &mut c,
                    Algorithm::Inplace,
                    MyLock::None,
                    "replacing the primary key rebuilds the table in place",
                );
            } else {
                set(
                    &mut c,
                    Algorithm::Copy,
                    MyLock::Shared,
                    "dropping the primary key without adding one copies the table",
                );
            }
            c
        }
        A::DropIndex { name } => {
            let mut c = Change::new(text, ChangeKind::DropIndex);
            c.new_name = Some(name.value.clone());
            set(
                &mut c,
                nocopy(f),
                MyLock::None,
                "dropping a secondary index is in place, without a rebuild",
            );
            c
        }
        A::DropForeignKey { name, .. } | A::DropConstraint { name, .. } => {
            let mut c = Change::new(text, ChangeKind::DropConstraint);
            if matches!(op, A::DropForeignKey { .. }) {
                c.instant_kind = InstantKind::Engine;
            }
            c.new_name = Some(name.value.clone());
            if maria {
                set(
                    &mut c,
                    Algorithm::Instant,
                    MyLock::None,
                    "dropping a constraint is metadata only",
                );
            } else {
                set(
                    &mut c,
                    Algorithm::Inplace,
                    MyLock::None,
                    "dropping a constraint is in place, metadata only",
                );
                c.rewrite = false;
            }
            c
        }
        A::AutoIncrement { .. } => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "the AUTO_INCREMENT value is metadata only",
        ),
        A::RenameTable { table_name } => {
            let mut c = Change::new(text, ChangeKind::RenameTable);
            let n = match table_name {
                sqlparser::ast::RenameTableNameKind::As(n)
                | sqlparser::ast::RenameTableNameKind::To(n) => n.to_string(),
            };
            c.new_name = Some(unquote(&n));
            set(
                &mut c,
                Algorithm::Instant,
                MyLock::Exclusive,
                "a rename is instant but needs an exclusive metadata lock",
            );
            c.blocks_writes = false;
            c.blocks_reads = false;
            c
        }
        _ => {
            let mut c = Change::new(text, ChangeKind::Other);
            set(
                &mut c,
                Algorithm::Copy,
                MyLock::Shared,
                "not classified: assuming a table copy",
            );
            c
        }
    }
}

fn rename_column(c: &mut Change, f: &Facts, v: V, maria: bool) {
    if maria || v >= (8, 0, 28) {
        set(
            c,
            Algorithm::Instant,
            MyLock::None,
            "renaming a column is metadata only",
        );
        if c.instant_kind == InstantKind::Metadata {
            c.instant_kind = InstantKind::Engine;
        }
    } else {
        set(
            c,
            Algorithm::Inplace,
            MyLock::None,
            "renaming a column is in place, metadata only",
        );
        c.rewrite = false;
    }
    let _ = f;
}

fn has_opt(options: &[ColumnOption], p: impl Fn(&ColumnOption) -> bool) -> bool {
    options.iter().any(p)
}

fn def_options(d: &ColumnDef) -> Vec<ColumnOption> {
    d.options.iter().map(|o| o.option.clone()).collect()
}

fn is_auto_increment(o: &ColumnOption) -> bool {
    match o {
        ColumnOption::DialectSpecific(toks) => toks
            .iter()
            .any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")),
        _ => false,
    }
}

fn add_column(
    c: &mut Change,
    d: &ColumnDef,
    pos: Option<&MySQLColumnPosition>,
    f: &Facts,
    v: V,
    maria: bool,
) {
    let opts = def_options(d);
    c.position = pos.map(place);
    let generated = opts.iter().find_map(|o| match o {
        ColumnOption::Generated {
            generation_expr_mode,
            generation_expr: Some(_),
            ..
        } => Some(*generation_expr_mode),
        _ => None,
    });
    if has_opt(&opts, is_auto_increment) {
        return set(
            c,
            Algorithm::Inplace,
            MyLock::Shared,
            "an AUTO_INCREMENT column is filled by rebuilding the table; writes wait",
        );
    }
    match generated {
        Some(Some(GeneratedExpressionMode::Stored)) => {
            return set(
                c,
                Algorithm::Copy,
                MyLock::Shared,
                "a STORED generated column is computed by copying the table",
            );
        }
        Some(_) => {
            set(
                c,
                Algorithm::Instant,
                MyLock::None,
                "a VIRTUAL generated column is metadata only",
            );
            c.instant_kind = InstantKind::Engine;
            return;
        }
        None => {}
    }
    if has_opt(&opts, |o| {
        matches!(o, ColumnOption::Unique(_) | ColumnOption::PrimaryKey(_))
    }) {
        return set(
            c,
            Algorithm::Inplace,
            MyLock::None,
            "a column with its own key is added by a rebuild in place",
        );
    }
    let fulltext = f
        .indexes
        .iter()
        .any(|i| i.kind.eq_ignore_ascii_case("FULLTEXT"));
    let instant = if maria {
        match pos {
            None => v >= (10, 3, 2),
            Some(_) => v >= (10, 4, 0),
        }
    } else {
        match pos {
            None => v >= (8, 0, 12),
            Some(_) => v >= (8, 0, 29),
        }
    };
    let instant = instant && !row_versions_exhausted(f);
    if instant && !fulltext {
        let why = if pos.is_some() {
            "instant ADD COLUMN at any position (MariaDB 10.4+, MySQL 8.0.29+)"
        } else {
            "instant ADD COLUMN (MariaDB 10.3+, MySQL 8.0.12+)"
        };
        set(
            c,
            Algorithm::Instant,
            MyLock::None,
            &format!("{why}{}", redo_bug_note(f)),
        );
        c.instant_kind = InstantKind::RowFormat;
    } else {
        set(
            c,
            Algorithm::Inplace,
            MyLock::None,
            "ADD COLUMN rebuilds the table in place here (version, FULLTEXT index)",
        );
    }
}

/// Bytes of the longest character of a charset: the server's `CHARACTER_SETS.MAXLEN`,
/// else the usual values.
fn max_bytes(f: &Facts, charset: Option<&str>) -> u64 {
    let cs = crate::plan::canonical_charset(charset.unwrap_or("utf8mb4"));
    if let Some(m) = f.mysql.max_bytes(&cs) {
        return m;
    }
    match cs.as_str() {
        "utf8mb4" | "utf16" | "utf16le" | "utf32" => 4,
        "utf8mb3" | "ujis" | "eucjpms" => 3,
        "ucs2" | "gbk" | "big5" | "sjis" | "cp932" | "euckr" | "gb2312" => 2,
        _ => 1,
    }
}

pub(crate) fn redundant(f: &Facts) -> bool {
    f.row_format
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("redundant"))
}

/// Can a VARCHAR of `old` bytes be extended to `new` bytes without copying the table
/// (bytes = characters × the longest character of the column's charset: 1 for latin1,
/// 2 for ucs2, 3 for utf8mb3, 4 for utf8mb4/utf16/utf32)?
///
/// A value's length takes 1 byte when the column holds at most 255 bytes, 2 beyond.
/// MySQL (and MariaDB before 10.4.3) keep that count: old and new length on the same
/// side of 255 bytes. MariaDB 10.4.3+ (MDEV-15563) with ROW_FORMAT=COMPACT, DYNAMIC or
/// COMPRESSED also extends a column of at most 127 bytes to any length (its values are
/// shorter than 128 bytes, whose length is one byte in both encodings); with
/// ROW_FORMAT=REDUNDANT (lengths are per record, not per column) any extension is
/// instant. Measured on MariaDB 10.11 (`tests/plan_mysql.rs`): latin1 VARCHAR(127) →
/// VARCHAR(300) instant, VARCHAR(128) → VARCHAR(300) copies; utf8mb4 VARCHAR(31) (124
/// bytes) → VARCHAR(300) instant, VARCHAR(32) (128 bytes) copies; utf8mb3 VARCHAR(42)
/// (126 bytes) instant, VARCHAR(43) copies; ucs2 VARCHAR(63) instant, VARCHAR(64)
/// copies; REDUNDANT latin1 VARCHAR(255) → VARCHAR(256) instant.
fn varchar_extends(ob: u64, nb: u64, f: &Facts) -> bool {
    if nb < ob {
        return false;
    }
    if f.mariadb && f.version >= (10, 4, 3) {
        redundant(f) || ob <= 127 || nb <= 255 || ob > 255
    } else {
        (ob <= 255) == (nb <= 255)
    }
}

fn enum_values(t: &str) -> Vec<String> {
    let Some(start) = t.find('(') else {
        return Vec::new();
    };
    let inner = t[start + 1..].trim_end_matches(')');
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_string())
        .collect()
}

fn norm_type(t: &str) -> String {
    let t = t.to_lowercase().replace(' ', "");
    // int(11) → int; the display width is not a type change
    let ints = ["tinyint", "smallint", "mediumint", "int", "bigint"];
    for i in ints {
        if let Some(rest) = t.strip_prefix(&format!("{i}(")) {
            if let Some(close) = rest.find(')') {
                return format!("{i}{}", &rest[close + 1..]);
            }
        }
    }
    // Spellings of one type: BOOLEAN is tinyint(1), YEAR is year(4).
    match t.as_str() {
        "boolean" | "bool" => "tinyint".into(),
        "year(4)" => "year".into(),
        _ => t.replace("integer", "int"),
    }
}

/// A character type: its values have a character set and a collation.
fn is_char_type(name: &str) -> bool {
    matches!(
        name,
        "char"
            | "varchar"
            | "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
            | "enum"
            | "set"
            | "character"
            | "character varying"
    )
}

/// What MariaDB does to the character column `old` whose character set or collation
/// becomes (`cs`, `coll`); `None` when neither changes. `convert`: by `CONVERT TO
/// CHARACTER SET`, which also gives TINYTEXT/TEXT/MEDIUMTEXT (and a VARCHAR's bytes)
/// room for as many characters; a `MODIFY` states the type itself (its VARCHAR length is
/// judged with the type).
///
/// Measured on MariaDB 10.11 (`tests/plan_mysql.rs`), 10.4.3+ (MDEV-15564):
/// - utf8mb3 → utf8mb4 is instant, indexed or not, with the analogous collation
///   (`utf8mb3_bin` → `utf8mb4_bin`); with another collation an indexed column's
///   indexes are rebuilt in place (NOCOPY). It copies the table for a column with a
///   prefix index, for CHAR in ROW_FORMAT=REDUNDANT, for a VARCHAR whose bytes cross
///   255 as [`varchar_extends`] says (VARCHAR(43) → 129 to 172 bytes is instant,
///   VARCHAR(70) → 210 to 280 bytes copies), and under CONVERT for TINYTEXT, TEXT and
///   MEDIUMTEXT (they become TEXT, MEDIUMTEXT, LONGTEXT).
/// - A collation change within one character set is instant for a column without
///   index, NOCOPY with one (a prefix index over a TEXT column: COPY).
/// - Any other character set change (latin1 → utf8mb4, utf8mb4 → utf8mb3), and any
///   change to an ENUM or SET, copies the table.
///
/// MySQL and MariaDB before 10.4.3 copy the table for any of these.
fn recode(
    old: &crate::plan::Column,
    cs: &str,
    coll: &str,
    convert: bool,
    f: &Facts,
) -> Option<(Algorithm, String)> {
    let ocs = canonical_charset(old.charset.as_deref()?);
    let ocoll = old
        .collation
        .as_deref()
        .map(canonical_collation)
        .or_else(|| default_collation(f, &ocs))
        .unwrap_or_default();
    let (cs, coll) = (canonical_charset(cs), canonical_collation(coll));
    if ocs == cs && ocoll == coll {
        return None;
    }
    let copy = |why: String| Some((Algorithm::Copy, why));
    let col = &old.name;
    if !(f.mariadb && f.version >= (10, 4, 3)) {
        return copy(format!(
            "a new character set or collation for `{col}` ({ocoll} → {coll}) copies the table"
        ));
    }
    let (name, args) = crate::plan::type_parts(&old.column_type);
    if name == "enum" || name == "set" {
        return copy(format!(
            "a new character set or collation for the {} `{col}` copies the table",
            name.to_uppercase()
        ));
    }
    let blob = matches!(
        name.as_str(),
        "tinytext" | "text" | "mediumtext" | "longtext"
    );
    if ocs != cs {
        if !(ocs == "utf8mb3" && cs == "utf8mb4") {
            return copy(format!(
                "{ocs} → {cs} converts every value of `{col}`: the table is copied"
            ));
        }
        if f.prefix_indexed(&old.name) {
            return copy(format!(
                "utf8mb3 → utf8mb4 on `{col}`, which has a prefix index, copies the table"
            ));
        }
        if convert && blob && name != "longtext" {
            return copy(format!(
                "CONVERT makes the {} `{col}` a larger type (room for as many utf8mb4 characters): the table is copied",
                name.to_uppercase()
            ));
        }
        if name == "char" && redundant(f) {
            return copy(format!(
                "utf8mb3 → utf8mb4 on the CHAR `{col}` copies a ROW_FORMAT=REDUNDANT table"
            ));
        }
        if convert && name == "varchar" {
            let n = args.first().copied().unwrap_or(0);
            let (ob, nb) = (n * 3, n * 4);
            if !varchar_extends(ob, nb, f) {
                return copy(format!(
                    "utf8mb3 → utf8mb4 makes the VARCHAR `{col}` {ob} → {nb} bytes, across 255: the table is copied"
                ));
            }
        }
        let analogous = ocoll.strip_prefix("utf8mb3") == coll.strip_prefix("utf8mb4");
        if !analogous && f.indexed(&old.name) {
            return Some((
                nocopy(f),
                format!("utf8mb3 → utf8mb4 with a new collation ({ocoll} → {coll}) rebuilds the indexes of `{col}` in place"),
            ));
        }
        return Some((
            Algorithm::Instant,
            format!("utf8mb3 → utf8mb4 on `{col}` is metadata only (MariaDB 10.4.3+)"),
        ));
    }
    if f.prefix_indexed(&old.name) && blob {
        return copy(format!(
            "a new collation for `{col}`, which has a prefix index, copies the table"
        ));
    }
    if f.indexed(&old.name) {
        return Some((
            nocopy(f),
            format!("a new collation for `{col}` ({ocoll} → {coll}) rebuilds its indexes in place"),
        ));
    }
    Some((
        Algorithm::Instant,
        format!(
            "a new collation for `{col}` ({ocoll} → {coll}) is metadata only (MariaDB 10.4.3+)"
        ),
    ))
}

fn modify(
    c: &mut Change,
    col: &str,
    dt: &DataType,
    options: &[ColumnOption],
    pos: Option<&MySQLColumnPosition>,
    f: &Facts,
    cx: &Ctx,
) {
    let (v, maria) = (f.version, f.mariadb);
    let new_type = dt.to_string();
    c.new_type = Some(new_type.clone());
    let Some(old) = f.column(col) else {
        return set(
            c,
            Algorithm::Copy,
            MyLock::Shared,
            "the column does not exist; the server will refuse the ALTER",
        );
    };
    let new_nullable = if has_opt(options, |o| matches!(o, ColumnOption::NotNull)) {
        false
    } else {
        !has_opt(options, |o| matches!(o, ColumnOption::PrimaryKey(_)))
    };
    let (on, oa) = crate::plan::type_parts(&old.column_type);
    let (nn, na) = crate::plan::type_parts(&new_type);
    // On MariaDB JSON is LONGTEXT (with its json_valid CHECK).
    let spelled = |t: &str| match norm_type(t) {
        n if maria && n == "json" => "longtext".to_string(),
        n => n,
    };
    let same_type = spelled(&old.column_type) == spelled(&new_type);
    let reorder = pos.is_some();
    c.position = pos.map(place);
    if maria
        && old.virtual_column
        && has_opt(options, |o| matches!(o, ColumnOption::Generated { .. }))
    {
        return set(
            c,
            Algorithm::Copy,
            MyLock::Shared,
            "a VIRTUAL column's expression is changed by copying the table (MariaDB)",
        );
    }

    // The character set and collation: as the MODIFY says, else the table's default.
    let given_cs = options.iter().find_map(|o| match o {
        ColumnOption::CharacterSet(n) => Some(canonical_charset(&unquote(&n.to_string()))),
        _ => None,
    });
    let given_coll = options.iter().find_map(|o| match o {
        ColumnOption::Collation(n) => Some(canonical_collation(&unquote(&n.to_string()))),
        _ => None,
    });
    let target = match (given_cs, given_coll) {
        (_, Some(coll)) => Some((collation_charset(&coll), coll)),
        (Some(cs), None) => default_collation(f, &cs).map(|coll| (cs, coll)),
        (None, None) => cx
            .table_collation
            .clone()
            .map(|coll| (collation_charset(&coll), coll)),
    };
    let recoded = match target {
        Some((cs, coll)) if old.charset.is_some() && is_char_type(&nn) => {
            recode(old, &cs, &coll, false, f).map(|r| (r, cs))
        }
        _ => None,
    };
    let new_cs = recoded
        .as_ref()
        .map(|(_, cs)| cs.clone())
        .or_else(|| old.charset.clone());

    // The type part.
    let mut alg = Algorithm::Instant;
    let mut why: String;
    let mut engine = false;
    let cs_changes =
        new_cs.as_deref().map(canonical_charset) != old.charset.as_deref().map(canonical_charset);
    if has_opt(options, is_auto_increment) && !old.auto_increment {
        alg = Algorithm::Copy;
        why =
            "making an existing column AUTO_INCREMENT is a type change: the table is copied".into();
    } else if !same_type || (on == "varchar" && cs_changes) {
        let old_is_enum = on == "enum" || on == "set";
        if old_is_enum && nn == on {
            let ov = enum_values(&old.column_type.to_lowercase());
            let nv = enum_values(&new_type.to_lowercase());
            let appends = nv.len() >= ov.len() && nv[..ov.len()] == ov[..];
            let same_storage = if on == "enum" {
                (ov.len() <= 255) == (nv.len() <= 255)
            } else {
                ov.len().div_ceil(8) == nv.len().div_ceil(8)
            };
            if appends && same_storage {
                why = "appending ENUM/SET members is metadata only".into();
            } else {
                alg = Algorithm::Copy;
                why = "reordering or removing ENUM/SET members copies the table".into();
            }
        } else if on == "varchar" && nn == "varchar" {
            let (ol, nl) = (
                oa.first().copied().unwrap_or(0),
                na.first().copied().unwrap_or(0),
            );
            let (ob, nb) = (
                ol * max_bytes(f, old.charset.as_deref()),
                nl * max_bytes(f, new_cs.as_deref()),
            );
            engine = true;
            if nl >= ol && varchar_extends(ob, nb, f) {
                why = if (ob <= 255) == (nb <= 255) {
                    format!("extending VARCHAR within one length-byte class ({ob} → {nb} bytes) is metadata only")
                } else if redundant(f) {
                    format!("extending VARCHAR ({ob} → {nb} bytes) is metadata only with ROW_FORMAT=REDUNDANT")
                } else {
                    format!("extending VARCHAR from at most 127 bytes ({ob} → {nb} bytes) is metadata only (MariaDB 10.4.3+)")
                };
                if !maria {
                    alg = Algorithm::Inplace;
                }
            } else if nl >= ol {
                alg = Algorithm::Copy;
                why = format!(
                    "extending VARCHAR across 255 bytes ({ob} → {nb} bytes) copies the table"
                );
            } else {
                alg = Algorithm::Copy;
                why = "shrinking VARCHAR copies the table (and may cut data)".into();
            }
        } else {
            alg = Algorithm::Copy;
            why = format!(
                "changing the type {} → {} copies the table; writes wait",
                old.column_type,
                new_type.to_lowercase()
            );
        }
    } else {
        why = "only the name, default or comment changes: metadata only".into();
    }
    if let Some(((ralg, rwhy), _)) = recoded {
        engine = true;
        if ralg < alg || why.starts_with("only") {
            why = rwhy;
        }
        alg = alg.min(ralg);
    }

    // Nullability and position.
    let mut row_format = false;
    if alg != Algorithm::Copy {
        if maria && old.nullable && !new_nullable && nn == "timestamp" {
            alg = Algorithm::Copy;
            why = "NULL → NOT NULL on a TIMESTAMP column copies the table (MariaDB: \"cannot convert NULL to non-constant DEFAULT\")".into();
            c.op = ChangeKind::ChangeColumn;
        } else if old.nullable != new_nullable {
            alg = alg.min(Algorithm::Inplace);
            why = if new_nullable {
                "NOT NULL → NULL rebuilds the table in place".into()
            } else {
                "NULL → NOT NULL rebuilds the table in place (and fails on existing NULLs)".into()
            };
            c.op = ChangeKind::ChangeColumn;
        } else if reorder {
            let instant = if maria { v >= (10, 4, 0) } else { false };
            if !instant {
                alg = alg.min(Algorithm::Inplace);
                why = "reordering columns rebuilds the table in place".into();
            } else {
                row_format = true;
                if why.starts_with("only") {
                    why = "reordering columns is instant (MariaDB 10.4+)".into();
                }
            }
        }
    }
    if alg == Algorithm::Instant && !maria && !same_type {
        alg = Algorithm::Inplace;
    }
    if !same_type && alg == Algorithm::Copy {
        c.op = ChangeKind::ChangeType;
    }
    let lock = if alg == Algorithm::Copy {
        MyLock::Shared
    } else {
        MyLock::None
    };
    set(c, alg, lock, &why);
    c.instant_kind = if row_format {
        InstantKind::RowFormat
    } else if engine {
        InstantKind::Engine
    } else {
        InstantKind::Metadata
    };
    if alg == Algorithm::Inplace && same_type && old.nullable == new_nullable && !reorder {
        c.rewrite = false;
    }
    if alg == Algorithm::Nocopy {
        c.rewrite = false;
    }
}

/// A table option that is metadata only: instant on MariaDB, in place without a
/// rebuild on MySQL.
fn table_option(mut c: Change, f: &Facts, why: &str) -> Change {
    if f.mariadb {
        set(&mut c, Algorithm::Instant, MyLock::None, why);
        c.instant_kind = InstantKind::TableOption;
    } else {
        set(&mut c, Algorithm::Inplace, MyLock::None, why);
        c.rewrite = false;
    }
    c
}

/// A clause sqlparser does not parse, read by [`mysql_clauses`]. Measured on MariaDB
/// 10.11 (`tests/plan_mysql.rs`): `RENAME INDEX` is instant; `FORCE`, `ENGINE=` (the
/// same engine), `ROW_FORMAT=` and `KEY_BLOCK_SIZE=` rebuild the table in place with
/// LOCK=NONE; another engine copies it; `AUTO_INCREMENT=`, `COMMENT=`, `STATS_…=`, the
/// options InnoDB only records (`PACK_KEYS=`, `CHECKSUM=`, `MAX_ROWS=`, …), `ALTER INDEX …
/// IGNORED` and the default character set or collation are instant; `CONVERT TO CHARACTER SET` is what
/// its columns need ([`recode`]).
fn classify_option(o: &TableOpt, f: &Facts, cx: &Ctx) -> Change {
    let text = o.text.clone();
    let rebuild = |op: ChangeKind, why: &str| {
        let mut c = Change::new(text.clone(), op);
        set(&mut c, Algorithm::Inplace, MyLock::None, why);
        c
    };
    match &o.kind {
        OptKind::RenameIndex { from, to } => {
            let mut c = Change::new(text, ChangeKind::RenameIndex);
            c.columns = f
                .indexes
                .iter()
                .find(|i| i.name.eq_ignore_ascii_case(from))
                .map(|i| i.column_names())
                .unwrap_or_default();
            c.new_name = Some(to.clone());
            if f.mariadb {
                set(
                    &mut c,
                    Algorithm::Instant,
                    MyLock::None,
                    "renaming an index is metadata only",
                );
                c.instant_kind = InstantKind::Engine;
            } else {
                set(
                    &mut c,
                    Algorithm::Inplace,
                    MyLock::None,
                    "renaming an index is in place, metadata only",
                );
                c.rewrite = false;
            }
            c
        }
        OptKind::Force => rebuild(
            ChangeKind::TableOption,
            "FORCE rebuilds the table in place while writes continue",
        ),
        OptKind::Engine(e) => {
            let same = f
                .mysql
                .engine
                .as_deref()
                .is_none_or(|cur| cur.eq_ignore_ascii_case(unquote(e).as_str()));
            if same {
                rebuild(
                    ChangeKind::TableOption,
                    "ENGINE= with the table's own engine rebuilds it in place while writes continue",
                )
            } else {
                let mut c = Change::new(text, ChangeKind::TableOption);
                set(
                    &mut c,
                    Algorithm::Copy,
                    MyLock::Shared,
                    "changing the storage engine copies the table; writes wait",
                );
                c
            }
        }
        OptKind::RowFormat(_) => rebuild(
            ChangeKind::TableOption,
            "ROW_FORMAT= rebuilds the table in place while writes continue",
        ),
        OptKind::KeyBlockSize => rebuild(
            ChangeKind::TableOption,
            "KEY_BLOCK_SIZE= rebuilds the table in place while writes continue",
        ),
        OptKind::AutoIncrement => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "the AUTO_INCREMENT value is metadata only",
        ),
        OptKind::Comment => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "the table comment is metadata only",
        ),
        OptKind::Recorded => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "InnoDB only records this option (PACK_KEYS, CHECKSUM, MAX_ROWS, …): metadata only",
        ),
        OptKind::IgnoreIndex(name) => {
            let mut c = table_option(
                Change::new(text, ChangeKind::Other),
                f,
                "whether the optimizer ignores an index is metadata only",
            );
            c.new_name = Some(name.clone());
            c
        }
        OptKind::Stats => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "statistics options are metadata only",
        ),
        OptKind::DefaultCharset(_) | OptKind::DefaultCollate(_) => table_option(
            Change::new(text, ChangeKind::TableOption),
            f,
            "the table's default character set or collation is metadata only (existing columns keep theirs)",
        ),
        OptKind::Convert { .. } => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            let coll = cx.table_collation.clone().unwrap_or_default();
            let cs = collation_charset(&coll);
            let mut alg = if f.mariadb {
                Algorithm::Instant
            } else {
                Algorithm::Inplace
            };
            let mut why = "no column changes its character set or collation: only the table's default changes".to_string();
            let mut columns = Vec::new();
            for col in f.columns.iter().filter(|k| k.charset.is_some()) {
                if let Some((a, w)) = recode(col, &cs, &coll, true, f) {
                    columns.push(col.name.clone());
                    if a < alg || columns.len() == 1 {
                        why = w;
                    }
                    alg = alg.min(a);
                }
            }
            if !f.mariadb && !columns.is_empty() {
                alg = Algorithm::Copy;
                why = "CONVERT TO CHARACTER SET copies the table on MySQL".into();
            }
            let lock = if alg == Algorithm::Copy {
                MyLock::Shared
            } else {
                MyLock::None
            };
            set(&mut c, alg, lock, &why);
            c.rewrite = alg == Algorithm::Copy;
            c.instant_kind = if columns.is_empty() {
                InstantKind::TableOption
            } else {
                InstantKind::Engine
            };
            c.columns = columns;
            c
        }
        OptKind::Other(name) => {
            let mut c = Change::new(text, ChangeKind::TableOption);
            set(
                &mut c,
                Algorithm::Copy,
                MyLock::Shared,
                &format!("{name} is not classified: assuming a table copy"),
            );
            c
        }
    }
}

fn add_constraint(text: String, tc: &TableConstraint, f: &Facts, _v: V, _maria: bool) -> Change {
    match tc {
        TableConstraint::Index(i) => {
            let mut c = Change::new(text, ChangeKind::AddIndex);
            c.columns = ident_list(&i.columns);
            c.new_name = i.name.as_ref().map(|n| n.value.clone());
            set(&mut c, nocopy(f), MyLock::None, "a secondary index is built in place while writes continue (replicas apply it serially)");
            c
        }
        TableConstraint::Unique(u) => {
            let mut c = Change::new(text, ChangeKind::AddUnique);
            c.columns = ident_list(&u.columns);
            c.new_name = u
                .name
                .as_ref()
                .or(u.index_name.as_ref())
                .map(|n| n.value.clone());
            set(
                &mut c,
                nocopy(f),
                MyLock::None,
                "a unique index is built in place while writes continue (fails on duplicates)",
            );
            c
        }
        TableConstraint::FulltextOrSpatial(ft) => {
            let mut c = Change::new(text, ChangeKind::AddIndex);
            c.columns = ident_list(&ft.columns);
            let has_ft = f
                .indexes
                .iter()
                .any(|i| i.kind.eq_ignore_ascii_case("FULLTEXT"));
            if ft.fulltext && !has_ft {
                set(
                    &mut c,
                    Algorithm::Inplace,
                    MyLock::Shared,
                    "the first FULLTEXT index rebuilds the table (FTS_DOC_ID); writes wait",
                );
            } else {
                set(
                    &mut c,
                    nocopy(f),
                    MyLock::Shared,
                    "FULLTEXT/SPATIAL indexes are built in place, but writes wait",
                );
            }
            c
        }
        TableConstraint::PrimaryKey(p) => {
            let mut c = Change::new(text, ChangeKind::AddPrimaryKey);
            c.columns = ident_list(&p.columns);
            set(
                &mut c,
                Algorithm::Inplace,
                MyLock::None,
                "a new primary key rebuilds the clustered index in place",
            );
            c
        }
        TableConstraint::ForeignKey(fk) => {
            let mut c = Change::new(text, ChangeKind::AddForeignKey);
            c.columns = fk.columns.iter().map(|i| i.value.clone()).collect();
            if f.setting("foreign_key_checks") == Some("0") {
                set(
                    &mut c,
                    nocopy(f),
                    MyLock::None,
                    "with foreign_key_checks=0 a foreign key is added in place",
                );
            } else {
                set(
                    &mut c,
                    Algorithm::Copy,
                    MyLock::Shared,
                    "with foreign_key_checks=1 a foreign key is added by copying the table",
                );
            }
            c
        }
        TableConstraint::Check(_) => {
            let mut c = Change::new(text, ChangeKind::AddCheck);
            let why = "a CHECK constraint is validated by copying the table";
            set(&mut c, Algorithm::Copy, MyLock::Shared, why);
            c
        }
        _ => {
            let mut c = Change::new(text, ChangeKind::Other);
            set(
                &mut c,
                Algorithm::Copy,
                MyLock::Shared,
                "not classified: assuming a table copy",
            );
            c
        }
    }
}

/// The ALTER as the server runs it: the worst algorithm and the strongest lock. An
/// instant row-format change (add/drop/reorder column) that shares the statement with
/// an in-place clause is no longer instant: the table is rebuilt. On MariaDB a table
/// option (AUTO_INCREMENT, COMMENT, default charset, STATS_…) with an instant rename or
/// type change is done in place (NOCOPY), unless the row format changes too (measured on
/// 10.11).
/// The column's place as the ALTER gives it (see [`Change::position`]).
fn place(p: &MySQLColumnPosition) -> String {
    match p {
        MySQLColumnPosition::First => String::new(),
        MySQLColumnPosition::After(i) => i.value.clone(),
    }
}

/// The table's columns after the ALTER, in order (names as they end up).
fn columns_after(changes: &[Change], f: &Facts) -> Vec<String> {
    let mut cols: Vec<String> = f.columns.iter().map(|c| c.name.clone()).collect();
    let find = |cols: &[String], n: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(n));
    for c in changes {
        let Some(name) = c.columns.first() else {
            continue;
        };
        match c.op {
            ChangeKind::DropColumn => {
                cols.retain(|k| !c.columns.iter().any(|d| d.eq_ignore_ascii_case(k)))
            }
            ChangeKind::AddColumn => {
                let at = match c.position.as_deref() {
                    None => cols.len(),
                    Some("") => 0,
                    Some(after) => find(&cols, after).map(|i| i + 1).unwrap_or(cols.len()),
                };
                cols.insert(at, name.clone());
            }
            _ => {
                let Some(i) = find(&cols, name) else { continue };
                let new = c.new_name.clone().unwrap_or_else(|| cols[i].clone());
                match c.position.as_deref() {
                    None => cols[i] = new,
                    Some(p) => {
                        cols.remove(i);
                        let at = if p.is_empty() {
                            0
                        } else {
                            find(&cols, p).map(|i| i + 1).unwrap_or(cols.len())
                        };
                        cols.insert(at, new);
                    }
                }
            }
        }
    }
    cols
}

/// MariaDB with VIRTUAL columns (measured on 10.11, `tests/differential`): a statement that
/// adds a column and moves a VIRTUAL column (its place among the columns changes: a column
/// added before it, or dropped before it and added again elsewhere) is a copy ("INPLACE
/// ADD or DROP of virtual columns cannot be combined with other ALTER TABLE actions"). While
/// a VIRTUAL column stays indexed, a DROP COLUMN copies too, and what would be an instant
/// add or reorder, or a rebuild in place, is a rebuild in place with LOCK=SHARED ("online
/// rebuild with indexed virtual columns").
fn virtual_columns(
    changes: &[Change],
    f: &Facts,
    alg: Algorithm,
    row_format_change: bool,
) -> Option<(Algorithm, MyLock, &'static str)> {
    if !f.mariadb || alg == Algorithm::Copy {
        return None;
    }
    let after = columns_after(changes, f);
    let index_of = |n: &str| after.iter().position(|c| c.eq_ignore_ascii_case(n));
    let renamed = |n: &str| {
        changes
            .iter()
            .find(|c| {
                c.new_name.is_some() && c.columns.first().is_some_and(|k| k.eq_ignore_ascii_case(n))
            })
            .and_then(|c| c.new_name.clone())
            .unwrap_or_else(|| n.to_string())
    };
    let dropped_indexes: Vec<&str> = changes
        .iter()
        .filter(|c| c.op == ChangeKind::DropIndex)
        .filter_map(|c| c.new_name.as_deref())
        .collect();
    let mut moved = false;
    let mut indexed = false;
    for (i, v) in f
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.virtual_column)
    {
        let Some(j) = index_of(&renamed(&v.name)) else {
            continue;
        };
        moved |= i != j;
        indexed |= f.indexes.iter().any(|x| {
            !dropped_indexes
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&x.name))
                && x.columns
                    .iter()
                    .flatten()
                    .any(|k| k.eq_ignore_ascii_case(&v.name))
        });
    }
    let adds = changes.iter().any(|c| c.op == ChangeKind::AddColumn);
    let drops = changes.iter().any(|c| c.op == ChangeKind::DropColumn);
    if adds && moved {
        return Some((
            Algorithm::Copy,
            MyLock::Shared,
            "a column is added and a VIRTUAL column changes place: the table is copied (MariaDB)",
        ));
    }
    if !indexed {
        return None;
    }
    if drops {
        return Some((
            Algorithm::Copy,
            MyLock::Shared,
            "the table has an indexed VIRTUAL column: DROP COLUMN copies the table (MariaDB)",
        ));
    }
    let rebuild = (alg == Algorithm::Instant && row_format_change)
        || (alg == Algorithm::Inplace && (row_format_change || changes.iter().any(|c| c.rewrite)));
    rebuild.then_some((
        Algorithm::Inplace,
        MyLock::Shared,
        "the table has an indexed VIRTUAL column: the table is rebuilt in place, and not online (writes wait; MariaDB)",
    ))
}

pub fn combine(changes: &[Change], f: &Facts) -> Change {
    let text = changes
        .iter()
        .map(|c| c.clause.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let mut all = Change::new(text, ChangeKind::Other);
    let mut alg = changes
        .iter()
        .filter_map(|c| c.algorithm)
        .min()
        .unwrap_or(Algorithm::Copy);
    let lock = changes
        .iter()
        .filter_map(|c| c.mysql_lock)
        .max()
        .unwrap_or(MyLock::Shared);
    let kind = |k: InstantKind| {
        changes
            .iter()
            .any(|c| c.algorithm == Some(Algorithm::Instant) && c.instant_kind == k)
    };
    let row_format_change = kind(InstantKind::RowFormat);
    let mut reason = changes
        .iter()
        .find(|c| c.algorithm == Some(alg))
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    if row_format_change && alg == nocopy(f) && alg != Algorithm::Instant {
        alg = Algorithm::Inplace;
        reason =
            "an added/dropped column combined with an in-place clause rebuilds the table".into();
    }
    if f.mariadb
        && alg == Algorithm::Instant
        && !row_format_change
        && kind(InstantKind::TableOption)
        && kind(InstantKind::Engine)
    {
        alg = Algorithm::Nocopy;
        reason = "a table option together with a rename or a column type change is done in place (NOCOPY), not instantly".into();
    }
    let mut lock = lock;
    if let Some((a, l, why)) = virtual_columns(changes, f, alg, row_format_change) {
        (alg, lock, reason) = (a, l, why.to_string());
    }
    set(&mut all, alg, lock, &reason);
    all.rewrite = changes.iter().any(|c| c.rewrite)
        || (alg == Algorithm::Inplace && row_format_change)
        || alg == Algorithm::Copy;
    all.blocks_writes = changes.iter().any(|c| c.blocks_writes);
    all.blocks_reads = changes.iter().any(|c| c.blocks_reads);
    all
}

/// Native with the exact statement, `godwit run`, or phases.
pub fn recommend(
    f: &Facts,
    changes: &[Change],
    all: &Change,
    clauses: &str,
    o: &PlanOptions,
) -> Recommendation {
    let q = super::sql::quote(&f.table);
    let large = crate::plan::is_large(f, o);
    let alg = all.algorithm.unwrap_or(Algorithm::Copy);
    let lock = all.mysql_lock.unwrap_or(MyLock::Shared);
    let native = format!(
        "ALTER TABLE {q} {clauses}, ALGORITHM={}, LOCK={}",
        if alg == Algorithm::Nocopy && !f.mariadb {
            "INPLACE"
        } else {
            alg.as_str()
        },
        lock.as_str()
    );
    let timeout = "SET SESSION lock_wait_timeout = 5".to_string();
    let breaking = changes.iter().any(|c| {
        matches!(
            c.op,
            ChangeKind::RenameColumn | ChangeKind::RenameTable | ChangeKind::DropColumn
        ) || (c.op == ChangeKind::ChangeColumn && c.new_name.is_some())
    });
    if breaking {
        return Recommendation {
            strategy: Strategy::Phases,
            statements: vec![
                "expand: add the new column/table and write to both from the application".into(),
                "backfill: copy existing values (godwit run, or batched UPDATEs)".into(),
                "switch reads, then contract: drop the old column/table".into(),
                format!("the last step alone natively: {timeout}; {native}"),
            ],
            reason: "renaming or dropping breaks application code that still uses the old name; roll it out in phases".into(),
        };
    }
    if alg == Algorithm::Instant {
        return Recommendation {
            strategy: Strategy::Native,
            statements: vec![timeout, native],
            reason: "metadata only: instant on the primary and on replicas; a short lock_wait_timeout keeps it from queueing behind long transactions".into(),
        };
    }
    if lock == MyLock::None && !large {
        return Recommendation {
            strategy: Strategy::Native,
            statements: vec![timeout, native],
            reason: "in place with concurrent writes, on a small table; replicas apply it serially (brief lag)".into(),
        };
    }
    Recommendation {
        strategy: Strategy::Online,
        statements: vec![format!(
            "godwit run --url URL --table {} --alter \"{}\" --execute",
            f.table,
            clauses.replace('"', "\\\"")
        )],
        reason: if lock != MyLock::None {
            format!(
                "the server would run {} with LOCK={}: writes wait for the whole operation",
                alg.as_str(),
                lock.as_str()
            )
        } else {
            format!(
                "{} on a large table: replicas apply it serially and lag for its whole duration",
                alg.as_str()
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Column, Index};

    fn facts() -> Facts {
        Facts {
            engine: crate::target::EngineKind::Mysql,
            server_version: "10.11.14-MariaDB".into(),
            version: (10, 11, 14),
            mariadb: true,
            schema: "db".into(),
            table: "t".into(),
            row_estimate: 10,
            data_bytes: 16384,
            index_bytes: 0,
            avg_row_bytes: 100,
            columns: vec![
                Column {
                    name: "a".into(),
                    column_type: "int(11)".into(),
                    data_type: "int".into(),
                    nullable: true,
                    ..Default::default()
                },
                Column {
                    name: "b".into(),
                    column_type: "varchar(50)".into(),
                    data_type: "varchar".into(),
                    nullable: true,
                    charset: Some("utf8mb4".into()),
                    ..Default::default()
                },
            ],
            // `a` is indexed.
            indexes: vec![Index {
                name: "k_a".into(),
                columns: vec![Some("a".into())],
                kind: "BTREE".into(),
                valid: true,
                ..Default::default()
            }],
            proven_not_null: vec![],
            row_format: None,
            free_bytes: None,
            replicas: None,
            long_transactions: vec![],
            settings: vec![],
            sample: None,
            mysql: Default::default(),
            pg: Default::default(),
        }
    }

    fn one(clause: &str) -> Change {
        let f = facts();
        let ch = classify_all(&format!("ALTER TABLE t {clause}"), &f).unwrap();
        combine(&ch, &f)
    }

    fn col(name: &str, t: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            column_type: t.into(),
            data_type: crate::plan::type_parts(t).0,
            nullable,
            ..Default::default()
        }
    }

    fn alg_lock(f: &Facts, clause: &str) -> (Algorithm, MyLock) {
        let ch = classify_all(&format!("ALTER TABLE t {clause}"), f).unwrap();
        let all = combine(&ch, f);
        (all.algorithm.unwrap(), all.mysql_lock.unwrap())
    }

    #[test]
    fn column_spellings_auto_increment_timestamps_and_recorded_options_on_mariadb() {
        use Algorithm::*;
        let mut f = facts();
        f.columns.push(col("bo", "tinyint(1)", false));
        f.columns.push(col("y", "year(4)", true));
        f.columns.push(col("ts", "timestamp(3)", true));
        f.indexes.push(crate::plan::Index {
            name: "idx_a".into(),
            columns: vec![Some("a".into())],
            ..Default::default()
        });
        assert_eq!(alg_lock(&f, "MODIFY bo BOOLEAN NOT NULL FIRST").0, Instant);
        assert_eq!(alg_lock(&f, "MODIFY y YEAR NULL AFTER a").0, Instant);
        assert_eq!(
            alg_lock(&f, "MODIFY a INT AUTO_INCREMENT"),
            (Copy, MyLock::Shared)
        );
        assert_eq!(
            alg_lock(
                &f,
                "MODIFY ts TIMESTAMP(3) NOT NULL DEFAULT '2000-01-01 00:00:00'"
            ),
            (Copy, MyLock::Shared)
        );
        for o in [
            "PACK_KEYS = 1",
            "CHECKSUM = 1",
            "MAX_ROWS = 1000, AVG_ROW_LENGTH = 100",
            "ALTER INDEX idx_a IGNORED",
            "ALTER KEY idx_a NOT IGNORED",
        ] {
            assert_eq!(alg_lock(&f, o), (Instant, MyLock::None), "{o}");
        }
    }

    #[test]
    fn virtual_columns_on_mariadb() {
        use Algorithm::*;
        let mut f = facts();
        f.columns.push(Column {
            virtual_column: true,
            generated: true,
            ..col("g", "int(11)", true)
        });
        f.columns.push(col("w", "int(11)", true));
        // Not indexed: only a statement that adds a column and moves it copies.
        assert_eq!(alg_lock(&f, "ADD COLUMN x INT").0, Instant);
        assert_eq!(alg_lock(&f, "DROP COLUMN w").0, Instant);
        assert_eq!(
            alg_lock(&f, "ADD COLUMN x INT AFTER a"),
            (Copy, MyLock::Shared)
        );
        assert_eq!(
            alg_lock(&f, "DROP COLUMN b, ADD COLUMN b INT"),
            (Copy, MyLock::Shared)
        );
        assert_ne!(
            alg_lock(&f, "DROP COLUMN b, ADD COLUMN b INT AFTER a").0,
            Copy
        );
        assert_eq!(alg_lock(&f, "MODIFY g INT AS (a + 2) VIRTUAL").0, Copy);
        // Indexed: no instant add, no online rebuild, DROP COLUMN copies.
        f.indexes.push(crate::plan::Index {
            name: "idx_g".into(),
            columns: vec![Some("g".into())],
            ..Default::default()
        });
        assert_eq!(alg_lock(&f, "ADD COLUMN x INT"), (Inplace, MyLock::Shared));
        assert_eq!(
            alg_lock(&f, "MODIFY b VARCHAR(50) FIRST"),
            (Inplace, MyLock::Shared)
        );
        assert_eq!(alg_lock(&f, "FORCE"), (Inplace, MyLock::Shared));
        assert_eq!(alg_lock(&f, "DROP COLUMN w"), (Copy, MyLock::Shared));
        assert_eq!(alg_lock(&f, "COMMENT = 'x'"), (Instant, MyLock::None));
        assert_eq!(alg_lock(&f, "FORCE, DROP INDEX idx_g").1, MyLock::None);
    }

    #[test]
    fn the_clustered_key_of_a_table_without_primary_key_on_mariadb() {
        use Algorithm::*;
        let mut f = facts();
        f.columns[0].nullable = false;
        f.indexes.push(crate::plan::Index {
            name: "uq_a".into(),
            columns: vec![Some("a".into())],
            unique: true,
            ..Default::default()
        });
        assert_eq!(alg_lock(&f, "ADD PRIMARY KEY (a)"), (Nocopy, MyLock::None));
        assert_eq!(
            alg_lock(&f, "DROP INDEX uq_a, ADD PRIMARY KEY (a)"),
            (Instant, MyLock::None)
        );
        assert_eq!(alg_lock(&f, "DROP INDEX uq_a"), (Copy, MyLock::Shared));
        assert_eq!(alg_lock(&f, "DROP COLUMN a"), (Copy, MyLock::Shared));
        assert_ne!(
            alg_lock(&f, "DROP INDEX uq_a, ADD PRIMARY KEY (a, b)").0,
            Copy
        );
        // With a primary key: the same NOT NULL columns as a UNIQUE key keep the clustering.
        let mut f = facts();
        f.columns[0].nullable = false;
        f.indexes.push(crate::plan::Index {
            name: "PRIMARY".into(),
            columns: vec![Some("a".into())],
            unique: true,
            primary: true,
            ..Default::default()
        });
        assert_eq!(
            alg_lock(&f, "DROP PRIMARY KEY, ADD UNIQUE KEY uq (a)"),
            (Instant, MyLock::None)
        );
    }

    #[test]
    fn basic_mariadb_classes() {
        assert_eq!(one("ADD COLUMN x INT").algorithm, Some(Algorithm::Instant));
        assert_eq!(
            one("MODIFY b VARCHAR(60)").algorithm,
            Some(Algorithm::Instant)
        );
        assert_eq!(
            one("MODIFY b VARCHAR(100)").algorithm,
            Some(Algorithm::Copy)
        );
        assert_eq!(one("MODIFY a BIGINT").algorithm, Some(Algorithm::Copy));
        assert_eq!(
            one("MODIFY a INT NOT NULL").algorithm,
            Some(Algorithm::Inplace)
        );
        assert_eq!(one("ADD INDEX i (b)").algorithm, Some(Algorithm::Nocopy));
        assert_eq!(
            one("ADD COLUMN x INT, ADD INDEX i (x)").algorithm,
            Some(Algorithm::Inplace)
        );
    }

    #[test]
    fn varchar_from_127_bytes_extends_instantly_on_mariadb() {
        let mut f = facts();
        for (name, ty, cs) in [
            ("l", "varchar(127)", "latin1"),
            ("m", "varchar(128)", "latin1"),
            ("u", "varchar(31)", "utf8mb4"),
        ] {
            f.columns.push(Column {
                name: name.into(),
                column_type: ty.into(),
                data_type: "varchar".into(),
                nullable: true,
                charset: Some(cs.into()),
                ..Default::default()
            });
        }
        let alg = |f: &Facts, clause: &str| {
            let ch = classify_all(&format!("ALTER TABLE t {clause}"), f).unwrap();
            combine(&ch, f).algorithm.unwrap()
        };
        assert_eq!(alg(&f, "MODIFY l VARCHAR(300)"), Algorithm::Instant);
        assert_eq!(alg(&f, "MODIFY m VARCHAR(300)"), Algorithm::Copy);
        assert_eq!(alg(&f, "MODIFY u VARCHAR(300)"), Algorithm::Instant);
        assert_eq!(alg(&f, "MODIFY b VARCHAR(100)"), Algorithm::Copy);
        f.row_format = Some("Redundant".into());
        assert_eq!(alg(&f, "MODIFY m VARCHAR(300)"), Algorithm::Instant);
        // MySQL keeps the length-byte count.
        f.row_format = Some("Dynamic".into());
        f.mariadb = false;
        f.version = (8, 0, 36);
        assert_eq!(alg(&f, "MODIFY l VARCHAR(300)"), Algorithm::Copy);
        assert_eq!(alg(&f, "MODIFY l VARCHAR(200)"), Algorithm::Inplace);
    }

    #[test]
    fn unparsed_clauses_are_planned_in_order_with_the_parsed_ones() {
        let mut f = facts();
        f.mysql.engine = Some("InnoDB".into());
        f.indexes.push(crate::plan::Index {
            name: "i_a".into(),
            columns: vec![Some("a".into())],
            ..Default::default()
        });
        let ch = classify_all(
            "ALTER TABLE t ADD COLUMN z INT, RENAME INDEX i_a TO `i b`, ENGINE = InnoDB AUTO_INCREMENT=5, ALGORITHM=INPLACE",
            &f,
        )
        .unwrap();
        let ops: Vec<ChangeKind> = ch.iter().map(|c| c.op).collect();
        assert_eq!(
            ops,
            vec![
                ChangeKind::AddColumn,
                ChangeKind::RenameIndex,
                ChangeKind::TableOption,
                ChangeKind::TableOption
            ]
        );
        assert_eq!(ch[1].clause, "RENAME INDEX i_a TO `i b`");
        assert_eq!(ch[1].columns, vec!["a".to_string()]);
        assert_eq!(ch[2].clause, "ENGINE = InnoDB");
        assert_eq!(
            clause_text(&ch),
            "ADD COLUMN z INT, RENAME INDEX i_a TO `i b`, ENGINE = InnoDB, AUTO_INCREMENT=5"
        );
        assert_eq!(combine(&ch, &f).algorithm, Some(Algorithm::Inplace));
        assert_eq!(
            one("RENAME INDEX i_a TO i_b").algorithm,
            Some(Algorithm::Instant)
        );
        assert_eq!(one("ENGINE=Aria").algorithm, Some(Algorithm::Inplace));
        f.mysql.engine = Some("InnoDB".into());
        let ch = classify_all("ALTER TABLE t ENGINE=Aria", &f).unwrap();
        assert_eq!(ch[0].algorithm, Some(Algorithm::Copy));
        // A table option with an instant rename is NOCOPY on MariaDB.
        let ch = classify_all("ALTER TABLE t AUTO_INCREMENT=9, RENAME COLUMN a TO a2", &f).unwrap();
        assert_eq!(combine(&ch, &f).algorithm, Some(Algorithm::Nocopy));
        let ch = classify_all(
            "ALTER TABLE t AUTO_INCREMENT=9, RENAME COLUMN a TO a2, ADD COLUMN q INT",
            &f,
        )
        .unwrap();
        assert_eq!(combine(&ch, &f).algorithm, Some(Algorithm::Instant));
    }

    #[test]
    fn convert_judges_every_character_column() {
        let mut f = facts();
        f.mysql.table_collation = Some("utf8mb4_general_ci".into());
        f.columns[1].collation = Some("utf8mb4_general_ci".into());
        f.columns.push(Column {
            name: "s".into(),
            column_type: "varchar(20)".into(),
            data_type: "varchar".into(),
            charset: Some("utf8mb3".into()),
            collation: Some("utf8mb3_general_ci".into()),
            nullable: true,
            ..Default::default()
        });
        let alg = |f: &Facts, clause: &str| {
            let ch = classify_all(&format!("ALTER TABLE t {clause}"), f).unwrap();
            combine(&ch, f).algorithm.unwrap()
        };
        assert_eq!(
            alg(&f, "CONVERT TO CHARACTER SET utf8mb4"),
            Algorithm::Instant
        );
        assert_eq!(alg(&f, "CONVERT TO CHARACTER SET latin1"), Algorithm::Copy);
        f.indexes.push(Index {
            name: "k_s".into(),
            columns: vec![Some(f.columns[1].name.clone())],
            ..Default::default()
        });
        assert_eq!(
            alg(&f, "CONVERT TO CHARSET utf8mb4 COLLATE utf8mb4_bin"),
            Algorithm::Nocopy
        );
        // MODIFY without a character set takes the table's default.
        assert_eq!(alg(&f, "MODIFY s VARCHAR(20)"), Algorithm::Instant);
        assert_eq!(
            alg(&f, "DEFAULT CHARSET=latin1, MODIFY b VARCHAR(50)"),
            Algorithm::Copy
        );
        f.mariadb = false;
        f.version = (8, 0, 36);
        assert_eq!(alg(&f, "CONVERT TO CHARACTER SET utf8mb4"), Algorithm::Copy);
    }

    #[test]
    fn mysql_versions_differ() {
        let mut f = facts();
        f.mariadb = false;
        f.version = (8, 0, 25);
        let ch = classify_all("ALTER TABLE t ADD COLUMN x INT FIRST", &f).unwrap();
        assert_eq!(ch[0].algorithm, Some(Algorithm::Inplace));
        f.version = (8, 0, 30);
        let ch = classify_all("ALTER TABLE t ADD COLUMN x INT FIRST", &f).unwrap();
        assert_eq!(ch[0].algorithm, Some(Algorithm::Instant));
    }

    #[test]
    fn mysql_row_version_limit_and_redo_bug() {
        let mut f = facts();
        f.mariadb = false;
        f.version = (8, 0, 30);
        let ch = classify_all("ALTER TABLE t ADD COLUMN x INT", &f).unwrap();
        assert_eq!(ch[0].algorithm, Some(Algorithm::Instant));
        assert!(ch[0].reason.contains("redo"), "{}", ch[0].reason);
        f.version = (8, 0, 35);
        f.settings.push(("total_row_versions".into(), "64".into()));
        let ch = classify_all("ALTER TABLE t ADD COLUMN x INT", &f).unwrap();
        assert_eq!(ch[0].algorithm, Some(Algorithm::Inplace));
    }

    #[test]
    fn unparsable_alter_is_bad_input() {
        let e = classify_all("ALTER TABLE t ADD COLUMN", &facts()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
    }
}
