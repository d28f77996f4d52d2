//! List values (LPUSH and friends). A short list is one byte buffer of length-prefixed
//! elements, as the single listpack node of a short Redis quicklist is: one allocation, walked
//! from either end. A longer one is a deque of separately allocated elements, so pushes and
//! pops at either end stay O(1) whatever its length. OBJECT ENCODING shows neither: Redis 7.0
//! reports every list as a quicklist.

use std::collections::{vec_deque, VecDeque};
use std::iter::Rev;

use bytes::Bytes;

use crate::packed::{
    get_varint, put_varint, varint_len, Codec, Elem, Packed, PackedIter, PackedRevIter,
};

/// A list leaves the packed form when it would pass either limit (the bytes are Redis's
/// default list-max-listpack-size of 8 KB per node), and comes back once under half of both,
/// so that a list hovering at a limit does not convert on every push and pop.
const PACK_MAX_ENTRIES: usize = 128;
const PACK_MAX_BYTES: usize = 8192;

/// Which end of a list an operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// A packed list's entries: `varint(len) bytes backlen`, the back-length letting pops and
/// reverse walks start at the tail.
enum Element {}

impl Codec for Element {
    type Entry<'a> = &'a [u8];

    const BACK_LENGTH: bool = true;

    fn body_len(v: &[u8]) -> usize {
        varint_len(v.len()) + v.len()
    }

    fn encode(buf: &mut Vec<u8>, v: &[u8]) {
        put_varint(buf, v.len());
        buf.extend_from_slice(v);
    }

    fn decode(buf: &[u8], start: usize) -> (&[u8], usize) {
        let mut p = start;
        let len = get_varint(buf, &mut p);
        (&buf[p..p + len], p + len)
    }
}

type Pack = Packed<Element>;

/// The encoded size of an element, back-length included.
fn entry_len(v: &[u8]) -> usize {
    Pack::entry_len(v)
}

impl Pack {
    /// Whether `extra` more elements taking `bytes` more bytes still fit.
    fn fits(&self, extra: usize, bytes: usize) -> bool {
        self.len() + extra <= PACK_MAX_ENTRIES && self.bytes() + bytes <= PACK_MAX_BYTES
    }

    /// Pushes `v` if it fits; false when the list must leave the packed form first.
    fn push(&mut self, end: End, v: &[u8]) -> bool {
        if !self.fits(1, entry_len(v)) {
            return false;
        }
        let at = if end == End::Head { 0 } else { self.bytes() };
        self.insert_at(at, v);
        true
    }
}

#[derive(Clone, Debug, Default)]
struct Deque {
    items: VecDeque<Bytes>,
    /// What the elements would take packed, to know when they fit a pack again.
    packed: usize,
}

impl Deque {
    #[inline]
    fn push(&mut self, end: End, v: &[u8]) {
        self.packed += entry_len(v);
        let v = Bytes::copy_from_slice(v);
        match end {
            End::Head => self.items.push_front(v),
            End::Tail => self.items.push_back(v),
        }
    }

    #[inline]
    fn pop(&mut self, end: End) -> Option<Bytes> {
        let v = match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        }?;
        self.packed -= entry_len(&v);
        Some(v)
    }
}

#[derive(Clone, Debug)]
enum Repr {
    Pack(Pack),
    Deque(Box<Deque>),
}

#[derive(Clone, Debug)]
pub struct ListValue {
    repr: Repr,
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue {
            repr: Repr::Pack(Pack::default()),
        }
    }
}

/// Elements in the order of the method that made the iterator.
pub struct Iter<'a> {
    repr: IterRepr<'a>,
    /// Elements still to come (so that collecting a reply allocates once).
    left: usize,
}

