//! Redis's replication protocol. The primary's side (`primary`): a replica's handshake, full
//! resync with an RDB taken at the point where the stream of writes (`stream`) starts for it
//! (made in the background, one walk for the replicas that wait together: `full_sync`),
//! partial resync from the backlog (`history`), and each replica's link. The replica's side
//! (`replica`): REPLICAOF's link to a primary, its RDB loaded and its stream applied and passed
//! on verbatim.
//!
//! The shared state here: the stream's history, the translator of log records into the
//! stream, each link's unsent bytes (its outbox), and the table of replicas that ROLE, INFO
//! and WAIT read.

pub mod failover;
pub mod full_sync;
pub mod history;
pub mod local_keys;
pub mod primary;
pub mod replica;
pub mod stream;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use history::History;

use crate::memory_accounting::allocation_size;
use crate::output_limits::ClassLimit;

/// What the primary knows of one replica's link (a connection that sent SYNC or PSYNC).
#[derive(Debug, Clone)]
pub struct ReplicaLink {
    /// The connection's client id.
    pub client: u64,
    /// `REPLCONF ip-address`, else the peer's address.
    pub ip: String,
    /// `REPLCONF listening-port` (0 when not given, as Redis).
    pub port: u16,
    /// The offset the replica last acknowledged (`REPLCONF ACK`).
    pub ack_offset: u64,
    /// When the replica last acknowledged (INFO's `lag`).
    pub last_ack: Instant,
    pub state: LinkState,
}

/// Where a replica's link is, in INFO's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting for the walk that makes its RDB to start (`wait_bgsave`).
    WaitBgsave,
    /// Its RDB on the way (`send_bulk`).
    SendBulk,
    /// Following the stream (`online`).
    Online,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::WaitBgsave => "wait_bgsave",
            LinkState::SendBulk => "send_bulk",
            LinkState::Online => "online",
        }
    }
}

impl ReplicaLink {
    pub fn online(&self) -> bool {
        self.state == LinkState::Online
    }
}

/// The stream's bytes a replica's link has yet to send, bounded by `client-output-buffer-limit
/// replica`: a replica that falls that far behind is dropped (it will resync).
#[derive(Debug)]
pub struct Outbox {
    pub client: u64,
    bytes: Mutex<Vec<u8>>,
    /// Bytes taken by the link and not yet written (they count toward the limit too).
    in_flight: AtomicU64,
    /// The buffer the link took: its size, held until the link hands it back.
    in_flight_capacity: AtomicU64,
    /// What this outbox counts in `held` now: its buffers' sizes.
    counted: AtomicU64,
    over_soft_since: AtomicU64,
    dropped: AtomicBool,
    /// The link's socket while its stream task runs on a plain (not TLS) socket, else -1:
    /// another worker sends what waits through it before its clients' replies (see
    /// `send_waiting`). Set and cleared with `bytes` locked, and written to only with it
    /// locked, so that a closed (and reused) descriptor is never written to.
    direct_fd: std::sync::atomic::AtomicI32,
    /// The worker whose runtime runs the link's task (usize::MAX before it starts).
    task_worker: std::sync::atomic::AtomicUsize,
    /// Woken when bytes arrive.
    pub ready: tokio::sync::Notify,
    /// Woken when the outbox is dropped (the link may be stuck writing to the replica).
    pub closed: tokio::sync::Notify,
    /// All outboxes' buffers, their sizes (`Replication::outbox_bytes`).
    held: Arc<AtomicU64>,
}

thread_local! {
    /// Set on a worker while a client's read there has written to the stream and its bytes
    /// are still to go to the replicas from here (`Replication::send_from_here`): meanwhile a
    /// write here does not wake another worker's link task for bytes this worker will send
    /// itself. Cleared by that send, or before the worker sleeps (`before_sleep`).
    static SENDING_BEFORE_REPLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Wakes this worker's replica sender (`run_local_sender`).
    static LOCAL_SENDER: std::sync::Arc<tokio::sync::Notify> = std::sync::Arc::new(tokio::sync::Notify::new());
}

