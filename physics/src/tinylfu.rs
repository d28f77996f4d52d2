//! W-TinyLFU (Einziger, Friedman, Manes, ACM ToS 2017; Caffeine's policy): new objects enter a
//! small LRU window (1% of the cache); the window's oldest object then competes with the main
//! area's eviction candidate, and only the one asked for more often (by a count-min sketch of
//! recent frequencies, halved periodically so it forgets) stays. The main area is a segmented
//! LRU: probation (20%) for objects admitted once, protected (80%) for those hit there.

use crate::list::{List, Slab};
use crate::Policy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Window,
    Probation,
    Protected,
}

/// Four rows of 4-bit-range counters (kept in bytes, saturating at 15); all halved after
/// `sample` increments.
struct Sketch {
    rows: [Vec<u8>; 4],
    mask: usize,
    added: usize,
    sample: usize,
}

impl Sketch {
    fn new(capacity: usize) -> Sketch {
        // Wide enough that what one sample period adds to a slot by collision stays small.
        let width = (capacity.max(16) * 8).next_power_of_two();
        Sketch {
            rows: std::array::from_fn(|_| vec![0; width]),
            mask: width - 1,
            added: 0,
            sample: 10 * capacity.max(16),
        }
    }

    fn slot(&self, id: u64, row: usize) -> usize {
        let h = (id ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        ((h ^ (h >> 31)) as usize) & self.mask
    }

    fn add(&mut self, id: u64) {
        for row in 0..4 {
            let i = self.slot(id, row);
            let c = &mut self.rows[row][i];
            *c = (*c + 1).min(15);
        }
        self.added += 1;
        if self.added >= self.sample {
            for row in &mut self.rows {
                row.iter_mut().for_each(|c| *c /= 2);
            }
            self.added /= 2;
        }
    }

    fn estimate(&self, id: u64) -> u8 {
        (0..4)
            .map(|row| self.rows[row][self.slot(id, row)])
            .min()
            .unwrap_or(0)
    }
}

pub struct WTinyLfu {
    slab: Slab<Area>,
    window: List,
    probation: List,
    protected: List,
    sketch: Sketch,
}

impl WTinyLfu {
    /// `capacity`: the expected number of cached objects (sizes the sketch).
    pub fn new(capacity: usize) -> WTinyLfu {
        WTinyLfu {
            slab: Slab::default(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            sketch: Sketch::new(capacity),
        }
    }

    fn total(&self) -> usize {
        self.window.len + self.probation.len + self.protected.len
    }

    fn list(&mut self, area: Area) -> &mut List {
        match area {
            Area::Window => &mut self.window,
            Area::Probation => &mut self.probation,
            Area::Protected => &mut self.protected,
        }
    }

    /// Moves slot `i` to the head of `to`.
    fn place(&mut self, i: u32, to: Area) {
        let from = self.slab.node(i).data;
        let mut list = *self.list(from);
        self.slab.unlink(&mut list, i);
        *self.list(from) = list;
        let mut list = *self.list(to);
        self.slab.link_head(&mut list, i);
        *self.list(to) = list;
        self.slab.node_mut(i).data = to;
    }

    fn pop_tail(&mut self, area: Area) -> Option<u64> {
        let mut list = *self.list(area);
        if list.len == 0 {
            return None;
        }
        let tail = list.tail;
        let id = self.slab.remove(&mut list, tail);
        *self.list(area) = list;
        Some(id)
    }
}

impl Policy for WTinyLfu {
    fn hit(&mut self, id: u64) {
        self.sketch.add(id);
        let Some(i) = self.slab.get(id) else { return };
        match self.slab.node(i).data {
            Area::Window => self.place(i, Area::Window),
            Area::Probation => {
                self.place(i, Area::Protected);
                // Protected keeps 80% of the main area; its oldest go back to probation.
                let main = self.probation.len + self.protected.len;
                while self.protected.len * 5 > main * 4 {
                    let oldest = self.protected.tail;
                    self.place(oldest, Area::Probation);
                }
            }
            Area::Protected => self.place(i, Area::Protected),
        }
    }

    fn insert(&mut self, id: u64, _size: u64) {
        self.sketch.add(id);
        if let Some(i) = self.slab.get(id) {
            let area = self.slab.node(i).data;
            self.place(i, area);
            return;
        }
        let mut window = self.window;
        self.slab.push_head(&mut window, id, Area::Window);
        self.window = window;
        // The window keeps 1% of the objects (at least one): its oldest move on to probation,
        // where they will compete with probation's oldest for a place.
        while self.window.len > (self.total() / 100).max(1) {
            let oldest = self.window.tail;
            self.place(oldest, Area::Probation);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            let area = self.slab.node(i).data;
            let mut list = *self.list(area);
            self.slab.remove(&mut list, i);
            *self.list(area) = list;
        }
    }

    fn evict(&mut self) -> Option<u64> {
        // The newest arrival in probation (from the window) against its oldest: the one asked
        // for less often goes.
        if self.probation.len >= 2 {
            let candidate = self.probation.head;
            let victim = self.probation.tail;
            let candidate_id = self.slab.node(candidate).id;
            let victim_id = self.slab.node(victim).id;
            if self.sketch.estimate(candidate_id) > self.sketch.estimate(victim_id) {
                return self.pop_tail(Area::Probation);
            }
            let mut list = self.probation;
            let id = self.slab.remove(&mut list, candidate);
            self.probation = list;
            return Some(id);
        }
        self.pop_tail(Area::Probation)
            .or_else(|| self.pop_tail(Area::Protected))
            .or_else(|| self.pop_tail(Area::Window))
    }

    fn len(&self) -> usize {
        self.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{misses, Zipf};

    #[test]
    fn a_frequent_object_survives_a_stream_of_one_time_objects() {
        let mut p = WTinyLfu::new(100);
        let mut resident = std::collections::HashSet::new();
        let mut add = |p: &mut WTinyLfu, id: u64| {
            if resident.contains(&id) {
                p.hit(id);
            } else {
                p.insert(id, 1);
                resident.insert(id);
                while resident.len() > 100 {
                    let v = p.evict().expect("victim");
                    resident.remove(&v);
                }
            }
        };
        for round in 0..10_000u64 {
            add(&mut p, 7);
            add(&mut p, 1_000 + round);
        }
        assert!(p.slab.get(7).is_some(), "the hot object was evicted");
        assert_eq!(p.len(), 100);
    }

    #[test]
    fn the_sketch_counts_and_forgets() {
        let mut s = Sketch::new(16);
        for _ in 0..5 {
            s.add(42);
        }
        assert!(s.estimate(42) >= 5);
        assert!(s.estimate(43) <= 1);
        for i in 0..(s.sample as u64) {
            s.add(10_000 + i);
        }
        assert!(s.estimate(42) < 5, "halved at least once");
    }

    #[test]
    fn beats_lru_on_zipf() {
        let n = 20_000;
        let stream = |seed| {
            let mut z = Zipf::new(n, 0.9, seed);
            (0..200_000).map(move |_| z.next_id())
        };
        let tiny = misses(&mut WTinyLfu::new(n / 100), n / 100, stream(5));
        let lru = misses(&mut crate::reference::Lru::default(), n / 100, stream(5));
        assert!(tiny < lru, "W-TinyLFU {tiny} misses, LRU {lru}");
    }
}
