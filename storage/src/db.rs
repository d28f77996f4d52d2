//! One logical database (as selected by SELECT) within one shard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ahash::RandomState;
use bytes::Bytes;

use crate::eviction::horizon::{Horizon, FREQ_MASK};
use crate::key::Key;
use crate::keytable::{KeyTable, Lookup};
use crate::notify;
use crate::slot::key_slot;
use crate::slot_index::SlotIndex;
use crate::value::Value;
use crate::watch::{WatchFlag, Watchers};

/// What [`Db::undo_copy_of`] keeps of a key: its value, expiry (0: none) and access field.
pub type KeyCopy = (Value, u64, u32);

/// A key's slot in the table. Its expiry, when it has one, is kept beside the table (as Redis
/// keeps its `expires` dict): most keys have none, and 8 bytes are a tenth of a small string's.
pub struct Entry {
    pub value: Value,
    /// Last access in Unix milliseconds, wrapping (LRU, OBJECT IDLETIME); under an LFU policy,
    /// Redis's LFU field (minutes and a logarithmic counter).
    pub last_access: u32,
    /// Low 28 bits: the snapshot epoch this entry was written out in (or created during): a
    /// background snapshot writes each entry of an older epoch exactly once. Bit 28: the key
    /// has an expiry (in `Db::volatile`). High 3 bits: HORIZON's frequency and queue.
    snap_mark: u32,
}

const EPOCH_MASK: u32 = (1 << 28) - 1;
const HAS_TTL: u32 = 1 << 28;

impl Entry {
    pub fn new(value: Value, last_access: u32) -> Entry {
        Entry {
            value,
            last_access,
            snap_mark: 0,
        }
    }

    /// Starts loading what the value points at: a string's bytes, a collection's header (the
    /// last step of a batch's prefetching, after [`Db::prefetch_entry`]).
    #[inline]
    pub fn prefetch_value(&self) {
        if let Some(at) = self.value.heap_address() {
            crate::keytable::prefetch(at);
        }
    }

    pub(crate) fn has_ttl(&self) -> bool {
        self.snap_mark & HAS_TTL != 0
    }

    fn set_has_ttl(&mut self, on: bool) {
        if on {
            self.snap_mark |= HAS_TTL;
        } else {
            self.snap_mark &= !HAS_TTL;
        }
    }

    fn epoch(&self) -> u32 {
        self.snap_mark & EPOCH_MASK
    }

    fn set_epoch(&mut self, epoch: u32) {
        self.snap_mark = (self.snap_mark & !EPOCH_MASK) | (epoch & EPOCH_MASK);
    }

    fn with_epoch(mut self, epoch: u32) -> Entry {
        self.set_epoch(epoch);
        self
    }

    pub(crate) fn horizon_bits(&self) -> u8 {
        (self.snap_mark >> 29) as u8
    }

    pub(crate) fn set_horizon_bits(&mut self, bits: u8) {
        self.snap_mark = (self.snap_mark & !(0b111 << 29)) | ((bits as u32 & 0b111) << 29);
    }

    /// A request found this entry: HORIZON's frequency goes up (saturating at 3). The hit that
    /// saturates it makes a compressed string plain again: the key is hot, and would otherwise
    /// pay the decompression on every read (the hand compresses it again once it cools).
    pub fn horizon_hit(&mut self) {
        let bits = self.horizon_bits();
        if bits & FREQ_MASK < 3 {
            self.set_horizon_bits(bits + 1);
            if bits & FREQ_MASK == 2 {
                if let Value::Str(s) = &mut self.value {
                    s.unpack();
                }
            }
        }
    }
}

/// A keyspace. Keys live in an insertion-indexed map so that a uniformly random key
/// (RANDOMKEY, active-expiry sampling) and a rehash-safe SCAN cursor cost O(1) per step.
#[derive(Default)]
pub struct Db {
    pub(crate) map: KeyTable<Entry>,
    /// Keys that carry an expiry, with it (absolute Unix milliseconds); sampled by the
    /// active expiry cycle.
    pub(crate) volatile: KeyTable<u64>,
    /// Keys removed by expiry since the caller last took the count (for INFO expired_keys).
    expired_since_taken: u64,
    sample_seed: u64,
    /// While a write-ahead log is on: keys removed by expiry that it has not recorded yet
    /// (it logs them as deletions, so that replay never depends on the clock).
    pub expired_unlogged: Option<Vec<Key>>,
    /// The epoch of the latest background snapshot; entries created now belong to it.
    pub snap_epoch: u32,
    /// Under `maxmemory-policy allkeys-horizon`: the S3-FIFO queues over this database's keys.
    pub horizon: Option<Box<Horizon>>,
    /// The best eviction candidates sampled so far, lowest score first (see `evict_pooled`).
    pub(crate) eviction_pool: Vec<(u64, Key)>,
    /// Keys clients WATCH here (None while nobody does: one branch per write then).
    watched: Option<Box<Watchers>>,
    /// This database's number (SELECT's), for the keyspace events it raises.
    index: usize,
    /// In cluster mode (database 0 only): its keys by hash slot. None otherwise, fixed at start,
    /// so a write without cluster mode pays one predictable branch for it.
    slots: Option<Box<SlotIndex>>,
}

