//! maxmemory: before a write runs on a shard whose process is over the limit, that shard
//! evicts keys by the configured policy, a bounded number per command (as Redis's
//! maxmemory-eviction-tenacity bounds its work); a command that would grow memory is refused
//! with OOM when nothing more can go. Evictions are logged as deletions.
//!
//! Policies: Redis's (sampling `maxmemory-samples` keys: least recently used, least frequently
//! used with Redis's logarithmic counter, nearest expiry, random; all keys or only those with a
//! TTL), `noeviction`, and `allkeys-horizon`: S3-FIFO over each database's keys.
//!
//! This module decides when to evict and logs what went; which key goes is chosen in
//! `warpengine_storage::eviction` (sampling, the pool, HORIZON).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use warpengine_physics::lfu::{lfu_log_incr, Rng};
use warpengine_storage::{Entry, Key, Shard};

use crate::command_table::Flags;
use crate::server_state::Server;

pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction = 0,
    AllkeysLru,
    VolatileLru,
    AllkeysLfu,
    VolatileLfu,
    AllkeysRandom,
    VolatileRandom,
    VolatileTtl,
    AllkeysHorizon,
}

impl Policy {
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-lru" => Policy::AllkeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-lfu" => Policy::AllkeysLfu,
            "volatile-lfu" => Policy::VolatileLfu,
            "allkeys-random" => Policy::AllkeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            "allkeys-horizon" => Policy::AllkeysHorizon,
            _ => Policy::NoEviction,
        }
    }

    fn from_u8(v: u8) -> Policy {
        [
            Policy::NoEviction,
            Policy::AllkeysLru,
            Policy::VolatileLru,
            Policy::AllkeysLfu,
            Policy::VolatileLfu,
            Policy::AllkeysRandom,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
            Policy::AllkeysHorizon,
        ][v as usize]
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// Whether the policy reads each key's own access data (Redis's
    /// MAXMEMORY_FLAG_NO_SHARED_INTEGERS: the LRU and LFU policies; HORIZON's bits too).
    pub fn tracks_access(self) -> bool {
        matches!(
            self,
            Policy::AllkeysLru
                | Policy::VolatileLru
                | Policy::AllkeysLfu
                | Policy::VolatileLfu
                | Policy::AllkeysHorizon
        )
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// The eviction settings read on the request path.
pub struct Limits {
    pub maxmemory: AtomicU64,
    policy: AtomicU8,
    pub samples: AtomicU64,
    pub lfu_log_factor: AtomicU64,
    pub lfu_decay_time: AtomicU64,
    pub tenacity: AtomicU64,
    /// `horizon-compress`: allkeys-horizon compresses the cold strings of its main queue.
    pub horizon_compress: AtomicBool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            maxmemory: AtomicU64::new(0),
            policy: AtomicU8::new(0),
            samples: AtomicU64::new(5),
            lfu_log_factor: AtomicU64::new(10),
            lfu_decay_time: AtomicU64::new(1),
            tenacity: AtomicU64::new(10),
            horizon_compress: AtomicBool::new(true),
        }
    }
}

impl Limits {
    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    pub fn refresh(&self, cfg: &crate::config_store::ConfigStore) {
        let r = Ordering::Relaxed;
        self.maxmemory
            .store(cfg.get("maxmemory").parse::<u64>().unwrap_or(0), r);
        self.policy
            .store(Policy::parse(cfg.get("maxmemory-policy")) as u8, r);
        self.samples
            .store(cfg.get_i64("maxmemory-samples").max(1) as u64, r);
        self.lfu_log_factor
            .store(cfg.get_i64("lfu-log-factor").max(0) as u64, r);
        self.lfu_decay_time
            .store(cfg.get_i64("lfu-decay-time").max(0) as u64, r);
        self.tenacity
            .store(cfg.get_i64("maxmemory-eviction-tenacity").max(0) as u64, r);
        self.horizon_compress
            .store(cfg.get_bool("horizon-compress"), r);
    }
}

/// The compressed tier runs only under a maxmemory at least this many times zstd's fixed cost
/// (7.4 MB with two workers). Below, the dictionaries and contexts take more of the budget than
/// compressing saves: on realistic values HORIZON missed more with the tier than without at a
/// maxmemory of 3.9 and 5.3 MB, fewer at 10 MB, and held 1.07x the keys at 14.6 MB
/// (BENCHMARKS.md, "zstd's own memory").
const COMPRESS_MIN_COST_SHARE: u64 = 20;

