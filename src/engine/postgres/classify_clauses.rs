//! PostgreSQL clauses sqlparser does not parse, recognized on the sqlparser tokenizer's
//! tokens: `ALTER [COLUMN] c SET STATISTICS | SET STORAGE | SET COMPRESSION | SET (…) |
//! RESET (…) | DROP EXPRESSION`, the identity options (`SET GENERATED …`, `RESTART`,
//! `SET INCREMENT BY …` and the other sequence options, `DROP IDENTITY`), `ALTER
//! CONSTRAINT`, `CLUSTER ON`, `SET WITHOUT CLUSTER`, `SET WITHOUT OIDS`, `SET ACCESS
//! METHOD`, `SET TABLESPACE`, the table's storage parameters (`SET (…)`, `RESET (…)`, with
//! `toast.` names) and `[ENABLE|DISABLE|FORCE|NO FORCE] ROW LEVEL SECURITY`.
//!
//! Two clauses sqlparser reads only without a part that does not change the plan are given
//! to it without that part, and keep the user's text: `ALTER COLUMN c TYPE t COLLATE x`
//! (without `COLLATE x`: a collation never rewrites the table, it only rebuilds the
//! column's indexes) and `ADD … UNIQUE|PRIMARY KEY|EXCLUDE (…) WITH (storage parameters)`
//! (without `WITH (…)`). The other clauses go to sqlparser as they are.

use crate::ddl::Source;
use crate::error::{Error, ErrorKind, Result};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// One top-level clause of the ALTER.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// For sqlparser: the text to parse (`sql`), and the user's text when it differs.
    Parsed { sql: String, text: Option<String> },
    /// Recognized here.
    Read(PgClause),
}

/// A clause recognized from its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct PgClause {
    pub kind: ClauseKind,
    /// The column it acts on (`ALTER COLUMN c …`), as PostgreSQL names it.
    pub column: Option<String>,
    /// The clause as the user wrote it.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClauseKind {
    /// `ALTER COLUMN c SET STATISTICS n`.
    SetStatistics,
    /// `ALTER COLUMN c SET (…)` / `RESET (…)`: the column's attribute options.
    ColumnOptions,
    /// `ALTER COLUMN c SET STORAGE …`.
    SetStorage,
    /// `ALTER COLUMN c SET COMPRESSION …`.
    SetCompression,
    /// `ALTER COLUMN c SET GENERATED …` / `RESTART` / `SET <sequence option>` (one or more)
    /// / `DROP IDENTITY [IF EXISTS]`.
    Identity,
    /// `ALTER COLUMN c DROP EXPRESSION [IF EXISTS]`.
    DropExpression,
    /// `ALTER CONSTRAINT name [NOT] DEFERRABLE …`.
    AlterConstraint,
    /// `CLUSTER ON index`.
    ClusterOn,
    /// `SET WITHOUT CLUSTER`.
    SetWithoutCluster,
    /// `SET WITHOUT OIDS` (a no-op since PostgreSQL 12).
    SetWithoutOids,
    /// `SET ACCESS METHOD name`.
    SetAccessMethod(String),
    /// `SET TABLESPACE name`.
    SetTablespace(String),
    /// The table's storage parameters: `SET (…)` / `RESET (…)`, with the names set.
    StorageParameters(Vec<String>),
    /// `ENABLE | DISABLE | FORCE | NO FORCE ROW LEVEL SECURITY`.
    RowSecurity,
}

fn bad(msg: String) -> Error {
    Error::new(
        ErrorKind::BadInput,
        format!("cannot parse the ALTER: {msg}"),
    )
    .with_hint(
        "give ALTER TABLE clauses (ADD COLUMN …, ALTER COLUMN …) or one CREATE INDEX statement",
    )
}

