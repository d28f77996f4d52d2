//! SIEVE (Zhang et al., NSDI 2024): one FIFO queue, a visited bit per object, and a hand that
//! sweeps from the oldest object towards the newest. A hit only sets the bit (no list moves,
//! unlike LRU); the hand clears bits as it passes and evicts the first object not visited
//! since its last pass. Survivors keep their place, so new objects are evicted quickly unless
//! they are asked for again.

use crate::list::{List, Slab, NIL};
use crate::Policy;

#[derive(Default)]
pub struct Sieve {
    slab: Slab<bool>,
    queue: List,
    hand: u32,
}

impl Sieve {
    pub fn new() -> Sieve {
        Sieve {
            hand: NIL,
            ..Sieve::default()
        }
    }
}

impl Policy for Sieve {
    fn hit(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            self.slab.node_mut(i).data = true;
        }
    }

    fn insert(&mut self, id: u64, _size: u64) {
        if let Some(i) = self.slab.get(id) {
            self.slab.node_mut(i).data = true;
            return;
        }
        self.slab.push_head(&mut self.queue, id, false);
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.slab.get(id) {
            if self.hand == i {
                self.hand = self.slab.newer(i);
            }
            self.slab.remove(&mut self.queue, i);
        }
    }

    fn evict(&mut self) -> Option<u64> {
        if self.queue.len == 0 {
            return None;
        }
        let mut i = if self.hand == NIL {
            self.queue.tail
        } else {
            self.hand
        };
        loop {
            if !self.slab.node(i).data {
                let newer = self.slab.newer(i);
                self.hand = newer;
                return Some(self.slab.remove(&mut self.queue, i));
            }
            self.slab.node_mut(i).data = false;
            i = self.slab.newer(i);
            if i == NIL {
                i = self.queue.tail;
            }
        }
    }

    fn len(&self) -> usize {
        self.queue.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_in_insertion_order_without_hits() {
        let mut s = Sieve::new();
        for id in 1..=4 {
            s.insert(id, 1);
        }
        assert_eq!(s.evict(), Some(1));
        assert_eq!(s.evict(), Some(2));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_visited_object_survives_one_pass_and_keeps_its_place() {
        let mut s = Sieve::new();
        for id in 1..=4 {
            s.insert(id, 1);
        }
        s.hit(1);
        s.hit(3);
        // The hand passes 1 (clearing it), evicts 2; then passes 3, evicts 4.
        assert_eq!(s.evict(), Some(2));
        assert_eq!(s.evict(), Some(4));
        // 1 and 3 are unvisited now: the hand wraps to the oldest.
        s.insert(5, 1);
        assert_eq!(s.evict(), Some(1));
        assert_eq!(s.evict(), Some(3));
        assert_eq!(s.evict(), Some(5));
        assert_eq!(s.evict(), None);
    }

    #[test]
    fn removing_the_object_under_the_hand_moves_the_hand() {
        let mut s = Sieve::new();
        for id in 1..=3 {
            s.insert(id, 1);
        }
        s.hit(1);
        assert_eq!(s.evict(), Some(2)); // hand now at 3
        s.remove(3);
        assert_eq!(s.evict(), Some(1));
        assert!(s.is_empty());
    }
}
