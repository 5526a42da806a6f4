//! What the phases read from the server's catalog besides the table itself: the table
//! model is [`crate::schema::Table`], read by the engine's one catalog reader
//! ([`super::db::PhaseDb::read_table`]).

/// The catalog queries of one engine (each takes the table's name as its parameters),
/// spelled in the engine's phases dialect.
#[derive(Debug)]
pub struct CatalogSql {
    /// `v` (view) or `r` (table) for the name, no row when it does not exist.
    pub relation_kind: &'static str,
    /// The table's estimated row count as text (statistics, no scan): the backfill's ETA.
    pub row_estimate: &'static str,
}