/// A client's read on this worker wrote to the stream: it sends the replicas their bytes
/// before its replies (see `SENDING_BEFORE_REPLY`).
pub fn will_send_before_reply() {
    SENDING_BEFORE_REPLY.with(|s| s.set(true));
}

/// A worker's replica sender: writes, when a client that wrote asks (`send_before_reply`),
/// what waits for the links whose tasks run on other workers, after the requests this worker
/// was already running have fed theirs.
pub async fn run_local_sender(server: std::sync::Arc<crate::server_state::Server>, me: usize) {
    let wake = LOCAL_SENDER.with(|n| n.clone());
    loop {
        wake.notified().await;
        server.replication.send_from_here(me);
    }
}

/// Writes what the socket takes without waiting: the bytes written (0 when it takes none, or
/// fails: the link's task meets the error on its own write or read).
fn send_now(fd: std::os::fd::RawFd, bytes: &[u8]) -> usize {
    // SAFETY: `fd` is an open socket (see `Outbox::direct_fd`); the buffer is valid for its
    // length. MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    n.max(0) as usize
}

impl Outbox {
    fn new(client: u64, first: Vec<u8>, held: Arc<AtomicU64>) -> Outbox {
        let size = allocation_size(&first) as u64;
        held.fetch_add(size, Ordering::Relaxed);
        Outbox {
            client,
            counted: AtomicU64::new(size),
            held,
            bytes: Mutex::new(first),
            in_flight: AtomicU64::new(0),
            in_flight_capacity: AtomicU64::new(0),
            over_soft_since: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            direct_fd: std::sync::atomic::AtomicI32::new(-1),
            task_worker: std::sync::atomic::AtomicUsize::new(usize::MAX),
            ready: tokio::sync::Notify::new(),
            closed: tokio::sync::Notify::new(),
        }
    }

    fn push(&self, bytes: &[u8], limit: &ClassLimit) {
        let mut held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if self.dropped.load(Ordering::Relaxed) {
            return;
        }
        held.extend_from_slice(bytes);
        let used = held.len() as u64 + self.in_flight.load(Ordering::Relaxed);
        if limit.exceeded(used, &self.over_soft_since) {
            self.dropped.store(true, Ordering::Relaxed);
            *held = Vec::new();
            self.closed.notify_one();
        }
        self.recount(allocation_size(&held));
        // Another worker's link task is not woken for bytes this worker sends before its
        // client's replies (and wakes it only if it cannot).
        let sent_from_here = self.direct_fd.load(Ordering::Relaxed) >= 0
            && self.task_worker.load(Ordering::Relaxed) != crate::server_state::current_worker()
            && SENDING_BEFORE_REPLY.with(|s| s.get());
        drop(held);
        if !sent_from_here {
            self.ready.notify_one();
        }
    }

    /// Takes what is to be sent (the link counts it as in flight until `sent`), leaving
    /// `spare` (emptied; the buffer the link sent last time) to collect what comes next.
    pub fn take(&self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        let mut held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::replace(&mut *held, spare);
        self.in_flight
            .fetch_add(taken.len() as u64, Ordering::Relaxed);
        self.in_flight_capacity
            .store(allocation_size(&taken) as u64, Ordering::Relaxed);
        self.recount(allocation_size(&held));
        taken
    }

    /// Writes what waits now, from the calling thread, if the link's socket is plain and its
    /// task is not writing; what the socket does not take is left to the task, woken for it.
    /// A link whose task runs on this worker is left to its task (woken by `push`).
    fn send_waiting(&self, me: usize) {
        if self.task_worker.load(Ordering::Relaxed) == me {
            return;
        }
        let mut held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let fd = self.direct_fd.load(Ordering::Relaxed);
        if held.is_empty() {
            return;
        }
        if fd >= 0 && self.in_flight.load(Ordering::Relaxed) == 0 {
            let n = send_now(fd, &held);
            held.drain(..n);
            self.recount(allocation_size(&held));
        }
        let left = !held.is_empty();
        drop(held);
        if left {
            // The task is writing, or the socket took only part: the task sends the rest.
            self.ready.notify_one();
        }
    }

