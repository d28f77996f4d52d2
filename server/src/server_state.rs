//! State shared by every worker: configuration, the shards, the fabric between workers,
//! the client registry and server-wide counters.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use bytes::Bytes;

use warpengine_storage::Shard;

use crate::blocked_clients::BlockRegistry;
use crate::clients::Registry;
use crate::command_table::TABLE;
use crate::config_store::ConfigStore;
use crate::fabric::Fabric;
use crate::persist::Wal;
use crate::protocol::Limits;
use crate::slot::SlotTable;

/// Redis version whose behaviour we implement and check against.
pub const REDIS_VERSION: &str = "7.0.15";

pub struct Server {
    pub config: RwLock<ConfigStore>,
    /// Each shard is owned by one worker; the mutex is uncontended on the request path and lets
    /// a multi-shard command lock several shards (in ascending order) for its atomic step.
    pub shards: Vec<Mutex<Shard>>,
    pub slots: SlotTable,
    pub fabric: Fabric,
    pub clients: Registry,
    pub blocking: BlockRegistry,
    pub stats: ServerStats,
    /// Per-worker counters, written only by their own worker.
    pub worker_stats: Vec<WorkerStats>,
    pub hot: HotConfig,
    pub started: Instant,
    pub started_unix: u64,
    pub run_id: String,
    /// The replication stream's id, offset and backlog, and the replicas of this primary (see
    /// `crate::replication`).
    pub replication: Arc<crate::replication::Replication>,
    pub shutdown: tokio::sync::Notify,
    pub shutting_down: AtomicBool,
    /// The workers' listening sockets: closed to new clients once the server stops.
    pub listening: Mutex<Vec<std::os::fd::RawFd>>,
    /// Listening sockets made by CONFIG SET port/bind/tls-port, on their way to the workers.
    pub rebinding: crate::worker::Rebinding,
    /// MIGRATE's connections to its targets, kept for the next MIGRATE.
    pub migrate_sockets: crate::migrate_sockets::MigrateSockets,
    pub lastsave: AtomicU64,
    pub wal: Wal,
    /// A load of the whole dataset running (at start, or a replica's full sync): clients get
    /// -LOADING meanwhile (see `crate::persist::loading`).
    pub loading: crate::persist::loading::Loading,
    pub limits: crate::eviction::Limits,
    pub temporal: crate::temporal_settings::TemporalSettings,
    /// Keys per shard as of its last eviction, so shards can share eviction fairly.
    pub shard_keys: Vec<AtomicU64>,
    pub quantum: crate::quantum_state::Quantum,
    pub wormhole: crate::wormhole_state::Wormhole,
    /// GRAVITY's hot-key sketches, one per worker.
    pub gravity: crate::gravity_state::Gravity,
    /// GRAVITY REPLICATE's copies of hot keys, one table per worker.
    pub hot_copies: crate::hot_copies::HotCopies,
    /// ENTROPY's per-shard request rates.
    pub entropy: crate::entropy_state::Entropy,
    /// The Lua scripts EVAL and SCRIPT LOAD have seen.
    pub scripts: crate::scripting::ScriptCache,
    /// The function libraries FUNCTION LOAD has loaded.
    pub functions: crate::scripting::functions::Functions,
    /// Per shard, the untouched room in its key tables, as of its last command (see
    /// [`Server::used_memory`]).
    pub table_spare: Vec<AtomicU64>,
    /// Keys watched right now, by a client (WATCH) or by GRAVITY's copies (a replicated key):
    /// while none are, a write command does not look for watchers of its keys.
    pub watched_keys: AtomicU64,
    pub pubsub: crate::pubsub::PubSub,
    pub tracking: crate::tracking::Tracking,
    pub monitors: crate::monitor::Monitors,
    pub pause: crate::client_pause::Pause,
    /// DEBUG SLEEP's hold on the whole server.
    pub freeze: Freeze,
    /// A shutdown waiting for lagging replicas (`crate::shutdown`).
    pub shutdown_wait: crate::shutdown::Pending,
    /// The slow log and the latency monitor.
    pub timing: crate::command_timing::CommandTiming,
    /// How many changes the last save covered (see [`Server::changes_since_save`]).
    pub changes_saved: AtomicU64,
    /// INFO's instantaneous rates.
    pub sampler: crate::stats_sampler::Sampler,
    /// The TLS configuration in force (`tls-port`).
    pub tls: crate::tls::Tls,
    /// ACL users (see `crate::acl`).
    pub acl: crate::acl::Users,
    /// Redis Cluster mode (`cluster-enabled`): this node's id and slot table.
    pub cluster: crate::cluster::Cluster,
}

