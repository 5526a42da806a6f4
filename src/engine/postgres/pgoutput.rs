//! Decoding of `pgoutput` protocol version 1 messages (the `data` column of
//! `pg_logical_slot_peek_binary_changes`). Only what key-based replay needs is kept:
//! transaction bounds, relation layouts and the key columns of changed rows.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value that was not sent.
    Unchanged,
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelColumn {
    pub name: String,
    pub type_oid: u32,
    pub key: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        /// Microseconds since 2000-01-01.
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts: i64,
    },
    Relation {
        oid: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: Vec<RelColumn>,
    },
    Insert {
        oid: u32,
        new: Vec<Value>,
    },
    Update {
        oid: u32,
        /// The old key (`K`) or old row (`O`), when sent.
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        oid: u32,
        old: Vec<Value>,
    },
    Truncate {
        oids: Vec<u32>,
    },
    Message {
        prefix: String,
        content: Vec<u8>,
    },
    /// Origin, Type and anything else replay does not need.
    Other(u8),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode a pgoutput message: {}", self.0)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < self.at + n {
            return Err(DecodeError(format!(
                "message ends at byte {} (wanted {n} more at {})",
                self.b.len(),
                self.at
            )));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let rest = &self.b[self.at..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Value>, DecodeError> {
        let n = self.u16()? as usize;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Value::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                }
                b'b' => {
                    let len = self.u32()? as usize;
                    Value::Text(hex::encode(self.take(len)?))
                }
                other => {
                    return Err(DecodeError(format!(
                        "unknown tuple column kind {:?}",
                        other as char
                    )))
                }
            });
        }
        Ok(v)
    }
}

/// Decode one message.
pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { b: data, at: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.u64()? as i64,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_ts: r.u64()? as i64,
            }
        }
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(RelColumn {
                    name,
                    type_oid,
                    key: flags & 1 == 1,
                });
            }
            Message::Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            }
        }
        b'I' => {
            let oid = r.u32()?;
            match r.u8()? {
                b'N' => Message::Insert {
                    oid,
                    new: r.tuple()?,
                },
                k => return Err(DecodeError(format!("insert without new tuple ({k})"))),
            }
        }
        b'U' => {
            let oid = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(DecodeError(format!("update without new tuple ({kind})")));
            }
            Message::Update {
                oid,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let oid = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => Message::Delete {
                    oid,
                    old: r.tuple()?,
                },
                k => return Err(DecodeError(format!("delete without old tuple ({k})"))),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let mut oids = Vec::new();
            for _ in 0..n {
                oids.push(r.u32()?);
            }
            Message::Truncate { oids }
        }
        b'M' => {
            let _flags = r.u8()?;
            let _lsn = r.u64()?;
            let prefix = r.cstr()?;
            let len = r.u32()? as usize;
            Message::Message {
                prefix,
                content: r.take(len)?.to_vec(),
            }
        }
        other => Message::Other(other),
    })
}

/// Parse a textual LSN (`16/B374D848`).
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

pub fn format_lsn(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(vals: &[Option<&str>]) -> Vec<u8> {
        let mut v = (vals.len() as u16).to_be_bytes().to_vec();
        for x in vals {
            match x {
                None => v.push(b'n'),
                Some("\u{0}u") => v.push(b'u'),
                Some(s) => {
                    v.push(b't');
                    v.extend((s.len() as u32).to_be_bytes());
                    v.extend(s.as_bytes());
                }
            }
        }
        v
    }

    #[test]
    fn begin_and_commit() {
        let mut b = vec![b'B'];
        b.extend(0x1_0000_0010u64.to_be_bytes());
        b.extend(5i64.to_be_bytes());
        b.extend(777u32.to_be_bytes());
        assert_eq!(
            decode(&b).unwrap(),
            Message::Begin {
                final_lsn: 0x1_0000_0010,
                commit_ts: 5,
                xid: 777
            }
        );
        let mut c = vec![b'C', 0];
        c.extend(10u64.to_be_bytes());
        c.extend(20u64.to_be_bytes());
        c.extend(30u64.to_be_bytes());
        assert_eq!(
            decode(&c).unwrap(),
            Message::Commit {
                commit_lsn: 10,
                end_lsn: 20,
                commit_ts: 30
            }
        );
    }

    #[test]
    fn relation_lists_key_columns() {
        let mut r = vec![b'R'];
        r.extend(16384u32.to_be_bytes());
        r.extend(b"public\0t\0");
        r.push(b'd');
        r.extend(2u16.to_be_bytes());
        r.push(1);
        r.extend(b"id\0");
        r.extend(20u32.to_be_bytes());
        r.extend((-1i32).to_be_bytes());
        r.push(0);
        r.extend(b"v\0");
        r.extend(25u32.to_be_bytes());
        r.extend((-1i32).to_be_bytes());
        let Message::Relation { oid, columns, .. } = decode(&r).unwrap() else {
            panic!()
        };
        assert_eq!(oid, 16384);
        assert_eq!(columns.len(), 2);
        assert!(columns[0].key && !columns[1].key);
        assert_eq!(columns[1].name, "v");
    }

    #[test]
    fn update_with_old_key_and_unchanged_toast() {
        let mut u = vec![b'U'];
        u.extend(1u32.to_be_bytes());
        u.push(b'K');
        u.extend(tuple(&[Some("1"), None]));
        u.push(b'N');
        u.extend(tuple(&[Some("2"), Some("\u{0}u")]));
        assert_eq!(
            decode(&u).unwrap(),
            Message::Update {
                oid: 1,
                old: Some(vec![Value::Text("1".into()), Value::Null]),
                new: vec![Value::Text("2".into()), Value::Unchanged]
            }
        );
        let mut plain = vec![b'U'];
        plain.extend(1u32.to_be_bytes());
        plain.push(b'N');
        plain.extend(tuple(&[Some("2"), Some("x")]));
        assert!(matches!(
            decode(&plain).unwrap(),
            Message::Update { old: None, .. }
        ));
    }

    #[test]
    fn delete_insert_truncate_message() {
        let mut d = vec![b'D'];
        d.extend(9u32.to_be_bytes());
        d.push(b'K');
        d.extend(tuple(&[Some("42")]));
        assert_eq!(
            decode(&d).unwrap(),
            Message::Delete {
                oid: 9,
                old: vec![Value::Text("42".into())]
            }
        );
        let mut i = vec![b'I'];
        i.extend(9u32.to_be_bytes());
        i.push(b'N');
        i.extend(tuple(&[Some("é")]));
        assert!(matches!(
            decode(&i).unwrap(),
            Message::Insert { oid: 9, .. }
        ));
        let mut t = vec![b'T'];
        t.extend(2u32.to_be_bytes());
        t.push(0);
        t.extend(9u32.to_be_bytes());
        t.extend(10u32.to_be_bytes());
        assert_eq!(decode(&t).unwrap(), Message::Truncate { oids: vec![9, 10] });
        let mut m = vec![b'M', 1];
        m.extend(5u64.to_be_bytes());
        m.extend(b"godwit\0");
        m.extend(3u32.to_be_bytes());
        m.extend(b"abc");
        assert_eq!(
            decode(&m).unwrap(),
            Message::Message {
                prefix: "godwit".into(),
                content: b"abc".to_vec()
            }
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(decode(&[b'B', 0, 0]).is_err());
        assert!(decode(&[]).is_err());
        let mut u = vec![b'U'];
        u.extend(1u32.to_be_bytes());
        u.push(b'N');
        u.extend(5u16.to_be_bytes());
        assert!(decode(&u).is_err());
    }

    #[test]
    fn lsn_text_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
