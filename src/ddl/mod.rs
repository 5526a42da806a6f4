//! Reading the user's ALTER: the clause list to apply to the shadow table, and the column
//! renames it contains (so data follows a renamed column).
//!
//! The text sent to the server is the user's own (without comments): sqlparser does not
//! know every clause (`ENGINE=`, `CONVERT TO CHARACTER SET`, partitioning), so godwit
//! tokenizes instead of parsing, and lets the server judge the syntax on the empty shadow
//! table. Before that, [`lex`] makes sure the text is exactly one statement.

use crate::error::{Error, ErrorKind, Result};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub mod lex;

/// How one server reads SQL text, and the parts of its ALTER grammar godwit reads itself.
/// Each engine provides one (`engine/*/`: `SQL_RULES`); engine-neutral code gets it from
/// `dispatch::by_kind` and passes it in, so nothing here names an engine.
pub struct SqlRules {
    /// Every way the server may read quoted text under settings godwit does not control
    /// everywhere, as (backslash escapes in `'…'`, backslash escapes in `"…"`); the first
    /// is the server's default. Text must mean the same under each.
    pub readings: &'static [(bool, bool)],
    /// `--` starts a comment anywhere, not only before a space or control character.
    pub dash_comment_anywhere: bool,
    /// `#` starts a comment, and `/*! … */` / `/*M! … */` comments are executed.
    pub hash_and_executable_comments: bool,
    /// Block comments nest.
    pub nested_comments: bool,
    /// `` `…` `` quotes identifiers.
    pub backtick_quotes: bool,
    /// `$tag$…$tag$` quotes and `$1` parameters (words start like identifiers, numbers
    /// end before a `$`), and `E'…'` strings with backslash escapes.
    pub dollar_quotes: bool,
    /// Unquoted names fold to lower case.
    pub folds_to_lower: bool,
    /// `RENAME old TO new` (no COLUMN) renames a column.
    pub bare_rename_is_column: bool,
    /// `RENAME name` (no TO/AS) renames the table.
    pub bare_rename_is_table: bool,
    /// Table options may set `AUTO_INCREMENT [=] N`.
    pub auto_increment_option: bool,
    /// Why a clause of `--alter` (its significant tokens) is refused: it would move the
    /// shadow out of godwit's reach or reshape other tables.
    pub refused_clause: fn(&[&Token]) -> Option<&'static str>,
    /// sqlparser's dialect, for tokenizing.
    pub dialect: fn() -> Box<dyn Dialect>,
}

/// Byte offsets of the tokens' locations in the text they came from.
pub struct Source<'a> {
    pub sql: &'a str,
    /// Byte offset where each line starts.
    lines: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(sql: &'a str) -> Source<'a> {
        let mut lines = vec![0];
        lines.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Source { sql, lines }
    }
    pub fn offset(&self, l: Location) -> usize {
        let Some(&start) = self.lines.get((l.line as usize).saturating_sub(1)) else {
            return self.sql.len();
        };
        self.sql[start..]
            .char_indices()
            .nth((l.column as usize).saturating_sub(1))
            .map(|(i, _)| start + i)
            .unwrap_or(self.sql.len())
    }
    /// The text from the start of `first` to the end of `last`, as written.
    pub fn text(&self, first: &TokenWithSpan, last: &TokenWithSpan) -> String {
        let (a, b) = (self.offset(first.span.start), self.offset(last.span.end));
        self.sql.get(a..b.max(a)).unwrap_or("").trim().to_string()
    }
}

/// The user's ALTER, made ready to apply to the shadow table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlterSpec {
    /// The clause list, without `ALTER TABLE name`.
    pub clauses: String,
    /// Column renames (old, new), in the order written.
    pub renames: Vec<(String, String)>,
    /// Columns the ALTER removes (drops, or renames away) and adds again under the same
    /// name: new columns that take their definition's values, not the old data.
    pub new_columns: Vec<String>,
    /// The `AUTO_INCREMENT = N` table option (MySQL/MariaDB), when the ALTER sets it.
    pub auto_increment: Option<u64>,
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

/// An unquoted keyword.
pub fn kw(t: &Token, k: Keyword) -> bool {
    matches!(word(t), Some((_, kk, false)) if kk == k)
}

