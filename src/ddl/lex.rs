//! The safety gate for user SQL: a lexer that follows each server's own quoting rules, so
//! godwit knows where a statement really ends before any text reaches the server.
//!
//! Every text a user wrote (`--alter`, the fields of migration files, `plan` input) passes
//! through here. The rules it enforces (docs/architecture.md, "User text"):
//! - exactly one statement where one is expected: a top-level `;` is allowed only at the
//!   end; the phases' `sql` operation, which holds several on purpose, is split here and
//!   each statement runs on its own;
//! - no executable comments (`/*! … */`, `/*M! … */`): MySQL/MariaDB run their contents;
//! - fragments spliced into godwit's own statements (expressions, types, defaults) hold no
//!   `;` at all, no comment, and balanced parentheses, so they cannot end or reshape the
//!   statement around them;
//! - where a server setting changes how text is read (`NO_BACKSLASH_ESCAPES` and
//!   `ANSI_QUOTES` on MySQL, `standard_conforming_strings` on PostgreSQL), the text is read
//!   under every reading and all must agree.
//!
//! Comments are removed from what is returned (replaced by a space), so nothing godwit
//! appends to user text can be commented out.
//!
//! This is the first of two walls: connections never allow several statements per query
//! (MySQL without `CLIENT_MULTI_STATEMENTS`, see vendor/README.md; PostgreSQL through the
//! extended protocol), so the server refuses a second statement as well.

use super::SqlRules;
use crate::error::{Error, Result};

/// How one server reads quoted text; see [`readings`].
#[derive(Clone, Copy)]
struct Reading {
    rules: &'static SqlRules,
    /// A backslash escapes the next character inside `'…'`.
    backslash_single: bool,
    /// A backslash escapes the next character inside `"…"` (MySQL strings without ANSI_QUOTES).
    backslash_double: bool,
}

/// Every way the server may read the text, depending on session settings godwit does not
/// control everywhere (the phases run under the server's defaults): the engine's
/// [`SqlRules::readings`].
fn readings(rules: &'static SqlRules) -> Vec<Reading> {
    rules
        .readings
        .iter()
        .map(|&(s, d)| Reading {
            rules,
            backslash_single: s,
            backslash_double: d,
        })
        .collect()
}

/// One lexical piece of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Space,
    Comment,
    /// An unquoted word: keyword, identifier or number.
    Word,
    /// Quoted text: a string, a quoted identifier or a dollar-quoted string. The char is
    /// the opening quote (`'`, `"`, `` ` ``, `$`).
    Quoted(char),
    Semicolon,
    OpenParen,
    CloseParen,
    /// Any other character.
    Other,
}

/// A piece and where it is in the text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub piece: Piece,
    pub start: usize,
    pub end: usize,
}

fn lex_error(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad_input(format!("{what}: {msg}"))
        .with_hint("check the quoting: every string, quoted name and comment must be closed")
}

/// A character that continues an unquoted word (both servers allow `$` after the first).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

