//! List values (LPUSH and friends). A short list is one byte buffer of length-prefixed
//! elements, as the single listpack node of a short Redis quicklist is: one allocation, walked
//! from either end. A longer one is, as Redis's quicklist, a deque of such buffers ("nodes") of
//! at most 1 KB each: pushes and pops at either end touch one node whatever the list's length,
//! and an element costs its bytes and a length or two, not an allocation of its own. OBJECT
//! ENCODING shows neither: Redis 7.0 reports every list as a quicklist. `list-max-listpack-size`
//! decides when a list leaves the single buffer, and an element at or over DEBUG
//! QUICKLIST-PACKED-THRESHOLD gets a node of its own, as Redis's "plain" nodes.

use std::collections::{vec_deque, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::packed::{
    get_varint, put_varint, varint_len, Codec, Elem, Packed, PackedIter, PackedRevIter,
};

/// A list leaves the packed form when it would pass either limit, and comes back once under
/// half of both, so that a list hovering at a limit does not convert on every push and pop.
/// The limits follow `list-max-listpack-size` as Redis sizes a quicklist node with it (see
/// [`set_listpack_size`]); by default 128 entries and 8 KB (Redis's -2).
static PACK_LIMITS: AtomicU64 = AtomicU64::new(pack_limits(128, 8192));
/// An element of at least this many bytes goes into a node of its own when pushed on a long
/// list (Redis's "plain" nodes; DEBUG QUICKLIST-PACKED-THRESHOLD), and never into the packed
/// form. Redis's default: 1 GB.
static PLAIN_THRESHOLD: AtomicUsize = AtomicUsize::new(1 << 30);

const fn pack_limits(entries: u64, bytes: u64) -> u64 {
    entries << 32 | bytes
}

/// `list-max-listpack-size`: a negative size caps a node's bytes (-1: 4 KB ... -5: 64 KB), a
/// positive one its entries (with Redis's 8 KB safety limit on the bytes).
pub fn set_listpack_size(size: i64) {
    let (entries, bytes) = match size {
        n if n >= 0 => (n.clamp(1, u32::MAX as i64) as u64, 8192),
        -1 => (128, 4096),
        -2 => (128, 8192),
        -3 => (128, 16384),
        -4 => (128, 32768),
        _ => (128, 65536),
    };
    PACK_LIMITS.store(pack_limits(entries, bytes), Ordering::Relaxed);
}

/// Whether an element this long gets a node of its own (a "plain" node; RDB and DUMP write
/// such nodes apart).
pub fn is_plain_element(len: usize) -> bool {
    is_plain(len)
}

/// DEBUG QUICKLIST-PACKED-THRESHOLD.
pub fn set_plain_threshold(bytes: usize) {
    PLAIN_THRESHOLD.store(bytes.max(1), Ordering::Relaxed);
}

#[inline]
fn pack_max() -> (usize, usize) {
    let l = PACK_LIMITS.load(Ordering::Relaxed);
    ((l >> 32) as usize, (l & u32::MAX as u64) as usize)
}

#[inline]
fn is_plain(entry_bytes: usize) -> bool {
    entry_bytes >= PLAIN_THRESHOLD.load(Ordering::Relaxed)
}
/// A long list's node holds elements up to this many bytes; an element larger than that has a
/// node of its own. Redis's nodes take 8 KB (`list-max-listpack-size -2`); smaller ones here
/// keep a push at the head, which moves the node's bytes, as cheap as it was with one allocation
/// per element, for a few percent more memory.
const NODE_MAX_BYTES: usize = 1024;

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
        let (max_entries, max_bytes) = pack_max();
        self.len() + extra <= max_entries && self.bytes() + bytes <= max_bytes && !is_plain(bytes)
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

/// A long list: nodes of packed elements, as Redis's quicklist.
#[derive(Clone, Debug, Default)]
struct Chunks {
    nodes: VecDeque<Pack>,
    len: usize,
}

impl Chunks {
    #[inline]
    fn push(&mut self, end: End, v: &[u8]) {
        let n = entry_len(v);
        let node = match end {
            End::Head => self.nodes.front_mut(),
            End::Tail => self.nodes.back_mut(),
        };
        match node {
            Some(node) if node.bytes() + n <= NODE_MAX_BYTES && !is_plain(n) => {
                // The end node takes pushes in a row: it grows by doubling, not exactly.
                node.reserve(n);
                let at = if end == End::Head { 0 } else { node.bytes() };
                node.insert_at(at, v);
            }
            node => {
                // The full node keeps its place for good: without its slack.
                if let Some(full) = node {
                    full.fit();
                }
                let node = Pack::from_entries(std::iter::once(v));
                match end {
                    End::Head => self.nodes.push_front(node),
                    End::Tail => self.nodes.push_back(node),
                }
            }
        }
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self, end: End) -> Option<Bytes> {
        let tail = end == End::Tail;
        let node = if tail {
            self.nodes.back_mut()
        } else {
            self.nodes.front_mut()
        }?;
        let v = node.pop(tail, Bytes::copy_from_slice)?;
        if node.len() == 0 {
            if tail {
                self.nodes.pop_back();
            } else {
                self.nodes.pop_front();
            }
        }
        self.len -= 1;
        Some(v)
    }

    /// The node holding position `i` (which must exist) and the position within it, counted
    /// from the nearer end of the list.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.len() {
                    return (n, i);
                }
                i -= node.len();
            }
        } else {
            let mut from_tail = self.len - 1 - i;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if from_tail < node.len() {
                    return (n, node.len() - 1 - from_tail);
                }
                from_tail -= node.len();
            }
        }
        unreachable!("position {i} within the list")
    }

    /// What the elements take packed (to know when they fit one pack again).
    fn packed(&self) -> usize {
        self.nodes.iter().map(Pack::bytes).sum()
    }

    /// Removes the first `k` elements (whole nodes dropped, a partial one cut).
    fn drop_front(&mut self, mut k: usize) {
        self.len -= k;
        while k > 0 {
            let node = self.nodes.front_mut().expect("counted");
            if k >= node.len() {
                k -= node.len();
                self.nodes.pop_front();
            } else {
                let end = node.offset_of(k);
                node.remove_span(0, end, k);
                k = 0;
            }
        }
    }

    /// Removes the last `k` elements.
    fn drop_back(&mut self, mut k: usize) {
        self.len -= k;
        while k > 0 {
            let node = self.nodes.back_mut().expect("counted");
            if k >= node.len() {
                k -= node.len();
                self.nodes.pop_back();
            } else {
                let keep = node.len() - k;
                let start = node.offset_of(keep);
                node.remove_span(start, node.bytes(), k);
                k = 0;
            }
        }
    }

    /// Node `n` grew past a node's size (an insertion or a replacement): split it in two.
    fn split_if_large(&mut self, n: usize) {
        let node = &self.nodes[n];
        if node.bytes() <= NODE_MAX_BYTES || node.len() < 2 {
            return;
        }
        let half = node.len() / 2;
        let first = Pack::from_entries(node.iter().take(half).map(|e| e.entry));
        let second = Pack::from_entries(node.iter().skip(half).map(|e| e.entry));
        self.nodes[n] = first;
        self.nodes.insert(n + 1, second);
        // Large elements can leave a half still over the size.
        self.split_if_large(n + 1);
        self.split_if_large(n);
    }
}

