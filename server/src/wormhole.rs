//! WORMHOLE's server-wide state: pins (a key stored on its anchor's shard instead of its slot's),
//! the routing every command goes through ([`Wormhole::route`]), the pair counts AUTO pins
//! from, and the cross-shard fabric's figures per shard pair for WORMHOLE STATS.
//!
//! Routing must stay as cheap as the slot look-up it replaces: with no pins it is one relaxed
//! load more; with pins, a per-slot count says whether the key's slot has any before the pin
//! table is read. A pin changes only with the key's old and new shards locked, so a command
//! that checks its keys' owners under its shard's lock sees a stable answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use warpengine_physics::entangle::{Graph, LearnParams};

use crate::config::ConfigStore;
use crate::slot::{key_slot, SlotTable, SLOTS};

#[derive(Default)]
struct PinTable {
    /// key -> anchor (never itself pinned: pins to a pinned key follow it to its anchor).
    anchor_of: HashMap<Bytes, Bytes, ahash::RandomState>,
    /// anchor -> how many keys are pinned to it.
    uses: HashMap<Bytes, usize, ahash::RandomState>,
}

/// One direction between two workers: batches of commands sent, the commands in them, and
/// the round trip from send to reply in power-of-two microsecond buckets.
pub struct Hop {
    pub batches: AtomicU64,
    pub keys: AtomicU64,
    pub inline: AtomicU64,
    buckets: [AtomicU64; 32],
}

impl Default for Hop {
    fn default() -> Hop {
        Hop {
            batches: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Hop {
    pub fn record(&self, keys: usize, took: Duration) {
        self.batches.fetch_add(1, Relaxed);
        self.keys.fetch_add(keys as u64, Relaxed);
        let us = took.as_micros().max(1) as u64;
        let bucket = (63 - us.leading_zeros() as usize).min(31);
        self.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// The upper bound (µs) of the bucket holding the `q` quantile of round trips.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return 1u64 << (i + 1);
            }
        }
        1u64 << 32
    }
}

#[derive(Default)]
pub struct Stats {
    pub multi_key_one_shard: AtomicU64,
    pub multi_key_cross_shard: AtomicU64,
    pub keys_moved: AtomicU64,
    pub auto_pins: AtomicU64,
    pub misrouted_retries: AtomicU64,
}

pub struct Wormhole {
    any: AtomicBool,
    /// Bumped by every pin change (under the locks of the shards involved): a route computed
    /// under an older epoch is checked again under the shard's lock.
    epoch: AtomicU64,
    per_slot: Vec<AtomicU32>,
    table: RwLock<PinTable>,
    pub max_pins: AtomicU64,
    pub auto: AtomicBool,
    pub auto_threshold: AtomicU64,
    pairs: Mutex<Graph>,
    /// hops[from][to]: batches worker `from` sent to shard `to`.
    pub hops: Vec<Vec<Hop>>,
    pub stats: Stats,
}

/// Why a pin was refused.
pub enum PinError {
    Itself,
    IsAnchor,
    TooMany(u64),
}

impl PinError {
    pub fn message(&self) -> String {
        match self {
            PinError::Itself => "ERR a key cannot be pinned to itself".into(),
            PinError::IsAnchor => {
                "ERR the key is the anchor of pinned keys; unpin them first".into()
            }
            PinError::TooMany(n) => {
                format!("ERR WORMHOLE PIN would exceed {n} pins (wormhole-max-pins)")
            }
        }
    }
}

impl Wormhole {
    pub fn new(shards: usize, cfg: &ConfigStore) -> Wormhole {
        let w = Wormhole {
            any: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            per_slot: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            table: RwLock::new(PinTable::default()),
            max_pins: AtomicU64::new(0),
            auto: AtomicBool::new(false),
            auto_threshold: AtomicU64::new(0),
            pairs: Mutex::new(Graph::default()),
            hops: (0..shards)
                .map(|_| (0..shards).map(|_| Hop::default()).collect())
                .collect(),
            stats: Stats::default(),
        };
        w.refresh(cfg);
        w
    }

