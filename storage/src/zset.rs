//! Sorted-set values (ZADD and friends). A small sorted set is one byte buffer of entries in
//! (score, member) order, as Redis's listpack is: one allocation, searched linearly (it holds at
//! most zset-max-listpack-entries short members). Past those thresholds it becomes a member ->
//! score map plus the members ordered by (score, member) in a chunked sorted list, so ranks and
//! range starts cost a binary search over chunks plus one inside a chunk instead of a walk over
//! the whole set.

use std::cmp::Ordering;
use std::collections::{hash_map, HashMap, VecDeque};

use ahash::RandomState;
use bytes::Bytes;

use crate::key::Key;
use crate::packed::{
    get_uvarint, get_varint, put_uvarint, put_varint, uvarint_len, varint_len, Codec, Elem, Packed,
    PackedIter, PackedRevIter, Slot,
};

/// Largest chunk before it is split in two.
const CHUNK: usize = 256;

/// A run of entries in order. A deque, so that ZPOPMIN takes the first entry without moving
/// the others (with a vector each pop shifted up to 2 * CHUNK entries, ~20 KB), and an insert
/// or removal inside moves the shorter side.
type Chunk = VecDeque<(f64, Bytes)>;

/// Orders (score, member) as Redis's skiplist does: by score, then by member bytes.
/// Scores are never NaN.
pub fn cmp_entry(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

/// Members in (score, member) order, held in chunks of at most 2 * CHUNK entries.
#[derive(Clone, Debug, Default)]
struct Sorted {
    chunks: Vec<Chunk>,
    len: usize,
}

impl Sorted {
    /// The number of leading entries for which `pred` holds (`pred` must be monotone:
    /// true for a prefix, false afterwards).
    fn partition_point(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.back().expect("chunks are never empty");
            pred(*s, m)
        });
        let before: usize = self.chunks[..ci].iter().map(VecDeque::len).sum();
        match self.chunks.get(ci) {
            None => before,
            Some(c) => before + c.partition_point(|(s, m)| pred(*s, m)),
        }
    }

    /// Chunk and offset of position `index` (< len).
    fn locate(&self, mut index: usize) -> (usize, usize) {
        for (ci, c) in self.chunks.iter().enumerate() {
            if index < c.len() {
                return (ci, index);
            }
            index -= c.len();
        }
        panic!("index out of range");
    }

    fn insert(&mut self, score: f64, member: Bytes) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(VecDeque::from([(score, member)]));
            return;
        }
        let lt = |s: f64, m: &[u8]| cmp_entry(s, m, score, &member) == Ordering::Less;
        let mut ci = self.chunks.partition_point(|c| {
            let (s, m) = c.back().expect("chunks are never empty");
            lt(*s, m)
        });
        if ci == self.chunks.len() {
            ci -= 1;
        }
        let chunk = &mut self.chunks[ci];
        let off = chunk.partition_point(|(s, m)| lt(*s, m));
        chunk.insert(off, (score, member));
        if chunk.len() > 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(ci + 1, tail);
        }
    }

    /// Removes the entry and hands back its member.
    fn remove(&mut self, score: f64, member: &[u8]) -> Option<Bytes> {
        let lt = |s: f64, m: &[u8]| cmp_entry(s, m, score, member) == Ordering::Less;
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.back().expect("chunks are never empty");
            lt(*s, m)
        });
        let chunk = self.chunks.get_mut(ci)?;
        let off = chunk.partition_point(|(s, m)| lt(*s, m));
        match chunk.get(off) {
            Some((s, m)) if cmp_entry(*s, m, score, member) == Ordering::Equal => {}
            _ => return None,
        }
        let (_, m) = chunk.remove(off).expect("found above");
        if chunk.is_empty() {
            self.chunks.remove(ci);
        }
        self.len -= 1;
        Some(m)
    }

    fn get(&self, index: usize) -> Option<(f64, &Bytes)> {
        if index >= self.len {
            return None;
        }
        let (ci, off) = self.locate(index);
        let (s, m) = &self.chunks[ci][off];
        Some((*s, m))
    }
}

// ---------------------------------------------------------------------------------------------
// The packed form.

