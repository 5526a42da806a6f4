//! Verification on MySQL/MariaDB (docs/how-it-works.md, "Verify before the swap").
//!
//! Hold: `LOCK TABLES orig READ` on one connection (the application's writes wait, reads
//! go on); the fence is the binlog position under it. Views: two connections each start
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` while the hold is on, one reads the
//! original, the other the shadow, at the same time. A chunk's digest is the row count and
//! the `BIT_XOR` of each row's `CRC32` multiplied by an odd constant (`ROW_MIX`: without
//! it, as in pt-table-checksum, rows that trade values go unseen), over the row's values
//! rendered through the column mapping; MD5 costs three times as much per row.

use super::inspect;
use super::rowimage::KeyDecode;
use super::sql::{qualified, quote, Builder};
use super::{conn_err, exec, MysqlEngine};
use crate::engine::int_bounds::{IntBounds, IntKey};
use crate::engine::{CompareColumns, Digest, Key, Position, VerifyLock, VerifyView};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Column, ColumnMapping, Table};
use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::{Conn, Pool, Row, Value};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Int,
    Decimal,
    Float,
    Text,
    Binary,
    Temporal,
    Bit,
    Json,
    Other,
}

fn family(c: &Column) -> Family {
    match c.data_type.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Family::Int,
        "decimal" | "numeric" => Family::Decimal,
        "float" | "double" | "real" => Family::Float,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            Family::Text
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Family::Binary,
        "date" | "datetime" | "timestamp" | "time" => Family::Temporal,
        "bit" => Family::Bit,
        "json" => Family::Json,
        _ => Family::Other,
    }
}

/// A value for hashing. Strings go in as their bytes (the row is joined with a binary
/// separator, so nothing is converted: a conversion costs more than the hash); both
/// sides hold a compared string in the same character set (see `convert`).
fn render(expr: &str, f: Family) -> String {
    match f {
        Family::Text => expr.to_string(),
        Family::Binary | Family::Other => format!("HEX({expr})"),
        Family::Bit => format!("({expr} + 0)"),
        Family::Json => format!("CAST({expr} AS CHAR)"),
        _ => expr.to_string(),
    }
}

/// Fractional-seconds precision from a column type such as `datetime(3)`.
fn fsp(c: &Column) -> u32 {
    c.column_type
        .split_once('(')
        .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
        .unwrap_or(0)
}

/// The original's value `o` converted as the copy converts it into `dst`, or why the
/// comparison cannot reproduce that conversion.
fn convert(o: &str, src: &Column, dst: &Column) -> std::result::Result<String, String> {
    let (sf, df) = (family(src), family(dst));
    let unsupported = || {
        Err(format!(
            "its type changes from {} to {}",
            src.column_type, dst.column_type
        ))
    };
    let cs = dst.charset.as_deref().unwrap_or("utf8mb4");
    Ok(match df {
        Family::Int if matches!(sf, Family::Int | Family::Decimal) => {
            let to = if dst.unsigned { "UNSIGNED" } else { "SIGNED" };
            format!("CAST({o} AS {to})")
        }
        Family::Decimal if matches!(sf, Family::Int | Family::Decimal) => format!(
            "CAST({o} AS DECIMAL({},{}))",
            dst.precision.unwrap_or(10),
            dst.scale.unwrap_or(0)
        ),
        Family::Text if matches!(dst.data_type.as_str(), "enum" | "set") && sf != Family::Text => {
            return unsupported()
        }
        Family::Text
            if matches!(
                sf,
                Family::Text | Family::Int | Family::Decimal | Family::Temporal
            ) =>
        {
            let text = if sf == Family::Text {
                o.to_string()
            } else {
                format!("CAST({o} AS CHAR)")
            };
            let v = format!("CONVERT({text} USING {cs})");
            if dst.data_type == "char" {
                format!("TRIM(TRAILING ' ' FROM {v})")
            } else {
                v
            }
        }
        Family::Binary if matches!(sf, Family::Binary | Family::Text) => {
            if dst.data_type == "binary" {
                format!("CAST({o} AS BINARY({}))", dst.length.unwrap_or(1))
            } else {
                format!("CAST({o} AS BINARY)")
            }
        }
        Family::Temporal if matches!(sf, Family::Temporal | Family::Text) => {
            match dst.data_type.as_str() {
                "date" => format!("CAST({o} AS DATE)"),
                "time" => format!("CAST({o} AS TIME({}))", fsp(dst)),
                _ => format!("CAST({o} AS DATETIME({}))", fsp(dst)),
            }
        }
        _ => return unsupported(),
    })
}

/// One compared column: its rendering in the original and in the other table.
#[derive(Debug, Clone)]
struct Compared {
    orig: String,
    other: String,
    converted: bool,
    /// Either side may hold NULL: the value then goes in through `IFNULL(…, 0x1e)`
    /// (`CONCAT_WS` leaves NULLs out). A NULL and a value that is exactly the byte 0x1e
    /// look the same; flags per column (`ISNULL`) told them apart at a tenth of the
    /// digest's time.
    nullable: bool,
}

/// Each row's CRC32 is multiplied by this odd constant before the rows are XORed. CRC32
/// is affine over GF(2): for rows of equal length, the XOR of the CRCs of rows
/// `(1, 'paid')` and `(2, 'new1')` equals that of `(1, 'new1')` and `(2, 'paid')`, so two
/// rows that traded values would go unseen (as they do in pt-table-checksum's digest).
/// The product (below 2^64, so it never overflows) carries, which XOR does not undo.
const ROW_MIX: u64 = 2_654_435_761;

/// The digest statements for one pair of tables.
#[derive(Debug, Clone)]
pub struct Checksums {
    b: Builder,
    other: String,
    other_key: Vec<String>,
    other_index: String,
    cols: Vec<Compared>,
    columns: CompareColumns,
}

impl Checksums {
    pub fn new(
        db: &str,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
        b: Builder,
    ) -> Checksums {
        let mut cols = Vec::new();
        let mut columns = CompareColumns::default();
        for m in &mapping.columns {
            let (Some(src), Some(dst)) = (orig.column(&m.source), other.column(&m.target)) else {
                continue;
            };
            let o = format!("o.{}", quote(&src.name));
            let other_expr = render(&format!("s.{}", quote(&dst.name)), family(dst));
            let same_type = family(src) == family(dst)
                && src.column_type.eq_ignore_ascii_case(&dst.column_type)
                && src.charset == dst.charset;
            // NULL into a NOT NULL column becomes the type's implicit default (for a
            // TIMESTAMP: the time of the insert), which no expression reproduces: such
            // a column counts as converted (see the last round in migration/verify.rs).
            let to_not_null = src.nullable && !dst.nullable;
            if same_type && to_not_null {
                columns.converted.push(dst.name.clone());
                cols.push(Compared {
                    orig: render(&o, family(src)),
                    other: other_expr,
                    converted: true,
                    nullable: src.nullable || dst.nullable,
                });
                continue;
            }
            if same_type {
                columns.same.push(dst.name.clone());
                cols.push(Compared {
                    orig: render(&o, family(src)),
                    other: other_expr,
                    converted: false,
                    nullable: src.nullable || dst.nullable,
                });
                continue;
            }
            match convert(&o, src, dst) {
                Ok(e) => {
                    columns.converted.push(dst.name.clone());
                    cols.push(Compared {
                        orig: render(&e, family(dst)),
                        other: other_expr,
                        converted: true,
                        nullable: src.nullable || dst.nullable,
                    });
                }
                Err(why) => columns.skipped.push((dst.name.clone(), why)),
            }
        }
        Checksums {
            other: qualified(db, &other.name),
            other_key: mapping.key.target_columns.clone(),
            other_index: mapping.key.target_name.clone(),
            b,
            cols,
            columns,
        }
    }

    /// The digest statement for the original (`orig`) or the other table.
    fn digest_sql(
        &self,
        orig: bool,
        after: Option<&Key>,
        upto: Option<&Key>,
        converted: bool,
    ) -> (String, Vec<Value>) {
        let cols: Vec<(&str, bool)> = self
            .cols
            .iter()
            .filter(|c| converted || !c.converted)
            .map(|c| {
                let e = if orig { &c.orig } else { &c.other };
                (e.as_str(), c.nullable)
            })
            .collect();
        let row = if cols.is_empty() {
            "''".to_string()
        } else {
            // A NULL stands as the byte 0x1e (`CONCAT_WS` would leave it out, and then
            // which value is NULL could not be told). The separator is a literal:
            // `CHAR(31)` is evaluated again for every row.
            let parts: Vec<String> = cols
                .iter()
                .map(|(e, nullable)| {
                    if *nullable {
                        format!("IFNULL({e}, 0x1e)")
                    } else {
                        e.to_string()
                    }
                })
                .collect();
            format!("CONCAT_WS(0x1f, {})", parts.join(", "))
        };
        let mut params = Vec::new();
        let (table, alias, index, names): (&str, &str, &str, Vec<&str>) = if orig {
            (
                &self.b.orig,
                "o",
                &self.b.source_index,
                self.b.key.iter().map(|k| k.name.as_str()).collect(),
            )
        } else {
            (
                &self.other,
                "s",
                &self.other_index,
                self.other_key.iter().map(String::as_str).collect(),
            )
        };
        let filter = self.b.range_filter(alias, &names, after, upto, &mut params);
        (
            format!(
                "SELECT CAST(COUNT(*) AS UNSIGNED), CAST(BIT_XOR(CRC32({row}) * {ROW_MIX}) AS UNSIGNED) \
                 FROM {table} {alias} FORCE INDEX ({}) {filter}",
                quote(index)
            ),
            params,
        )
    }

    /// The keys in (`after`, `upto`] of the original (`orig`) or the other table.
    fn keys_sql(
        &self,
        orig: bool,
        after: Option<&Key>,
        upto: Option<&Key>,
    ) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let names: Vec<&str> = if orig {
            self.b.key.iter().map(|k| k.name.as_str()).collect()
        } else {
            self.other_key.iter().map(String::as_str).collect()
        };
        let (table, alias) = if orig {
            (&self.b.orig, "o")
        } else {
            (&self.other, "s")
        };
        let filter = self.b.range_filter(alias, &names, after, upto, &mut params);
        (
            format!(
                "SELECT {} FROM {table} {alias} {filter}",
                self.b.key_select_named(alias, &names)
            ),
            params,
        )
    }

    fn read_key(&self, row: Row) -> Result<Key> {
        row.unwrap()
            .into_iter()
            .zip(&self.b.key)
            .map(|(v, k)| k.from_selected(v))
            .collect::<Option<Key>>()
            .ok_or_else(|| Error::internal("cannot read a key"))
    }
}

async fn digest(c: &mut Conn, (sql, params): (String, Vec<Value>)) -> Result<Digest> {
    let row: Option<(Option<u64>, Option<u64>)> = c
        .exec_first(sql, params)
        .await
        .map_err(|e| conn_err(e, "computing a verification checksum"))?;
    let (rows, hash) = row.unwrap_or((None, None));
    Ok(Digest {
        rows: rows.unwrap_or(0),
        hash: hash.unwrap_or(0),
    })
}

/// Start a snapshot transaction on `c`.
async fn snapshot(c: &mut Conn) -> Result<()> {
    for s in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ] {
        c.query_drop(s)
            .await
            .map_err(|e| conn_err(e, "starting a verification snapshot"))?;
    }
    Ok(())
}

pub struct MysqlView {
    orig: Conn,
    other: Conn,
    sums: Checksums,
    /// Chunk bounds by arithmetic on a single integer key (no scan for a bound).
    ints: Option<IntBounds>,
}

async fn pooled(pool: &Pool) -> Result<Conn> {
    pool.get_conn()
        .await
        .map_err(|e| conn_err(e, "opening a connection"))
}

impl MysqlView {
    pub async fn open(pool: &Pool, sums: Checksums) -> Result<MysqlView> {
        let mut orig = pooled(pool).await?;
        let mut other = pooled(pool).await?;
        snapshot(&mut orig).await?;
        snapshot(&mut other).await?;
        let ints = int_bounds(&mut orig, &sums).await?;
        Ok(MysqlView {
            orig,
            other,
            sums,
            ints,
        })
    }
}

/// The smallest and largest key in the snapshot of the original, when the key is one
/// integer column.
async fn int_bounds(c: &mut Conn, sums: &Checksums) -> Result<Option<IntBounds>> {
    let [k] = sums.b.key.as_slice() else {
        return Ok(None);
    };
    let unsigned = match k.decode {
        KeyDecode::Signed => false,
        KeyDecode::Unsigned => true,
        _ => return Ok(None),
    };
    let sql = format!(
        "SELECT CAST(MIN({0}) AS CHAR), CAST(MAX({0}) AS CHAR) FROM {1}",
        quote(&k.name),
        sums.b.orig
    );
    let row: Option<(Option<String>, Option<String>)> = c
        .query_first(sql)
        .await
        .map_err(|e| conn_err(e, "reading the key's range"))?;
    let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
    Ok(match row {
        Some((lo, hi)) => match (parse(lo), parse(hi)) {
            (Some(min), Some(max)) => Some(IntBounds::new(
                if unsigned {
                    IntKey::Unsigned
                } else {
                    IntKey::Signed
                },
                min,
                max,
            )),
            _ => None,
        },
        None => None,
    })
}

#[async_trait]
impl VerifyView for MysqlView {
    async fn next_bound(&mut self, after: Option<&Key>, rows: u64) -> Result<Option<Key>> {
        if let Some(b) = self.ints.as_mut().and_then(|i| i.next(after, rows)) {
            return Ok(b);
        }
        let (sql, params) = self.sums.b.chunk_end(after, rows.max(1) - 1);
        let row: Option<Row> = self
            .orig
            .exec_first(sql, params)
            .await
            .map_err(|e| conn_err(e, "finding the next verification chunk"))?;
        row.map(|r| self.sums.read_key(r)).transpose()
    }

    async fn digest(
        &mut self,
        after: Option<&Key>,
        upto: Option<&Key>,
        converted: bool,
    ) -> Result<(Digest, Digest)> {
        let a = self.sums.digest_sql(true, after, upto, converted);
        let b = self.sums.digest_sql(false, after, upto, converted);
        let (a, b) = tokio::join!(digest(&mut self.orig, a), digest(&mut self.other, b));
        let (a, b) = (a?, b?);
        if let Some(i) = self.ints.as_mut() {
            i.chunk_had(a.rows);
        }
        Ok((a, b))
    }

    fn columns(&self) -> CompareColumns {
        self.sums.columns.clone()
    }

    async fn close(&mut self) -> Result<()> {
        let _ = self.orig.query_drop("ROLLBACK").await;
        let _ = self.other.query_drop("ROLLBACK").await;
        Ok(())
    }
}

pub struct MysqlVerifyLock {
    pool: Pool,
    hold: Conn,
    sums: Checksums,
}

impl MysqlVerifyLock {
    pub async fn take(pool: &Pool, sums: Checksums, timeout: Duration) -> Result<MysqlVerifyLock> {
        let mut hold = pooled(pool).await?;
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let held = async {
            hold.query_drop(format!("SET SESSION lock_wait_timeout = {secs}"))
                .await
                .map_err(|e| conn_err(e, "holding the table for verification"))?;
            let sql = format!("LOCK TABLES {} READ", sums.b.orig);
            exec(
                &mut hold,
                &sql,
                Vec::new(),
                "holding the table for verification",
            )
            .await
        }
        .await;
        if let Err(e) = held {
            let _ = hold.query_drop("UNLOCK TABLES").await;
            return Err(lock_failed(e));
        }
        Ok(MysqlVerifyLock {
            pool: pool.clone(),
            hold,
            sums,
        })
    }
}

/// A hold that was not granted is retried by the core (like a cut-over lock).
fn lock_failed(e: Error) -> Error {
    if e.kind == ErrorKind::Unreachable {
        return e;
    }
    Error::new(
        ErrorKind::CutOverFailed,
        format!("the verification hold was not granted: {}", e.message),
    )
}

#[async_trait]
impl VerifyLock for MysqlVerifyLock {
    async fn fence(&mut self) -> Result<Position> {
        let (file, pos) = MysqlEngine::binlog_position(&mut self.hold).await?;
        Ok(Position::Binlog { file, pos })
    }

    async fn views(mut self: Box<Self>) -> Result<Box<dyn VerifyView>> {
        let v = MysqlView::open(&self.pool, self.sums.clone()).await;
        self.hold
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(|e| conn_err(e, "releasing the verification hold"))?;
        Ok(Box::new(v?))
    }

    async fn release(mut self: Box<Self>) -> Result<()> {
        self.hold
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(|e| conn_err(e, "releasing the verification hold"))
    }
}

impl MysqlEngine {
    pub(super) fn checksums(
        &self,
        orig: &Table,
        other: &Table,
        mapping: &ColumnMapping,
    ) -> Result<Checksums> {
        let b = self.builder(orig, mapping)?;
        Ok(Checksums::new(&self.db, orig, other, mapping, b))
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
        let mut c = self.conn().await?;
        let mut keys = BTreeSet::new();
        for side in [true, false] {
            let (sql, params) = sums.keys_sql(side, after, upto);
            let rows: Vec<Row> = c
                .exec(sql, params)
                .await
                .map_err(|e| conn_err(e, "reading the keys of a range to re-copy"))?;
            for r in rows {
                keys.insert(sums.read_key(r)?);
            }
        }
        Ok(keys.into_iter().collect())
    }

    pub(super) async fn inspect_table(&self, name: &str) -> Result<Table> {
        let mut c = self.conn().await?;
        inspect::inspect(&mut c, &self.db, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, column_type: &str) -> Column {
        Column {
            name: name.into(),
            ordinal: 1,
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            generated: false,
            unsigned: column_type.contains("unsigned"),
            charset: None,
            collation: None,
            precision: None,
            scale: None,
            length: None,
            ..Default::default()
        }
    }

    #[test]
    fn conversions_follow_the_new_type_or_say_why_not() {
        let int = col("a", "int", "int(11)");
        let big = col("a", "bigint", "bigint(20) unsigned");
        assert_eq!(convert("o.a", &int, &big).unwrap(), "CAST(o.a AS UNSIGNED)");
        let mut dec = col("a", "decimal", "decimal(12,4)");
        dec.precision = Some(12);
        dec.scale = Some(4);
        assert_eq!(
            convert("o.a", &int, &dec).unwrap(),
            "CAST(o.a AS DECIMAL(12,4))"
        );
        let mut ch = col("a", "char", "char(10)");
        ch.charset = Some("latin1".into());
        assert_eq!(
            convert("o.a", &col("a", "varchar", "varchar(10)"), &ch).unwrap(),
            "TRIM(TRAILING ' ' FROM CONVERT(o.a USING latin1))"
        );
        let dt = col("a", "datetime", "datetime(3)");
        assert_eq!(
            convert("o.a", &col("a", "date", "date"), &dt).unwrap(),
            "CAST(o.a AS DATETIME(3))"
        );
        let float = col("a", "double", "double");
        assert!(convert("o.a", &int, &float)
            .unwrap_err()
            .contains("from int(11) to double"));
        let en = col("a", "enum", "enum('x','y')");
        assert!(convert("o.a", &int, &en).is_err());
    }
}
