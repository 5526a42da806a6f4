//! How PostgreSQL reads SQL text, for the lexer that guards user text and the reading of
//! `--alter` (`ddl`).

use crate::ddl::{kw, SqlRules};
use sqlparser::dialect::{Dialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

pub const SQL_RULES: SqlRules = SqlRules {
    // standard_conforming_strings on (default) and off. `"…"` never escapes.
    readings: &[(false, false), (true, false)],
    dash_comment_anywhere: true,
    hash_and_executable_comments: false,
    nested_comments: true,
    backtick_quotes: false,
    dollar_quotes: true,
    folds_to_lower: true,
    bare_rename_is_column: true,
    bare_rename_is_table: false,
    auto_increment_option: false,
    refused_clause,
    dialect,
};

fn dialect() -> Box<dyn Dialect> {
    Box::new(PostgreSqlDialect {})
}

/// Clauses that move the table to another schema or tablespace, or link it to others.
fn refused_clause(c: &[&Token]) -> Option<&'static str> {
    let is = |i: usize, k: Keyword| c.get(i).is_some_and(|t| kw(t, k));
    if is(0, Keyword::SET) && is(1, Keyword::SCHEMA) {
        Some("SET SCHEMA moves the table to another schema; run it as its own ALTER TABLE … SET SCHEMA (instant)")
    } else if is(0, Keyword::SET) && is(1, Keyword::TABLESPACE) {
        Some("SET TABLESPACE is not supported by godwit; run ALTER TABLE … SET TABLESPACE (it rewrites the table under an ACCESS EXCLUSIVE lock) or pg_repack --tablespace")
    } else if (is(0, Keyword::ATTACH) || is(0, Keyword::DETACH)) && is(1, Keyword::PARTITION) {
        Some("ATTACH/DETACH PARTITION changes other tables; godwit does not migrate partitioned tables")
    } else if is(0, Keyword::INHERIT) || (is(0, Keyword::NO) && is(1, Keyword::INHERIT)) {
        Some("INHERIT / NO INHERIT links the table to another one; run it as its own ALTER TABLE")
    } else {
        None
    }
}
