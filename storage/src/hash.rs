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
use crate::packed::{get_varint, put_varint, shrink, varint_len};

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

/// Pairs encoded back to back as `varint(field len) field varint(value len) value`.
#[derive(Clone, Debug, Default)]
struct Pack {
    buf: Vec<u8>,
    len: u32,
}

/// One pair's place in a pack: it spans `start..end`, its value header starts at `value_at`.
struct Slot<'a> {
    start: usize,
    value_at: usize,
    end: usize,
    field: &'a [u8],
    value: &'a [u8],
}

struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let mut p = start;
        let flen = get_varint(self.buf, &mut p);
        let field = &self.buf[p..p + flen];
        p += flen;
        let value_at = p;
        let vlen = get_varint(self.buf, &mut p);
        let value = &self.buf[p..p + vlen];
        p += vlen;
        self.pos = p;
        Some(Slot {
            start,
            value_at,
            end: p,
            field,
            value,
        })
    }
}

impl Pack {
    fn slots(&self) -> PackIter<'_> {
        PackIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<Slot<'_>> {
        self.slots().find(|s| s.field == field)
    }

    fn push(&mut self, field: &[u8], value: &[u8]) {
        let need = varint_len(field.len()) + field.len() + varint_len(value.len()) + value.len();
        // Exact growth, like a listpack's realloc: a small hash should not carry slack.
        self.buf.reserve_exact(need);
        put_varint(&mut self.buf, field.len());
        self.buf.extend_from_slice(field);
        put_varint(&mut self.buf, value.len());
        self.buf.extend_from_slice(value);
        self.len += 1;
    }

    /// Replaces the value of the pair at `value_at..end` in place.
    fn replace(&mut self, value_at: usize, end: usize, value: &[u8]) {
        let old_vlen = {
            let mut p = value_at;
            get_varint(&self.buf, &mut p)
        };
        if old_vlen == value.len() {
            self.buf[end - value.len()..end].copy_from_slice(value);
            return;
        }
        let mut enc = Vec::with_capacity(varint_len(value.len()) + value.len());
        put_varint(&mut enc, value.len());
        enc.extend_from_slice(value);
        if enc.len() > end - value_at {
            self.buf.reserve_exact(enc.len() - (end - value_at));
        }
        self.buf.splice(value_at..end, enc);
        shrink(&mut self.buf);
    }

    fn remove_range(&mut self, start: usize, end: usize) {
        self.buf.drain(start..end);
        self.len -= 1;
        shrink(&mut self.buf);
    }

    fn to_table(&self) -> Table {
        let mut t = Table::with_capacity_and_hasher(self.len as usize + 1, RandomState::new());
        for s in self.slots() {
            t.insert(Key::from_slice(s.field), Bytes::copy_from_slice(s.value));
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
    pub fn new() -> HashValue {
        HashValue::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len as usize,
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
            Repr::Pack(p) => p.find(field).map(|s| s.value),
            Repr::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    /// The value of `field` as an owned `Bytes` (shared, not copied, in a hashtable).
    pub fn get_bytes(&self, field: &[u8]) -> Option<Bytes> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| Bytes::copy_from_slice(s.value)),
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
                if let Some((value_at, end)) = p.find(field).map(|s| (s.value_at, s.end)) {
                    p.replace(value_at, end, value);
                    return false;
                }
                if (p.len as usize) < max_entries {
                    p.push(field, value);
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
                    p.remove_range(start, end);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.swap_remove(field).is_some(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (pack, table) = match &self.repr {
            Repr::Pack(p) => (Some(p.slots().map(|s| (s.field, s.value))), None),
            Repr::Table(t) => (None, Some(t.iter().map(|(k, v)| (k.as_bytes(), &v[..])))),
        };
        pack.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// The pair at position `i` (O(i) in a listpack, O(1) in a hashtable).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Pack(p) => p.slots().nth(i).map(|s| (s.field, s.value)),
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
