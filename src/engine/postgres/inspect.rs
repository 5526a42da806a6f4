//! The one catalog reader of PostgreSQL: a relation as the engine-neutral [`Table`] (and
//! what only PostgreSQL has, [`RelInfo`]). The online path, the phases and the planner
//! read tables through it; `indexes` below reads the definitions the shadow's indexes
//! are matched by.

use super::conn::pg_err;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{self, Check, Column, Grant, Index, Table};
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

const COLUMNS: &str = "SELECT a.attname::text, a.attnum::int4, t.typname::text, t.typtype::text, bt.typname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated::text, \
    pg_get_expr(d.adbin, d.adrelid) \
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// Every index's parts (its key, then its `INCLUDE` columns: position over
/// `indnkeyatts`), by index OID (the table's key order) and position: name,
/// position, column (NULL for an expression), unique, plain (a B-tree over whole
/// columns: no expression, predicate, included column, non-default operator class,
/// descending part or collation), the constraint it implements or that needs it,
/// primary, valid, replica identity, access method, not a full key (predicate,
/// expression, deferred check), rank of the unique keys' order (primary first, then by
/// name).
const INDEX_PARTS: &str = "SELECT ic.relname::text, k.ord::int8, a.attname::text, i.indisunique, \
     (am.amname = 'btree' AND i.indexprs IS NULL AND i.indpred IS NULL AND i.indnkeyatts = i.indnatts \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) oc(o) JOIN pg_opclass op ON op.oid = oc.o WHERE NOT op.opcdefault) \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indoption::int2[]) io(v) WHERE io.v <> 0) \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[], i.indcollation::oid[]) z(n, coll) \
                      JOIN pg_attribute za ON za.attrelid = i.indrelid AND za.attnum = z.n \
                      WHERE z.coll <> 0 AND z.coll <> za.attcollation)), \
     (SELECT con.conname::text FROM pg_constraint con WHERE con.conindid = i.indexrelid ORDER BY con.oid LIMIT 1), \
     i.indisprimary, i.indisvalid, i.indisreplident, am.amname::text, \
     (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL OR NOT i.indimmediate), \
     dense_rank() OVER (ORDER BY i.indisprimary DESC, ic.relname)::int8, k.ord > i.indnkeyatts \
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0 \
     WHERE i.indrelid = $1::int8::oid \
     ORDER BY ic.oid, k.ord";

const CHECKS: &str =
    "SELECT con.conname::text, pg_get_constraintdef(con.oid), con.convalidated FROM pg_constraint con \
     WHERE con.conrelid = $1::int8::oid AND con.contype = 'c'";

const FOREIGN_KEYS: &str = "SELECT con.conname::text FROM pg_constraint con \
     WHERE con.conrelid = $1::int8::oid AND con.contype = 'f'";

/// What else uses a column (beyond its indexes and its own default): `pg_depend`, and
/// identity and generated columns.
const USES: &str = "SELECT a.attname::text, pg_describe_object(d.classid, d.objid, d.objsubid) \
     FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
     WHERE d.refobjid = $1::int8::oid AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype <> 'i' \
       AND NOT (d.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indexrelid = d.objid AND x.indrelid = d.refobjid)) \
       AND NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS (SELECT 1 FROM pg_attrdef ad WHERE ad.oid = d.objid AND ad.adrelid = d.refobjid AND ad.adnum = d.refobjsubid)) \
     UNION ALL SELECT a.attname::text, CASE WHEN a.attidentity <> '' THEN 'an identity column' ELSE 'a generated column' END \
     FROM pg_attribute a \
     WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped AND (a.attidentity <> '' OR a.attgenerated <> '')";

/// The table's privileges given to others than its owner (`PUBLIC` for everyone).
const GRANTS: &str = "SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END, g.privilege_type::text \
     FROM pg_class c, aclexplode(c.relacl) g \
     WHERE c.oid = $1::int8::oid \
     AND g.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') AND g.grantee <> c.relowner \
     ORDER BY 1, 2";

/// Split `[schema.]name`. Quotes are not interpreted: names are taken as written.
pub fn split_name(table: &str) -> (Option<String>, String) {
    match table.split_once('.') {
        Some((s, n)) => (Some(s.to_string()), n.to_string()),
        None => (None, table.to_string()),
    }
}

/// The relation `name` in `schema` (the current schema when `None`) as the online path
/// needs it; an error when it does not exist.
pub async fn inspect(c: &Client, schema: Option<&str>, name: &str) -> Result<(Table, RelInfo)> {
    read(c, schema, name).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::TableMissing,
            format!(
                "table {}{name} does not exist",
                schema.map(|s| format!("{s}.")).unwrap_or_default()
            ),
        )
        .with_hint("check --table ([SCHEMA.]NAME, case-sensitive) and the database in --url")
    })
}