/// A listpack keeps scores as text, where -0 reads back as 0.
fn listpack_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

/// The integer a score is exactly, if any: such scores (nearly all in practice) are stored as
/// a zigzag varint, one byte when small, as a listpack stores them as integers.
fn int_score(score: f64) -> Option<i64> {
    let i = score as i64;
    ((i as f64).to_bits() == score.to_bits()).then_some(i)
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// A packed sorted set's entries: `varint(member len << 1 | score is integer) member score
/// backlen`, the score being a zigzag varint or 8 bytes of f64; the back-length lets pops and
/// reverse walks start at the tail.
enum MemberScore {}

impl Codec for MemberScore {
    type Entry<'a> = (&'a [u8], f64);

    const BACK_LENGTH: bool = true;

    fn body_len((member, score): (&[u8], f64)) -> usize {
        let score_len = int_score(score).map_or(8, |i| uvarint_len(zigzag(i)));
        varint_len(member.len() << 1 | 1) + member.len() + score_len
    }

    fn encode(buf: &mut Vec<u8>, (member, score): (&[u8], f64)) {
        match int_score(score) {
            Some(i) => {
                put_varint(buf, member.len() << 1 | 1);
                buf.extend_from_slice(member);
                put_uvarint(buf, zigzag(i));
            }
            None => {
                put_varint(buf, member.len() << 1);
                buf.extend_from_slice(member);
                buf.extend_from_slice(&score.to_le_bytes());
            }
        }
    }

    fn decode(buf: &[u8], start: usize) -> ((&[u8], f64), usize) {
        let mut p = start;
        let head = get_varint(buf, &mut p);
        let member = &buf[p..p + (head >> 1)];
        p += head >> 1;
        let score = if head & 1 == 1 {
            unzigzag(get_uvarint(buf, &mut p)) as f64
        } else {
            let s = f64::from_le_bytes(buf[p..p + 8].try_into().expect("8 bytes"));
            p += 8;
            s
        };
        ((member, score), p)
    }
}

type Pack = Packed<MemberScore>;

impl Pack {
    /// The entry of `member`.
    fn find(&self, member: &[u8]) -> Option<Slot<(&[u8], f64)>> {
        self.iter().find(|e| e.entry.0 == member)
    }

    /// Where an entry for `member` (not there yet) goes, to keep the order.
    fn offset_for(&self, member: &[u8], score: f64) -> usize {
        self.iter()
            .find(|e| cmp_entry(e.entry.1, e.entry.0, score, member) == Ordering::Greater)
            .map_or(self.bytes(), |e| e.start)
    }

    /// Builds a pack from entries already in order.
    fn from_ordered<'a>(entries: impl Iterator<Item = (&'a [u8], f64)> + Clone) -> Pack {
        Pack::from_entries(entries.map(|(m, s)| (m, listpack_score(s))))
    }
}

// ---------------------------------------------------------------------------------------------
// The large form.

/// Each member is held twice: as a `Key` in the map (inline when short, so no allocation) and as
/// a `Bytes` in the ordered list (which replies share rather than copy).
#[derive(Clone, Debug, Default)]
struct Skip {
    dict: HashMap<Key, f64, RandomState>,
    sorted: Sorted,
}

impl Skip {
    /// Builds the large form from distinct members already in order.
    fn from_ordered(entries: impl Iterator<Item = (Bytes, f64)>, n: usize) -> Skip {
        let mut z = Skip::default();
        z.dict.reserve(n);
        z.sorted.len = n;
        let mut chunk = Chunk::with_capacity(n.next_power_of_two().min(CHUNK));
        for (m, s) in entries {
            z.dict.insert(Key::from_slice(&m), s);
            chunk.push_back((s, m));
            if chunk.len() == CHUNK {
                z.sorted
                    .chunks
                    .push(std::mem::replace(&mut chunk, Chunk::with_capacity(CHUNK)));
            }
        }
        if !chunk.is_empty() {
            z.sorted.chunks.push(chunk);
        }
        z
    }

    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Some(stored) = self.dict.get_mut(member) {
            let prev = std::mem::replace(stored, score);
            // Same score (or -0 vs 0): the position does not change, only the stored value.
            let m = self.sorted.remove(prev, member).expect("in both");
            self.sorted.insert(score, m);
            return Some(prev);
        }
        // Copies: the caller's bytes usually slice a whole request buffer, which must not stay
        // alive for as long as the member does.
        self.dict.insert(Key::from_slice(member), score);
        self.sorted.insert(score, Bytes::copy_from_slice(member));
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Walks over either form.

/// Entries with their scores, in the order of the method that made the iterator.
pub struct Iter<'a> {
    repr: IterRepr<'a>,
    /// Entries still to come (so that collecting a reply allocates once).
    left: usize,
}

