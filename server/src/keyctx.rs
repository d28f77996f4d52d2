//! The context a keyed command runs in: the shard (or, for a command whose keys span shards,
//! the locked set of shards) that owns its keys, the selected database and the time.

use warpengine_storage::{notify, Db, Entry, Shard, StrValue, Value};

use crate::protocol::Reply;
use crate::server_state::Server;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

pub enum Shards<'a> {
    One(&'a mut Shard),
    /// Several locked shards, for a command whose keys live on more than one.
    Many(Vec<&'a mut Shard>),
}

/// Who a batch of keyed commands runs for: what the step needs of the connection.
#[derive(Clone, Copy, Default)]
pub struct Caller {
    /// CLIENT NO-TOUCH.
    pub no_touch: bool,
    /// The client id.
    pub client: u64,
    /// A replica's link to its primary: nothing is expired for it (see [`KeyCtx::expiry_now`]).
    pub primary: bool,
}

pub struct KeyCtx<'a> {
    shards: Shards<'a>,
    pub server: &'a Server,
    pub db: usize,
    pub now_ms: u64,
    /// The time keys are judged expired at: `now_ms`, or 0 (nothing expires) for the commands of
    /// a replica's primary, as Redis's master client sees every key it sent: the primary's own
    /// DELs say when a key goes, and a write of it (INCR) keeps the key's TTL.
    expiry_now: u64,
    /// What a new or accessed entry records: the time in milliseconds (wrapping; LRU and
    /// idle times), or under an LFU policy Redis's LFU field.
    pub clock: u32,
    /// CLIENT NO-TOUCH: reads do not refresh the access time.
    pub no_touch: bool,
    /// The client whose command runs (0: none, as for expiry): NOLOOP tracking skips it.
    pub client: u64,
    /// What an access records for the eviction policy.
    access: Access,
    /// In a transaction's step: the log records its commands make, kept (shard, payload) to be
    /// logged as one group (`persist::log::transaction_step`).
    pub captured: Option<Vec<(usize, Vec<u8>)>>,
    /// Called by a Lua script (`redis.call`): XREAD and XREADGROUP refuse BLOCK then.
    pub from_script: bool,
    /// A blocked command's try after a wake-up (not its first): XREADGROUP then answers that
    /// its stream or group is gone, where its first try would have refused to block.
    pub blocked_retry: bool,
    /// Set by a write that found nothing to change although its reply cannot say so (SETBIT of
    /// a bit already so): as Redis, it is then no change for the dirty counter, WATCH,
    /// tracking and the log. Read and cleared after each command (`dispatch::step`).
    pub unchanged: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The access time (seconds), for LRU and OBJECT IDLETIME.
    Time,
    /// Redis's LFU field (minutes and a logarithmic counter).
    Frequency,
    /// The access time, and a hit for HORIZON's queues.
    Horizon,
}

