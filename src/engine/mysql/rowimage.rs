//! Reading keys out of binlog row images.
//!
//! godwit decodes only the key columns of a row; every other column is skipped by its
//! length. This is faster than decoding whole rows, and it keeps values godwit does not
//! need (and that `mysql_common` mis-decodes, such as negative TIME(1)) out of the path.

use crate::engine::{Key, KeyPart};
use mysql_async::consts::ColumnType;

/// How to turn a key column's binlog bytes into a [`KeyPart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecode {
    Signed,
    Unsigned,
    Decimal,
    /// Character string: raw bytes in the column's charset.
    Text,
    /// BINARY(n): trailing 0x00 are stripped by the server, re-pad to `n`.
    Binary(usize),
    VarBinary,
    Date,
    DateTime,
    Timestamp,
    Year,
    Enum,
}

/// A table map's view of one column: binlog type and metadata.
#[derive(Debug, Clone)]
pub struct ColumnLayout {
    pub ty: ColumnType,
    pub meta: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed row image: {0}")]
pub struct RowImageError(pub String);

fn err(s: impl Into<String>) -> RowImageError {
    RowImageError(s.into())
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

fn decimal_size(precision: usize, scale: usize) -> usize {
    let intg = precision.saturating_sub(scale);
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9]
}

fn string_length(meta: &[u8]) -> usize {
    if meta.len() < 2 {
        return 0;
    }
    let (b0, b1) = (meta[0] as usize, meta[1] as usize);
    if b0 & 0x30 != 0x30 {
        b1 | (((b0 & 0x30) ^ 0x30) << 4)
    } else {
        b1
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Length in bytes of one non-NULL value at the start of `buf`.
pub fn value_len(col: &ColumnLayout, buf: &[u8]) -> Result<usize, RowImageError> {
    use ColumnType::*;
    let m = &col.meta;
    let m0 = m.first().copied().unwrap_or(0) as usize;
    let m1 = m.get(1).copied().unwrap_or(0) as usize;
    let frac = |d: usize| d.div_ceil(2);
    let prefixed = |n: usize| -> Result<usize, RowImageError> {
        let p = buf.get(..n).ok_or_else(|| err("truncated length prefix"))?;
        Ok(n + le(p) as usize)
    };
    Ok(match col.ty {
        MYSQL_TYPE_TINY | MYSQL_TYPE_YEAR => 1,
        MYSQL_TYPE_SHORT => 2,
        MYSQL_TYPE_INT24 | MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE | MYSQL_TYPE_TIME => 3,
        MYSQL_TYPE_LONG | MYSQL_TYPE_FLOAT | MYSQL_TYPE_TIMESTAMP => 4,
        MYSQL_TYPE_LONGLONG | MYSQL_TYPE_DOUBLE | MYSQL_TYPE_DATETIME => 8,
        MYSQL_TYPE_TIMESTAMP2 => 4 + frac(m0),
        MYSQL_TYPE_DATETIME2 => 5 + frac(m0),
        MYSQL_TYPE_TIME2 => 3 + frac(m0),
        MYSQL_TYPE_NEWDECIMAL => decimal_size(m0, m1),
        MYSQL_TYPE_BIT => (m1 * 8 + m0).div_ceil(8),
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => m1,
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR => prefixed(m0)?,
        MYSQL_TYPE_JSON => prefixed(if (1..=4).contains(&m0) { m0 } else { 4 })?,
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let max = m0 | (m1 << 8);
            prefixed(if max < 256 { 1 } else { 2 })?
        }
        MYSQL_TYPE_STRING => prefixed(if string_length(m) < 256 { 1 } else { 2 })?,
        other => {
            return Err(err(format!(
                "unsupported column type {other:?} in row event"
            )))
        }
    })
}

fn frac_micros(bytes: &[u8], dec: usize) -> u64 {
    match dec {
        1 | 2 => be(&bytes[..1]) * 10_000,
        3 | 4 => be(&bytes[..2]) * 100,
        5 | 6 => be(&bytes[..3]),
        _ => 0,
    }
}

fn decode_decimal(bytes: &[u8], precision: usize, scale: usize) -> String {
    let mut b = bytes.to_vec();
    let negative = b[0] & 0x80 == 0;
    b[0] ^= 0x80;
    if negative {
        for x in b.iter_mut() {
            *x = !*x;
        }
    }
    let intg = precision - scale;
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    let mut pos = 0;
    let mut take = |n: usize| {
        let v = be(&b[pos..pos + n]);
        pos += n;
        v
    };
    let mut int_part = String::new();
    if intg0x > 0 {
        int_part.push_str(&take(DIG2BYTES[intg0x]).to_string());
    }
    for _ in 0..intg0 {
        int_part.push_str(&format!("{:09}", take(4)));
    }
    let int_part = int_part.trim_start_matches('0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if scale > 0 {
        out.push('.');
        for _ in 0..frac0 {
            out.push_str(&format!("{:09}", take(4)));
        }
        if frac0x > 0 {
            out.push_str(&format!("{:0w$}", take(DIG2BYTES[frac0x]), w = frac0x));
        }
    }
    out
}

/// Decode one key value of `len` bytes.
pub fn decode_key(col: &ColumnLayout, how: KeyDecode, v: &[u8]) -> Result<KeyPart, RowImageError> {
    use ColumnType::*;
    let m0 = col.meta.first().copied().unwrap_or(0) as usize;
    let m1 = col.meta.get(1).copied().unwrap_or(0) as usize;
    let body = |prefix: usize| v.get(prefix..).unwrap_or(&[]).to_vec();
    Ok(match how {
        KeyDecode::Signed | KeyDecode::Unsigned => {
            let raw = le(v);
            let bits = v.len() * 8;
            if how == KeyDecode::Unsigned {
                KeyPart::UInt(raw)
            } else {
                let shift = 64 - bits;
                KeyPart::Int(((raw << shift) as i64) >> shift)
            }
        }
        KeyDecode::Year => KeyPart::Int(if v[0] == 0 { 0 } else { 1900 + i64::from(v[0]) }),
        KeyDecode::Enum => KeyPart::UInt(le(v)),
        KeyDecode::Decimal => KeyPart::Text(decode_decimal(v, m0, m1)),
        KeyDecode::Text | KeyDecode::VarBinary | KeyDecode::Binary(_) => {
            let prefix = match col.ty {
                MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
                    if (m0 | (m1 << 8)) < 256 {
                        1
                    } else {
                        2
                    }
                }
                MYSQL_TYPE_STRING => {
                    if string_length(&col.meta) < 256 {
                        1
                    } else {
                        2
                    }
                }
                _ => {
                    return Err(err(format!(
                        "key column of type {:?} is not a string",
                        col.ty
                    )))
                }
            };
            let mut b = body(prefix);
            if let KeyDecode::Binary(n) = how {
                b.resize(n.max(b.len()), 0);
            }
            KeyPart::Bytes(b)
        }
        KeyDecode::Date => {
            let x = le(&v[..3]);
            KeyPart::Text(format!("{:04}-{:02}-{:02}", x >> 9, (x >> 5) & 15, x & 31))
        }
        KeyDecode::DateTime => {
            if col.ty != MYSQL_TYPE_DATETIME2 {
                return Err(err(
                    "old-format DATETIME key; rebuild the table to use DATETIME2",
                ));
            }
            let packed = be(&v[..5]) as i64 - 0x80_0000_0000;
            let ymd = packed >> 17;
            let ym = ymd >> 5;
            let hms = packed & 0x1_ffff;
            KeyPart::Text(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                ym / 13,
                ym % 13,
                ymd & 31,
                hms >> 12,
                (hms >> 6) & 63,
                hms & 63,
                frac_micros(&v[5..], m0)
            ))
        }
        KeyDecode::Timestamp => {
            if col.ty != MYSQL_TYPE_TIMESTAMP2 {
                return Ok(KeyPart::Text(format!("{}.000000", le(&v[..4]))));
            }
            KeyPart::Text(format!("{}.{:06}", be(&v[..4]), frac_micros(&v[4..], m0)))
        }
    })
}

