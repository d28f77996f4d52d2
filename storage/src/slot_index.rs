//! The keys of a database grouped by cluster hash slot, kept only in cluster mode: what
//! CLUSTER COUNTKEYSINSLOT (O(1)) and GETKEYSINSLOT (O(keys returned)) read, and what
//! `redis-cli --cluster reshard` asks of every slot it moves.
//!
//! Redis threads each slot's keys on a doubly linked list through its dict entries (two
//! pointers, 16 bytes a key) with a count per slot. The same shape here costs half: the key
//! table ([`crate::keytable`]) already numbers its entries by dense position, so the links are
//! `u32` positions, held in a vector parallel to the table (entry `p`'s links at `p`) rather
//! than in the entry itself, so that a server without cluster mode pays no byte for them.
//!
//! The table swap-removes (its last entry moves into the hole), so a removal here unlinks the
//! removed position and then relinks the moved entry's neighbours to its new position. The
//! first key of a slot has no previous key; its `prev` holds its slot instead (flagged by the
//! high bit), so that moving it can update the slot's head without hashing the key again.
//!
//! New keys go to the head of their slot's list, as in Redis, so GETKEYSINSLOT lists a slot's
//! keys newest first, in the same order as redis-server given the same writes.
//!
//! Outside cluster mode ENTROPY's slot moves want the index too (without it a move walks the
//! whole table with three shards locked), but a database then already holds keys: the index is
//! started [`SlotIndex::unbuilt`], every existing position an unlinked placeholder, and linked a
//! chunk at a time ([`SlotIndex::build_step`]) while keys keep coming and going. New keys are
//! linked at once; a placeholder the table's swap-remove moves below the walk's cursor is
//! linked then (`removed` says so). It answers for a slot only once no placeholder is left.

use crate::chunked::ChunkedVec;
use crate::slot::SLOTS;

/// No position: the end of a list, or an empty slot's head.
const NONE: u32 = u32::MAX;
/// On `prev`: the entry heads its slot's list, and the low bits are that slot.
const HEAD: u32 = 1 << 31;

/// One key's neighbours in its slot's list, by key-table position.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

/// A position the index has not linked yet (while it is built: [`SlotIndex::unbuilt`]). No
/// linked entry has it: a linked `prev` is a position (below 2^31) or HEAD with a slot.
const UNLINKED: Link = Link {
    prev: NONE,
    next: NONE,
};

impl Link {
    fn linked(&self) -> bool {
        self.prev != NONE
    }
}

pub struct SlotIndex {
    /// By key-table position.
    links: ChunkedVec<Link>,
    /// Per slot: the position of its newest key, or NONE.
    heads: Box<[u32]>,
    /// Per slot: how many keys it holds (expired ones too, until they are deleted, as Redis).
    counts: Box<[u32]>,
    /// Placeholders left to link (an index started on a database that had keys).
    unlinked: usize,
    /// The build's cursor: every position below it is linked.
    built: usize,
}

impl Default for SlotIndex {
    fn default() -> Self {
        SlotIndex {
            links: ChunkedVec::default(),
            heads: vec![NONE; SLOTS].into_boxed_slice(),
            counts: vec![0; SLOTS].into_boxed_slice(),
            unlinked: 0,
            built: 0,
        }
    }
}

fn position(p: usize) -> u32 {
    let p = u32::try_from(p).expect("a database holds fewer than 2^32 keys");
    assert!(
        p < HEAD,
        "a cluster-mode database holds fewer than 2^31 keys"
    );
    p
}

impl SlotIndex {
    /// An index for a table that already holds `len` keys: none linked yet
    /// ([`SlotIndex::build_step`] links them).
    pub fn unbuilt(len: usize) -> SlotIndex {
        let mut index = SlotIndex::default();
        for _ in 0..len {
            index.links.push(UNLINKED);
        }
        index.unlinked = len;
        index
    }

    /// Whether every key is linked: only then do its lists hold every key of their slots.
    pub fn complete(&self) -> bool {
        self.unlinked == 0
    }

