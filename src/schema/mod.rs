//! Engine-neutral table model: columns, unique keys, and the column mapping old → new.

mod mapping;
pub use mapping::{ColumnMapping, MappedColumn, SharedKey};

/// A column as the engine's inspector reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// 1-based position in the table.
    pub ordinal: u32,
    /// Base type name, lower case (`int`, `varchar`, `numeric`, ...).
    pub data_type: String,
    /// Full type as the server spells it (`int(10) unsigned`, `character varying(20)`).
    pub column_type: String,
    pub nullable: bool,
    /// Generated (computed) columns are never written by the copy.
    pub generated: bool,
    pub unsigned: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// Numeric precision/scale, character or byte length, fractional-seconds precision.
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub length: Option<u64>,
}

/// A unique index or primary key.
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

/// A table as inspected.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub unique_keys: Vec<UniqueKey>,
    pub row_estimate: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
    pub fn primary_key(&self) -> Option<&UniqueKey> {
        self.unique_keys.iter().find(|k| k.primary)
    }
}
