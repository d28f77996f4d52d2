//! Which worker owns a key: its cluster hash slot (CRC16 of the key or its `{hash tag}`, in
//! [`warpengine_storage::slot`]) mapped to a shard.

pub use warpengine_storage::slot::{key_slot, SLOTS};

/// Maps hash slots to the shard that owns them. Slots are dealt out in contiguous ranges so
/// that a future rebalance can move a range at a time.
pub struct SlotTable {
    owner: Vec<u16>,
}

impl SlotTable {
    pub fn new(shards: usize) -> SlotTable {
        assert!(shards > 0 && shards <= SLOTS);
        let owner = (0..SLOTS).map(|s| (s * shards / SLOTS) as u16).collect();
        SlotTable { owner }
    }

    pub fn shard_of_slot(&self, slot: u16) -> usize {
        self.owner[slot as usize] as usize
    }

    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.shard_of_slot(key_slot(key))
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
    }
}
