//! Set values (SADD and friends). Insertion-indexed for O(1) SRANDMEMBER/SPOP and a
//! deletion-safe SSCAN cursor.
//!
//! While Redis would hold a set as an intset (all members integers, at most
//! set-max-intset-entries of them), the members are kept in ascending integer order, because
//! that order is observable in Redis (SMEMBERS of {3, 1, 2} answers 1 2 3). Inserting and
//! removing then cost O(n), as they do in Redis's intset; once converted to a hash table the
//! set never goes back and order no longer matters.

use std::cell::Cell;

use ahash::RandomState;
use indexmap::IndexSet;

use crate::key::Key;
use crate::value::parse_strict_i64;

#[derive(Clone, Debug, Default)]
pub struct SetValue {
    pub members: IndexSet<Key, RandomState>,
    /// Whether Redis would still hold this set as an intset (all members integers, at most
    /// set-max-intset-entries of them; once converted it never goes back).
    pub intset: bool,
}

/// Whether Redis would store `member` in an intset (`isSdsRepresentableAsLongLong`).
pub fn is_int(member: &[u8]) -> bool {
    parse_strict_i64(member).is_some()
}

fn int_of(k: &Key) -> i64 {
    parse_strict_i64(k.as_bytes()).expect("intset members are integers")
}

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0) };
}

