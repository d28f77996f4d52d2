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

use warpengine_storage::Shard;

use crate::config_store::ConfigStore;
use crate::persist::log::{flush_expired, log_key_moves};
use crate::server_state::Server;
use crate::slot::{key_slot, SlotTable, SLOTS};

/// Pinned keys in one part of the slot space: key -> (anchor, the anchor's shard). The anchor
/// is never itself pinned (pins to a pinned key follow it to its anchor).
type PinPart = HashMap<Bytes, (Bytes, usize), ahash::RandomState>;

/// The pin table is split by slot so that workers routing different keys read different locks.
const PARTS: usize = 64;

#[derive(Default)]
struct Anchors {
    /// anchor -> how many keys are pinned to it.
    uses: HashMap<Bytes, usize, ahash::RandomState>,
    pins: usize,
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
    parts: Vec<RwLock<PinPart>>,
    /// Changed only with shard 0 locked (every pin change holds it).
    anchors: Mutex<Anchors>,
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
            parts: (0..PARTS)
                .map(|_| RwLock::new(PinPart::default()))
                .collect(),
            anchors: Mutex::new(Anchors::default()),
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
        let part = self.part(slot).read().unwrap_or_else(|p| p.into_inner());
        match part.get(key) {
            Some(&(_, shard)) => shard,
            None => slots.shard_of_slot(slot),
        }
    }

    fn part(&self, slot: u16) -> &RwLock<PinPart> {
        &self.parts[slot as usize % PARTS]
    }

    pub fn anchor(&self, key: &[u8]) -> Option<Bytes> {
        let part = self
            .part(key_slot(key))
            .read()
            .unwrap_or_else(|p| p.into_inner());
        part.get(key).map(|(a, _)| a.clone())
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether routes computed at `epoch` may be stale now. Read under a shard's lock: a pin
    /// change bumps the epoch before releasing the shards it moved a key between.
    pub fn may_have_moved(&self, epoch: u64) -> bool {
        self.epoch() != epoch
    }

    /// The anchor `key` would be pinned to (a pinned anchor's own anchor), or why not.
    pub fn check_pin(&self, key: &[u8], anchor: &[u8]) -> Result<Bytes, PinError> {
        let anchor = self
            .anchor(anchor)
            .unwrap_or_else(|| Bytes::copy_from_slice(anchor));
        if anchor == key {
            return Err(PinError::Itself);
        }
        let a = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
        if a.uses.contains_key(key) {
            return Err(PinError::IsAnchor);
        }
        let max = self.max_pins.load(Relaxed);
        if self.anchor(key).is_none() && a.pins as u64 >= max {
            return Err(PinError::TooMany(max));
        }
        Ok(anchor)
    }

    /// Records the pin (the caller moves the data, with both shards locked).
    pub fn set_pin(&self, slots: &SlotTable, key: &[u8], anchor: Bytes) {
        let mut a = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
        let slot = key_slot(key);
        *a.uses.entry(anchor.clone()).or_insert(0) += 1;
        let shard = slots.shard_of(&anchor);
        self.per_slot[slot as usize].fetch_add(1, Relaxed);
        self.any.store(true, Relaxed);
        let old = self
            .part(slot)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Bytes::copy_from_slice(key), (anchor, shard));
        match old {
            Some((old, _)) => {
                release(&mut a, &old);
                self.per_slot[slot as usize].fetch_sub(1, Relaxed);
            }
            None => a.pins += 1,
        }
        self.publish();
    }

    /// Bumped after the table changed: whoever reads the new epoch routes by the new table.
    fn publish(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Routes changed for another reason than a pin (ENTROPY moved a slot, its shards locked):
    /// routes computed before may be stale ([`Wormhole::may_have_moved`]).
    pub fn routes_changed(&self) {
        self.publish();
    }

    /// Forgets `key`'s pin; false if it had none.
    pub fn clear_pin(&self, key: &[u8]) -> bool {
        let mut a = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
        let slot = key_slot(key);
        let removed = self
            .part(slot)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let Some((old, _)) = removed else {
            return false;
        };
        release(&mut a, &old);
        a.pins -= 1;
        self.per_slot[slot as usize].fetch_sub(1, Relaxed);
        if a.pins == 0 {
            self.any.store(false, Relaxed);
        }
        self.publish();
        true
    }

    pub fn pin_count(&self) -> usize {
        self.anchors.lock().unwrap_or_else(|p| p.into_inner()).pins
    }

    /// Every pin as the command that re-creates it (for snapshots).
    pub fn meta_records(&self) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for part in &self.parts {
            let part = part.read().unwrap_or_else(|p| p.into_inner());
            for (k, (a, _)) in part.iter() {
                out.push(vec![
                    b"WORMHOLE".to_vec(),
                    b"PIN".to_vec(),
                    k.to_vec(),
                    a.to_vec(),
                ]);
            }
        }
        out
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

fn release(a: &mut Anchors, anchor: &Bytes) {
    if let Some(n) = a.uses.get_mut(anchor) {
        *n -= 1;
        if *n == 0 {
            a.uses.remove(anchor);
        }
    }
}

// --- Moving keys to follow their pins (PIN, UNPIN and AUTO's pins): the data moves and its log
// records, below the WORMHOLE family so that dispatch (AUTO) can pin without reaching up.

/// Pins `key` to `anchor` (or unpins it: None), moving its entries in every database to shard
/// `to`, with shard 0 (held by the caller), the old and the new shard locked. Logs the pin
/// and the move as one group. Returns whether any entry moved.
pub fn move_key(
    server: &Server,
    shard0: &mut Shard,
    key: &[u8],
    to: usize,
    anchor: Option<Bytes>,
) -> bool {
    let from = server.route(key);
    let mut ids = vec![from, to];
    ids.retain(|&s| s != 0);
    ids.sort_unstable();
    ids.dedup();
    let mut guards: Vec<_> = ids.iter().map(|&s| server.lock_shard(s)).collect();
    let mut shards: Vec<&mut Shard> = vec![shard0];
    shards.extend(guards.iter_mut().map(|g| &mut **g));
    let logging = server.wal.records();
    let mut moved: Vec<(usize, warpengine_storage::Entry, u64)> = Vec::new();
    if from != to {
        let src = shards
            .iter_mut()
            .position(|s| s.id == from)
            .expect("locked");
        let now = crate::server_state::unix_ms();
        for db in 0..shards[src].dbs.len() {
            if shards[src].dbs[db].get(key, now).is_none() {
                continue;
            }
            crate::persist::background::preserve(server, &mut *shards[src], db, key);
            if let Some((e, at)) = shards[src].dbs[db].take(key) {
                moved.push((db, e, at));
            }
        }
    }
    if logging {
        for s in shards.iter_mut() {
            flush_expired(server, s);
        }
        let meta: Vec<&[u8]> = match &anchor {
            Some(a) => vec![b"WORMHOLE", b"PIN", key, a],
            None => vec![b"WORMHOLE", b"UNPIN", key],
        };
        let moved: Vec<_> = moved.iter().map(|(db, e, at)| (key, *db, e, *at)).collect();
        log_key_moves(server, &meta, from, to, &moved);
    }
    let dst = shards.iter_mut().position(|s| s.id == to).expect("locked");
    let any = !moved.is_empty();
    let src = shards.iter().position(|s| s.id == from).expect("locked");
    let now = crate::server_state::unix_ms();
    for (db, e, at) in moved {
        shards[dst].dbs[db].insert_entry(key, e, at);
        let [from_shard, to_shard] = shards
            .get_disjoint_mut([src, dst])
            .expect("entries move between two shards");
        server
            .hot_copies
            .follow_move(from_shard, to_shard, db, key, now);
    }
    server
        .wormhole
        .stats
        .keys_moved
        .fetch_add(any as u64, Relaxed);
    match anchor {
        Some(a) => server.wormhole.set_pin(&server.slots, key, a),
        None => {
            server.wormhole.clear_pin(key);
        }
    }
    any
}

/// Pins `key` to `anchor` for AUTO, from a connection's worker (takes shard 0's lock itself).
pub fn auto_pin(server: &Server, key: &[u8], anchor: &[u8]) {
    let Ok(anchor) = server.wormhole.check_pin(key, anchor) else {
        return;
    };
    if server.wal.refusal().is_some() {
        return;
    }
    let mut shard0 = server.lock_shard(0);
    let to = server.slots.shard_of(&anchor);
    move_key(server, &mut shard0, key, to, Some(anchor));
    server.wormhole.stats.auto_pins.fetch_add(1, Relaxed);
}