enum IterRepr<'a> {
    Pack(PackedIter<'a, Element>),
    PackRev(PackedRevIter<'a, Element>),
    Deque(vec_deque::Iter<'a, Bytes>),
    DequeRev(Rev<vec_deque::Iter<'a, Bytes>>),
}

impl<'a> Iter<'a> {
    /// The same walk yielding owned elements, for replies: copied out of a pack, shared (not
    /// copied) from a deque.
    pub fn owned(self) -> Owned<'a> {
        Owned(self)
    }

    fn next_elem(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match &mut self.repr {
            IterRepr::Pack(it) => it.next().map(|e| Elem::Packed(e.entry)),
            IterRepr::PackRev(it) => it.next().map(|e| Elem::Packed(e.entry)),
            IterRepr::Deque(it) => it.next().map(Elem::Shared),
            IterRepr::DequeRev(it) => it.next().map(Elem::Shared),
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.next_elem().map(|e| e.as_slice())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// See `Iter::owned`.
pub struct Owned<'a>(Iter<'a>);

impl Iterator for Owned<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        self.0.next_elem().map(|e| e.to_bytes())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Owned<'_> {}

impl ListValue {
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len(),
            Repr::Deque(d) => d.items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Whether the list is in its packed form (for tests and memory reports; not visible to
    /// clients).
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    fn make_deque(&mut self) -> &mut Deque {
        if let Repr::Pack(p) = &self.repr {
            // A power of two, as growth from empty gives: those fit the allocator's size
            // classes (129 slots grow to 516, 16.5 KB, just past a class: 4 KB more per list).
            let mut items = VecDeque::with_capacity((p.len() + 1).next_power_of_two());
            items.extend(p.iter().map(|e| Bytes::copy_from_slice(e.entry)));
            self.repr = Repr::Deque(Box::new(Deque {
                items,
                packed: p.bytes(),
            }));
        }
        match &mut self.repr {
            Repr::Deque(d) => d,
            Repr::Pack(_) => unreachable!("just converted"),
        }
    }

    /// Returns to the packed form once the elements take under half of both limits.
    fn maybe_repack(&mut self) {
        if let Repr::Deque(d) = &self.repr {
            if d.items.len() <= PACK_MAX_ENTRIES / 2 && d.packed <= PACK_MAX_BYTES / 2 {
                let p = Pack::from_entries(d.items.iter().map(|v| &v[..]));
                debug_assert_eq!(p.bytes(), d.packed);
                self.repr = Repr::Pack(p);
            }
        }
    }

    /// Pushes a copy of `value` (the caller's bytes usually slice a whole request buffer).
    // Inlined, with each form's work in its own function: a long list's push and pop then cost
    // what they did before the packed form existed (not inlined, about 20 ns more per pop).
    #[inline]
    pub fn push(&mut self, end: End, value: &[u8]) {
        match &mut self.repr {
            Repr::Deque(d) => d.push(end, value),
            Repr::Pack(p) => {
                if !p.push(end, value) {
                    self.make_deque().push(end, value);
                }
            }
        }
    }

    #[inline]
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        match &mut self.repr {
            Repr::Pack(p) => p.pop(end == End::Tail, Bytes::copy_from_slice),
            Repr::Deque(d) => {
                let v = d.pop(end)?;
                if d.items.len() <= PACK_MAX_ENTRIES / 2 {
                    self.maybe_repack();
                }
                Some(v)
            }
        }
    }

    /// The position of a Redis index (negative counts from the tail), if it is in the list.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let i = self.position(index)?;
        Some(match &self.repr {
            Repr::Pack(p) => p.get(i).entry,
            Repr::Deque(d) => &d.items[i],
        })
    }

    /// Replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        let Some(i) = self.position(index) else {
            return false;
        };
        let n = entry_len(value);
        if let Repr::Pack(p) = &mut self.repr {
            let (start, end) = {
                let e = p.get(i);
                (e.start, e.end)
            };
            if p.bytes() - (end - start) + n <= PACK_MAX_BYTES {
                p.replace_here(start, end, value);
                return true;
            }
        }
        let d = self.make_deque();
        d.packed = d.packed - entry_len(&d.items[i]) + n;
        d.items[i] = Bytes::copy_from_slice(value);
        self.maybe_repack();
        true
    }

    /// The inclusive range of positions LRANGE's `start stop` select, or None when empty.
    pub fn range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.len() as i64;
        let mut start = if start < 0 { len + start } else { start };
        let mut end = if end < 0 { len + end } else { end };
        if start < 0 {
            start = 0;
        }
        if start > end || start >= len {
            return None;
        }
        if end >= len {
            end = len - 1;
        }
        Some((start as usize, end as usize))
    }

    /// Elements from position `start` to the tail.
    pub fn iter_from(&self, start: usize) -> Iter<'_> {
        let repr = match &self.repr {
            Repr::Pack(p) => IterRepr::Pack(p.iter_at(p.offset_of(start))),
            Repr::Deque(d) => IterRepr::Deque(d.items.range(start.min(d.items.len())..)),
        };
        Iter {
            repr,
            left: self.len().saturating_sub(start),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The `count` elements from position `start` (which must exist), owned and passed through
    /// `f`: LRANGE's reply in one pass. A deque's elements are shared rather than copied, in a
    /// loop specialised per form (through `Iter` it would cost some 13 ns more per element).
    pub fn map_range<R>(&self, start: usize, count: usize, f: impl FnMut(Bytes) -> R) -> Vec<R> {
        match &self.repr {
            Repr::Pack(p) => p
                .iter_at(p.offset_of(start))
                .take(count)
                .map(|e| Bytes::copy_from_slice(e.entry))
                .map(f)
                .collect(),
            Repr::Deque(d) => d
                .items
                .range(start..start + count)
                .cloned()
                .map(f)
                .collect(),
        }
    }

    /// Elements from the tail to the head.
    pub fn iter_rev(&self) -> Iter<'_> {
        let repr = match &self.repr {
            Repr::Pack(p) => IterRepr::PackRev(p.iter_before(p.bytes())),
            Repr::Deque(d) => IterRepr::DequeRev(d.items.iter().rev()),
        };
        Iter {
            repr,
            left: self.len(),
        }
    }

    /// Keeps only the LTRIM range `start stop`; the list may become empty.
    pub fn trim(&mut self, start: i64, end: i64) {
        let range = self.range(start, end);
        match &mut self.repr {
            Repr::Pack(p) => match range {
                None => *p = Pack::default(),
                Some((s, e)) => {
                    let (from, to) = (p.offset_of(s), p.offset_of(e + 1));
                    p.keep_span(from, to, e - s + 1);
                }
            },
            Repr::Deque(d) => {
                let (s, e) = range.unwrap_or((d.items.len(), d.items.len()));
                let dropped: usize = d
                    .items
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i < s || i > e)
                    .map(|(_, v)| entry_len(v))
                    .sum();
                d.packed -= dropped;
                d.items.truncate(e.saturating_add(1));
                d.items.drain(..s.min(d.items.len()));
                self.maybe_repack();
            }
        }
    }

    /// Inserts `value` before or after the first element equal to `pivot`; false when the
    /// pivot is not found.
    pub fn insert(&mut self, pivot: &[u8], value: &[u8], after: bool) -> bool {
        let Some(i) = self.iter().position(|e| *e == *pivot) else {
            return false;
        };
        let i = if after { i + 1 } else { i };
        let n = entry_len(value);
        if let Repr::Pack(p) = &mut self.repr {
            if p.fits(1, n) {
                let at = p.offset_of(i);
                p.insert_at(at, value);
                return true;
            }
        }
        let d = self.make_deque();
        d.packed += n;
        d.items.insert(i, Bytes::copy_from_slice(value));
        true
    }

    /// Keeps the elements for which `keep` holds, visiting them from the head.
    fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        match &mut self.repr {
            Repr::Pack(p) => p.retain(keep),
            Repr::Deque(d) => {
                let Deque { items, packed } = &mut **d;
                items.retain(|v| {
                    let k = keep(v);
                    if !k {
                        *packed -= entry_len(v);
                    }
                    k
                });
                self.maybe_repack();
            }
        }
    }

    /// LREM: removes up to `count` elements equal to `value` from the head (count > 0),
    /// from the tail (count < 0), or all of them (count 0). Returns how many were removed.
    pub fn remove(&mut self, value: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let before = self.len();
        if count >= 0 {
            let mut removed = 0;
            self.retain(|e| {
                let hit = removed < limit && e == value;
                removed += hit as usize;
                !hit
            });
        } else {
            // Every match at or after the `limit`th match from the tail goes.
            let mut from = 0;
            let mut seen = 0;
            for (i, e) in self.iter_rev().enumerate() {
                if *e == *value {
                    seen += 1;
                    if seen == limit {
                        from = before - 1 - i;
                        break;
                    }
                }
            }
            let mut i = 0;
            self.retain(|e| {
                let keep = i < from || e != value;
                i += 1;
                keep
            });
        }
        before - self.len()
    }

    /// LPOS: positions of elements equal to `value`, starting at the `rank`th match (negative:
    /// scanning from the tail), at most `count` of them (0: all), looking at no more than
    /// `maxlen` elements (0: all).
    pub fn positions(&self, value: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let len = self.len();
        let skip = rank.unsigned_abs().saturating_sub(1);
        let limit = if maxlen == 0 { len } else { maxlen.min(len) };
        let mut matches = 0u64;
        let mut out = Vec::new();
        let walk = if rank < 0 {
            self.iter_rev()
        } else {
            self.iter()
        };
        for (step, e) in walk.take(limit).enumerate() {
            if *e == *value {
                matches += 1;
                if matches > skip {
                    out.push(if rank < 0 { len - 1 - step } else { step });
                    if count != 0 && out.len() >= count {
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> ListValue {
        let mut l = ListValue::default();
        for s in items {
            l.push(End::Tail, s.as_bytes());
        }
        l
    }

    fn contents(l: &ListValue) -> Vec<String> {
        l.iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }

    /// The same elements in the large form.
    fn unpacked(items: &[&str]) -> ListValue {
        let mut l = list(items);
        l.make_deque();
        l
    }

    #[test]
    fn ranges_follow_lrange() {
        let l = list(&["a", "b", "c", "d"]);
        assert_eq!(l.range(0, -1), Some((0, 3)));
        assert_eq!(l.range(-100, 100), Some((0, 3)));
        assert_eq!(l.range(2, 1), None);
        assert_eq!(l.range(4, 10), None);
        assert_eq!(l.range(-2, -1), Some((2, 3)));
        assert_eq!(l.range(i64::MIN, i64::MAX), Some((0, 3)));
        assert_eq!(l.range(0, i64::MIN), None);
        assert_eq!(list(&[]).range(0, -1), None);
    }

    #[test]
    fn indexes() {
        for mut l in [list(&["a", "b", "c"]), unpacked(&["a", "b", "c"])] {
            assert_eq!(l.get(-1).map(|b| b.to_vec()), Some(b"c".to_vec()));
            assert_eq!(l.get(3), None);
            assert_eq!(l.get(-4), None);
            assert_eq!(l.get(i64::MIN), None);
            assert!(l.set(-3, b"x"));
            assert!(!l.set(3, b"x"));
            assert_eq!(contents(&l), ["x", "b", "c"]);
            assert!(l.set(1, b"a longer element"));
            assert_eq!(contents(&l), ["x", "a longer element", "c"]);
        }
    }

    #[test]
    fn trim_keeps_the_range() {
        for mut l in [
            list(&["a", "b", "c", "d", "e"]),
            unpacked(&["a", "b", "c", "d", "e"]),
        ] {
            l.trim(1, -2);
            assert_eq!(contents(&l), ["b", "c", "d"]);
            l.trim(5, 10);
            assert!(l.is_empty());
        }
    }

    #[test]
    fn remove_counts_from_either_end() {
        for make in [list, unpacked] {
            let mut l = make(&["a", "x", "b", "x", "c", "x"]);
            assert_eq!(l.remove(b"x", -2), 2);
            assert_eq!(contents(&l), ["a", "x", "b", "c"]);
            let mut l = make(&["x", "a", "x", "x"]);
            assert_eq!(l.remove(b"x", 2), 2);
            assert_eq!(contents(&l), ["a", "x"]);
            let mut l = make(&["x", "a", "x", "x"]);
            assert_eq!(l.remove(b"x", 0), 3);
            assert_eq!(contents(&l), ["a"]);
            assert_eq!(l.remove(b"x", i64::MIN), 0);
        }
    }

    #[test]
    fn insert_around_the_first_pivot() {
        for make in [list, unpacked] {
            let mut l = make(&["a", "p", "p"]);
            assert!(l.insert(b"p", b"n", true));
            assert!(l.insert(b"a", b"m", false));
            assert!(!l.insert(b"zz", b"m", false));
            assert_eq!(contents(&l), ["m", "a", "p", "n", "p"]);
        }
    }

    #[test]
    fn positions_follow_lpos() {
        for make in [list, unpacked] {
            let l = make(&["a", "b", "c", "1", "2", "3", "c", "c"]);
            assert_eq!(l.positions(b"c", 1, 1, 0), [2]);
            assert_eq!(l.positions(b"c", 2, 1, 0), [6]);
            assert_eq!(l.positions(b"c", -1, 1, 0), [7]);
            assert_eq!(l.positions(b"c", -1, 0, 0), [7, 6, 2]);
            assert_eq!(l.positions(b"c", 1, 0, 3), [2]);
            assert_eq!(l.positions(b"c", 1, 0, 2), Vec::<usize>::new());
            assert_eq!(l.positions(b"c", -2, 2, 0), [6, 2]);
            assert_eq!(l.positions(b"c", i64::MAX, 0, 0), Vec::<usize>::new());
        }
    }

    #[test]
    fn converts_past_either_limit_and_back_under_half() {
        let mut l = ListValue::default();
        for i in 0..PACK_MAX_ENTRIES {
            l.push(End::Tail, format!("{i}").as_bytes());
        }
        assert!(l.is_packed());
        l.push(End::Head, b"one more");
        assert!(!l.is_packed());
        assert_eq!(l.len(), PACK_MAX_ENTRIES + 1);
        assert_eq!(l.get(0).map(|e| e.to_vec()), Some(b"one more".to_vec()));
        while l.len() > PACK_MAX_ENTRIES / 2 + 1 {
            l.pop(End::Tail);
        }
        assert!(!l.is_packed());
        l.pop(End::Head);
        assert!(l.is_packed());
        let want: Vec<String> = (0..PACK_MAX_ENTRIES / 2).map(|i| i.to_string()).collect();
        assert_eq!(contents(&l), want);

        // A few large elements pass the byte limit long before the entry limit.
        let big = vec![b'x'; 3000];
        let mut l = list(&["a"]);
        l.push(End::Tail, &big);
        l.push(End::Tail, &big);
        assert!(l.is_packed());
        l.push(End::Tail, &big);
        assert!(!l.is_packed());
        l.pop(End::Tail);
        assert!(!l.is_packed(), "7 KB is over half the byte limit");
        l.pop(End::Tail);
        assert!(l.is_packed());
        // So does replacing one element with a large one.
        let mut l = list(&["a", "b"]);
        assert!(l.set(0, &vec![b'y'; PACK_MAX_BYTES]));
        assert!(!l.is_packed());
        assert_eq!(l.get(0).map(|e| e.len()), Some(PACK_MAX_BYTES));
        assert!(l.set(0, b"c"));
        assert!(l.is_packed());
        assert_eq!(contents(&l), ["c", "b"]);
    }

    #[test]
    fn short_elements_take_a_few_bytes_each() {
        let l = list(&["item:0", "item:1", "item:2"]);
        match &l.repr {
            Repr::Pack(p) => assert_eq!(p.bytes(), 3 * 8),
            Repr::Deque(_) => panic!("packed"),
        }
    }

    /// A cheap deterministic generator for the randomised test.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn index(&mut self, len: usize) -> i64 {
            self.below(2 * len + 4) as i64 - len as i64 - 2
        }
    }

    #[test]
    fn random_operations_match_a_simple_model() {
        let pool: Vec<Vec<u8>> = (0..12)
            .map(|i| match i {
                0 => Vec::new(),
                1 => vec![b'L'; 200],
                2 => vec![b'H'; 2500],
                _ => format!("v{}", i % 6).into_bytes(),
            })
            .collect();
        for seed in 1..=30u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut l = ListValue::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            // Some seeds grow long lists, the others hover around the limits.
            let push_weight = if seed % 3 == 0 { 8 } else { 5 };
            for _ in 0..1500 {
                let v = &pool[rng.below(pool.len())];
                let op = rng.below(14);
                if op < push_weight {
                    if rng.below(2) == 0 {
                        l.push(End::Head, v);
                        model.push_front(v.clone());
                    } else {
                        l.push(End::Tail, v);
                        model.push_back(v.clone());
                    }
                    continue;
                }
                match op - push_weight {
                    0 => assert_eq!(l.pop(End::Head).map(|b| b.to_vec()), model.pop_front()),
                    1 => assert_eq!(l.pop(End::Tail).map(|b| b.to_vec()), model.pop_back()),
                    2 => {
                        let i = rng.index(model.len());
                        let ok = l.set(i, v);
                        assert_eq!(ok, l.position(i).is_some());
                        if let Some(p) = l.position(i) {
                            model[p] = v.clone();
                        }
                    }
                    3 => {
                        let pivot = &pool[rng.below(pool.len())];
                        let after = rng.below(2) == 0;
                        let found = model.iter().position(|e| e == pivot);
                        assert_eq!(l.insert(pivot, v, after), found.is_some());
                        if let Some(i) = found {
                            model.insert(if after { i + 1 } else { i }, v.clone());
                        }
                    }
                    4 => {
                        let count = rng.below(5) as i64 - 2;
                        let n = l.remove(v, count);
                        let mut idx: Vec<usize> =
                            (0..model.len()).filter(|&i| model[i] == *v).collect();
                        if count < 0 {
                            idx.reverse();
                        }
                        if count != 0 {
                            idx.truncate(count.unsigned_abs() as usize);
                        }
                        assert_eq!(n, idx.len());
                        idx.sort_unstable();
                        for i in idx.into_iter().rev() {
                            model.remove(i);
                        }
                    }
                    _ => {
                        if rng.below(4) == 0 {
                            let (s, e) = (rng.index(model.len()), rng.index(model.len()));
                            match l.range(s, e) {
                                None => model.clear(),
                                Some((s, e)) => {
                                    model.truncate(e + 1);
                                    model.drain(..s);
                                }
                            }
                            l.trim(s, e);
                        }
                    }
                }
                let packed_size: usize = model.iter().map(|v| entry_len(v)).sum();
                if l.is_packed() {
                    assert!(model.len() <= PACK_MAX_ENTRIES && packed_size <= PACK_MAX_BYTES);
                } else {
                    assert!(model.len() > PACK_MAX_ENTRIES / 2 || packed_size > PACK_MAX_BYTES / 2);
                    match &l.repr {
                        Repr::Deque(d) => assert_eq!(d.packed, packed_size),
                        Repr::Pack(_) => unreachable!(),
                    }
                }
                assert_eq!(l.len(), model.len());
                let got: Vec<Vec<u8>> = l.iter().map(|e| e.to_vec()).collect();
                assert!(got.iter().eq(model.iter()));
                let start = rng.below(model.len() + 2);
                assert_eq!(
                    l.iter_from(start).owned().len(),
                    model.len().saturating_sub(start)
                );
                assert_eq!(l.iter_rev().len(), model.len());
                if start < model.len() {
                    let count = 1 + rng.below(model.len() - start);
                    let want: Vec<Vec<u8>> =
                        model.iter().skip(start).take(count).cloned().collect();
                    assert_eq!(l.map_range(start, count, |b| b.to_vec()), want);
                }
                assert!(l
                    .iter_from(start)
                    .map(|e| e.to_vec())
                    .eq(model.iter().skip(start).cloned()));
                assert!(l
                    .iter_rev()
                    .map(|e| e.to_vec())
                    .eq(model.iter().rev().cloned()));
                let i = rng.index(model.len());
                assert_eq!(
                    l.get(i).map(|e| e.to_vec()),
                    l.position(i).map(|p| model[p].clone())
                );
                let rank = [1, 2, -1, -2][rng.below(4)];
                let want: Vec<usize> = if rank > 0 {
                    (0..model.len())
                        .filter(|&p| model[p] == *v)
                        .skip(rank as usize - 1)
                        .collect()
                } else {
                    (0..model.len())
                        .rev()
                        .filter(|&p| model[p] == *v)
                        .skip((-rank) as usize - 1)
                        .collect()
                };
                assert_eq!(l.positions(v, rank, 0, 0), want);
            }
        }
    }
}
