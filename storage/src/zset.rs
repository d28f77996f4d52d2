//! Sorted-set values (ZADD and friends): a member -> score map plus the members ordered by
//! (score, member) in a chunked sorted list, so ranks and range starts cost a binary search
//! over chunks plus one inside a chunk instead of a walk over the whole set.

use std::cmp::Ordering;
use std::collections::HashMap;

use ahash::RandomState;
use bytes::Bytes;

/// Largest chunk before it is split in two.
const CHUNK: usize = 256;

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
    chunks: Vec<Vec<(f64, Bytes)>>,
    len: usize,
}

impl Sorted {
    /// The number of leading entries for which `pred` holds (`pred` must be monotone:
    /// true for a prefix, false afterwards).
    fn partition_point(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.last().expect("chunks are never empty");
            pred(*s, m)
        });
        let before: usize = self.chunks[..ci].iter().map(Vec::len).sum();
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
            self.chunks.push(vec![(score, member)]);
            return;
        }
        let lt = |s: f64, m: &[u8]| cmp_entry(s, m, score, &member) == Ordering::Less;
        let mut ci = self.chunks.partition_point(|c| {
            let (s, m) = c.last().expect("chunks are never empty");
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

    fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let lt = |s: f64, m: &[u8]| cmp_entry(s, m, score, member) == Ordering::Less;
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.last().expect("chunks are never empty");
            lt(*s, m)
        });
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return false;
        };
        let off = chunk.partition_point(|(s, m)| lt(*s, m));
        match chunk.get(off) {
            Some((s, m)) if cmp_entry(*s, m, score, member) == Ordering::Equal => {}
            _ => return false,
        }
        chunk.remove(off);
        if chunk.is_empty() {
            self.chunks.remove(ci);
        }
        self.len -= 1;
        true
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

#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    dict: HashMap<Bytes, f64, RandomState>,
    sorted: Sorted,
    /// Whether Redis would still hold this sorted set as a listpack (until
    /// zset-max-listpack-entries/-value is exceeded; it never converts back).
    pub listpack: bool,
}

impl ZSetValue {
    pub fn new(listpack: bool) -> ZSetValue {
        ZSetValue {
            listpack,
            ..ZSetValue::default()
        }
    }

    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.listpack {
            "listpack"
        } else {
            "skiplist"
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Builds a sorted set from distinct members in any order.
    pub fn from_entries(mut entries: Vec<(Bytes, f64)>, listpack: bool) -> ZSetValue {
        entries.sort_unstable_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        let mut z = ZSetValue::new(listpack);
        z.dict.reserve(entries.len());
        z.sorted.len = entries.len();
        let mut chunk = Vec::with_capacity(CHUNK);
        for (m, s) in entries {
            let s = if listpack && s == 0.0 { 0.0 } else { s };
            z.dict.insert(m.clone(), s);
            chunk.push((s, m));
            if chunk.len() == CHUNK {
                z.sorted
                    .chunks
                    .push(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
            }
        }
        if !chunk.is_empty() {
            z.sorted.chunks.push(chunk);
        }
        z
    }

    /// Marks the set as a listpack (a freshly built store result that fits): scores go
    /// through listpack text, so any -0 becomes 0.
    pub fn make_listpack(&mut self) {
        self.listpack = true;
        for v in self.dict.values_mut() {
            if *v == 0.0 {
                *v = 0.0;
            }
        }
        for chunk in &mut self.sorted.chunks {
            for (v, _) in chunk.iter_mut() {
                if *v == 0.0 {
                    *v = 0.0;
                }
            }
        }
    }

    /// Sets `member`'s score; returns the previous score, if any.
    /// A listpack keeps scores as text, where -0 reads back as 0.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let score = if self.listpack && score == 0.0 {
            0.0
        } else {
            score
        };
        if let Some(old) = self.dict.get_mut(&member[..]) {
            let prev = *old;
            *old = score;
            // Same score (or -0 vs 0): the position does not change, only the stored value.
            self.sorted.remove(prev, &member);
            self.sorted.insert(score, member);
            return Some(prev);
        }
        self.dict.insert(member.clone(), score);
        self.sorted.insert(score, member);
        None
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.dict.remove(member)?;
        self.sorted.remove(score, member);
        Some(score)
    }