impl<'a> KeyCtx<'a> {
    pub fn new(shards: Shards<'a>, server: &'a Server, db: usize, now_ms: u64) -> KeyCtx<'a> {
        let policy = server.limits.policy();
        let (access, clock) = if policy.is_lfu() {
            // New keys start with Redis's initial counter, stamped now.
            (
                Access::Frequency,
                crate::eviction::minutes(now_ms) << 8 | crate::eviction::LFU_INIT,
            )
        } else if policy == crate::eviction::Policy::AllkeysHorizon {
            (Access::Horizon, now_ms as u32)
        } else {
            (Access::Time, now_ms as u32)
        };
        KeyCtx {
            captured: None,
            from_script: false,
            blocked_retry: false,
            unchanged: false,
            shards,
            server,
            db,
            now_ms,
            expiry_now: now_ms,
            clock,
            no_touch: false,
            client: 0,
            access,
        }
    }

    /// Runs the commands of `caller`.
    #[inline]
    pub fn set_caller(&mut self, caller: Caller) {
        self.no_touch = caller.no_touch;
        self.client = caller.client;
        self.expiry_now = if caller.primary { 0 } else { self.now_ms };
    }

    /// Records an access to `e` for the eviction policy.
    fn touch(access: Access, server: &Server, e: &mut Entry, clock: u32, now_ms: u64) {
        match access {
            Access::Time => e.last_access = clock,
            Access::Horizon => {
                e.last_access = clock;
                e.horizon_hit();
            }
            Access::Frequency => {
                e.last_access = crate::eviction::lfu_touch(
                    e.last_access,
                    crate::eviction::minutes(now_ms),
                    &server.limits,
                    crate::eviction::random_f64(),
                )
            }
        }
    }

    /// Database `db` of the locked shard that owns `key`, to read from (prefetching).
    pub fn db_of(&self, db: usize, key: &[u8]) -> Option<&Db> {
        match &self.shards {
            Shards::One(s) => s.dbs.get(db),
            Shards::Many(v) => {
                let id = self.server.route(key);
                v.iter().find(|s| s.id == id)?.dbs.get(db)
            }
        }
    }

    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        match &mut self.shards {
            Shards::One(s) => s,
            Shards::Many(v) => {
                let id = self.server.route(key);
                v.iter_mut()
                    .find(|s| s.id == id)
                    .expect("every key's shard is locked for a cross-shard command")
            }
        }
    }

    /// The shard's id when this context holds exactly one (a batch run on its owner).
    pub fn single_shard(&self) -> Option<usize> {
        match &self.shards {
            Shards::One(s) => Some(s.id),
            Shards::Many(_) => None,
        }
    }

    /// Visits every shard this context holds.
    pub fn each_shard(&mut self, mut f: impl FnMut(&mut Shard)) {
        match &mut self.shards {
            Shards::One(s) => f(s),
            Shards::Many(v) => v.iter_mut().for_each(|s| f(s)),
        }
    }

    pub fn db(&mut self, key: &[u8]) -> &mut Db {
        let db = self.db;
        &mut self.shard(key).dbs[db]
    }

    /// The database with index `index` on the shard that owns `key` (MOVE, COPY ... DB).
    pub fn db_at(&mut self, key: &[u8], index: usize) -> &mut Db {
        &mut self.shard(key).dbs[index]
    }

    pub fn databases(&self) -> usize {
        match &self.shards {
            Shards::One(s) => s.dbs.len(),
            Shards::Many(v) => v[0].dbs.len(),
        }
    }

    /// Raises keyspace event `event` of `class` (`warpengine_storage::notify`) on `key` in the
    /// selected database; published after the command.
    #[inline]
    pub fn notify(&self, class: u32, event: &'static str, key: &[u8]) {
        notify::raise(class, event, self.db, key);
    }

    /// Looks a key up for reading: counts a hit or miss and refreshes the access time.
    pub fn read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let (now, clock, touch, db) = (self.now_ms, self.clock, !self.no_touch, self.db);
        let (access, server, expiry_now) = (self.access, self.server, self.expiry_now);
        let shard = self.shard(key);
        match shard.dbs[db].get_mut(key, expiry_now) {
            Some(e) => {
                shard.stats.keyspace_hits += 1;
                if touch {
                    Self::touch(access, server, e, clock, now);
                }
                Some(e)
            }
            None => {
                shard.stats.keyspace_misses += 1;
                notify::raise(notify::KEY_MISS, "keymiss", db, key);
                None
            }
        }
    }

    /// Looks a key up for writing (no hit/miss accounting, as in Redis's lookupKeyWrite).
    pub fn write(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let (now, clock, db) = (self.now_ms, self.clock, self.db);
        let (access, server, expiry_now) = (self.access, self.server, self.expiry_now);
        let e = self.shard(key).dbs[db].get_mut(key, expiry_now)?;
        Self::touch(access, server, e, clock, now);
        Some(e)
    }

    pub fn exists(&mut self, key: &[u8]) -> bool {
        let now = self.expiry_now;
        self.db(key).contains(key, now)
    }

    /// Reads a string value: Ok(None) when absent, Err(WRONGTYPE) when another type.
    #[inline]
    pub fn read_str(&mut self, key: &[u8]) -> Result<Option<&StrValue>, Reply> {
        match self.read(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            Some(_) => Err(Reply::err(WRONGTYPE)),
        }
    }

    /// Stores a copy of `value` (never a slice of the request buffer, which would keep the
    /// whole buffer alive as long as this key lives).
    pub fn set_string(&mut self, key: &[u8], value: &[u8], expire_at: u64) {
        self.store(key, Value::string(value), expire_at);
    }

    /// Stores `value` under `key` whatever was there (expired first if it had expired).
    #[inline]
    pub fn store(&mut self, key: &[u8], value: Value, expire_at: u64) {
        let (clock, now) = (self.clock, self.expiry_now);
        self.db(key).set_over(key, value, expire_at, clock, now);
    }

    /// Removes a live key. On a replica an expired key that reads as absent still goes (a DEL
    /// of a writable replica's client, as Redis's dbDelete removes it).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let now = self.expiry_now;
        let db = self.db(key);
        if db.contains(key, now) {
            db.remove(key)
        } else {
            if warpengine_storage::db::keeps_expired_keys() {
                db.remove(key);
            }
            None
        }
    }
}