/// Split `text` into pieces under one reading. Unclosed quotes and comments are errors.
fn scan(text: &str, r: Reading, what: &str) -> Result<Vec<Span>> {
    let b = text.as_bytes();
    let rules = r.rules;
    let mut out = Vec::new();
    let mut i = 0usize;
    let char_at = |i: usize| text[i..].chars().next().unwrap_or('\0');
    while i < b.len() {
        let start = i;
        let c = char_at(i);
        let piece = match c {
            c if c.is_whitespace() => {
                while i < b.len() && char_at(i).is_whitespace() {
                    i += char_at(i).len_utf8();
                }
                Piece::Space
            }
            '-' if b.get(i + 1) == Some(&b'-')
                && (rules.dash_comment_anywhere
                    // MySQL: `--` starts a comment only before a space or control
                    // character (`1--1` is arithmetic).
                    || b.get(i + 2).is_none_or(|&n| n <= b' ')) =>
            {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Piece::Comment
            }
            '#' if rules.hash_and_executable_comments => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Piece::Comment
            }
            '/' if b.get(i + 1) == Some(&b'*') => {
                let rest = &b[i + 2..];
                if rules.hash_and_executable_comments
                    && (rest.first() == Some(&b'!')
                        || rest.len() >= 2
                            && rest[0].eq_ignore_ascii_case(&b'm')
                            && rest[1] == b'!')
                {
                    return Err(Error::bad_input(format!(
                        "{what}: executable comments (/*! … */, /*M! … */) are not accepted: the server runs what they hold"
                    ))
                    .with_hint("write the clause itself, without the comment around it"));
                }
                // PostgreSQL comments nest; MySQL's end at the first `*/`.
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    if i + 1 >= b.len() {
                        return Err(lex_error(what, "a /* comment is not closed"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                    } else if rules.nested_comments && b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                Piece::Comment
            }
            '\'' | '"' | '`' if c != '`' || rules.backtick_quotes => {
                let escapes = match c {
                    '\'' => {
                        r.backslash_single
                            || rules.dollar_quotes && escape_string_prefix(text, &out, start)
                    }
                    '"' => r.backslash_double,
                    _ => false,
                };
                i = close_quote(b, i, c as u8, escapes)
                    .ok_or_else(|| lex_error(what, format!("a {c} quote is not closed")))?;
                Piece::Quoted(c)
            }
            '$' if rules.dollar_quotes => match dollar_tag(text, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    let close = text[body..].find(tag).ok_or_else(|| {
                        lex_error(what, format!("a {tag} dollar quote is not closed"))
                    })?;
                    i = body + close + tag.len();
                    Piece::Quoted('$')
                }
                None => {
                    // `$1`: a parameter.
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    Piece::Word
                }
            },
            ';' => {
                i += 1;
                Piece::Semicolon
            }
            '(' => {
                i += 1;
                Piece::OpenParen
            }
            ')' => {
                i += 1;
                Piece::CloseParen
            }
            c if c.is_ascii_digit() && rules.dollar_quotes => {
                // A number never swallows a `$`: `1$$…$$` is a number and a dollar quote.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Piece::Word
            }
            // PostgreSQL words start like identifiers (a `$` there opens a dollar quote).
            c if is_word_char(c) && (!rules.dollar_quotes || is_ident_start(c)) => {
                while i < b.len() && is_word_char(char_at(i)) {
                    i += char_at(i).len_utf8();
                }
                Piece::Word
            }
            c => {
                i += c.len_utf8();
                Piece::Other
            }
        };
        out.push(Span {
            piece,
            start,
            end: i,
        });
    }
    Ok(out)
}

/// PostgreSQL `E'…'`: the word right before the quote is a lone `E`.
fn escape_string_prefix(text: &str, before: &[Span], quote_at: usize) -> bool {
    matches!(before.last(), Some(s) if s.piece == Piece::Word
        && s.end == quote_at
        && text[s.start..s.end].eq_ignore_ascii_case("e"))
}

/// The end (exclusive) of the quoted text opening at `i`, or None if it is not closed.
fn close_quote(b: &[u8], mut i: usize, q: u8, escapes: bool) -> Option<usize> {
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// `$tag$` or `$$` at `i` (PostgreSQL), unless the `$` continues an identifier.
fn dollar_tag(text: &str, i: usize) -> Option<&str> {
    let rest = &text[i + 1..];
    let first = rest.chars().next()?;
    if first == '$' {
        return Some(&text[i..i + 2]);
    }
    if !is_ident_start(first) {
        return None;
    }
    let len = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || !c.is_ascii()))
        .map(|(n, _)| n)?;
    (rest[len..].starts_with('$')).then(|| &text[i..i + 1 + len + 1])
}

/// Statements of `text` under one reading: the spans of each, comments dropped.
fn statements(text: &str, r: Reading, what: &str) -> Result<Vec<Vec<Span>>> {
    let mut out = vec![Vec::new()];
    for s in scan(text, r, what)? {
        match s.piece {
            Piece::Semicolon => out.push(Vec::new()),
            _ => {
                if let Some(v) = out.last_mut() {
                    v.push(s)
                }
            }
        }
    }
    out.retain(|st| {
        st.iter()
            .any(|s| !matches!(s.piece, Piece::Space | Piece::Comment))
    });
    Ok(out)
}

/// The text of some spans with each comment replaced by one space, trimmed.
fn render(text: &str, spans: &[Span]) -> String {
    let mut s = String::new();
    for sp in spans {
        if sp.piece == Piece::Comment {
            s.push(' ');
        } else {
            s.push_str(&text[sp.start..sp.end]);
        }
    }
    s.trim().to_string()
}

/// Read `text` under every reading of `rules`: the statements, which must be the same
/// under each (else the text means different things to different sessions).
pub fn split(rules: &'static SqlRules, text: &str, what: &str) -> Result<Vec<String>> {
    let mut agreed: Option<Vec<String>> = None;
    for r in readings(rules) {
        let st: Vec<String> = statements(text, r, what)?
            .iter()
            .map(|s| render(text, s))
            .collect();
        match &agreed {
            None => agreed = Some(st),
            Some(a) if *a == st => {}
            Some(_) => {
                return Err(Error::bad_input(format!(
                    "{what}: the text is read differently depending on the server's settings (backslashes or double quotes in strings)"
                ))
                .with_hint("write strings without backslashes, with '' for a quote inside a string"))
            }
        }
    }
    Ok(agreed.unwrap_or_default())
}

