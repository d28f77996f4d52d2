//! GRAVITY's hot-key sketch: which keys get the most requests, and at what rate, from a sample
//! of the requests, in memory that does not grow with the keyspace.
//!
//! Two parts, one per server worker (each worker feeds its own; a reader merges them):
//!
//! - a count-min sketch ([`HotSketch::record`]): `ROWS` rows of `WIDTH` counters, a key adds to
//!   one counter per row (chosen by its hash) and its estimate is the smallest of them, an
//!   over-estimate by at most what collisions add. Updates are *conservative* (a counter is
//!   only raised to the new estimate, never past it), which keeps collisions' share small.
//! - the candidates: at most `capacity` keys with the highest estimates seen, with their name
//!   (the sketch only knows hashes). A key whose new estimate beats the lowest candidate's
//!   replaces it.
//!
//! Counts decay exponentially with a half-life, so that the figure is a *recent* rate and a key
//! that cooled down drops out. Decay is *forward* (Cormode et al., "Forward decay", ICDE 2009):
//! instead of shrinking every counter as time passes, a request at time t adds
//! 2^((t - base) / halflife), a weight that grows; the decayed count at `now` is the stored sum
//! times 2^(-(now - base) / halflife). So nothing is rescaled on the way in, estimates made at
//! different times compare directly (the candidates' order never goes stale), and only when
//! weights grow large (every 32 half-lives) is everything scaled down once and `base` moved.
//!
//! Sampling is the caller's: each recorded request carries the number of requests it stands
//! for (`weight`, the gap since the previous sample). A constant rate r (requests/s) gives a
//! decayed count of r * halflife / ln 2 once the sketch is many half-lives old, and
//! r * halflife / ln 2 * (1 - 2^(-age / halflife)) before: [`HotSketch::rate`] inverts that.

use ahash::RandomState;

/// Rows of the count-min sketch: the estimate is the least of this many counters.
const ROWS: usize = 4;
/// Counters per row (a power of two). With `ROWS` rows of this width a key's estimate exceeds
/// its true count by more than 2/WIDTH of all requests only with probability 2^-ROWS (the
/// count-min bound, e / WIDTH per row, halved by conservative update in practice).
pub const WIDTH: usize = 2048;
/// Past this many half-lives from `base`, weights are scaled back (2^32 keeps f64's 52-bit
/// mantissa far from losing a single request).
const RESCALE_HALFLIVES: f64 = 32.0;

/// A key worth naming: its database, its name, its hash, and its weight when last seen (in
/// forward-decay units, comparable with any other candidate's).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub db: u32,
    pub key: Vec<u8>,
    pub hash: u64,
    weight: f64,
}

pub struct HotSketch {
    rows: Vec<f64>,
    candidates: Vec<Candidate>,
    capacity: usize,
    /// The lowest candidate weight while the candidates are full (a newcomer must beat it),
    /// and that candidate's position.
    floor: f64,
    floor_at: usize,
    halflife_secs: f64,
    /// Forward decay's reference time, in seconds (the caller's clock).
    base: f64,
    /// When the sketch started counting: before several half-lives have passed, rates are
    /// scaled up by the share of the steady state reached.
    started: f64,
    hasher: RandomState,
}

impl HotSketch {
    /// A sketch naming at most `capacity` keys, whose counts halve every `halflife_secs`,
    /// started at `now` (seconds).
    pub fn new(capacity: usize, halflife_secs: f64, now: f64) -> HotSketch {
        HotSketch {
            rows: vec![0.0; ROWS * WIDTH],
            candidates: Vec::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            floor: 0.0,
            floor_at: 0,
            halflife_secs: halflife_secs.max(1e-3),
            base: now,
            started: now,
            // Fixed seeds: every worker's sketch must hash a key alike, so that a reader can ask
            // each of them about the same key.
            hasher: RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
        }
    }

    /// The hash that places `key` of database `db` in the sketch.
    pub fn hash(&self, db: u32, key: &[u8]) -> u64 {
        self.hasher.hash_one((db, key))
    }