    /// The link's task writes on a plain socket `fd` from now on (None: no longer; the
    /// socket may close once this returns).
    pub fn write_directly_to(&self, fd: Option<std::os::fd::RawFd>) {
        let _held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        self.direct_fd.store(fd.unwrap_or(-1), Ordering::Relaxed);
        let worker = match fd {
            Some(_) => crate::server_state::current_worker(),
            None => usize::MAX,
        };
        self.task_worker.store(worker, Ordering::Relaxed);
    }

    pub fn sent(&self, n: usize) {
        self.in_flight.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// Counts in `held` what this outbox's buffers take now, `held_size` the collecting
    /// one's (called with it locked): as Redis counts its replication buffer's blocks, the
    /// allocations of the buffers and not only the bytes in them.
    fn recount(&self, held_size: usize) {
        let now = held_size as u64 + self.in_flight_capacity.load(Ordering::Relaxed);
        let before = self.counted.swap(now, Ordering::Relaxed);
        if now > before {
            self.held.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// The replica passed its output limit: the link must close.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Unsent bytes (CLIENT LIST's and INFO's view of a replica's output buffer).
    pub fn pending(&self) -> u64 {
        let held = self.bytes.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        held + self.in_flight.load(Ordering::Relaxed)
    }
}

/// What a connection told the primary with REPLCONF before its SYNC or PSYNC.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    pub listening_port: u16,
    pub ip_address: Option<String>,
    /// `REPLCONF capa eof`: the replica takes an RDB of unknown length (diskless sync).
    pub capa_eof: bool,
    /// `REPLCONF capa psync2`: the replica takes `+CONTINUE <replid>`.
    pub capa_psync2: bool,
    /// `REPLCONF rdb-only 1` (redis-cli --rdb): the link ends after the RDB.
    pub rdb_only: bool,
    /// `REPLCONF rdb-filter-only functions` (redis-cli --functions-rdb): an RDB of the
    /// function libraries, no keys.
    pub functions_only: bool,
    /// SYNC or PSYNC was answered: after its reply the connection is a replica's link.
    pub synced: bool,
    /// That answer was a full resync (an RDB), not `+CONTINUE`.
    pub full_sync: bool,
    /// The RDB is still to be sent, by the link's task (`primary::send_rdb`).
    pub rdb_pending: bool,
    /// The full resync answers PSYNC (a `+FULLRESYNC` line first), not SYNC.
    pub psync: bool,
}

impl Handshake {
    /// The replica's name in log lines, as Redis's: its announced address and listening port.
    pub fn replica_name(&self, peer: IpAddr) -> String {
        format!("{}:{}", announced_ip(self, peer), self.listening_port)
    }
}

/// The replication state: the stream's history (id, offset, backlog), the translation of this
/// server's writes into it, each link's unsent bytes, whether this server is a replica, its
/// connected replicas (ACKs for WAIT and `min-replicas-*`), and INFO's sync counters.
///
/// Locks, when several are taken, in this order: shards, translator, history, outboxes, an
/// outbox; the configuration's is never taken while holding one of these.
#[derive(Debug)]
pub struct Replication {
    history: Mutex<History>,
    /// The history's offset as of the last bytes fed, readable without its lock (a write's
    /// connection notes it for WAIT).
    end: AtomicU64,
    /// Turns this server's log records into the stream (taken before `history`).
    translator: Mutex<stream::Translator>,
    /// The links' unsent bytes (taken after `history`, so that a link's start and the bytes
    /// fed after it agree).
    outboxes: Mutex<Vec<Arc<Outbox>>>,
    /// `client-output-buffer-limit replica`.
    pub limit: ClassLimit,
    /// Woken by every REPLCONF ACK (WAIT).
    pub acked: tokio::sync::Notify,
    /// When the stream last carried a PING (one per `repl-ping-replica-period` for all links).
    last_ping: Mutex<Instant>,
    /// `min-replicas-to-write` (0: writes are not gated) and `min-replicas-max-lag` (seconds).
    min_replicas: AtomicU64,
    min_replicas_max_lag: AtomicU64,
    /// `repl-backlog-size`.
    backlog_size: AtomicU64,
    /// What the links' outboxes take, all together.
    held: Arc<AtomicU64>,
    /// When the last replica went away (`repl-backlog-ttl`); None while one is connected.
    alone_since: Mutex<Option<Instant>>,
    /// This server replicates a primary (REPLICAOF host port): the stream is then its
    /// primary's, fed verbatim, and its own writes are not fed.
    replica: AtomicBool,
    replicas: Mutex<Vec<ReplicaLink>>,
    /// This server's own primary (REPLICAOF) and the link to it.
    pub upstream: replica::Upstream,
    /// A writable replica's own keys with a TTL, which it expires itself.
    pub local_keys: local_keys::LocalKeys,
    /// FAILOVER under way.
    pub failover: failover::Failover,
    /// Replicas waiting for a full sync's walk.
    pub full_syncs: full_sync::FullSyncs,
    /// Full resyncs served (INFO's `sync_full`).
    pub sync_full: AtomicU64,
    /// PSYNCs continued from the backlog (INFO's `sync_partial_ok`).
    pub sync_partial_ok: AtomicU64,
    /// PSYNCs with a replid that could not be continued (INFO's `sync_partial_err`).
    pub sync_partial_err: AtomicU64,
}

impl Replication {
    pub fn new(replid: String) -> Replication {
        Replication {
            history: Mutex::new(History::new(replid)),
            end: AtomicU64::new(0),
            translator: Mutex::new(stream::Translator::default()),
            outboxes: Mutex::new(Vec::new()),
            limit: ClassLimit::default(),
            acked: tokio::sync::Notify::new(),
            last_ping: Mutex::new(Instant::now()),
            min_replicas: AtomicU64::new(0),
            min_replicas_max_lag: AtomicU64::new(10),
            backlog_size: AtomicU64::new(1 << 20),
            held: Arc::new(AtomicU64::new(0)),
            alone_since: Mutex::new(None),
            replica: AtomicBool::new(false),
            replicas: Mutex::new(Vec::new()),
            upstream: replica::Upstream::default(),
            local_keys: Default::default(),
            failover: failover::Failover::default(),
            full_syncs: Default::default(),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
        }
    }

    /// The stream's id, offset and backlog.
    pub fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends bytes to the stream and hands them to the replicas' links.
    pub fn feed(&self, bytes: &[u8]) {
        let mut history = self.history();
        self.feed_held(&mut history, bytes);
    }

    /// `feed` with the history's lock already held: a replica relays its primary's stream
    /// under it, after checking its link is still the current one.
    pub fn feed_held(&self, history: &mut History, bytes: &[u8]) {
        history.feed(bytes);
        self.end.store(history.offset(), Ordering::Relaxed);
        for outbox in self.outboxes().iter() {
            outbox.push(bytes, &self.limit);
        }
    }

    /// Before a client that wrote gets its replies, the replicas get the stream's bytes: as
    /// Redis writes its replicas' buffers before the clients' replies in one loop iteration,
    /// so that a client reading a replica right after its write's reply finds the write there
    /// (redis-rs's and redis-py's read-from-replicas clients count on it; through the links'
    /// tasks, a wake-up later, it sometimes was not). The caller yields once after this: a
    /// link whose task runs on this worker was woken by the write and writes first; the
    /// others are written by this worker's sender (`run_local_sender`), woken here. Either
    /// way one write carries what every request of this turn of the worker wrote.
    pub fn send_before_reply(&self) {
        LOCAL_SENDER.with(|n| n.notify_one());
    }

    /// Sends from this worker what waits for the links whose tasks run elsewhere.
    fn send_from_here(&self, me: usize) {
        SENDING_BEFORE_REPLY.with(|s| s.set(false));
        for outbox in self.outboxes().iter() {
            outbox.send_waiting(me);
        }
    }

    /// Before a worker sleeps: bytes a client's read left to send from here (it stopped short
    /// of its replies) go now, so that none wait for the next write.
    pub fn before_sleep(&self, me: usize) {
        if SENDING_BEFORE_REPLY.with(|s| s.get()) {
            self.send_from_here(me);
        }
    }

    /// The stream's offset as of the last bytes fed (at least the end of every write that
    /// finished before this call).
    pub fn stream_end(&self) -> u64 {
        self.end.load(Ordering::Relaxed)
    }

    /// Sends a command of the stream's own to every replica (PING, REPLCONF GETACK *).
    pub fn feed_command(&self, argv: &[&[u8]]) {
        let mut translator = self.translator();
        let out = translator.command(None, argv);
        self.feed(out);
    }

    /// Sends a command that is not a write's record (PUBLISH) to every replica, in the
    /// database of the client that sent it: the stream selects it first if need be, as Redis
    /// propagates every command with its client's database.
    pub fn feed_command_in(&self, db: usize, argv: &[&[u8]]) {
        let mut translator = self.translator();
        let out = translator.command(Some(db), argv);
        self.feed(out);
    }

    /// What an RDB file written now records of the stream (`repl-stream-db`, `repl-id`,
    /// `repl-offset`), for a primary with a backlog, or a replica whose data is its primary's
    /// stream up to its offset (Redis's rdbPopulateSaveInfo; a replica saved in the middle of
    /// a chunk records nothing, and syncs in full when restarted from the file). Called with
    /// every shard locked, so that the offset is the data's.
    pub fn saved_info(&self) -> Option<(usize, String, u64)> {
        if self.is_replica() {
            let db = self.upstream.consistent_offset()?;
            let history = self.history();
            return Some((db, history.replid().to_string(), history.offset()));
        }
        // The translator before the history, in the order the stream's writers take them.
        let db = self.translator().selected_db();
        let history = self.history();
        history
            .backlog_active()
            .then(|| (db, history.replid().to_string(), history.offset()))
    }

    fn translator(&self) -> MutexGuard<'_, stream::Translator> {
        self.translator.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outboxes(&self) -> MutexGuard<'_, Vec<Arc<Outbox>>> {
        self.outboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A link starts at the stream's present end with `first` to send before what comes
    /// next (the bytes a partial resync continues with); called with `history` held, so
    /// nothing fed falls between. Answers its outbox.
    pub fn open_outbox(&self, _history: &History, client: u64, first: Vec<u8>) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::new(client, first, self.held.clone()));
        self.outboxes().push(outbox.clone());
        outbox
    }

