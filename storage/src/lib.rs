//! One shard's data: the keyspace of each logical database, values, expiry.
//! No networking and no threads: a shard is owned by exactly one worker at a time.

mod chunked;
pub mod compress;
pub mod db;
pub mod digest;
pub mod eviction;
pub mod glob;
pub mod hash;
pub mod hyperloglog;
pub mod key;
mod keytable;
pub mod list;
pub mod longdouble;
pub mod notify;
mod packed;
pub mod set;
pub mod slot;
pub mod slot_index;
pub mod stream;
pub mod value;
pub mod watch;
pub mod zset;

pub use db::{Db, Entry, KeyCopy, ScanStep};
pub use glob::glob_match;
pub use hash::HashValue;
pub use key::Key;
pub use list::ListValue;
pub use set::SetValue;
pub use stream::StreamValue;
pub use value::{StrValue, Value};
pub use zset::ZSetValue;

/// A deterministic pseudo-random step for model-based tests (a 64-bit LCG; callers use the
/// high bits).
#[cfg(test)]
pub(crate) fn next_test_random(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed
}

/// Redis's default number of logical databases (`databases 16`).
pub const DEFAULT_DATABASES: usize = 16;

/// The part of the keyspace one worker owns: every logical database's keys whose slot maps here.
pub struct Shard {
    pub id: usize,
    pub dbs: Vec<Db>,
    pub stats: ShardStats,
    /// The database the next eviction looks at (round robin).
    pub evict_cursor: usize,
}

/// Counters a shard keeps about itself; summed across shards for INFO.
#[derive(Default, Debug, Clone)]
pub struct ShardStats {
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Requests executed here that came from a connection on this worker.
    pub local_requests: u64,
    /// Requests executed here that arrived from another worker's connection.
    pub remote_requests: u64,
    /// Batches received from other workers.
    pub remote_batches: u64,
    /// TEMPORAL INCR calls that changed a key.
    pub temporal_incrs: u64,
    /// TEMPORAL members dropped by the `temporal-max-members` cap.
    pub temporal_members_trimmed: u64,
}

impl Shard {
    /// The untouched room in every database's key table (see [`Db::spare_table_bytes`]).
    pub fn spare_table_bytes(&self) -> usize {
        self.dbs.iter().map(Db::spare_table_bytes).sum()
    }

    pub fn new(id: usize, databases: usize) -> Shard {
        Shard {
            id,
            dbs: (0..databases).map(Db::numbered).collect(),
            stats: ShardStats::default(),
            evict_cursor: 0,
        }
    }

    /// One round of active expiry over every database, bounded by `budget` sampled keys per database.
    pub fn active_expire(&mut self, now_ms: u64, budget: usize) -> u64 {
        let mut removed = 0;
        for db in &mut self.dbs {
            removed += db.active_expire(now_ms, budget);
        }
        self.stats.expired_keys += removed;
        removed
    }
}
