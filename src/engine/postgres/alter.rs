//! What the PostgreSQL engine reads from the ALTER clauses itself:
//! * `ALTER [COLUMN] c [SET DATA] TYPE t USING expr`: the copy must compute `expr`, as the
//!   in-place ALTER would;
//! * identity columns whose sequence value the ALTER sets (`RESTART`, a new identity):
//!   the cut-over keeps that value instead of carrying the original's over;
//! * index and constraint names: `LIKE` gives the shadow's indexes new names, so a clause
//!   naming one of the original's (`DROP CONSTRAINT t_pkey`) is pointed at the shadow's.

use super::sql::quote;
use crate::error::{Error, ErrorKind, Result};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

fn tokens(text: &str) -> Result<Vec<Token>> {
    Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .map_err(|e| {
            Error::new(ErrorKind::InvalidAlter, format!("cannot read --alter: {e}"))
                .with_hint("check the quoting in the ALTER text")
        })
}

fn is_kw(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.keyword == k)
}

/// Split into top-level clauses (commas at depth 0), whitespace kept.
fn clauses(toks: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth -= 1,
            Token::Comma if depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[start..]);
    out
}

fn ident(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        // Unquoted identifiers fold to lower case in PostgreSQL.
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// (column, USING expression) for every type change with USING.
pub fn using_expressions(clauses_text: &str) -> Result<Vec<(String, String)>> {
    let toks = tokens(clauses_text)?;
    let mut out = Vec::new();
    for c in clauses(&toks) {
        let sig: Vec<usize> = (0..c.len())
            .filter(|&i| !matches!(c[i], Token::Whitespace(_)))
            .collect();
        if sig.is_empty() || !is_kw(&c[sig[0]], Keyword::ALTER) {
            continue;
        }
        let mut k = 1;
        if sig.len() > k && is_kw(&c[sig[k]], Keyword::COLUMN) {
            k += 1;
        }
        let Some(col) = sig.get(k).and_then(|&i| ident(&c[i])) else {
            continue;
        };
        let is_type = sig[k + 1..]
            .iter()
            .take(3)
            .any(|&i| is_kw(&c[i], Keyword::TYPE));
        if !is_type {
            continue;
        }
        if let Some(&u) = sig.iter().find(|&&i| is_kw(&c[i], Keyword::USING)) {
            let expr: String = c[u + 1..].iter().map(|t| t.to_string()).collect();
            out.push((col, expr.trim().to_string()));
        }
    }
    Ok(out)
}

/// Columns whose identity value the ALTER sets itself: `ALTER [COLUMN] c … RESTART …`
/// (also after `SET GENERATED …` / `SET INCREMENT …`) and `ALTER [COLUMN] c ADD
/// GENERATED … AS IDENTITY` (a new sequence, starting where its options say).
pub fn identity_set(clauses_text: &str) -> Result<Vec<String>> {
    let toks = tokens(clauses_text)?;
    let mut out = Vec::new();
    for c in clauses(&toks) {
        let sig: Vec<&Token> = c
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        if sig.is_empty() || !is_kw(sig[0], Keyword::ALTER) {
            continue;
        }
        let k = if sig.len() > 1 && is_kw(sig[1], Keyword::COLUMN) {
            2
        } else {
            1
        };
        let Some(col) = sig.get(k).and_then(|t| ident(t)) else {
            continue;
        };
        let rest = &sig[k + 1..];
        let restart = rest.iter().any(|t| is_kw(t, Keyword::RESTART));
        let new_identity = rest
            .windows(2)
            .any(|w| is_kw(w[0], Keyword::ADD) && is_kw(w[1], Keyword::GENERATED));
        if (restart || new_identity) && !out.contains(&col) {
            out.push(col);
        }
    }
    Ok(out)
}

/// Which triggers an `ENABLE/DISABLE … TRIGGER` clause names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TriggerTarget {
    Named(String),
    /// `USER`: every trigger that is not a constraint's.
    User,
    /// `ALL`: also the constraints' own triggers.
    All,
}

/// One `ENABLE [REPLICA | ALWAYS] TRIGGER …` / `DISABLE TRIGGER …` clause: the state it
/// gives (`pg_trigger.tgenabled`: `O` enabled, `D` disabled, `R` replica, `A` always).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TriggerChange {
    pub target: TriggerTarget,
    pub state: char,
}

