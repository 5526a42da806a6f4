//! The de-duplicated set of keys whose rows must be re-read from the original.

use crate::engine::Key;
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct DirtySet {
    keys: HashSet<Key>,
}

impl DirtySet {
    pub fn extend(&mut self, keys: Vec<Key>) {
        self.keys.extend(keys);
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Take every key out, sorted (so batches touch neighbouring rows).
    pub fn take(&mut self) -> Vec<Key> {
        let mut v: Vec<Key> = self.keys.drain().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::KeyPart;

    #[test]
    fn a_key_touched_many_times_is_flushed_once() {
        let mut d = DirtySet::default();
        for _ in 0..1000 {
            d.extend(vec![vec![KeyPart::Int(7)], vec![KeyPart::Int(3)]]);
        }
        assert_eq!(d.len(), 2);
        assert_eq!(d.take(), vec![vec![KeyPart::Int(3)], vec![KeyPart::Int(7)]]);
        assert!(d.is_empty());
    }
}
