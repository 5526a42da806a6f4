//! Read-only facts for `godwit plan`: version, sizes, columns, indexes, constraints that
//! prove NOT NULL, replicas, long transactions, function volatility, a timed sample, and
//! bounded data checks. The session is READ ONLY.

use super::conn::{self, pg_err};
use super::inspect::{row_estimate_sql, split_name};
use super::sql::quote;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{
    DataProbe, Facts, LongTransaction, PgDomain, PgFacts, PlanOptions, ProbeResult, Sample,
};
use crate::target::{EngineKind, Target};
use std::time::Instant;
use tokio_postgres::Client;

pub struct Session {
    c: Client,
}

/// The row estimate: as the dry run's ([`row_estimate_sql`]).
const REL: &str = concat!(
    "SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, \
  round(",
    row_estimate_sql!(),
    ")::int8, pg_table_size(c.oid), pg_indexes_size(c.oid) \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
  WHERE c.relname = $2 AND n.nspname = COALESCE($1, current_schema())"
);

/// The table's access method and tablespace (`reltablespace` 0 is the database's).
const STORAGE: &str = "SELECT (SELECT amname::text FROM pg_am WHERE oid = c.relam), \
  (SELECT spcname::text FROM pg_tablespace WHERE oid = COALESCE(NULLIF(c.reltablespace, 0), \
    (SELECT dattablespace FROM pg_database WHERE datname = current_database()))) \
  FROM pg_class c WHERE c.oid = $1";

/// The domains the session sees: name, the type under it, constraints of its own (NOT NULL
/// or a CHECK).
const DOMAINS: &str = "SELECT t.typname::text, format_type(t.typbasetype, t.typtypmod), \
  t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid) \
  FROM pg_type t WHERE t.typtype = 'd' AND pg_type_is_visible(t.oid) ORDER BY t.oid LIMIT 10000";

impl Session {
    /// A session that may run the ALTER natively (`godwit run --attempt-native`).
    pub async fn connect_writable(target: &Target) -> Result<Session> {
        Ok(Session {
            c: conn::connect(target, "native").await?,
        })
    }

    /// Run `stmt` (a catalog-only change) waiting at most `lock_wait_secs` for its lock.
    pub async fn execute_native(&mut self, stmt: &str, lock_wait_secs: u64) -> Result<()> {
        conn::batch(
            &self.c,
            &format!("SET lock_timeout = '{}s'", lock_wait_secs.max(1)),
            "setting lock_timeout",
        )
        .await?;
        conn::batch(&self.c, stmt, "running the ALTER natively").await.map_err(|e| {
            if e.kind == ErrorKind::CutOverFailed {
                e.with_hint("a transaction holds the table; retry later, or run without --attempt-native. The table is unchanged")
            } else {
                e
            }
        })
    }

    /// A read-only session (what `godwit plan` uses).
    pub async fn connect(target: &Target) -> Result<Session> {
        let c = conn::connect(target, "plan").await?;
        for set in [
            "SET default_transaction_read_only = on",
            "SET statement_timeout = '30s'",
        ] {
            conn::batch(&c, set, "configuring the plan session").await?;
        }
        Ok(Session { c })
    }