/// Configuration read on every request, mirrored out of the config store so that the hot path
/// takes no lock. Updated by CONFIG SET.
pub struct HotConfig {
    pub proto_max_bulk_len: AtomicU64,
    pub query_buffer_limit: AtomicU64,
    pub maxclients: AtomicU64,
    /// `maxmemory-clients` in bytes (a percentage resolved against maxmemory); 0 when off.
    pub maxmemory_clients: AtomicU64,
    pub auth_required: AtomicBool,
    pub protected_mode: AtomicBool,
    pub debug_enabled: AtomicBool,
    pub active_expire: AtomicBool,
    /// DEBUG PAUSE-CRON: the workers' periodic tick (active expiry, idle timeouts, samples)
    /// does nothing while set, as Redis's serverCron.
    pub cron_paused: AtomicBool,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call commands flagged `noscript`.
    pub disable_deny_scripts: AtomicBool,
    pub timeout_secs: AtomicU64,
    pub hz: AtomicU64,
    pub fabric_inline_when_idle: AtomicBool,
    pub tracking_max_keys: AtomicU64,
    /// The compact encodings' limits (`hash-max-listpack-entries`, ...), read by every write
    /// of those types.
    pub hash_max_listpack_entries: AtomicU64,
    pub hash_max_listpack_value: AtomicU64,
    pub zset_max_listpack_entries: AtomicU64,
    pub zset_max_listpack_value: AtomicU64,
    pub set_max_intset_entries: AtomicU64,
    pub tcp_keepalive: AtomicU64,
    /// `hll-sparse-max-bytes`: past it a sparse HyperLogLog becomes dense.
    pub hll_sparse_max_bytes: AtomicU64,
    /// DEBUG REPLYBUFFER PEAK-RESET-TIME: how often (ms) a connection's reply peak starts
    /// over, -1 never (Redis's `reply_buffer_peak_reset_time`, 5 s by default).
    pub reply_peak_reset_ms: AtomicI64,
    /// DEBUG REPLYBUFFER RESIZING: whether the cron resizes reply buffers to their peak.
    pub reply_resizing: AtomicBool,
}

/// Redis's REPLY_BUFFER_DEFAULT_PEAK_RESET_TIME, in ms.
pub const REPLY_PEAK_RESET_MS: i64 = 5000;

impl HotConfig {
    fn from(cfg: &ConfigStore) -> HotConfig {
        let h = HotConfig {
            proto_max_bulk_len: AtomicU64::new(0),
            query_buffer_limit: AtomicU64::new(0),
            maxclients: AtomicU64::new(0),
            maxmemory_clients: AtomicU64::new(0),
            auth_required: AtomicBool::new(false),
            protected_mode: AtomicBool::new(true),
            debug_enabled: AtomicBool::new(false),
            active_expire: AtomicBool::new(true),
            cron_paused: AtomicBool::new(false),
            disable_deny_scripts: AtomicBool::new(false),
            timeout_secs: AtomicU64::new(0),
            hz: AtomicU64::new(10),
            fabric_inline_when_idle: AtomicBool::new(true),
            tracking_max_keys: AtomicU64::new(0),
            hash_max_listpack_entries: AtomicU64::new(0),
            hash_max_listpack_value: AtomicU64::new(0),
            zset_max_listpack_entries: AtomicU64::new(0),
            zset_max_listpack_value: AtomicU64::new(0),
            set_max_intset_entries: AtomicU64::new(0),
            tcp_keepalive: AtomicU64::new(0),
            hll_sparse_max_bytes: AtomicU64::new(0),
            reply_peak_reset_ms: AtomicI64::new(REPLY_PEAK_RESET_MS),
            reply_resizing: AtomicBool::new(true),
        };
        h.refresh(cfg);
        h
    }