    /// 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(
            self.sorted
                .partition_point(|s, m| cmp_entry(s, m, score, member) == Ordering::Less),
        )
    }

    /// The entry at ascending position `index`.
    pub fn get(&self, index: usize) -> Option<(&Bytes, f64)> {
        self.sorted.get(index).map(|(s, m)| (m, s))
    }

    /// The number of leading entries (ascending) for which `pred(score, member)` holds; `pred`
    /// must be true for a prefix and false afterwards.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        self.sorted.partition_point(pred)
    }

    /// Entries in ascending order from position `start`.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let (ci, off) = if start >= self.sorted.len {
            (self.sorted.chunks.len(), 0)
        } else {
            self.sorted.locate(start)
        };
        self.sorted
            .chunks
            .iter()
            .skip(ci)
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { off } else { 0 }..].iter())
            .map(|(s, m)| (m, *s))
    }

    /// Entries in descending order from position `start` (inclusive) down to 0.
    pub fn iter_rev_from(&self, start: usize) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let (ci, off, empty) = if self.sorted.len == 0 {
            (0, 0, true)
        } else {
            let (ci, off) = self.sorted.locate(start.min(self.sorted.len - 1));
            (ci, off, false)
        };
        let chunks = if empty {
            &self.sorted.chunks[..0]
        } else {
            &self.sorted.chunks[..=ci]
        };
        chunks
            .iter()
            .rev()
            .enumerate()
            .flat_map(move |(i, c)| {
                let end = if i == 0 { off + 1 } else { c.len() };
                c[..end].iter().rev()
            })
            .map(|(s, m)| (m, *s))
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        self.iter_from(0)
    }

    /// Every member with its score in hash order (cheap membership-style walks).
    pub fn dict_iter(&self) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        self.dict.iter().map(|(m, s)| (m, *s))
    }

    /// Removes and returns the lowest (or, with `max`, highest) entry.
    pub fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        let chunks = &mut self.sorted.chunks;
        let ci = if max {
            chunks.len().checked_sub(1)?
        } else if chunks.is_empty() {
            return None;
        } else {
            0
        };
        let chunk = &mut chunks[ci];
        let (s, m) = if max {
            chunk.pop().expect("chunks are never empty")
        } else {
            chunk.remove(0)
        };
        if chunk.is_empty() {
            chunks.remove(ci);
        }
        self.sorted.len -= 1;
        self.dict.remove(&m[..]);
        Some((m, s))
    }

    /// Removes the entries at ascending positions [start, end); returns how many went.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        let mut pos = 0;
        for chunk in &mut self.sorted.chunks {
            let (from, to) = (pos, pos + chunk.len());
            pos = to;
            if to <= start || from >= end {
                continue;
            }
            let lo = start.max(from) - from;
            let hi = end.min(to) - from;
            for (_, m) in chunk.drain(lo..hi) {
                self.dict.remove(&m[..]);
            }
        }
        self.sorted.chunks.retain(|c| !c.is_empty());
        self.sorted.len -= end - start;
        end - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn orders_by_score_then_member_and_ranks() {
        let mut z = ZSetValue::new(true);
        z.insert(b("b"), 1.0);
        z.insert(b("a"), 1.0);
        z.insert(b("c"), 0.5);
        assert_eq!(z.rank(b"c"), Some(0));
        assert_eq!(z.rank(b"a"), Some(1));
        assert_eq!(z.rank(b"b"), Some(2));
        assert_eq!(z.insert(b("c"), 2.0), Some(0.5));
        let order: Vec<_> = z.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(order, vec![b("a"), b("b"), b("c")]);
        let rev: Vec<_> = z.iter_rev_from(1).map(|(m, _)| m.clone()).collect();
        assert_eq!(rev, vec![b("b"), b("a")]);
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!(z.rank(b"c"), Some(1));
        assert_eq!(z.pop(true), Some((b("c"), 2.0)));
        assert_eq!(z.pop(false), Some((b("b"), 1.0)));
        assert!(z.is_empty());
        assert_eq!(z.iter_rev_from(5).count(), 0);
    }

    #[test]
    fn many_entries_split_into_chunks_and_stay_ordered() {
        let mut z = ZSetValue::new(false);
        let n = 5000;
        for i in 0..n {
            // A scrambled insertion order.
            let k = (i * 7919) % n;
            z.insert(b(&format!("m{k:05}")), (k / 3) as f64);
        }
        assert_eq!(z.len(), n);
        assert!(z.sorted.chunks.len() > 1);
        let all: Vec<_> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
        for w in all.windows(2) {
            assert_eq!(cmp_entry(w[0].1, &w[0].0, w[1].1, &w[1].0), Ordering::Less);
        }
        for (i, (m, _)) in all.iter().enumerate().step_by(97) {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.get(i).map(|(m, _)| m.clone()), Some(m.clone()));
            assert_eq!(
                z.iter_from(i).next().map(|(m, _)| m.clone()),
                Some(m.clone())
            );
            assert_eq!(
                z.iter_rev_from(i).next().map(|(m, _)| m.clone()),
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
        let before: Vec<_> = z.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(z.remove_range(100, 1100), 1000);
        assert_eq!(z.len(), n / 2 - 1000);
        let after: Vec<_> = z.iter().map(|(m, _)| m.clone()).collect();
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
        let entries: Vec<_> = (0..1000)
            .map(|i| (b(&format!("k{}", (i * 37) % 1000)), (i % 7) as f64))
            .collect();
        let built = ZSetValue::from_entries(entries.clone(), false);
        let mut inserted = ZSetValue::new(false);
        for (m, s) in entries {
            inserted.insert(m, s);
        }
        let a: Vec<_> = built.iter().map(|(m, s)| (m.clone(), s)).collect();
        let b: Vec<_> = inserted.iter().map(|(m, s)| (m.clone(), s)).collect();
        assert_eq!(a, b);
        assert_eq!(built.rank(b"k999"), inserted.rank(b"k999"));
        assert_eq!(built.len(), 1000);
    }

    #[test]
    fn negative_zero_updates_in_place() {
        let mut z = ZSetValue::new(true);
        z.insert(b("b"), -0.0);
        assert!(z.score(b"b").unwrap().is_sign_positive());
        let mut z = ZSetValue::new(false);
        z.insert(b("a"), 0.0);
        z.insert(b("a"), -0.0);
        assert_eq!(z.len(), 1);
        assert!(z.score(b"a").unwrap().is_sign_negative());
        assert!(z.get(0).unwrap().1.is_sign_negative());
    }
}
