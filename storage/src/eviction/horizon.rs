//! HORIZON's eviction state for one database: S3-FIFO (physics/src/s3fifo.rs has the
//! reference version and its tests) laid out to cost a few bytes per key. New keys wait in a
//! small FIFO of their 64-bit table hashes; the main queue is FIFO-reinsertion, which the
//! S3-FIFO paper notes is CLOCK, so it is a hand walking the key table's positions over the
//! entries marked as in main, and costs nothing per key. Each entry's frequency (2 bits) and
//! queue (1 bit) live in spare bits of the entry, so a hit touches no queue and no hash.
//! Deleted keys leave stale ids in the small FIFO, skipped when they reach the front.

use std::collections::VecDeque;

#[derive(Default)]
pub struct Horizon {
    small: VecDeque<u64>,
    /// The main queue's CLOCK hand: the next table position it looks at.
    pub(crate) hand: usize,
    ghosts: Ghosts,
    /// Sweeps left before the next try at training the compression dictionary.
    pub(crate) train_wait: u32,
    /// Live keys in each queue (the small FIFO may also hold stale ids).
    pub small_live: usize,
    pub main_live: usize,
    pub stats: HorizonStats,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct HorizonStats {
    pub ghost_hits: u64,
    pub promoted: u64,
    pub evicted: u64,
    /// Strings compressed on their way into main or by main's hand (`horizon-compress`).
    pub compressed: u64,
}

/// Entry bits: frequency in the low two, "in main" in the third.
pub const FREQ_MASK: u8 = 0b011;
pub const IN_MAIN: u8 = 0b100;

/// What the queues want done with the entry looked at.
pub enum Verdict {
    Evict,
    Keep(u8),
}

impl Horizon {
    /// A new key: into main if it was evicted recently (a ghost hit), else into small.
    /// Returns the entry's initial bits.
    pub fn admit(&mut self, id: u64) -> u8 {
        if self.ghosts.take(id) {
            self.stats.ghost_hits += 1;
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

    /// The id at the front of the small FIFO, when eviction should take from it (it holds
    /// more than its tenth, or main is empty).
    pub fn next_small(&mut self) -> Option<u64> {
        let wanted =
            self.small_live * 10 >= self.small_live + self.main_live || self.main_live == 0;
        if !wanted {
            return None;
        }
        let id = self.small.pop_front()?;
        // The FIFO keeps the room of its largest size (it holds every key while the cache
        // first fills): give most of it back once it is mostly empty. (At a small maxmemory
        // that room is what a few dozen keys would take: 8 KB for 1,000 ids.)
        if self.small.capacity() > 64 && self.small.len() * 4 < self.small.capacity() {
            self.small.shrink_to(self.small.len() * 2);
        }
        Some(id)
    }

    /// Decides for the small FIFO's front entry with `bits`: promote to main (Keep), or
    /// evict, remembering it as a ghost.
    pub fn judge_small(&mut self, id: u64, bits: u8) -> Verdict {
        self.small_live -= 1;
        if bits & FREQ_MASK > 1 {
            self.main_live += 1;
            self.stats.promoted += 1;
            return Verdict::Keep(IN_MAIN);
        }
        self.remember(id);
        self.stats.evicted += 1;
        Verdict::Evict
    }

    /// Decides for the main entry under the hand with `bits`: a second chance while its
    /// frequency lasts (Keep, one less), or evict.
    pub fn judge_main(&mut self, bits: u8) -> Verdict {
        let freq = bits & FREQ_MASK;
        if freq > 0 {
            return Verdict::Keep(IN_MAIN | (freq - 1));
        }
        self.main_live -= 1;
        self.stats.evicted += 1;
        Verdict::Evict
    }

    /// Counts the eviction of a main entry a bounded sweep chose while it still had
    /// frequency left.
    pub fn evict_main_early(&mut self) {
        self.main_live -= 1;
        self.stats.evicted += 1;
    }

    fn remember(&mut self, id: u64) {
        // About as many ids as main's capacity, nine tenths of the resident keys (the paper's
        // ghost size; main's current size would keep the ghost empty while nothing has
        // reached main).
        let limit = ((self.small_live + self.main_live) * 9 / 10).max(64);
        self.ghosts.fit(limit);
        self.ghosts.insert(id);
    }

    /// Compresses `entry`'s value if it is a string that compression shortens (counted).
    pub(crate) fn compress(&mut self, entry: &mut crate::db::Entry) {
        if let crate::value::Value::Str(s) = &mut entry.value {
            if s.compress() {
                self.stats.compressed += 1;
            }
        }
    }

    pub fn ghost_len(&self) -> usize {
        self.ghosts.len
    }
}

/// Recently evicted ids as 16-bit fingerprints in a direct-mapped table: about 2 bytes a
/// ghost, where a queue plus a hash set of 64-bit ids cost ~30 (a tenth of a small key's
/// memory, which the cache would rather spend on keys; at 32-bit fingerprints the table held
/// 0.5% of a small budget's keys back). A new ghost landing on an older one's slot replaces
/// it, so ghosts age out by collision rather than strictly first in, first out; another id
/// with the same slot and fingerprint is a false ghost hit, one in 2^15: a new key admitted
/// straight to main, where its CLOCK hand judges it like any other.
#[derive(Default)]
struct Ghosts {
    slots: Vec<u16>,
    len: usize,
}

impl Ghosts {
    fn place(&self, id: u64) -> (usize, u16) {
        let slot = id as usize & (self.slots.len() - 1);
        // Never 0, which marks an empty slot.
        (slot, (id >> 48) as u16 | 1)
    }

    /// Sizes the table for about `limit` ghosts: the smallest power of two holding them,
    /// changed only when off by more than a factor of two (ghosts are dropped then: their
    /// slots in a table of another size cannot be told from the fingerprint).
    fn fit(&mut self, limit: usize) {
        let want = limit.next_power_of_two();
        let have = self.slots.len();
        if have == 0 || want > have * 2 || want * 2 < have {
            self.slots = vec![0; want];
            self.len = 0;
        }
    }

    fn insert(&mut self, id: u64) {
        let (slot, print) = self.place(id);
        if self.slots[slot] == 0 {
            self.len += 1;
        }
        self.slots[slot] = print;
    }

    /// Whether `id` is a ghost; it stops being one.
    fn take(&mut self, id: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let (slot, print) = self.place(id);
        if self.slots[slot] != print {
            return false;
        }
        self.slots[slot] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghosts_remember_recent_evictions_and_forget_on_a_hit() {
        let mut g = Ghosts::default();
        g.fit(1000);
        let ids: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for &id in &ids {
            g.insert(id);
        }
        // 1000 ids in 1024 slots: most land alone.
        let found = ids.iter().filter(|&&id| g.take(id)).count();
        assert!(found > 550, "{found} of 1000 remembered");
        assert_eq!(g.len, 0, "every remembered ghost was taken");
        assert!(!g.take(ids[0]), "a taken ghost is gone");
        assert!(!g.take(12345), "never evicted");
    }

    #[test]
    fn the_small_fifo_gives_back_the_room_of_the_first_fill() {
        let mut h = Horizon::default();
        for id in 0..1000 {
            h.admit(id);
        }
        assert!(h.small.capacity() >= 1000);
        // Eviction takes from small while it holds more than its tenth of the keys.
        while h.small.len() > 100 {
            let id = h.next_small().expect("small is over its tenth");
            assert!(matches!(h.judge_small(id, 0), Verdict::Evict));
            h.main_live += 1; // pretend the room went to keys in main
        }
        assert!(h.small.capacity() < 400, "{}", h.small.capacity());
    }

    #[test]
    fn a_ghost_hit_admits_into_main() {
        let mut h = Horizon::default();
        let bits = h.admit(42);
        assert_eq!(bits, 0, "a new key starts in small");
        h.small_live += 99; // pretend a full cache, all in small: small is over its tenth
        assert_eq!(h.next_small(), Some(42));
        assert!(matches!(h.judge_small(42, bits), Verdict::Evict));
        assert_eq!(h.ghost_len(), 1);
        assert_eq!(h.admit(42), IN_MAIN);
        assert_eq!(h.stats.ghost_hits, 1);
        assert_eq!(h.ghost_len(), 0);
    }
}
