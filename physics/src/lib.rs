//! The algorithms behind the physics command families, as pure data structures tested on their
//! own. HORIZON: eviction policies ([`sieve`], [`s3fifo`], [`tinylfu`]) over 64-bit object ids,
//! and the workloads and reference policies that measure them ([`workload`], [`reference`]).
//! TEMPORAL: trending counters with exponential decay ([`temporal`]). QUANTUM: the entanglement
//! graph ([`entangle`]). GRAVITY: the sampled, decayed hot-key sketch ([`hotkeys`]). What the server itself runs of eviction: Redis's LFU counter ([`lfu`]).

pub mod entangle;
pub mod hotkeys;
pub mod lfu;
mod list;
pub mod reference;
pub mod s3fifo;
pub mod sieve;
pub mod temporal;
pub mod tinylfu;
pub mod workload;

/// An eviction policy over object ids: told about every access and insertion, it names the
/// object to evict when the cache is over its budget.
pub trait Policy {
    /// A request for `id` that hit the cache.
    fn hit(&mut self, id: u64);
    /// `id` (of `size` units) entered the cache.
    fn insert(&mut self, id: u64, size: u64);
    /// `id` left the cache for another reason (deleted, expired).
    fn remove(&mut self, id: u64);
    /// Chooses a victim and forgets it; None when empty.
    fn evict(&mut self) -> Option<u64>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