/// A cheap, well spread random number (xorshift64*); sampling needs nothing stronger.
pub fn random_u64() -> u64 {
    SEED.with(|seed| {
        let mut x = seed.get();
        if x == 0 {
            x = RandomState::new().hash_one(0x5e7u64) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        seed.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

impl SetValue {
    /// The hash table's room, once Redis would no longer hold it as an intset (DEBUG
    /// HTSTATS-KEY).
    pub fn table_capacity(&self) -> Option<usize> {
        (!self.intset).then(|| self.members.capacity())
    }

    /// An empty set that can hold `first` the way Redis's `setTypeCreate` picks: an intset
    /// when `first` is an integer, a hash table otherwise.
    pub fn for_member(first: &[u8]) -> SetValue {
        SetValue {
            members: IndexSet::default(),
            intset: is_int(first),
        }
    }

    /// An empty set in intset form (Redis's `createIntsetObject`, used for computed results).
    pub fn new_intset() -> SetValue {
        SetValue {
            members: IndexSet::default(),
            intset: true,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.intset {
            "intset"
        } else {
            "hashtable"
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds `member`; returns whether it was new. Converts to a hash table as Redis's
    /// `setTypeAdd` does: on a non-integer member or beyond `max_intset` members.
    pub fn add(&mut self, member: &[u8], max_intset: usize) -> bool {
        if self.intset {
            match parse_strict_i64(member) {
                Some(v) => {
                    let at = match self.members.binary_search_by(|k| int_of(k).cmp(&v)) {
                        Ok(_) => return false,
                        Err(at) => at,
                    };
                    self.members.shift_insert(at, Key::from_slice(member));
                    if self.members.len() > max_intset {
                        self.intset = false;
                    }
                    true
                }
                None => {
                    self.intset = false;
                    self.members.insert(Key::from_slice(member))
                }
            }
        } else {
            self.members.insert(Key::from_slice(member))
        }
    }

    /// Removes `member`; returns whether it was there. Intsets keep their order.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        if self.intset {
            self.members.shift_remove(member)
        } else {
            self.members.swap_remove(member)
        }
    }

    /// Removes the member at `index` (in iteration order) and returns it.
    pub fn remove_index(&mut self, index: usize) -> Option<Key> {
        if self.intset {
            self.members.shift_remove_index(index)
        } else {
            self.members.swap_remove_index(index)
        }
    }

    /// A uniformly random member's index; the set must not be empty.
    pub fn random_index(&self) -> usize {
        (random_u64() % self.members.len() as u64) as usize
    }

    /// Members in iteration order (ascending integers for an intset).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(|k| k.as_bytes())
    }

    /// Builds a set the way Redis builds a computed result: an intset to which every member is
    /// added in turn (so it stays an intset only when all are integers and few enough).
    pub fn collect<'a>(members: impl IntoIterator<Item = &'a [u8]>, max_intset: usize) -> SetValue {
        let mut out = SetValue::new_intset();
        for m in members {
            out.add(m, max_intset);
        }
        out
    }

    /// Re-derives the encoding as if the members had been added afresh to a set created for
    /// the first of them (SPOP's "keep the remaining elements in a new set" strategy).
    pub fn rebuild(&mut self, max_intset: usize) {
        let Some(first) = self.members.first() else {
            return;
        };
        let mut fresh = SetValue::for_member(first.as_bytes());
        for m in self.members.iter() {
            fresh.add(m.as_bytes(), max_intset);
        }
        *self = fresh;
    }

    /// One SSCAN step from position `cursor` downwards (0 = from the top): the members visited
    /// and where to resume (0: done). Walking down survives swap-removals, as `Db::scan` does.
    pub fn scan(&self, cursor: usize, count: usize) -> (Vec<&[u8]>, usize) {
        let mut pos = if cursor == 0 || cursor > self.members.len() {
            self.members.len()
        } else {
            cursor
        };
        let mut out = Vec::with_capacity(count.min(pos));
        while pos > 0 && out.len() < count {
            pos -= 1;
            out.push(self.members[pos].as_bytes());
        }
        (out, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(s: &SetValue) -> Vec<String> {
        s.iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    #[test]
    fn intsets_keep_ascending_order_and_convert_on_a_string() {
        let mut s = SetValue::for_member(b"3");
        for m in ["3", "1", "2", "-5", "10", "1"] {
            s.add(m.as_bytes(), 512);
        }
        assert_eq!(members(&s), ["-5", "1", "2", "3", "10"]);
        assert_eq!(s.encoding(), "intset");
        assert!(s.remove(b"2"));
        assert!(!s.remove(b"2"));
        assert_eq!(members(&s), ["-5", "1", "3", "10"]);
        assert!(s.add(b"x", 512));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.remove(b"x"));
        assert_eq!(s.encoding(), "hashtable", "never converts back");
    }

    #[test]
    fn non_canonical_integers_are_strings() {
        let mut s = SetValue::for_member(b"01");
        assert_eq!(s.encoding(), "hashtable");
        let mut t = SetValue::new_intset();
        t.add(b"1", 512);
        t.add(b"+1", 512);
        assert_eq!(t.encoding(), "hashtable");
        assert_eq!(t.len(), 2);
        s.add(b"01", 512);
        assert!(s.contains(b"01") && !s.contains(b"1"));
    }

    #[test]
    fn intset_converts_past_the_entry_limit() {
        let mut s = SetValue::new_intset();
        for i in 0..4 {
            s.add(i.to_string().as_bytes(), 4);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"4", 4);
        assert_eq!(s.encoding(), "hashtable");
        let c = SetValue::collect([&b"2"[..], b"1"], 4);
        assert_eq!(
            (c.encoding(), members(&c)),
            ("intset", vec!["1".into(), "2".into()])
        );
    }

    #[test]
    fn rebuild_can_return_to_intset() {
        let mut s = SetValue::for_member(b"a");
        for m in ["a", "5", "3"] {
            s.add(m.as_bytes(), 512);
        }
        s.remove(b"a");
        assert_eq!(s.encoding(), "hashtable");
        s.rebuild(512);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(members(&s), ["3", "5"]);
    }

    #[test]
    fn scan_survives_removals() {
        let mut s = SetValue::for_member(b"m");
        for i in 0..300 {
            s.add(format!("m{i}").as_bytes(), 512);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            let (got, next) = s.scan(cursor, 7);
            seen.extend(got.iter().map(|m| m.to_vec()));
            step += 1;
            s.remove(format!("m{}", step * 2 + 1).as_bytes());
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in (0..300).step_by(2) {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
    }
}
