//! Eviction, all of what picks the key to go (the server's `eviction.rs` decides when, under
//! maxmemory, and logs what went):
//! - Redis's sampling policies ([`Db::evict_sampled`]): among `maxmemory-samples` random keys
//!   (all, or only those with a TTL), the lowest score goes; the caller's score makes it LRU,
//!   LFU (Redis's logarithmic counter, in `warpengine_physics::lfu`), TTL or random;
//! - Redis's eviction pool ([`Db::evict_pooled`]): the same sampling, keeping the best
//!   candidates from one eviction to the next, as Redis's EVPOOL does;
//! - HORIZON ([`horizon`], [`Db::evict_horizon`]): the S3-FIFO policy of `allkeys-horizon`, a
//!   small FIFO of new keys and a CLOCK main queue over the key table.
//!
//! The simulators in `physics/` (SIEVE, S3-FIFO, W-TinyLFU, reference LRU/LFU) are for
//! measuring policies on traces; this module is what the server runs.

pub mod horizon;

use horizon::{Horizon, Verdict, FREQ_MASK};

use crate::db::{Db, Entry};
use crate::key::Key;
use crate::value::{Value, COMPRESS_MIN};

/// Candidates an eviction pool keeps, as Redis's EVPOOL_SIZE.
const EVICTION_POOL: usize = 16;

impl Db {
    /// Turns the HORIZON policy's tracking on (every present key enters it) or off.
    pub fn set_horizon(&mut self, on: bool) {
        if !on {
            self.horizon = None;
            return;
        }
        if self.horizon.is_some() {
            return;
        }
        let mut h = Box::<Horizon>::default();
        for i in 0..self.map.len() {
            let (key, _) = self.map.get_index(i).expect("below len");
            let bits = h.admit(self.map.hash(key.as_bytes()));
            self.map
                .get_index_mut(i)
                .expect("below len")
                .1
                .set_horizon_bits(bits);
        }
        self.horizon = Some(h);
    }

    /// The key HORIZON evicts next, removed from the database. With `compress`
    /// (`horizon-compress`), the main queue's CLOCK hand also compresses the strings it finds
    /// cold on its way (see `evict_main`).
    pub fn evict_horizon(&mut self, compress: bool) -> Option<(Key, Entry)> {
        if compress && !crate::compress::ready() {
            self.train_compression();
        }
        loop {
            let h = self.horizon.as_mut()?;
            match h.next_small() {
                Some(id) => {
                    if let Some(evicted) = self.judge_small(id, compress) {
                        return Some(evicted);
                    }
                }
                None => return self.evict_main(compress),
            }
        }
    }

    /// The small FIFO's front id: promoted, evicted (returned), or stale (skipped). With
    /// `compress`, a promoted string is compressed: it enters main with no frequency, and
    /// becomes plain again only once hits make it hot (`Entry::horizon_hit`).
    fn judge_small(&mut self, id: u64, compress: bool) -> Option<(Key, Entry)> {
        let map = &self.map;
        // Deleted since it was queued: no such key.
        let index = map.position_by_hash(id, |k| map.hash(k.as_bytes()) == id)?;
        let (_, entry) = self.map.get_index_mut(index)?;
        let bits = entry.horizon_bits();
        if bits & horizon::IN_MAIN != 0 {
            return None; // a stale id: the key was deleted and re-created into main
        }
        let h = self.horizon.as_mut()?;
        match h.judge_small(id, bits) {
            Verdict::Keep(new_bits) => {
                entry.set_horizon_bits(new_bits);
                if compress {
                    h.compress(entry);
                }
                None
            }
            Verdict::Evict => Some(self.remove_at(index)),
        }
    }