    /// The bytes the sketch holds (for INFO): counters, candidates and their names.
    pub fn bytes(&self) -> usize {
        self.rows.len() * std::mem::size_of::<f64>()
            + self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + self.candidates.iter().map(|c| c.key.len()).sum::<usize>()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn halflife_secs(&self) -> f64 {
        self.halflife_secs
    }

    /// The counter of row `row` for `hash`: each row takes different bits of one 64-bit
    /// hash, remixed, so one hash serves every row.
    fn slot(row: usize, hash: u64) -> usize {
        let h = (hash ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        row * WIDTH + ((h ^ (h >> 29)) as usize & (WIDTH - 1))
    }

    fn estimate_raw(&self, hash: u64) -> f64 {
        (0..ROWS)
            .map(|r| self.rows[Self::slot(r, hash)])
            .fold(f64::INFINITY, f64::min)
    }

    /// Records that `key` of database `db` was asked for, standing for `weight` requests, at
    /// `now` (seconds, not before the previous call's).
    pub fn record(&mut self, db: u32, key: &[u8], weight: f64, now: f64) {
        let mut exponent = (now - self.base) / self.halflife_secs;
        if exponent > RESCALE_HALFLIVES {
            self.rescale(now);
            exponent = 0.0;
        }
        let hash = self.hash(db, key);
        let added = weight * exponent.exp2();
        let estimate = self.estimate_raw(hash) + added;
        for r in 0..ROWS {
            let c = &mut self.rows[Self::slot(r, hash)];
            if *c < estimate {
                *c = estimate;
            }
        }
        self.offer(db, key, hash, estimate);
    }

    /// Keeps `key` among the candidates if its weight earns it a place. The cheap way out
    /// first: estimates only grow, so a key at or under the floor of a full set is either not
    /// a candidate or the floor candidate itself, unchanged.
    fn offer(&mut self, db: u32, key: &[u8], hash: u64, weight: f64) {
        let full = self.candidates.len() >= self.capacity;
        if full && weight <= self.floor {
            return;
        }
        let at = if let Some(at) = self
            .candidates
            .iter()
            .position(|c| c.hash == hash && c.db == db && c.key == key)
        {
            self.candidates[at].weight = weight;
            at
        } else if !full {
            self.candidates.push(Candidate {
                db,
                key: key.to_vec(),
                hash,
                weight,
            });
            self.floor_at
        } else {
            // Replaces the lowest, reusing its name's allocation.
            let c = &mut self.candidates[self.floor_at];
            c.db = db;
            c.key.clear();
            c.key.extend_from_slice(key);
            c.hash = hash;
            c.weight = weight;
            self.floor_at
        };
        // Only a change to the lowest (or the set filling up) moves the floor.
        if self.candidates.len() >= self.capacity && (at == self.floor_at || !full) {
            (self.floor_at, self.floor) = self.lowest();
        }
    }

    /// The candidate with the lowest weight: its position and weight.
    fn lowest(&self) -> (usize, f64) {
        self.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.weight))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
    }

    /// Moves `base` to `now`, scaling every stored weight by the decay since the old base.
    fn rescale(&mut self, now: f64) {
        let factor = (-(now - self.base) / self.halflife_secs).exp2();
        self.rows.iter_mut().for_each(|c| *c *= factor);
        for c in &mut self.candidates {
            c.weight *= factor;
        }
        self.floor *= factor;
        self.base = now;
    }

    /// The estimated rate (requests per second) of the key with this hash, at `now`.
    pub fn rate(&self, hash: u64, now: f64) -> f64 {
        let h = self.halflife_secs;
        let decayed = self.estimate_raw(hash) * (-(now - self.base) / h).exp2();
        // The share of the steady state a constant rate reaches after the sketch's age.
        let reached = 1.0 - (-(now - self.started).max(0.0) / h).exp2();
        if reached <= 0.0 {
            return 0.0;
        }
        decayed * std::f64::consts::LN_2 / h / reached
    }

    /// The keys this sketch names.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lfu::Rng;
    use crate::workload::Zipf;

    #[test]
    fn a_steady_rate_is_estimated_from_a_sample() {
        // 1,000 requests/s to "hot" and 100/s to "warm", for 20 s, sampled 1 in 16.
        let mut s = HotSketch::new(8, 2.0, 0.0);
        let mut rng = Rng::new(7);
        let mut t = 0.0;
        let mut gap = 0;
        while t < 20.0 {
            t += 1.0 / 1100.0;
            gap += 1;
            if rng.below(16) == 0 {
                let key: &[u8] = if rng.below(11) == 0 { b"warm" } else { b"hot" };
                s.record(0, key, gap as f64, t);
                gap = 0;
            }
        }
        let hot = s.rate(s.hash(0, b"hot"), t);
        let warm = s.rate(s.hash(0, b"warm"), t);
        assert!((800.0..1200.0).contains(&hot), "hot at {hot}/s");
        assert!((60.0..150.0).contains(&warm), "warm at {warm}/s");
        assert_eq!(s.rate(s.hash(0, b"never"), t), 0.0);
    }

