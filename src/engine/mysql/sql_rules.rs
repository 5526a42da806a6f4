//! How MySQL/MariaDB read SQL text, for the lexer that guards user text and the reading
//! of `--alter` (`ddl`).

use crate::ddl::{kw, SqlRules};
use sqlparser::dialect::{Dialect, MySqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

pub const SQL_RULES: SqlRules = SqlRules {
    // default; ANSI_QUOTES; NO_BACKSLASH_ESCAPES (with or without ANSI_QUOTES).
    readings: &[(true, true), (true, false), (false, false)],
    dash_comment_anywhere: false,
    hash_and_executable_comments: true,
    nested_comments: false,
    backtick_quotes: true,
    dollar_quotes: false,
    folds_to_lower: false,
    bare_rename_is_column: false,
    bare_rename_is_table: true,
    auto_increment_option: true,
    refused_clause,
    dialect,
};

fn dialect() -> Box<dyn Dialect> {
    Box::new(MySqlDialect {})
}

/// Clauses that act on the table's files or swap data with another table.
fn refused_clause(c: &[&Token]) -> Option<&'static str> {
    let is = |i: usize, k: Keyword| c.get(i).is_some_and(|t| kw(t, k));
    if (is(0, Keyword::DISCARD) || is(0, Keyword::IMPORT))
        && c.iter().any(|t| kw(t, Keyword::TABLESPACE))
    {
        Some("DISCARD/IMPORT TABLESPACE acts on the table's files; run it natively")
    } else if is(0, Keyword::EXCHANGE) {
        Some("EXCHANGE PARTITION swaps data with another table; run it natively")
    } else {
        None
    }
}
