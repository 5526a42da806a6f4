//! Verification on PostgreSQL (docs/how-it-works.md, "Verify before the swap").
//!
//! Hold: `LOCK TABLE orig IN SHARE MODE` in a transaction (the application's writes wait,
//! reads go on); the fence is a logical-decoding message committed under it. Views: two
//! sessions each begin a `REPEATABLE READ` transaction and take its snapshot while the
//! hold is on; one reads the original, the other the shadow. A chunk's digest is the row
//! count and the `bit_xor` of `hashtextextended` (the server's own 64-bit hash, as hash
//! partitioning uses; MD5 costs two and a half times as much) of each row's `ROW(...)::text`,
//! with the original's values cast to the new column types (through the ALTER's `USING`
//! expressions, as the copy computes them).

use super::conn::{batch, connect, pg_err};
use super::cutover::write_fence;
use super::sql::{qualified, quote, Builder};
use super::{inspect, part_text, PgEngine};
use crate::engine::int_bounds::{IntBounds, IntKey};
use crate::engine::{CompareColumns, Digest, Key, KeyPart, Position, VerifyLock, VerifyView};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{ColumnMapping, Table};
use crate::target::Target;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

#[derive(Debug, Clone)]
struct Compared {
    orig: String,
    other: String,
    converted: bool,
}

/// The digest statements for one pair of tables.
#[derive(Debug, Clone)]
pub struct Checksums {
    orig: String,
    other: String,
    /// Key columns: original name, shadow name, original type.
    key: Vec<(String, String, String)>,
    cols: Vec<Compared>,
    columns: CompareColumns,
    /// Hash the row's values as they are (`hash_record_extended`) rather than its text:
    /// set when every compared column's type has a hash function.
    binary: bool,
}

impl Checksums {
    /// `using` holds the ALTER's `USING` expressions by new column name.
    pub fn new(
        schema: &str,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
        b: &Builder,
        using: &[(String, String)],
    ) -> Checksums {
        let mut cols = Vec::new();
        let mut columns = CompareColumns::default();
        for m in &mapping.columns {
            let (Some(src), Some(dst)) = (orig.column(&m.source), other.column(&m.target)) else {
                continue;
            };
            let expr = using.iter().find(|(t, _)| *t == m.target).map(|(_, e)| e);
            let other_expr = format!("s.{}", quote(&dst.name));
            if expr.is_none() && src.column_type == dst.column_type {
                columns.same.push(dst.name.clone());
                cols.push(Compared {
                    orig: format!("o.{}", quote(&src.name)),
                    other: other_expr,
                    converted: false,
                });
            } else {
                let from = match expr {
                    Some(e) => format!("({e})"),
                    None => format!("o.{}", quote(&src.name)),
                };
                columns.converted.push(dst.name.clone());
                cols.push(Compared {
                    orig: format!("CAST({from} AS {})", dst.column_type),
                    other: other_expr,
                    converted: true,
                });
            }
        }
        let key = b
            .key
            .iter()
            .zip(&mapping.key.target_columns)
            .map(|(k, t)| (k.name.clone(), t.clone(), k.sql_type.clone()))
            .collect();
        Checksums {
            orig: b.orig.clone(),
            other: qualified(schema, &other.name),
            key,
            cols,
            columns,
            binary: false,
        }
    }