    /// One sweep of the main queue's CLOCK hand: the first entry in main whose frequency has
    /// run out is evicted; those it passes with frequency left lose one. A sweep that has
    /// taken a frequency from `MAX_SECOND_CHANCES` entries (every key hot) evicts the least
    /// frequent of them instead of going on, so that one eviction never walks the table
    /// several times over.
    ///
    /// With `compress`, a string the hand leaves with one hit to spend (lukewarm) is compressed
    /// where that saves space: the memory it frees spares evictions. Not one it leaves with
    /// none: most of those go at its next pass (keys that entered main with a hit to spend and
    /// had no other: compressing them cost a SET-only load under eviction a quarter more CPU
    /// per request, bench/evict_throughput.py). A hot key (its
    /// frequency saturated by hits) is made plain again by the hit that saturates it
    /// (`Entry::horizon_hit`), so that keys read all the time do not pay the decompression.
    /// Otherwise a compressed value stays so until written: a GET decompresses into the
    /// reply, which takes the place of the copy a plain value needs.
    fn evict_main(&mut self, compress: bool) -> Option<(Key, Entry)> {
        const MAX_SECOND_CHANCES: usize = 1024;
        if compress && !crate::compress::ready() {
            self.train_compression();
        }
        let mut chances = 0;
        let mut least: Option<(usize, u8)> = None;
        // Four turns at most: every frequency (at most 3) has run out by then, unless
        // nothing is in main (its count said otherwise).
        let mut steps = 4 * self.map.len() + 1;
        while steps > 0 && !self.map.is_empty() {
            steps -= 1;
            let h = self.horizon.as_mut()?;
            if h.hand >= self.map.len() {
                h.hand = 0;
            }
            let at = h.hand;
            let (_, entry) = self.map.get_index_mut(at)?;
            let bits = entry.horizon_bits();
            if bits & horizon::IN_MAIN == 0 {
                h.hand = at + 1;
                continue; // in small
            }
            match h.judge_main(bits) {
                Verdict::Keep(new_bits) => {
                    entry.set_horizon_bits(new_bits);
                    h.hand = at + 1;
                    let freq = new_bits & FREQ_MASK;
                    if compress && freq == 1 {
                        h.compress(entry);
                    }
                    if least.is_none_or(|(_, f)| freq < f) {
                        least = Some((at, freq));
                    }
                    chances += 1;
                    if chances == MAX_SECOND_CHANCES {
                        // Nothing moved during the sweep: the position still holds it.
                        let (at, _) = least?;
                        return Some(self.evict_main_at(at));
                    }
                }
                // The last entry, the newest, moves into this position: the hand passes
                // it, so that it goes a whole turn before it is judged.
                Verdict::Evict => {
                    h.hand = at + 1;
                    return Some(self.evict_main_at(at));
                }
            }
        }
        None
    }

    /// Trains the process's compression dictionary on up to `SAMPLE_BYTES` of the strings this
    /// database holds, read in place from across its table. While they are too few (short
    /// strings, other types), tries again only every `TRAIN_EVERY` sweeps, so that the walk
    /// does not weigh on every eviction.
    fn train_compression(&mut self) {
        const TRAIN_EVERY: u32 = 1024;
        let Some(h) = self.horizon.as_mut() else {
            return;
        };
        if h.train_wait > 0 {
            h.train_wait -= 1;
            return;
        }
        h.train_wait = TRAIN_EVERY;
        let step = (self.map.len() / 1024).max(1);
        let (mut samples, mut bytes) = (Vec::new(), 0);
        for i in (0..self.map.len()).step_by(step) {
            let Some((_, entry)) = self.map.get_index(i) else {
                break;
            };
            if let Value::Str(s) = &entry.value {
                if s.len() >= COMPRESS_MIN && !s.is_packed() {
                    samples.push(s.plain());
                    bytes += s.len();
                    if bytes >= crate::compress::SAMPLE_BYTES {
                        break;
                    }
                }
            }
        }
        crate::compress::train(&samples);
    }

    /// Evicts main's entry at table position `index`, remembered as a ghost of main.
    fn evict_main_at(&mut self, index: usize) -> (Key, Entry) {
        let (key, _) = self.map.get_index(index).expect("the hand's position");
        let id = self.map.hash(key.as_bytes());
        if let Some(h) = self.horizon.as_mut() {
            h.evicted_from_main(id);
        }
        self.remove_at(index)
    }

    /// Removes the entry at table position `index` (eviction: HORIZON's counts are updated
    /// by its judgement).
    fn remove_at(&mut self, index: usize) -> (Key, Entry) {
        let (key, entry) = self.map.swap_remove_index(index);
        self.unindex_slot(index, key.as_bytes());
        if entry.has_ttl() {
            self.volatile.swap_remove(key.as_bytes());
        }
        self.touch_watched(key.as_bytes());
        (key, entry)
    }

    /// How many keys eviction samples from: those with a TTL, or all.
    fn candidates(&self, volatile_only: bool) -> usize {
        if volatile_only {
            self.volatile.len()
        } else {
            self.map.len()
        }
    }