/// While clients are paused (CLIENT PAUSE), until when (Unix ms): an expired key reads as
/// absent but stays in place, as Redis's expireIfNeeded leaves it, so that a paused primary's
/// data does not change. Process-wide like the pause itself; 0 while none is in force.
static EXPIRY_DELETES_PAUSED_UNTIL: AtomicU64 = AtomicU64::new(0);

/// CLIENT PAUSE began or was extended (`until_ms`), or ended (0).
pub fn pause_expiry_deletes_until(until_ms: u64) {
    EXPIRY_DELETES_PAUSED_UNTIL.store(until_ms, Ordering::Relaxed);
}

/// On a replica: an expired key reads as absent but stays until its primary's DEL (or a write
/// here replaces or deletes it), as Redis 7.0's replica keeps it: the primary decides when a
/// key goes. Process-wide, set while the server follows a primary.
static REPLICA_KEEPS_EXPIRED: AtomicBool = AtomicBool::new(false);

/// The server became a replica (true), or a primary again (false).
pub fn keep_expired_keys(replica: bool) {
    REPLICA_KEEPS_EXPIRED.store(replica, Ordering::Relaxed);
}

/// Whether an expired key found by a read stays in place (see [`keep_expired_keys`]).
pub fn keeps_expired_keys() -> bool {
    REPLICA_KEEPS_EXPIRED.load(Ordering::Relaxed)
}

/// Records `key`'s expiry in the table of keys that have one.
fn set_expiry(volatile: &mut KeyTable<u64>, key: &Key, expire_at: u64) {
    match volatile.lookup(key.as_bytes()) {
        Lookup::At(i) => *volatile.get_index_mut(i).expect("found above").1 = expire_at,
        Lookup::Absent(hash) => {
            volatile.push(hash, key.clone(), expire_at);
        }
    }
}

/// The result of one SCAN step: the keys seen and the position to resume from (0: done).
pub struct ScanStep {
    pub keys: Vec<Bytes>,
    pub next: usize,
}

impl Db {
    /// An empty database numbered `index`.
    pub fn numbered(index: usize) -> Db {
        Db {
            index,
            ..Db::default()
        }
    }

    /// Cluster mode: from now on this (empty) database keeps its keys indexed by hash slot.
    pub fn index_slots(&mut self) {
        assert!(
            self.map.is_empty(),
            "the slot index starts with an empty database"
        );
        self.slots = Some(Box::default());
    }

    /// ENTROPY's slot moves: from now on this database keeps a slot index, built over the
    /// keys it holds by [`Db::build_slot_index`] a chunk at a time (a move walks the table until
    /// it is complete). Nothing to do when it has one.
    pub fn start_slot_index(&mut self) {
        if self.slots.is_none() {
            self.slots = Some(Box::new(SlotIndex::unbuilt(self.map.len())));
        }
    }

    /// Links up to `budget` more keys into the slot index being built. Answers whether it is
    /// complete (true without an index: nothing is left to build).
    pub fn build_slot_index(&mut self, budget: usize) -> bool {
        let Some(slots) = &mut self.slots else {
            return true;
        };
        let map = &self.map;
        slots.build_step(budget, |p| {
            key_slot(map.get_index(p).expect("below len").0.as_bytes())
        })
    }

    /// Whether this database has a slot index holding every key.
    pub fn slot_index_complete(&self) -> bool {
        self.complete_slot_index().is_some()
    }

    fn complete_slot_index(&self) -> Option<&SlotIndex> {
        self.slots.as_deref().filter(|s| s.complete())
    }

    /// `key` was appended to the key table at `at`: the slot index takes it. Out of line, so
    /// that the write path without cluster mode stays as compact as it was.
    #[cold]
    #[inline(never)]
    fn index_slot(&mut self, at: usize, key: &[u8]) {
        if let Some(slots) = &mut self.slots {
            slots.added(at, key_slot(key));
        }
    }