impl AlterSpec {
    /// Read `--alter`: either a clause list or a whole `ALTER TABLE name …` statement for
    /// `table` (the name may be schema-qualified). Refused before anything reaches the
    /// server: more than one statement, executable comments, unclosed quotes, clauses that
    /// move or rename the table (see [`lex`] and [`refuse_moves`]).
    pub fn parse(rules: &'static SqlRules, table: &str, text: &str) -> Result<AlterSpec> {
        let clauses = clause_text(rules, table, text)?;
        if clauses.is_empty() {
            return Err(Error::bad_input("the ALTER statement has no clauses")
                .with_hint("add the change, e.g. ALTER TABLE t ADD COLUMN note TEXT"));
        }
        let tokens = Tokenizer::new((rules.dialect)().as_ref(), &clauses)
            .tokenize()
            .map_err(|e| {
                Error::new(ErrorKind::InvalidAlter, format!("cannot read --alter: {e}"))
                    .with_hint("check the quoting in the ALTER text")
            })?;
        refuse_moves(rules, &tokens)?;
        let renames = find_renames(rules, &tokens)?;
        Ok(AlterSpec {
            clauses,
            renames,
            new_columns: find_new_columns(rules, &tokens),
            auto_increment: find_auto_increment(rules, &tokens),
        })
    }
}

/// The clauses of `--alter` (one statement, for `table`, comments removed), without
/// `ALTER TABLE name`. What `godwit plan` checks too; `godwit run` also refuses moves.
pub fn clause_text(rules: &'static SqlRules, table: &str, text: &str) -> Result<String> {
    let stmt = lex::single(rules, text, "--alter").map_err(|e| match e.hint {
        Some(_) => e,
        None => e.with_hint("give the clauses, e.g. --alter \"ADD COLUMN note TEXT\""),
    })?;
    let start = clause_start(rules, table, &stmt)?;
    Ok(stmt[start..].trim().to_string())
}