    fn key_row(&self, alias: &str, orig: bool) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|(o, s, _)| format!("{alias}.{}", quote(if orig { o } else { s })))
            .collect();
        format!("({})", cols.join(", "))
    }

    fn bound_row(&self, first: usize) -> String {
        let vals: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, (_, _, t))| format!("${}::text::{t}", first + i))
            .collect();
        format!("({})", vals.join(", "))
    }

    /// `WHERE` for keys in (after, upto] of the original or the other table; parameters
    /// are the bounds' parts as text, `after` first.
    fn range(&self, alias: &str, orig: bool, after: bool, upto: bool) -> String {
        let mut conds = Vec::new();
        let mut next = 1;
        if after {
            conds.push(format!(
                "{} > {}",
                self.key_row(alias, orig),
                self.bound_row(next)
            ));
            next += self.key.len();
        }
        if upto {
            conds.push(format!(
                "{} <= {}",
                self.key_row(alias, orig),
                self.bound_row(next)
            ));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }

    fn table(&self, orig: bool) -> (&str, &str) {
        if orig {
            (&self.orig, "o")
        } else {
            (&self.other, "s")
        }
    }

    /// The hash of one row of the original (`orig`) or the other table.
    fn row_hash(&self, orig: bool, converted: bool) -> String {
        let exprs: Vec<&str> = self
            .cols
            .iter()
            .filter(|c| converted || !c.converted)
            .map(|c| {
                if orig {
                    c.orig.as_str()
                } else {
                    c.other.as_str()
                }
            })
            .collect();
        match (exprs.is_empty(), self.binary) {
            (true, _) => "hashtextextended('', 0)".to_string(),
            (false, true) => format!("hash_record_extended(ROW({}), 0)", exprs.join(", ")),
            (false, false) => format!("hashtextextended(ROW({})::text, 0)", exprs.join(", ")),
        }
    }

    fn digest_sql(&self, orig: bool, after: bool, upto: bool, converted: bool) -> String {
        let hash = self.row_hash(orig, converted);
        let (table, alias) = self.table(orig);
        format!(
            "SELECT count(*)::int8, coalesce(bit_xor({hash}), 0) FROM {table} {alias} {}",
            self.range(alias, orig, after, upto)
        )
    }

    /// Hash rows as values when both tables allow it: tried on one row of each (a type
    /// without a hash function, e.g. `json` or `point`, fails the statement; an empty
    /// table says nothing, and then nothing is compared anyway).
    async fn try_binary(&mut self, orig: &Client, other: &Client) {
        if self.cols.is_empty() {
            return;
        }
        self.binary = true;
        for (c, is_orig) in [(orig, true), (other, false)] {
            let (table, alias) = self.table(is_orig);
            let probe = format!(
                "SELECT {} FROM {table} {alias} LIMIT 1",
                self.row_hash(is_orig, true)
            );
            if let Err(e) = c.query(probe.as_str(), &[]).await {
                tracing::debug!("verification hashes rows as text: {e}");
                self.binary = false;
                return;
            }
        }
    }

    fn next_bound_sql(&self, after: bool, offset: u64) -> String {
        let keys: Vec<String> = self
            .key
            .iter()
            .map(|(o, _, _)| format!("o.{}::text", quote(o)))
            .collect();
        format!(
            "SELECT {} FROM {} o {} ORDER BY {} LIMIT 1 OFFSET {offset}",
            keys.join(", "),
            self.orig,
            self.range("o", true, after, false),
            self.key_row("o", true).trim_matches(['(', ')'])
        )
    }

    fn keys_sql(&self, orig: bool, after: bool, upto: bool) -> String {
        let (table, alias) = self.table(orig);
        let keys: Vec<String> = self
            .key
            .iter()
            .map(|(o, s, _)| format!("{alias}.{}::text", quote(if orig { o } else { s })))
            .collect();
        format!(
            "SELECT {} FROM {table} {alias} {}",
            keys.join(", "),
            self.range(alias, orig, after, upto)
        )
    }
}

fn texts(after: Option<&Key>, upto: Option<&Key>) -> Vec<String> {
    after
        .into_iter()
        .chain(upto)
        .flat_map(|k| k.iter().map(part_text))
        .collect()
}

fn params(v: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    v.iter().map(|s| s as &(dyn ToSql + Sync)).collect()
}

fn read_key(r: &tokio_postgres::Row, n: usize) -> Result<Key> {
    (0..n)
        .map(|i| r.try_get::<_, String>(i).map(KeyPart::Text))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| pg_err(e, "reading a key"))
}