/// Exactly one statement (a trailing `;` is allowed); returned without comments and
/// without the `;`.
pub fn single(rules: &'static SqlRules, text: &str, what: &str) -> Result<String> {
    let mut st = split(rules, text, what)?;
    match st.len() {
        0 => Err(Error::bad_input(format!("{what} is empty"))),
        1 => Ok(st.remove(0)),
        n => Err(Error::bad_input(format!(
            "{what} holds {n} statements; godwit runs exactly one (a `;` may only end it)"
        ))
        .with_hint("remove everything after the first `;`, and run other statements yourself")),
    }
}

/// A fragment godwit splices into a statement of its own (an expression, a type, a
/// default): no `;` anywhere, no comment, parentheses balanced.
pub fn fragment(rules: &'static SqlRules, text: &str, what: &str) -> Result<String> {
    let mut out = None;
    for r in readings(rules) {
        let spans = scan(text, r, what)?;
        let mut depth = 0i32;
        for s in &spans {
            match s.piece {
                Piece::Semicolon => {
                    return Err(Error::bad_input(format!(
                        "{what} contains `;`: it must be a single expression, not statements"
                    ))
                    .with_hint("remove the `;` (put statements in an `sql` operation instead)"))
                }
                Piece::Comment => {
                    return Err(Error::bad_input(format!(
                        "{what} contains a comment: godwit inserts it into a statement of its own, where a comment would hide the rest"
                    ))
                    .with_hint("remove the comment"))
                }
                Piece::OpenParen => depth += 1,
                Piece::CloseParen => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err(Error::bad_input(format!(
                    "{what} closes a parenthesis it did not open"
                ))
                .with_hint("balance the parentheses"));
            }
        }
        if depth != 0 {
            return Err(
                Error::bad_input(format!("{what} leaves a parenthesis open"))
                    .with_hint("balance the parentheses"),
            );
        }
        let text = render(text, &spans);
        if rules.dollar_quotes && text.contains("$godwit$") {
            return Err(Error::bad_input(format!(
                "{what} contains $godwit$, which godwit uses to quote its trigger bodies"
            ))
            .with_hint("use another dollar-quote tag or a plain string"));
        }
        match &out {
            None => out = Some(text),
            Some(o) if *o == text => {}
            Some(_) => {
                return Err(Error::bad_input(format!(
                    "{what}: the text is read differently depending on the server's settings (backslashes or double quotes in strings)"
                ))
                .with_hint("write strings without backslashes, with '' for a quote inside a string"))
            }
        }
    }
    let out = out.unwrap_or_default();
    if out.is_empty() {
        return Err(Error::bad_input(format!("{what} is empty")));
    }
    Ok(out)
}