    pub fn refresh(&self, cfg: &ConfigStore) {
        let r = Ordering::Relaxed;
        self.proto_max_bulk_len
            .store(cfg.get_i64("proto-max-bulk-len") as u64, r);
        self.query_buffer_limit
            .store(cfg.get_i64("client-query-buffer-limit") as u64, r);
        self.maxclients.store(cfg.get_i64("maxclients") as u64, r);
        self.maxmemory_clients.store(
            client_eviction_limit(cfg.get("maxmemory-clients"), cfg.get_i64("maxmemory")),
            r,
        );
        self.protected_mode.store(cfg.get_bool("protected-mode"), r);
        self.debug_enabled
            .store(cfg.get("enable-debug-command") != "no", r);
        self.timeout_secs.store(cfg.get_i64("timeout") as u64, r);
        self.hz.store(cfg.get_i64("hz").max(1) as u64, r);
        self.fabric_inline_when_idle
            .store(cfg.get_bool("fabric-inline-when-idle"), r);
        self.tracking_max_keys
            .store(cfg.get_i64("tracking-table-max-keys").max(0) as u64, r);
        let count = |name| cfg.get_i64(name).max(0) as u64;
        self.hash_max_listpack_entries
            .store(count("hash-max-listpack-entries"), r);
        self.hash_max_listpack_value
            .store(count("hash-max-listpack-value"), r);
        self.zset_max_listpack_entries
            .store(count("zset-max-listpack-entries"), r);
        self.zset_max_listpack_value
            .store(count("zset-max-listpack-value"), r);
        self.set_max_intset_entries
            .store(count("set-max-intset-entries"), r);
        self.tcp_keepalive.store(count("tcp-keepalive"), r);
        self.hll_sparse_max_bytes
            .store(count("hll-sparse-max-bytes"), r);
        warpengine_storage::list::set_listpack_size(cfg.get_i64("list-max-listpack-size"));
        warpengine_storage::stream::set_node_limits(
            cfg.get_i64("stream-node-max-entries"),
            cfg.get_i64("stream-node-max-bytes"),
        );
    }

    pub fn limits(&self) -> Limits {
        Limits {
            proto_max_bulk_len: self.proto_max_bulk_len.load(Ordering::Relaxed),
            ..Limits::default()
        }
    }
}

/// The bytes `maxmemory-clients` allows all clients (0: no limit), as Redis 7.0 reckons it: a
/// percentage is of maxmemory (none without one), and a limit is never under 128 KB, so that a
/// bad setting cannot cut every client off.
pub fn client_eviction_limit(value: &str, maxmemory: i64) -> u64 {
    let bytes = match value.strip_suffix('%') {
        Some(percent) => {
            let percent: f64 = percent.parse().unwrap_or(0.0);
            (maxmemory.max(0) as f64 * percent / 100.0) as u64
        }
        None => crate::config_store::parse_memory(value).map_or(0, |v| v.max(0) as u64),
    };
    if bytes == 0 {
        0
    } else {
        bytes.max(128 * 1024)
    }
}

#[derive(Default)]
pub struct ServerStats {
    pub total_connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Error replies by their first word (`ERR`, `WRONGTYPE`), for INFO errorstats. Bytes,
    /// not text: a script's `error_reply` can start with any bytes, and INFO shows them as
    /// they came (as Redis does).
    pub errors: Mutex<std::collections::BTreeMap<Vec<u8>, u64>>,
    /// Scripts and functions started again with every shard locked (INFO stats'
    /// `script_reruns`; see `dispatch::script`).
    pub script_reruns: AtomicU64,
    /// Errors a replica's primary link got for commands of the stream (INFO stats'
    /// `unexpected_error_replies`, as Redis counts them).
    pub unexpected_error_replies: AtomicU64,
}

/// How many kinds of error INFO errorstats tracks, as Redis (past it, new kinds are not
/// counted).
const ERROR_KINDS: usize = 128;