    pub fn refresh(&self, cfg: &ConfigStore) {
        self.max_pins
            .store(cfg.get_i64("wormhole-max-pins").max(0) as u64, Relaxed);
        self.auto.store(cfg.get_bool("wormhole-auto"), Relaxed);
        self.auto_threshold.store(
            cfg.get_i64("wormhole-auto-threshold").max(1) as u64,
            Relaxed,
        );
    }

    /// The shard that stores `key`.
    #[inline]
    pub fn route(&self, slots: &SlotTable, key: &[u8]) -> usize {
        if !self.any.load(Relaxed) {
            return slots.shard_of(key);
        }
        let slot = key_slot(key);
        if self.per_slot[slot as usize].load(Relaxed) == 0 {
            return slots.shard_of_slot(slot);
        }
        match self.anchor(key) {
            Some(anchor) => slots.shard_of(&anchor),
            None => slots.shard_of_slot(slot),
        }
    }

    pub fn anchor(&self, key: &[u8]) -> Option<Bytes> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        t.anchor_of.get(key).cloned()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether routes computed at `epoch` may be stale now (checked under a shard's lock).
    pub fn may_have_moved(&self, epoch: u64) -> bool {
        self.any.load(Relaxed) || self.epoch() != epoch
    }

    /// The anchor `key` would be pinned to (a pinned anchor's own anchor), or why not.
    pub fn check_pin(&self, key: &[u8], anchor: &[u8]) -> Result<Bytes, PinError> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        let anchor = t
            .anchor_of
            .get(anchor)
            .cloned()
            .unwrap_or_else(|| Bytes::copy_from_slice(anchor));
        if anchor == key {
            return Err(PinError::Itself);
        }
        if t.uses.contains_key(key) {
            return Err(PinError::IsAnchor);
        }
        let max = self.max_pins.load(Relaxed);
        if !t.anchor_of.contains_key(key) && t.anchor_of.len() as u64 >= max {
            return Err(PinError::TooMany(max));
        }
        Ok(anchor)
    }

    /// Records the pin (the caller moved the data, with both shards locked).
    pub fn set_pin(&self, key: &[u8], anchor: Bytes) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let key = Bytes::copy_from_slice(key);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *t.uses.entry(anchor.clone()).or_insert(0) += 1;
        match t.anchor_of.insert(key.clone(), anchor) {
            Some(old) => release(&mut t, &old),
            None => {
                self.per_slot[key_slot(&key) as usize].fetch_add(1, Relaxed);
            }
        }
        self.any.store(true, Relaxed);
    }

    /// Forgets `key`'s pin; false if it had none.
    pub fn clear_pin(&self, key: &[u8]) -> bool {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let Some(old) = t.anchor_of.remove(key) else {
            return false;
        };
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        release(&mut t, &old);
        self.per_slot[key_slot(key) as usize].fetch_sub(1, Relaxed);
        if t.anchor_of.is_empty() {
            self.any.store(false, Relaxed);
        }
        true
    }

    pub fn pin_count(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .anchor_of
            .len()
    }

    /// Every pin as the command that re-creates it (for snapshots).
    pub fn meta_records(&self) -> Vec<Vec<Vec<u8>>> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        t.anchor_of
            .iter()
            .map(|(k, a)| {
                vec![
                    b"WORMHOLE".to_vec(),
                    b"PIN".to_vec(),
                    k.to_vec(),
                    a.to_vec(),
                ]
            })
            .collect()
    }

    /// A multi-key command touched `first` and `other` on different shards: reinforces the
    /// pair; true when it crossed the AUTO threshold.
    pub fn observe_pair(&self, first: &[u8], other: &[u8], now_ms: u64) -> bool {
        // Weights decay between uses: "n uses" is met within a hundredth of a use.
        let params = LearnParams {
            max_learned: 16,
            max_keys: 100_000,
            halflife_ms: 60_000,
        };
        let mut g = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        g.reinforce(first, other, now_ms, &params);
        let threshold = self.auto_threshold.load(Relaxed) as f64;
        g.learned(first, now_ms, params.halflife_ms)
            .iter()
            .any(|(p, w)| *p == other && *w >= threshold - 0.01)
    }
}

fn release(t: &mut PinTable, anchor: &Bytes) {
    if let Some(n) = t.uses.get_mut(anchor) {
        *n -= 1;
        if *n == 0 {
            t.uses.remove(anchor);
        }
    }
}
