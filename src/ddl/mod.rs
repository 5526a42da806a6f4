//! Reading the user's ALTER: the clause list to apply to the shadow table, and the column
//! renames it contains (so data follows a renamed column).
//!
//! The text sent to the server is the user's own (without comments): sqlparser does not
//! know every clause (`ENGINE=`, `CONVERT TO CHARACTER SET`, partitioning), so godwit
//! tokenizes instead of parsing, and lets the server judge the syntax on the empty shadow
//! table. Before that, [`lex`] makes sure the text is exactly one statement.

use crate::error::{Error, ErrorKind, Result};
use crate::target::EngineKind;
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

pub mod lex;

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
    /// `table` (the name may be schema-qualified). Refused before anything reaches the
    /// server: more than one statement, executable comments, unclosed quotes, clauses that
    /// move or rename the table (see [`lex`] and [`refuse_moves`]).
    pub fn parse(kind: EngineKind, table: &str, text: &str) -> Result<AlterSpec> {
        let stmt = lex::single(kind, text, "--alter").map_err(|e| match e.hint {
            Some(_) => e,
            None => e.with_hint("give the clauses, e.g. --alter \"ADD COLUMN note TEXT\""),
        })?;
        let start = clause_start(kind, table, &stmt)?;
        let clauses = stmt[start..].trim().to_string();
        if clauses.is_empty() {
            return Err(Error::bad_input("the ALTER statement has no clauses")
                .with_hint("add the change, e.g. ALTER TABLE t ADD COLUMN note TEXT"));
        }
        let tokens = Tokenizer::new(dialect(kind).as_ref(), &clauses)
            .tokenize()
            .map_err(|e| {
                Error::new(ErrorKind::InvalidAlter, format!("cannot read --alter: {e}"))
                    .with_hint("check the quoting in the ALTER text")
            })?;
        refuse_moves(kind, &tokens)?;
        let renames = find_renames(kind, &tokens)?;
        Ok(AlterSpec { clauses, renames })
    }
}

/// Where the clauses begin in `stmt`: 0 for a clause list, after the table name for
/// `ALTER [ONLINE|IGNORE] TABLE [IF EXISTS] [ONLY] [schema.]name …`, whose name must be
/// `table`.
fn clause_start(kind: EngineKind, table: &str, stmt: &str) -> Result<usize> {
    let spans = lex::pieces(kind, stmt)?;
    let sig: Vec<&lex::Span> = spans
        .iter()
        .filter(|s| !matches!(s.piece, lex::Piece::Space | lex::Piece::Comment))
        .collect();
    let text = |i: usize| sig.get(i).map(|s| &stmt[s.start..s.end]).unwrap_or("");
    let is_word = |i: usize, w: &str| {
        sig.get(i).is_some_and(|s| s.piece == lex::Piece::Word) && text(i).eq_ignore_ascii_case(w)
    };
    // `ALTER TABLE name …` is a statement; `ALTER COLUMN …` (PostgreSQL) is a clause.
    let Some(t) = (1..=3)
        .find(|&i| is_word(i, "TABLE"))
        .filter(|_| is_word(0, "ALTER"))
    else {
        return Ok(0);
    };
    let mut i = t + 1;
    while is_word(i, "IF") || is_word(i, "EXISTS") || is_word(i, "ONLY") {
        i += 1;
    }
    // The name: parts separated by periods.
    let mut parts = Vec::new();
    loop {
        let Some(s) = sig.get(i) else { break };
        let part = match s.piece {
            lex::Piece::Word => {
                let w = text(i);
                // PostgreSQL folds unquoted names to lower case.
                if kind == EngineKind::Postgres {
                    w.to_lowercase()
                } else {
                    w.to_string()
                }
            }
            lex::Piece::Quoted(q @ ('`' | '"')) => {
                let inner = &text(i)[1..text(i).len() - 1];
                inner.replace(&format!("{q}{q}"), &q.to_string())
            }
            _ => break,
        };
        parts.push(part);
        i += 1;
        if text(i) == "." {
            i += 1;
        } else {
            break;
        }
    }
    let Some(name) = parts.last() else {
        return Err(Error::bad_input("the ALTER statement names no table")
            .with_hint("write ALTER TABLE <name> <clauses>, or pass only the clauses"));
    };
    let (want_schema, want) = match table.rsplit_once('.') {
        Some((s, t)) => (Some(s.trim_matches(['`', '"'])), t.trim_matches(['`', '"'])),
        None => (None, table.trim_matches(['`', '"'])),
    };
    let schema = (parts.len() > 1).then(|| parts[parts.len() - 2].as_str());
    let schema_differs = matches!((schema, want_schema), (Some(a), Some(b)) if a != b);
    if name != want || schema_differs {
        return Err(Error::bad_input(format!(
            "--alter is a statement for table '{}', but --table is '{table}'",
            parts.join(".")
        ))
        .with_hint("make --table and the ALTER name the same table, or pass only the clauses"));
    }
    Ok(sig.get(i).map(|s| s.start).unwrap_or(stmt.len()))
}

/// Clauses that would move the shadow table out of godwit's reach or reshape other
/// tables: the shadow is renamed, moved to another schema, or takes data from elsewhere.
fn refuse_moves(kind: EngineKind, tokens: &[Token]) -> Result<()> {
    for c in clauses(tokens) {
        let is = |i: usize, k: Keyword| c.get(i).is_some_and(|t| kw(t, k));
        let refused = match kind {
            EngineKind::Postgres => {
                if is(0, Keyword::SET) && is(1, Keyword::SCHEMA) {
                    Some("SET SCHEMA moves the table to another schema; run it as its own ALTER TABLE … SET SCHEMA (instant)")
                } else if is(0, Keyword::SET) && is(1, Keyword::TABLESPACE) {
                    Some("SET TABLESPACE is not supported by godwit; run ALTER TABLE … SET TABLESPACE (it rewrites the table under an ACCESS EXCLUSIVE lock) or pg_repack --tablespace")
                } else if (is(0, Keyword::ATTACH) || is(0, Keyword::DETACH))
                    && is(1, Keyword::PARTITION)
                {
                    Some("ATTACH/DETACH PARTITION changes other tables; godwit does not migrate partitioned tables")
                } else if is(0, Keyword::INHERIT) || (is(0, Keyword::NO) && is(1, Keyword::INHERIT))
                {
                    Some("INHERIT / NO INHERIT links the table to another one; run it as its own ALTER TABLE")
                } else {
                    None
                }
            }
            EngineKind::Mysql => {
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
        };
        if let Some(why) = refused {
            return Err(Error::bad_input(format!(
                "--alter clause `{}` is not accepted",
                c.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .with_hint(why));
        }
    }
    Ok(())
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