    #[test]
    fn an_early_estimate_is_corrected_for_the_sketch_age() {
        let mut s = HotSketch::new(8, 10.0, 0.0);
        let mut t = 0.0;
        for _ in 0..1000 {
            t += 0.001;
            s.record(0, b"k", 1.0, t);
        }
        // One second into a 10-second half-life: 1,000 requests/s all the same.
        let r = s.rate(s.hash(0, b"k"), t);
        assert!((900.0..1100.0).contains(&r), "{r}/s");
    }

    #[test]
    fn the_heaviest_keys_of_a_zipf_stream_are_the_candidates() {
        let mut s = HotSketch::new(16, 5.0, 0.0);
        let mut z = Zipf::new(100_000, 1.2, 3);
        // Rank 0's id is requested most, then rank 1's...
        let mut t = 0.0;
        for _ in 0..200_000 {
            t += 1e-5;
            let id = z.next_id();
            s.record(0, id.to_string().as_bytes(), 1.0, t);
        }
        let mut named: Vec<(f64, String)> = s
            .candidates()
            .iter()
            .map(|c| (s.rate(c.hash, t), String::from_utf8_lossy(&c.key).into()))
            .collect();
        named.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<&str> = named.iter().take(3).map(|(_, k)| k.as_str()).collect();
        let expected: Vec<String> = (0..3)
            .map(|r| crate::workload::scatter(r).to_string())
            .collect();
        assert_eq!(top, expected);
    }

    #[test]
    fn a_hot_key_keeps_its_place_among_churning_cold_ones() {
        let mut s = HotSketch::new(4, 5.0, 0.0);
        let mut t = 0.0;
        for i in 0..20_000u64 {
            t += 1e-4;
            s.record(0, (i % 5_000).to_string().as_bytes(), 1.0, t);
            if i % 10 == 0 {
                s.record(0, b"hot", 1.0, t);
            }
        }
        assert!(s.candidates().iter().any(|c| c.key == b"hot"));
        assert_eq!(s.candidates().len(), 4);
    }

    #[test]
    fn the_floor_is_always_the_lowest_candidate() {
        // The floor is kept up to date only when its candidate changes: after every record it
        // must still name the lowest candidate, and a newcomer must still displace exactly it.
        let mut s = HotSketch::new(8, 0.5, 0.0);
        let mut z = Zipf::new(300, 0.9, 5);
        let mut t = 0.0;
        for i in 0..30_000 {
            t += 1e-3;
            let id = z.next_id();
            s.record(0, id.to_string().as_bytes(), 1.0 + (i % 3) as f64, t);
            if s.candidates.len() == s.capacity {
                let (at, lowest) = s.lowest();
                assert_eq!(s.floor, lowest, "after record {i}");
                assert_eq!(s.candidates[s.floor_at].weight, lowest, "after record {i}");
                assert!(at == s.floor_at || s.candidates[at].weight == lowest);
            }
            let mut keys: Vec<&[u8]> = s.candidates.iter().map(|c| &c.key[..]).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), s.candidates.len(), "a key named twice");
        }
    }

    #[test]
    fn a_key_that_cooled_down_is_replaced_and_weights_rescale() {
        let mut s = HotSketch::new(1, 1.0, 0.0);
        for i in 0..100 {
            s.record(0, b"old", 1.0, i as f64 * 0.01);
        }
        // 100 half-lives later (past a rescale), a lukewarm key beats the old one's weight.
        for i in 0..10 {
            s.record(0, b"new", 1.0, 100.0 + i as f64 * 0.01);
        }
        assert_eq!(s.candidates()[0].key, b"new");
        assert!(s.rate(s.hash(0, b"old"), 100.1) < 1e-6);
        // Databases are told apart.
        assert_eq!(s.rate(s.hash(1, b"new"), 100.1), 0.0);
    }
}