async fn digest(c: &Client, sql: &str, p: &[String]) -> Result<Digest> {
    let r = c
        .query_one(sql, &params(p))
        .await
        .map_err(|e| pg_err(e, "computing a verification checksum"))?;
    let rows: i64 = r.try_get(0).map_err(|e| pg_err(e, "reading a checksum"))?;
    let hash: i64 = r.try_get(1).map_err(|e| pg_err(e, "reading a checksum"))?;
    Ok(Digest {
        rows: rows as u64,
        hash: hash as u64,
    })
}

pub struct PgView {
    orig: Client,
    other: Client,
    sums: Checksums,
    /// Chunk bounds by arithmetic on a single integer key (no scan for a bound).
    ints: Option<IntBounds>,
}

/// The smallest and largest key in the snapshot of the original, when the key is one
/// integer column.
async fn int_bounds(c: &Client, sums: &Checksums) -> Result<Option<IntBounds>> {
    let [(name, _, ty)] = sums.key.as_slice() else {
        return Ok(None);
    };
    if !matches!(ty.as_str(), "smallint" | "integer" | "bigint") {
        return Ok(None);
    }
    let sql = format!(
        "SELECT min({0})::text, max({0})::text FROM {1}",
        quote(name),
        sums.orig
    );
    let r = c
        .query_one(sql.as_str(), &[])
        .await
        .map_err(|e| pg_err(e, "reading the key's range"))?;
    let get = |i: usize| {
        r.try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<i128>().ok())
    };
    Ok(match (get(0), get(1)) {
        (Some(min), Some(max)) => Some(IntBounds::new(IntKey::Text, min, max)),
        _ => None,
    })
}

impl PgView {
    /// Open two sessions and take their snapshots now.
    pub async fn open(target: &Target, mut sums: Checksums) -> Result<PgView> {
        let orig = connect(target, "verify").await?;
        let other = connect(target, "verify").await?;
        // A cast the server does not have is found here, before any snapshot: such
        // columns are left out (said in the report) rather than failing the run.
        if sums.cols.iter().any(|c| c.converted) {
            let check = format!(
                "SELECT {} FROM {} o LIMIT 0",
                sums.cols
                    .iter()
                    .filter(|c| c.converted)
                    .map(|c| c.orig.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                sums.orig
            );
            if let Err(e) = orig.execute(check.as_str(), &[]).await {
                let why = format!("the comparison cannot cast it: {}", pg_err(e, "").message);
                let converted: Vec<String> = std::mem::take(&mut sums.columns.converted);
                sums.columns
                    .skipped
                    .extend(converted.into_iter().map(|c| (c, why.clone())));
                sums.cols.retain(|c| !c.converted);
            }
        }
        sums.try_binary(&orig, &other).await;
        for c in [&orig, &other] {
            batch(
                c,
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                "starting a verification snapshot",
            )
            .await?;
            // The snapshot is taken by the first query.
            batch(c, "SELECT 1", "starting a verification snapshot").await?;
        }
        let ints = int_bounds(&orig, &sums).await?;
        Ok(PgView {
            orig,
            other,
            sums,
            ints,
        })
    }
}

#[async_trait]
impl VerifyView for PgView {
    async fn next_bound(&mut self, after: Option<&Key>, rows: u64) -> Result<Option<Key>> {
        if let Some(b) = self.ints.as_mut().and_then(|i| i.next(after, rows)) {
            return Ok(b);
        }
        let p = texts(after, None);
        let row = self
            .orig
            .query_opt(
                self.sums
                    .next_bound_sql(after.is_some(), rows.max(1) - 1)
                    .as_str(),
                &params(&p),
            )
            .await
            .map_err(|e| pg_err(e, "finding the next verification chunk"))?;
        row.map(|r| read_key(&r, self.sums.key.len())).transpose()
    }

    async fn digest(
        &mut self,
        after: Option<&Key>,
        upto: Option<&Key>,
        converted: bool,
    ) -> Result<(Digest, Digest)> {
        let p = texts(after, upto);
        let (a, b) = (after.is_some(), upto.is_some());
        let sa = self.sums.digest_sql(true, a, b, converted);
        let sb = self.sums.digest_sql(false, a, b, converted);
        let (x, y) = tokio::join!(digest(&self.orig, &sa, &p), digest(&self.other, &sb, &p));
        let (x, y) = (x?, y?);
        if let Some(i) = self.ints.as_mut() {
            i.chunk_had(x.rows);
        }
        Ok((x, y))
    }

