//! What the phases need to know about a table, read from the server's catalog.

/// One column as the server describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// MySQL `COLUMN_TYPE`; PostgreSQL `format_type(atttypid, atttypmod)`.
    pub sql_type: String,
    pub nullable: bool,
    /// The default as an SQL expression (MariaDB `COLUMN_DEFAULT`, `pg_get_expr`).
    pub default: Option<String>,
    /// MySQL collation of a character column.
    pub collation: Option<String>,
    /// MySQL column comment.
    pub comment: Option<String>,
}

impl ColumnInfo {
    /// A column as a migration file declares it (before the server has it).
    pub fn declared(name: &str, sql_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            sql_type: sql_type.to_string(),
            nullable: true,
            default: None,
            collation: None,
            comment: None,
        }
    }
    pub fn with_default(mut self, default: Option<String>) -> ColumnInfo {
        if default.is_some() {
            self.default = default;
        }
        self
    }
}

/// One index of a table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexInfo {
    pub name: String,
    /// Key columns in key order; `None` for an expression.
    pub columns: Vec<Option<String>>,
    pub unique: bool,
    pub primary: bool,
    /// A plain B-tree over whole columns: no prefix, expression, predicate, descending
    /// part, non-default operator class or collation, comment. godwit can build the same
    /// index over another column.
    pub plain: bool,
    /// PostgreSQL: the constraint the index implements or that needs it.
    pub constraint: Option<String>,
}

impl IndexInfo {
    pub fn covers(&self, col: &str) -> bool {
        self.columns.iter().any(|c| c.as_deref() == Some(col))
    }
}

/// A privilege granted on a table (PostgreSQL): `grantee` is a role name or `PUBLIC`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub grantee: String,
    pub privilege: String,
}

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub name: String,
    /// A view, not a table (`rename_table` keeps the new name as a view while expanded).
    pub view: bool,
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns in key order.
    pub primary_key: Vec<String>,
    /// Names of the valid indexes.
    pub indexes: Vec<String>,
    /// Every index (PostgreSQL: invalid ones too), in the table's key order.
    pub index_defs: Vec<IndexInfo>,
    /// Names of the CHECK constraints.
    pub checks: Vec<String>,
    /// What else uses a column, beyond its indexes and its own default: `(column, what)`,
    /// e.g. a foreign key, a CHECK constraint, a view, a generated or auto-increment
    /// column. A change that drops the column must refuse these.
    pub column_uses: Vec<(String, String)>,
    /// Names of the foreign keys defined on this table.
    pub foreign_keys: Vec<String>,
    /// Table privileges (PostgreSQL; empty on MySQL, where grants name the table).
    pub grants: Vec<Grant>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// An index whose leading columns are `cols`, in order (what InnoDB needs to back a
    /// foreign key).
    pub fn index_leading(&self, cols: &[String]) -> Option<&IndexInfo> {
        self.index_defs.iter().find(|i| {
            i.columns.len() >= cols.len()
                && i.columns
                    .iter()
                    .zip(cols)
                    .all(|(a, b)| a.as_deref() == Some(b.as_str()))
        })
    }
    pub fn index(&self, name: &str) -> Option<&IndexInfo> {
        self.index_defs.iter().find(|i| i.name == name)
    }
    /// What uses `col`, beyond its indexes and its default.
    pub fn uses_of(&self, col: &str) -> Vec<&str> {
        self.column_uses
            .iter()
            .filter(|(c, _)| c == col)
            .map(|(_, w)| w.as_str())
            .collect()
    }
    pub fn key_columns(&self) -> Vec<&ColumnInfo> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column(k))
            .collect()
    }
}

/// The catalog queries of one engine (each takes the table's name as its parameters),
/// spelled in the engine's phases dialect.
#[derive(Debug)]
pub struct CatalogSql {
    /// `v` (view) or `r` (table) for the name, no row when it does not exist.
    pub relation_kind: &'static str,
    /// The table's estimated row count as text (statistics, no scan): the backfill's ETA.
    pub row_estimate: &'static str,
    /// Name, type, `YES`/`NO` nullable, default, collation, comment.
    pub columns: &'static str,
    /// The primary key's columns in key order.
    pub primary_key: &'static str,
    /// Index names.
    pub indexes: &'static str,
    /// Foreign key names.
    pub foreign_keys: &'static str,
    /// Grantee and privilege of the table's grants, when the engine has them per table.
    pub grants: Option<&'static str>,
    /// Index parts: name, position, column, non-unique, plain, constraint[, primary].
    pub index_parts: &'static str,
    /// The index parts carry a primary flag (else the primary key is the index named
    /// `PRIMARY`).
    pub primary_flag: bool,
    /// CHECK constraints: name, clause.
    pub checks: &'static str,
    /// The clauses name columns in backquotes: match the columns in them.
    pub check_clauses_name_columns: bool,
    /// Column, what uses it (see `uses.rs`).
    pub uses: &'static str,
    /// How many times `uses` takes the table's name.
    pub uses_params: usize,
}