enum IterRepr<'a> {
    Pack(PackedIter<'a, MemberScore>),
    PackRev(PackedRevIter<'a, MemberScore>),
    /// Forwards from entry `off` of chunk `ci`.
    Chunks {
        chunks: &'a [Chunk],
        ci: usize,
        off: usize,
    },
    /// Backwards: `ci` chunks are left, of the last of which the first `off` entries.
    ChunksRev {
        chunks: &'a [Chunk],
        ci: usize,
        off: usize,
    },
    Dict(hash_map::Iter<'a, Key, f64>),
}

impl<'a> Iter<'a> {
    /// The same walk yielding owned members, for replies: copied out of a listpack, shared
    /// (not copied) from the large form.
    pub fn owned(self) -> Owned<'a> {
        Owned(self)
    }

    fn next_elem(&mut self) -> Option<(Elem<'a>, f64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match &mut self.repr {
            IterRepr::Pack(it) => it.next().map(|e| (Elem::Packed(e.entry.0), e.entry.1)),
            IterRepr::PackRev(it) => it.next().map(|e| (Elem::Packed(e.entry.0), e.entry.1)),
            IterRepr::Chunks { chunks, ci, off } => {
                let chunks: &'a [Chunk] = chunks;
                loop {
                    let c = chunks.get(*ci)?;
                    if let Some((s, m)) = c.get(*off) {
                        *off += 1;
                        return Some((Elem::Shared(m), *s));
                    }
                    *ci += 1;
                    *off = 0;
                }
            }
            IterRepr::ChunksRev { chunks, ci, off } => {
                let chunks: &'a [Chunk] = chunks;
                loop {
                    if *off > 0 {
                        *off -= 1;
                        let (s, m) = &chunks[*ci - 1][*off];
                        return Some((Elem::Shared(m), *s));
                    }
                    if *ci <= 1 {
                        return None;
                    }
                    *ci -= 1;
                    *off = chunks[*ci - 1].len();
                }
            }
            IterRepr::Dict(it) => it.next().map(|(m, s)| (Elem::Packed(m.as_bytes()), *s)),
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        self.next_elem().map(|(m, s)| (m.as_slice(), s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// See `Iter::owned`.
pub struct Owned<'a>(Iter<'a>);

impl Iterator for Owned<'_> {
    type Item = (Bytes, f64);

    fn next(&mut self) -> Option<(Bytes, f64)> {
        self.0.next_elem().map(|(m, s)| (m.to_bytes(), s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Owned<'_> {}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct ZSetValue {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// What Redis would still hold as a listpack (until zset-max-listpack-entries/-value is
    /// exceeded; the caller decides, see `make_skiplist`).
    Pack(Pack),
    Skip(Box<Skip>),
}

impl ZSetValue {
    /// The member dictionary's room, once converted from the packed form (DEBUG HTSTATS-KEY).
    pub fn table_capacity(&self) -> Option<usize> {
        match &self.repr {
            Repr::Pack(_) => None,
            Repr::Skip(s) => Some(s.dict.capacity()),
        }
    }

    pub fn new(listpack: bool) -> ZSetValue {
        ZSetValue {
            repr: if listpack {
                Repr::Pack(Pack::default())
            } else {
                Repr::Skip(Box::default())
            },
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len(),
            Repr::Skip(z) => z.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether Redis would hold this sorted set as a listpack.
    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    pub fn encoding(&self) -> &'static str {
        if self.is_listpack() {
            "listpack"
        } else {
            "skiplist"
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Pack(p) => p.find(member).map(|e| e.entry.1),
            Repr::Skip(z) => z.dict.get(member).copied(),
        }
    }

    /// Builds a sorted set from distinct members in any order.
    pub fn from_entries(mut entries: Vec<(Bytes, f64)>, listpack: bool) -> ZSetValue {
        entries.sort_unstable_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        let repr = if listpack {
            Repr::Pack(Pack::from_ordered(
                entries.iter().map(|(m, s)| (&m[..], *s)),
            ))
        } else {
            let n = entries.len();
            Repr::Skip(Box::new(Skip::from_ordered(entries.into_iter(), n)))
        };
        ZSetValue { repr }
    }

    /// Turns the set into a listpack (a freshly built store result that fits): scores go
    /// through listpack text, so any -0 becomes 0.
    pub fn make_listpack(&mut self) {
        if let Repr::Skip(z) = &self.repr {
            let entries = z.sorted.chunks.iter().flatten().map(|(s, m)| (&m[..], *s));
            self.repr = Repr::Pack(Pack::from_ordered(entries));
        }
    }

    /// Converts a listpack to the large form, as Redis does once zset-max-listpack-entries or
    /// -value is exceeded (or SORT touches it); never converted back by itself.
    pub fn make_skiplist(&mut self) {
        if let Repr::Pack(p) = &self.repr {
            let entries = p
                .iter()
                .map(|e| (Bytes::copy_from_slice(e.entry.0), e.entry.1));
            self.repr = Repr::Skip(Box::new(Skip::from_ordered(entries, p.len())));
        }
    }

    /// Sets `member`'s score; returns the previous score, if any.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        match &mut self.repr {
            Repr::Pack(p) => {
                let score = listpack_score(score);
                let found = p.find(member).map(|e| (e.start, e.end, e.entry.1));
                match found {
                    Some((start, end, prev)) => {
                        let at = |p: &Pack| p.offset_for(member, score);
                        p.replace(start, end, (member, score), at);
                        Some(prev)
                    }
                    None => {
                        p.insert_at(p.offset_for(member, score), (member, score));
                        None
                    }
                }
            }
            Repr::Skip(z) => z.insert(member, score),
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Pack(p) => {
                let (start, end, score) = p.find(member).map(|e| (e.start, e.end, e.entry.1))?;
                p.remove_span(start, end, 1);
                Some(score)
            }
            Repr::Skip(z) => {
                let score = z.dict.remove(member)?;
                z.sorted.remove(score, member);
                Some(score)
            }
        }
    }

    /// 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Pack(p) => p.iter().position(|e| e.entry.0 == member),
            Repr::Skip(z) => {
                let score = *z.dict.get(member)?;
                Some(
                    z.sorted
                        .partition_point(|s, m| cmp_entry(s, m, score, member) == Ordering::Less),
                )
            }
        }
    }

    /// The entry at ascending position `index`.
    pub fn get(&self, index: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Pack(p) if index < p.len() => Some(p.get(index).entry),
            Repr::Pack(_) => None,
            Repr::Skip(z) => z.sorted.get(index).map(|(s, m)| (&m[..], s)),
        }
    }

    /// The number of leading entries (ascending) for which `pred(score, member)` holds; `pred`
    /// must be true for a prefix and false afterwards.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.iter().take_while(|e| pred(e.entry.1, e.entry.0)).count(),
            Repr::Skip(z) => z.sorted.partition_point(pred),
        }
    }

    /// Entries in ascending order from position `start`.
    pub fn iter_from(&self, start: usize) -> Iter<'_> {
        let left = self.len().saturating_sub(start);
        let repr = match &self.repr {
            Repr::Pack(p) => IterRepr::Pack(p.iter_at(p.offset_of(start))),
            Repr::Skip(z) => {
                let (ci, off) = if start >= z.sorted.len {
                    (z.sorted.chunks.len(), 0)
                } else {
                    z.sorted.locate(start)
                };
                IterRepr::Chunks {
                    chunks: &z.sorted.chunks,
                    ci,
                    off,
                }
            }
        };
        Iter { repr, left }
    }

    /// Entries in descending order from position `start` (inclusive) down to 0.
    pub fn iter_rev_from(&self, start: usize) -> Iter<'_> {
        let len = self.len();
        let left = if len == 0 { 0 } else { start.min(len - 1) + 1 };
        let repr = match &self.repr {
            Repr::Pack(p) => {
                let end = if len == 0 {
                    0
                } else {
                    p.offset_of(start.min(len - 1) + 1)
                };
                IterRepr::PackRev(p.iter_before(end))
            }
            Repr::Skip(z) => {
                let (ci, off) = if len == 0 {
                    (0, 0)
                } else {
                    let (ci, off) = z.sorted.locate(start.min(len - 1));
                    (ci + 1, off + 1)
                };
                IterRepr::ChunksRev {
                    chunks: &z.sorted.chunks,
                    ci,
                    off,
                }
            }
        };
        Iter { repr, left }
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Every member with its score in the cheapest order to walk (hash order when large).
    pub fn dict_iter(&self) -> Iter<'_> {
        let repr = match &self.repr {
            Repr::Pack(p) => IterRepr::Pack(p.iter()),
            Repr::Skip(z) => IterRepr::Dict(z.dict.iter()),
        };
        Iter {
            repr,
            left: self.len(),
        }
    }

    /// Removes and returns the lowest (or, with `max`, highest) entry.
    pub fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        match &mut self.repr {
            Repr::Pack(p) => p.pop(max, |(m, s)| (Bytes::copy_from_slice(m), s)),
            Repr::Skip(z) => {
                let chunks = &mut z.sorted.chunks;
                let ci = if max {
                    chunks.len().checked_sub(1)?
                } else if chunks.is_empty() {
                    return None;
                } else {
                    0
                };
                let chunk = &mut chunks[ci];
                let (s, m) = if max {
                    chunk.pop_back()
                } else {
                    chunk.pop_front()
                }
                .expect("chunks are never empty");
                if chunk.is_empty() {
                    chunks.remove(ci);
                }
                z.sorted.len -= 1;
                z.dict.remove(&m[..]);
                Some((m, s))
            }
        }
    }

    /// Removes the entries at ascending positions [start, end); returns how many went.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match &mut self.repr {
            Repr::Pack(p) => {
                let (from, to) = (p.offset_of(start), p.offset_of(end));
                p.remove_span(from, to, end - start);
            }
            Repr::Skip(z) => {
                let mut pos = 0;
                for chunk in &mut z.sorted.chunks {
                    let (from, to) = (pos, pos + chunk.len());
                    pos = to;
                    if to <= start || from >= end {
                        continue;
                    }
                    let lo = start.max(from) - from;
                    let hi = end.min(to) - from;
                    for (_, m) in chunk.drain(lo..hi) {
                        z.dict.remove(&m[..]);
                    }
                }
                z.sorted.chunks.retain(|c| !c.is_empty());
                z.sorted.len -= end - start;
            }
        }
        end - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn members(it: Iter<'_>) -> Vec<Bytes> {
        it.owned().map(|(m, _)| m).collect()
    }

    fn chunk_count(z: &ZSetValue) -> usize {
        match &z.repr {
            Repr::Skip(z) => z.sorted.chunks.len(),
            Repr::Pack(_) => 0,
        }
    }

    #[test]
    fn orders_by_score_then_member_and_ranks() {
        for listpack in [true, false] {
            let mut z = ZSetValue::new(listpack);
            z.insert(b"b", 1.0);
            z.insert(b"a", 1.0);
            z.insert(b"c", 0.5);
            assert_eq!(z.rank(b"c"), Some(0));
            assert_eq!(z.rank(b"a"), Some(1));
            assert_eq!(z.rank(b"b"), Some(2));
            assert_eq!(z.insert(b"c", 2.0), Some(0.5));
            assert_eq!(members(z.iter()), vec![b("a"), b("b"), b("c")]);
            assert_eq!(members(z.iter_rev_from(1)), vec![b("b"), b("a")]);
            assert_eq!(z.remove(b"a"), Some(1.0));
            assert_eq!(z.remove(b"a"), None);
            assert_eq!(z.rank(b"c"), Some(1));
            assert_eq!(z.pop(true), Some((b("c"), 2.0)));
            assert_eq!(z.pop(false), Some((b("b"), 1.0)));
            assert!(z.is_empty());
            assert_eq!(z.pop(false), None);
            assert_eq!(z.iter_rev_from(5).count(), 0);
            assert_eq!(z.iter_from(5).count(), 0);
            assert_eq!(z.encoding(), if listpack { "listpack" } else { "skiplist" });
        }
    }

    #[test]
    fn many_entries_split_into_chunks_and_stay_ordered() {
        let mut z = ZSetValue::new(false);
        let n = 5000;
        for i in 0..n {
            // A scrambled insertion order.
            let k = (i * 7919) % n;
            z.insert(format!("m{k:05}").as_bytes(), (k / 3) as f64);
        }
        assert_eq!(z.len(), n);
        assert!(chunk_count(&z) > 1);
        let all: Vec<_> = z
            .iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        for w in all.windows(2) {
            assert_eq!(cmp_entry(w[0].1, &w[0].0, w[1].1, &w[1].0), Ordering::Less);
        }
        for (i, (m, _)) in all.iter().enumerate().step_by(97) {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(
                z.get(i).map(|(m, _)| Bytes::copy_from_slice(m)),
                Some(m.clone())
            );
            assert_eq!(
                z.iter_from(i)
                    .next()
                    .map(|(m, _)| Bytes::copy_from_slice(m)),
                Some(m.clone())
            );
            assert_eq!(
                z.iter_rev_from(i)
                    .next()
                    .map(|(m, _)| Bytes::copy_from_slice(m)),
                Some(m.clone())
            );
        }
        assert_eq!(z.count_while(|s, _| s < 10.0), 30);
        for i in (0..n).step_by(2) {
            assert!(z.remove(format!("m{i:05}").as_bytes()).is_some());
        }
        assert_eq!(z.len(), n / 2);
        assert_eq!(z.iter().count(), n / 2);
        assert_eq!(z.iter_rev_from(usize::MAX).count(), n / 2);
        assert_eq!(z.rank(b"m00001"), Some(0));
        let before = members(z.iter());
        assert_eq!(z.remove_range(100, 1100), 1000);
        assert_eq!(z.len(), n / 2 - 1000);
        let after = members(z.iter());
        assert_eq!(after[..100], before[..100]);
        assert_eq!(after[100..], before[1100..]);
        assert!(z.score(&before[100]).is_none());
        assert_eq!(z.rank(&before[1100]), Some(100));
        assert_eq!(z.remove_range(5, 5), 0);
        let last = after.last().unwrap().clone();
        assert_eq!(z.pop(true).map(|(m, _)| m), Some(last));
        assert_eq!(z.pop(false).map(|(m, _)| m), Some(after[0].clone()));
        assert_eq!(z.len(), n / 2 - 1002);
        let len = z.len();
        assert_eq!(z.remove_range(0, usize::MAX), len);
        assert!(z.is_empty());
        assert!(z.pop(true).is_none());
    }

    #[test]
    fn built_from_entries_matches_inserted() {
        for listpack in [true, false] {
            let entries: Vec<_> = (0..1000)
                .map(|i| (b(&format!("k{}", (i * 37) % 1000)), (i % 7) as f64 - 2.5))
                .collect();
            let built = ZSetValue::from_entries(entries.clone(), listpack);
            let mut inserted = ZSetValue::new(listpack);
            for (m, s) in entries {
                inserted.insert(&m, s);
            }
            let a: Vec<_> = built
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                .collect();
            let b: Vec<_> = inserted
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                .collect();
            assert_eq!(a, b);
            assert_eq!(built.rank(b"k999"), inserted.rank(b"k999"));
            assert_eq!(built.len(), 1000);
            assert_eq!(built.is_listpack(), listpack);
        }
    }

    #[test]
    fn negative_zero_updates_in_place() {
        let mut z = ZSetValue::new(true);
        z.insert(b"b", -0.0);
        assert!(z.score(b"b").unwrap().is_sign_positive());
        let mut z = ZSetValue::new(false);
        z.insert(b"a", 0.0);
        z.insert(b"a", -0.0);
        assert_eq!(z.len(), 1);
        assert!(z.score(b"a").unwrap().is_sign_negative());
        assert!(z.get(0).unwrap().1.is_sign_negative());
        // Becoming a listpack goes through text: -0 reads back as 0.
        z.make_listpack();
        assert!(z.is_listpack());
        assert!(z.score(b"a").unwrap().is_sign_positive());
    }

    #[test]
    fn packed_scores_round_trip_exactly() {
        let scores = [
            0.0,
            1.0,
            -1.0,
            63.0,
            64.0,
            -65.0,
            1e15,
            (1u64 << 53) as f64 + 2.0,
            i64::MIN as f64,
            // Saturates when converted to i64: must still come back exactly.
            -(i64::MIN as f64),
            u64::MAX as f64,
            0.5,
            -0.1,
            1e-310,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut z = ZSetValue::new(true);
        for (i, &s) in scores.iter().enumerate() {
            z.insert(format!("m{i}").as_bytes(), s);
        }
        for (i, &s) in scores.iter().enumerate() {
            assert_eq!(
                z.score(format!("m{i}").as_bytes()).map(f64::to_bits),
                Some(s.to_bits()),
                "{s}"
            );
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let got: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert_eq!(got, sorted);
        let mut rev: Vec<f64> = z.iter_rev_from(usize::MAX).map(|(_, s)| s).collect();
        rev.reverse();
        assert_eq!(rev, sorted);
        // Small integer scores and short members take a few bytes each, as in a listpack.
        let mut z = ZSetValue::new(true);
        for i in 0..10 {
            z.insert(format!("member:{i}").as_bytes(), i as f64);
        }
        match &z.repr {
            Repr::Pack(p) => assert_eq!(p.bytes(), 10 * 11),
            Repr::Skip(_) => panic!("still a listpack"),
        }
    }

    #[test]
    fn long_members_and_conversions_keep_every_entry() {
        let long = "x".repeat(300);
        let mut z = ZSetValue::new(true);
        z.insert(long.as_bytes(), 2.5);
        z.insert(b"", 1.0);
        z.insert(b"short", 3.0);
        assert_eq!(
            z.get(0).map(|(m, _)| Bytes::copy_from_slice(m)),
            Some(b(""))
        );
        assert_eq!(
            z.get(1).map(|(m, s)| (Bytes::copy_from_slice(m), s)),
            Some((b(&long), 2.5))
        );
        assert_eq!(members(z.iter_rev_from(1)), vec![b(&long), b("")]);
        let before: Vec<_> = z
            .iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        z.make_skiplist();
        assert_eq!(z.encoding(), "skiplist");
        let after: Vec<_> = z
            .iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        assert_eq!(before, after);
        z.make_listpack();
        assert_eq!(z.encoding(), "listpack");
        let again: Vec<_> = z
            .iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        assert_eq!(before, again);
        let mut hashed: Vec<_> = z
            .dict_iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        hashed.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        assert_eq!(hashed, before);
    }

    /// A cheap deterministic generator for the randomised tests.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Adds like the server's ZADD: a listpack converts once it would exceed the limits.
    fn add(z: &mut ZSetValue, member: &[u8], score: f64, entries: usize, value: usize) {
        if z.score(member).is_none()
            && z.is_listpack()
            && (z.len() + 1 > entries || member.len() > value)
        {
            z.make_skiplist();
        }
        z.insert(member, score);
    }

    #[test]
    fn random_operations_match_a_simple_model() {
        let scores = [
            -0.0,
            0.0,
            1.0,
            2.0,
            -3.0,
            0.25,
            1e100,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let pool: Vec<Vec<u8>> = (0..40)
            .map(|i| match i {
                0 => Vec::new(),
                1 => vec![b'L'; 200],
                _ => format!("m{}", i * 7 % 40).into_bytes(),
            })
            .collect();
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let start_listpack = seed % 4 != 0;
            let mut z = ZSetValue::new(start_listpack);
            // Entries in order; scores as stored (a listpack turns -0 into 0).
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            let (max_entries, max_value) = (4 + seed as usize % 20, 64);
            for _ in 0..400 {
                let listpack = z.is_listpack();
                match rng.below(10) {
                    0..=4 => {
                        let m = &pool[rng.below(pool.len())];
                        let s = scores[rng.below(scores.len())];
                        let had = model.iter().position(|(_, x)| x == m);
                        let would_convert = had.is_none()
                            && listpack
                            && (model.len() + 1 > max_entries || m.len() > max_value);
                        let stored = if listpack && !would_convert && s == 0.0 {
                            0.0
                        } else {
                            s
                        };
                        let prev = had.map(|i| model.remove(i).0);
                        assert_eq!(z.score(m).map(f64::to_bits), prev.map(f64::to_bits));
                        add(&mut z, m, s, max_entries, max_value);
                        assert_eq!(z.is_listpack(), listpack && !would_convert);
                        let at = model
                            .iter()
                            .position(|(ms, mm)| cmp_entry(*ms, mm, stored, m) == Ordering::Greater)
                            .unwrap_or(model.len());
                        model.insert(at, (stored, m.clone()));
                    }
                    5 => {
                        let m = &pool[rng.below(pool.len())];
                        let had = model.iter().position(|(_, x)| x == m);
                        let expect = had.map(|i| model.remove(i).0);
                        assert_eq!(z.remove(m).map(f64::to_bits), expect.map(f64::to_bits));
                    }
                    6 => {
                        let max = rng.below(2) == 1;
                        let expect = if model.is_empty() {
                            None
                        } else if max {
                            model.pop()
                        } else {
                            Some(model.remove(0))
                        };
                        let got = z.pop(max);
                        assert_eq!(
                            got.map(|(m, s)| (s.to_bits(), m.to_vec())),
                            expect.map(|(s, m)| (s.to_bits(), m))
                        );
                    }
                    7 => {
                        let a = rng.below(model.len() + 2);
                        let b = a + rng.below(4);
                        let n = b.min(model.len()).saturating_sub(a);
                        assert_eq!(z.remove_range(a, b), n);
                        if n > 0 {
                            model.drain(a..a + n);
                        }
                    }
                    8 => {
                        // Store results can turn a small large-form set back into a listpack.
                        if !listpack && model.len() <= max_entries {
                            z.make_listpack();
                            for e in model.iter_mut() {
                                if e.0 == 0.0 {
                                    e.0 = 0.0;
                                }
                            }
                        }
                    }
                    _ => {
                        if rng.below(4) == 0 {
                            z.make_skiplist();
                        }
                    }
                }
                check(&z, &model, &mut rng);
            }
        }
    }

    fn check(z: &ZSetValue, model: &[(f64, Vec<u8>)], rng: &mut Rng) {
        let bits = |v: Vec<(&[u8], f64)>| -> Vec<(u64, Vec<u8>)> {
            v.into_iter()
                .map(|(m, s)| (s.to_bits(), m.to_vec()))
                .collect()
        };
        let want: Vec<(u64, Vec<u8>)> = model
            .iter()
            .map(|(s, m)| (s.to_bits(), m.clone()))
            .collect();
        assert_eq!(z.len(), model.len());
        assert_eq!(bits(z.iter().collect()), want);
        let i = rng.below(model.len() + 2);
        assert_eq!(bits(z.iter_from(i).collect()), want[i.min(want.len())..]);
        assert_eq!(z.iter_from(i).len(), want.len().saturating_sub(i));
        assert_eq!(z.iter_rev_from(i).owned().len(), (i + 1).min(want.len()));
        let mut rev = bits(z.iter_rev_from(i).collect());
        rev.reverse();
        assert_eq!(rev, want[..(i + 1).min(want.len())]);
        assert_eq!(
            z.get(i).map(|(m, s)| (s.to_bits(), m.to_vec())),
            want.get(i).cloned()
        );
        if let Some((s, m)) = model.get(i) {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.score(m).map(f64::to_bits), Some(s.to_bits()));
            let below = model.iter().filter(|(x, _)| x < s).count();
            assert_eq!(z.count_while(|x, _| x < *s), below);
        }
        assert_eq!(z.dict_iter().count(), model.len());
    }
}
