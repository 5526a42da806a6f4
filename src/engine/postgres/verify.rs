//! Verification on PostgreSQL (docs/how-it-works.md, "Verify before the swap").
//!
//! Hold: `LOCK TABLE orig IN SHARE MODE` in a transaction (the application's writes wait,
//! reads go on); the fence is a logical-decoding message committed under it. Views: two
//! sessions each begin a `REPEATABLE READ` transaction and take its snapshot while the
//! hold is on; one reads the original, the other the shadow. A chunk's digest is the row
//! count and the `bit_xor` of a 64-bit hash per row: each column's value hashed by its
//! type's own extended hash function (the server's, as hash partitioning uses) seeded by
//! its position, XORed, and mixed once more. The original's values are cast to the new
//! column types first (through the ALTER's `USING` expressions, as the copy computes
//! them). Per column, this costs about half of `hash_record_extended(ROW(...))`, which
//! builds a row per row, and a fifth of hashing the row's text.

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
    /// The new column's type, which both expressions have.
    ty: String,
    hash: ColHash,
}

/// How one compared column's value is hashed (`Checksums::resolve_hashes`).
#[derive(Debug, Clone, PartialEq)]
enum ColHash {
    /// The type's own 64-bit hash function (the default hash operator class's), called on
    /// the value, through a binary-compatible cast to `cast` when it is declared for
    /// another type (`varchar` → `text`).
    Direct { func: String, cast: Option<String> },
    /// `timestamptz`: the timestamp hash of the instant in UTC (one-to-one).
    Utc,
    /// Any other type with a hash function: through a one-column row.
    Record,
    /// A type without one (`json`, `point`): through its text.
    Text,
}

/// The seed of column `i`'s hash, and the value that stands for its NULL: distinct per
/// position, so that two columns' values cannot trade places unseen.
fn seeds(i: usize) -> (i64, i64) {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as i64
    };
    (mix(2 * i as u64 + 1), mix(2 * i as u64 + 2))
}

/// The hash of expression `e` (of the column's type) seeded with `seed`.
fn col_hash(e: &str, h: &ColHash, seed: i64) -> String {
    match h {
        ColHash::Direct { func, cast: None } => format!("{func}({e}, {seed})"),
        ColHash::Direct {
            func,
            cast: Some(t),
        } => format!("{func}(({e})::{t}, {seed})"),
        // A fixed offset rather than the zone 'UTC': no zone is looked up per row
        // (110 ms instead of 170 ms a column over 2M rows). Infinities stay as they are.
        ColHash::Utc => {
            format!(
                "pg_catalog.timestamp_hash_extended(({e}) AT TIME ZONE INTERVAL '00:00', {seed})"
            )
        }
        ColHash::Record => format!("pg_catalog.hash_record_extended(ROW({e}), {seed})"),
        ColHash::Text => format!("pg_catalog.hashtextextended(({e})::text, {seed})"),
    }
}

/// For each type name in `$1` (in order): the function of its default hash operator
/// class that hashes a value with a seed, and the type to cast to first when that
/// function is declared for another, binary-compatible type (a domain counts as its base
/// type). Where several classes fit (`varchar` reaches `text` and `bpchar`), the class of
/// the type itself, then of its category's preferred type (`text`). No function: NULL.
/// The cast target is spelled by `format_type(oid, NULL)`: `bpchar`, never `character`,
/// which as a cast means `character(1)`.
const HASH_FUNCTIONS: &str = "\
WITH t AS (SELECT n, CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.oid END AS ty \
  FROM unnest($1::text[]) WITH ORDINALITY AS u(typ, n) \
  JOIN pg_catalog.pg_type y ON y.oid = u.typ::regtype) \
SELECT h.func, h.arg \
FROM t \
LEFT JOIN LATERAL ( \
  SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.proname) AS func, \
         CASE WHEN p.proargtypes[0] = t.ty THEN NULL \
              ELSE pg_catalog.format_type(p.proargtypes[0], NULL) END AS arg \
  FROM pg_catalog.pg_opclass c \
  JOIN pg_catalog.pg_am a ON a.oid = c.opcmethod AND a.amname = 'hash' \
  JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily = c.opcfamily AND ap.amprocnum = 2 \
       AND ap.amproclefttype = c.opcintype AND ap.amprocrighttype = c.opcintype \
  JOIN pg_catalog.pg_proc p ON p.oid = ap.amproc \
  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
  JOIN pg_catalog.pg_type it ON it.oid = c.opcintype \
  WHERE c.opcdefault \
    AND (c.opcintype = t.ty OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k \
         WHERE k.castsource = t.ty AND k.casttarget = c.opcintype AND k.castmethod = 'b')) \
    AND (p.proargtypes[0] = t.ty OR p.proargtypes[0] = c.opcintype) \
  ORDER BY c.opcintype = t.ty DESC, it.typispreferred DESC LIMIT 1) h ON true \