    /// The key-table entry at `at`, of `key`, was swap-removed: the slot index follows.
    #[inline]
    pub(crate) fn unindex_slot(&mut self, at: usize, key: &[u8]) {
        if self.slots.is_some() {
            self.unindex_slot_now(at, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn unindex_slot_now(&mut self, at: usize, key: &[u8]) {
        if let Some(slots) = &mut self.slots {
            if slots.removed(at, key_slot(key)) {
                // The table's last key moved into `at`, below the build's cursor, unlinked.
                let (moved, _) = self.map.get_index(at).expect("moved into at");
                slots.link_existing(at, key_slot(moved.as_bytes()));
            }
        }
    }

    /// Keys in hash `slot` (expired ones too, until deleted, as Redis counts them); None
    /// without a complete slot index (cluster mode off, or a database other than 0).
    pub fn keys_in_slot_count(&self, slot: u16) -> Option<usize> {
        self.complete_slot_index().map(|s| s.count(slot))
    }

    /// The keys in hash `slot`, newest first as Redis lists them (expired ones too, until
    /// deleted); None without a slot index.
    pub fn keys_in_slot(&self, slot: u16) -> Option<impl Iterator<Item = &[u8]> + '_> {
        let slots = self.complete_slot_index()?;
        Some(slots.positions(slot).map(|p| {
            let (key, _) = self
                .map
                .get_index(p)
                .expect("the index holds table positions");
            key.as_bytes()
        }))
    }

    /// Every key (expired or not) whose hash slot `wanted` accepts: from the slot index when
    /// there is a complete one, else by a walk of the whole table.
    pub fn keys_in_slots(&self, wanted: impl Fn(u16) -> bool) -> Vec<Key> {
        match self.complete_slot_index() {
            Some(index) => (0..crate::slot::SLOTS as u16)
                .filter(|&s| wanted(s))
                .flat_map(|s| index.positions(s).collect::<Vec<_>>())
                .map(|p| self.map.get_index(p).expect("indexed").0.clone())
                .collect(),
            None => self
                .map
                .iter()
                .filter(|(k, _)| wanted(key_slot(k.as_bytes())))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// Bytes the slot index holds (0 without one).
    pub fn slot_index_bytes(&self) -> usize {
        self.slots.as_ref().map_or(0, |s| s.allocated_bytes())
    }

    /// A database whose sampling starts from `seed` (tests that need repeatable draws).
    #[cfg(test)]
    pub(crate) fn with_seed(seed: u64) -> Db {
        Db {
            sample_seed: seed,
            ..Db::default()
        }
    }

    /// Bytes of the key table's room for entries not yet stored: allocated when the table grew,
    /// but not touched (so not resident) until keys fill it.
    pub fn spare_table_bytes(&self) -> usize {
        self.map.spare_bytes() + self.volatile.spare_bytes()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// How many keys, and keys with an expiry, the tables have room for before they grow
    /// (DEBUG HTSTATS).
    pub fn table_capacities(&self) -> (usize, usize) {
        (self.map.index_capacity(), self.volatile.index_capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    pub fn take_expired_count(&mut self) -> u64 {
        std::mem::take(&mut self.expired_since_taken)
    }

    fn note_expired(&mut self, key: &[u8]) {
        self.expired_since_taken += 1;
        notify::raise(notify::EXPIRED, "expired", self.index, key);
        if let Some(log) = &mut self.expired_unlogged {
            log.push(Key::from_slice(key));
        }
    }

    /// Deletes `key` as expired (counted, its event raised, its deletion logged), whatever its
    /// expiry: a writable replica expiring a key its own clients gave a TTL.
    pub fn expire_key_now(&mut self, key: &[u8]) -> bool {
        if self.remove(key).is_none() {
            return false;
        }
        self.note_expired(key);
        true
    }

    /// The key's expiry in Unix milliseconds, 0 when it has none (or is absent).
    pub fn expire_at(&self, key: &[u8]) -> u64 {
        if self.volatile.is_empty() {
            return 0;
        }
        self.volatile.get(key).copied().unwrap_or(0)
    }

    /// As Redis's keyIsExpired: a key is gone once the clock has passed its expiry time.
    fn is_expired(&self, key: &[u8], entry: &Entry, now_ms: u64) -> bool {
        entry.has_ttl() && now_ms > self.expire_at(key)
    }

    /// Starts loading the index lines a look-up of `key` reads first, and gives the key's hash
    /// for [`Db::prefetch_entry`]: a batch's look-ups then miss the cache together, not one
    /// after the other (see `KeyTable::prefetch_slot`).
    #[inline]
    pub fn prefetch_slot(&self, key: &[u8]) -> u64 {
        let hash = self.map.hash(key);
        self.map.prefetch_slot(hash);
        hash
    }

    /// Starts loading the entry of the key whose hash [`Db::prefetch_slot`] gave; the entry,
    /// for [`Entry::prefetch_value`] once it is in.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) -> Option<&Entry> {
        self.map.prefetch_entry(hash)
    }

    /// The position of `key` if it is present and not expired; an expired key is removed.
    fn live_position(&mut self, key: &[u8], now_ms: u64) -> Option<usize> {
        let i = self.map.position_of(key)?;
        let (_, entry) = self.map.get_index(i).expect("found above");
        if self.is_expired(key, entry, now_ms) {
            self.expire_on_access(key, now_ms);
            return None;
        }
        Some(i)
    }

    /// An access found `key` expired: it goes (counted, its event raised), unless clients are
    /// paused. Out of line: rare, and it keeps every read's inlined path short.
    #[cold]
    #[inline(never)]
    fn expire_on_access(&mut self, key: &[u8], now_ms: u64) {
        if now_ms < EXPIRY_DELETES_PAUSED_UNTIL.load(Ordering::Relaxed) || keeps_expired_keys() {
            return;
        }
        self.remove(key);
        self.note_expired(key);
    }

    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let i = self.live_position(key, now_ms)?;
        self.map.get_index(i).map(|(_, e)| e)
    }

    /// The entry with its expiry (0: none).
    pub fn get_with_expiry(&mut self, key: &[u8], now_ms: u64) -> Option<(&Entry, u64)> {
        let i = self.live_position(key, now_ms)?;
        let at = self.expire_at(key);
        self.map.get_index(i).map(|(_, e)| (e, at))
    }

    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let i = self.live_position(key, now_ms)?;
        self.map.get_index_mut(i).map(|(_, e)| e)
    }

    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// Stores `value` under `key`, replacing any previous value and its expiry.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64, clock: u32) {
        self.store(key, value, expire_at, clock, 0);
    }

    /// As [`Db::set`], for a write that does not look the key up first (SET, a STORE form's
    /// destination): a key there that has expired is expired first (counted, its `expired`
    /// event raised), as Redis's setKey does through lookupKeyWrite.
    #[inline]
    pub fn set_over(&mut self, key: &[u8], value: Value, expire_at: u64, clock: u32, now_ms: u64) {
        self.store(key, value, expire_at, clock, now_ms);
    }

    /// `set` and `set_over`: `now_ms` 0 checks no expiry. One hash and probe for both outcomes
    /// (the common SET path); the expiry is looked up only for a key that has one.
    #[inline]
    fn store(&mut self, key: &[u8], value: Value, expire_at: u64, clock: u32, now_ms: u64) {
        match self.map.lookup(key) {
            Lookup::At(i) => {
                let had_ttl = self.map.get_index(i).expect("found above").1.has_ttl();
                if had_ttl && now_ms > self.expire_at(key) {
                    return self.store_over_expired(key, value, expire_at, clock);
                }
                let mut entry = Entry::new(value, clock).with_epoch(self.snap_epoch);
                entry.set_has_ttl(expire_at != 0);
                let (stored_key, slot) = self.map.get_index_mut(i).expect("found above");
                entry.set_horizon_bits(slot.horizon_bits());
                *slot = entry;
                if expire_at != 0 {
                    set_expiry(&mut self.volatile, stored_key, expire_at);
                } else if had_ttl {
                    self.volatile.swap_remove(key);
                }
            }
            Lookup::Absent(hash) => {
                let mut entry = Entry::new(value, clock).with_epoch(self.snap_epoch);
                entry.set_has_ttl(expire_at != 0);
                let owned = Key::from_slice(key);
                if expire_at != 0 {
                    set_expiry(&mut self.volatile, &owned, expire_at);
                }
                if let Some(h) = &mut self.horizon {
                    entry.set_horizon_bits(h.admit(hash));
                }
                let at = self.map.push(hash, owned, entry);
                if self.slots.is_some() {
                    self.index_slot(at, key);
                }
                notify::raise(notify::NEW, "new", self.index, key);
            }
        }
        self.touch_watched(key);
    }

    /// `set_over` found the key expired: it goes first (counted, its event), then the value is
    /// stored as for a new key.
    #[cold]
    #[inline(never)]
    fn store_over_expired(&mut self, key: &[u8], value: Value, expire_at: u64, clock: u32) {
        self.remove(key);
        self.note_expired(key);
        self.store(key, value, expire_at, clock, 0);
    }

    /// Inserts an entry as it is, with `expire_at` (RENAME, MOVE, COPY keep the key's expiry).
    pub fn insert_entry(&mut self, key: &[u8], entry: Entry, expire_at: u64) {
        let last_access = entry.last_access;
        self.set(key, entry.value, expire_at, last_access);
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.take(key).map(|(entry, _)| entry)
    }

    /// Removes `key`, handing back its entry and its expiry (0: none).
    pub fn take(&mut self, key: &[u8]) -> Option<(Entry, u64)> {
        let at = self.map.position_of(key)?;
        let (_, entry) = self.map.swap_remove_index(at);
        self.unindex_slot(at, key);
        if let Some(h) = &mut self.horizon {
            h.forget(entry.horizon_bits());
        }
        let expire_at = if entry.has_ttl() {
            self.volatile.swap_remove(key).map_or(0, |(_, at)| at)
        } else {
            0
        };
        self.touch_watched(key);
        Some((entry, expire_at))
    }

    /// Sets or clears the expiry of an existing key; returns false when the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let Some(i) = self.map.position_of(key) else {
            return false;
        };
        let (stored_key, entry) = self.map.get_index_mut(i).expect("found above");
        let had_ttl = entry.has_ttl();
        entry.set_has_ttl(expire_at != 0);
        if expire_at != 0 {
            set_expiry(&mut self.volatile, stored_key, expire_at);
        } else if had_ttl {
            self.volatile.swap_remove(key);
        }
        self.touch_watched(key);
        true
    }

    pub fn clear(&mut self) {
        if let Some(mut w) = self.watched.take() {
            let map = &self.map;
            w.touch_all(|k| map.position_of(k).is_some(), |_| None);
            self.watched = Some(w);
        }
        self.map = KeyTable::default();
        self.volatile = KeyTable::default();
        if let Some(slots) = &mut self.slots {
            slots.clear();
        }
        if self.horizon.is_some() {
            self.horizon = Some(Box::default());
        }
    }

    /// A cheap, well-spread pseudo-random number (sampling for expiry, eviction, RANDOMKEY).
    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64*: sampling only needs to be cheap and well spread, not secure.
        if self.sample_seed == 0 {
            self.sample_seed = RandomState::new().hash_one(0u64) | 1;
        }
        let mut x = self.sample_seed;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.sample_seed = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Redis-style active expiry: sample keys with a TTL, delete the expired ones, and keep going
    /// while more than a quarter of a sample was expired, never past `budget` samples.
    pub fn active_expire(&mut self, now_ms: u64, budget: usize) -> u64 {
        const SAMPLE: usize = 20;
        let mut removed = 0u64;
        let mut sampled = 0usize;
        while !self.volatile.is_empty() && sampled < budget {
            let mut expired_in_round = 0;
            let round = SAMPLE.min(self.volatile.len());
            for _ in 0..round {
                if self.volatile.is_empty() {
                    break;
                }
                let idx = (self.next_random() % self.volatile.len() as u64) as usize;
                let (key, &at) = self.volatile.get_index(idx).expect("index below len");
                let key = key.clone();
                sampled += 1;
                if now_ms > at {
                    self.remove(key.as_bytes());
                    notify::raise(notify::EXPIRED, "expired", self.index, key.as_bytes());
                    if let Some(log) = &mut self.expired_unlogged {
                        log.push(key);
                    }
                    expired_in_round += 1;
                }
            }
            removed += expired_in_round;
            if expired_in_round * 4 <= round as u64 {
                break;
            }
        }
        removed
    }

    /// A random live key, skipping (and deleting, but on a replica) expired ones as Redis does.
    pub fn random_key(&mut self, now_ms: u64) -> Option<Bytes> {
        for _ in 0..100 {
            if self.map.is_empty() {
                return None;
            }
            let idx = (self.next_random() % self.map.len() as u64) as usize;
            let (key, entry) = self.map.get_index(idx).expect("index below len");
            if self.is_expired(key.as_bytes(), entry, now_ms) {
                if !keeps_expired_keys() {
                    let key = key.clone();
                    self.remove(key.as_bytes());
                    self.note_expired(key.as_bytes());
                }
                continue;
            }
            return Some(Bytes::copy_from_slice(key.as_bytes()));
        }
        // Mostly expired keys: fall back to a linear look for a live one.
        let now = now_ms;
        self.map
            .iter()
            .find(|(k, e)| !self.is_expired(k.as_bytes(), e, now))
            .map(|(k, _)| Bytes::copy_from_slice(k.as_bytes()))
    }

    /// Visits keys from position `cursor` downwards (0 = start from the top). Walking down is what
    /// makes the cursor safe under deletion: a swap-remove only moves the last (already visited)
    /// key into a lower slot, so a key present for the whole scan is never skipped.
    pub fn scan(&self, cursor: usize, count: usize, now_ms: u64) -> ScanStep {
        let mut pos = if cursor == 0 || cursor > self.map.len() {
            self.map.len()
        } else {
            cursor
        };
        let mut keys = Vec::with_capacity(count.min(pos));
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            let (key, entry) = self.map.get_index(pos).expect("index below len");
            if !self.is_expired(key.as_bytes(), entry, now_ms) {
                keys.push(Bytes::copy_from_slice(key.as_bytes()));
            }
        }
        ScanStep { keys, next: pos }
    }

