//! What depends on a table's columns, read from the catalog: its indexes, its CHECK
//! constraints, and everything else that would stop a column from being dropped and
//! replaced (foreign keys, views, generated and auto-increment columns, …).

use super::catalog::{IndexInfo, TableInfo};
use super::db::{Db, Param};
use crate::error::Result;

const MY_INDEXES: &str = "SELECT INDEX_NAME, CAST(SEQ_IN_INDEX AS CHAR), COLUMN_NAME, CAST(NON_UNIQUE AS CHAR), \
     CAST((INDEX_TYPE = 'BTREE' AND SUB_PART IS NULL AND COALESCE(COLLATION, 'A') = 'A' AND INDEX_COMMENT = '') AS CHAR), NULL \
     FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";

const PG_INDEXES: &str = "SELECT ic.relname::text, k.ord::text, a.attname::text, (NOT i.indisunique)::text, \
     (am.amname = 'btree' AND i.indexprs IS NULL AND i.indpred IS NULL AND i.indnkeyatts = i.indnatts \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) oc(o) JOIN pg_opclass op ON op.oid = oc.o WHERE NOT op.opcdefault) \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indoption::int2[]) io(v) WHERE io.v <> 0) \
      AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[], i.indcollation::oid[]) z(n, coll) \
                      JOIN pg_attribute za ON za.attrelid = i.indrelid AND za.attnum = z.n \
                      WHERE z.coll <> 0 AND z.coll <> za.attcollation))::text, \
     (SELECT con.conname::text FROM pg_constraint con WHERE con.conindid = i.indexrelid ORDER BY con.oid LIMIT 1), \
     i.indisprimary::text \
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum AND k.attnum > 0 \
     WHERE n.nspname = current_schema() AND c.relname = $1::text AND k.ord <= i.indnkeyatts \
     ORDER BY ic.oid, k.ord";

const MY_CHECKS: &str =
    "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
     WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?";

const PG_CHECKS: &str =
    "SELECT con.conname::text, pg_get_constraintdef(con.oid) FROM pg_constraint con \
     JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relname = $1::text AND con.contype = 'c'";

/// Foreign keys on both sides, and special columns (auto-increment, generated, ON UPDATE,
/// invisible). CHECK constraints and generation expressions are matched by name below.
const MY_USES: &str = "SELECT COLUMN_NAME, CONCAT('foreign key `', CONSTRAINT_NAME, '`') FROM information_schema.KEY_COLUMN_USAGE \
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL \
     UNION ALL SELECT REFERENCED_COLUMN_NAME, CONCAT('foreign key `', CONSTRAINT_NAME, '` of table `', TABLE_NAME, '`') \
       FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = ? \
     UNION ALL SELECT COLUMN_NAME, LOWER(EXTRA) FROM information_schema.COLUMNS \
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND EXTRA <> '' \
     UNION ALL SELECT CONCAT('`generated:', COLUMN_NAME), GENERATION_EXPRESSION FROM information_schema.COLUMNS \
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND GENERATION_EXPRESSION IS NOT NULL";

/// Everything in pg_depend that points at a column, except the table's own indexes
/// (described by PG_INDEXES) and the column's own default; plus identity and generated
/// columns.
const PG_USES: &str = "WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE n.nspname = current_schema() AND c.relname = $1::text) \
     SELECT a.attname::text, pg_describe_object(d.classid, d.objid, d.objsubid) \
     FROM pg_depend d JOIN t ON d.refobjid = t.oid \
     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype <> 'i' \
       AND NOT (d.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indexrelid = d.objid AND x.indrelid = t.oid)) \
       AND NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS (SELECT 1 FROM pg_attrdef ad WHERE ad.oid = d.objid AND ad.adrelid = t.oid AND ad.adnum = d.refobjsubid)) \
     UNION ALL SELECT a.attname::text, CASE WHEN a.attidentity <> '' THEN 'an identity column' ELSE 'a generated column' END \
     FROM pg_attribute a JOIN t ON a.attrelid = t.oid \
     WHERE a.attnum > 0 AND NOT a.attisdropped AND (a.attidentity <> '' OR a.attgenerated <> '')";

/// An index and its key parts `(position, column)` as the rows list them.
type Parts = (IndexInfo, Vec<(i64, Option<String>)>);

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true"))
}

/// Fill `index_defs`, `checks` and `column_uses` of `info`.
pub async fn read(db: &mut Db, info: &mut TableInfo) -> Result<()> {
    let pg = db.is_postgres();
    let t = Param::Text(Some(info.name.clone()));
    let rows = db
        .query(
            if pg { PG_INDEXES } else { MY_INDEXES },
            std::slice::from_ref(&t),
        )
        .await?;
    let mut indexes: Vec<Parts> = Vec::new();
    for r in rows {
        let name = r[0].clone().unwrap_or_default();
        let seq: i64 = r[1].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pos = match indexes.iter().position(|(i, _)| i.name == name) {
            Some(p) => p,
            None => {
                indexes.push((
                    IndexInfo {
                        primary: if pg { flag(&r[6]) } else { name == "PRIMARY" },
                        unique: !flag(&r[3]),
                        constraint: r[5].clone(),
                        plain: true,
                        name,
                        columns: vec![],
                    },
                    vec![],
                ));
                indexes.len() - 1
            }
        };
        let (idx, parts) = &mut indexes[pos];
        idx.plain &= flag(&r[4]) && r[2].is_some();
        parts.push((seq, r[2].clone()));
    }
    info.index_defs = indexes
        .into_iter()
        .map(|(mut i, mut parts)| {
            parts.sort_by_key(|p| p.0);
            i.columns = parts.into_iter().map(|p| p.1).collect();
            i
        })
        .collect();

    let checks = db
        .query(
            if pg { PG_CHECKS } else { MY_CHECKS },
            std::slice::from_ref(&t),
        )
        .await?;
    let mut uses: Vec<(String, String)> = Vec::new();
    let cols: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
    // MariaDB keeps expressions with backquoted names: match a column by `name`.
    let mentions = |text: &str, col: &str| text.contains(&format!("`{}`", col.replace('`', "``")));
    for r in &checks {
        let name = r[0].clone().unwrap_or_default();
        if !pg {
            let clause = r[1].clone().unwrap_or_default();
            for c in cols.iter().filter(|c| mentions(&clause, c)) {
                uses.push((c.clone(), format!("check constraint `{name}`")));
            }
        }
        info.checks.push(name);
    }
    let params = if pg {
        vec![t.clone()]
    } else {
        vec![t.clone(), t.clone(), t.clone(), t]
    };
    for r in db
        .query(if pg { PG_USES } else { MY_USES }, &params)
        .await?
    {
        let (Some(col), Some(what)) = (r[0].clone(), r[1].clone()) else {
            continue;
        };
        match col.strip_prefix("`generated:") {
            Some(gen) => {
                for c in cols.iter().filter(|c| mentions(&what, c) && *c != gen) {
                    uses.push((c.clone(), format!("generated column `{gen}`")));
                }
            }
            None => uses.push((col, what)),
        }
    }
    info.column_uses = uses;
    Ok(())
}