/// An unquoted word, upper case.
fn keyword(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// A name as PostgreSQL reads it: unquoted names fold to lower case.
fn name(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// Split an `ALTER TABLE [IF EXISTS] [ONLY] name clause, clause, …` statement into its
/// clauses: the head (`ALTER TABLE name`) and the clauses, each read here or left for
/// sqlparser. A text that is not such a statement is one `Parsed` clause.
pub fn split(sql: &str) -> Result<(String, Vec<Clause>)> {
    let src = Source::new(sql);
    let sig: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
        .collect();
    let whole = || {
        Ok((
            String::new(),
            vec![Clause::Parsed {
                sql: sql.to_string(),
                text: None,
            }],
        ))
    };
    let kw = |i: usize| sig.get(i).and_then(|t| keyword(&t.token));
    if kw(0).as_deref() != Some("ALTER") || kw(1).as_deref() != Some("TABLE") {
        return whole();
    }
    let mut i = 2;
    if kw(i).as_deref() == Some("IF") && kw(i + 1).as_deref() == Some("EXISTS") {
        i += 2;
    }
    if kw(i).as_deref() == Some("ONLY") {
        i += 1;
    }
    i += 1;
    while sig.get(i).map(|t| &t.token) == Some(&Token::Period) {
        i += 2;
    }
    if i >= sig.len() {
        return whole();
    }
    let head = src.text(&sig[0], &sig[i - 1]);
    let mut clauses: Vec<&[TokenWithSpan]> = Vec::new();
    let mut depth = 0i32;
    let mut start = i;
    for (j, t) in sig.iter().enumerate().skip(i) {
        match t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth -= 1,
            Token::Comma if depth == 0 => {
                clauses.push(&sig[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    clauses.push(&sig[start..]);
    let out = clauses
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| clause(&src, c))
        .collect();
    Ok((head, out))
}

/// The parenthesized list at `i` (`(a = 1, toast.b = 2)`): the names it sets, and the
/// index after `)`.
fn option_names(c: &[TokenWithSpan], i: usize) -> Option<(Vec<String>, usize)> {
    if c.get(i).map(|t| &t.token) != Some(&Token::LParen) {
        return None;
    }
    let mut names = Vec::new();
    let mut depth = 0;
    let mut expect_name = true;
    let mut cur = String::new();
    for (j, t) in c.iter().enumerate().skip(i) {
        match &t.token {
            Token::LParen => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    if !cur.is_empty() {
                        names.push(std::mem::take(&mut cur));
                    }
                    return Some((names, j + 1));
                }
            }
            _ => {}
        }
        if depth != 1 {
            continue;
        }
        match &t.token {
            Token::Comma => {
                if !cur.is_empty() {
                    names.push(std::mem::take(&mut cur));
                }
                expect_name = true;
            }
            Token::Eq => expect_name = false,
            Token::Period if expect_name => cur.push('.'),
            tok if expect_name => cur.push_str(&name(tok)?),
            _ => {}
        }
    }
    None
}

/// One clause: read it, or leave it for sqlparser (perhaps without a part it cannot read).
fn clause(src: &Source, c: &[TokenWithSpan]) -> Clause {
    let text = src.text(&c[0], &c[c.len() - 1]);
    let kw = |i: usize| c.get(i).and_then(|t| keyword(&t.token));
    let read = |kind: ClauseKind, column: Option<String>| {
        Clause::Read(PgClause {
            kind,
            column,
            text: text.clone(),
        })
    };
    let parsed = || Clause::Parsed {
        sql: text.clone(),
        text: None,
    };
    let first = kw(0).unwrap_or_default();
    match first.as_str() {
        "ALTER" if kw(1).as_deref() == Some("CONSTRAINT") => {
            return read(ClauseKind::AlterConstraint, None)
        }
        "ALTER" => {
            // ALTER [COLUMN] c …
            let at = if kw(1).as_deref() == Some("COLUMN") {
                2
            } else {
                1
            };
            let Some(col) = c.get(at).and_then(|t| name(&t.token)) else {
                return parsed();
            };
            let k = at + 1;
            let col = Some(col);
            let kind = match (kw(k).as_deref(), kw(k + 1).as_deref()) {
                (Some("SET"), Some("STATISTICS")) => Some(ClauseKind::SetStatistics),
                (Some("SET"), Some("STORAGE")) => Some(ClauseKind::SetStorage),
                (Some("SET"), Some("COMPRESSION")) => Some(ClauseKind::SetCompression),
                (Some("SET" | "RESET"), None)
                    if c.get(k + 1).map(|t| &t.token) == Some(&Token::LParen) =>
                {
                    Some(ClauseKind::ColumnOptions)
                }
                (Some("DROP"), Some("IDENTITY")) => Some(ClauseKind::Identity),
                (Some("DROP"), Some("EXPRESSION")) => Some(ClauseKind::DropExpression),
                (Some("RESTART"), _) => Some(ClauseKind::Identity),
                (
                    Some("SET"),
                    Some(
                        "GENERATED" | "INCREMENT" | "START" | "MINVALUE" | "MAXVALUE" | "NO"
                        | "CACHE" | "CYCLE" | "OWNED" | "SEQUENCE",
                    ),
                ) => Some(ClauseKind::Identity),
                _ => None,
            };
            if let Some(kind) = kind {
                return read(kind, col);
            }
            // TYPE … COLLATE x: sqlparser reads the type change without the collation.
            let is_type = (k..k + 3).any(|j| kw(j).as_deref() == Some("TYPE"));
            if is_type {
                if let Some(j) = (k..c.len()).find(|&j| kw(j).as_deref() == Some("COLLATE")) {
                    if j + 1 < c.len() {
                        return Clause::Parsed {
                            sql: without(src, c, j, j + 1),
                            text: Some(text.clone()),
                        };
                    }
                }
            }
        }
        "ADD" => {
            // ADD [CONSTRAINT n] UNIQUE|PRIMARY KEY|EXCLUDE … WITH (…)
            let index_backed = c.iter().take(5).any(|t| {
                matches!(
                    keyword(&t.token).as_deref(),
                    Some("UNIQUE" | "PRIMARY" | "EXCLUDE")
                )
            });
            let mut depth = 0;
            for (j, t) in c.iter().enumerate() {
                match t.token {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    _ => {}
                }
                if index_backed && depth == 0 && keyword(&t.token).as_deref() == Some("WITH") {
                    if let Some((_, end)) = option_names(c, j + 1) {
                        return Clause::Parsed {
                            sql: without(src, c, j, end - 1),
                            text: Some(text.clone()),
                        };
                    }
                }
            }
        }
        "CLUSTER" if kw(1).as_deref() == Some("ON") => return read(ClauseKind::ClusterOn, None),
        "SET" => match kw(1).as_deref() {
            Some("WITHOUT") if kw(2).as_deref() == Some("CLUSTER") => {
                return read(ClauseKind::SetWithoutCluster, None)
            }
            Some("WITHOUT") if kw(2).as_deref() == Some("OIDS") => {
                return read(ClauseKind::SetWithoutOids, None)
            }
            Some("ACCESS") if kw(2).as_deref() == Some("METHOD") => {
                if let Some(am) = c.get(3).and_then(|t| name(&t.token)) {
                    return read(ClauseKind::SetAccessMethod(am), None);
                }
            }
            Some("TABLESPACE") => {
                if let Some(ts) = c.get(2).and_then(|t| name(&t.token)) {
                    return read(ClauseKind::SetTablespace(ts), None);
                }
            }
            _ => {
                if let Some((names, end)) = option_names(c, 1) {
                    if end == c.len() {
                        return read(ClauseKind::StorageParameters(names), None);
                    }
                }
            }
        },
        "RESET" => {
            if let Some((names, end)) = option_names(c, 1) {
                if end == c.len() {
                    return read(ClauseKind::StorageParameters(names), None);
                }
            }
        }
        "ENABLE" | "DISABLE" | "FORCE" | "NO" => {
            let at = if first == "NO" { 2 } else { 1 };
            if (first != "NO" || kw(1).as_deref() == Some("FORCE"))
                && kw(at).as_deref() == Some("ROW")
                && kw(at + 1).as_deref() == Some("LEVEL")
                && kw(at + 2).as_deref() == Some("SECURITY")
            {
                return read(ClauseKind::RowSecurity, None);
            }
        }
        _ => {}
    }
    parsed()
}

/// The clause's text without its tokens `from..=to`.
fn without(src: &Source, c: &[TokenWithSpan], from: usize, to: usize) -> String {
    let start = src.offset(c[0].span.start);
    let cut = src.offset(c[from].span.start);
    let resume = src.offset(c[to].span.end);
    let end = src.offset(c[c.len() - 1].span.end);
    format!(
        "{} {}",
        src.sql[start..cut].trim_end(),
        src.sql[resume.min(end)..end].trim_start()
    )
    .trim()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clauses(sql: &str) -> Vec<Clause> {
        split(&format!("ALTER TABLE \"s\".t {sql}")).unwrap().1
    }

    fn kind(c: &Clause) -> Option<(ClauseKind, Option<String>)> {
        match c {
            Clause::Read(p) => Some((p.kind.clone(), p.column.clone())),
            Clause::Parsed { .. } => None,
        }
    }

    #[test]
    fn clauses_sqlparser_cannot_read_are_recognized() {
        let c = clauses("ALTER COLUMN V SET STATISTICS 500, ALTER \"Tx\" SET STORAGE EXTERNAL, ALTER COLUMN tx SET COMPRESSION lz4, ALTER COLUMN c SET (n_distinct = 10), ALTER COLUMN c RESET (n_distinct)");
        let k: Vec<_> = c.iter().map(kind).collect();
        assert_eq!(
            k,
            vec![
                Some((ClauseKind::SetStatistics, Some("v".into()))),
                Some((ClauseKind::SetStorage, Some("Tx".into()))),
                Some((ClauseKind::SetCompression, Some("tx".into()))),
                Some((ClauseKind::ColumnOptions, Some("c".into()))),
                Some((ClauseKind::ColumnOptions, Some("c".into()))),
            ]
        );
        for s in [
            "ALTER COLUMN id RESTART WITH 200000",
            "ALTER COLUMN id RESTART",
            "ALTER COLUMN id SET INCREMENT BY 10",
            "ALTER COLUMN id DROP IDENTITY IF EXISTS",
            "ALTER COLUMN id SET GENERATED ALWAYS",
            "ALTER id SET GENERATED BY DEFAULT SET INCREMENT 2 RESTART",
        ] {
            assert_eq!(
                kind(&clauses(s)[0]),
                Some((ClauseKind::Identity, Some("id".into()))),
                "{s}"
            );
        }
        let k: Vec<_> = clauses("ALTER COLUMN g DROP EXPRESSION, ALTER CONSTRAINT f DEFERRABLE INITIALLY DEFERRED, CLUSTER ON i, SET WITHOUT CLUSTER, SET WITHOUT OIDS, SET ACCESS METHOD heap, SET TABLESPACE \"Fast\", SET (fillfactor = 70, toast.autovacuum_enabled = false), RESET (fillfactor), NO FORCE ROW LEVEL SECURITY, ENABLE ROW LEVEL SECURITY")
            .iter()
            .map(|c| kind(c).map(|k| k.0))
            .collect();
        assert_eq!(
            k,
            vec![
                Some(ClauseKind::DropExpression),
                Some(ClauseKind::AlterConstraint),
                Some(ClauseKind::ClusterOn),
                Some(ClauseKind::SetWithoutCluster),
                Some(ClauseKind::SetWithoutOids),
                Some(ClauseKind::SetAccessMethod("heap".into())),
                Some(ClauseKind::SetTablespace("Fast".into())),
                Some(ClauseKind::StorageParameters(vec![
                    "fillfactor".into(),
                    "toast.autovacuum_enabled".into()
                ])),
                Some(ClauseKind::StorageParameters(vec!["fillfactor".into()])),
                Some(ClauseKind::RowSecurity),
                Some(ClauseKind::RowSecurity),
            ]
        );
    }

    #[test]
    fn parts_sqlparser_cannot_read_are_left_out_for_it() {
        let c = clauses("ALTER COLUMN v TYPE varchar(100) COLLATE \"C\" USING v::varchar(100), ADD CONSTRAINT u UNIQUE (n) WITH (fillfactor = 70), ADD COLUMN a text DEFAULT 'x, y', ALTER COLUMN v SET DEFAULT 'SET (a)'");
        assert_eq!(
            c,
            vec![
                Clause::Parsed {
                    sql: "ALTER COLUMN v TYPE varchar(100) USING v::varchar(100)".into(),
                    text: Some(
                        "ALTER COLUMN v TYPE varchar(100) COLLATE \"C\" USING v::varchar(100)"
                            .into()
                    ),
                },
                Clause::Parsed {
                    sql: "ADD CONSTRAINT u UNIQUE (n)".into(),
                    text: Some("ADD CONSTRAINT u UNIQUE (n) WITH (fillfactor = 70)".into()),
                },
                Clause::Parsed {
                    sql: "ADD COLUMN a text DEFAULT 'x, y'".into(),
                    text: None
                },
                Clause::Parsed {
                    sql: "ALTER COLUMN v SET DEFAULT 'SET (a)'".into(),
                    text: None
                },
            ]
        );
    }
}