/// The pieces of one statement (already checked by [`single`]), under the server's
/// default reading: for finding words such as the table name of `ALTER TABLE name`.
pub fn pieces(rules: &'static SqlRules, text: &str) -> Result<Vec<Span>> {
    scan(text, readings(rules)[0], "the statement")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(non_upper_case_globals)]
    const My: &SqlRules = &crate::engine::mysql::SQL_RULES;
    #[allow(non_upper_case_globals)]
    const Pg: &SqlRules = &crate::engine::postgres::SQL_RULES;

    fn refused(kind: &'static SqlRules, text: &str) -> bool {
        single(kind, text, "--alter").is_err()
    }

    #[test]
    fn one_statement_with_a_trailing_semicolon_is_accepted() {
        assert_eq!(
            single(My, "ADD COLUMN x INT; ", "a").unwrap(),
            "ADD COLUMN x INT"
        );
        assert_eq!(
            single(Pg, "ADD COLUMN x INT;;\n", "a").unwrap(),
            "ADD COLUMN x INT"
        );
        assert_eq!(
            single(My, "ADD COLUMN x INT COMMENT 'a;b' -- c\n", "a").unwrap(),
            "ADD COLUMN x INT COMMENT 'a;b'"
        );
    }

    #[test]
    fn hostile_texts_are_refused() {
        for t in [
            "ADD COLUMN x INT; DROP TABLE victim",
            "ADD COLUMN x INT\n; DROP TABLE victim",
            "ALTER TABLE orders ADD COLUMN x INT; DROP TABLE victim",
            "ADD COLUMN x INT /*!; DROP TABLE victim */",
            "ADD COLUMN x INT /*M!100000 , DROP COLUMN y */",
            "ADD COLUMN x INT /*!50000 DROP TABLE victim */",
            "ADD COLUMN x VARCHAR(5) DEFAULT 'a\\'; DROP TABLE victim; -- '",
            "ADD COLUMN x INT DEFAULT 1--1; DROP TABLE victim",
            "ADD COLUMN x INT /* unclosed",
            "ADD COLUMN x INT COMMENT 'unclosed",
            "ADD COLUMN `x INT",
            "ADD COLUMN x INT # c\n; DROP TABLE victim",
            "ADD COLUMN x VARCHAR(9) DEFAULT \"a\\\"; DROP TABLE victim; -- \"",
        ] {
            assert!(refused(My, t), "accepted on MySQL: {t}");
        }
        for t in [
            "ADD COLUMN x INT; DROP TABLE victim",
            "ADD COLUMN x text DEFAULT $$;$$; DROP TABLE victim",
            "ADD COLUMN x int DEFAULT (1); DROP TABLE victim; --",
            "ADD COLUMN x text DEFAULT $a$ $b$ $a$; DROP TABLE victim",
            "ADD COLUMN x text DEFAULT 'a\\'; DROP TABLE victim; -- '",
            "ADD COLUMN x int /* */ */ ; DROP TABLE victim",
            "ADD COLUMN x int DEFAULT 1$$;$$; DROP TABLE victim",
            "ADD COLUMN x text DEFAULT $$ unclosed",
            "ADD COLUMN \"x int",
        ] {
            assert!(refused(Pg, t), "accepted on PostgreSQL: {t}");
        }
    }

    #[test]
    fn quoting_rules_follow_each_server() {
        // MySQL does not nest comments: `;` after the first `*/` is top level.
        assert!(refused(My, "ADD x INT /* /* */ ; DROP TABLE v"));
        // PostgreSQL nests them: all of it is one comment.
        assert_eq!(
            single(Pg, "ADD x INT /* /* */ ; DROP TABLE v */", "a").unwrap(),
            "ADD x INT"
        );
        // MySQL `--` without a space is not a comment.
        assert_eq!(
            single(My, "ADD x INT DEFAULT 1--1", "a").unwrap(),
            "ADD x INT DEFAULT 1--1"
        );
        // `$` continues an identifier on PostgreSQL.
        assert_eq!(single(Pg, "ADD a$$ int", "a").unwrap(), "ADD a$$ int");
        assert_eq!(
            single(Pg, "ADD x text DEFAULT $t$ ; $t$", "a").unwrap(),
            "ADD x text DEFAULT $t$ ; $t$"
        );
        // An E'' string escapes under every reading.
        assert_eq!(
            single(Pg, "ADD x text DEFAULT E'a\\'; b'", "a").unwrap(),
            "ADD x text DEFAULT E'a\\'; b'"
        );
        // A doubled quote stays inside the string under every reading.
        assert_eq!(
            single(My, "ADD x TEXT COMMENT 'it''s; fine'", "a").unwrap(),
            "ADD x TEXT COMMENT 'it''s; fine'"
        );
    }

    #[test]
    fn split_runs_each_statement_alone() {
        let st = split(
            Pg,
            "CREATE TABLE a (x int); -- one\nINSERT INTO a VALUES (1);\n",
            "sql",
        )
        .unwrap();
        assert_eq!(
            st,
            vec!["CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)"]
        );
        assert!(split(My, "SELECT 1 /*! ; DROP TABLE v */", "sql").is_err());
    }

    #[test]
    fn fragments_cannot_leave_their_place() {
        assert_eq!(fragment(Pg, " a + 1 ", "up").unwrap(), "a + 1");
        for t in [
            "1; DELETE FROM v",
            "1) OR (1",
            "(1",
            "a $godwit$",
            "1 /* x",
            "a -- x",
            "a /* x */",
        ] {
            assert!(fragment(Pg, t, "up").is_err(), "accepted: {t}");
        }
        for t in ["1; DELETE FROM v", "1) OR (1", "1 /*! , x */", "'a\\'; x'"] {
            assert!(fragment(My, t, "up").is_err(), "accepted: {t}");
        }
        assert_eq!(
            fragment(My, "CONCAT(a, ';')", "up").unwrap(),
            "CONCAT(a, ';')"
        );
    }
}
