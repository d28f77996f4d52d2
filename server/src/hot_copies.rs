//! GRAVITY REPLICATE's copies (docs/physics.md, GRAVITY): a hot, read-mostly string key served
//! by every worker from a copy of its own, so that its GETs stop queueing on one core.
//!
//! - Each worker has a table of copies its connections read ([`HotCopies::read`]): a GET of a
//!   replicated key owned by another shard answers from it without a hop. Only the key's
//!   owner writes its copies, under its shard lock.
//! - The owner learns of every change of a replicated key the way WATCH does: the copies watch
//!   the key (`Db::watch`), so a store, removal, expiry, eviction, FLUSHDB, SWAPDB, a RESTORE,
//!   and the dispatcher's touch of each write command's keys (changes in place: INCR, APPEND,
//!   SETRANGE) raise their flag.
//! - [`HotCopies::publish`] brings the copies of every flagged key up to date: when the shard
//!   lock is released (`ShardGuard`'s drop) and at the end of each batch, both before any
//!   reply to the write leaves. A transaction's or a script's intermediate values are never
//!   published: the lock is held until they end. So a write is acknowledged only once every
//!   copy holds its value (or is gone): no read that starts after the acknowledgement sees an
//!   older value.
//! - A copy holds a live string of at most [`MAX_COPY_BYTES`]: a key that is absent, expired, of
//!   another type or larger has no copy, and its GETs go to the owner as any other request
//!   (which answers nil or WRONGTYPE, counts the miss, and expires the key). A filter of the
//!   replicated names ([`HotCopies::may_hold`]) turns other keys' GETs away before any lock.
//! - Copy hits are counted per worker (`WorkerStats::copy_hits`, in INFO's keyspace_hits) and
//!   folded into the owner's access clock each tick ([`HotCopies::fold_hits`]), so that an LRU
//!   or LFU policy does not take the hottest key for an idle one.
//! - AUTO ([`auto_step`], once a second on worker 0) replicates the hottest keys whose
//!   estimated rate reaches MINRATE, and drops the ones it chose once they cool below half of
//!   it or are rewritten more often than read from their copies ([`AUTO_READS_PER_WRITE`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use warpengine_storage::key::Key;
use warpengine_storage::watch::WatchFlag;
use warpengine_storage::{Shard, Value};

use crate::keyctx::{KeyCtx, Shards};
use crate::server_state::{unix_ms, Server};

/// Copies larger than this are not kept: each write would copy it to every worker.
pub const MAX_COPY_BYTES: usize = 64 * 1024;

/// AUTO drops a key it chose when its copies were refreshed (written) more often than once per
/// this many copy reads over a second: each write then costs more (a copy per worker) than the
/// hops the copies saved.
pub const AUTO_READS_PER_WRITE: u64 = 1;

/// Keys AUTO considers per database each second (the hottest first).
const AUTO_CANDIDATES: usize = 8;

/// A key AUTO dropped for being rewritten too often is not taken again for this long.
const AUTO_BENCH_MS: u64 = 30_000;

/// At most this many keys are replicated at once (each write to one of them, and every
/// lock release on its shard, looks at them all).
pub const MAX_REPLICATED: usize = 256;

/// Words of [`HotCopies`]'s filter (1,024 bits).
const FILTER_WORDS: usize = 16;

