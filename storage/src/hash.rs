//! Hash values (HSET and friends). A small hash is one byte buffer of length-prefixed
//! field/value pairs, in insertion order, as Redis's listpack is: one allocation for the whole
//! hash, searched linearly (it holds at most hash-max-listpack-entries short pairs). Past the
//! thresholds it becomes an insertion-indexed map, so HRANDFIELD picks in O(1) and HSCAN can use
//! the same deletion-safe descending cursor as SCAN.

use std::cell::Cell;

use ahash::RandomState;
use bytes::Bytes;
use indexmap::IndexMap;

use crate::key::Key;
use crate::packed::{get_varint, put_varint, varint_len, Codec, Packed, Slot};

type Table = IndexMap<Key, Bytes, RandomState>;

#[derive(Clone, Debug)]
pub struct HashValue {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// What Redis would still hold as a listpack.
    Pack(Pack),
    /// Converted once hash-max-listpack-entries/-value was exceeded; never converted back.
    Table(Box<Table>),
}

/// A packed hash's entries: pairs encoded as `varint(field len) field varint(value len) value`.
/// No back-length: a hash is only ever walked from its first pair.
enum FieldValue {}

impl Codec for FieldValue {
    type Entry<'a> = (&'a [u8], &'a [u8]);

    const BACK_LENGTH: bool = false;

    fn body_len((field, value): (&[u8], &[u8])) -> usize {
        varint_len(field.len()) + field.len() + varint_len(value.len()) + value.len()
    }

    fn encode(buf: &mut Vec<u8>, (field, value): (&[u8], &[u8])) {
        put_varint(buf, field.len());
        buf.extend_from_slice(field);
        put_varint(buf, value.len());
        buf.extend_from_slice(value);
    }

    fn decode(buf: &[u8], start: usize) -> ((&[u8], &[u8]), usize) {
        let mut p = start;
        let flen = get_varint(buf, &mut p);
        let field = &buf[p..p + flen];
        p += flen;
        let vlen = get_varint(buf, &mut p);
        ((field, &buf[p..p + vlen]), p + vlen)
    }
}

type Pack = Packed<FieldValue>;

impl Pack {
    fn find(&self, field: &[u8]) -> Option<Slot<(&[u8], &[u8])>> {
        self.iter().find(|s| s.entry.0 == field)
    }

    fn to_table(&self) -> Table {
        let mut t = Table::with_capacity_and_hasher(self.len() + 1, RandomState::new());
        for s in self.iter() {
            let (field, value) = s.entry;
            t.insert(Key::from_slice(field), Bytes::copy_from_slice(value));
        }
        t
    }
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue {
            repr: Repr::Pack(Pack::default()),
        }
    }
}

/// The result of one HSCAN step: the field-value pairs seen and the position to resume from.
pub struct HashScanStep {
    pub pairs: Vec<(Bytes, Bytes)>,
    pub next: usize,
}

impl HashValue {
    /// The hash table's room, once converted from the packed form (DEBUG HTSTATS-KEY).
    pub fn table_capacity(&self) -> Option<usize> {
        match &self.repr {
            Repr::Pack(_) => None,
            Repr::Table(t) => Some(t.capacity()),
        }
    }

