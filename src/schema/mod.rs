//! The one engine-neutral table model: columns, indexes (and the unique keys derived from
//! them), checks, foreign keys, what uses each column, grants, sizes; and the column
//! mapping old → new. Each engine reads it with one catalog reader
//! (`engine/<name>/inspect.rs`); the online path, the phases and the planner use it.

mod mapping;
pub use mapping::{ColumnMapping, MappedColumn, SharedKey};

/// A column as the engine's catalog reader reports it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// 1-based position in the table.
    pub ordinal: u32,
    /// Base type name, lower case (`int`, `varchar`, `numeric`, ...).
    pub data_type: String,
    /// Full type as the server spells it (`int(10) unsigned`, `character varying(20)`):
    /// MySQL `COLUMN_TYPE`, PostgreSQL `format_type(atttypid, atttypmod)`.
    pub column_type: String,
    pub nullable: bool,
    /// Generated (computed) columns are never written by the copy.
    pub generated: bool,
    /// MySQL/MariaDB: a VIRTUAL generated column.
    pub virtual_column: bool,
    /// MySQL/MariaDB: the column is AUTO_INCREMENT.
    pub auto_increment: bool,
    pub unsigned: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// Numeric precision/scale, character or byte length, fractional-seconds precision.
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub length: Option<u64>,
    /// The default as an SQL expression (MariaDB `COLUMN_DEFAULT`, `pg_get_expr`); `None`
    /// when there is none or it is NULL.
    pub default: Option<String>,
    /// MySQL/MariaDB: the column's comment (empty when it has none).
    pub comment: Option<String>,
}

impl Column {
    /// A column as a migration file declares it (before the server has it): nullable,
    /// no default.
    pub fn declared(name: &str, column_type: &str) -> Column {
        Column {
            name: name.to_string(),
            column_type: column_type.to_string(),
            nullable: true,
            ..Column::default()
        }
    }
    pub fn with_default(mut self, default: Option<String>) -> Column {
        if default.is_some() {
            self.default = default;
        }
        self
    }
}

/// One index of a table (a primary key, a unique or a plain index).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Index {
    pub name: String,
    /// Key columns in key order; `None` for an expression.
    pub columns: Vec<Option<String>>,
    /// Columns stored in the index but not part of its key (PostgreSQL `INCLUDE`).
    pub included: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// The access method as the server names it: `BTREE`, `FULLTEXT`, `SPATIAL`,
    /// `btree`, `gin`, ...
    pub kind: String,
    /// Columns indexed by a prefix only (MySQL `KEY (c(10))`).
    pub prefixed: Vec<String>,
    /// Not a full key over its columns: a prefix, an expression, a predicate, or a
    /// deferred uniqueness check.
    pub partial: bool,
    /// A plain B-tree over whole columns: no prefix, expression, predicate, descending
    /// part, non-default operator class or collation, comment. godwit can build the same
    /// index over another column.
    pub plain: bool,
    /// PostgreSQL: the constraint the index implements or that needs it.
    pub constraint: Option<String>,
    /// Usable by queries (PostgreSQL: `indisvalid`; always on MySQL).
    pub valid: bool,
}

impl Index {
    /// A primary key over `columns` (a B-tree, valid, plain).
    pub fn primary(columns: &[&str]) -> Index {
        Index {
            name: "PRIMARY".into(),
            columns: columns.iter().map(|c| Some(c.to_string())).collect(),
            unique: true,
            primary: true,
            kind: "BTREE".into(),
            plain: true,
            valid: true,
            ..Index::default()
        }
    }
    /// `col` is one of the key's columns.
    pub fn covers(&self, col: &str) -> bool {
        self.columns.iter().any(|c| c.as_deref() == Some(col))
    }
    /// The key's column names in key order, expressions left out.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().flatten().cloned().collect()
    }
    /// `col` is stored in the index: a key column or an included one.
    pub fn contains(&self, col: &str) -> bool {
        self.covers(col) || self.included.iter().any(|c| c == col)
    }
}

/// A CHECK constraint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Check {
    pub name: String,
    /// Its condition as the server prints it.
    pub clause: String,
    /// Every row has been checked (PostgreSQL: not `NOT VALID`; always on MySQL).
    pub validated: bool,
}

/// A privilege granted on a table (PostgreSQL): `grantee` is a role name or `PUBLIC`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Grant {
    pub grantee: String,
    pub privilege: String,
}

/// A unique index or primary key that can name a row (derived from the table's
/// [`Index`]es by [`unique_keys`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UniqueKey {
    pub name: String,
    pub columns: Vec<String>,
    pub primary: bool,
    /// True when every column is NOT NULL (a usable migration key).
    pub all_not_null: bool,
    /// True when a column is indexed by a prefix only (not a full key).
    pub has_prefix: bool,
}

impl UniqueKey {
    pub fn usable(&self) -> bool {
        self.all_not_null && !self.has_prefix
    }
}

/// The unique keys among `indexes` (valid unique indexes and the primary key), in the
/// order given: their columns (expression parts left out), whether every part is a NOT
/// NULL column of `columns` (names compared exactly), whether one is not a full key (a prefix, an expression, a
/// predicate, a deferred check).
pub fn unique_keys(indexes: &[Index], columns: &[Column]) -> Vec<UniqueKey> {
    indexes
        .iter()
        .filter(|i| (i.unique || i.primary) && i.valid)
        .map(|i| {
            let not_null = |c: &Option<String>| {
                c.as_deref()
                    .is_some_and(|c| columns.iter().any(|col| col.name == c && !col.nullable))
            };
            UniqueKey {
                name: i.name.clone(),
                columns: i.columns.iter().flatten().cloned().collect(),
                primary: i.primary,
                all_not_null: !i.columns.is_empty() && i.columns.iter().all(not_null),
                has_prefix: i.partial || !i.prefixed.is_empty(),
            }
        })
        .collect()
}