/// A key's bit in the filter: from its length and its last 8 bytes (cheaper than a hash of the
/// whole key; the lookup that follows a set bit compares the key itself).
#[inline(always)]
fn filter_bit(key: &[u8]) -> (usize, u64) {
    let tail = if key.len() >= 8 {
        u64::from_le_bytes(key[key.len() - 8..].try_into().expect("8 bytes"))
    } else {
        key.iter().fold(0u64, |a, &b| a << 8 | b as u64)
    };
    let h = (tail ^ key.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54;
    ((h >> 6) as usize, 1 << (h & 63))
}

/// One worker's copy of a replicated key.
struct Copy {
    value: Bytes,
    /// Unix ms after which the key is expired (0: no expiry).
    expire_at: u64,
    /// Reads served from this copy since the owner last folded them in.
    hits: u64,
}

/// The copies one worker's connections read: per database, per key.
#[derive(Default)]
struct Table {
    dbs: Vec<HashMap<Key, Copy, ahash::RandomState>>,
}

impl Table {
    fn db(&mut self, db: usize) -> &mut HashMap<Key, Copy, ahash::RandomState> {
        if self.dbs.len() <= db {
            self.dbs.resize_with(db + 1, HashMap::default);
        }
        &mut self.dbs[db]
    }
}

/// A replicated key, as its owner keeps it.
pub struct Replicated {
    pub db: usize,
    pub key: Key,
    /// Raised by any change to the key (it watches the key as WATCH does).
    flag: Arc<WatchFlag>,
    /// Chosen by AUTO (which may drop it again), not by GRAVITY REPLICATE key.
    pub auto: bool,
    /// Times its copies were brought up to date (writes, expiry, eviction...).
    pub refreshes: u64,
    /// Copy reads folded in so far.
    pub hits: u64,
    /// `refreshes` and `hits` at AUTO's last look (its per-second judgement).
    seen: (u64, u64),
}

/// GRAVITY REPLICATE's state: every worker's copies and every shard's replicated keys.
pub struct HotCopies {
    /// Replicated keys, server-wide: while 0 the request path pays one load for all of this.
    count: AtomicUsize,
    /// Per worker: its connections' copies.
    tables: Vec<Mutex<Table>>,
    /// Per shard: its replicated keys (changed only under that shard's lock).
    owned: Vec<Mutex<Vec<Replicated>>>,
    /// A filter of the replicated keys' names (a bit per [`filter_bit`]), so that a GET of
    /// another key gives up after a few instructions, without a lock or a hash.
    filter: [AtomicU64; FILTER_WORDS],
    /// Per shard: raised with any of its replicated keys' own flags (every replicated key is
    /// watched by both), so that a lock release finds nothing to publish in one load.
    changed: Vec<Arc<WatchFlag>>,
    /// AUTO: on or off, and its MINRATE (requests per second, as f64 bits).
    auto: AtomicBool,
    auto_minrate: AtomicU64,
    /// Keys AUTO dropped for churn, and until when (Unix ms) it leaves them alone.
    benched: Mutex<Vec<(usize, Key, u64)>>,
}

/// What GRAVITY LIST shows of a replicated key.
pub struct Listed {
    pub db: usize,
    pub key: Bytes,
    pub auto: bool,
    pub hits: u64,
    pub refreshes: u64,
}

/// Why a key cannot be replicated.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Full,
}

impl HotCopies {
    pub fn new(workers: usize) -> HotCopies {
        HotCopies {
            count: AtomicUsize::new(0),
            tables: (0..workers).map(|_| Mutex::default()).collect(),
            owned: (0..workers).map(|_| Mutex::default()).collect(),
            changed: (0..workers).map(|_| Arc::default()).collect(),
            filter: std::array::from_fn(|_| AtomicU64::new(0)),
            auto: AtomicBool::new(false),
            auto_minrate: AtomicU64::new(0),
            benched: Mutex::default(),
        }
    }

