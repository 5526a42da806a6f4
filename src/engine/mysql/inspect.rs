//! The one catalog reader of MySQL/MariaDB: a table (or view) as the engine-neutral
//! [`Table`], from information_schema. The online path, the phases and the planner read
//! tables through it.

use super::conn_err;
use crate::error::{Error, ErrorKind, Result, ServerCode};
use crate::schema::{self, Check, Column, Index, Table};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

fn s(row: &Row, i: usize) -> Option<String> {
    row.get_opt::<Option<String>, _>(i)
        .and_then(|r| r.ok())
        .flatten()
}
fn n(row: &Row, i: usize) -> Option<u64> {
    row.get_opt::<Option<u64>, _>(i)
        .and_then(|r| r.ok())
        .flatten()
}

const META: &str = "SELECT TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

const COLUMNS: &str = "SELECT COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
    IFNULL(GENERATION_EXPRESSION, ''), EXTRA, CHARACTER_SET_NAME, COLLATION_NAME, \
    NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_OCTET_LENGTH, COLUMN_DEFAULT, COLUMN_COMMENT \
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

/// Every index part, in the server's order of the table's keys. `plain`: a B-tree over
/// the whole column, ascending, without a comment.
const INDEXES: &str = "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE, SUB_PART, \
    (INDEX_TYPE = 'BTREE' AND SUB_PART IS NULL AND COALESCE(COLLATION, 'A') = 'A' AND INDEX_COMMENT = '') \
    FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// MariaDB 10.2+ names the table of a CHECK constraint (constraint names are per table).
const CHECKS: &str =
    "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
    WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?";

/// The foreign keys of the table (with their name) and those of other tables pointing
/// at it (without): column, what uses it, own constraint name.
const FOREIGN_KEYS: &str = "SELECT COLUMN_NAME, CONCAT('foreign key `', CONSTRAINT_NAME, '`'), CONSTRAINT_NAME \
      FROM information_schema.KEY_COLUMN_USAGE \
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL \
    UNION ALL SELECT REFERENCED_COLUMN_NAME, CONCAT('foreign key `', CONSTRAINT_NAME, '` of table `', TABLE_NAME, '`'), NULL \
      FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?";