    pub async fn facts(&mut self, table: &str, o: &PlanOptions) -> Result<Facts> {
        let c = &self.c;
        let version: String = c
            .query_one("SHOW server_version", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "reading the server version"))?;
        let num: String = c
            .query_one("SHOW server_version_num", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e, "reading the server version"))?;
        let num: u32 = num.parse().unwrap_or(0);
        let (schema, name) = split_name(table);
        let missing = || {
            Error::new(
                ErrorKind::TableMissing,
                format!("table {table} does not exist"),
            )
            .with_hint("check --table (SCHEMA.NAME) and the database in --url")
        };
        let rel = c
            .query_opt(REL, &[&schema, &name])
            .await
            .map_err(|e| pg_err(e, "reading the table"))?
            .ok_or_else(missing)?;
        let oid: u32 = rel.get(0);
        let schema: String = rel.get(1);
        let kind: String = rel.get(3);
        if kind != "r" && kind != "p" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{table} is not a table (relkind {kind})"),
            ));
        }
        let persistence: String = rel.get(4);
        let rows: i64 = rel.get(5);
        let data: i64 = rel.get(6);
        let idx: i64 = rel.get(7);
        let (model, _) = super::inspect::read(c, Some(&schema), &name)
            .await?
            .ok_or_else(missing)?;
        // Columns a validated `CHECK (col IS NOT NULL)` proves non-null.
        let proven_not_null = model
            .checks
            .iter()
            .filter(|k| k.validated)
            .filter_map(|k| proven_column(&k.clause))
            .collect();
        let replicas = c
            .query_one("SELECT count(*)::int8 FROM pg_stat_replication", &[])
            .await
            .ok()
            .and_then(|r| r.try_get::<_, i64>(0).ok())
            .map(|n| n as u32);
        let long = c
            .query(
                "SELECT pid::text, EXTRACT(EPOCH FROM now() - xact_start)::int8, COALESCE(state, '') FROM pg_stat_activity \
                 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND now() - xact_start > make_interval(secs => $1) \
                 ORDER BY xact_start LIMIT 20",
                &[&(o.long_trx_seconds.min(5) as f64)],
            )
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| LongTransaction { id: r.get(0), seconds: r.get::<_, i64>(1).max(0) as u64, state: r.get(2) })
                    .collect()
            })
            .unwrap_or_default();
        let mut settings = Vec::new();
        for s in [
            "wal_level",
            "lock_timeout",
            "statement_timeout",
            "max_wal_size",
        ] {
            if let Ok(r) = c.query_one(&format!("SHOW {s}"), &[]).await {
                settings.push((s.to_string(), r.get::<_, String>(0)));
            }
        }
        // The zone is UTC at every instant from 1800 to 2200 (no daylight saving time, no
        // historical offset): what PostgreSQL's pg_get_timezone_offset() checks.
        let tz = c
            .query_one(
                "SELECT current_setting('TimeZone'), NOT EXISTS (SELECT 1 FROM generate_series(timestamptz '1800-01-01 00:00+00', timestamptz '2200-01-01 00:00+00', interval '1 month') t(at) WHERE extract(timezone FROM t.at) <> 0)",
                &[],
            )
            .await
            .map_err(|e| pg_err(e, "reading the session's TimeZone"))?;
        let time_zone: String = tz.get(0);
        settings.push(("TimeZone".to_string(), time_zone.clone()));
        let storage = c
            .query_one(STORAGE, &[&oid])
            .await
            .map_err(|e| pg_err(e, "reading the table's storage"))?;
        let domains = c
            .query(DOMAINS, &[])
            .await
            .map_err(|e| pg_err(e, "reading the domains"))?
            .iter()
            .map(|r| PgDomain {
                name: r.get(0),
                base: r.get(1),
                constrained: r.get(2),
            })
            .collect();
        let pg = PgFacts {
            time_zone: Some(time_zone),
            time_zone_is_utc: tz.get(1),
            access_method: storage.get(0),
            tablespace: storage.get(1),
            domains,
        };
        let mut facts = Facts {
            engine: EngineKind::Postgres,
            server_version: format!("PostgreSQL {version}"),
            version: (num / 10000, (num / 100) % 100, num % 100),
            mariadb: false,
            schema,
            table: name,
            row_estimate: rows.max(0) as u64,
            data_bytes: data.max(0) as u64,
            index_bytes: idx.max(0) as u64,
            avg_row_bytes: if rows > 0 {
                (data / rows).max(0) as u64
            } else {
                0
            },
            columns: model.columns,
            indexes: model.indexes,
            proven_not_null,
            row_format: Some(
                match persistence.as_str() {
                    "u" => "unlogged",
                    "t" => "temporary",
                    _ => "logged",
                }
                .to_string(),
            ),
            free_bytes: None,
            replicas,
            long_transactions: long,
            settings,
            sample: None,
            mysql: Default::default(),
            pg,
        };
        facts.sample = self.sample(&facts, o.sample_rows).await;
        Ok(facts)
    }

    async fn sample(&self, f: &Facts, rows: u64) -> Option<Sample> {
        let pk = f.primary_key()?.column_names();
        let order = pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT count(*)::int8 FROM (SELECT * FROM {}.{} ORDER BY {order} LIMIT {rows}) s",
            quote(&f.schema),
            quote(&f.table)
        );
        let started = Instant::now();
        let got: i64 = self.c.query_one(&sql, &[]).await.ok()?.try_get(0).ok()?;
        Some(Sample {
            rows: got.max(0) as u64,
            millis: started.elapsed().as_millis() as u64,
        })
    }

    /// Of `names`, the functions that have a volatile overload.
    pub async fn volatile_functions(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let rows = self
            .c
            .query("SELECT DISTINCT proname::text FROM pg_proc WHERE proname = ANY($1) AND provolatile = 'v'", &[&names])
            .await
            .map_err(|e| pg_err(e, "reading function volatility"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Bounded data checks: each reads at most `limit` rows in key order.
    pub async fn probes(
        &self,
        f: &Facts,
        probes: &[DataProbe],
        limit: u64,
    ) -> Result<Vec<ProbeResult>> {
        let t = format!("{}.{}", quote(&f.schema), quote(&f.table));
        let pk: Vec<String> = f
            .primary_key()
            .map(|i| i.column_names())
            .unwrap_or_default();
        let order = if pk.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            )
        };
        let key_expr = if pk.is_empty() {
            "''".to_string()
        } else {
            format!(
                "concat_ws(', ', {})",
                pk.iter()
                    .map(|c| format!("{} || '=' || {}::text", lit(c), quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut out = Vec::new();
        for p in probes {
            let sub = format!("(SELECT * FROM {t}{order} LIMIT {limit}) s");
            let sql = match p {
                DataProbe::Nulls { column } => format!("SELECT {key_expr} FROM {sub} WHERE {} IS NULL LIMIT 1", quote(column)),
                DataProbe::TooLong { column, max_chars } => format!("SELECT {key_expr} FROM {sub} WHERE char_length({}::text) > {max_chars} LIMIT 1", quote(column)),
                DataProbe::OutOfRange { column, min, max } => format!("SELECT {key_expr} FROM {sub} WHERE {0}::numeric < {min} OR {0}::numeric > {max} LIMIT 1", quote(column)),
                DataProbe::Duplicates { columns } => {
                    let g = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
                    let ex = columns.iter().map(|c| format!("{} || '=' || {}::text", lit(c), quote(c))).collect::<Vec<_>>().join(", ");
                    let nn = columns.iter().map(|c| format!("{} IS NOT NULL", quote(c))).collect::<Vec<_>>().join(" AND ");
                    format!("SELECT concat_ws(', ', {ex}) || ' (' || count(*) || ' rows)' FROM {sub} WHERE {nn} GROUP BY {g} HAVING count(*) > 1 LIMIT 1")
                }
            };
            let example = match self.c.query_opt(&sql, &[]).await {
                Ok(r) => r.map(|r| {
                    r.try_get::<_, Option<String>>(0)
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                }),
                Err(e) => {
                    tracing::warn!("data check skipped: {e}");
                    continue;
                }
            };
            let rows_checked: i64 = self
                .c
                .query_one(
                    &format!("SELECT count(*)::int8 FROM (SELECT 1 FROM {t} LIMIT {limit}) s"),
                    &[],
                )
                .await
                .ok()
                .and_then(|r| r.try_get(0).ok())
                .unwrap_or(0);
            let found = example.is_some();
            out.push(ProbeResult {
                probe: p.clone(),
                found,
                example: example.map(|e| {
                    if e.is_empty() {
                        "(no primary key)".into()
                    } else {
                        e
                    }
                }),
                rows_checked: rows_checked.max(0) as u64,
                complete: (rows_checked.max(0) as u64) < limit,
            });
        }
        Ok(out)
    }
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `CHECK ((col IS NOT NULL))` → `col`.
fn proven_column(def: &str) -> Option<String> {
    let inner = def.strip_prefix("CHECK ((")?.strip_suffix("))")?;
    let col = inner.strip_suffix(" IS NOT NULL")?;
    if col.contains(' ') && !col.starts_with('"') {
        return None;
    }
    Some(col.trim_matches('"').replace("\"\"", "\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_null_check_is_recognised() {
        assert_eq!(
            super::proven_column("CHECK ((n IS NOT NULL))").as_deref(),
            Some("n")
        );
        assert_eq!(super::proven_column("CHECK ((n > 0))"), None);
    }
}