impl ServerStats {
    /// Counts an error reply under its first word.
    #[cold]
    pub fn count_error(&self, reply: &crate::protocol::Reply) {
        let text = match reply {
            crate::protocol::Reply::Error(s) => s.as_bytes(),
            crate::protocol::Reply::ErrorBytes(b) | crate::protocol::Reply::CountedError(b) => b,
            _ => return,
        };
        let word = text.split(|&c| c == b' ').next().unwrap_or_default();
        let mut errors = self.errors.lock().expect("errorstats lock");
        if let Some(n) = errors.get_mut(word) {
            *n += 1;
        } else if errors.len() < ERROR_KINDS {
            errors.insert(word.to_vec(), 1);
        }
    }
}

/// One worker's counters. Only that worker writes them (plain load+store, no locked
/// read-modify-write); INFO reads them from anywhere.
pub struct WorkerStats {
    pub commands: Vec<CommandCounter>,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub error_replies: AtomicU64,
    pub remote_batches_sent: AtomicU64,
    /// Batches for a parked worker's shard run by the sender under that shard's lock.
    pub remote_batches_inline: AtomicU64,
    pub remote_commands_sent: AtomicU64,
    pub local_commands: AtomicU64,
    pub cross_shard_commands: AtomicU64,
    /// Write commands that succeeded (INFO's rdb_changes_since_last_save counts them from the
    /// last save: see `Server::changes_since_save`).
    pub changes: AtomicU64,
    /// Reads from and writes to client sockets.
    pub socket_reads: AtomicU64,
    pub socket_writes: AtomicU64,
    /// Reply buffers the cron shrank to their recent peak or doubled because replies filled
    /// them (INFO's reply_buffer_shrinks and reply_buffer_expands).
    pub reply_buffer_shrinks: AtomicU64,
    pub reply_buffer_expands: AtomicU64,
    /// Time spent in active expiry cycles, in microseconds.
    pub expire_cycle_us: AtomicU64,
    /// GETs answered from this worker's copies of hot keys (keyspace hits the shards do not
    /// see: `hot_copies`).
    pub copy_hits: AtomicU64,
}

#[derive(Default)]
pub struct CommandCounter {
    pub calls: AtomicU64,
    /// Time spent running it, in nanoseconds (INFO commandstats shows microseconds).
    pub nsec: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
    /// How long its runs took (see `command_timing::bucket`).
    pub latency: [AtomicU64; crate::command_timing::LATENCY_BUCKETS],
}

