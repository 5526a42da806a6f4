//! Connection targets: URL parsing and credential sources.
//!
//! A password may come from the URL, the engine's environment variable (`MYSQL_PWD`,
//! `PGPASSWORD`), `~/.pgpass`, or `--password-file`. It is never printed: `Display` of a
//! [`Target`] and every error message use [`Target::redacted`].

use crate::error::{Error, Result};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Mysql,
    Postgres,
}

/// Where to connect. The password is held here and nowhere else.
#[derive(Clone)]
pub struct Target {
    pub kind: EngineKind,
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Extra query parameters from the URL (e.g. `sslmode`), passed through.
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.redacted())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl EngineKind {
    /// The URL scheme of this engine (`mysql`, `postgres`).
    pub fn scheme(self) -> &'static str {
        match self {
            EngineKind::Mysql => "mysql",
            EngineKind::Postgres => "postgres",
        }
    }
}

/// The engine a URL scheme names (`mysql`, `mariadb`, `postgres`, `postgresql`).
pub fn kind_of_scheme(scheme: &str) -> Option<EngineKind> {
    match scheme {
        "mysql" | "mariadb" => Some(EngineKind::Mysql),
        "postgres" | "postgresql" => Some(EngineKind::Postgres),
        _ => None,
    }
}

impl Target {
    /// Parse a `mysql://` or `postgres://` URL. `password_file` wins over the URL, which wins
    /// over the environment.
    pub fn parse(url: &str, password_file: Option<&Path>) -> Result<Target> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::bad_input(format!("cannot parse --url: {e}")).with_hint(
                "use mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB (password from the environment or --password-file)",
            )
        })?;
        let kind = kind_of_scheme(parsed.scheme()).ok_or_else(|| {
            Error::bad_input(format!("unsupported URL scheme '{}'", parsed.scheme()))
                .with_hint("use mysql:// (MySQL/MariaDB) or postgres:// (PostgreSQL)")
        })?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        };
        let user = if parsed.username().is_empty() {
            match kind {
                EngineKind::Mysql => "root".to_string(),
                EngineKind::Postgres => {
                    std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into())
                }
            }
        } else {
            decode(parsed.username())
        };
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
        let port = parsed.port().unwrap_or(match kind {
            EngineKind::Mysql => 3306,
            EngineKind::Postgres => 5432,
        });
        let database = decode(parsed.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err(Error::bad_input("the --url names no database")
                .with_hint("append the database name: mysql://user@host:3306/DBNAME"));
        }
        let params = parsed
            .query_pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut password = parsed.password().map(decode);
        if let Some(path) = password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::bad_input(format!(
                    "cannot read --password-file {}: {e}",
                    path.display()
                ))
            })?;
            password = Some(text.trim_end_matches(['\n', '\r']).to_string());
        }
        if password.is_none() {
            let var = match kind {
                EngineKind::Mysql => "MYSQL_PWD",
                EngineKind::Postgres => "PGPASSWORD",
            };
            password = std::env::var(var).ok();
        }
        let mut t = Target {
            kind,
            user,
            password,
            host,
            port,
            database,
            params,
        };
        if t.password.is_none() && kind == EngineKind::Postgres {
            t.password = t.pgpass_lookup();
        }
        Ok(t)
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The URL without its password: safe for logs and errors.
    pub fn redacted(&self) -> String {
        let scheme = self.kind.scheme();
        format!(
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// Remove the password from any text (a server or driver message may echo a URL).
    pub fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "******"),
            _ => text.to_string(),
        }
    }

    fn pgpass_lookup(&self) -> Option<String> {
        let path = std::env::var("PGPASSFILE")
            .map(std::path::PathBuf::from)
            .ok()
            .or_else(|| {
                std::env::var("HOME")
                    .ok()
                    .map(|h| std::path::Path::new(&h).join(".pgpass"))
            })?;
        let text = std::fs::read_to_string(path).ok()?;
        pgpass_match(&text, &self.host, self.port, &self.database, &self.user)
    }
}

/// Find the password for a connection in `.pgpass` text (`host:port:db:user:password`,
/// `*` matches anything, `\:` and `\\` escape).
pub fn pgpass_match(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n)
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port_s = port.to_string();
        let want = [host, port_s.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want.iter())
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_never_displayed() {
        let t = Target::parse("mysql://app:s3cr%40t@db.example:3307/shop", None).unwrap();
        assert_eq!(t.password(), Some("s3cr@t"));
        assert_eq!(t.port, 3307);
        assert_eq!(t.database, "shop");
        let shown = format!("{t} {t:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert_eq!(
            t.scrub("login failed for s3cr@t"),
            "login failed for ******"
        );
    }

    #[test]
    fn rejects_unknown_scheme_and_missing_db() {
        assert!(Target::parse("oracle://x@y/z", None).is_err());
        let e = Target::parse("mysql://x@y:3306", None).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::BadInput);
    }

    #[test]
    fn pgpass_matching_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:nope\n127.0.0.1:*:app:bob:pa\\:ss\n";
        assert_eq!(
            pgpass_match(text, "127.0.0.1", 5433, "app", "bob").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(pgpass_match(text, "127.0.0.1", 5433, "app", "eve"), None);
    }
}