#[derive(Clone, Debug)]
enum Repr {
    Pack(Pack),
    Chunks(Box<Chunks>),
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
    /// The node being walked, and the nodes after it.
    Chunks(Option<PackedIter<'a, Element>>, vec_deque::Iter<'a, Pack>),
    /// The node being walked backwards, and the nodes before it.
    ChunksRev(
        Option<PackedRevIter<'a, Element>>,
        vec_deque::Iter<'a, Pack>,
    ),
}

impl<'a> Iter<'a> {
    /// The same walk yielding owned elements, for replies (copied out of the packs).
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
            IterRepr::Chunks(cur, rest) => loop {
                if let Some(e) = cur.as_mut().and_then(Iterator::next) {
                    break Some(Elem::Packed(e.entry));
                }
                *cur = Some(rest.next()?.iter());
            },
            IterRepr::ChunksRev(cur, rest) => loop {
                if let Some(e) = cur.as_mut().and_then(Iterator::next) {
                    break Some(Elem::Packed(e.entry));
                }
                let node = rest.next_back()?;
                *cur = Some(node.iter_before(node.bytes()));
            },
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
            Repr::Chunks(c) => c.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Its nodes: Redis's quicklist nodes, one allocation each.
    pub fn node_count(&self) -> usize {
        match &self.repr {
            Repr::Pack(_) => 1,
            Repr::Chunks(c) => c.nodes.len(),
        }
    }