ORDER BY t.n";

/// The digest statements for one pair of tables.
#[derive(Debug, Clone)]
pub struct Checksums {
    orig: String,
    other: String,
    /// Key columns: original name, shadow name, original type.
    key: Vec<(String, String, String)>,
    cols: Vec<Compared>,
    columns: CompareColumns,
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
                    ty: dst.column_type.clone(),
                    hash: ColHash::Record,
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
                    ty: dst.column_type.clone(),
                    hash: ColHash::Record,
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

    /// The hash of one row of the original (`orig`) or the other table: each column's
    /// value hashed by its type's own function with a seed of its position, the results
    /// combined by XOR and mixed once more, so that values trading places between rows
    /// change the digest too.
    fn row_hash(&self, orig: bool, converted: bool) -> String {
        let parts: Vec<String> = self
            .cols
            .iter()
            .enumerate()
            .filter(|(_, c)| converted || !c.converted)
            .map(|(i, c)| {
                let e = if orig { &c.orig } else { &c.other };
                let (seed, null) = seeds(i);
                format!("coalesce({}, {null})", col_hash(e, &c.hash, seed))
            })
            .collect();
        if parts.is_empty() {
            return "pg_catalog.hashtextextended('', 0)".to_string();
        }
        format!("pg_catalog.hashint8extended({}, 0)", parts.join(" # "))
    }

    fn digest_sql(&self, orig: bool, after: bool, upto: bool, converted: bool) -> String {
        let hash = self.row_hash(orig, converted);
        let (table, alias) = self.table(orig);
        format!(
            "SELECT count(*)::int8, coalesce(bit_xor({hash}), 0) FROM {table} {alias} {}",
            self.range(alias, orig, after, upto)
        )
    }