    /// The `i`-th of those, with its expiry.
    fn candidate(&self, volatile_only: bool, i: usize) -> Option<(&Key, &Entry, u64)> {
        if volatile_only {
            let (key, &at) = self.volatile.get_index(i)?;
            self.map.get(key.as_bytes()).map(|e| (key, e, at))
        } else {
            let (key, e) = self.map.get_index(i)?;
            let at = if e.has_ttl() {
                self.expire_at(key.as_bytes())
            } else {
                0
            };
            Some((key, e, at))
        }
    }

    /// Redis's sampling eviction: among `samples` random keys (only keys with a TTL when
    /// `volatile_only`), removes the one with the lowest `score`.
    pub fn evict_sampled(
        &mut self,
        volatile_only: bool,
        samples: usize,
        score: impl Fn(&Entry, u64) -> u64,
    ) -> Option<(Key, Entry)> {
        let n = self.candidates(volatile_only);
        if n == 0 {
            return None;
        }
        let mut best: Option<(usize, u64)> = None;
        for _ in 0..samples.max(1) {
            let i = (self.next_random() % n as u64) as usize;
            let Some((_, entry, at)) = self.candidate(volatile_only, i) else {
                continue;
            };
            let s = score(entry, at);
            if best.is_none_or(|(_, b)| s < b) {
                best = Some((i, s));
            }
        }
        let (i, _) = best?;
        let key = self.candidate(volatile_only, i)?.0.clone();
        let entry = self.remove(key.as_bytes())?;
        Some((key, entry))
    }

