//! Reading table definitions from information_schema.

use super::conn_err;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Column, Table, UniqueKey};
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

pub async fn inspect(conn: &mut Conn, db: &str, table: &str) -> Result<Table> {
    let meta: Option<Row> = conn
        .exec_first(
            "SELECT TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(|e| conn_err(e, "inspecting the table"))?;
    let Some(meta) = meta else {
        return Err(Error::new(
            ErrorKind::TableMissing,
            format!("table `{db}`.`{table}` does not exist"),
        )
        .with_hint("check --table and the database in --url"));
    };
    if s(&meta, 0).as_deref() != Some("BASE TABLE") {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "`{db}`.`{table}` is a {}, not a table",
                s(&meta, 0).unwrap_or_default().to_lowercase()
            ),
        ));
    }
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
             IFNULL(GENERATION_EXPRESSION, ''), EXTRA, CHARACTER_SET_NAME, COLLATION_NAME, \
             NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_OCTET_LENGTH \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(|e| conn_err(e, "reading columns"))?;
    let columns = rows
        .iter()
        .map(|r| {
            let column_type = s(r, 3).unwrap_or_default();
            let extra = s(r, 6).unwrap_or_default().to_uppercase();
            Column {
                name: s(r, 0).unwrap_or_default(),
                ordinal: n(r, 1).unwrap_or(0) as u32,
                data_type: s(r, 2).unwrap_or_default().to_lowercase(),
                unsigned: column_type.contains("unsigned"),
                column_type,
                nullable: s(r, 4).as_deref() == Some("YES"),
                generated: !s(r, 5).unwrap_or_default().is_empty()
                    || extra.contains("GENERATED")
                    || extra.contains("VIRTUAL")
                    || extra.contains("PERSISTENT")
                    || extra.contains("STORED"),
                charset: s(r, 7),
                collation: s(r, 8),
                precision: n(r, 9).map(|x| x as u32),
                scale: n(r, 10).map(|x| x as u32),
                length: n(r, 11),
            }
        })
        .collect::<Vec<_>>();
    let idx: Vec<Row> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .map_err(|e| conn_err(e, "reading indexes"))?;
    let mut unique_keys: Vec<UniqueKey> = Vec::new();
    for r in &idx {
        let name = s(r, 0).unwrap_or_default();
        let col = s(r, 1).unwrap_or_default();
        let prefix = n(r, 2).is_some();
        let not_null = columns.iter().any(|c| c.name == col && !c.nullable);
        match unique_keys.iter_mut().find(|k| k.name == name) {
            Some(k) => {
                k.columns.push(col);
                k.has_prefix |= prefix;
                k.all_not_null &= not_null;
            }
            None => unique_keys.push(UniqueKey {
                primary: name == "PRIMARY",
                name,
                columns: vec![col],
                all_not_null: not_null,
                has_prefix: prefix,
            }),
        }
    }
    Ok(Table {
        schema: db.to_string(),
        name: table.to_string(),
        columns,
        unique_keys,
        row_estimate: n(&meta, 2).unwrap_or(0),
        data_bytes: n(&meta, 3).unwrap_or(0),
        index_bytes: n(&meta, 4).unwrap_or(0),
    })
}