/// `db`.`table` (a table or a view) as the catalog describes it, with its
/// `TABLE_TYPE` (`BASE TABLE`, `VIEW`, …); `None` when it does not exist.
pub async fn read(conn: &mut Conn, db: &str, table: &str) -> Result<Option<(String, Table)>> {
    let meta: Option<Row> = conn
        .exec_first(META, (db, table))
        .await
        .map_err(|e| conn_err(e, "inspecting the table"))?;
    let Some(meta) = meta else {
        return Ok(None);
    };
    let table_type = s(&meta, 0).unwrap_or_default();
    let rows: Vec<Row> = conn
        .exec(COLUMNS, (db, table))
        .await
        .map_err(|e| conn_err(e, "reading columns"))?;
    let mut columns = Vec::new();
    // Generated columns and the expressions that compute them; column attributes.
    let mut generated_by: Vec<(String, String)> = Vec::new();
    let mut extras: Vec<(String, String)> = Vec::new();
    for r in &rows {
        let column_type = s(r, 3).unwrap_or_default();
        let extra = s(r, 6).unwrap_or_default();
        let upper = extra.to_uppercase();
        let expression = s(r, 5).unwrap_or_default();
        let name = s(r, 0).unwrap_or_default();
        if !extra.is_empty() {
            extras.push((name.clone(), extra.to_lowercase()));
        }
        if !expression.is_empty() {
            generated_by.push((name.clone(), expression.clone()));
        }
        columns.push(Column {
            name,
            ordinal: n(r, 1).unwrap_or(0) as u32,
            data_type: s(r, 2).unwrap_or_default().to_lowercase(),
            unsigned: column_type.contains("unsigned"),
            column_type,
            nullable: s(r, 4).as_deref() == Some("YES"),
            generated: !expression.is_empty() || generated_extra(&extra),
            virtual_column: upper.starts_with("VIRTUAL"),
            auto_increment: upper.contains("AUTO_INCREMENT"),
            charset: s(r, 7),
            collation: s(r, 8),
            precision: n(r, 9).map(|x| x as u32),
            scale: n(r, 10).map(|x| x as u32),
            length: n(r, 11),
            default: s(r, 12).filter(|d| !d.eq_ignore_ascii_case("null")),
            comment: s(r, 13),
        });
    }

    let rows: Vec<Row> = conn
        .exec(INDEXES, (db, table))
        .await
        .map_err(|e| conn_err(e, "reading indexes"))?;
    let mut indexes = index_parts(rows.iter().map(|r| Part {
        index: s(r, 0).unwrap_or_default(),
        seq: n(r, 1).unwrap_or(0),
        column: s(r, 2),
        unique: n(r, 3) == Some(0),
        kind: s(r, 4).unwrap_or_default(),
        prefix: n(r, 5).is_some(),
        plain: n(r, 6) == Some(1),
    }));
    for i in &mut indexes {
        i.primary = i.name == "PRIMARY";
    }
    let mut by_name = indexes.clone();
    // The order of `ORDER BY INDEX_NAME` in information_schema (case-insensitive).
    by_name.sort_by_key(|i| i.name.to_ascii_uppercase());
    let unique_keys = schema::unique_keys(&by_name, &columns);

    let mut column_uses: Vec<(String, String)> = Vec::new();
    // MariaDB keeps expressions with backquoted names: match a column by `name`.
    let mentions = |text: &str, col: &str| text.contains(&format!("`{}`", col.replace('`', "``")));
    let mut checks = Vec::new();
    match conn.exec::<Row, _, _>(CHECKS, (db, table)).await {
        Ok(rows) => {
            for r in &rows {
                let check = Check {
                    name: s(r, 0).unwrap_or_default(),
                    clause: s(r, 1).unwrap_or_default(),
                    validated: true,
                };
                for c in columns.iter().filter(|c| mentions(&check.clause, &c.name)) {
                    column_uses
                        .push((c.name.clone(), format!("check constraint `{}`", check.name)));
                }
                checks.push(check);
            }
        }
        // No per-table catalog of CHECK constraints (MySQL, MariaDB before 10.2):
        // unknown column (1054) or table (1109).
        Err(e) => {
            let e = conn_err(e, "reading CHECK constraints");
            if !matches!(e.code, Some(ServerCode::Mysql(1054 | 1109))) {
                return Err(e);
            }
        }
    }
    let rows: Vec<Row> = conn
        .exec(FOREIGN_KEYS, (db, table, db, table))
        .await
        .map_err(|e| conn_err(e, "reading foreign keys"))?;
    let mut foreign_keys: Vec<String> = Vec::new();
    for r in &rows {
        if let Some(own) = s(r, 2) {
            if !foreign_keys.contains(&own) {
                foreign_keys.push(own);
            }
        }
        if let (Some(col), Some(what)) = (s(r, 0), s(r, 1)) {
            column_uses.push((col, what));
        }
    }
    column_uses.extend(extras);
    for (gen, expression) in &generated_by {
        for c in columns
            .iter()
            .filter(|c| mentions(expression, &c.name) && c.name != *gen)
        {
            column_uses.push((c.name.clone(), format!("generated column `{gen}`")));
        }
    }
    Ok(Some((
        table_type.clone(),
        Table {
            schema: db.to_string(),
            name: table.to_string(),
            view: table_type == "VIEW",
            columns,
            indexes,
            unique_keys,
            checks,
            foreign_keys,
            column_uses,
            grants: vec![],
            row_estimate: n(&meta, 2).unwrap_or(0),
            data_bytes: n(&meta, 3).unwrap_or(0),
            index_bytes: n(&meta, 4).unwrap_or(0),
        },
    )))
}

