//! The key table of a database: entries in one dense vector, in insertion order with
//! swap-removal (so a uniformly random key and a rehash-safe SCAN position cost O(1)), and an
//! index of `u32` positions into it, found by hashing the key.
//!
//! IndexMap has the same shape but stores each key's hash beside it and indexes with `usize`:
//! 8 + ~9 bytes more per key at a million keys, a tenth of what a small string key costs.
//! Hashes are recomputed instead, which only costs when the index grows or a key moves.

use ahash::RandomState;
use hashbrown::HashTable;

use crate::chunked::ChunkedVec;
use crate::key::Key;

pub struct KeyTable<V> {
    entries: ChunkedVec<(Key, V)>,
    index: HashTable<u32>,
    hasher: RandomState,
    /// The address of the index's control bytes, for [`KeyTable::prefetch_slot`] only (never
    /// dereferenced): hashbrown keeps bucket `b`'s value `b + 1` values below them. 0 until
    /// the first insert; refreshed by every insert, the only change that moves the index.
    index_base: usize,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        KeyTable {
            entries: ChunkedVec::default(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            index_base: 0,
        }
    }
}

/// Where a key is, or the hash to insert it under (so a miss then insert hashes once).
pub enum Lookup {
    At(usize),
    Absent(u64),
}

/// Asks the CPU to start loading the cache line at `address` into its caches. A hint only: a
/// stale or wrong address costs the hint and nothing else.
#[inline(always)]
pub(crate) fn prefetch(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 reads nothing architecturally and cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

fn position(i: usize) -> u32 {
    u32::try_from(i).expect("a database holds fewer than 2^32 keys")
}

impl<V> KeyTable<V> {
    /// How many keys the hash index has room for before it grows (DEBUG HTSTATS).
    pub fn index_capacity(&self) -> usize {
        self.index.capacity()
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the entries' room not yet filled: allocated when it grew, but not touched (so
    /// not resident) until keys fill it.
    pub fn spare_bytes(&self) -> usize {
        (self.entries.capacity() - self.entries.len()) * std::mem::size_of::<(Key, V)>()
    }

    pub fn lookup(&self, key: &[u8]) -> Lookup {
        let hash = self.hash(key);
        match self.find_hashed(hash, key) {
            Some(i) => Lookup::At(i),
            None => Lookup::Absent(hash),
        }
    }

    fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&i| entries[i as usize].0.as_bytes() == key)
            .map(|&i| i as usize)
    }

    /// The first step of a look-up ahead of time: starts loading the index's lines where the
    /// probe for `hash` begins (its control group and the slots beside it). A batch of
    /// commands prefetches every key's slot, then every key's entry
    /// ([`KeyTable::prefetch_entry`]), then every value, then runs: the cache misses of its
    /// look-ups overlap instead of coming one after the other. Uses hashbrown's layout (buckets below the
    /// control bytes, the probe starting at `hash & (buckets - 1)`); should that change, the
    /// hints go astray and look-ups stay as they are.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        if self.index_base == 0 {
            return;
        }
        let at = hash as usize & (self.index.num_buckets() - 1);
        prefetch(self.index_base + at);
        prefetch(self.index_base - (at + 1) * std::mem::size_of::<u32>());
    }

    /// The second step (after [`KeyTable::prefetch_slot`]): follows the probe for `hash`
    /// without comparing keys and starts loading the entry of the first candidate; gives its
    /// value, for the caller to prefetch what that points at once the entry is in. (A
    /// candidate of another key, as rare as hashbrown's 7-bit tags matching by chance, only
    /// wastes the hints.)
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) -> Option<&V> {
        let i = *self.index.find(hash, |_| true)? as usize;
        let entry = self.entries.get(i)?;
        let at = entry as *const (Key, V) as usize;
        prefetch(at);
        prefetch(at + std::mem::size_of::<(Key, V)>() - 1);
        Some(&entry.1)
    }

    pub fn position_of(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(self.hash(key), key)
    }

    /// The position of the key whose hash is `hash` and that `is_it` accepts.
    pub fn position_by_hash(
        &self,
        hash: u64,
        mut is_it: impl FnMut(&Key) -> bool,
    ) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&i| is_it(&entries[i as usize].0))
            .map(|&i| i as usize)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.position_of(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let i = self.position_of(key)?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    pub fn get_index(&self, i: usize) -> Option<(&Key, &V)> {
        self.entries.get(i).map(|(k, v)| (k, v))
    }

    pub fn get_index_mut(&mut self, i: usize) -> Option<(&Key, &mut V)> {
        self.entries.get_mut(i).map(|(k, v)| (&*k, v))
    }

    /// Appends a key known to be absent, `hash` being its hash (from [`KeyTable::lookup`]).
    pub fn push(&mut self, hash: u64, key: Key, value: V) -> usize {
        let at = self.entries.len();
        let (entries, hasher) = (&self.entries, &self.hasher);
        let slot = self.index.insert_unique(hash, position(at), |&i| {
            hasher.hash_one(entries[i as usize].0.as_bytes())
        });
        self.index_base = slot.get() as *const u32 as usize
            + (slot.bucket_index() + 1) * std::mem::size_of::<u32>();
        self.entries.push((key, value));
        at
    }

    pub fn swap_remove(&mut self, key: &[u8]) -> Option<(Key, V)> {
        let i = self.position_of(key)?;
        Some(self.swap_remove_index(i))
    }

    /// Removes the entry at `i`; the last entry takes its place.
    pub fn swap_remove_index(&mut self, i: usize) -> (Key, V) {
        let hash = self.hash(self.entries[i].0.as_bytes());
        let Ok(slot) = self.index.find_entry(hash, |&p| p as usize == i) else {
            unreachable!("every entry is indexed");
        };
        slot.remove();
        let last = self.entries.len() - 1;
        let removed = self.entries.swap_remove(i);
        if i != last {
            let moved = self.hash(self.entries[i].0.as_bytes());
            let slot = self
                .index
                .find_mut(moved, |&p| p as usize == last)
                .expect("every entry is indexed");
            *slot = position(i);
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(t: &mut KeyTable<u32>, key: &str, v: u32) {
        match t.lookup(key.as_bytes()) {
            Lookup::At(i) => *t.get_index_mut(i).unwrap().1 = v,
            Lookup::Absent(h) => {
                t.push(h, Key::from_slice(key.as_bytes()), v);
            }
        }
    }

    /// `prefetch_slot` computes addresses from hashbrown's layout; were it to change, the
    /// hints would go astray without a word, so this checks the layout it assumes.
    #[test]
    fn the_prefetched_slot_is_where_the_index_keeps_the_key() {
        let mut t = KeyTable::default();
        assert_eq!(
            t.prefetch_entry(t.hash(b"key:0")),
            None,
            "nothing to find yet"
        );
        let (mut checked, mut near, mut right) = (0, 0, 0);
        for n in 0..5000u32 {
            insert(&mut t, &format!("key:{n}"), n);
            if n % 97 != 0 {
                continue;
            }
            for probe in 0..=n {
                let key = format!("key:{probe}");
                let hash = t.hash(key.as_bytes());
                let b = t.index.find_bucket_index(hash, |&i| i == probe).unwrap();
                let value = t.index.get_bucket(b).unwrap() as *const u32 as usize;
                assert_eq!(value, t.index_base - (b + 1) * std::mem::size_of::<u32>());
                // The probe starts at `hash & mask`; most keys sit in the group there.
                let buckets = t.index.num_buckets();
                let start = hash as usize & (buckets - 1);
                checked += 1;
                near += usize::from((b + buckets - start) % buckets < 16);
                // The entry prefetched is the key's own unless another key's tag came first.
                right += usize::from(t.prefetch_entry(hash) == Some(&probe));
            }
        }
        assert!(
            near * 4 > checked * 3,
            "{near} of {checked} in the first group"
        );
        assert!(
            right * 10 > checked * 9,
            "{right} of {checked}: the key's own entry"
        );
    }

    #[test]
    fn lookups_follow_inserts_replacements_and_swap_removals() {
        let mut t = KeyTable::default();
        let mut model = std::collections::HashMap::new();
        let mut seed = 7u64;
        for step in 0..20_000u32 {
            crate::next_test_random(&mut seed);
            let key = format!("k{}", (seed >> 33) % 3000);
            if (seed >> 20).is_multiple_of(3) {
                assert_eq!(
                    t.swap_remove(key.as_bytes()).map(|(_, v)| v),
                    model.remove(&key)
                );
            } else {
                insert(&mut t, &key, step);
                model.insert(key, step);
            }
        }
        assert_eq!(t.len(), model.len());
        for (k, v) in &model {
            assert_eq!(t.get(k.as_bytes()), Some(v), "{k}");
        }
        for i in 0..t.len() {
            let (k, v) = t.get_index(i).unwrap();
            assert_eq!(t.position_of(k.as_bytes()), Some(i));
            assert_eq!(
                model.get(std::str::from_utf8(k.as_bytes()).unwrap()),
                Some(v)
            );
        }
        assert!(t.get(b"absent").is_none());
    }

    #[test]
    fn removing_the_last_entry_and_the_only_entry() {
        let mut t = KeyTable::default();
        insert(&mut t, "a", 1);
        insert(&mut t, "b", 2);
        assert_eq!(t.swap_remove(b"b").map(|(_, v)| v), Some(2));
        assert_eq!(t.get(b"a"), Some(&1));
        assert_eq!(t.swap_remove(b"a").map(|(_, v)| v), Some(1));
        assert!(t.is_empty());
        assert!(t.swap_remove(b"a").is_none());
    }
}