/// Take the trigger clauses out of the ALTER: the shadow has no triggers (they are
/// carried over at the cut-over, with their state), so these clauses are applied there,
/// to the states carried. Returns the other clauses (empty when there are none) and the
/// trigger clauses in order.
pub fn split_trigger_clauses(clauses_text: &str) -> Result<(String, Vec<TriggerChange>)> {
    let toks = tokens(clauses_text)?;
    let mut rest: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for c in clauses(&toks) {
        let sig: Vec<&Token> = c
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        let (state, at) = match sig.as_slice() {
            [e, t, ..] if is_kw(e, Keyword::DISABLE) && is_kw(t, Keyword::TRIGGER) => ('D', 2),
            [e, t, ..] if is_kw(e, Keyword::ENABLE) && is_kw(t, Keyword::TRIGGER) => ('O', 2),
            [e, r, t, ..]
                if is_kw(e, Keyword::ENABLE)
                    && is_kw(r, Keyword::REPLICA)
                    && is_kw(t, Keyword::TRIGGER) =>
            {
                ('R', 3)
            }
            [e, a, t, ..]
                if is_kw(e, Keyword::ENABLE)
                    && is_kw(a, Keyword::ALWAYS)
                    && is_kw(t, Keyword::TRIGGER) =>
            {
                ('A', 3)
            }
            _ => {
                rest.push(c.iter().map(|t| t.to_string()).collect::<String>());
                continue;
            }
        };
        let target = match sig.get(at) {
            Some(t) if sig.len() == at + 1 && is_kw(t, Keyword::ALL) => TriggerTarget::All,
            Some(t) if sig.len() == at + 1 && is_kw(t, Keyword::USER) => TriggerTarget::User,
            Some(t) if sig.len() == at + 1 => match ident(t) {
                Some(name) => TriggerTarget::Named(name),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidAlter,
                        "cannot read the trigger name of an ENABLE/DISABLE TRIGGER clause",
                    ))
                }
            },
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidAlter,
                    "an ENABLE/DISABLE TRIGGER clause names one trigger, ALL or USER",
                ))
            }
        };
        changes.push(TriggerChange { target, state });
    }
    let rest: Vec<String> = rest
        .into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    Ok((rest.join(", "), changes))
}

/// The state of trigger `name` (state `state` on the original) after `changes`.
pub fn trigger_state_after(name: &str, state: char, changes: &[TriggerChange]) -> char {
    changes.iter().fold(state, |s, c| match &c.target {
        TriggerTarget::Named(n) if n == name => c.state,
        TriggerTarget::User | TriggerTarget::All => c.state,
        _ => s,
    })
}

/// Constraints the ALTER validates (`VALIDATE CONSTRAINT name`): they must hold for
/// every row, so the shadow keeps them for the copy.
pub fn validated_constraints(clauses_text: &str) -> Result<Vec<String>> {
    let toks = tokens(clauses_text)?;
    Ok(clauses(&toks)
        .into_iter()
        .filter_map(|c| {
            let sig: Vec<&Token> = c
                .iter()
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .collect();
            match sig.as_slice() {
                [v, k, name] if is_kw(v, Keyword::VALIDATE) && is_kw(k, Keyword::CONSTRAINT) => {
                    ident(name)
                }
                _ => None,
            }
        })
        .collect())
}

/// True when a clause sets the table's replica identity (`REPLICA IDENTITY …`): the
/// shadow then has the ALTER's, and the cut-over must not carry the original's over it.
pub fn sets_replica_identity(clauses_text: &str) -> Result<bool> {
    let toks = tokens(clauses_text)?;
    Ok(clauses(&toks).into_iter().any(|c| {
        let sig: Vec<&Token> = c
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        sig.len() >= 2 && is_kw(sig[0], Keyword::REPLICA) && is_kw(sig[1], Keyword::IDENTITY)
    }))
}

