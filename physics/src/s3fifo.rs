//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue (10% of the budget) that new objects
//! enter, a main FIFO queue, and a ghost queue remembering ids recently evicted from the small
//! one. Most objects are requested once and leave from the small queue quickly (quick
//! demotion); those requested again move to main, where a 2-bit frequency gives them a few
//! more rounds (lazy promotion, no list moves on hits). An id found in the ghost queue goes
//! straight to main.

use std::collections::{HashMap, VecDeque};

use ahash::RandomState;

use crate::list::{List, Slab};
use crate::Policy;

#[derive(Clone, Copy, Debug)]
struct Meta {
    freq: u8,
    size: u64,
    in_main: bool,
}

pub struct S3Fifo {
    slab: Slab<Meta>,
    small: List,
    main: List,
    small_size: u64,
    main_size: u64,
    /// Ids evicted from the small queue, oldest first, with a generation to skip stale ones.
    ghost: VecDeque<(u64, u64)>,
    ghost_gen: HashMap<u64, u64, RandomState>,
    next_gen: u64,
    /// The small queue's share of the cached size.
    pub small_ratio: f64,
    pub stats: S3Stats,
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct S3Stats {
    pub ghost_hits: u64,
    pub promoted: u64,
    pub evicted_small: u64,
    pub evicted_main: u64,
}

impl Default for S3Fifo {
    fn default() -> S3Fifo {
        S3Fifo::new()
    }
}

impl S3Fifo {
    pub fn new() -> S3Fifo {
        S3Fifo {
            slab: Slab::default(),
            small: List::default(),
            main: List::default(),
            small_size: 0,
            main_size: 0,
            ghost: VecDeque::new(),
            ghost_gen: HashMap::default(),
            next_gen: 0,
            small_ratio: 0.1,
            stats: S3Stats::default(),
        }
    }

    /// Objects in the small and main queues and ids in the ghost queue.
    pub fn queue_lens(&self) -> (usize, usize, usize) {
        (self.small.len, self.main.len, self.ghost_gen.len())
    }

    fn remember_ghost(&mut self, id: u64) {
        self.next_gen += 1;
        self.ghost.push_back((id, self.next_gen));
        self.ghost_gen.insert(id, self.next_gen);
        // Main's capacity: nine tenths of the resident objects.
        let limit = ((self.small.len + self.main.len) * 9 / 10).max(16);
        while self.ghost_gen.len() > limit {
            let Some((old, generation)) = self.ghost.pop_front() else {
                break;
            };
            if self.ghost_gen.get(&old) == Some(&generation) {
                self.ghost_gen.remove(&old);
            }
        }
        // Stale entries (ids re-inserted since) are dropped as the queue turns over.
        while self.ghost.len() > 2 * limit {
            let Some((old, generation)) = self.ghost.pop_front() else {
                break;
            };
            if self.ghost_gen.get(&old) == Some(&generation) {
                self.ghost_gen.remove(&old);
            }
        }
    }

    fn evict_main(&mut self) -> Option<u64> {
        loop {
            let i = self.main.tail;
            if i == crate::list::NIL {
                return None;
            }
            let meta = self.slab.node(i).data;
            if meta.freq > 0 {
                self.slab.node_mut(i).data.freq -= 1;
                self.slab.unlink(&mut self.main, i);
                self.slab.link_head(&mut self.main, i);
                continue;
            }
            self.main_size -= meta.size;
            self.stats.evicted_main += 1;
            return Some(self.slab.remove(&mut self.main, i));
        }
    }

    fn evict_small(&mut self) -> Option<u64> {
        loop {
            let i = self.small.tail;
            if i == crate::list::NIL {
                return None;
            }
            let meta = self.slab.node(i).data;
            self.small_size -= meta.size;
            if meta.freq > 1 {
                // Asked for again while in the small queue: it has earned a place in main.
                self.slab.unlink(&mut self.small, i);
                let n = self.slab.node_mut(i);
                n.data.freq = 0;
                n.data.in_main = true;
                self.slab.link_head(&mut self.main, i);
                self.main_size += meta.size;
                self.stats.promoted += 1;
                continue;
            }
            let id = self.slab.remove(&mut self.small, i);
            self.remember_ghost(id);
            self.stats.evicted_small += 1;
            return Some(id);
        }
    }
}

impl Policy for S3Fifo {
    fn hit(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            let m = &mut self.slab.node_mut(i).data;
            m.freq = (m.freq + 1).min(3);
        }
    }

    fn insert(&mut self, id: u64, size: u64) {
        if let Some(i) = self.slab.get(id) {
            let m = &mut self.slab.node_mut(i).data;
            m.freq = (m.freq + 1).min(3);
            return;
        }
        let was_ghost = self.ghost_gen.remove(&id).is_some();
        let meta = Meta {
            freq: 0,
            size,
            in_main: was_ghost,
        };
        if was_ghost {
            self.stats.ghost_hits += 1;
            self.slab.push_head(&mut self.main, id, meta);
            self.main_size += size;
        } else {
            self.slab.push_head(&mut self.small, id, meta);
            self.small_size += size;
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            let meta = self.slab.node(i).data;
            if meta.in_main {
                self.main_size -= meta.size;
                self.slab.remove(&mut self.main, i);
            } else {
                self.small_size -= meta.size;
                self.slab.remove(&mut self.small, i);
            }
        }
    }

    fn evict(&mut self) -> Option<u64> {
        let total = self.small_size + self.main_size;
        let small_full = self.small_size as f64 >= self.small_ratio * total as f64;
        if small_full || self.main.len == 0 {
            if let Some(id) = self.evict_small() {
                return Some(id);
            }
        }
        self.evict_main()
    }

    fn len(&self) -> usize {
        self.small.len + self.main.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hit_wonders_leave_from_the_small_queue() {
        let mut c = S3Fifo::new();
        for id in 0..10 {
            c.insert(id, 1);
        }
        // A scan of new ids evicts the oldest small-queue entries, which are remembered.
        assert_eq!(c.evict(), Some(0));
        assert_eq!(c.evict(), Some(1));
        assert_eq!(c.queue_lens(), (8, 0, 2));
        // Asked for again: straight to main.
        c.insert(0, 1);
        assert_eq!(c.stats.ghost_hits, 1);
        assert_eq!(c.queue_lens(), (8, 1, 1));
    }

    #[test]
    fn objects_hit_twice_in_small_are_promoted_not_evicted() {
        let mut c = S3Fifo::new();
        for id in 0..5 {
            c.insert(id, 1);
        }
        c.hit(0);
        c.hit(0);
        assert_eq!(c.evict(), Some(1));
        assert_eq!(c.stats.promoted, 1);
        assert_eq!(c.queue_lens().1, 1);
    }

    #[test]
    fn main_gives_frequent_objects_more_rounds() {
        let mut c = S3Fifo::new();
        for id in 0..3 {
            c.insert(id, 1);
        }
        for _ in 0..3 {
            c.evict();
        }
        // Back from the ghost queue: straight into main, 0 the oldest.
        for id in 0..3 {
            c.insert(id, 1);
        }
        assert_eq!(c.queue_lens(), (0, 3, 0));
        c.hit(0);
        c.hit(0);
        c.hit(2);
        let order: Vec<u64> = std::iter::from_fn(|| c.evict()).collect();
        assert_eq!(order, vec![1, 2, 0]);
    }
}