/// The base table `db`.`table` (the online path); an error names what it is otherwise.
pub async fn inspect(conn: &mut Conn, db: &str, table: &str) -> Result<Table> {
    let Some((table_type, t)) = read(conn, db, table).await? else {
        return Err(Error::new(
            ErrorKind::TableMissing,
            format!("table `{db}`.`{table}` does not exist"),
        )
        .with_hint("check --table and the database in --url"));
    };
    if table_type != "BASE TABLE" {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "`{db}`.`{table}` is a {}, not a table",
                table_type.to_lowercase()
            ),
        ));
    }
    Ok(t)
}

/// One row of `information_schema.STATISTICS`.
struct Part {
    index: String,
    seq: u64,
    column: Option<String>,
    unique: bool,
    kind: String,
    prefix: bool,
    plain: bool,
}

/// A key part's column (`None` for an expression) and its position.
type Keyed = (u64, Option<String>);

/// Indexes from their parts, in the order their first parts come; each index's columns
/// in key order.
fn index_parts(parts: impl Iterator<Item = Part>) -> Vec<Index> {
    let mut out: Vec<(Index, Vec<Keyed>)> = Vec::new();
    for p in parts {
        let pos = match out.iter().position(|(i, _)| i.name == p.index) {
            Some(pos) => pos,
            None => {
                out.push((
                    Index {
                        name: p.index.clone(),
                        unique: p.unique,
                        kind: p.kind.clone(),
                        plain: true,
                        valid: true,
                        ..Index::default()
                    },
                    vec![],
                ));
                out.len() - 1
            }
        };
        let (idx, cols) = &mut out[pos];
        idx.plain &= p.plain && p.column.is_some();
        idx.partial |= p.column.is_none();
        if p.prefix {
            idx.prefixed.extend(p.column.clone());
            idx.partial = true;
        }
        cols.push((p.seq, p.column));
    }
    out.into_iter()
        .map(|(mut i, mut cols)| {
            cols.sort_by_key(|c| c.0);
            i.columns = cols.into_iter().map(|c| c.1).collect();
            i
        })
        .collect()
}

/// Whether `COLUMNS.EXTRA` says the column is computed: `VIRTUAL GENERATED`, `STORED
/// GENERATED`, MariaDB's older `PERSISTENT`. MySQL 8's `DEFAULT_GENERATED` (a default
/// such as `CURRENT_TIMESTAMP`) is not: that column is written like any other.
fn generated_extra(extra: &str) -> bool {
    let upper = extra.to_uppercase().replace("DEFAULT_GENERATED", "");
    upper.contains("GENERATED")
        || upper.contains("VIRTUAL")
        || upper.contains("PERSISTENT")
        || upper.contains("STORED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_default_is_not_a_generated_column() {
        for e in [
            "VIRTUAL GENERATED",
            "STORED GENERATED",
            "PERSISTENT",
            "virtual generated",
        ] {
            assert!(generated_extra(e), "{e}");
        }
        for e in [
            "",
            "auto_increment",
            "DEFAULT_GENERATED",
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP",
            "on update current_timestamp()",
        ] {
            assert!(!generated_extra(e), "{e}");
        }
    }

    fn part(index: &str, seq: u64, column: Option<&str>, prefix: bool) -> Part {
        Part {
            index: index.into(),
            seq,
            column: column.map(str::to_string),
            unique: true,
            kind: "BTREE".into(),
            prefix,
            plain: !prefix,
        }
    }

    #[test]
    fn parts_make_indexes_in_server_order_with_columns_in_key_order() {
        let idx = index_parts(
            [
                part("k", 2, Some("b"), false),
                part("PRIMARY", 1, Some("id"), false),
                part("k", 1, Some("a"), true),
                part("f", 1, None, false),
            ]
            .into_iter(),
        );
        let names: Vec<&str> = idx.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["k", "PRIMARY", "f"]);
        assert_eq!(idx[0].columns, [Some("a".into()), Some("b".into())]);
        assert_eq!(idx[0].prefixed, ["a"]);
        assert!(idx[0].partial && !idx[0].plain);
        assert!(idx[1].plain && !idx[1].partial);
        assert!(idx[2].partial && !idx[2].plain, "an expression part");
    }
}