    /// Links up to `budget` positions from the build's cursor on, `slot_of(p)` giving the slot
    /// of the key at table position `p`. Answers whether the index is complete.
    pub fn build_step(&mut self, budget: usize, slot_of: impl Fn(usize) -> u16) -> bool {
        let end = self.links.len().min(self.built.saturating_add(budget));
        for p in self.built..end {
            if !self.links[p].linked() {
                self.link_existing(p, slot_of(p));
            }
        }
        self.built = end;
        self.complete()
    }

    /// Links the placeholder at `p`, a key of `slot`, at the head of its slot's list.
    pub fn link_existing(&mut self, p: usize, slot: u16) {
        debug_assert!(!self.links[p].linked());
        let at = position(p);
        let head = self.heads[slot as usize];
        if head != NONE {
            self.links
                .get_mut(head as usize)
                .expect("a head is a position")
                .prev = at;
        }
        *self.links.get_mut(p).expect("below len") = Link {
            prev: HEAD | slot as u32,
            next: head,
        };
        self.heads[slot as usize] = at;
        self.counts[slot as usize] += 1;
        self.unlinked -= 1;
    }

    /// Keys in `slot`.
    pub fn count(&self, slot: u16) -> usize {
        self.counts[slot as usize] as usize
    }

    /// Key-table positions of the keys in `slot`, newest first.
    pub fn positions(&self, slot: u16) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.heads[slot as usize];
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let here = at;
            at = self.links[here as usize].next;
            Some(here as usize)
        })
    }

    /// The key table appended a key of `slot` at position `p` (its new last position).
    pub fn added(&mut self, p: usize, slot: u16) {
        debug_assert_eq!(p, self.links.len(), "keys are appended");
        let p = position(p);
        let head = &mut self.heads[slot as usize];
        if *head != NONE {
            self.links
                .get_mut(*head as usize)
                .expect("a head is a position")
                .prev = p;
        }
        self.links.push(Link {
            prev: HEAD | slot as u32,
            next: *head,
        });
        *head = p;
        self.counts[slot as usize] += 1;
    }

    /// The key table removed the key of `slot` at position `p`, and moved its last entry (if
    /// that was not `p`) into `p`. Answers true when that moved entry is a placeholder the
    /// build's cursor has passed: the caller links it ([`SlotIndex::link_existing`]).
    #[must_use]
    pub fn removed(&mut self, p: usize, slot: u16) -> bool {
        let link = self.links[p];
        if link.linked() {
            self.relink(link, NONE);
            self.counts[slot as usize] -= 1;
        } else {
            self.unlinked -= 1;
        }
        let last = self.links.len() - 1;
        let mut link_moved = false;
        if p != last {
            // The last entry moves into `p`: its neighbours now point there.
            let moved = self.links[last];
            if moved.linked() {
                self.relink(moved, position(p));
            } else {
                link_moved = p < self.built;
            }
            *self.links.get_mut(p).expect("below len") = moved;
        }
        self.links.pop();
        self.built = self.built.min(self.links.len());
        link_moved
    }

    /// Points the neighbours of an entry whose links are `link` at `to` (NONE: unlinks it).
    /// Unlinking, its next key takes its place, as `to` would.
    fn relink(&mut self, link: Link, to: u32) {
        let unlink = to == NONE;
        let next_in = if unlink { link.next } else { to };
        if link.prev & HEAD != 0 {
            self.heads[(link.prev & !HEAD) as usize] = next_in;
        } else {
            self.links
                .get_mut(link.prev as usize)
                .expect("a neighbour is a position")
                .next = next_in;
        }
        if link.next != NONE {
            let prev_in = if unlink { link.prev } else { to };
            self.links
                .get_mut(link.next as usize)
                .expect("a neighbour is a position")
                .prev = prev_in;
        }
    }

    /// Every key went (FLUSHALL, FLUSHDB, a full sync's reset).
    pub fn clear(&mut self) {
        *self = SlotIndex::default();
    }

    /// Bytes this index holds: its links (allocated room included) and its two per-slot arrays.
    pub fn allocated_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Link>() + SLOTS * 2 * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model key table: positions with their slot, swap-removed as the real one does.
    #[test]
    fn random_adds_and_swap_removes_keep_every_slot_list_as_a_model_does() {
        let mut index = SlotIndex::default();
        // The table: each position's (key id, slot); the model: per slot, key ids newest first.
        let mut table: Vec<(u32, u16)> = Vec::new();
        let mut model: Vec<Vec<u32>> = vec![Vec::new(); 8];
        let mut seed = 5u64;
        for id in 0..40_000u32 {
            crate::next_test_random(&mut seed);
            // Few slots, so lists are long and removals hit heads, tails and middles.
            let slot = ((seed >> 33) % 8) as u16;
            if (seed >> 20) % 5 < 2 && !table.is_empty() {
                let p = (seed >> 40) as usize % table.len();
                let (gone, gone_slot) = table.swap_remove(p);
                assert!(
                    !index.removed(p, gone_slot),
                    "a complete index links every move"
                );
                model[gone_slot as usize].retain(|&k| k != gone);
            } else {
                table.push((id, slot));
                index.added(table.len() - 1, slot);
                model[slot as usize].insert(0, id);
            }
            if id % 997 == 0 || id > 39_900 {
                for (s, keys) in model.iter().enumerate() {
                    let listed: Vec<u32> = index.positions(s as u16).map(|p| table[p].0).collect();
                    assert_eq!(&listed, keys, "slot {s} after step {id}");
                    assert_eq!(index.count(s as u16), keys.len());
                }
            }
        }
        while let Some(&(_, slot)) = table.last() {
            table.pop();
            assert!(!index.removed(table.len(), slot));
        }
        assert!((0..8).all(|s| index.count(s) == 0 && index.positions(s).next().is_none()));
    }

    /// An index started on a table that already holds keys, built a few positions at a time
    /// while keys come and go, ends holding exactly each slot's keys (in no promised order).
    #[test]
    fn an_index_built_in_steps_while_keys_come_and_go_holds_every_slots_keys() {
        for budget in [1, 7, 300] {
            let mut table: Vec<(u32, u16)> = Vec::new();
            let mut seed = 11 + budget as u64;
            let mut next_id = 0u32;
            let slot_of_new = |seed: &mut u64| {
                crate::next_test_random(seed);
                ((*seed >> 33) % 8) as u16
            };
            for _ in 0..2_000 {
                let slot = slot_of_new(&mut seed);
                table.push((next_id, slot));
                next_id += 1;
            }
            let mut index = SlotIndex::unbuilt(table.len());
            assert!(!index.complete());
            let mut steps = 0;
            loop {
                for _ in 0..5 {
                    crate::next_test_random(&mut seed);
                    if (seed >> 20).is_multiple_of(2) && !table.is_empty() {
                        let p = (seed >> 40) as usize % table.len();
                        let (_, gone_slot) = table.swap_remove(p);
                        if index.removed(p, gone_slot) {
                            index.link_existing(p, table[p].1);
                        }
                    } else {
                        let slot = slot_of_new(&mut seed);
                        table.push((next_id, slot));
                        next_id += 1;
                        index.added(table.len() - 1, slot);
                    }
                }
                steps += 1;
                let slots: Vec<u16> = table.iter().map(|&(_, s)| s).collect();
                if index.build_step(budget, |p| slots[p]) {
                    break;
                }
                assert!(steps < 100_000, "the build ends");
            }
            for s in 0..8u16 {
                let mut listed: Vec<u32> = index.positions(s).map(|p| table[p].0).collect();
                let mut model: Vec<u32> = table
                    .iter()
                    .filter(|&&(_, slot)| slot == s)
                    .map(|&(id, _)| id)
                    .collect();
                listed.sort_unstable();
                model.sort_unstable();
                assert_eq!(listed, model, "slot {s}, budget {budget}");
                assert_eq!(index.count(s), model.len());
            }
        }
    }

    #[test]
    fn clear_forgets_every_slot() {
        let mut index = SlotIndex::default();
        index.added(0, 7);
        index.added(1, 7);
        index.clear();
        assert_eq!(index.count(7), 0);
        assert!(index.positions(7).next().is_none());
        index.added(0, 7);
        assert_eq!(index.positions(7).collect::<Vec<_>>(), vec![0]);
    }
}
