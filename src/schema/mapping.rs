//! The column mapping from the original table to the shadow table, and the choice of
//! the unique key both tables share (the migration key).

use super::{Table, UniqueKey};
use crate::error::{Error, ErrorKind, Result};
use serde::Serialize;

/// One shadow column filled from one original column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedColumn {
    pub source: String,
    pub target: String,
}

/// The key that identifies a row in both tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedKey {
    /// Index name in the original table.
    pub source_name: String,
    /// Index name in the shadow table.
    pub target_name: String,
    /// Key columns in the original (in index order).
    pub source_columns: Vec<String>,
    /// The same columns under their shadow names.
    pub target_columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnMapping {
    /// Columns copied, in shadow column order.
    pub columns: Vec<MappedColumn>,
    /// Original columns not carried over (dropped by the ALTER).
    pub dropped: Vec<String>,
    /// Shadow columns that get their default (added by the ALTER, or generated).
    pub added: Vec<String>,
    pub key: SharedKey,
}

impl ColumnMapping {
    /// Build the mapping. `renames` are (old, new) pairs found in the ALTER text;
    /// `new_columns` are names the ALTER drops (or renames away) and adds again: such a
    /// column is new, filled by its definition, never from the old column of that name.
    pub fn build(
        orig: &Table,
        shadow: &Table,
        renames: &[(String, String)],
        new_columns: &[String],
    ) -> Result<Self> {
        let mut columns = Vec::new();
        let mut added = Vec::new();
        for target in &shadow.columns {
            if target.generated {
                added.push(target.name.clone());
                continue;
            }
            let renamed_from = renames
                .iter()
                .find(|(_, new)| new.eq_ignore_ascii_case(&target.name))
                .map(|(old, _)| old.as_str());
            let source = match renamed_from {
                Some(old) => orig.column(old),
                // A column that was renamed away, or dropped and added again, must not
                // be matched by its old name.
                None if renames
                    .iter()
                    .any(|(old, _)| old.eq_ignore_ascii_case(&target.name))
                    || new_columns
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(&target.name)) =>
                {
                    None
                }
                None => orig.column(&target.name),
            };
            match source {
                Some(src) if !src.generated || !target.generated => columns.push(MappedColumn {
                    source: src.name.clone(),
                    target: target.name.clone(),
                }),
                _ => added.push(target.name.clone()),
            }
        }
        let dropped = orig
            .columns
            .iter()
            .filter(|c| !columns.iter().any(|m| m.source == c.name))
            .map(|c| c.name.clone())
            .collect();
        let key = choose_shared_key(orig, shadow, &columns)?;
        Ok(ColumnMapping {
            columns,
            dropped,
            added,
            key,
        })
    }

    pub fn target_of(&self, source: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|m| m.source == source)
            .map(|m| m.target.as_str())
    }
}

fn source_for<'a>(columns: &'a [MappedColumn], target: &str) -> Option<&'a str> {
    columns
        .iter()
        .find(|m| m.target.eq_ignore_ascii_case(target))
        .map(|m| m.source.as_str())
}

/// How good a candidate key is, best highest: (original's primary key, its columns lead
/// the new key, new table's primary key, same columns, − number of columns).
type Rank = (bool, bool, bool, bool, i64);

/// Every name of `sub` is in `set` (names compare case-insensitively).
fn subset(sub: &[String], set: &[&str]) -> bool {
    sub.iter()
        .all(|x| set.iter().any(|y| x.eq_ignore_ascii_case(y)))
}

