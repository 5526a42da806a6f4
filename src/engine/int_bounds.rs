//! Verification chunks of a table whose key is one integer column, cut by arithmetic
//! (docs/how-it-works.md, "Verify before the swap"): used by both engines' verify views.

use crate::engine::{Key, KeyPart};

/// How the key's values are written as key parts.
#[derive(Debug, Clone, Copy)]
pub enum IntKey {
    Signed,
    Unsigned,
    /// As text (PostgreSQL binds keys as text).
    Text,
}

/// Bounds of verification chunks for a single integer key: `width` key values per chunk,
/// from the smallest key to the largest in the snapshot. A bound is any key value (the
/// ranges only have to be contiguous), so finding one by scanning `rows` index entries,
/// which costs about as much as the chunk's checksum, is not needed. The width follows
/// the rows the last chunk held, so sparse keys still give chunks of about `rows` rows.
pub struct IntBounds {
    kind: IntKey,
    min: i128,
    max: i128,
    width: i128,
    /// Rows of the last chunk and the width it had.
    last: Option<(u64, i128)>,
}

impl IntBounds {
    pub fn new(kind: IntKey, min: i128, max: i128) -> IntBounds {
        IntBounds {
            kind,
            min,
            max,
            width: 0,
            last: None,
        }
    }

    /// The chunk just compared held `rows` rows of the original.
    pub fn chunk_had(&mut self, rows: u64) {
        self.last = Some((rows, self.width));
    }

    /// The bound after `after` for a chunk of about `rows` rows; `None` inside: the
    /// rest of the table. `None` outside: `after` is not a key of this kind.
    pub fn next(&mut self, after: Option<&Key>, rows: u64) -> Option<Option<Key>> {
        let start = match after {
            None => self.min - 1,
            Some(k) => match k.as_slice() {
                [KeyPart::Int(v)] => *v as i128,
                [KeyPart::UInt(v)] => *v as i128,
                [KeyPart::Text(v)] => v.parse().ok()?,
                _ => return None,
            },
        };
        let rows = rows.max(1) as i128;
        self.width = match self.last.take() {
            // Fewer rows than asked: widen (at most 16 times per chunk).
            Some((got, width)) if (got as i128) < rows => {
                (width * rows / (got as i128).max(1)).min(width * 16)
            }
            Some((_, width)) => width,
            None => rows,
        }
        .max(1);
        let bound = start + self.width;
        if bound >= self.max {
            return Some(None);
        }
        Some(Some(vec![match self.kind {
            IntKey::Signed => KeyPart::Int(bound as i64),
            IntKey::Unsigned => KeyPart::UInt(bound as u64),
            IntKey::Text => KeyPart::Text(bound.to_string()),
        }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: i128, max: i128) -> IntBounds {
        IntBounds::new(IntKey::Signed, min, max)
    }

    fn int(k: &Option<Key>) -> i64 {
        match k.as_ref().unwrap().as_slice() {
            [KeyPart::Int(v)] => *v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn integer_keys_are_cut_by_arithmetic_and_cover_the_table() {
        // Dense keys 1..=100, chunks of 30 rows: (0,30], (30,60], (60,90], then the rest.
        let mut b = bounds(1, 100);
        let first = b.next(None, 30).unwrap();
        assert_eq!(int(&first), 30);
        b.chunk_had(30);
        let second = b.next(first.as_ref(), 30).unwrap();
        assert_eq!(int(&second), 60);
        b.chunk_had(30);
        let third = b.next(second.as_ref(), 30).unwrap();
        assert_eq!(int(&third), 90);
        b.chunk_had(30);
        assert_eq!(b.next(third.as_ref(), 30).unwrap(), None, "the rest");
    }

    #[test]
    fn sparse_integer_keys_widen_the_chunks() {
        // One row in the first chunk of 10 keys: the next covers 10 times as many keys,
        // but never more than 16 times the last width.
        let mut b = bounds(0, 1_000_000);
        let first = b.next(None, 10).unwrap();
        b.chunk_had(1);
        let second = b.next(first.as_ref(), 10).unwrap();
        assert_eq!(int(&second) - int(&first), 100);
        // No row in 100 keys, 100 rows asked: 100 times wider, held to 16 times.
        b.chunk_had(0);
        let third = b.next(second.as_ref(), 100).unwrap();
        assert_eq!(int(&third) - int(&second), 1600);
    }

    #[test]
    fn unsigned_keys_past_the_signed_range() {
        let mut b = IntBounds::new(IntKey::Unsigned, u64::MAX as i128 - 50, u64::MAX as i128);
        let first = b.next(None, 20).unwrap();
        assert_eq!(first, Some(vec![KeyPart::UInt(u64::MAX - 31)]));
        b.chunk_had(20);
        assert_eq!(b.next(first.as_ref(), 40).unwrap(), None);
    }

    #[test]
    fn text_keys_for_postgres() {
        let mut b = IntBounds::new(IntKey::Text, -5, 100);
        let first = b.next(None, 50).unwrap();
        assert_eq!(first, Some(vec![KeyPart::Text("44".into())]));
        b.chunk_had(50);
        assert_eq!(
            b.next(first.as_ref(), 50).unwrap(),
            Some(vec![KeyPart::Text("94".into())])
        );
    }
}
