//! Reading the user's ALTER: the clause list to apply to the shadow table, and the column
//! renames it contains (so data follows a renamed column).
//!
//! The text sent to the server is the user's own: sqlparser does not know every clause
//! (`ENGINE=`, `CONVERT TO CHARACTER SET`, partitioning), so godwit tokenizes instead of
//! parsing, and lets the server judge the syntax on the empty shadow table.

use crate::error::{Error, ErrorKind, Result};
use crate::target::EngineKind;
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The user's ALTER, made ready to apply to the shadow table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlterSpec {
    /// The clause list, without `ALTER TABLE name`.
    pub clauses: String,
    /// Column renames (old, new), in the order written.
    pub renames: Vec<(String, String)>,
}

fn dialect(kind: EngineKind) -> Box<dyn Dialect> {
    match kind {
        EngineKind::Mysql => Box::new(MySqlDialect {}),
        EngineKind::Postgres => Box::new(PostgreSqlDialect {}),
    }
}

fn is_ws(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn word(t: &Token) -> Option<(&str, Keyword, bool)> {
    match t {
        Token::Word(w) => Some((w.value.as_str(), w.keyword, w.quote_style.is_some())),
        _ => None,
    }
}

fn kw(t: &Token, k: Keyword) -> bool {
    matches!(word(t), Some((_, kk, false)) if kk == k)
}

impl AlterSpec {
    /// Read `--alter`: either a clause list or a whole `ALTER TABLE name …` statement for
    /// `table` (the name may be schema-qualified; only its last part is compared).
    pub fn parse(kind: EngineKind, table: &str, text: &str) -> Result<AlterSpec> {
        let d = dialect(kind);
        let mut tokens = Tokenizer::new(d.as_ref(), text).tokenize().map_err(|e| {
            Error::new(ErrorKind::InvalidAlter, format!("cannot read --alter: {e}"))
                .with_hint("check the quoting in the ALTER text")
        })?;
        // Drop comments and a trailing semicolon.
        tokens.retain(|t| {
            !matches!(
                t,
                Token::Whitespace(Whitespace::SingleLineComment { .. })
                    | Token::Whitespace(Whitespace::MultiLineComment(_))
            )
        });
        while matches!(tokens.last(), Some(t) if is_ws(t) || *t == Token::SemiColon) {
            tokens.pop();
        }
        let sig: Vec<usize> = (0..tokens.len()).filter(|&i| !is_ws(&tokens[i])).collect();
        if sig.is_empty() {
            return Err(Error::bad_input("--alter is empty")
                .with_hint("give the clauses, e.g. --alter \"ADD COLUMN note TEXT\""));
        }
        let mut start = 0usize;
        // `ALTER TABLE name …` is a statement; `ALTER COLUMN …` (PostgreSQL) is a clause.
        let statement = kw(&tokens[sig[0]], Keyword::ALTER)
            && sig[1..]
                .iter()
                .take(3)
                .any(|&i| kw(&tokens[i], Keyword::TABLE));
        if statement {
            // ALTER [ONLINE|IGNORE] TABLE [IF EXISTS] [ONLY] name[.name]
            let mut i = 1;
            while i < sig.len() && !kw(&tokens[sig[i]], Keyword::TABLE) {
                i += 1;
            }
            i += 1;
            while i < sig.len()
                && (kw(&tokens[sig[i]], Keyword::IF)
                    || kw(&tokens[sig[i]], Keyword::EXISTS)
                    || kw(&tokens[sig[i]], Keyword::ONLY))
            {
                i += 1;
            }
            let mut name = None;
            while i < sig.len() {
                match &tokens[sig[i]] {
                    Token::Word(w) => name = Some(w.value.clone()),
                    Token::Period => {}
                    _ => break,
                }
                i += 1;
                if i < sig.len() && tokens[sig[i]] != Token::Period && name.is_some() {
                    // name ended unless next token is a period
                    if !matches!(tokens[sig[i - 1]], Token::Period) {
                        break;
                    }
                }
            }
            let name = name.ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidAlter,
                    "the ALTER statement names no table",
                )
            })?;
            let want = table
                .rsplit('.')
                .next()
                .unwrap_or(table)
                .trim_matches(['`', '"']);
            if name != want {
                return Err(Error::bad_input(format!(
                    "--alter is a statement for table '{name}', but --table is '{want}'"
                ))
                .with_hint(
                    "make --table and the ALTER name the same table, or pass only the clauses",
                ));
            }
            if i >= sig.len() {
                return Err(Error::bad_input("the ALTER statement has no clauses"));
            }
            start = sig[i];
        }
        let body = &tokens[start..];
        let clauses: String = body.iter().map(|t| t.to_string()).collect::<String>();
        let renames = find_renames(kind, body)?;
        Ok(AlterSpec {
            clauses: clauses.trim().to_string(),
            renames,
        })
    }
}