/// Where the clauses begin in `stmt`: 0 for a clause list, after the table name for
/// `ALTER [ONLINE|IGNORE] TABLE [IF EXISTS] [ONLY] [schema.]name …`, whose name must be
/// `table`.
fn clause_start(rules: &'static SqlRules, table: &str, stmt: &str) -> Result<usize> {
    let spans = lex::pieces(rules, stmt)?;
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
    while let Some(s) = sig.get(i) {
        let part = match s.piece {
            lex::Piece::Word => {
                let w = text(i);
                // PostgreSQL folds unquoted names to lower case.
                if rules.folds_to_lower {
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
fn refuse_moves(rules: &SqlRules, tokens: &[Token]) -> Result<()> {
    for c in clauses(tokens) {
        let refused = (rules.refused_clause)(&c);
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

fn find_renames(rules: &SqlRules, tokens: &[Token]) -> Result<Vec<(String, String)>> {
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
                || (rules.bare_rename_is_table && c.len() == 2)
            {
                return Err(Error::bad_input(
                    "the ALTER renames the table; godwit keeps the table's name",
                )
                .with_hint(
                    "rename the table with a separate RENAME TABLE statement (it is instant)",
                ));
            } else if rules.bare_rename_is_column
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

/// An unquoted word with this spelling (any case). Some clause words (`PERIOD`,
/// `FULLTEXT`, …) are not keywords of every sqlparser dialect, so they are compared by text.
fn is_word(t: &Token, text: &str) -> bool {
    matches!(word(t), Some((v, _, false)) if v.eq_ignore_ascii_case(text))
}

/// Words after `ADD` / `DROP` that start something other than a column.
const NOT_A_COLUMN: [&str; 15] = [
    "INDEX",
    "KEY",
    "PRIMARY",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "FOREIGN",
    "CONSTRAINT",
    "CHECK",
    "PARTITION",
    "PERIOD",
    "SYSTEM",
    "EXCLUDE",
    "DEFAULT",
    "IDENTITY",
];

/// The column a `DROP …` or `ADD …` clause names, from token `i` on (after the verb):
/// `[COLUMN] [IF [NOT] EXISTS] name`. `None` for indexes, keys, constraints, ….
fn column_after(c: &[&Token], mut i: usize) -> Option<usize> {
    let mut explicit = false;
    if c.get(i).is_some_and(|t| is_word(t, "COLUMN")) {
        explicit = true;
        i += 1;
    }
    if c.get(i).is_some_and(|t| is_word(t, "IF")) {
        i += 1;
        while c
            .get(i)
            .is_some_and(|t| is_word(t, "NOT") || is_word(t, "EXISTS"))
        {
            i += 1;
        }
    }
    let (_, _, quoted) = word(c.get(i)?)?;
    if !explicit && !quoted && NOT_A_COLUMN.iter().any(|k| is_word(c[i], k)) {
        return None;
    }
    Some(i)
}

/// Columns the ALTER takes away from the original and adds again under the same name, in
/// either order: `DROP COLUMN c, ADD COLUMN c …`, `CHANGE c d …, ADD c …`,
/// `RENAME COLUMN c TO d, ADD c …`. The server gives such a column its new definition's
/// values, so it must not be filled from the old column of that name. (A name that a
/// rename gives to another column, `DROP c, CHANGE d c …`, is not listed: the rename says
/// where its data comes from.)
fn find_new_columns(rules: &SqlRules, tokens: &[Token]) -> Vec<String> {
    let mut removed: Vec<String> = Vec::new();
    let mut added: Vec<String> = Vec::new();
    let name = |t: &Token| word(t).map(|(v, ..)| v.to_string());
    for c in clauses(tokens) {
        let is = |i: usize, k: Keyword| c.get(i).is_some_and(|t| kw(t, k));
        if is(0, Keyword::DROP) {
            if let Some(i) = column_after(&c, 1) {
                removed.extend(name(c[i]));
            }
        } else if is(0, Keyword::CHANGE) {
            let off = if is(1, Keyword::COLUMN) { 2 } else { 1 };
            if let (Some(old), Some(new)) = (
                c.get(off).and_then(|t| name(t)),
                c.get(off + 1).and_then(|t| name(t)),
            ) {
                if !old.eq_ignore_ascii_case(&new) {
                    removed.push(old);
                }
            }
        } else if is(0, Keyword::RENAME) {
            // RENAME COLUMN old TO new; PostgreSQL also RENAME old TO new.
            let off = if is(1, Keyword::COLUMN) {
                2
            } else if rules.bare_rename_is_column && !is(1, Keyword::CONSTRAINT) {
                1
            } else {
                continue;
            };
            if is(off + 1, Keyword::TO) {
                removed.extend(c.get(off).and_then(|t| name(t)));
            }
        } else if is(0, Keyword::ADD) {
            if c.get(1) == Some(&&Token::LParen)
                || (is(1, Keyword::COLUMN) && c.get(2) == Some(&&Token::LParen))
            {
                // MySQL: ADD [COLUMN] (a INT, b INT): the first word of each definition.
                let open = if is(1, Keyword::COLUMN) { 2 } else { 1 };
                let mut depth = 0;
                let mut expect_name = true;
                for t in &c[open..] {
                    match t {
                        Token::LParen => {
                            depth += 1;
                            if depth > 1 {
                                expect_name = false;
                            }
                        }
                        Token::RParen => depth -= 1,
                        Token::Comma if depth == 1 => {
                            expect_name = true;
                            continue;
                        }
                        _ => {}
                    }
                    if expect_name && depth == 1 && !matches!(t, Token::LParen) {
                        added.extend(name(t));
                        expect_name = false;
                    }
                }
            } else if let Some(i) = column_after(&c, 1) {
                added.extend(name(c[i]));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for a in added {
        if removed.iter().any(|r| r.eq_ignore_ascii_case(&a))
            && !out.iter().any(|o| o.eq_ignore_ascii_case(&a))
        {
            out.push(a);
        }
    }
    out
}

/// The `AUTO_INCREMENT [=] N` table option (MySQL/MariaDB). Table options may follow one
/// another without commas (`ENGINE=InnoDB AUTO_INCREMENT=5`); in a column definition
/// `AUTO_INCREMENT` is never followed by a number.
fn find_auto_increment(rules: &SqlRules, tokens: &[Token]) -> Option<u64> {
    if !rules.auto_increment_option {
        return None;
    }
    let sig: Vec<&Token> = tokens.iter().filter(|t| !is_ws(t)).collect();
    let mut found = None;
    for (i, t) in sig.iter().enumerate() {
        if !is_word(t, "AUTO_INCREMENT") {
            continue;
        }
        let mut j = i + 1;
        if sig.get(j) == Some(&&Token::Eq) {
            j += 1;
        }
        if let Some(Token::Number(n, _)) = sig.get(j) {
            found = n.parse().ok().or(found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    const MY: &SqlRules = &crate::engine::mysql::SQL_RULES;
    const PG: &SqlRules = &crate::engine::postgres::SQL_RULES;

    #[test]
    fn clause_list_is_taken_as_is() {
        let a = AlterSpec::parse(MY, "t", "ADD COLUMN x INT, DROP COLUMN y").unwrap();
        assert_eq!(a.clauses, "ADD COLUMN x INT, DROP COLUMN y");
        assert!(a.renames.is_empty());
    }

    #[test]
    fn statement_header_is_stripped_and_checked() {
        let a = AlterSpec::parse(MY, "orders", "ALTER TABLE `orders` ADD INDEX (a);").unwrap();
        assert_eq!(a.clauses, "ADD INDEX (a)");
        let a = AlterSpec::parse(
            PG,
            "public.orders",
            "alter table public.orders add column z int",
        )
        .unwrap();
        assert_eq!(a.clauses, "add column z int");
        let e = AlterSpec::parse(MY, "orders", "ALTER TABLE other ADD x INT").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
    }

    #[test]
    fn renames_are_found_in_every_form() {
        let a = AlterSpec::parse(
            MY,
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
        let p = AlterSpec::parse(PG, "t", "RENAME a TO b").unwrap();
        assert_eq!(p.renames, vec![("a".into(), "b".into())]);
        let p = AlterSpec::parse(PG, "t", "RENAME CONSTRAINT a TO b").unwrap();
        assert!(p.renames.is_empty());
    }

    #[test]
    fn postgres_alter_column_is_a_clause() {
        let a = AlterSpec::parse(PG, "t", "ALTER COLUMN a TYPE bigint, ADD COLUMN d int").unwrap();
        assert_eq!(a.clauses, "ALTER COLUMN a TYPE bigint, ADD COLUMN d int");
    }

    #[test]
    fn table_rename_is_refused() {
        assert!(AlterSpec::parse(MY, "t", "RENAME TO t2").is_err());
        assert!(AlterSpec::parse(PG, "t", "RENAME TO t2").is_err());
        // A rename inside a string literal is not a rename.
        let a = AlterSpec::parse(MY, "t", "COMMENT 'CHANGE a b'").unwrap();
        assert!(a.renames.is_empty());
    }

    #[test]
    fn commas_inside_parentheses_do_not_split() {
        let a = AlterSpec::parse(MY, "t", "ADD INDEX i (a, b), CHANGE x y INT").unwrap();
        assert_eq!(a.renames, vec![("x".into(), "y".into())]);
    }

    #[test]
    fn dropped_and_added_again_is_a_new_column() {
        let new = |kind, text| AlterSpec::parse(kind, "t", text).unwrap().new_columns;
        assert_eq!(
            new(MY, "DROP COLUMN c1, ADD COLUMN c1 INT NOT NULL DEFAULT 47"),
            vec!["c1".to_string()]
        );
        // Either order, without COLUMN, with IF [NOT] EXISTS, quoted, any case.
        assert_eq!(
            new(MY, "ADD `C1` INT, DROP IF EXISTS c1"),
            vec!["C1".to_string()]
        );
        assert_eq!(
            new(MY, "DROP c1, ADD COLUMN IF NOT EXISTS c1 INT"),
            vec!["c1".to_string()]
        );
        // Renamed away, then added again.
        assert_eq!(
            new(MY, "CHANGE c1 c2 INT, ADD c1 INT DEFAULT 9"),
            vec!["c1".to_string()]
        );
        assert_eq!(
            new(MY, "RENAME COLUMN c1 TO c2, ADD c1 INT"),
            vec!["c1".to_string()]
        );
        // The parenthesized list of new columns.
        assert_eq!(
            new(MY, "DROP b, ADD (a DECIMAL(10,2), b INT DEFAULT 1)"),
            vec!["b".to_string()]
        );
        assert_eq!(
            new(PG, "DROP COLUMN c1 CASCADE, ADD c1 int DEFAULT 47"),
            vec!["c1".to_string()]
        );
        // Not a re-added column: a rename onto a dropped name, indexes and keys of the
        // same name, a column that is only changed.
        assert!(new(MY, "DROP c1, CHANGE c3 c1 INT").is_empty());
        assert!(new(MY, "DROP INDEX c1, ADD INDEX c1 (c1)").is_empty());
        assert!(new(MY, "DROP PRIMARY KEY, ADD PRIMARY KEY (id, i)").is_empty());
        assert!(new(MY, "MODIFY c1 BIGINT, ADD c2 INT").is_empty());
        assert!(new(PG, "DROP CONSTRAINT c1, ADD CONSTRAINT c1 CHECK (c1 > 0)").is_empty());
    }

    #[test]
    fn auto_increment_table_option_is_found() {
        let ai = |text| AlterSpec::parse(MY, "t", text).unwrap().auto_increment;
        assert_eq!(ai("AUTO_INCREMENT=500"), Some(500));
        assert_eq!(ai("ADD COLUMN x INT, AUTO_INCREMENT = 7"), Some(7));
        assert_eq!(ai("ENGINE=InnoDB auto_increment 42"), Some(42));
        assert_eq!(ai("MODIFY id BIGINT NOT NULL AUTO_INCREMENT"), None);
        assert_eq!(ai("ADD COLUMN n INT AUTO_INCREMENT, ADD KEY (n)"), None);
        assert_eq!(ai("COMMENT 'AUTO_INCREMENT=5'"), None);
        assert_eq!(
            AlterSpec::parse(PG, "t", "ADD COLUMN x int")
                .unwrap()
                .auto_increment,
            None
        );
    }
}
