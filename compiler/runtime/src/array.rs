//! Associative arrays: SystemTap's maps, kept in insertion order.
//!
//! SystemTap appends a new entry at the tail of the map's list, iterates
//! from the head, and a full `%` (wrap) array reuses its oldest entry; an
//! array iterated unsorted therefore yields its keys in insertion order.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use tapmatrix_ir::Value;

use crate::stats::Stat;

/// The keys of one element.
pub(crate) type Key = Vec<Value>;

/// One element's value.
#[derive(Debug, Clone)]
pub(crate) enum Elem {
    /// A long or a string.
    Value(Value),
    /// A statistic.
    Stat(Stat),
}

/// FNV-1a: keys are short, and SipHash's flood resistance buys nothing
/// here.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FnvBuild = BuildHasherDefault<Fnv>;

/// The array is full (and does not wrap).
#[derive(Debug)]
pub(crate) struct Full;

/// An associative array.
#[derive(Debug, Clone)]
pub(crate) struct Array {
    entries: HashMap<Key, (u64, Elem), FnvBuild>,
    order: BTreeMap<u64, Key>,
    next: u64,
    limit: usize,
    wrap: bool,
}

impl Array {
    /// An empty array holding at most `limit` entries.
    pub(crate) fn new(limit: usize, wrap: bool) -> Array {
        Array {
            entries: HashMap::default(),
            order: BTreeMap::new(),
            next: 0,
            limit,
            wrap,
        }
    }

    /// An empty array with the same limit and wrapping.
    pub(crate) fn emptied(&self) -> Array {
        Array::new(self.limit, self.wrap)
    }

    /// The element at `key`.
    pub(crate) fn get(&self, key: &[Value]) -> Option<&Elem> {
        self.entries.get(key).map(|(_, elem)| elem)
    }

    /// The element at `key`, if present.
    pub(crate) fn get_mut(&mut self, key: &[Value]) -> Option<&mut Elem> {
        self.entries.get_mut(key).map(|(_, elem)| elem)
    }

    /// The element at `key`, created by `fresh` if absent: a full array
    /// drops its oldest entry when it wraps, and fails otherwise.
    pub(crate) fn entry(
        &mut self,
        key: &[Value],
        fresh: impl FnOnce() -> Elem,
    ) -> Result<&mut Elem, Full> {
        if !self.entries.contains_key(key) {
            if self.entries.len() >= self.limit {
                if !self.wrap || self.limit == 0 {
                    return Err(Full);
                }
                if let Some((_, oldest)) = self.order.pop_first() {
                    self.entries.remove(&oldest);
                }
            }
            let seq = self.next;
            self.next += 1;
            self.order.insert(seq, key.to_vec());
            self.entries.insert(key.to_vec(), (seq, fresh()));
        }
        match self.entries.get_mut(key) {
            Some((_, elem)) => Ok(elem),
            None => Err(Full),
        }
    }

    /// Whether some entry matches `pattern` (`None` is `*`).
    pub(crate) fn contains_matching(&self, pattern: &[Option<Value>]) -> bool {
        if let Some(key) = exact(pattern) {
            return self.entries.contains_key(&key);
        }
        self.entries.keys().any(|key| matches(key, pattern))
    }

    /// Deletes the entries matching `pattern`.
    pub(crate) fn remove_matching(&mut self, pattern: &[Option<Value>]) {
        if let Some(key) = exact(pattern) {
            if let Some((seq, _)) = self.entries.remove(&key) {
                self.order.remove(&seq);
            }
            return;
        }
        let doomed: Vec<u64> = self
            .entries
            .iter()
            .filter(|(key, _)| matches(key, pattern))
            .map(|(_, (seq, _))| *seq)
            .collect();
        for seq in doomed {
            if let Some(key) = self.order.remove(&seq) {
                self.entries.remove(&key);
            }
        }
    }

    /// Deletes every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Elem)> {
        self.order.values().filter_map(|key| {
            self.entries
                .get_key_value(key)
                .map(|(key, (_, elem))| (key, elem))
        })
    }
}

/// The key of a pattern without `*`.
fn exact(pattern: &[Option<Value>]) -> Option<Key> {
    pattern.iter().cloned().collect()
}

/// Whether `key` matches `pattern` (`None` is `*`).
pub(crate) fn matches(key: &[Value], pattern: &[Option<Value>]) -> bool {
    key.len() == pattern.len()
        && key
            .iter()
            .zip(pattern)
            .all(|(k, p)| p.as_ref().is_none_or(|p| p == k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(n: i64) -> Elem {
        Elem::Value(Value::Long(n))
    }

    fn keys(array: &Array) -> Vec<i64> {
        array
            .iter()
            .map(|(key, _)| match key[0] {
                Value::Long(n) => n,
                Value::Str(_) => -1,
            })
            .collect()
    }

    #[test]
    fn keeps_insertion_order_and_fails_when_full() {
        let mut array = Array::new(2, false);
        array.entry(&[Value::Long(5)], || long(1)).unwrap();
        array.entry(&[Value::Long(3)], || long(1)).unwrap();
        array.entry(&[Value::Long(5)], || long(1)).unwrap();
        assert_eq!(keys(&array), [5, 3]);
        assert!(array.entry(&[Value::Long(9)], || long(1)).is_err());
    }

    #[test]
    fn a_wrapping_array_drops_its_oldest_entry() {
        let mut array = Array::new(2, true);
        for k in [1, 2, 3] {
            array.entry(&[Value::Long(k)], || long(0)).unwrap();
        }
        assert_eq!(keys(&array), [2, 3]);
    }

    #[test]
    fn slices_match_and_delete() {
        let mut array = Array::new(10, false);
        for (a, b) in [(1, 1), (1, 2), (2, 1)] {
            array
                .entry(&[Value::Long(a), Value::Long(b)], || long(0))
                .unwrap();
        }
        assert!(array.contains_matching(&[None, Some(Value::Long(2))]));
        assert!(!array.contains_matching(&[Some(Value::Long(2)), Some(Value::Long(2))]));
        array.remove_matching(&[Some(Value::Long(1)), None]);
        assert_eq!(keys(&array), [2]);
    }
}
