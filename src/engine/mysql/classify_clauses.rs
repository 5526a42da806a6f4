//! MySQL/MariaDB clauses sqlparser does not parse — `RENAME INDEX|KEY`, `FORCE`, table
//! options (`ENGINE=`, `ROW_FORMAT=`, `KEY_BLOCK_SIZE=`, `[DEFAULT] CHARSET=`, `COLLATE=`,
//! `COMMENT=`, `AUTO_INCREMENT=`, `STATS_…=`, several in one clause separated by spaces)
//! `CONVERT TO CHARACTER SET` and `ALTER INDEX|KEY name [NOT] IGNORED` (MariaDB) —
//! recognized on the sqlparser tokenizer's tokens. The
//! other clauses go on to sqlparser as before.

use crate::ddl::Source;
use crate::error::{Error, ErrorKind, Result};
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// One top-level clause of the ALTER.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// For sqlparser: the clause's text.
    Parsed(String),
    /// `ALGORITHM=…` / `LOCK=…`: how to run it, not a change.
    Hint,
    /// Recognized here: one or more table options / clauses, in order.
    Options(Vec<TableOpt>),
}

/// A clause or table option recognized from its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TableOpt {
    pub kind: OptKind,
    /// The option as the user wrote it, for the recommended statements.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OptKind {
    RenameIndex {
        from: String,
        to: String,
    },
    Force,
    /// `ALTER INDEX|KEY name [NOT] IGNORED` (MariaDB).
    IgnoreIndex(String),
    Engine(String),
    RowFormat(String),
    KeyBlockSize,
    /// `CONVERT TO CHARACTER SET cs [COLLATE c]`; `cs` may be `default`.
    Convert {
        charset: String,
        collation: Option<String>,
    },
    /// The table's default character set.
    DefaultCharset(String),
    /// The table's default collation.
    DefaultCollate(String),
    AutoIncrement,
    Comment,
    /// `STATS_PERSISTENT`, `STATS_AUTO_RECALC`, `STATS_SAMPLE_PAGES`.
    Stats,
    /// Options InnoDB only records (`PACK_KEYS`, `CHECKSUM`, `MAX_ROWS`, `MIN_ROWS`,
    /// `AVG_ROW_LENGTH`, `DELAY_KEY_WRITE`).
    Recorded,
    /// Any other `NAME [=] value` table option: not classified.
    Other(String),
}

/// Table options this recognizer reads as `NAME [=] value` (besides the character set,
/// collation and the ones with a kind of their own).
const OTHER_OPTIONS: &[&str] = &[
    "AVG_ROW_LENGTH",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "DELAY_KEY_WRITE",
    "INSERT_METHOD",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "TRANSACTIONAL",
    "ENCRYPTED",
    "ENCRYPTION",
    "ENCRYPTION_KEY_ID",
    "COMPRESSION",
    "IETF_QUOTES",
    "SEQUENCE",
    "CONNECTION",
    "PASSWORD",
    "TABLESPACE",
];

/// Words that start a clause this recognizer reads.
fn starts_options(first: &str, second: Option<&str>) -> bool {
    match first {
        "RENAME" | "ALTER" => matches!(second, Some("INDEX" | "KEY")),
        "FORCE" | "ENGINE" | "ROW_FORMAT" | "KEY_BLOCK_SIZE" | "CONVERT" | "CHARACTER"
        | "CHARSET" | "COLLATE" | "COMMENT" | "AUTO_INCREMENT" => true,
        "DEFAULT" => matches!(second, Some("CHARACTER" | "CHARSET" | "COLLATE")),
        w => w.starts_with("STATS_") || OTHER_OPTIONS.contains(&w),
    }
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::BadInput, format!("cannot parse the ALTER: {msg}"))
        .with_hint("check the clause's syntax (e.g. ENGINE=InnoDB, RENAME INDEX a TO b, CONVERT TO CHARACTER SET utf8mb4)")
}