    pub fn new() -> HashValue {
        HashValue::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether Redis would still hold this hash as a listpack (it converts to a hashtable once
    /// hash-max-listpack-entries/-value is exceeded, and never back).
    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    pub fn encoding(&self) -> &'static str {
        if self.is_listpack() {
            "listpack"
        } else {
            "hashtable"
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| s.entry.1),
            Repr::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    /// The value of `field` as an owned `Bytes` (shared, not copied, in a hashtable).
    pub fn get_bytes(&self, field: &[u8]) -> Option<Bytes> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| Bytes::copy_from_slice(s.entry.1)),
            Repr::Table(t) => t.get(field).cloned(),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert(&mut self) -> &mut Table {
        if let Repr::Pack(p) = &self.repr {
            self.repr = Repr::Table(Box::new(p.to_table()));
        }
        match &mut self.repr {
            Repr::Table(t) => t,
            Repr::Pack(_) => unreachable!("just converted"),
        }
    }

    /// Sets `field` to `value`; returns true when the field is new. An existing field keeps its
    /// position (a listpack replaces the value in place). Converts to a hashtable as Redis does
    /// when the field or value is longer than `max_value` or the hash grows past `max_entries`.
    pub fn set(
        &mut self,
        field: &[u8],
        value: &[u8],
        max_entries: usize,
        max_value: usize,
    ) -> bool {
        if let Repr::Pack(p) = &mut self.repr {
            if field.len() <= max_value && value.len() <= max_value {
                // An existing pair is rewritten where it is; a new one goes last, so the pack
                // keeps insertion order.
                if let Some((start, end)) = p.find(field).map(|s| (s.start, s.end)) {
                    p.replace_here(start, end, (field, value));
                    return false;
                }
                if p.len() < max_entries {
                    p.insert_at(p.bytes(), (field, value));
                    return true;
                }
            }
        }
        let t = self.convert();
        match t.get_mut(field) {
            Some(v) => {
                *v = Bytes::copy_from_slice(value);
                false
            }
            None => {
                t.insert(Key::from_slice(field), Bytes::copy_from_slice(value));
                true
            }
        }
    }

    /// Removes `field`; returns whether it was there. A listpack keeps the order of the rest
    /// (Redis's HGETALL shows it); a hashtable has no order to keep, so the removal is O(1).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => match p.find(field).map(|s| (s.start, s.end)) {
                Some((start, end)) => {
                    p.remove_span(start, end, 1);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.swap_remove(field).is_some(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (pack, table) = match &self.repr {
            Repr::Pack(p) => (Some(p.iter().map(|s| s.entry)), None),
            Repr::Table(t) => (None, Some(t.iter().map(|(k, v)| (k.as_bytes(), &v[..])))),
        };
        pack.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// The pair at position `i` (O(i) in a listpack, O(1) in a hashtable).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Pack(p) => p.iter().nth(i).map(|s| s.entry),
            Repr::Table(t) => t.get_index(i).map(|(k, v)| (k.as_bytes(), &v[..])),
        }
    }

    /// Visits fields from position `cursor` downwards (0 = from the top), like `Db::scan`.
    pub fn scan(&self, cursor: usize, count: usize) -> HashScanStep {
        let len = self.len();
        let mut pos = if cursor == 0 || cursor > len {
            len
        } else {
            cursor
        };
        let mut pairs = Vec::with_capacity(count.min(pos));
        let pack: Vec<(&[u8], &[u8])> = match &self.repr {
            Repr::Pack(_) => self.iter().collect(),
            Repr::Table(_) => Vec::new(),
        };
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            pairs.push(match &self.repr {
                Repr::Pack(_) => (
                    Bytes::copy_from_slice(pack[pos].0),
                    Bytes::copy_from_slice(pack[pos].1),
                ),
                Repr::Table(t) => {
                    let (k, v) = t.get_index(pos).expect("index below len");
                    (Bytes::copy_from_slice(k.as_bytes()), v.clone())
                }
            });
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

    fn b(s: &str) -> &[u8] {
        s.as_bytes()
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
    fn listpack_replaces_values_of_any_length_in_place() {
        let mut h = HashValue::new();
        for f in ["a", "b", "c"] {
            assert!(h.set(f.as_bytes(), b("x"), 128, 1000));
        }
        let long = "y".repeat(300);
        assert!(!h.set(b"b", long.as_bytes(), 128, 1000));
        assert_eq!(h.get(b"b"), Some(long.as_bytes()));
        assert!(!h.set(b"b", b("zz"), 128, 1000));
        assert!(!h.set(b"a", b(""), 128, 1000));
        let pairs: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(
            pairs,
            vec![(&b"a"[..], &b""[..]), (b"b", b"zz"), (b"c", b"x")]
        );
        assert_eq!(h.get_index(2), Some((&b"c"[..], &b"x"[..])));
        assert_eq!(h.get_index(3), None);
        assert_eq!(h.get_bytes(b"b"), Some(Bytes::from_static(b"zz")));
        assert!(h.remove(b"a"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_index(0), Some((&b"b"[..], &b"zz"[..])));
        assert!(h.contains(b"c") && !h.contains(b"a"));
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn conversion_keeps_every_pair() {
        let mut h = HashValue::new();
        for i in 0..5 {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                5,
                64,
            );
        }
        assert_eq!(h.encoding(), "listpack");
        assert!(h.set(b"f5", b("v5"), 5, 64));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 6);
        for i in 0..6 {
            assert_eq!(
                h.get(format!("f{i}").as_bytes()),
                Some(format!("v{i}").as_bytes())
            );
        }
        // Conversion by an over-long value of an existing field replaces it, not adds.
        let mut h = HashValue::new();
        h.set(b"f", b("1"), 5, 4);
        assert!(!h.set(b"f", b("12345"), 5, 4));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get(b"f"), Some(&b"12345"[..]));
    }

    #[test]
    fn random_below_stays_in_range() {
        for n in 1..50 {
            assert!(random_below(n) < n);
        }
    }
}