    /// Whether the list is in its packed form (for tests and memory reports; not visible to
    /// clients).
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    /// The long form: the pack becomes the first node (nothing is copied).
    fn make_chunks(&mut self) -> &mut Chunks {
        if let Repr::Pack(p) = &mut self.repr {
            let p = std::mem::take(p);
            let len = p.len();
            let mut nodes = VecDeque::new();
            if len > 0 {
                nodes.push_back(p);
            }
            let mut chunks = Chunks { nodes, len };
            if chunks.nodes.len() == 1 {
                chunks.split_if_large(0);
            }
            self.repr = Repr::Chunks(Box::new(chunks));
        }
        match &mut self.repr {
            Repr::Chunks(c) => c,
            Repr::Pack(_) => unreachable!("just converted"),
        }
    }

    /// Returns to the packed form once the elements take under half of both limits.
    fn maybe_repack(&mut self) {
        if let Repr::Chunks(c) = &self.repr {
            let (max_entries, max_bytes) = pack_max();
            if c.len <= max_entries / 2 && c.packed() <= max_bytes / 2 {
                let p = match c.nodes.len() {
                    0 => Pack::default(),
                    1 => c.nodes[0].clone(),
                    _ => Pack::from_entries(c.nodes.iter().flat_map(|n| n.iter().map(|e| e.entry))),
                };
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
            Repr::Chunks(c) => c.push(end, value),
            Repr::Pack(p) => {
                if !p.push(end, value) {
                    self.make_chunks().push(end, value);
                }
            }
        }
    }

    #[inline]
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        match &mut self.repr {
            Repr::Pack(p) => p.pop(end == End::Tail, Bytes::copy_from_slice),
            Repr::Chunks(c) => {
                let v = c.pop(end)?;
                if c.len <= pack_max().0 / 2 {
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
            Repr::Chunks(c) => {
                let (n, j) = c.locate(i);
                c.nodes[n].get(j).entry
            }
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
            if p.bytes() - (end - start) + n <= pack_max().1 && !is_plain(n) {
                p.replace_here(start, end, value);
                return true;
            }
        }
        let c = self.make_chunks();
        let (node, j) = c.locate(i);
        let (start, end) = {
            let e = c.nodes[node].get(j);
            (e.start, e.end)
        };
        c.nodes[node].replace_here(start, end, value);
        c.split_if_large(node);
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
            Repr::Chunks(c) if start >= c.len => {
                IterRepr::Chunks(None, c.nodes.range(c.nodes.len()..))
            }
            Repr::Chunks(c) => {
                let (n, j) = c.locate(start);
                let node = &c.nodes[n];
                IterRepr::Chunks(
                    Some(node.iter_at(node.offset_of(j))),
                    c.nodes.range(n + 1..),
                )
            }
        };
        Iter {
            repr,
            left: self.len().saturating_sub(start),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Elements from the tail to the head.
    pub fn iter_rev(&self) -> Iter<'_> {
        let repr = match &self.repr {
            Repr::Pack(p) => IterRepr::PackRev(p.iter_before(p.bytes())),
            Repr::Chunks(c) => IterRepr::ChunksRev(None, c.nodes.iter()),
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
            Repr::Chunks(c) => {
                match range {
                    None => **c = Chunks::default(),
                    Some((s, e)) => {
                        c.drop_back(c.len - 1 - e);
                        c.drop_front(s);
                    }
                }
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
        let c = self.make_chunks();
        if i == c.len {
            c.push(End::Tail, value);
            return true;
        }
        let (node, j) = c.locate(i);
        let at = c.nodes[node].offset_of(j);
        c.nodes[node].insert_at(at, value);
        c.len += 1;
        c.split_if_large(node);
        true
    }

    /// Keeps the elements for which `keep` holds, visiting them from the head.
    fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        match &mut self.repr {
            Repr::Pack(p) => p.retain(keep),
            Repr::Chunks(c) => {
                for node in c.nodes.iter_mut() {
                    node.retain(&mut keep);
                }
                c.nodes.retain(|n| n.len() > 0);
                c.len = c.nodes.iter().map(Pack::len).sum();
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

    /// The default limits (unit tests never change them: they are process-wide).
    const PACK_MAX_ENTRIES: usize = 128;
    const PACK_MAX_BYTES: usize = 8192;

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
        l.make_chunks();
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
            Repr::Chunks(_) => panic!("packed"),
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
                        Repr::Chunks(c) => {
                            assert_eq!(c.packed(), packed_size);
                            assert!(c
                                .nodes
                                .iter()
                                .all(|n| n.len() > 0
                                    && (n.bytes() <= NODE_MAX_BYTES || n.len() == 1)));
                        }
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
                    let got: Vec<Vec<u8>> =
                        l.iter_from(start).take(count).map(|b| b.to_vec()).collect();
                    assert_eq!(got, want);
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
