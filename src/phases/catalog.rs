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

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns in key order.
    pub primary_key: Vec<String>,
    pub indexes: Vec<String>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn key_columns(&self) -> Vec<&ColumnInfo> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column(k))
            .collect()
    }
}