/// Whether `horizon-compress` is on and the memory budget is large enough for it to pay.
pub fn compress_pays(limits: &Limits, workers: usize) -> bool {
    let maxmemory = limits.maxmemory.load(Ordering::Relaxed);
    limits.horizon_compress.load(Ordering::Relaxed)
        && maxmemory
            >= COMPRESS_MIN_COST_SHARE
                * warpengine_storage::compress::expected_outside_bytes(workers)
}

/// Redis's LFU field in the 24 low bits of `last_access`: minutes (16 bits) then the
/// logarithmic counter (8 bits).
pub const LFU_INIT: u32 = 5;

pub fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

/// The counter after decay: one step less per `decay_time` minutes since the last access.
pub fn lfu_decayed(field: u32, now_min: u32, decay_time: u64) -> u32 {
    let counter = field & 0xff;
    let then = (field >> 8) & 0xffff;
    let elapsed = if now_min >= then {
        now_min - then
    } else {
        65535 - then + now_min
    };
    let periods = (elapsed as u64).checked_div(decay_time).unwrap_or(0);
    counter.saturating_sub(periods.min(255) as u32)
}

/// The LFU field after an access (decay, then a probabilistic increment).
pub fn lfu_touch(field: u32, now_min: u32, limits: &Limits, r: f64) -> u32 {
    let counter = lfu_decayed(
        field,
        now_min,
        limits.lfu_decay_time.load(Ordering::Relaxed),
    );
    let counter = lfu_log_incr(
        counter as u8,
        limits.lfu_log_factor.load(Ordering::Relaxed),
        r,
    );
    now_min << 8 | counter as u32
}

thread_local! {
    static RNG: std::cell::RefCell<Rng> = std::cell::RefCell::new(Rng::new(0x9e37_79b9));
}

pub fn random_f64() -> f64 {
    RNG.with(|r| r.borrow_mut().next_f64())
}

/// Whether memory is over the limit.
pub fn over_limit(server: &Server) -> bool {
    let max = server.limits.maxmemory.load(Ordering::Relaxed);
    max != 0 && server.memory_for_eviction() > max
}

/// A new maxmemory below the memory in use: every shard evicts at once, as Redis's CONFIG SET
/// does (its evicted-key events go out now, not at the next write).
pub fn evict_now(server: &Server) {
    if !over_limit(server) {
        return;
    }
    let now = crate::server_state::unix_ms();
    // What is over the limit now is freed once, shared by the shards in turn: the events and
    // invalidations of one shard's evictions, not yet sent, must not make the next free as much
    // again.
    let max = server.limits.maxmemory.load(Ordering::Relaxed);
    let mut to_free = server.memory_for_eviction().saturating_sub(max) as i64;
    for id in 0..server.threads() {
        if to_free <= 0 {
            break;
        }
        let mut shard = server.lock_shard(id);
        to_free -= evict_from(server, &mut shard, now, to_free);
        server.publish_spare(&shard);
        if server.wal.records() {
            crate::persist::log::flush_expired(server, &mut shard);
        }
    }
    crate::keyspace_events::publish_raised(server);
}

/// Evicts from `shard` what memory is over maxmemory by (see `evict_from`), within the
/// per-command budget. Returns false only when memory is over the limit and nothing could be
/// evicted (as Redis, a command that finds eviction still running but progressing is let
/// through).
pub fn make_room(server: &Server, shard: &mut Shard, now_ms: u64) -> bool {
    let max = server.limits.maxmemory.load(Ordering::Relaxed);
    if max == 0 || server.memory_for_eviction() <= max {
        return true;
    }
    if server.limits.policy() == Policy::NoEviction {
        return false;
    }
    // As Redis: the bytes to free are judged once, and each eviction counts what deleting the
    // key freed, not what memory reads after it. The invalidations and keyspace events an
    // eviction sends to clients grow memory meanwhile; judged by that, eviction fed on
    // itself (Redis's "client tracking don't cause eviction feedback loop"). The next command
    // judges again.
    let to_free = server.memory_for_eviction().saturating_sub(max) as i64;
    let freed = evict_from(server, shard, now_ms, to_free);
    freed > 0 || server.memory_for_eviction() <= max
}