/// Pick the key that identifies a row in both tables.
///
/// A usable (NOT NULL, full) unique key `K_o` of the original identifies its rows. A
/// usable unique key `K_s` of the shadow whose columns all come from original columns
/// and include `K_o`'s identifies the shadow's rows, and it is unique in the original
/// too (a superset of a unique key is unique), so a duplicate on it in the shadow is
/// always the same original row met twice. Rows are then found again by `K_o`'s columns
/// in both tables: the original has its index, the shadow's `K_s` index serves lookups
/// (fully when `K_o`'s columns lead it), and the change stream names rows by them (on
/// PostgreSQL, the replica identity). `K_s` equal to `K_o` is the common case; `K_s` a
/// strict superset is a new primary key that extends the old one (`DROP PRIMARY KEY,
/// ADD PRIMARY KEY (id, i)`). A shadow key narrower than every original key is refused:
/// original rows it does not tell apart would be lost as "duplicates".
///
/// Preferred: the original's primary key, then a `K_s` that `K_o` leads, then the
/// shadow's primary key, then an exact match, then the narrowest key.
fn choose_shared_key(orig: &Table, shadow: &Table, columns: &[MappedColumn]) -> Result<SharedKey> {
    if !orig.unique_keys.iter().any(UniqueKey::usable) {
        return Err(Error::new(
            ErrorKind::NoKey,
            format!(
                "table {} has no primary key and no unique key on NOT NULL columns",
                orig.name
            ),
        )
        .with_hint("add a primary key (or a unique key on NOT NULL columns) first; godwit needs it to find rows again"));
    }
    let mut candidates: Vec<(Rank, SharedKey)> = Vec::new();
    for sk in shadow.unique_keys.iter().filter(|k| k.usable()) {
        let sources: Option<Vec<&str>> =
            sk.columns.iter().map(|c| source_for(columns, c)).collect();
        let Some(sources) = sources else { continue };
        for ok in orig.unique_keys.iter().filter(|k| k.usable()) {
            if !subset(&ok.columns, &sources) {
                continue;
            }
            let exact = ok.columns.len() == sources.len();
            let leads = subset(&ok.columns, &sources[..ok.columns.len()]);
            // Key columns in the original key's order, with their shadow names.
            let source_columns = ok.columns.clone();
            let target_columns = source_columns
                .iter()
                .map(|s| {
                    columns
                        .iter()
                        .find(|m| m.source.eq_ignore_ascii_case(s))
                        .map(|m| m.target.clone())
                        .unwrap_or_else(|| s.clone())
                })
                .collect();
            let score = (
                ok.primary,
                leads,
                sk.primary,
                exact,
                -(ok.columns.len() as i64),
            );
            candidates.push((
                score,
                SharedKey {
                    source_name: ok.name.clone(),
                    target_name: sk.name.clone(),
                    source_columns,
                    target_columns,
                },
            ));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let Some((score, key)) = candidates.into_iter().next() else {
        return Err(Error::new(
            ErrorKind::NoSharedKey,
            format!(
                "after the ALTER, {} has no unique key on NOT NULL columns that contains a unique key of the original table",
                orig.name
            ),
        )
        .with_hint("keep the old primary key (or a NOT NULL unique key) in the ALTER, or a new key that contains all its columns (e.g. change the primary key in two runs: first add the new unique key, then switch the primary key)"));
    };
    if !score.1 {
        tracing::warn!(
            key = ?key.target_columns,
            index = %key.target_name,
            "the new table's key {} does not start with the migration key's columns; replaying changes will scan the new table",
            key.target_name
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    fn col(name: &str, ordinal: u32) -> Column {
        Column {
            name: name.into(),
            ordinal,
            data_type: "int".into(),
            column_type: "int".into(),
            nullable: false,
            generated: false,
            unsigned: false,
            charset: None,
            collation: None,
            precision: None,
            scale: None,
            length: None,
            ..Default::default()
        }
    }
    fn key(name: &str, cols: &[&str], primary: bool) -> UniqueKey {
        UniqueKey {
            name: name.into(),
            columns: cols.iter().map(|s| s.to_string()).collect(),
            primary,
            all_not_null: true,
            has_prefix: false,
        }
    }
    fn table(cols: &[&str], keys: Vec<UniqueKey>) -> Table {
        Table {
            schema: "db".into(),
            name: "t".into(),
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, c)| col(c, i as u32 + 1))
                .collect(),
            unique_keys: keys,
            row_estimate: 0,
            data_bytes: 0,
            index_bytes: 0,
            ..Default::default()
        }
    }

    #[test]
    fn rename_maps_old_to_new_and_drop_is_not_copied() {
        let orig = table(&["id", "a", "b"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "a2", "c"], vec![key("PRIMARY", &["id"], true)]);
        let m = ColumnMapping::build(&orig, &shadow, &[("a".into(), "a2".into())], &[]).unwrap();
        assert_eq!(
            m.columns,
            vec![
                MappedColumn {
                    source: "id".into(),
                    target: "id".into()
                },
                MappedColumn {
                    source: "a".into(),
                    target: "a2".into()
                }
            ]
        );
        assert_eq!(m.dropped, vec!["b".to_string()]);
        assert_eq!(m.added, vec!["c".to_string()]);
    }

    #[test]
    fn swapped_names_follow_the_renames() {
        let orig = table(&["id", "a", "b"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "a", "b"], vec![key("PRIMARY", &["id"], true)]);
        let renames = [
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "a".to_string()),
        ];
        let m = ColumnMapping::build(&orig, &shadow, &renames, &[]).unwrap();
        assert_eq!(m.target_of("a"), Some("b"));
        assert_eq!(m.target_of("b"), Some("a"));
    }

    #[test]
    fn primary_key_change_uses_the_shared_unique_key() {
        let orig = table(
            &["id", "code"],
            vec![
                key("PRIMARY", &["id"], true),
                key("uk_code", &["code"], false),
            ],
        );
        let shadow = table(
            &["id", "code"],
            vec![
                key("PRIMARY", &["code"], true),
                key("uk_id", &["id"], false),
            ],
        );
        let m = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap();
        // Original PK (id) is still unique in the shadow, and preferred.
        assert_eq!(m.key.source_columns, vec!["id".to_string()]);
        assert_eq!(m.key.target_name, "uk_id");
    }

    #[test]
    fn no_shared_key_is_refused() {
        let orig = table(&["id", "code"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "code"], vec![key("PRIMARY", &["code"], true)]);
        let e = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoSharedKey);
    }

    #[test]
    fn nullable_unique_key_is_not_usable() {
        let mut k = key("uk", &["code"], false);
        k.all_not_null = false;
        let orig = table(&["id", "code"], vec![k.clone()]);
        let e = ColumnMapping::build(&orig, &orig, &[], &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoKey);
    }

    #[test]
    fn renamed_key_column_keeps_the_key() {
        let orig = table(&["id", "v"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["ident", "v"], vec![key("PRIMARY", &["ident"], true)]);
        let m =
            ColumnMapping::build(&orig, &shadow, &[("id".into(), "ident".into())], &[]).unwrap();
        assert_eq!(m.key.source_columns, vec!["id".to_string()]);
        assert_eq!(m.key.target_columns, vec!["ident".to_string()]);
    }

    #[test]
    fn dropped_and_added_again_is_not_copied() {
        let orig = table(&["id", "c1", "c3"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "c3", "c1"], vec![key("PRIMARY", &["id"], true)]);
        let m = ColumnMapping::build(&orig, &shadow, &[], &["C1".to_string()]).unwrap();
        assert_eq!(m.target_of("c1"), None);
        assert_eq!(m.target_of("c3"), Some("c3"));
        assert_eq!(m.added, vec!["c1".to_string()]);
        assert_eq!(m.dropped, vec!["c1".to_string()]);
        // Renamed away and added again: the data follows the rename only.
        let shadow = table(
            &["id", "c2", "c3", "c1"],
            vec![key("PRIMARY", &["id"], true)],
        );
        let m = ColumnMapping::build(
            &orig,
            &shadow,
            &[("c1".into(), "c2".into())],
            &["c1".to_string()],
        )
        .unwrap();
        assert_eq!(m.target_of("c1"), Some("c2"));
        assert_eq!(m.added, vec!["c1".to_string()]);
    }

    #[test]
    fn new_key_containing_the_old_key_is_shared() {
        let orig = table(&["id", "i", "v"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "i", "v"], vec![key("PRIMARY", &["id", "i"], true)]);
        let m = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap();
        // Rows are found by the old key's columns; duplicates are expected on the new one.
        assert_eq!(m.key.source_columns, vec!["id".to_string()]);
        assert_eq!(m.key.target_columns, vec!["id".to_string()]);
        assert_eq!(m.key.source_name, "PRIMARY");
        assert_eq!(m.key.target_name, "PRIMARY");
        // Also when the old key's columns are not first, or renamed.
        let shadow = table(
            &["ident", "i", "v"],
            vec![key("PRIMARY", &["i", "ident"], true)],
        );
        let m =
            ColumnMapping::build(&orig, &shadow, &[("id".into(), "ident".into())], &[]).unwrap();
        assert_eq!(m.key.source_columns, vec!["id".to_string()]);
        assert_eq!(m.key.target_columns, vec!["ident".to_string()]);
    }

    #[test]
    fn a_key_the_old_key_leads_is_preferred() {
        let orig = table(&["id", "i", "v"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(
            &["id", "i", "v"],
            vec![
                key("PRIMARY", &["i", "id"], true),
                key("uk", &["id", "v"], false),
            ],
        );
        let m = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap();
        assert_eq!(m.key.target_name, "uk");
    }

    #[test]
    fn new_key_narrower_than_every_old_key_is_refused() {
        let orig = table(&["a", "b"], vec![key("PRIMARY", &["a", "b"], true)]);
        let shadow = table(&["a", "b"], vec![key("PRIMARY", &["a"], true)]);
        let e = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoSharedKey);
        // A superset built on a column that is new (not from the original) is no help.
        let orig = table(&["id", "v"], vec![key("PRIMARY", &["id"], true)]);
        let shadow = table(&["id", "v", "n"], vec![key("PRIMARY", &["id", "n"], true)]);
        let e = ColumnMapping::build(&orig, &shadow, &[], &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoSharedKey);
    }
}
