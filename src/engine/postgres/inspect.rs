//! Reading a table's definition from the catalog.

use super::conn::pg_err;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Column, Table, UniqueKey};
use tokio_postgres::Client;

/// What the catalog says about a relation beyond the engine-neutral [`Table`].
#[derive(Debug, Clone, Default)]
pub struct RelInfo {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `r` table, `p` partitioned, ...
    pub kind: char,
    /// `p` permanent, `u` unlogged, `t` temporary.
    pub persistence: char,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: char,
    pub is_partition: bool,
    pub owner: String,
    /// Columns of the replica identity (primary key for `d`, the index for `i`).
    pub identity_columns: Vec<String>,
    pub identity_index: Option<String>,
}

/// The rows of the relation `c` (a `pg_class` row) now, as PostgreSQL's planner estimates
/// them (`table_block_relation_estimate_size`): its current pages times the density of the
/// last VACUUM/ANALYZE (`reltuples / relpages`), or, for a table never analyzed
/// (`reltuples` -1, or 0 with no pages before 14), the rows of an average width that fit
/// in a page: 8 kB less the page header, per row its type widths (varchar(n): as
/// `get_typavgwidth`; other variable widths 32 bytes) plus 28 bytes of tuple header and
/// line pointer. A partitioned table (no storage) keeps `reltuples`. float8.
macro_rules! row_estimate_sql {
    () => {
        "(CASE WHEN c.relkind = 'p' THEN GREATEST(c.reltuples, 0)::float8 \
          ELSE floor(pg_relation_size(c.oid) / current_setting('block_size')::float8) * \
            CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN c.reltuples::float8 / c.relpages \
            ELSE ((current_setting('block_size')::int - 24) / (28 + ( \
              SELECT COALESCE(sum(CASE WHEN t.typlen > 0 THEN t.typlen \
                WHEN t.typname = 'bpchar' AND a.atttypmod > 4 THEN w.m \
                WHEN t.typname = 'varchar' AND a.atttypmod > 4 THEN \
                  CASE WHEN w.m <= 32 THEN w.m WHEN w.m < 1000 THEN 32 + (w.m - 32) / 2 ELSE 516 END \
                ELSE 32 END), 0)::int \
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
              CROSS JOIN LATERAL (SELECT (a.atttypmod - 4) * pg_encoding_max_length(pg_char_to_encoding(current_setting('server_encoding'))) + 4 AS m) w \
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)))::float8 \
            END END)"
    };
}
pub(crate) use row_estimate_sql;

const REL: &str = concat!(
    "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, c.relreplident::text, c.relispartition, ",
    row_estimate_sql!(),
    ", pg_table_size(c.oid), pg_indexes_size(c.oid), pg_get_userbyid(c.relowner)::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = COALESCE($1, current_schema()) AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
);

const COLUMNS: &str = "SELECT a.attname::text, a.attnum::int4, t.typname::text, t.typtype::text, bt.typname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated::text \
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
    WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

const UNIQUE_KEYS: &str = "SELECT ic.relname::text, i.indisprimary, i.indisreplident, \
    ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord), \
    COALESCE((SELECT bool_and(a.attnotnull) FROM unnest(i.indkey::int2[]) k(attnum) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), false), \
    (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL OR NOT i.indimmediate) \
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
    WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indisvalid ORDER BY i.indisprimary DESC, ic.relname";

/// Split `[schema.]name`. Quotes are not interpreted: names are taken as written.
pub fn split_name(table: &str) -> (Option<String>, String) {
    match table.split_once('.') {
        Some((s, n)) => (Some(s.to_string()), n.to_string()),
        None => (None, table.to_string()),
    }
}

pub async fn inspect(c: &Client, schema: Option<&str>, name: &str) -> Result<(Table, RelInfo)> {
    let row = c
        .query_opt(REL, &[&schema, &name])
        .await
        .map_err(|e| pg_err(e, "reading the table definition"))?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::TableMissing,
                format!(
                    "table {}{name} does not exist",
                    schema.map(|s| format!("{s}.")).unwrap_or_default()
                ),
            )
            .with_hint("check --table ([SCHEMA.]NAME, case-sensitive) and the database in --url")
        })?;
    let read = |e: tokio_postgres::Error| pg_err(e, "reading the table definition");
    let oid: i64 = row.try_get(0).map_err(read)?;
    let ch = |s: String| s.chars().next().unwrap_or(' ');
    let mut info = RelInfo {
        oid: oid as u32,
        schema: row.try_get(1).map_err(read)?,
        name: row.try_get(2).map_err(read)?,
        kind: ch(row.try_get(3).map_err(read)?),
        persistence: ch(row.try_get(4).map_err(read)?),
        replica_identity: ch(row.try_get(5).map_err(read)?),
        is_partition: row.try_get(6).map_err(read)?,
        owner: row.try_get(10).map_err(read)?,
        ..Default::default()
    };
    let reltuples: f64 = row.try_get(7).map_err(read)?;
    let data_bytes: i64 = row.try_get(8).map_err(read)?;
    let index_bytes: i64 = row.try_get(9).map_err(read)?;

    let mut columns = Vec::new();
    for r in c.query(COLUMNS, &[&oid]).await.map_err(read)? {
        let typname: String = r.try_get(2).map_err(read)?;
        let typtype: String = r.try_get(3).map_err(read)?;
        let base: Option<String> = r.try_get(4).map_err(read)?;
        let generated: String = r.try_get(7).map_err(read)?;
        let not_null: bool = r.try_get(6).map_err(read)?;
        let data_type = match typtype.as_str() {
            "e" => "enum".to_string(),
            "d" => base.unwrap_or(typname),
            _ => typname,
        };
        columns.push(Column {
            name: r.try_get(0).map_err(read)?,
            ordinal: r.try_get::<_, i32>(1).map_err(read)? as u32,
            data_type,
            column_type: r.try_get(5).map_err(read)?,
            nullable: !not_null,
            generated: !generated.is_empty(),
            unsigned: false,
            charset: None,
            collation: None,
            precision: None,
            scale: None,
            length: None,
        });
    }
    let mut unique_keys = Vec::new();
    for r in c.query(UNIQUE_KEYS, &[&oid]).await.map_err(read)? {
        let name: String = r.try_get(0).map_err(read)?;
        let primary: bool = r.try_get(1).map_err(read)?;
        let replident: bool = r.try_get(2).map_err(read)?;
        let cols: Vec<String> = r.try_get(3).map_err(read)?;
        let not_null: bool = r.try_get(4).map_err(read)?;
        let partial: bool = r.try_get(5).map_err(read)?;
        if (info.replica_identity == 'd' && primary) || (info.replica_identity == 'i' && replident)
        {
            info.identity_columns = cols.clone();
            info.identity_index = Some(name.clone());
        }
        unique_keys.push(UniqueKey {
            name,
            columns: cols,
            primary,
            all_not_null: not_null,
            has_prefix: partial,
        });
    }
    let table = Table {
        schema: info.schema.clone(),
        name: info.name.clone(),
        columns,
        unique_keys,
        row_estimate: reltuples.max(0.0).round() as u64,
        data_bytes: data_bytes.max(0) as u64,
        index_bytes: index_bytes.max(0) as u64,
    };
    Ok((table, info))
}