/// The one catalog reader: the relation `name` (a table, a partitioned table, a view, a
/// materialized view or a foreign table) in `schema` (the current schema when `None`)
/// as the engine-neutral [`Table`], with what only PostgreSQL has ([`RelInfo`]); `None`
/// when it does not exist.
pub async fn read(
    c: &Client,
    schema: Option<&str>,
    name: &str,
) -> Result<Option<(Table, RelInfo)>> {
    let read = |e: tokio_postgres::Error| pg_err(e, "reading the table definition");
    let Some(row) = c.query_opt(REL, &[&schema, &name]).await.map_err(read)? else {
        return Ok(None);
    };
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
            default: r.try_get(8).map_err(read)?,
            ..Column::default()
        });
    }

    // Indexes by OID, each with its rank in the unique keys' order and its replica
    // identity mark.
    let mut indexes: Vec<(Index, i64, bool)> = Vec::new();
    for r in c.query(INDEX_PARTS, &[&oid]).await.map_err(read)? {
        let name: String = r.try_get(0).map_err(read)?;
        let column: Option<String> = r.try_get(2).map_err(read)?;
        let plain: bool = r.try_get(4).map_err(read)?;
        if indexes.last().is_none_or(|(i, ..)| i.name != name) {
            indexes.push((
                Index {
                    name,
                    unique: r.try_get(3).map_err(read)?,
                    constraint: r.try_get(5).map_err(read)?,
                    primary: r.try_get(6).map_err(read)?,
                    valid: r.try_get(7).map_err(read)?,
                    kind: r.try_get(9).map_err(read)?,
                    partial: r.try_get(10).map_err(read)?,
                    plain: true,
                    ..Index::default()
                },
                r.try_get(11).map_err(read)?,
                r.try_get(8).map_err(read)?,
            ));
        }
        let (idx, ..) = indexes.last_mut().expect("pushed above");
        let included: bool = r.try_get(12).map_err(read)?;
        if included {
            idx.included.extend(column);
        } else {
            idx.plain &= plain && column.is_some();
            idx.columns.push(column);
        }
    }
    let mut ranked: Vec<&(Index, i64, bool)> = indexes.iter().collect();
    ranked.sort_by_key(|(_, rank, _)| *rank);
    let by_rank: Vec<Index> = ranked.iter().map(|(i, ..)| i.clone()).collect();
    let unique_keys = schema::unique_keys(&by_rank, &columns);
    for ((_, _, replident), key) in ranked
        .iter()
        .filter(|(i, ..)| (i.unique || i.primary) && i.valid)
        .zip(&unique_keys)
    {
        if (info.replica_identity == 'd' && key.primary)
            || (info.replica_identity == 'i' && *replident)
        {
            info.identity_columns = key.columns.clone();
            info.identity_index = Some(key.name.clone());
        }
    }
    let indexes: Vec<Index> = indexes.into_iter().map(|(i, ..)| i).collect();

    let mut checks = Vec::new();
    for r in c.query(CHECKS, &[&oid]).await.map_err(read)? {
        checks.push(Check {
            name: r.try_get(0).map_err(read)?,
            clause: r.try_get(1).map_err(read)?,
            validated: r.try_get(2).map_err(read)?,
        });
    }
    let mut foreign_keys = Vec::new();
    for r in c.query(FOREIGN_KEYS, &[&oid]).await.map_err(read)? {
        foreign_keys.push(r.try_get(0).map_err(read)?);
    }
    let mut column_uses = Vec::new();
    for r in c.query(USES, &[&oid]).await.map_err(read)? {
        let col: Option<String> = r.try_get(0).map_err(read)?;
        let what: Option<String> = r.try_get(1).map_err(read)?;
        if let (Some(col), Some(what)) = (col, what) {
            column_uses.push((col, what));
        }
    }
    let mut grants = Vec::new();
    for r in c.query(GRANTS, &[&oid]).await.map_err(read)? {
        let grantee: Option<String> = r.try_get(0).map_err(read)?;
        let privilege: Option<String> = r.try_get(1).map_err(read)?;
        if let (Some(grantee), Some(privilege)) = (grantee, privilege) {
            grants.push(Grant { grantee, privilege });
        }
    }
    let table = Table {
        schema: info.schema.clone(),
        name: info.name.clone(),
        view: info.kind == 'v',
        columns,
        indexes,
        unique_keys,
        checks,
        foreign_keys,
        column_uses,
        grants,
        row_estimate: reltuples.max(0.0).round() as u64,
        data_bytes: data_bytes.max(0) as u64,
        index_bytes: index_bytes.max(0) as u64,
    };
    Ok(Some((table, info)))
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