thread_local! {
    /// The worker this thread is (usize::MAX for other threads): the per-worker counters it
    /// bumps are that worker's, so that every counter has one writer.
    static CURRENT_WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The whole server asleep (DEBUG SLEEP), as Redis's one thread sleeps: every worker stops
/// at its connections' next read until the sleep ends, so no client gets an answer meanwhile
/// (clients' tests use it for a server that does not answer: redis-rs's connection timeout,
/// Redis's MIGRATE target).
#[derive(Default)]
pub struct Freeze {
    on: AtomicBool,
    held: Mutex<()>,
}

impl Freeze {
    /// Freezes the server until the guard is dropped.
    pub fn hold(&self) -> FreezeGuard<'_> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        self.on.store(true, Ordering::Release);
        FreezeGuard {
            freeze: self,
            _held: held,
        }
    }

    /// Waits out a freeze (one relaxed load when there is none), holding the worker's
    /// thread as the freeze holds the server's: called where a connection holds no lock.
    #[inline]
    pub fn wait(&self) {
        if self.on.load(Ordering::Relaxed) {
            drop(self.held.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

pub struct FreezeGuard<'a> {
    freeze: &'a Freeze,
    _held: MutexGuard<'a, ()>,
}

impl Drop for FreezeGuard<'_> {
    fn drop(&mut self) {
        self.freeze.on.store(false, Ordering::Release);
    }
}

/// Called once by each worker thread as it starts.
pub fn set_current_worker(me: usize) {
    CURRENT_WORKER.with(|c| c.set(me));
}

/// The worker this thread is, usize::MAX outside the workers (start-up recovery, helpers).
#[inline(always)]
pub fn current_worker() -> usize {
    CURRENT_WORKER.with(|c| c.get())
}

/// Adds to a counter that only the calling worker writes.
pub fn bump(c: &AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl WorkerStats {
    fn new() -> WorkerStats {
        WorkerStats {
            commands: (0..TABLE.len())
                .map(|_| CommandCounter::default())
                .collect(),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            remote_batches_sent: AtomicU64::new(0),
            remote_batches_inline: AtomicU64::new(0),
            remote_commands_sent: AtomicU64::new(0),
            local_commands: AtomicU64::new(0),
            cross_shard_commands: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            socket_reads: AtomicU64::new(0),
            socket_writes: AtomicU64::new(0),
            reply_buffer_shrinks: AtomicU64::new(0),
            reply_buffer_expands: AtomicU64::new(0),
            expire_cycle_us: AtomicU64::new(0),
            copy_hits: AtomicU64::new(0),
        }
    }

    pub fn reset(&self) {
        let z = |c: &AtomicU64| c.store(0, Ordering::Relaxed);
        for c in &self.commands {
            z(&c.calls);
            z(&c.nsec);
            z(&c.failed);
            z(&c.rejected);
            c.latency.iter().for_each(z);
        }
        z(&self.net_input_bytes);
        z(&self.net_output_bytes);
        z(&self.error_replies);
        z(&self.remote_batches_sent);
        z(&self.remote_batches_inline);
        z(&self.remote_commands_sent);
        z(&self.local_commands);
        z(&self.cross_shard_commands);
        z(&self.copy_hits);
        z(&self.socket_reads);
        z(&self.socket_writes);
        z(&self.reply_buffer_shrinks);
        z(&self.reply_buffer_expands);
        z(&self.expire_cycle_us);
    }
}

/// The wall clock in milliseconds since the Unix epoch (read by every batch of commands: the
/// `timespec` is turned into milliseconds directly, where `SystemTime::duration_since` spent
/// ~35 instructions checking and normalizing it).
pub fn unix_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec.max(0) as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(n);
    let mut i = 0u64;
    while out.len() < n {
        let mut h = ahash::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(Instant::now().elapsed().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    out.truncate(n);
    out
}

impl Server {
    /// `requirepass` is the default user's password (Redis's `ACLUpdateDefaultUserPassword`):
    /// set, it replaces the user's passwords; empty, the user is nopass.
    pub fn apply_requirepass(&self, password: &str) {
        let rule = if password.is_empty() {
            Bytes::from_static(b"nopass")
        } else {
            Bytes::from(format!(">{password}"))
        };
        self.acl
            .set_user(b"default", &[Bytes::from_static(b"resetpass"), rule])
            .expect("requirepass rules are valid");
        self.sync_auth_required();
    }

    /// `acl-pubsub-default`: whether users made from now on (and `reset`) get every channel.
    pub fn apply_acl_pubsub_default(&self, value: &str) {
        self.acl
            .pubsub_default_all
            .store(value == "allchannels", Ordering::Relaxed);
    }

    /// Mirrors whether new connections must authenticate after the default user changed.
    pub fn sync_auth_required(&self) {
        self.hot
            .auth_required
            .store(self.acl.auth_required(), Ordering::Relaxed);
    }

    pub fn new(cfg: ConfigStore, threads: usize) -> Server {
        let databases = cfg.get_i64("databases").max(1) as usize;
        let limits = crate::eviction::Limits::default();
        limits.refresh(&cfg);
        let quantum = crate::quantum_state::Quantum::new(threads, &cfg);
        let wormhole = crate::wormhole_state::Wormhole::new(threads, &cfg);
        let gravity = crate::gravity_state::Gravity::new(threads, &cfg);
        let timing = crate::command_timing::CommandTiming::new(&cfg);
        let scripts = crate::scripting::ScriptCache::default();
        scripts
            .busy
            .set_threshold_ms(cfg.get_i64("busy-reply-threshold").max(0) as u64);
        let cluster = crate::cluster::Cluster::from_config(&cfg);
        // Cluster mode has database 0 only; CLUSTER COUNTKEYSINSLOT reads its slot index.
        let index_slots = cluster.enabled();
        let server = Server {
            cluster,
            hot: HotConfig::from(&cfg),
            temporal: crate::temporal_settings::TemporalSettings::from(&cfg),
            config: RwLock::new(cfg),
            shards: (0..threads)
                .map(|i| {
                    let mut shard = Shard::new(i, databases);
                    if index_slots {
                        shard.dbs[0].index_slots();
                    }
                    Mutex::new(shard)
                })
                .collect(),
            slots: SlotTable::new(threads),
            fabric: Fabric::new(threads),
            clients: Registry::default(),
            blocking: BlockRegistry::default(),
            stats: ServerStats::default(),
            worker_stats: (0..threads).map(|_| WorkerStats::new()).collect(),
            started: Instant::now(),
            started_unix: unix_ms() / 1000,
            run_id: random_hex(40),
            replication: Arc::new(crate::replication::Replication::new(random_hex(40))),
            shutdown: tokio::sync::Notify::new(),
            shutting_down: AtomicBool::new(false),
            listening: Mutex::new(Vec::new()),
            rebinding: crate::worker::Rebinding::new(threads),
            migrate_sockets: Default::default(),
            lastsave: AtomicU64::new(unix_ms() / 1000),
            wal: Wal::new(threads),
            loading: Default::default(),
            limits,
            shard_keys: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            quantum,
            wormhole,
            gravity,
            hot_copies: crate::hot_copies::HotCopies::new(threads),
            entropy: crate::entropy_state::Entropy::new(threads),
            scripts,
            functions: Default::default(),
            table_spare: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            watched_keys: AtomicU64::new(0),
            pubsub: crate::pubsub::PubSub::default(),
            tracking: crate::tracking::Tracking::default(),
            monitors: crate::monitor::Monitors::default(),
            pause: crate::client_pause::Pause::default(),
            freeze: Freeze::default(),
            shutdown_wait: Default::default(),
            timing,
            changes_saved: AtomicU64::new(0),
            sampler: Default::default(),
            tls: Default::default(),
            acl: crate::acl::Users::new(),
        };
        let requirepass = server
            .config
            .read()
            .expect("config")
            .get("requirepass")
            .to_string();
        server.apply_requirepass(&requirepass);
        server.apply_acl_pubsub_default(
            server
                .config
                .read()
                .expect("config")
                .get("acl-pubsub-default"),
        );
        server.pubsub.limits.refresh(
            server
                .config
                .read()
                .expect("config")
                .get("client-output-buffer-limit"),
        );
        crate::eviction::apply_policy(&server);
        server.wal.set_tap(server.replication.clone());
        server
            .replication
            .refresh(&server.config.read().expect("config"));
        server
    }

    /// `used_memory`: the bytes allocated, less the room key tables reserved when they grew and
    /// have not filled yet. That room is never touched before keys use it, so it is not resident;
    /// counting it made `used_memory` jump by half a table at each doubling (and maxmemory
    /// evict for memory the process does not hold). Plus what zstd holds for HORIZON's compressed
    /// tier in the C heap, which the counting allocator does not see.
    pub fn used_memory(&self) -> u64 {
        let spare: u64 = self
            .table_spare
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum();
        let zstd = warpengine_storage::compress::outside_bytes() as u64;
        (crate::memory_accounting::allocated() + zstd).saturating_sub(spare)
    }

    /// The memory `maxmemory` holds to: `used_memory` less the replicas' unsent stream, which
    /// Redis also leaves out (a slow replica must not make the primary evict its keys).
    pub fn memory_for_eviction(&self) -> u64 {
        self.used_memory()
            .saturating_sub(self.replication.outbox_bytes())
    }

    /// Records `shard`'s untouched table room (called with the shard locked, after it changed).
    pub fn publish_spare(&self, shard: &Shard) {
        self.table_spare[shard.id].store(shard.spare_table_bytes() as u64, Ordering::Relaxed);
    }

    /// Where what is queued for a client (Pub/Sub messages, invalidations) counts toward its
    /// memory: with `maxmemory-clients` on, the registry and the limit.
    pub fn client_memory(&self) -> Option<(&crate::clients::Registry, u64)> {
        match self.hot.maxmemory_clients.load(Ordering::Relaxed) {
            0 => None,
            limit => Some((&self.clients, limit)),
        }
    }

    /// The shard that stores `key`: its slot's, or its anchor's if WORMHOLE pinned it.
    #[inline]
    pub fn route(&self, key: &[u8]) -> usize {
        self.wormhole.route(&self.slots, key)
    }

    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    pub fn databases(&self) -> usize {
        self.config
            .read()
            .expect("config lock")
            .get_i64("databases")
            .max(1) as usize
    }

    /// Locks a shard; on a thread running a script, the shard the script holds and lends to
    /// the command it calls (see [`with_lent_shards`]).
    pub fn lock_shard(&self, id: usize) -> ShardGuard<'_> {
        if let Some(shard) = lent_shard(id) {
            return ShardGuard::Lent(shard);
        }
        ShardGuard::Locked(
            self.shards[id].lock().unwrap_or_else(|p| p.into_inner()),
            &self.hot_copies,
        )
    }

    /// The shard, if nobody holds it right now.
    pub fn try_lock_shard(&self, id: usize) -> Option<ShardGuard<'_>> {
        if let Some(shard) = lent_shard(id) {
            return Some(ShardGuard::Lent(shard));
        }
        match self.shards[id].try_lock() {
            Ok(g) => Some(ShardGuard::Locked(g, &self.hot_copies)),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                Some(ShardGuard::Locked(p.into_inner(), &self.hot_copies))
            }
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Locks every shard, in ascending order (the global lock order that prevents deadlock).
    pub fn lock_all(&self) -> Vec<ShardGuard<'_>> {
        (0..self.shards.len()).map(|i| self.lock_shard(i)).collect()
    }

    /// A new replication id (DEBUG CHANGE-REPL-ID).
    pub fn change_replid(&self) {
        let mut history = self.replication.history();
        let offset = history.offset();
        history.reset(random_hex(40), offset);
    }

    /// A reply not counted where replies are sent (a command inside EXEC, a blocked client's
    /// reply): when it is an error, the command's failure and the error in INFO's stats.
    pub fn note_failure(&self, worker: usize, index: usize, reply: &crate::protocol::Reply) {
        if reply.is_error() {
            let stats = &self.worker_stats[worker];
            bump(&stats.commands[index].failed, 1);
            if !matches!(reply, crate::protocol::Reply::CountedError(_)) {
                bump(&stats.error_replies, 1);
                self.stats.count_error(reply);
            }
        }
    }

    /// Counts a change on the calling worker (a write command that succeeded).
    #[inline(always)]
    pub fn note_change(&self, by: u64) {
        if let Some(stats) = self.worker_stats.get(current_worker()) {
            bump(&stats.changes, by);
        }
    }

    /// The totals INFO's instantaneous rates follow: commands, bytes read, bytes written.
    pub fn rate_totals(&self) -> crate::stats_sampler::Totals {
        let sum = |f: fn(&WorkerStats) -> u64| self.worker_stats.iter().map(f).sum();
        [
            sum(|w| {
                w.commands
                    .iter()
                    .map(|c| c.calls.load(Ordering::Relaxed))
                    .sum()
            }),
            sum(|w| w.net_input_bytes.load(Ordering::Relaxed)),
            sum(|w| w.net_output_bytes.load(Ordering::Relaxed)),
        ]
    }

    /// Changes since start.
    pub fn changes_total(&self) -> u64 {
        self.worker_stats
            .iter()
            .map(|w| w.changes.load(Ordering::Relaxed))
            .sum()
    }

    /// GETs answered from copies of hot keys, on every worker (keyspace hits beside the
    /// shards' own).
    pub fn copy_hits(&self) -> u64 {
        self.worker_stats
            .iter()
            .map(|w| w.copy_hits.load(Ordering::Relaxed))
            .sum()
    }

    /// Changes the last save did not cover (INFO's rdb_changes_since_last_save).
    pub fn changes_since_save(&self) -> u64 {
        self.changes_total()
            .saturating_sub(self.changes_saved.load(Ordering::Relaxed))
    }

    /// A save that began when `changes_total` was `as_of` succeeded.
    pub fn mark_saved(&self, as_of: u64) {
        self.changes_saved.fetch_max(as_of, Ordering::Relaxed);
    }

    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        // As Redis closes its listening sockets first: a client that connects from now on is
        // refused rather than let in and dropped when the process exits.
        for &fd in self.listening.lock().expect("listening lock").iter() {
            // SAFETY: a listening socket of a worker, open for the server's life.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        self.shutdown.notify_waiters();
    }
}

/// A locked shard: the guard of its mutex, or a shard lent by the script running on this
/// thread, which holds its lock (see [`with_lent_shards`]). Releasing the lock brings the
/// copies of the shard's changed hot keys up to date first (`HotCopies::publish`): what a
/// command, transaction or script wrote under it reaches every copy before its reply leaves.
pub enum ShardGuard<'a> {
    Locked(MutexGuard<'a, Shard>, &'a crate::hot_copies::HotCopies),
    Lent(&'a mut Shard),
}

impl Drop for ShardGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let ShardGuard::Locked(shard, copies) = self {
            copies.publish(shard);
        }
    }
}