/// Types whose text form reads back to the same value, so a key seen in the change stream
/// finds its row again.
pub fn key_type_supported(c: &Column) -> bool {
    matches!(
        c.data_type.as_str(),
        "int2"
            | "int4"
            | "int8"
            | "numeric"
            | "text"
            | "varchar"
            | "bpchar"
            | "name"
            | "uuid"
            | "date"
            | "time"
            | "timestamp"
            | "timestamptz"
            | "bytea"
            | "bool"
            | "oid"
            | "enum"
            | "float4"
            | "float8"
            | "citext"
    )
}

/// Index definitions of a table (for matching the shadow's indexes to the original's).
pub const INDEXES: &str = "SELECT ic.relname::text, i.indisunique, i.indisprimary, \
    regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''), \
    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid), \
    pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class'), i.indisclustered \
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
    WHERE i.indrelid = $1::text::regclass ORDER BY ic.oid";

#[derive(Debug, Clone)]
pub struct IndexDef {
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    /// The definition after `USING` (method, columns, options, predicate).
    pub body: String,
    pub constraint: bool,
    pub full: String,
    pub comment: Option<String>,
    /// Marked by `CLUSTER ON` (the index a plain `CLUSTER` uses).
    pub clustered: bool,
}

/// `table` is a quoted, qualified name.
pub async fn indexes(c: &Client, table: &str) -> Result<Vec<IndexDef>> {
    let read = |e: tokio_postgres::Error| pg_err(e, "reading index definitions");
    let mut out = Vec::new();
    for r in c.query(INDEXES, &[&table]).await.map_err(read)? {
        out.push(IndexDef {
            name: r.try_get(0).map_err(read)?,
            unique: r.try_get(1).map_err(read)?,
            primary: r.try_get(2).map_err(read)?,
            body: r.try_get(3).map_err(read)?,
            constraint: r.try_get(4).map_err(read)?,
            full: r.try_get(5).map_err(read)?,
            comment: r.try_get(6).map_err(read)?,
            clustered: r.try_get(7).map_err(read)?,
        });
    }
    Ok(out)
}

/// Pair each index of the original with the shadow index `LIKE` made from it, by
/// definition. Returns (original name, shadow name).
pub fn match_indexes(orig: &[IndexDef], shadow: &[IndexDef]) -> Vec<(String, String)> {
    let mut used = vec![false; shadow.len()];
    let mut out = Vec::new();
    for o in orig {
        if let Some(i) = (0..shadow.len()).find(|&i| {
            !used[i]
                && shadow[i].unique == o.unique
                && shadow[i].primary == o.primary
                && shadow[i].constraint == o.constraint
                && shadow[i].body == o.body
        }) {
            used[i] = true;
            out.push((o.name.clone(), shadow[i].name.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(name: &str, body: &str, unique: bool) -> IndexDef {
        IndexDef {
            name: name.into(),
            unique,
            primary: false,
            body: body.into(),
            constraint: unique,
            full: String::new(),
            comment: None,
            clustered: false,
        }
    }

    #[test]
    fn indexes_pair_by_definition() {
        let o = vec![
            idx("t_pkey", "btree (id)", true),
            idx("t_a_idx", "btree (a)", false),
            idx("t_a_idx1", "btree (a)", false),
        ];
        let s = vec![
            idx("s_a_idx", "btree (a)", false),
            idx("s_pkey", "btree (id)", true),
            idx("s_a_idx1", "btree (a)", false),
        ];
        assert_eq!(
            match_indexes(&o, &s),
            vec![
                ("t_pkey".to_string(), "s_pkey".to_string()),
                ("t_a_idx".to_string(), "s_a_idx".to_string()),
                ("t_a_idx1".to_string(), "s_a_idx1".to_string())
            ]
        );
    }

    #[test]
    fn names_split_at_the_first_dot() {
        assert_eq!(split_name("s.t"), (Some("s".into()), "t".into()));
        assert_eq!(split_name("t"), (None, "t".into()));
    }
}