    /// Every live key with its entry and expiry (0: none), for KEYS and whole-database walks.
    /// Every key with its expiry (0: none), those whose time has passed but that are not
    /// deleted yet included (an RDB file holds them, as Redis's does).
    pub fn iter_all(&self) -> impl Iterator<Item = (&[u8], &Entry, u64)> {
        // Live at time 0: every key.
        self.iter_live(0)
    }

    pub fn iter_live(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &Entry, u64)> {
        self.map.iter().filter_map(move |(k, e)| {
            let at = if e.has_ttl() {
                self.expire_at(k.as_bytes())
            } else {
                0
            };
            (at == 0 || now_ms <= at).then_some((k.as_bytes(), e, at))
        })
    }

    /// For a background snapshot: the entry under `key` if it has not been written out in the
    /// current epoch yet (it is marked as written). Expired entries count: the log holds
    /// their deletion.
    pub fn take_for_snapshot(&mut self, key: &[u8]) -> Option<(&Entry, u64)> {
        let epoch = self.snap_epoch;
        let entry = self.map.get_mut(key)?;
        if entry.epoch() == epoch {
            return None;
        }
        entry.set_epoch(epoch);
        let at = self.expire_at(key);
        self.map.get(key).map(|e| (e, at))
    }

    /// One step of a background snapshot's walk: visits up to `budget` positions below
    /// `*cursor` (walking down, so a swap-remove never hides an entry from the walk), hands
    /// each entry not yet written in this epoch to `write` and marks it. Returns whether the
    /// walk reached the bottom.
    pub fn snapshot_step(
        &mut self,
        cursor: &mut usize,
        budget: usize,
        mut write: impl FnMut(&[u8], &Entry, u64),
    ) -> bool {
        let epoch = self.snap_epoch;
        let mut pos = (*cursor).min(self.map.len());
        let stop = pos.saturating_sub(budget);
        while pos > stop {
            pos -= 1;
            let (_, entry) = self.map.get_index_mut(pos).expect("index below len");
            if entry.epoch() != epoch {
                entry.set_epoch(epoch);
                let (key, entry) = self.map.get_index(pos).expect("index below len");
                let at = if entry.has_ttl() {
                    self.expire_at(key.as_bytes())
                } else {
                    0
                };
                write(key.as_bytes(), entry, at);
            }
        }
        *cursor = pos;
        pos == 0
    }