    /// What the links' outboxes take, all together: their buffers' sizes (INFO's
    /// `mem_clients_slaves`; left out of the memory maxmemory counts, as Redis leaves
    /// replicas' output buffers out).
    pub fn outbox_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn outbox(&self, client: u64) -> Option<Arc<Outbox>> {
        self.outboxes().iter().find(|o| o.client == client).cloned()
    }

    /// The next command of the stream selects its database again (a full resync starts a
    /// replica whose database is unknown).
    pub fn reselect(&self) {
        self.translator().reselect();
    }

    /// Whether replicas' links are open.
    pub fn has_links(&self) -> bool {
        !self.outboxes().is_empty()
    }

    /// Whether a PING is due on the stream (one per period, whatever the number of links).
    pub fn ping_due(&self, period: std::time::Duration) -> bool {
        let mut last = self.last_ping.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < period {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Takes the settings that live here from the configuration (at start, and at CONFIG SET):
    /// the replica output limit, min-replicas-*, the backlog's size.
    pub fn refresh(&self, cfg: &crate::config_store::ConfigStore) {
        let limits = crate::output_limits::OutputLimits::default();
        limits.refresh(cfg.get("client-output-buffer-limit"));
        for (mine, read) in [
            (&self.limit.hard, &limits.replica.hard),
            (&self.limit.soft, &limits.replica.soft),
            (&self.limit.soft_seconds, &limits.replica.soft_seconds),
        ] {
            mine.store(read.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let number = |name: &str| cfg.get_i64(name).max(0) as u64;
        self.min_replicas
            .store(number("min-replicas-to-write"), Ordering::Relaxed);
        self.min_replicas_max_lag
            .store(number("min-replicas-max-lag"), Ordering::Relaxed);
        self.backlog_size
            .store(number("repl-backlog-size"), Ordering::Relaxed);
    }

    /// `repl-backlog-size` as last configured.
    pub fn backlog_size(&self) -> usize {
        self.backlog_size.load(Ordering::Relaxed) as usize
    }

    /// Gives a live backlog the configured size (after CONFIG SET, with the configuration's
    /// lock released: INFO holds the history's lock while it reads the configuration).
    pub fn resize_backlog(&self) {
        let mut history = self.history();
        if history.backlog_active() {
            history.enable_backlog(self.backlog_size());
        }
    }

    /// Whether writes need good replicas (`min-replicas-to-write` > 0): the one load a write
    /// pays for the feature.
    #[inline]
    pub fn gates_writes(&self) -> bool {
        self.min_replicas.load(Ordering::Relaxed) != 0
    }

    /// NOREPLICAS when fewer than `min-replicas-to-write` replicas are online with an ACK at
    /// most `min-replicas-max-lag` seconds old, as Redis refuses writes then.
    pub fn noreplicas(&self) -> Option<crate::protocol::Reply> {
        let wanted = self.min_replicas.load(Ordering::Relaxed) as usize;
        let max_lag = self.min_replicas_max_lag.load(Ordering::Relaxed);
        let good = self
            .lock()
            .iter()
            .filter(|r| r.online() && r.last_ack.elapsed().as_secs() <= max_lag)
            .count();
        (!self.is_replica() && good < wanted)
            .then(|| crate::protocol::Reply::err("NOREPLICAS Not enough good replicas to write."))
    }

    /// How long the primary has been without replicas (None: it has some).
    pub fn alone_for(&self) -> Option<std::time::Duration> {
        self.alone_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    pub fn set_replica(&self, replica: bool) {
        self.replica.store(replica, Ordering::Relaxed);
        warpengine_storage::db::keep_expired_keys(replica);
        if !replica {
            self.local_keys.clear();
        }
    }

    pub fn add(&self, link: ReplicaLink) {
        self.lock().push(link);
        *self.alone_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Takes a replica off the table, its outbox first (so that once it is gone from INFO and
    /// ROLE, its unsent bytes are no longer counted either).
    pub fn remove(&self, client: u64) {
        let mut outboxes = self.outboxes();
        if let Some(at) = outboxes.iter().position(|o| o.client == client) {
            // (No more pushes once out of the list, and the link's writer is gone.)
            let gone = outboxes.swap_remove(at);
            let counted = gone.counted.swap(0, Ordering::Relaxed);
            self.held.fetch_sub(counted, Ordering::Relaxed);
        }
        drop(outboxes);
        let mut replicas = self.lock();
        replicas.retain(|r| r.client != client);
        if replicas.is_empty() {
            *self.alone_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// Updates a replica's entry in place (its ACK, its state).
    pub fn update(&self, client: u64, change: impl FnOnce(&mut ReplicaLink)) {
        if let Some(link) = self.lock().iter_mut().find(|r| r.client == client) {
            change(link);
        }
    }

    /// The replicas in the order they connected.
    pub fn replicas(&self) -> Vec<ReplicaLink> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReplicaLink>> {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The tap on the log's records: while this server is a primary with the stream on, each
/// record becomes stream commands (a replica's stream is its primary's, fed verbatim).
impl crate::persist::RecordTap for Replication {
    fn record(&self, _shard: usize, payload: &[u8]) {
        if self.is_replica() {
            return;
        }
        let mut translator = self.translator();
        let out = translator.record(payload);
        if !out.is_empty() {
            self.feed(out);
        }
    }
}

/// The address a replica is reported under: what it announced, else where it connects from.
pub fn announced_ip(handshake: &Handshake, peer: IpAddr) -> String {
    handshake
        .ip_address
        .clone()
        .unwrap_or_else(|| peer.to_string())
}