/// Split the significant tokens of a clause list into top-level clauses (commas at
/// parenthesis depth 0).
fn clauses(tokens: &[Token]) -> Vec<Vec<&Token>> {
    let mut out = vec![Vec::new()];
    let mut depth = 0i32;
    for t in tokens.iter().filter(|t| !is_ws(t)) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                out.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(t);
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

fn find_renames(kind: EngineKind, tokens: &[Token]) -> Result<Vec<(String, String)>> {
    let mut renames = Vec::new();
    for c in clauses(tokens) {
        let w = |i: usize| c.get(i).and_then(|t| word(t));
        let is = |i: usize, k: Keyword| c.get(i).is_some_and(|t| kw(t, k));
        if is(0, Keyword::CHANGE) {
            let off = if is(1, Keyword::COLUMN) { 2 } else { 1 };
            if let (Some((old, ..)), Some((new, ..))) = (w(off), w(off + 1)) {
                if !old.eq_ignore_ascii_case(new) || old != new {
                    renames.push((old.to_string(), new.to_string()));
                }
            }
        } else if is(0, Keyword::RENAME) {
            if is(1, Keyword::COLUMN) {
                if let (Some((old, ..)), true, Some((new, ..))) = (w(2), is(3, Keyword::TO), w(4)) {
                    renames.push((old.to_string(), new.to_string()));
                }
            } else if is(1, Keyword::TO)
                || is(1, Keyword::AS)
                || (kind == EngineKind::Mysql && c.len() == 2)
            {
                return Err(Error::bad_input(
                    "the ALTER renames the table; godwit keeps the table's name",
                )
                .with_hint(
                    "rename the table with a separate RENAME TABLE statement (it is instant)",
                ));
            } else if kind == EngineKind::Postgres
                && !is(1, Keyword::CONSTRAINT)
                && is(2, Keyword::TO)
            {
                // PostgreSQL: RENAME old TO new renames a column.
                if let (Some((old, ..)), Some((new, ..))) = (w(1), w(3)) {
                    renames.push((old.to_string(), new.to_string()));
                }
            }
        }
    }
    Ok(renames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_list_is_taken_as_is() {
        let a =
            AlterSpec::parse(EngineKind::Mysql, "t", "ADD COLUMN x INT, DROP COLUMN y").unwrap();
        assert_eq!(a.clauses, "ADD COLUMN x INT, DROP COLUMN y");
        assert!(a.renames.is_empty());
    }

    #[test]
    fn statement_header_is_stripped_and_checked() {
        let a = AlterSpec::parse(
            EngineKind::Mysql,
            "orders",
            "ALTER TABLE `orders` ADD INDEX (a);",
        )
        .unwrap();
        assert_eq!(a.clauses, "ADD INDEX (a)");
        let a = AlterSpec::parse(
            EngineKind::Postgres,
            "public.orders",
            "alter table public.orders add column z int",
        )
        .unwrap();
        assert_eq!(a.clauses, "add column z int");
        let e = AlterSpec::parse(EngineKind::Mysql, "orders", "ALTER TABLE other ADD x INT")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
    }

    #[test]
    fn renames_are_found_in_every_form() {
        let a = AlterSpec::parse(
            EngineKind::Mysql,
            "t",
            "CHANGE COLUMN a b INT NOT NULL, CHANGE `c` `d` TEXT, RENAME COLUMN e TO f, MODIFY g BIGINT, CHANGE h h INT",
        )
        .unwrap();
        assert_eq!(
            a.renames,
            vec![
                ("a".into(), "b".into()),
                ("c".into(), "d".into()),
                ("e".into(), "f".into())
            ]
        );
        let p = AlterSpec::parse(EngineKind::Postgres, "t", "RENAME a TO b").unwrap();
        assert_eq!(p.renames, vec![("a".into(), "b".into())]);
        let p = AlterSpec::parse(EngineKind::Postgres, "t", "RENAME CONSTRAINT a TO b").unwrap();
        assert!(p.renames.is_empty());
    }

    #[test]
    fn postgres_alter_column_is_a_clause() {
        let a = AlterSpec::parse(
            EngineKind::Postgres,
            "t",
            "ALTER COLUMN a TYPE bigint, ADD COLUMN d int",
        )
        .unwrap();
        assert_eq!(a.clauses, "ALTER COLUMN a TYPE bigint, ADD COLUMN d int");
    }

    #[test]
    fn table_rename_is_refused() {
        assert!(AlterSpec::parse(EngineKind::Mysql, "t", "RENAME TO t2").is_err());
        assert!(AlterSpec::parse(EngineKind::Postgres, "t", "RENAME TO t2").is_err());
        // A rename inside a string literal is not a rename.
        let a = AlterSpec::parse(EngineKind::Mysql, "t", "COMMENT 'CHANGE a b'").unwrap();
        assert!(a.renames.is_empty());
    }

    #[test]
    fn commas_inside_parentheses_do_not_split() {
        let a =
            AlterSpec::parse(EngineKind::Mysql, "t", "ADD INDEX i (a, b), CHANGE x y INT").unwrap();
        assert_eq!(a.renames, vec![("x".into(), "y".into())]);
    }
}
