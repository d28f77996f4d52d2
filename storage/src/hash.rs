//! Hash values (HSET and friends). Insertion-indexed so HRANDFIELD picks in O(1) and HSCAN can use
//! the same deletion-safe descending cursor as SCAN.

use std::cell::Cell;

use ahash::RandomState;
use bytes::Bytes;
use indexmap::IndexMap;

use crate::key::Key;

#[derive(Clone, Debug)]
pub struct HashValue {
    pub fields: IndexMap<Key, Bytes, RandomState>,
    /// Whether Redis would still hold this hash as a listpack (it converts to a hashtable once
    /// hash-max-listpack-entries/-value is exceeded, and never back).
    pub listpack: bool,
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue {
            fields: IndexMap::default(),
            listpack: true,
        }
    }
}

/// The result of one HSCAN step: the field-value pairs seen and the position to resume from.
pub struct HashScanStep {
    pub pairs: Vec<(Bytes, Bytes)>,
    pub next: usize,
}

impl HashValue {
    pub fn new() -> HashValue {
        HashValue::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.listpack {
            "listpack"
        } else {
            "hashtable"
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.fields.get(field)
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// Sets `field` to `value`; returns true when the field is new. An existing field keeps its
    /// position (a listpack replaces the value in place). Converts to a hashtable as Redis does
    /// when the field or value is longer than `max_value` or the hash grows past `max_entries`.
    pub fn set(
        &mut self,
        field: &[u8],
        value: Bytes,
        max_entries: usize,
        max_value: usize,
    ) -> bool {
        if self.listpack && (field.len() > max_value || value.len() > max_value) {
            self.listpack = false;
        }
        let new = match self.fields.get_mut(field) {
            Some(v) => {
                *v = value;
                false
            }
            None => {
                self.fields.insert(Key::from_slice(field), value);
                true
            }
        };
        if self.listpack && self.fields.len() > max_entries {
            self.listpack = false;
        }
        new
    }

    /// Removes `field`; returns whether it was there. A listpack keeps the order of the rest
    /// (Redis's HGETALL shows it); a hashtable has no order to keep, so the removal is O(1).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        if self.listpack {
            self.fields.shift_remove(field).is_some()
        } else {
            self.fields.swap_remove(field).is_some()
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Bytes)> {
        self.fields.iter().map(|(k, v)| (k.as_bytes(), v))
    }

    pub fn get_index(&self, i: usize) -> Option<(&[u8], &Bytes)> {
        self.fields.get_index(i).map(|(k, v)| (k.as_bytes(), v))
    }

    /// Visits fields from position `cursor` downwards (0 = from the top), like `Db::scan`.
    pub fn scan(&self, cursor: usize, count: usize) -> HashScanStep {
        let mut pos = if cursor == 0 || cursor > self.fields.len() {
            self.fields.len()
        } else {
            cursor
        };
        let mut pairs = Vec::with_capacity(count.min(pos));
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            let (k, v) = self.fields.get_index(pos).expect("index below len");
            pairs.push((Bytes::copy_from_slice(k.as_bytes()), v.clone()));
        }
        HashScanStep { pairs, next: pos }
    }
}

/// A cheap per-thread random number below `n` (n > 0), for HRANDFIELD.
pub fn random_below(n: usize) -> usize {
    thread_local! {
        static SEED: Cell<u64> = Cell::new(RandomState::new().hash_one(0u64) | 1);
    }
    SEED.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn listpack_keeps_order_and_converts_on_thresholds() {
        let mut h = HashValue::new();
        assert!(h.set(b"c", b("1"), 3, 8));
        assert!(h.set(b"a", b("2"), 3, 8));
        assert!(h.set(b"b", b("3"), 3, 8));
        assert!(!h.set(b"c", b("4"), 3, 8));
        assert!(h.remove(b"c"));
        assert!(!h.remove(b"c"));
        let order: Vec<&[u8]> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(order, vec![&b"a"[..], b"b"]);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"c", b("1"), 3, 8);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"d", b("1"), 3, 8);
        assert_eq!(h.encoding(), "hashtable");
        // Never back, even when small again.
        for f in ["a", "b", "c"] {
            h.remove(f.as_bytes());
        }
        assert_eq!(h.encoding(), "hashtable");

        let mut h = HashValue::new();
        h.set(b"f", b("123456789"), 3, 8);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = HashValue::new();
        h.set(b"field-long", b("1"), 3, 8);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn scan_survives_deletions() {
        let mut h = HashValue::new();
        for i in 0..300 {
            h.set(format!("f{i}").as_bytes(), b("v"), 128, 64);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step_no = 0;
        loop {
            let step = h.scan(cursor, 7);
            for (k, _) in step.pairs {
                seen.insert(k);
            }
            step_no += 1;
            h.remove(format!("f{}", step_no * 2 + 1).as_bytes());
            if step.next == 0 {
                break;
            }
            cursor = step.next;
        }
        for i in (0..300).step_by(2) {
            assert!(seen.contains(format!("f{i}").as_bytes()), "f{i} missed");
        }
    }

    #[test]
    fn random_below_stays_in_range() {
        for n in 1..50 {
            assert!(random_below(n) < n);
        }
    }
}
