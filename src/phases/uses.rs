//! What depends on a table's columns, read from the catalog: its indexes, its CHECK
//! constraints, and everything else that would stop a column from being dropped and
//! replaced (foreign keys, views, generated and auto-increment columns, …).

use super::catalog::{IndexInfo, TableInfo};
use super::db::{Param, PhaseDb};
use crate::error::Result;

/// An index and its key parts `(position, column)` as the rows list them.
type Parts = (IndexInfo, Vec<(i64, Option<String>)>);

/// Fill `index_defs`, `checks` and `column_uses` of `info`.
pub async fn read(db: &mut dyn PhaseDb, info: &mut TableInfo) -> Result<()> {
    let sql = db.dialect().catalog();
    let t = Param::Text(Some(info.name.clone()));
    let rows = db.query(sql.index_parts, std::slice::from_ref(&t)).await?;
    let mut indexes: Vec<Parts> = Vec::new();
    for r in rows {
        let name = r.text(0);
        let seq: i64 = r.int(1).unwrap_or(0);
        let pos = match indexes.iter().position(|(i, _)| i.name == name) {
            Some(p) => p,
            None => {
                indexes.push((
                    IndexInfo {
                        primary: if sql.primary_flag {
                            r.flag(6)
                        } else {
                            name == "PRIMARY"
                        },
                        unique: !r.flag(3),
                        constraint: r.opt(5),
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
        idx.plain &= r.flag(4) && r.get(2).is_some();
        parts.push((seq, r.opt(2)));
    }
    info.index_defs = indexes
        .into_iter()
        .map(|(mut i, mut parts)| {
            parts.sort_by_key(|p| p.0);
            i.columns = parts.into_iter().map(|p| p.1).collect();
            i
        })
        .collect();

    let checks = db.query(sql.checks, std::slice::from_ref(&t)).await?;
    let mut uses: Vec<(String, String)> = Vec::new();
    let cols: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
    // MariaDB keeps expressions with backquoted names: match a column by `name`.
    let mentions = |text: &str, col: &str| text.contains(&format!("`{}`", col.replace('`', "``")));
    for r in &checks {
        let name = r.text(0);
        if sql.check_clauses_name_columns {
            let clause = r.text(1);
            for c in cols.iter().filter(|c| mentions(&clause, c)) {
                uses.push((c.clone(), format!("check constraint `{name}`")));
            }
        }
        info.checks.push(name);
    }
    let params = vec![t; sql.uses_params];
    for r in db.query(sql.uses, &params).await? {
        let (Some(col), Some(what)) = (r.opt(0), r.opt(1)) else {
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
