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

/// An index: its name and its columns in index order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
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
    pub indexes: Vec<String>,
    /// The valid indexes with their columns (the primary key included).
    pub index_columns: Vec<IndexInfo>,
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
        self.index_columns
            .iter()
            .find(|i| i.columns.len() >= cols.len() && i.columns[..cols.len()] == *cols)
    }
    pub fn key_columns(&self) -> Vec<&ColumnInfo> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column(k))
            .collect()
    }
}