    /// Whether any key is replicated (one relaxed load: the request path's whole cost while
    /// none is).
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.count.load(Relaxed) != 0
    }

    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        !self.active()
    }

    /// Whether `key` may be replicated (no false negatives; a few false positives).
    #[inline(always)]
    pub fn may_hold(&self, key: &[u8]) -> bool {
        let (word, bit) = filter_bit(key);
        self.filter[word].load(Relaxed) & bit != 0
    }

    /// The filter built again from every replicated key (after one is dropped).
    fn rebuild_filter(&self) {
        let mut words = [0u64; FILTER_WORDS];
        for shard in 0..self.owned.len() {
            for r in self.owned(shard).iter() {
                let (word, bit) = filter_bit(r.key.as_bytes());
                words[word] |= bit;
            }
        }
        for (w, v) in self.filter.iter().zip(words) {
            w.store(v, Relaxed);
        }
    }

    fn table(&self, worker: usize) -> MutexGuard<'_, Table> {
        self.tables[worker]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn owned(&self, shard: usize) -> MutexGuard<'_, Vec<Replicated>> {
        self.owned[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A GET on `worker` of `key` in `db`: the value of its copy there, if it has a live one
    /// (`now_ms` is asked only of a copy with an expiry). Out of line: called only while some
    /// key is replicated.
    #[inline(never)]
    pub fn read(
        &self,
        worker: usize,
        db: usize,
        key: &[u8],
        now_ms: impl FnOnce() -> u64,
    ) -> Option<Bytes> {
        let mut table = self.table(worker);
        let copy = table.dbs.get_mut(db)?.get_mut(key)?;
        if copy.expire_at != 0 && now_ms() > copy.expire_at {
            return None;
        }
        copy.hits += 1;
        Some(copy.value.clone())
    }

    /// Replicates `key` of `db`, owned by `shard` (locked by the caller): its copies are
    /// filled when the lock is released. False when it already was (`auto` is then left as
    /// it was, so that AUTO never takes over a key named by hand).
    pub fn replicate(
        &self,
        shard: &mut Shard,
        db: usize,
        key: &[u8],
        auto: bool,
        now_ms: u64,
        watched_keys: &AtomicU64,
    ) -> Result<bool, Refusal> {
        let mut owned = self.owned(shard.id);
        if owned.iter().any(|r| r.db == db && r.key.as_bytes() == key) {
            return Ok(false);
        }
        if self.count.load(Relaxed) >= MAX_REPLICATED {
            return Err(Refusal::Full);
        }
        let flag = Arc::new(WatchFlag::default());
        shard.dbs[db].watch(key, &flag, now_ms);
        shard.dbs[db].watch(key, &self.changed[shard.id], now_ms);
        // Raised now, so that the release of this lock fills the copies.
        flag.set();
        self.changed[shard.id].set();
        owned.push(Replicated {
            db,
            key: Key::from_slice(key),
            flag,
            auto,
            refreshes: 0,
            hits: 0,
            seen: (0, 0),
        });
        let (word, bit) = filter_bit(key);
        self.filter[word].fetch_or(bit, Relaxed);
        // The dispatcher touches a write command's keys while anyone watches.
        watched_keys.fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        Ok(true)
    }

    /// Stops replicating `key` of `db` (its shard locked by the caller); false when it was not.
    pub fn unreplicate(
        &self,
        shard: &mut Shard,
        db: usize,
        key: &[u8],
        watched_keys: &AtomicU64,
    ) -> bool {
        let mut owned = self.owned(shard.id);
        let Some(at) = owned
            .iter()
            .position(|r| r.db == db && r.key.as_bytes() == key)
        else {
            return false;
        };
        let gone = owned.swap_remove(at);
        drop(owned);
        self.forget(shard, gone, watched_keys);
        self.rebuild_filter();
        true
    }

    /// `key` of `db` moved from shard `from` to shard `to` (both locked by the caller, the entry
    /// already in `to`: an ENTROPY slot move or a WORMHOLE pin): if it is replicated, its record
    /// and its watch follow it, and its copies are refreshed from the new owner when its lock is
    /// released. (Left behind, the record would watch a key its shard no longer has: the copies
    /// would stay empty, and UNREPLICATE, which asks the key's owner, would not find it.)
    pub fn follow_move(
        &self,
        from: &mut Shard,
        to: &mut Shard,
        db: usize,
        key: &[u8],
        now_ms: u64,
    ) {
        if !self.active() {
            return;
        }
        let moved = {
            let mut owned = self.owned(from.id);
            let Some(at) = owned
                .iter()
                .position(|r| r.db == db && r.key.as_bytes() == key)
            else {
                return;
            };
            owned.swap_remove(at)
        };
        from.dbs[db].unwatch(key, &moved.flag);
        from.dbs[db].unwatch(key, &self.changed[from.id]);
        to.dbs[db].watch(key, &moved.flag, now_ms);
        to.dbs[db].watch(key, &self.changed[to.id], now_ms);
        moved.flag.set();
        self.changed[to.id].set();
        self.owned(to.id).push(moved);
    }

    /// Drops every copy of `gone` and its watch.
    fn forget(&self, shard: &mut Shard, gone: Replicated, watched_keys: &AtomicU64) {
        shard.dbs[gone.db].unwatch(gone.key.as_bytes(), &gone.flag);
        shard.dbs[gone.db].unwatch(gone.key.as_bytes(), &self.changed[shard.id]);
        for worker in 0..self.tables.len() {
            let mut table = self.table(worker);
            if let Some(copies) = table.dbs.get_mut(gone.db) {
                copies.remove(gone.key.as_bytes());
            }
        }
        watched_keys.fetch_sub(1, Relaxed);
        self.count.fetch_sub(1, Relaxed);
    }

    /// Brings the copies of `shard`'s changed replicated keys up to date (its lock held): see
    /// the module docs for when. Inline for its first check, which is all a shard without
    /// replicated keys pays.
    #[inline]
    pub fn publish(&self, shard: &Shard) {
        if self.active() && self.changed[shard.id].is_set() {
            self.publish_changed(shard);
        }
    }

    #[cold]
    #[inline(never)]
    fn publish_changed(&self, shard: &Shard) {
        self.changed[shard.id].clear();
        let mut owned = self.owned(shard.id);
        for r in owned.iter_mut() {
            if !r.flag.is_set() {
                continue;
            }
            r.flag.clear();
            r.refreshes += 1;
            let db = &shard.dbs[r.db];
            let value = match db.peek_value(r.key.as_bytes()) {
                Some(Value::Str(s)) if s.len() <= MAX_COPY_BYTES => Some(s.to_bytes()),
                _ => None,
            };
            let expire_at = db.expire_at(r.key.as_bytes());
            for worker in 0..self.tables.len() {
                let mut table = self.table(worker);
                let copies = table.db(r.db);
                match &value {
                    Some(v) => {
                        // Each worker's own bytes: a shared buffer's reference count would
                        // bounce between the cores on every read.
                        let value = Bytes::copy_from_slice(v);
                        match copies.get_mut(r.key.as_bytes()) {
                            Some(c) => {
                                c.value = value;
                                c.expire_at = expire_at;
                            }
                            None => {
                                let hits = 0;
                                let copy = Copy {
                                    value,
                                    expire_at,
                                    hits,
                                };
                                copies.insert(r.key.clone(), copy);
                            }
                        }
                    }
                    None => {
                        if let Some(c) = copies.remove(r.key.as_bytes()) {
                            r.hits += c.hits;
                        }
                    }
                }
            }
        }
    }

    /// The copy reads of `shard`'s replicated keys since the last call, added to their counts;
    /// `touch(db, key)` refreshes the key's access clock on the owner when it had any (the
    /// worker's tick calls this with its shard locked).
    pub fn fold_hits(&self, shard: &mut Shard, mut touch: impl FnMut(&mut Shard, usize, &[u8])) {
        if !self.active() {
            return;
        }
        let mut owned = self.owned(shard.id);
        for r in owned.iter_mut() {
            let mut read = 0;
            for worker in 0..self.tables.len() {
                let mut table = self.table(worker);
                if let Some(c) = table
                    .dbs
                    .get_mut(r.db)
                    .and_then(|d| d.get_mut(r.key.as_bytes()))
                {
                    read += std::mem::take(&mut c.hits);
                }
            }
            if read > 0 {
                r.hits += read;
                touch(shard, r.db, r.key.as_bytes());
            }
        }
    }

    /// GRAVITY LIST: every replicated key (hits are the ones folded in so far).
    pub fn list(&self) -> Vec<Listed> {
        let mut all = Vec::new();
        for shard in 0..self.owned.len() {
            for r in self.owned(shard).iter() {
                all.push(Listed {
                    db: r.db,
                    key: Bytes::copy_from_slice(r.key.as_bytes()),
                    auto: r.auto,
                    hits: r.hits,
                    refreshes: r.refreshes,
                });
            }
        }
        all.sort_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
        all
    }

    /// GRAVITY REPLICATE AUTO [MINRATE r] (`Some(r)`) or UNREPLICATE AUTO (`None`).
    pub fn set_auto(&self, minrate: Option<f64>) {
        if let Some(r) = minrate {
            self.auto_minrate.store(r.to_bits(), Relaxed);
        }
        self.auto.store(minrate.is_some(), Relaxed);
    }

    pub fn auto(&self) -> Option<f64> {
        self.auto
            .load(Relaxed)
            .then(|| f64::from_bits(self.auto_minrate.load(Relaxed)))
    }

    /// AUTO's judgement of the keys it chose on `shard` (locked), once a second: the ones to
    /// drop, cooled below half of MINRATE by `rate_of` or rewritten too often for their reads
    /// (those are benched: AUTO leaves them alone for a while). Each kept key's counts start a
    /// new second.
    pub fn auto_verdicts(
        &self,
        shard: usize,
        minrate: f64,
        now_ms: u64,
        rate_of: impl Fn(usize, &[u8]) -> f64,
    ) -> Vec<(usize, Key)> {
        let mut drop = Vec::new();
        let mut benched = self.benched.lock().unwrap_or_else(|p| p.into_inner());
        benched.retain(|(_, _, until)| *until > now_ms);
        for r in self.owned(shard).iter_mut().filter(|r| r.auto) {
            let writes = r.refreshes - r.seen.0;
            let reads = r.hits - r.seen.1;
            r.seen = (r.refreshes, r.hits);
            let cooled = rate_of(r.db, r.key.as_bytes()) < minrate / 2.0;
            // The first refresh fills the copies; it is not a write.
            let churned = writes > 1 && writes * AUTO_READS_PER_WRITE > reads;
            if churned {
                benched.push((r.db, r.key.clone(), now_ms + AUTO_BENCH_MS));
            }
            if cooled || churned {
                drop.push((r.db, r.key.clone()));
            }
        }
        drop
    }

    /// Keys AUTO benched that it still leaves alone at `now_ms` (INFO's `gravity_auto_benched`).
    pub fn benched(&self, now_ms: u64) -> usize {
        let benched = self.benched.lock().unwrap_or_else(|p| p.into_inner());
        benched
            .iter()
            .filter(|(_, _, until)| *until > now_ms)
            .count()
    }

    /// Whether AUTO benched `key` of `db` (see [`HotCopies::auto_verdicts`]).
    fn is_benched(&self, db: usize, key: &[u8]) -> bool {
        let benched = self.benched.lock().unwrap_or_else(|p| p.into_inner());
        benched
            .iter()
            .any(|(d, k, _)| *d == db && k.as_bytes() == key)
    }

    /// The AUTO keys of `shard`, to drop when AUTO is switched off.
    pub fn auto_keys(&self, shard: usize) -> Vec<(usize, Key)> {
        self.owned(shard)
            .iter()
            .filter(|r| r.auto)
            .map(|r| (r.db, r.key.clone()))
            .collect()
    }
}