impl std::ops::Deref for ShardGuard<'_> {
    type Target = Shard;
    #[inline]
    fn deref(&self) -> &Shard {
        match self {
            ShardGuard::Locked(g, _) => g,
            ShardGuard::Lent(s) => s,
        }
    }
}

impl std::ops::DerefMut for ShardGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Shard {
        match self {
            ShardGuard::Locked(g, _) => &mut *g,
            ShardGuard::Lent(s) => s,
        }
    }
}

thread_local! {
    /// The shards a script running on this thread lends to the command it calls: indexed by
    /// shard id, null where not lent. Null outside such a call.
    static LENT: std::cell::Cell<*const Vec<*mut Shard>> = const { std::cell::Cell::new(std::ptr::null()) };
}

#[inline]
fn lent_shard<'a>(id: usize) -> Option<&'a mut Shard> {
    let lent = LENT.with(|l| l.get());
    if lent.is_null() {
        return None;
    }
    // SAFETY: set only by `with_lent_shards`, for the duration of its call, pointing at a
    // vector on its stack; the shards are locked by the script and not touched by it while
    // the lent call runs. A command locks a shard once at a time (locking it twice would
    // deadlock a plain mutex too), so the references handed out do not overlap.
    let lent: &Vec<*mut Shard> = unsafe { &*lent };
    let ptr = lent.get(id).copied().unwrap_or(std::ptr::null_mut());
    if ptr.is_null() {
        // Waiting for it here could deadlock with the locks the script holds: the script
        // starts again with every shard locked instead (`dispatch::script`).
        std::panic::panic_any(ShardNotLent);
    }
    Some(unsafe { &mut *ptr })
}