/// An unquoted word, upper case.
fn keyword(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// A name or value: a word (quoted or not), a number or a string.
fn value(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(w.value.clone()),
        Token::Number(n, _) => Some(n.clone()),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Split an `ALTER TABLE name clause, clause, …` statement into its clauses. A text that
/// is not such a statement is one `Parsed` clause (sqlparser will say what is wrong).
pub fn split(sql: &str) -> Result<(String, Vec<Clause>)> {
    let src = Source::new(sql);
    let sig: Vec<TokenWithSpan> = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
        .collect();
    let whole = || Ok((String::new(), vec![Clause::Parsed(sql.to_string())]));
    // ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] name[.name]
    let kw = |i: usize| sig.get(i).and_then(|t| keyword(&t.token));
    let mut i = 0;
    if kw(0).as_deref() != Some("ALTER") {
        return whole();
    }
    i += 1;
    while matches!(kw(i).as_deref(), Some("ONLINE" | "IGNORE")) {
        i += 1;
    }
    if kw(i).as_deref() != Some("TABLE") {
        return whole();
    }
    i += 1;
    if kw(i).as_deref() == Some("IF") && kw(i + 1).as_deref() == Some("EXISTS") {
        i += 2;
    }
    i += 1;
    while sig.get(i).map(|t| &t.token) == Some(&Token::Period) {
        i += 2;
    }
    if i > sig.len() {
        return whole();
    }
    let head = src.text(&sig[0], &sig[i - 1]);
    let mut clauses: Vec<&[TokenWithSpan]> = Vec::new();
    let mut depth = 0i32;
    let mut start = i;
    for (j, t) in sig.iter().enumerate().skip(i) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                clauses.push(&sig[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    clauses.push(&sig[start..]);
    let mut out = Vec::new();
    for c in clauses.into_iter().filter(|c| !c.is_empty()) {
        let first = keyword(&c[0].token).unwrap_or_default();
        let second = c.get(1).and_then(|t| keyword(&t.token));
        if matches!(first.as_str(), "ALGORITHM" | "LOCK") {
            out.push(Clause::Hint);
        } else if starts_options(&first, second.as_deref()) {
            out.push(Clause::Options(options(&src, c)?));
        } else {
            out.push(Clause::Parsed(src.text(&c[0], &c[c.len() - 1])));
        }
    }
    Ok((head, out))
}

/// Read `c` as a sequence of table options / clauses.
fn options(src: &Source, c: &[TokenWithSpan]) -> Result<Vec<TableOpt>> {
    let kw = |i: usize| c.get(i).and_then(|t| keyword(&t.token));
    let val = |i: usize| c.get(i).and_then(|t| value(&t.token));
    let missing = |what: &str, i: usize| {
        let upto = i.min(c.len());
        let before = if upto == 0 {
            String::new()
        } else {
            src.text(&c[0], &c[upto - 1])
        };
        bad(format!("expected {what} after `{before}`"))
    };
    let mut out = Vec::new();
    let mut i = 0;
    // `[=] value` at i: the value and the index after it.
    let assigned = |i: usize, what: &str| -> Result<(String, usize)> {
        let j = if c.get(i).map(|t| &t.token) == Some(&Token::Eq) {
            i + 1
        } else {
            i
        };
        val(j).map(|v| (v, j + 1)).ok_or_else(|| missing(what, j))
    };
    while i < c.len() {
        let start = i;
        let word = kw(i).ok_or_else(|| bad(format!("unexpected `{}`", c[i].token)))?;
        let (kind, next) = match word.as_str() {
            "RENAME" => {
                // RENAME INDEX|KEY old TO new
                let (from, to) = (val(i + 2), val(i + 4));
                match (from, kw(i + 3).as_deref(), to) {
                    (Some(from), Some("TO"), Some(to)) => {
                        (OptKind::RenameIndex { from, to }, i + 5)
                    }
                    _ => return Err(missing("`old TO new`", i + 2)),
                }
            }
            "FORCE" => (OptKind::Force, i + 1),
            "ALTER" => {
                // ALTER INDEX|KEY name [NOT] IGNORED
                let at = if kw(i + 3).as_deref() == Some("NOT") {
                    i + 4
                } else {
                    i + 3
                };
                match (val(i + 2), kw(at).as_deref()) {
                    (Some(name), Some("IGNORED")) => (OptKind::IgnoreIndex(name), at + 1),
                    _ => return Err(missing("`name [NOT] IGNORED`", i + 2)),
                }
            }
            "CONVERT" => {
                // CONVERT TO CHARACTER SET cs | CONVERT TO CHARSET cs [COLLATE [=] c]
                if kw(i + 1).as_deref() != Some("TO") {
                    return Err(missing("TO", i + 1));
                }
                let j = match (kw(i + 2).as_deref(), kw(i + 3).as_deref()) {
                    (Some("CHARACTER"), Some("SET")) => i + 4,
                    (Some("CHARSET"), _) => i + 3,
                    _ => return Err(missing("CHARACTER SET", i + 2)),
                };
                let (charset, mut j) = assigned(j, "a character set")?;
                let mut collation = None;
                if kw(j).as_deref() == Some("COLLATE") {
                    let (c, k) = assigned(j + 1, "a collation")?;
                    collation = Some(c);
                    j = k;
                }
                (OptKind::Convert { charset, collation }, j)
            }
            _ => {
                // [DEFAULT] NAME [=] value
                let j = if word == "DEFAULT" { i + 1 } else { i };
                let name = kw(j).ok_or_else(|| missing("a table option", j))?;
                let (name, j) = if name == "CHARACTER" && kw(j + 1).as_deref() == Some("SET") {
                    ("CHARSET".to_string(), j + 2)
                } else {
                    (name, j + 1)
                };
                let (v, next) = assigned(j, "a value")?;
                let kind = match name.as_str() {
                    "ENGINE" => OptKind::Engine(v),
                    "ROW_FORMAT" => OptKind::RowFormat(v),
                    "KEY_BLOCK_SIZE" => OptKind::KeyBlockSize,
                    "CHARSET" => OptKind::DefaultCharset(v),
                    "COLLATE" => OptKind::DefaultCollate(v),
                    "AUTO_INCREMENT" => OptKind::AutoIncrement,
                    "COMMENT" => OptKind::Comment,
                    n if n.starts_with("STATS_") => OptKind::Stats,
                    "PACK_KEYS" | "CHECKSUM" | "TABLE_CHECKSUM" | "MAX_ROWS" | "MIN_ROWS"
                    | "AVG_ROW_LENGTH" | "DELAY_KEY_WRITE" => OptKind::Recorded,
                    n if OTHER_OPTIONS.contains(&n) => OptKind::Other(n.to_string()),
                    n => return Err(bad(format!("unknown table option `{n}`"))),
                };
                (kind, next)
            }
        };
        out.push(TableOpt {
            kind,
            text: src.text(&c[start], &c[next - 1]),
        });
        i = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(sql: &str) -> Vec<Clause> {
        split(&format!("ALTER TABLE `t` {sql}")).unwrap().1
    }

    #[test]
    fn table_options_and_clauses_are_recognized() {
        let c = opts("ENGINE = InnoDB ROW_FORMAT=DYNAMIC, ADD COLUMN x INT DEFAULT 'a,b', RENAME KEY `a` TO b, ALGORITHM=INPLACE");
        assert_eq!(c.len(), 4);
        match &c[0] {
            Clause::Options(o) => {
                assert_eq!(o[0].kind, OptKind::Engine("InnoDB".into()));
                assert_eq!(o[0].text, "ENGINE = InnoDB");
                assert_eq!(o[1].kind, OptKind::RowFormat("DYNAMIC".into()));
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(
            c[1],
            Clause::Parsed("ADD COLUMN x INT DEFAULT 'a,b'".into())
        );
        match &c[2] {
            Clause::Options(o) => {
                assert_eq!(
                    o[0].kind,
                    OptKind::RenameIndex {
                        from: "a".into(),
                        to: "b".into()
                    }
                );
                assert_eq!(o[0].text, "RENAME KEY `a` TO b");
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(c[3], Clause::Hint);
        let c = opts("CONVERT TO CHARSET utf8mb4 COLLATE = utf8mb4_bin, DEFAULT CHARACTER SET latin1, COMMENT 'it''s', AUTO_INCREMENT 5, FORCE");
        let kinds: Vec<OptKind> = c
            .iter()
            .flat_map(|c| match c {
                Clause::Options(o) => o.iter().map(|o| o.kind.clone()).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                OptKind::Convert {
                    charset: "utf8mb4".into(),
                    collation: Some("utf8mb4_bin".into())
                },
                OptKind::DefaultCharset("latin1".into()),
                OptKind::Comment,
                OptKind::AutoIncrement,
                OptKind::Force
            ]
        );
        let c2 = opts("ALTER INDEX `i` IGNORED, ALTER KEY j NOT IGNORED, PACK_KEYS = 1 CHECKSUM=1, MAX_ROWS 10, ALTER COLUMN x SET DEFAULT 1");
        assert_eq!(c2.len(), 5);
        match (&c2[0], &c2[1], &c2[2]) {
            (Clause::Options(a), Clause::Options(b), Clause::Options(d)) => {
                assert_eq!(a[0].kind, OptKind::IgnoreIndex("i".into()));
                assert_eq!(b[0].kind, OptKind::IgnoreIndex("j".into()));
                assert_eq!(b[0].text, "ALTER KEY j NOT IGNORED");
                assert_eq!(d.len(), 2);
                assert!(d.iter().all(|o| o.kind == OptKind::Recorded));
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(c2[4], Clause::Parsed("ALTER COLUMN x SET DEFAULT 1".into()));
        match &c[2] {
            Clause::Options(o) => assert_eq!(o[0].text, "COMMENT 'it''s'"),
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn broken_options_are_bad_input() {
        for bad in [
            "ENGINE",
            "RENAME INDEX a b",
            "CONVERT TO utf8mb4",
            "ROW_FORMAT=",
            "ALTER INDEX i",
            "DEFAULT CHARSET",
            "ENGINE=InnoDB ROW_FORMAT",
        ] {
            let e = split(&format!("ALTER TABLE t {bad}")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadInput, "{bad}");
        }
    }
}
