//! Which worker owns a key: its cluster hash slot (CRC16 of the key or its `{hash tag}`, in
//! [`warpengine_storage::slot`]) mapped to a shard.

use std::sync::atomic::{AtomicU16, Ordering::Relaxed};

pub use warpengine_storage::slot::{key_slot, SLOTS};

/// Maps hash slots to the shard that owns them. Slots are dealt out in contiguous ranges at
/// start; ENTROPY REBALANCE moves single slots ([`SlotTable::set_owner`]), with the old and the
/// new shard locked and WORMHOLE's route epoch bumped, so that a command that checks its keys'
/// owners under their shards' locks sees a stable answer.
pub struct SlotTable {
    owner: Vec<AtomicU16>,
    shards: usize,
}

impl SlotTable {
    pub fn new(shards: usize) -> SlotTable {
        assert!(shards > 0 && shards <= SLOTS);
        let owner = (0..SLOTS)
            .map(|s| AtomicU16::new(Self::first_owner(shards, s as u16) as u16))
            .collect();
        SlotTable { owner, shards }
    }

    /// The shard a slot starts on.
    fn first_owner(shards: usize, slot: u16) -> usize {
        slot as usize * shards / SLOTS
    }

    #[inline]
    pub fn shard_of_slot(&self, slot: u16) -> usize {
        self.owner[slot as usize].load(Relaxed) as usize
    }

    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.shard_of_slot(key_slot(key))
    }

    /// Gives `slot` to `shard` (the caller holds both shards' locks and moves the keys).
    pub fn set_owner(&self, slot: u16, shard: usize) {
        self.owner[slot as usize].store(shard as u16, Relaxed);
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The slots not on the shard they started on, with their owners now.
    pub fn moved(&self) -> Vec<(u16, usize)> {
        (0..SLOTS as u16)
            .filter_map(|s| {
                let now = self.shard_of_slot(s);
                (now != Self::first_owner(self.shards, s)).then_some((s, now))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_table_covers_every_shard_evenly() {
        let t = SlotTable::new(3);
        let mut counts = [0usize; 3];
        for s in 0..SLOTS as u16 {
            counts[t.shard_of_slot(s)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (5461..=5462).contains(&c)),
            "{counts:?}"
        );
        assert!(t.moved().is_empty());
        t.set_owner(7, 2);
        assert_eq!(t.shard_of_slot(7), 2);
        assert_eq!(t.moved(), vec![(7, 2)]);
    }
}