    /// Choose each column's hash (`ColHash`) from the server's catalog, then try the row
    /// hash on one row of each table: a type whose hash function fails at run time
    /// (e.g. an array of `json`) makes every column that is not hashed directly go
    /// through its text. An empty table says nothing, and then nothing is compared anyway.
    async fn resolve_hashes(&mut self, orig: &Client, other: &Client) {
        if self.cols.is_empty() {
            return;
        }
        let types: Vec<String> = self.cols.iter().map(|c| c.ty.clone()).collect();
        match orig.query(HASH_FUNCTIONS, &[&types]).await {
            Ok(rows) if rows.len() == self.cols.len() => {
                for (c, r) in self.cols.iter_mut().zip(rows) {
                    let func: Option<String> = r.get(0);
                    let cast: Option<String> = r.get(1);
                    c.hash = match func {
                        Some(func) => ColHash::Direct { func, cast },
                        None if c.ty == "timestamp with time zone" => ColHash::Utc,
                        None => ColHash::Record,
                    };
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("verification hashes columns through rows: {e}"),
        }
        if self.probe(orig, other).await {
            return;
        }
        for c in self.cols.iter_mut() {
            if !matches!(c.hash, ColHash::Direct { .. } | ColHash::Utc) {
                c.hash = ColHash::Text;
            }
        }
        if self.probe(orig, other).await {
            return;
        }
        for c in self.cols.iter_mut() {
            c.hash = ColHash::Text;
        }
    }

    /// Whether the row hash runs on one row of each table.
    async fn probe(&self, orig: &Client, other: &Client) -> bool {
        for (c, is_orig) in [(orig, true), (other, false)] {
            let (table, alias) = self.table(is_orig);
            let probe = format!(
                "SELECT {} FROM {table} {alias} LIMIT 1",
                self.row_hash(is_orig, true)
            );
            if let Err(e) = c.query(probe.as_str(), &[]).await {
                tracing::debug!("verification: this row hash fails ({e}); trying a slower one");
                return false;
            }
        }
        true
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

/// Two sessions ready to compare: connected, the columns' hashes chosen, the settings
/// made. Done before the hold, so that the application's writes wait only for the
/// snapshots (`Prepared::begin`).
pub struct Prepared {
    orig: Client,
    other: Client,
    sums: Checksums,
}

impl Prepared {
    pub async fn new(target: &Target, mut sums: Checksums) -> Result<Prepared> {
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
        sums.resolve_hashes(&orig, &other).await;
        for c in [&orig, &other] {
            // Every statement here reads a key range, best through the key's index. With
            // one bound only (the first and the last chunk), a parameter's value is
            // unknown when the plan is made, and the planner guessed a third of the
            // table and scanned all of it: 150–200 ms a chunk on 2M rows, 10 times an
            // indexed chunk.
            //
            // No parallel workers: both sessions already run at once, and the two
            // workers the planner gives each chunk by default only compete with them
            // for the same cores (a 2M-row comparison took 560 ms with them, 418 ms
            // without, on 2 cores), and with the application. No JIT: a chunk of wide
            // rows can cost more than `jit_above_cost`, and every chunk would then be
            // compiled again.
            for set in [
                "SET enable_seqscan = off",
                "SET max_parallel_workers_per_gather = 0",
                "SET jit = off",
            ] {
                batch(c, set, "preparing a verification session").await?;
            }
        }
        Ok(Prepared { orig, other, sums })
    }

    /// Take both snapshots now.
    async fn begin(self) -> Result<PgView> {
        for c in [&self.orig, &self.other] {
            batch(
                c,
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                "starting a verification snapshot",
            )
            .await?;
            // The snapshot is taken by the first query.
            batch(c, "SELECT 1", "starting a verification snapshot").await?;
        }
        Ok(PgView {
            orig: self.orig,
            other: self.other,
            sums: self.sums,
            ints: None,
        })
    }
}

impl PgView {
    /// Open two sessions and take their snapshots now.
    pub async fn open(target: &Target, sums: Checksums) -> Result<PgView> {
        let mut v = Prepared::new(target, sums).await?.begin().await?;
        v.read_bounds().await?;
        Ok(v)
    }

    /// The key's range in the snapshot (read after the hold is released).
    async fn read_bounds(&mut self) -> Result<()> {
        self.ints = int_bounds(&self.orig, &self.sums).await?;
        Ok(())
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
    prepared: Prepared,
}

impl PgVerifyLock {
    pub async fn take(target: &Target, sums: Checksums, timeout: Duration) -> Result<PgVerifyLock> {
        let prepared = Prepared::new(target, sums).await?;
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
                &format!("LOCK TABLE {} IN SHARE MODE", prepared.sums.orig),
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
            prepared,
        })
    }
}

#[async_trait]
impl VerifyLock for PgVerifyLock {
    async fn fence(&mut self) -> Result<Position> {
        write_fence(&self.target, "verify").await
    }

    async fn views(self: Box<Self>) -> Result<Box<dyn VerifyView>> {
        let v = self.prepared.begin().await;
        batch(&self.hold, "COMMIT", "releasing the verification hold").await?;
        let mut v = v?;
        v.read_bounds().await?;
        Ok(Box::new(v))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_position_and_from_the_null_marks() {
        let mut all = BTreeSet::new();
        for i in 0..2000 {
            let (seed, null) = seeds(i);
            assert!(all.insert(seed) && all.insert(null), "position {i}");
        }
    }

    #[test]
    fn column_hashes_cast_only_when_the_function_needs_it() {
        let direct = ColHash::Direct {
            func: "pg_catalog.hashtextextended".into(),
            cast: Some("text".into()),
        };
        assert_eq!(
            col_hash("s.\"vc\"", &direct, 7),
            "pg_catalog.hashtextextended((s.\"vc\")::text, 7)"
        );
        assert_eq!(
            col_hash("o.\"t\"", &ColHash::Utc, -3),
            "pg_catalog.timestamp_hash_extended((o.\"t\") AT TIME ZONE INTERVAL '00:00', -3)"
        );
        assert_eq!(
            col_hash("o.\"p\"", &ColHash::Record, 1),
            "pg_catalog.hash_record_extended(ROW(o.\"p\"), 1)"
        );
    }
}
