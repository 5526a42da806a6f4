use super::{Check, CheckCtx};
use crate::engine::mysql::conn_err;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use mysql_async::prelude::*;

/// The migration user must read the binlog and create, fill, lock and rename tables.
pub struct Privileges;

const GLOBAL_NEEDED: [&str; 2] = ["REPLICATION SLAVE", "REPLICATION CLIENT"];
const DB_NEEDED: [&str; 7] = [
    "SELECT",
    "INSERT",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "LOCK TABLES",
];

/// Privileges granted by `SHOW GRANTS` lines, on `*.*` and on `db`.
#[derive(Debug, Default, PartialEq)]
pub struct Granted {
    pub global: Vec<String>,
    pub on_db: Vec<String>,
    /// A role is granted: its privileges cannot be resolved here.
    pub has_roles: bool,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('`').replace("``", "`")
}

fn db_matches(pattern: &str, db: &str) -> bool {
    // Grant patterns use LIKE wildcards; `\_` and `\%` are literal.
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('\\'), _) if p.len() > 1 => {
                s.first().is_some_and(|c| c.eq_ignore_ascii_case(&p[1])) && m(&p[2..], &s[1..])
            }
            (Some('%'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some('_'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) && m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = db.chars().collect();
    m(&p, &s)
}

pub fn parse_grants(lines: &[String], db: &str) -> Granted {
    let mut g = Granted::default();
    for line in lines {
        let Some(rest) = line.strip_prefix("GRANT ") else {
            continue;
        };
        let Some(on) = rest.find(" ON ") else {
            g.has_roles = true;
            continue;
        };
        let privs: Vec<String> = rest[..on]
            .split(',')
            .map(|p| {
                let p = p.trim().to_uppercase();
                // "SELECT (col)" column privileges do not cover the table.
                if p.contains('(') {
                    String::new()
                } else {
                    p
                }
            })
            .filter(|p| !p.is_empty())
            .collect();
        let obj = rest[on + 4..].split(" TO ").next().unwrap_or("").trim();
        let (odb, otable) = obj.split_once('.').unwrap_or((obj, ""));
        let target = if odb == "*" && otable == "*" {
            &mut g.global
        } else if otable.trim() == "*" && db_matches(&unquote(odb), db) {
            &mut g.on_db
        } else {
            continue;
        };
        for p in privs {
            if p == "ALL PRIVILEGES" || p == "ALL" {
                target.push("ALL".into());
            } else {
                target.push(p);
            }
        }
    }
    g
}

pub fn missing(g: &Granted) -> Vec<&'static str> {
    let has_global = |p: &str| {
        g.global
            .iter()
            .any(|x| x == "ALL" || x == p || x == "SUPER")
            || (p == "REPLICATION CLIENT" && g.global.iter().any(|x| x == "BINLOG MONITOR"))
    };
    let has_db = |p: &str| {
        g.global.iter().any(|x| x == "ALL" || x == p)
            || g.on_db.iter().any(|x| x == "ALL" || x == p)
    };
    let mut out: Vec<&'static str> = GLOBAL_NEEDED
        .iter()
        .copied()
        .filter(|p| !has_global(p))
        .collect();
    out.extend(DB_NEEDED.iter().copied().filter(|p| !has_db(p)));
    out
}

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for Privileges {
    fn name(&self) -> &'static str {
        "privileges"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let lines: Vec<String> = cx
            .conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| conn_err(e, "reading the user's grants"))?;
        let g = parse_grants(&lines, cx.db);
        let miss = missing(&g);
        if miss.is_empty() {
            return Ok(());
        }
        if g.has_roles {
            tracing::warn!("privileges granted through roles are not checked; missing privileges will show as errors later");
            return Ok(());
        }
        let global: Vec<&str> = miss
            .iter()
            .copied()
            .filter(|p| GLOBAL_NEEDED.contains(p))
            .collect();
        let on_db: Vec<&str> = miss
            .iter()
            .copied()
            .filter(|p| DB_NEEDED.contains(p))
            .collect();
        let mut fix = Vec::new();
        if !global.is_empty() {
            fix.push(format!("GRANT {} ON *.* TO <user>", global.join(", ")));
        }
        if !on_db.is_empty() {
            fix.push(format!(
                "GRANT {} ON `{}`.* TO <user>",
                on_db.join(", "),
                cx.db
            ));
        }
        Err(Error::new(
            ErrorKind::Privileges,
            format!("the migration user lacks: {}", miss.join(", ")),
        )
        .with_hint(fix.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_privileges_cover_everything() {
        let g = parse_grants(
            &["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".into()],
            "shop",
        );
        assert!(missing(&g).is_empty());
    }

    #[test]
    fn db_grants_without_replication_are_reported() {
        let lines = vec![
            "GRANT USAGE ON *.* TO `app`@`%`".to_string(),
            "GRANT ALL PRIVILEGES ON `shop`.* TO `app`@`%`".to_string(),
        ];
        let g = parse_grants(&lines, "shop");
        assert_eq!(missing(&g), vec!["REPLICATION SLAVE", "REPLICATION CLIENT"]);
        let g = parse_grants(&lines, "other");
        assert!(missing(&g).contains(&"SELECT"));
    }

    #[test]
    fn wildcard_db_and_binlog_monitor() {
        let lines = vec![
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `m`@`%`".to_string(),
            "GRANT SELECT, INSERT, DELETE, CREATE, DROP, ALTER, LOCK TABLES ON `sh\\_%`.* TO `m`@`%`".to_string(),
        ];
        assert!(missing(&parse_grants(&lines, "sh_prod")).is_empty());
        assert!(!missing(&parse_grants(&lines, "shxprod")).is_empty());
    }
}