/// Key columns to extract: (column index in the table, how to decode), in key order.
pub type KeySpec = [(usize, KeyDecode)];

/// Read one row image starting at `buf[0]`; returns the key and the bytes consumed.
pub fn read_row(
    layout: &[ColumnLayout],
    present: &[bool],
    key: &KeySpec,
    buf: &[u8],
) -> Result<(Option<Key>, usize), RowImageError> {
    let n_present = present.iter().filter(|p| **p).count();
    let null_len = n_present.div_ceil(8);
    let nulls = buf
        .get(..null_len)
        .ok_or_else(|| err("truncated null bitmap"))?;
    let mut pos = null_len;
    let mut parts: Vec<Option<KeyPart>> = vec![None; key.len()];
    let mut idx = 0usize;
    for (col_i, col) in layout.iter().enumerate() {
        if !present.get(col_i).copied().unwrap_or(false) {
            continue;
        }
        let is_null = nulls[idx / 8] & (1 << (idx % 8)) != 0;
        idx += 1;
        if is_null {
            continue;
        }
        let rest = buf.get(pos..).ok_or_else(|| err("truncated row"))?;
        let len = value_len(col, rest)?;
        let value = rest.get(..len).ok_or_else(|| err("truncated value"))?;
        if let Some(k) = key.iter().position(|(i, _)| *i == col_i) {
            parts[k] = Some(decode_key(col, key[k].1, value)?);
        }
        pos += len;
    }
    let key = parts.into_iter().collect::<Option<Vec<_>>>();
    Ok((key, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lay(ty: ColumnType, meta: &[u8]) -> ColumnLayout {
        ColumnLayout {
            ty,
            meta: meta.to_vec(),
        }
    }

    #[test]
    fn decimal_sizes_match_mysql() {
        assert_eq!(decimal_size(10, 2), 5);
        assert_eq!(decimal_size(12, 2), 6);
        assert_eq!(decimal_size(18, 9), 8);
        assert_eq!(decimal_size(65, 30), 30);
    }

    #[test]
    fn decimal_decodes_positive_and_negative() {
        // DECIMAL(5,2) 123.45: intg=3 -> 2 bytes (123), frac=2 -> 1 byte (45)
        let pos = [0x80, 123, 45];
        assert_eq!(decode_decimal(&pos, 5, 2), "123.45");
        let neg: Vec<u8> = pos.iter().map(|b| !b).collect();
        assert_eq!(decode_decimal(&neg, 5, 2), "-123.45");
        // DECIMAL(12,0) 1000000000 (needs one 4-byte group + 3-digit lead)
        let v = 1_000_000_000u64;
        let lead = v / 1_000_000_000; // 1 (intg0x=3 -> 2 bytes)
        let rest = v % 1_000_000_000;
        let mut b = vec![(lead >> 8) as u8 | 0x80, lead as u8];
        b.extend_from_slice(&(rest as u32).to_be_bytes());
        assert_eq!(decode_decimal(&b, 12, 0), "1000000000");
    }

    #[test]
    fn signed_and_unsigned_ints() {
        let c = lay(ColumnType::MYSQL_TYPE_LONGLONG, &[]);
        let max = u64::MAX.to_le_bytes();
        assert_eq!(
            decode_key(&c, KeyDecode::Unsigned, &max).unwrap(),
            KeyPart::UInt(u64::MAX)
        );
        assert_eq!(
            decode_key(&c, KeyDecode::Signed, &max).unwrap(),
            KeyPart::Int(-1)
        );
        let c = lay(ColumnType::MYSQL_TYPE_INT24, &[]);
        assert_eq!(
            decode_key(&c, KeyDecode::Signed, &[0xff, 0xff, 0xff]).unwrap(),
            KeyPart::Int(-1)
        );
        assert_eq!(
            decode_key(&c, KeyDecode::Unsigned, &[0xff, 0xff, 0xff]).unwrap(),
            KeyPart::UInt(0xff_ffff)
        );
    }

    #[test]
    fn binary_key_is_repadded() {
        let c = lay(ColumnType::MYSQL_TYPE_STRING, &[0xfe, 4]);
        let v = [2u8, 0xab, 0xcd];
        assert_eq!(
            decode_key(&c, KeyDecode::Binary(4), &v).unwrap(),
            KeyPart::Bytes(vec![0xab, 0xcd, 0, 0])
        );
    }

    #[test]
    fn datetime2_and_timestamp2() {
        // 2024-02-29 13:45:30.123456 as DATETIME(6)
        let (y, mo, d, h, mi, s) = (2024i64, 2i64, 29i64, 13i64, 45i64, 30i64);
        let ym = y * 13 + mo;
        let packed = (((ym << 5) | d) << 17) | (h << 12) | (mi << 6) | s;
        let v = (packed + 0x80_0000_0000) as u64;
        let mut b = v.to_be_bytes()[3..].to_vec();
        b.extend_from_slice(&123_456u32.to_be_bytes()[1..]);
        let c = lay(ColumnType::MYSQL_TYPE_DATETIME2, &[6]);
        assert_eq!(
            decode_key(&c, KeyDecode::DateTime, &b).unwrap(),
            KeyPart::Text("2024-02-29 13:45:30.123456".into())
        );
        let c = lay(ColumnType::MYSQL_TYPE_TIMESTAMP2, &[3]);
        let mut t = 1_700_000_000u32.to_be_bytes().to_vec();
        t.extend_from_slice(&1234u16.to_be_bytes());
        assert_eq!(
            decode_key(&c, KeyDecode::Timestamp, &t).unwrap(),
            KeyPart::Text("1700000000.123400".into())
        );
    }

    #[test]
    fn row_skips_non_key_columns_and_nulls() {
        // (id INT, note VARCHAR(10) NULL, t TIME(1), code VARCHAR(300))
        let layout = vec![
            lay(ColumnType::MYSQL_TYPE_LONG, &[]),
            lay(ColumnType::MYSQL_TYPE_VARCHAR, &[40, 0]),
            lay(ColumnType::MYSQL_TYPE_TIME2, &[1]),
            lay(ColumnType::MYSQL_TYPE_VARCHAR, &[0x2c, 0x01]),
        ];
        let present = vec![true; 4];
        let mut buf = vec![0b0000_0010u8]; // note is NULL
        buf.extend_from_slice(&7i32.to_le_bytes());
        buf.extend_from_slice(&[0x7f, 0xff, 0xff, 0x9c]); // negative TIME(1): skipped, not decoded
        buf.extend_from_slice(&[2, 0, b'h', b'i']);
        buf.push(0xee); // next row starts here
        let key = [(0, KeyDecode::Signed), (3, KeyDecode::Text)];
        let (k, used) = read_row(&layout, &present, &key, &buf).unwrap();
        assert_eq!(used, buf.len() - 1);
        assert_eq!(
            k.unwrap(),
            vec![KeyPart::Int(7), KeyPart::Bytes(b"hi".to_vec())]
        );
    }

    #[test]
    fn truncated_rows_are_errors_not_panics() {
        let layout = vec![lay(ColumnType::MYSQL_TYPE_VARCHAR, &[40, 0])];
        let key = [(0, KeyDecode::Text)];
        assert!(read_row(&layout, &[true], &key, &[0, 9, b'a']).is_err());
        assert!(read_row(&layout, &[true], &key, &[]).is_err());
    }
}