/// Rewrite names of the original's indexes/constraints (after CONSTRAINT, INDEX or ON)
/// to the shadow's names.
pub fn translate_names(clauses_text: &str, names: &[(String, String)]) -> Result<String> {
    let toks = tokens(clauses_text)?;
    let mut out = String::new();
    let mut prev_sig: Option<&Token> = None;
    for t in &toks {
        let mut text = t.to_string();
        if let (Some(p), Some(id)) = (prev_sig, ident(t)) {
            if is_kw(p, Keyword::CONSTRAINT) || is_kw(p, Keyword::INDEX) || is_kw(p, Keyword::ON) {
                if let Some((_, to)) = names.iter().find(|(from, _)| *from == id) {
                    text = quote(to);
                }
            }
        }
        if !matches!(t, Token::Whitespace(_)) {
            prev_sig = Some(t);
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn using_is_found_per_column() {
        let u = using_expressions(
            "ALTER COLUMN a TYPE int USING (a::int), alter b set data type numeric(10,2) using round(b, 2), ADD COLUMN c text, ALTER \"D\" TYPE bigint",
        )
        .unwrap();
        assert_eq!(
            u,
            vec![
                ("a".to_string(), "(a::int)".to_string()),
                ("b".to_string(), "round(b, 2)".to_string())
            ]
        );
    }

    #[test]
    fn identity_values_set_by_the_alter_are_found() {
        assert_eq!(
            identity_set(
                "ALTER COLUMN id RESTART WITH 190, alter \"Other\" set generated always restart, ALTER n ADD GENERATED ALWAYS AS IDENTITY (START WITH 7), ALTER COLUMN k SET INCREMENT BY 10, ADD COLUMN restart int"
            )
            .unwrap(),
            vec!["id".to_string(), "Other".to_string(), "n".to_string()]
        );
    }

    #[test]
    fn trigger_clauses_are_taken_out_and_applied_to_carried_states() {
        let (rest, ch) = split_trigger_clauses(
            "DISABLE TRIGGER t_touch, ADD COLUMN a int, enable always trigger \"Audit\", ENABLE REPLICA RULE r, ENABLE TRIGGER USER",
        )
        .unwrap();
        assert_eq!(rest, "ADD COLUMN a int, ENABLE REPLICA RULE r");
        assert_eq!(ch.len(), 3);
        assert_eq!(ch[0].target, TriggerTarget::Named("t_touch".into()));
        assert_eq!(
            ch[1],
            TriggerChange {
                target: TriggerTarget::Named("Audit".into()),
                state: 'A'
            }
        );
        assert_eq!(trigger_state_after("t_touch", 'O', &ch[..1]), 'D');
        assert_eq!(trigger_state_after("other", 'R', &ch[..2]), 'R');
        assert_eq!(trigger_state_after("Audit", 'O', &ch[..2]), 'A');
        assert_eq!(trigger_state_after("Audit", 'D', &ch), 'O');
        let (rest, ch) = split_trigger_clauses("DISABLE TRIGGER ALL").unwrap();
        assert_eq!(
            (rest.as_str(), ch[0].target.clone()),
            ("", TriggerTarget::All)
        );
        assert!(split_trigger_clauses("DISABLE TRIGGER a b").is_err());
    }

    #[test]
    fn validated_constraints_are_found() {
        assert_eq!(
            validated_constraints(
                "validate constraint \"C1\", ADD COLUMN validate int, VALIDATE CONSTRAINT c2"
            )
            .unwrap(),
            vec!["C1".to_string(), "c2".to_string()]
        );
    }

    #[test]
    fn replica_identity_clauses_are_found() {
        assert!(sets_replica_identity("ADD COLUMN a int, replica identity full").unwrap());
        assert!(sets_replica_identity("REPLICA IDENTITY USING INDEX t_a").unwrap());
        assert!(!sets_replica_identity("ADD COLUMN replica int").unwrap());
        assert!(!sets_replica_identity("ALTER COLUMN identity TYPE bigint").unwrap());
    }

    #[test]
    fn constraint_names_point_at_the_shadow() {
        let names = vec![("t_pkey".to_string(), "_godwit_new_t_pkey".to_string())];
        assert_eq!(
            translate_names("DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (code)", &names).unwrap(),
            "DROP CONSTRAINT \"_godwit_new_t_pkey\", ADD PRIMARY KEY (code)"
        );
        assert_eq!(
            translate_names("ADD COLUMN t_pkey int", &names).unwrap(),
            "ADD COLUMN t_pkey int"
        );
        assert_eq!(
            translate_names("REPLICA IDENTITY USING INDEX t_pkey", &names).unwrap(),
            "REPLICA IDENTITY USING INDEX \"_godwit_new_t_pkey\""
        );
    }
}
