//! Reference policies to measure against: exact LRU, and Redis's approximations (allkeys-lru
//! and allkeys-lfu sample `maxmemory-samples` random keys and evict the best candidate; LFU
//! keeps Redis's logarithmic 8-bit counter).

use std::collections::HashMap;

use ahash::RandomState;

use crate::lfu::{lfu_log_incr, Rng};
use crate::list::{List, Slab};
use crate::Policy;

/// Exact LRU: a hit moves the object to the head.
#[derive(Default)]
pub struct Lru {
    slab: Slab<()>,
    list: List,
}

impl Policy for Lru {
    fn hit(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            self.slab.unlink(&mut self.list, i);
            self.slab.link_head(&mut self.list, i);
        }
    }
    fn insert(&mut self, id: u64, _size: u64) {
        match self.slab.get(id) {
            Some(_) => self.hit(id),
            None => {
                self.slab.push_head(&mut self.list, id, ());
            }
        }
    }
    fn remove(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            self.slab.remove(&mut self.list, i);
        }
    }
    fn evict(&mut self) -> Option<u64> {
        let tail = self.list.tail;
        (tail != crate::list::NIL).then(|| self.slab.remove(&mut self.list, tail))
    }
    fn len(&self) -> usize {
        self.list.len
    }
}

/// Objects in a vector for uniform sampling, with their per-object score.
struct Sampled<T> {
    ids: Vec<u64>,
    pos: HashMap<u64, (usize, T), RandomState>,
    rng: Rng,
    samples: usize,
}

impl<T: Copy> Sampled<T> {
    fn new(samples: usize, seed: u64) -> Sampled<T> {
        Sampled {
            ids: Vec::new(),
            pos: HashMap::default(),
            rng: Rng::new(seed),
            samples,
        }
    }
    fn insert(&mut self, id: u64, v: T) {
        if let Some(e) = self.pos.get_mut(&id) {
            e.1 = v;
            return;
        }
        self.pos.insert(id, (self.ids.len(), v));
        self.ids.push(id);
    }
    fn remove(&mut self, id: u64) {
        if let Some((i, _)) = self.pos.remove(&id) {
            self.ids.swap_remove(i);
            if let Some(&moved) = self.ids.get(i) {
                self.pos.get_mut(&moved).expect("moved id is indexed").0 = i;
            }
        }
    }
    /// The sampled id with the lowest `key`.
    fn pick(&mut self, key: impl Fn(T) -> u64) -> Option<u64> {
        if self.ids.is_empty() {
            return None;
        }
        let mut best: Option<(u64, u64)> = None;
        for _ in 0..self.samples {
            let id = self.ids[(self.rng.next_u64() % self.ids.len() as u64) as usize];
            let k = key(self.pos[&id].1);
            if best.is_none_or(|(_, bk)| k < bk) {
                best = Some((id, k));
            }
        }
        let (id, _) = best?;
        self.remove(id);
        Some(id)
    }
}

/// Redis's allkeys-lru: evict the least recently used of `samples` random keys.
pub struct SampledLru {
    set: Sampled<u64>,
    clock: u64,
}

impl SampledLru {
    pub fn new(samples: usize, seed: u64) -> SampledLru {
        SampledLru {
            set: Sampled::new(samples, seed),
            clock: 0,
        }
    }
}

impl Policy for SampledLru {
    fn hit(&mut self, id: u64) {
        self.clock += 1;
        if let Some(e) = self.set.pos.get_mut(&id) {
            e.1 = self.clock;
        }
    }
    fn insert(&mut self, id: u64, _size: u64) {
        self.clock += 1;
        self.set.insert(id, self.clock);
    }
    fn remove(&mut self, id: u64) {
        self.set.remove(id);
    }
    fn evict(&mut self) -> Option<u64> {
        self.set.pick(|t| t)
    }
    fn len(&self) -> usize {
        self.set.ids.len()
    }
}

/// Redis's allkeys-lfu: an 8-bit logarithmic counter per key (incremented with probability
/// 1 / ((counter - 5) * log_factor + 1), new keys start at 5), evicting the lowest of `samples`
/// random keys. Decay over time is left out: the replay has no clock.
pub struct SampledLfu {
    set: Sampled<u8>,
    log_factor: u64,
    rng: Rng,
}

impl SampledLfu {
    pub fn new(samples: usize, log_factor: u64, seed: u64) -> SampledLfu {
        SampledLfu {
            set: Sampled::new(samples, seed),
            log_factor,
            rng: Rng::new(seed ^ 0x5eed),
        }
    }
}

impl Policy for SampledLfu {
    fn hit(&mut self, id: u64) {
        let r = self.rng.next_f64();
        let f = self.log_factor;
        if let Some(e) = self.set.pos.get_mut(&id) {
            e.1 = lfu_log_incr(e.1, f, r);
        }
    }
    fn insert(&mut self, id: u64, _size: u64) {
        self.set.insert(id, 5);
    }
    fn remove(&mut self, id: u64) {
        self.set.remove(id);
    }
    fn evict(&mut self) -> Option<u64> {
        self.set.pick(|c| c as u64)
    }
    fn len(&self) -> usize {
        self.set.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recent() {
        let mut l = Lru::default();
        for id in 0..3 {
            l.insert(id, 1);
        }
        l.hit(0);
        assert_eq!(l.evict(), Some(1));
        assert_eq!(l.evict(), Some(2));
        assert_eq!(l.evict(), Some(0));
    }

    #[test]
    fn lfu_counter_grows_logarithmically() {
        let mut rng = Rng::new(9);
        let mut c = 5u8;
        for _ in 0..1_000 {
            c = lfu_log_incr(c, 10, rng.next_f64());
        }
        // Redis's table: ~1K hits at log factor 10 reach about 18.
        assert!((14..=22).contains(&c), "{c}");
    }
}