/// Worker `me`'s tick, its shard locked: the copy reads of its replicated keys refresh their
/// access clocks (LRU, LFU, HORIZON), as the reads would have on the owner.
pub fn tick(server: &Server, shard: &mut Shard) {
    let now = unix_ms();
    server.hot_copies.fold_hits(shard, |shard, db, key| {
        let mut ctx = KeyCtx::new(Shards::One(shard), server, db, now);
        ctx.write(key);
    });
}

/// AUTO's step, once a second (on worker 0): drops the keys it chose that cooled or churned, then
/// replicates the hottest keys at or above MINRATE (`HotCopies::auto_verdicts`).
pub fn auto_step(server: &Server) {
    let copies = &server.hot_copies;
    let Some(minrate) = copies.auto() else {
        return;
    };
    if !server.gravity.enabled() {
        return;
    }
    let rated = server.gravity.rated();
    let rate_of = |db: usize, key: &[u8]| {
        rated
            .iter()
            .find(|(d, h)| *d == db && h.key == key)
            .map_or(0.0, |(_, h)| h.rate)
    };
    let now = unix_ms();
    // A shard held long (a script past busy-reply-threshold) must not stall the worker this
    // runs on: it waits for the next second.
    for id in 0..server.threads() {
        let Some(mut shard) = server.try_lock_shard(id) else {
            continue;
        };
        for (db, key) in copies.auto_verdicts(id, minrate, now, rate_of) {
            copies.unreplicate(&mut shard, db, key.as_bytes(), &server.watched_keys);
            tracing::debug!(db, key = ?Bytes::copy_from_slice(key.as_bytes()), "GRAVITY AUTO stopped replicating a key");
        }
    }
    let mut per_db = vec![0usize; server.databases()];
    for (db, hot) in rated.iter().filter(|(_, h)| h.rate >= minrate) {
        let Some(taken) = per_db.get_mut(*db) else {
            continue;
        };
        if *taken >= AUTO_CANDIDATES || copies.is_benched(*db, &hot.key) {
            continue;
        }
        *taken += 1;
        let Some(mut shard) = server.try_lock_shard(server.route(&hot.key)) else {
            continue;
        };
        let fresh = copies.replicate(&mut shard, *db, &hot.key, true, now, &server.watched_keys);
        if matches!(fresh, Ok(true)) {
            tracing::debug!(db, key = ?hot.key, rate = hot.rate, "GRAVITY AUTO replicates a key");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> Shard {
        Shard::new(0, 2)
    }

    #[test]
    fn copies_follow_every_change_once_published() {
        let copies = HotCopies::new(2);
        let watched = AtomicU64::new(0);
        let mut s = shard();
        s.dbs[0].set(b"k", Value::string(b"v1"), 0, 0);
        assert!(copies
            .replicate(&mut s, 0, b"k", false, 1, &watched)
            .unwrap());
        assert!(!copies
            .replicate(&mut s, 0, b"k", false, 1, &watched)
            .unwrap());
        assert_eq!(watched.load(Relaxed), 1);
        // Nothing is served before the owner publishes.
        assert_eq!(copies.read(1, 0, b"k", || 1), None);
        copies.publish(&s);
        assert_eq!(copies.read(1, 0, b"k", || 1).as_deref(), Some(&b"v1"[..]));
        assert_eq!(copies.read(0, 0, b"k", || 1).as_deref(), Some(&b"v1"[..]));
        // A store raises the flag; the copies change at the next publish only.
        s.dbs[0].set(b"k", Value::string(b"v2"), 0, 0);
        assert_eq!(copies.read(1, 0, b"k", || 1).as_deref(), Some(&b"v1"[..]));
        copies.publish(&s);
        assert_eq!(copies.read(1, 0, b"k", || 1).as_deref(), Some(&b"v2"[..]));
        // An expiry: the copy carries it and stops answering once it has passed.
        s.dbs[0].set_expire(b"k", 100);
        copies.publish(&s);
        assert!(copies.read(1, 0, b"k", || 100).is_some());
        assert_eq!(copies.read(1, 0, b"k", || 101), None);
        // Removed, or of another type: no copy.
        s.dbs[0].remove(b"k");
        copies.publish(&s);
        assert_eq!(copies.read(1, 0, b"k", || 1), None);
        s.dbs[0].set(b"k", Value::string(b"v3"), 0, 0);
        copies.publish(&s);
        assert_eq!(copies.read(1, 0, b"k", || 1).as_deref(), Some(&b"v3"[..]));
        s.dbs[0].clear();
        copies.publish(&s);
        assert_eq!(copies.read(1, 0, b"k", || 1), None);
        // Another database's key of the same name is not it.
        s.dbs[1].set(b"k", Value::string(b"other"), 0, 0);
        copies.publish(&s);
        assert_eq!(copies.read(1, 1, b"k", || 1), None);
        assert!(copies.may_hold(b"k"));
        assert!(copies.unreplicate(&mut s, 0, b"k", &watched));
        assert!(!copies.may_hold(b"k"));
        assert!(!copies.unreplicate(&mut s, 0, b"k", &watched));
        assert_eq!(watched.load(Relaxed), 0);
        assert!(!copies.active());
    }

    #[test]
    fn hits_are_folded_into_the_owner_and_listed() {
        let copies = HotCopies::new(2);
        let watched = AtomicU64::new(0);
        let mut s = shard();
        s.dbs[0].set(b"k", Value::string(b"v"), 0, 0);
        copies
            .replicate(&mut s, 0, b"k", true, 1, &watched)
            .unwrap();
        copies.publish(&s);
        for _ in 0..3 {
            copies.read(1, 0, b"k", || 1);
        }
        copies.read(0, 0, b"k", || 1);
        let mut touched = Vec::new();
        copies.fold_hits(&mut s, |_, db, key| touched.push((db, key.to_vec())));
        assert_eq!(touched, vec![(0, b"k".to_vec())]);
        let listed = copies.list();
        assert_eq!(
            (listed[0].hits, listed[0].refreshes, listed[0].auto),
            (4, 1, true)
        );
        // Read more than written and hot: it stays; written more than read: AUTO drops it.
        assert!(copies.auto_verdicts(0, 1.0, 0, |_, _| 10.0).is_empty());
        for _ in 0..3 {
            s.dbs[0].set(b"k", Value::string(b"w"), 0, 0);
            copies.publish(&s);
        }
        copies.read(1, 0, b"k", || 1);
        copies.fold_hits(&mut s, |_, _, _| {});
        assert_eq!(copies.auto_verdicts(0, 1.0, 0, |_, _| 10.0).len(), 1);
        assert!(copies.is_benched(0, b"k"));
        assert!(!copies.is_benched(0, b"k2"));
        // Cooled: dropped (not benched).
        assert_eq!(
            copies
                .auto_verdicts(0, 100.0, AUTO_BENCH_MS, |_, _| 10.0)
                .len(),
            1
        );
        assert!(!copies.is_benched(0, b"k"));
    }
}