/// Whether a script on this thread is running the server command that asks (its shards are
/// lent to it): Redis's CLIENT_SCRIPT flag, for the few commands that answer differently then.
pub fn called_by_script() -> bool {
    LENT.with(|l| !l.get().is_null())
}

/// The panic a server command called by a script raises when it needs a shard the script
/// does not hold; the script's runner catches it (command guards let it through).
pub struct ShardNotLent;

/// Runs `f` (a server command called by a script) with the script's locked shards lent: the
/// command's own `lock_shard` calls get them instead of waiting for locks this thread holds.
pub fn with_lent_shards<R>(shards: &mut [ShardGuard<'_>], f: impl FnOnce() -> R) -> R {
    // The ShardNotLent unwind is a signal, not a fault: the panic hook stays quiet about it.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<ShardNotLent>() {
                previous(info);
            }
        }));
    });
    let mut by_id: Vec<*mut Shard> = Vec::new();
    for g in shards.iter_mut() {
        let shard: &mut Shard = g;
        if by_id.len() <= shard.id {
            by_id.resize(shard.id + 1, std::ptr::null_mut());
        }
        by_id[shard.id] = shard;
    }
    struct Restore(*const Vec<*mut Shard>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LENT.with(|l| l.replace(&by_id)));
    f()
}
