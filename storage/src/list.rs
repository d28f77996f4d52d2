//! List values (LPUSH and friends).

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Clone, Debug, Default)]
pub struct ListValue {
    pub items: VecDeque<Bytes>,
}

/// Which end of a list an operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn push(&mut self, end: End, value: Bytes) {
        match end {
            End::Head => self.items.push_front(value),
            End::Tail => self.items.push_back(value),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        }
    }

    /// The position of a Redis index (negative counts from the tail), if it is in the list.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    pub fn get(&self, index: i64) -> Option<&Bytes> {
        self.position(index).map(|i| &self.items[i])
    }

    /// Replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, value: Bytes) -> bool {
        match self.position(index) {
            Some(i) => {
                self.items[i] = value;
                true
            }
            None => false,
        }
    }

    /// The inclusive range of positions LRANGE's `start stop` select, or None when empty.
    pub fn range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.items.len() as i64;
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

    /// Keeps only the LTRIM range `start stop`; the list may become empty.
    pub fn trim(&mut self, start: i64, end: i64) {
        match self.range(start, end) {
            None => self.items.clear(),
            Some((s, e)) => {
                self.items.truncate(e + 1);
                self.items.drain(..s);
            }
        }
    }

    /// Inserts `value` before or after the first element equal to `pivot`; false when the
    /// pivot is not found.
    pub fn insert(&mut self, pivot: &[u8], value: Bytes, after: bool) -> bool {
        match self.items.iter().position(|e| e[..] == *pivot) {
            Some(i) => {
                self.items.insert(if after { i + 1 } else { i }, value);
                true
            }
            None => false,
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
        let before = self.items.len();
        if count >= 0 {
            let mut removed = 0;
            self.items.retain(|e| {
                let hit = removed < limit && e[..] == *value;
                removed += hit as usize;
                !hit
            });
        } else {
            // Every match at or after the `limit`th match from the tail goes.
            let mut from = 0;
            let mut seen = 0;
            for (i, e) in self.items.iter().enumerate().rev() {
                if e[..] == *value {
                    seen += 1;
                    if seen == limit {
                        from = i;
                        break;
                    }
                }
            }
            let mut i = 0;
            self.items.retain(|e| {
                let keep = i < from || e[..] != *value;
                i += 1;
                keep
            });
        }
        before - self.items.len()
    }

    /// LPOS: positions of elements equal to `value`, starting at the `rank`th match (negative:
    /// scanning from the tail), at most `count` of them (0: all), looking at no more than
    /// `maxlen` elements (0: all).
    pub fn positions(&self, value: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let len = self.items.len();
        let skip = rank.unsigned_abs().saturating_sub(1);
        let limit = if maxlen == 0 { len } else { maxlen.min(len) };
        let mut matches = 0u64;
        let mut out = Vec::new();
        for step in 0..limit {
            let i = if rank < 0 { len - 1 - step } else { step };
            if self.items[i][..] == *value {
                matches += 1;
                if matches > skip {
                    out.push(i);
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
        ListValue {
            items: items.iter().map(|s| Bytes::from(s.to_string())).collect(),
        }
    }

    fn contents(l: &ListValue) -> Vec<String> {
        l.items
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
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
        let mut l = list(&["a", "b", "c"]);
        assert_eq!(l.get(-1).map(|b| &b[..]), Some(&b"c"[..]));
        assert_eq!(l.get(3), None);
        assert_eq!(l.get(-4), None);
        assert_eq!(l.get(i64::MIN), None);
        assert!(l.set(-3, Bytes::from_static(b"x")));
        assert!(!l.set(3, Bytes::from_static(b"x")));
        assert_eq!(contents(&l), ["x", "b", "c"]);
    }

    #[test]
    fn trim_keeps_the_range() {
        let mut l = list(&["a", "b", "c", "d", "e"]);
        l.trim(1, -2);
        assert_eq!(contents(&l), ["b", "c", "d"]);
        l.trim(5, 10);
        assert!(l.is_empty());
    }

    #[test]
    fn remove_counts_from_either_end() {
        let mut l = list(&["a", "x", "b", "x", "c", "x"]);
        assert_eq!(l.remove(b"x", -2), 2);
        assert_eq!(contents(&l), ["a", "x", "b", "c"]);
        let mut l = list(&["x", "a", "x", "x"]);
        assert_eq!(l.remove(b"x", 2), 2);
        assert_eq!(contents(&l), ["a", "x"]);
        let mut l = list(&["x", "a", "x", "x"]);
        assert_eq!(l.remove(b"x", 0), 3);
        assert_eq!(contents(&l), ["a"]);
        assert_eq!(l.remove(b"x", i64::MIN), 0);
    }

    #[test]
    fn insert_around_the_first_pivot() {
        let mut l = list(&["a", "p", "p"]);
        assert!(l.insert(b"p", Bytes::from_static(b"n"), true));
        assert!(l.insert(b"a", Bytes::from_static(b"m"), false));
        assert!(!l.insert(b"zz", Bytes::from_static(b"m"), false));
        assert_eq!(contents(&l), ["m", "a", "p", "n", "p"]);
    }

    #[test]
    fn positions_follow_lpos() {
        let l = list(&["a", "b", "c", "1", "2", "3", "c", "c"]);
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