    /// Redis's eviction pool: each call samples `samples` keys as [`Db::evict_sampled`] does,
    /// but keeps the best candidates seen so far (lowest `score`, at most `EVICTION_POOL`)
    /// from one call to the next, and removes the best of them. A candidate whose score went
    /// up since it was sampled (it was used again) leaves the pool instead of being evicted.
    pub fn evict_pooled(
        &mut self,
        volatile_only: bool,
        samples: usize,
        score: impl Fn(&Entry, u64) -> u64,
    ) -> Option<(Key, Entry)> {
        let n = self.candidates(volatile_only);
        if n == 0 {
            return None;
        }
        for _ in 0..samples.max(1) {
            let i = (self.next_random() % n as u64) as usize;
            let Some((key, entry, at)) = self.candidate(volatile_only, i) else {
                continue;
            };
            let s = score(entry, at);
            let pool = &self.eviction_pool;
            if pool.iter().any(|(_, k)| k == key)
                || (pool.len() == EVICTION_POOL
                    && pool.last().is_some_and(|&(worst, _)| s >= worst))
            {
                continue;
            }
            let key = key.clone();
            let pool = &mut self.eviction_pool;
            if pool.len() == EVICTION_POOL {
                pool.pop();
            }
            let at = pool.partition_point(|&(p, _)| p <= s);
            pool.insert(at, (s, key));
        }
        while !self.eviction_pool.is_empty() {
            let (sampled, key) = self.eviction_pool.remove(0);
            let current = match self.map.get(key.as_bytes()) {
                Some(e) if !volatile_only || e.has_ttl() => {
                    score(e, self.expire_at(key.as_bytes()))
                }
                _ => continue,
            };
            if current > sampled {
                continue;
            }
            let entry = self.remove(key.as_bytes())?;
            return Some((key, entry));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::string(v.as_bytes())
    }

    #[test]
    fn the_eviction_pool_evicts_the_best_candidates_seen_over_calls() {
        // Scores are the keys' numbers; each call samples only 2 keys, yet the pool makes
        // the evictions approach the true order.
        // Fixed sampling seeds: the comparison is of one run each, not of averages.
        let mut db = Db::with_seed(0x2545_f491_4f6c_dd1d);
        for i in 0..1000u32 {
            db.set(format!("k{i}").as_bytes(), s("v"), 0, i);
        }
        let mut evicted = Vec::new();
        for _ in 0..100 {
            let (_, e) = db
                .evict_pooled(false, 2, |e, _| e.last_access as u64)
                .unwrap();
            evicted.push(e.last_access);
        }
        let pooled_mean = evicted.iter().map(|&v| v as f64).sum::<f64>() / 100.0;
        let mut plain = Db::with_seed(0x2545_f491_4f6c_dd1d);
        for i in 0..1000u32 {
            plain.set(format!("k{i}").as_bytes(), s("v"), 0, i);
        }
        let mut sampled = 0.0;
        for _ in 0..100 {
            let (_, e) = plain
                .evict_sampled(false, 2, |e, _| e.last_access as u64)
                .unwrap();
            sampled += e.last_access as f64;
        }
        // Sampling 2 alone evicts around the lower third (mean ~333); the pool keeps the lower
        // part of everything sampled so far (~290 measured).
        assert!(
            pooled_mean < sampled / 100.0 * 0.92,
            "pool {pooled_mean}, plain {}",
            sampled / 100.0
        );
    }

    #[test]
    fn a_candidate_used_again_leaves_the_pool() {
        let mut db = Db::default();
        db.set(b"old", s("v"), 0, 1);
        db.set(b"new", s("v"), 0, 100);
        // Both in the pool, then "old" is used again: it must not be evicted first.
        let score = |e: &Entry, _| e.last_access as u64;
        db.eviction_pool = vec![(1, Key::from_slice(b"old")), (100, Key::from_slice(b"new"))];
        db.get_mut(b"old", 0).unwrap().last_access = 500;
        let (key, _) = db.evict_pooled(false, 0, score).unwrap();
        assert_eq!(key.as_bytes(), b"new");
    }

    #[test]
    fn horizon_evicts_one_hit_keys_first_keeps_hot_ones_and_can_empty_the_table() {
        let mut db = Db::default();
        db.set_horizon(true);
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), s("v"), 0, 0);
        }
        // Keys 0..100 are hot: hit twice (promoted to main on their way out of small).
        for _ in 0..2 {
            for i in 0..100 {
                db.get_mut(format!("k{i}").as_bytes(), 0)
                    .unwrap()
                    .horizon_hit();
            }
        }
        let mut order = Vec::new();
        while let Some((key, _)) = db.evict_horizon(false) {
            order.push(String::from_utf8(key.as_bytes().to_vec()).unwrap());
        }
        assert_eq!(order.len(), 1000, "every key was tracked");
        assert!(db.is_empty());
        let first_hot = order
            .iter()
            .position(|k| k[1..].parse::<u32>().unwrap() < 100);
        // One-hit keys go first, until small holds no more than its tenth of what is left
        // (11 of 111): then main's turn.
        assert_eq!(first_hot, Some(889));
        let h = db.horizon.as_ref().unwrap();
        assert_eq!((h.small_live, h.main_live), (0, 0));
        assert_eq!(h.stats.promoted, 100);
    }

    #[test]
    fn the_clock_hand_compresses_the_strings_it_leaves_lukewarm_and_hits_unpack_hot_ones() {
        let doc = |i: u32| {
            let item = |j: u32| format!("{{\"user_id\":{i},\"item\":{j},\"status\":\"active\"}}");
            format!("[{},{},{},{}]", item(1), item(22), item(333), item(i))
        };
        crate::compress::tests::train();
        for compress in [false, true] {
            let mut db = Db::default();
            db.set_horizon(true);
            for i in 0..100u32 {
                db.set(format!("k{i}").as_bytes(), s(&doc(i)), 0, 0);
                let entry = db.get_mut(format!("k{i}").as_bytes(), 0).unwrap();
                // In main with two hits to spend, except k0..k9, hot.
                entry.set_horizon_bits(horizon::IN_MAIN | if i < 10 { 3 } else { 2 });
            }
            db.set(b"short", s("tiny"), 0, 0);
            db.get_mut(b"short", 0)
                .unwrap()
                .set_horizon_bits(horizon::IN_MAIN | 2);
            let h = db.horizon.as_mut().unwrap();
            (h.small_live, h.main_live) = (0, 101);
            // The first turn leaves k10.. with one hit (compressed) and k0..k9 with two (not
            // yet); the second leaves k0..k9 with one (compressed) and the others with none
            // (not compressed for that: already so); the third evicts k10.
            let (gone, _) = db.evict_main(compress).unwrap();
            assert_eq!(gone.as_bytes(), b"k10");
            let packed = |db: &mut Db| -> Vec<u32> {
                (0..100u32)
                    .filter(|i| {
                        db.get(format!("k{i}").as_bytes(), 0)
                            .is_some_and(|e| matches!(&e.value, Value::Str(v) if v.is_packed()))
                    })
                    .collect()
            };
            let expected: Vec<u32> = if compress {
                (0..100).filter(|&i| i != 10).collect()
            } else {
                vec![]
            };
            assert_eq!(packed(&mut db), expected, "compress {compress}");
            // k10 too was compressed, on the first turn, before it went.
            assert_eq!(
                db.horizon.as_ref().unwrap().stats.compressed,
                expected.len() as u64 + compress as u64
            );
            // Three hits take k0..k4 from none to 3, hot again: plain.
            for i in 0..5u32 {
                for _ in 0..3 {
                    db.get_mut(format!("k{i}").as_bytes(), 0)
                        .unwrap()
                        .horizon_hit();
                }
            }
            let expected: Vec<u32> = expected.into_iter().filter(|&i| i >= 5).collect();
            assert_eq!(packed(&mut db), expected, "compress {compress}");
            for i in (0..100u32).filter(|&i| i != 10) {
                let Value::Str(v) = &db.get(format!("k{i}").as_bytes(), 0).unwrap().value else {
                    panic!("a string");
                };
                assert_eq!(v.to_bytes(), doc(i).as_bytes());
            }
        }
    }

    /// A database of `n` keys k0, k1, ... in HORIZON's main queue, each with `bits`.
    fn db_in_main(n: usize, bits: u8) -> Db {
        let mut db = Db::default();
        db.set_horizon(true);
        for i in 0..n {
            db.set(format!("k{i}").as_bytes(), s("v"), 0, 0);
            let entry = db.get_mut(format!("k{i}").as_bytes(), 0).unwrap();
            entry.set_horizon_bits(bits);
        }
        let h = db.horizon.as_mut().unwrap();
        (h.small_live, h.main_live) = (0, n);
        db
    }

    #[test]
    fn the_clock_hand_does_not_compress_what_it_leaves_with_no_hit_to_spend() {
        crate::compress::tests::train();
        let mut db = Db::default();
        db.set_horizon(true);
        for i in 0..3u32 {
            let doc = format!("[{{\"user_id\":{i},\"item\":22,\"status\":\"active\"}}]").repeat(4);
            db.set(format!("k{i}").as_bytes(), s(&doc), 0, 0);
            let entry = db.get_mut(format!("k{i}").as_bytes(), 0).unwrap();
            entry.set_horizon_bits(horizon::IN_MAIN | 1);
        }
        let h = db.horizon.as_mut().unwrap();
        (h.small_live, h.main_live) = (0, 3);
        // The first turn leaves every key with none; the second evicts k0.
        let (gone, _) = db.evict_main(true).unwrap();
        assert_eq!(gone.as_bytes(), b"k0");
        for i in 1..3u32 {
            let Value::Str(v) = &db.get(format!("k{i}").as_bytes(), 0).unwrap().value else {
                panic!("a string");
            };
            assert!(!v.is_packed(), "k{i} was compressed on its way out");
        }
        assert_eq!(db.horizon.as_ref().unwrap().stats.compressed, 0);
    }

    #[test]
    fn the_hand_passes_the_newest_key_an_eviction_moves_under_it() {
        let mut db = db_in_main(10, horizon::IN_MAIN);
        let (gone, _) = db.evict_main(false).unwrap();
        assert_eq!(gone.as_bytes(), b"k0");
        // k9, the newest, now holds k0's position: judged only on the hand's next turn.
        let (gone, _) = db.evict_main(false).unwrap();
        assert_eq!(gone.as_bytes(), b"k1");
        let main_ghosts = db.horizon.as_ref().unwrap().ghost_len();
        assert_eq!(main_ghosts, 2, "main's evictions are remembered");
    }

    #[test]
    fn a_horizon_sweep_over_hot_keys_stops_after_a_bounded_walk() {
        // Every key in main, with the most frequency it can have.
        let mut db = db_in_main(5000, horizon::IN_MAIN | FREQ_MASK);
        assert!(db.evict_main(false).is_some());
        // Without the bound the hand would have gone three times round all 5,000 keys,
        // taking every frequency down to nothing.
        let untouched = db
            .map
            .iter()
            .filter(|(_, e)| e.horizon_bits() & FREQ_MASK == FREQ_MASK)
            .count();
        assert!(
            untouched >= 5000 - 1024,
            "{untouched} keys kept their frequency"
        );
        assert_eq!(db.len(), 4999);
        assert_eq!(db.horizon.as_ref().unwrap().main_live, 4999);
    }
}