/// Evicts from `shard` until `to_free` bytes were freed, memory is under maxmemory, or the
/// per-command budget is spent; returns the bytes freed (0: nothing could be evicted).
fn evict_from(server: &Server, shard: &mut Shard, now_ms: u64, to_free: i64) -> i64 {
    let limits = &server.limits;
    let max = limits.maxmemory.load(Ordering::Relaxed);
    let policy = limits.policy();
    // Each shard evicts from its own keys; a shard holding clearly fewer keys than the average
    // leaves the work to the others, so that one shard is not emptied while another (whose
    // table just grew, say) keeps its keys.
    let mine: usize = shard.dbs.iter().map(|d| d.len()).sum();
    let counts = &server.shard_keys;
    counts[shard.id].store(mine as u64, Ordering::Relaxed);
    if counts.len() > 1 {
        let total: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let average = total / counts.len() as u64;
        if (mine as u64) * 10 < average * 9 {
            // (Counted as progress: the others evict.)
            return 1;
        }
    }
    let mut freed = 0i64;
    let budget = 16 + 16 * limits.tenacity.load(Ordering::Relaxed) as usize;
    let samples = limits.samples.load(Ordering::Relaxed) as usize;
    let decay = limits.lfu_decay_time.load(Ordering::Relaxed);
    let now_min = minutes(now_ms);
    let compress = compress_pays(limits, server.threads());
    let dbs = shard.dbs.len();
    let mut misses_in_row = 0;
    let mut evicted = 0;
    for _ in 0..budget {
        let db = shard.evict_cursor % dbs;
        shard.evict_cursor = shard.evict_cursor.wrapping_add(1);
        let d = &mut shard.dbs[db];
        let volatile = policy.volatile_only();
        let victim: Option<(Key, Entry)> = match policy {
            Policy::NoEviction => None,
            Policy::AllkeysHorizon => d.evict_horizon(compress),
            Policy::AllkeysRandom | Policy::VolatileRandom => {
                d.evict_sampled(volatile, 1, |_, _| 0)
            }
            // The sampled policies keep Redis's eviction pool of the best candidates so far.
            Policy::AllkeysLru | Policy::VolatileLru => {
                // Oldest access first: the largest age scores lowest.
                let now = now_ms as u32;
                d.evict_pooled(volatile, samples, |e, _| {
                    u32::MAX as u64 - now.wrapping_sub(e.last_access) as u64
                })
            }
            Policy::AllkeysLfu | Policy::VolatileLfu => {
                d.evict_pooled(volatile, samples, |e, _| {
                    lfu_decayed(e.last_access, now_min, decay) as u64
                })
            }
            Policy::VolatileTtl => d.evict_pooled(true, samples, |_, expire_at| expire_at),
        };
        let Some((key, entry)) = victim else {
            misses_in_row += 1;
            if misses_in_row >= dbs {
                break;
            }
            continue;
        };
        misses_in_row = 0;
        evicted += 1;
        let spare_before = shard.spare_table_bytes() as i64;
        freed -= crate::memory_accounting::measure(|| drop(entry)).1;
        freed += shard.spare_table_bytes() as i64 - spare_before;
        shard.stats.evicted_keys += 1;
        warpengine_storage::notify::raise(
            warpengine_storage::notify::EVICTED,
            "evicted",
            db,
            key.as_bytes(),
        );
        if server.wal.records() {
            crate::persist::log::evicted(server, shard, db, key.as_bytes());
        }
        freed -= crate::memory_accounting::measure(|| drop(key)).1;
        server.publish_spare(shard);
        if freed >= to_free || server.memory_for_eviction() <= max {
            break;
        }
    }
    let left: usize = shard.dbs.iter().map(|d| d.len()).sum();
    counts[shard.id].store(left as u64, Ordering::Relaxed);
    if evicted > 0 {
        freed.max(1)
    } else {
        0
    }
}

/// Turns HORIZON tracking on or off in every shard after a policy change.
pub fn apply_policy(server: &Server) {
    let on = server.limits.policy() == Policy::AllkeysHorizon;
    for mut shard in server.lock_all() {
        for db in &mut shard.dbs {
            db.set_horizon(on);
        }
    }
}

/// Before a command runs in `ctx` with maxmemory set: makes room on its shards, reads
/// included, as Redis's performEvictions runs before every command (memory also grows without
/// writes: clients' unread replies, say); the OOM error if a write would grow memory that
/// cannot be freed.
pub fn before_command(
    ctx: &mut crate::keyctx::KeyCtx,
    spec_index: usize,
) -> Option<crate::protocol::Reply> {
    let flags = crate::command_table::TABLE[spec_index].flags;
    let denyoom = flags.contains(Flags::DENYOOM);
    let server = ctx.server;
    // A replica neither evicts nor refuses its primary's writes, as Redis with
    // `replica-ignore-maxmemory yes` (its default): the primary's evictions arrive as DELs.
    if server.replication.is_replica() {
        return None;
    }
    let now = ctx.now_ms;
    let mut room = true;
    ctx.each_shard(|s| room &= make_room(server, s, now));
    (!room && denyoom && flags.contains(Flags::WRITE)).then(|| crate::protocol::Reply::err(OOM))
}