    /// Starts a new background-snapshot epoch: every present entry is now unwritten.
    pub fn next_snap_epoch(&mut self) {
        self.snap_epoch = (self.snap_epoch + 1) & EPOCH_MASK;
    }

    /// SWAPDB: the contents change places; the watched keys stay with their database number
    /// and see the change as Redis's `touchAllWatchedKeysInDb` does.
    /// Cluster mode refuses SWAPDB (as Redis does), but a log written without it may replay one
    /// into a database that keeps a slot index: the index stays with the database and is rebuilt.
    pub fn swap_with(&mut self, other: &mut Db, now_ms: u64) {
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.horizon, &mut other.horizon);
        self.reindex_slots();
        other.reindex_slots();
        self.touch_after_swap(other, now_ms);
        other.touch_after_swap(self, now_ms);
    }

    /// The slot index, if any, built again from the key table (after its contents changed whole).
    fn reindex_slots(&mut self) {
        if let Some(slots) = &mut self.slots {
            slots.clear();
            for p in 0..self.map.len() {
                let (key, _) = self.map.get_index(p).expect("below len");
                slots.added(p, key_slot(key.as_bytes()));
            }
        }
    }

    /// `old`: the contents this database had before a swap.
    fn touch_after_swap(&mut self, old: &Db, now_ms: u64) {
        let Some(mut w) = self.watched.take() else {
            return;
        };
        let new = &*self;
        w.touch_all(
            |k| old.map.position_of(k).is_some(),
            |k| {
                let (_, entry) = new.map.get_index(new.map.position_of(k)?)?;
                Some(new.is_expired(k, entry, now_ms))
            },
        );
        self.watched = Some(w);
    }

    /// WATCH: `flag` is set when `key` changes. A key present but expired is watched as stale.
    pub fn watch(&mut self, key: &[u8], flag: &Arc<WatchFlag>, now_ms: u64) {
        let stale = self.is_expired_key(key, now_ms);
        self.watched
            .get_or_insert_with(Box::default)
            .add(key, flag, stale);
    }

    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<WatchFlag>) {
        if let Some(w) = &mut self.watched {
            w.remove(key, flag);
            if w.is_empty() {
                self.watched = None;
            }
        }
    }

    /// EXEC's check: `key`, live when `flag`'s client watched it, has expired since (Redis's
    /// `isWatchedKeyExpired`).
    pub fn watched_key_expired(&self, key: &[u8], flag: &Arc<WatchFlag>, now_ms: u64) -> bool {
        self.watched
            .as_ref()
            .is_some_and(|w| w.watched_live(key, flag))
            && self.is_expired_key(key, now_ms)
    }

    /// A write changed `key` (in place, say): the clients watching it see a change.
    #[inline]
    pub fn touch_watched(&mut self, key: &[u8]) {
        if self.watched.is_none() {
            return;
        }
        let exists = self.map.position_of(key).is_some();
        if let Some(w) = &mut self.watched {
            w.touch(key, exists);
        }
    }

    /// The value `key` holds, expired or not (nothing is expired here).
    pub fn peek_value(&self, key: &[u8]) -> Option<&Value> {
        self.peek_entry(key).map(|e| &e.value)
    }

    /// The entry of `key`, expired or not (nothing is expired here), as Redis's raw dictFind.
    pub fn peek_entry(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// A copy of what `key` holds (its value, expiry and access field), expired or not, to
    /// put back with [`Db::restore_copy`]: a running script keeps such copies of the keys it
    /// writes, to undo its writes when it must start again. Some(None) when the key is absent,
    /// None when its value is too large to copy cheaply (`Value::is_cheap_to_copy`).
    pub fn undo_copy_of(&self, key: &[u8]) -> Option<Option<KeyCopy>> {
        let Some(entry) = self.map.get(key) else {
            return Some(None);
        };
        if !entry.value.is_cheap_to_copy() {
            return None;
        }
        Some(Some((
            entry.value.clone(),
            self.expire_at(key),
            entry.last_access,
        )))
    }

    /// Puts back what [`Db::undo_copy_of`] copied (None: the key was absent).
    pub fn restore_copy(&mut self, key: &[u8], copy: Option<KeyCopy>) {
        self.take(key);
        if let Some((value, expire_at, last_access)) = copy {
            self.set(key, value, expire_at, last_access);
        }
    }

    /// Whether `key` is in the table, expired or not (nothing is expired here).
    pub fn holds(&self, key: &[u8]) -> bool {
        self.map.position_of(key).is_some()
    }

    /// Present, with an expiry in the past (not deleted here).
    fn is_expired_key(&self, key: &[u8], now_ms: u64) -> bool {
        self.map
            .get(key)
            .is_some_and(|entry| self.is_expired(key, entry, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::string(v.as_bytes())
    }

    #[test]
    fn an_entry_with_its_key_stays_at_56_bytes() {
        // What a small string key costs in the table (bench/memory.py: 131 bytes a key in all).
        assert_eq!(std::mem::size_of::<(Key, Entry)>(), 56);
    }

    #[test]
    fn expiry_lives_beside_the_table_and_follows_the_key() {
        let mut db = Db::default();
        db.set(b"a", s("1"), 5000, 0);
        db.set(b"b", s("2"), 0, 0);
        assert_eq!((db.expire_at(b"a"), db.expire_at(b"b")), (5000, 0));
        assert!(db.set_expire(b"b", 7000));
        assert!(db.set_expire(b"a", 0));
        assert_eq!((db.expire_at(b"a"), db.expire_at(b"b")), (0, 7000));
        let (entry, at) = db.take(b"b").unwrap();
        assert_eq!(at, 7000);
        db.insert_entry(b"c", entry, at);
        assert_eq!(db.expire_at(b"c"), 7000);
        assert_eq!(db.volatile_len(), 1);
        assert!(db.get(b"c", 7001).is_none(), "expired on access");
        assert_eq!(db.volatile_len(), 0);
        assert!(db.get(b"a", u64::MAX).is_some(), "no expiry");
    }

    #[test]
    fn random_operations_keep_keys_and_expiries_as_a_model_does() {
        // Model: key -> (value, expiry). Every expiry is far in the future: no key lapses.
        let mut db = Db::default();
        let mut model: std::collections::HashMap<String, (String, u64)> = Default::default();
        let mut seed = 3u64;
        for step in 0..30_000u64 {
            crate::next_test_random(&mut seed);
            let key = format!("k{}", (seed >> 33) % 400);
            let other = format!("k{}", (seed >> 13) % 400);
            let at = if (seed >> 5).is_multiple_of(2) {
                0
            } else {
                1_000_000 + step
            };
            match (seed >> 50) % 6 {
                0 | 1 => {
                    db.set(key.as_bytes(), s(&step.to_string()), at, 0);
                    model.insert(key, (step.to_string(), at));
                }
                2 => {
                    assert_eq!(
                        db.remove(key.as_bytes()).is_some(),
                        model.remove(&key).is_some()
                    );
                }
                3 => {
                    let present = db.set_expire(key.as_bytes(), at);
                    assert_eq!(present, model.contains_key(&key));
                    if let Some(v) = model.get_mut(&key) {
                        v.1 = at;
                    }
                }
                4 if key != other => {
                    // RENAME: the entry moves with its expiry.
                    if let Some((entry, at)) = db.take(key.as_bytes()) {
                        db.remove(other.as_bytes());
                        db.insert_entry(other.as_bytes(), entry, at);
                        let v = model.remove(&key).expect("in the model");
                        model.insert(other, v);
                    } else {
                        assert!(!model.contains_key(&key));
                    }
                }
                _ => {
                    if let Some((gone, _)) = db.evict_sampled(true, 3, |_, at| at) {
                        let name = std::str::from_utf8(gone.as_bytes()).unwrap();
                        let (_, at) = model.remove(name).expect("evicted a present key");
                        assert_ne!(at, 0, "a volatile policy evicted {name} without a TTL");
                    }
                }
            }
        }
        assert_eq!(db.len(), model.len());
        let volatile = model.values().filter(|(_, at)| *at != 0).count();
        assert_eq!(db.volatile_len(), volatile);
        for (k, (v, at)) in &model {
            assert_eq!(db.expire_at(k.as_bytes()), *at, "{k}");
            let Value::Str(got) = &db.get(k.as_bytes(), 0).expect("present").value else {
                panic!("{k} not a string")
            };
            assert_eq!(&*got.as_slice(), v.as_bytes(), "{k}");
        }
        assert!(db.iter_live(0).all(|(k, _, at)| {
            model.get(std::str::from_utf8(k).unwrap()).map(|m| m.1) == Some(at)
        }));
    }

    #[test]
    fn the_slot_index_follows_every_way_a_key_comes_and_goes() {
        // Keys in five hash tags (five slots), so slot lists are long.
        let name = |n: u64| format!("{{t{}}}k{}", n % 5, n);
        let tags: Vec<u16> = (0..5).map(|t| key_slot(name(t).as_bytes())).collect();
        let mut db = Db::default();
        db.index_slots();
        db.set_horizon(true);
        let mut seed = 9u64;
        for step in 0..10_000u64 {
            crate::next_test_random(&mut seed);
            let key = name((seed >> 33) % 300);
            let other = name((seed >> 13) % 300);
            let at = if (seed >> 5).is_multiple_of(3) {
                1000 + step
            } else {
                0
            };
            match (seed >> 50) % 9 {
                0..=2 => db.set(key.as_bytes(), s("v"), at, 0),
                3 => drop(db.remove(key.as_bytes())),
                4 => drop(db.set_expire(key.as_bytes(), at)),
                5 => {
                    if let Some((entry, at)) = db.take(key.as_bytes()) {
                        db.remove(other.as_bytes());
                        db.insert_entry(other.as_bytes(), entry, at);
                    }
                }
                6 if step % 2 == 0 => drop(db.evict_sampled(false, 3, |_, at| at)),
                6 => drop(db.evict_horizon(true)),
                7 => drop(db.active_expire(step, 40)),
                _ if step % 500 == 0 => db.clear(),
                _ => drop(db.get(key.as_bytes(), step)),
            }
            // Every key in the table, expired or not, is listed once under its slot.
            for &slot in &tags {
                let mut listed: Vec<&[u8]> = db.keys_in_slot(slot).unwrap().collect();
                let mut stored: Vec<&[u8]> = db
                    .map
                    .iter()
                    .map(|(k, _)| k.as_bytes())
                    .filter(|k| key_slot(k) == slot)
                    .collect();
                assert_eq!(db.keys_in_slot_count(slot), Some(stored.len()));
                listed.sort();
                stored.sort();
                assert_eq!(listed, stored, "slot {slot} at step {step}");
            }
        }
        assert_eq!(
            Db::default().keys_in_slot_count(0),
            None,
            "no index unless asked"
        );
        // A SWAPDB replayed from a log: the index stays with its database, rebuilt.
        let mut other = Db::default();
        other.set(b"{t0}x", s("v"), 0, 0);
        db.swap_with(&mut other, 0);
        assert_eq!(db.keys_in_slot_count(tags[0]), Some(1));
        let listed: Vec<&[u8]> = db.keys_in_slot(tags[0]).unwrap().collect();
        assert_eq!(listed, vec![&b"{t0}x"[..]]);
        assert_eq!(other.keys_in_slot_count(tags[0]), None);
    }

    /// ENTROPY's index, started on a database that holds keys and built a few keys at a time
    /// while every kind of write and removal goes on, ends listing exactly each slot's keys;
    /// until then `keys_in_slots` walks the table.
    #[test]
    fn a_slot_index_started_late_and_built_in_steps_lists_every_key() {
        let name = |n: u64| format!("{{t{}}}k{}", n % 5, n);
        let tags: Vec<u16> = (0..5).map(|t| key_slot(name(t).as_bytes())).collect();
        let walk = |db: &Db, slot: u16| {
            let mut keys: Vec<Vec<u8>> = db
                .map
                .iter()
                .map(|(k, _)| k.as_bytes().to_vec())
                .filter(|k| key_slot(k) == slot)
                .collect();
            keys.sort();
            keys
        };
        let mut db = Db::default();
        db.set_horizon(true);
        for n in 0..600 {
            db.set(name(n).as_bytes(), s("v"), 0, 0);
        }
        db.start_slot_index();
        assert!(!db.slot_index_complete());
        let mut seed = 3u64;
        let mut step = 0u64;
        while !db.build_slot_index(3) {
            for _ in 0..4 {
                step += 1;
                crate::next_test_random(&mut seed);
                let key = name((seed >> 33) % 900);
                match (seed >> 50) % 6 {
                    0 | 1 => db.set(key.as_bytes(), s("v"), 0, 0),
                    2 => drop(db.remove(key.as_bytes())),
                    3 => drop(db.evict_sampled(false, 3, |_, at| at)),
                    4 => drop(db.evict_horizon(true)),
                    _ => drop(db.get(key.as_bytes(), step)),
                }
            }
            // Meanwhile a move finds the slot's keys by walking.
            let mut found: Vec<Vec<u8>> = db
                .keys_in_slots(|s| s == tags[1])
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect();
            found.sort();
            assert_eq!(found, walk(&db, tags[1]));
            assert!(step < 100_000, "the build ends");
        }
        assert!(db.slot_index_complete());
        for &slot in &tags {
            let mut listed: Vec<Vec<u8>> =
                db.keys_in_slot(slot).unwrap().map(|k| k.to_vec()).collect();
            listed.sort();
            assert_eq!(listed, walk(&db, slot), "slot {slot}");
            assert_eq!(db.keys_in_slot_count(slot), Some(listed.len()));
        }
    }

    #[test]
    fn lazy_expiry_removes_on_access() {
        let mut db = Db::default();
        db.set(b"a", s("1"), 1000, 0);
        db.set(b"b", s("2"), 0, 0);
        assert!(db.get(b"a", 1000).is_some());
        assert!(db.get(b"a", 1001).is_none());
        assert_eq!(db.len(), 1);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.take_expired_count(), 1);
    }

    #[test]
    fn overwriting_clears_expiry() {
        let mut db = Db::default();
        db.set(b"a", s("1"), 1000, 0);
        db.set(b"a", s("2"), 0, 0);
        assert_eq!(db.volatile_len(), 0);
        assert!(db.get(b"a", 5000).is_some());
    }

    #[test]
    fn active_expiry_removes_expired_keys_within_budget() {
        let mut db = Db::default();
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), s("v"), 10, 0);
        }
        for i in 0..10 {
            db.set(format!("live{i}").as_bytes(), s("v"), 1_000_000, 0);
        }
        let removed = db.active_expire(100, 200);
        assert!(removed > 0 && removed <= 200, "removed {removed}");
        let mut total = removed;
        while total < 1000 {
            let r = db.active_expire(100, 10_000);
            if r == 0 {
                break;
            }
            total += r;
        }
        assert!(total >= 900, "only {total} expired after repeated cycles");
        assert!(db.get(b"live3", 100).is_some());
    }

    #[test]
    fn scan_survives_deletions_during_the_walk() {
        let mut db = Db::default();
        for i in 0..500 {
            db.set(format!("k{i}").as_bytes(), s("v"), 0, 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step_no = 0;
        loop {
            let step = db.scan(cursor, 10, 0);
            for k in step.keys {
                seen.insert(k);
            }
            // Delete keys that sort as "odd" while the scan is running.
            step_no += 1;
            let victim = format!("k{}", step_no * 2 + 1);
            db.remove(victim.as_bytes());
            if step.next == 0 {
                break;
            }
            cursor = step.next;
        }
        for i in (0..500).step_by(2) {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn random_key_skips_expired() {
        let mut db = Db::default();
        db.set(b"dead", s("v"), 5, 0);
        db.set(b"alive", s("v"), 0, 0);
        for _ in 0..20 {
            assert_eq!(db.random_key(10).as_deref(), Some(&b"alive"[..]));
        }
    }
}