/// A table (or view) as its engine's catalog reader reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// A view, not a table (`rename_table` keeps the new name as a view while expanded).
    pub view: bool,
    pub columns: Vec<Column>,
    /// Every index (PostgreSQL: invalid ones too), in the table's key order.
    pub indexes: Vec<Index>,
    /// The unique keys (from [`unique_keys`]), in the engine's order of preference.
    pub unique_keys: Vec<UniqueKey>,
    pub checks: Vec<Check>,
    /// Names of the foreign keys defined on this table.
    pub foreign_keys: Vec<String>,
    /// What else uses a column, beyond its indexes and its own default: `(column, what)`,
    /// e.g. a foreign key, a CHECK constraint, a view, a generated or auto-increment
    /// column. A change that drops the column must refuse these.
    pub column_uses: Vec<(String, String)>,
    /// Table privileges (PostgreSQL; empty on MySQL, where grants name the table).
    pub grants: Vec<Grant>,
    pub row_estimate: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
}

impl Table {
    /// The column `name`, compared as MySQL does (ASCII case-insensitive).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
    /// The column named exactly `name`.
    pub fn column_exact(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn primary_key(&self) -> Option<&UniqueKey> {
        self.unique_keys.iter().find(|k| k.primary)
    }
    /// The primary key's columns in key order (empty without one).
    pub fn primary_columns(&self) -> Vec<String> {
        self.indexes
            .iter()
            .find(|i| i.primary)
            .map(|i| i.columns.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }
    /// The primary key's columns.
    pub fn key_columns(&self) -> Vec<&Column> {
        self.primary_columns()
            .iter()
            .filter_map(|k| self.column_exact(k))
            .collect()
    }
    /// A valid index named `name` exists.
    pub fn has_index(&self, name: &str) -> bool {
        self.indexes.iter().any(|i| i.valid && i.name == name)
    }
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }
    /// An index whose leading columns are `cols`, in order (what InnoDB needs to back a
    /// foreign key).
    pub fn index_leading(&self, cols: &[String]) -> Option<&Index> {
        self.indexes.iter().find(|i| {
            i.columns.len() >= cols.len()
                && i.columns
                    .iter()
                    .zip(cols)
                    .all(|(a, b)| a.as_deref() == Some(b.as_str()))
        })
    }
    pub fn has_check(&self, name: &str) -> bool {
        self.checks.iter().any(|c| c.name == name)
    }
    /// What uses `col`, beyond its indexes and its default.
    pub fn uses_of(&self, col: &str) -> Vec<&str> {
        self.column_uses
            .iter()
            .filter(|(c, _)| c == col)
            .map(|(_, w)| w.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, nullable: bool) -> Column {
        Column {
            nullable,
            ..Column::declared(name, "int")
        }
    }

    fn idx(name: &str, cols: &[Option<&str>]) -> Index {
        Index {
            name: name.into(),
            columns: cols.iter().map(|c| c.map(str::to_string)).collect(),
            unique: true,
            valid: true,
            plain: true,
            kind: "BTREE".into(),
            ..Index::default()
        }
    }

    #[test]
    fn unique_keys_come_from_the_valid_unique_indexes_in_order() {
        let cols = [col("id", false), col("a", false), col("b", true)];
        let pk = Index {
            primary: true,
            ..idx("PRIMARY", &[Some("id")])
        };
        let plain = Index {
            unique: false,
            ..idx("k_b", &[Some("b")])
        };
        let invalid = Index {
            valid: false,
            ..idx("u_a_invalid", &[Some("a")])
        };
        let ab = idx("u_ab", &[Some("a"), Some("b")]);
        let a = idx("u_a", &[Some("a")]);
        let keys = unique_keys(&[pk, plain, invalid, ab, a], &cols);
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["PRIMARY", "u_ab", "u_a"]);
        assert!(keys[0].primary && keys[0].usable());
        assert_eq!(keys[1].columns, ["a", "b"]);
        assert!(!keys[1].all_not_null, "b is nullable");
        assert!(keys[2].usable());
    }

    #[test]
    fn prefixes_expressions_and_predicates_make_a_key_unusable() {
        let cols = [col("a", false), col("b", false)];
        let prefix = Index {
            prefixed: vec!["a".into()],
            ..idx("p", &[Some("a")])
        };
        let expr = Index {
            partial: true,
            ..idx("e", &[Some("a"), None])
        };
        let only_expr = idx("x", &[None]);
        let keys = unique_keys(&[prefix, expr, only_expr], &cols);
        assert!(keys[0].has_prefix && keys[0].all_not_null && !keys[0].usable());
        assert_eq!(keys[1].columns, ["a"]);
        assert!(!keys[1].usable());
        assert!(keys[2].columns.is_empty() && !keys[2].all_not_null);
    }

    #[test]
    fn the_primary_key_and_indexes_are_found_by_columns_and_name() {
        let t = Table {
            columns: vec![col("id", false), col("a", true)],
            indexes: vec![
                Index {
                    primary: true,
                    ..idx("PRIMARY", &[Some("id")])
                },
                Index {
                    valid: false,
                    ..idx("k_a", &[Some("a"), Some("id")])
                },
            ],
            ..Table::default()
        };
        assert_eq!(t.primary_columns(), ["id"]);
        assert_eq!(t.key_columns()[0].name, "id");
        assert!(t.has_index("PRIMARY") && !t.has_index("k_a"));
        assert_eq!(t.index_leading(&["a".into()]).unwrap().name, "k_a");
        assert!(t.index_leading(&["id".into(), "a".into()]).is_none());
        assert!(t.column("A").is_some() && t.column_exact("A").is_none());
    }
}
