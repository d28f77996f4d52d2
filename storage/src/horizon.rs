//! HORIZON's eviction queues for one database: S3-FIFO (physics/src/s3fifo.rs has the
//! reference version and its tests) laid out to cost a few bytes per key. The queues hold only
//! the keys' 64-bit table hashes; each entry's frequency (2 bits) and queue (1 bit) live in
//! spare bits of the entry itself, so a hit touches no queue and no hash. Deleted keys leave
//! stale ids behind, skipped when they reach the front.

use std::collections::{HashSet, VecDeque};

use ahash::RandomState;

#[derive(Default)]
pub struct Horizon {
    pub small: VecDeque<u64>,
    pub main: VecDeque<u64>,
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64, RandomState>,
    /// Live keys in each queue (the queues may also hold stale ids).
    pub small_live: usize,
    pub main_live: usize,
    pub stats: HorizonStats,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct HorizonStats {
    pub ghost_hits: u64,
    pub promoted: u64,
    pub evicted: u64,
}

/// Entry bits: frequency in the low two, "in main" in the third.
pub const FREQ_MASK: u8 = 0b011;
pub const IN_MAIN: u8 = 0b100;

/// What the queues want done with the entry at the front.
pub enum Verdict {
    Evict,
    Keep(u8),
}

impl Horizon {
    /// A new key: into main if it was evicted recently (a ghost hit), else into small.
    /// Returns the entry's initial bits.
    pub fn admit(&mut self, id: u64) -> u8 {
        if self.ghost_set.remove(&id) {
            self.stats.ghost_hits += 1;
            self.main.push_back(id);
            self.main_live += 1;
            IN_MAIN
        } else {
            self.small.push_back(id);
            self.small_live += 1;
            0
        }
    }

    /// A key with `bits` left the database by other means.
    pub fn forget(&mut self, bits: u8) {
        if bits & IN_MAIN != 0 {
            self.main_live = self.main_live.saturating_sub(1);
        } else {
            self.small_live = self.small_live.saturating_sub(1);
        }
    }

    /// Whether the next victim comes from the small queue (it holds more than its tenth).
    pub fn from_small(&self) -> bool {
        self.small_live * 10 >= self.small_live + self.main_live || self.main_live == 0
    }

    /// Decides for the front id of a queue whose entry has `bits`: promote / reinsert (Keep
    /// with new bits, the id pushed to main's back), or evict.
    pub fn judge(&mut self, id: u64, bits: u8, from_small: bool) -> Verdict {
        let freq = bits & FREQ_MASK;
        if from_small {
            if freq > 1 {
                self.small_live -= 1;
                self.main_live += 1;
                self.main.push_back(id);
                self.stats.promoted += 1;
                return Verdict::Keep(IN_MAIN);
            }
            self.small_live -= 1;
            self.remember(id);
        } else {
            if freq > 0 {
                self.main.push_back(id);
                return Verdict::Keep(IN_MAIN | (freq - 1));
            }
            self.main_live -= 1;
        }
        self.stats.evicted += 1;
        Verdict::Evict
    }

    fn remember(&mut self, id: u64) {
        self.ghost.push_back(id);
        self.ghost_set.insert(id);
        // As many ids as main's capacity, nine tenths of the resident keys (the paper's ghost
        // size; main's current size would keep the ghost empty while nothing has reached main).
        let limit = ((self.small_live + self.main_live) * 9 / 10).max(64);
        while self.ghost.len() > limit {
            match self.ghost.pop_front() {
                Some(old) => {
                    self.ghost_set.remove(&old);
                }
                None => break,
            }
        }
    }

    pub fn ghost_len(&self) -> usize {
        self.ghost_set.len()
    }
}