    fn columns(&self) -> CompareColumns {
        self.sums.columns.clone()
    }

    async fn close(&mut self) -> Result<()> {
        let _ = self.orig.batch_execute("ROLLBACK").await;
        let _ = self.other.batch_execute("ROLLBACK").await;
        Ok(())
    }
}

pub struct PgVerifyLock {
    target: Target,
    hold: Client,
    sums: Checksums,
}

impl PgVerifyLock {
    pub async fn take(target: &Target, sums: Checksums, timeout: Duration) -> Result<PgVerifyLock> {
        let hold = connect(target, "verify hold").await?;
        let r = async {
            batch(&hold, "BEGIN", "holding the table for verification").await?;
            batch(
                &hold,
                &format!(
                    "SET LOCAL lock_timeout = '{}ms'",
                    timeout.as_millis().max(1)
                ),
                "holding the table for verification",
            )
            .await?;
            batch(
                &hold,
                &format!("LOCK TABLE {} IN SHARE MODE", sums.orig),
                "holding the table for verification",
            )
            .await
        }
        .await;
        if let Err(e) = r {
            let _ = hold.batch_execute("ROLLBACK").await;
            if e.kind == ErrorKind::Unreachable {
                return Err(e);
            }
            return Err(Error::new(
                ErrorKind::CutOverFailed,
                format!("the verification hold was not granted: {}", e.message),
            ));
        }
        Ok(PgVerifyLock {
            target: target.clone(),
            hold,
            sums,
        })
    }
}

#[async_trait]
impl VerifyLock for PgVerifyLock {
    async fn fence(&mut self) -> Result<Position> {
        write_fence(&self.target, "verify").await
    }

    async fn views(self: Box<Self>) -> Result<Box<dyn VerifyView>> {
        let v = PgView::open(&self.target, self.sums.clone()).await;
        batch(&self.hold, "COMMIT", "releasing the verification hold").await?;
        Ok(Box::new(v?))
    }

    async fn release(self: Box<Self>) -> Result<()> {
        batch(&self.hold, "ROLLBACK", "releasing the verification hold").await
    }
}

impl PgEngine {
    pub(super) fn checksums(
        &self,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
    ) -> Result<Checksums> {
        let b = self.builder(orig, mapping)?;
        let using = if other.name == self.names.shadow {
            self.shadow_state()?.using
        } else {
            Vec::new()
        };
        Ok(Checksums::new(
            &self.schema,
            orig,
            other,
            mapping,
            &b,
            &using,
        ))
    }

    pub(super) async fn verify_range_keys(
        &self,
        orig: &Table,
        mapping: &ColumnMapping,
        after: Option<&Key>,
        upto: Option<&Key>,
    ) -> Result<Vec<Key>> {
        let shadow = Table {
            name: self.names.shadow.clone(),
            ..orig.clone()
        };
        let sums = self.checksums(orig, &shadow, mapping)?;
        let p = texts(after, upto);
        let c = self.main.lock().await;
        let mut keys = BTreeSet::new();
        for side in [true, false] {
            let rows = c
                .query(
                    sums.keys_sql(side, after.is_some(), upto.is_some())
                        .as_str(),
                    &params(&p),
                )
                .await
                .map_err(|e| pg_err(e, "reading the keys of a range to re-copy"))?;
            for r in rows {
                keys.insert(read_key(&r, sums.key.len())?);
            }
        }
        Ok(keys.into_iter().collect())
    }

    pub(super) async fn inspect_table(&self, name: &str) -> Result<Table> {
        let c = self.main.lock().await;
        let (t, _) = inspect::inspect(&c, Some(&self.schema), name).await?;
        Ok(t)
    }
}
