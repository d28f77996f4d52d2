//! The registry of connected clients, for CLIENT LIST / INFO / KILL and maxclients.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One end of a client's connection: a TCP address, or the Unix socket's path (`unixsocket`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix(Arc<str>),
}

impl Peer {
    /// Its IP address; a Unix socket's client is on this machine, so loopback.
    pub fn ip(&self) -> IpAddr {
        match self {
            Peer::Tcp(addr) => addr.ip(),
            Peer::Unix(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Whether it is on this machine (protected mode, `enable-debug-command local`): a Unix
    /// socket, or a loopback address (IPv4-mapped ones included).
    pub fn is_local(&self) -> bool {
        match self.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            v4 => v4.is_loopback(),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Peer::Unix(_))
    }
}

/// As Redis shows it: `ip:port`, or `<socket path>:0`.
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix(path) => write!(f, "{path}:0"),
        }
    }
}

/// What CLIENT LIST shows about a connection; written by its own worker, read by anyone.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: Peer,
    pub laddr: Peer,
    pub fd: RawFd,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub db: usize,
    pub resp: u8,
    pub created: Instant,
    /// When it last sent something (read on every request: the cheap clock).
    pub last_interaction: crate::command_timing::Moment,
    /// The last command it ran (as of its last read).
    pub last_cmd: &'static str,
    pub user: String,
    pub no_evict: bool,
    pub worker: usize,
    /// Pub/Sub subscriptions: channels, patterns, shard channels.
    pub subscriptions: (usize, usize, usize),
    /// Commands queued since MULTI (None outside a transaction).
    pub multi: Option<usize>,
    /// In a blocking command's wait, or held by CLIENT PAUSE.
    pub blocked: bool,
    pub monitor: bool,
    /// A replica's link (after its SYNC/PSYNC): CLIENT LIST's `S`, CLIENT KILL TYPE replica.
    pub replica: bool,
    /// A replica's link to its primary: CLIENT LIST's `M`, CLIENT KILL TYPE master.
    pub master: bool,
    /// CLIENT TRACKING's state while it is on.
    pub tracking: Option<Arc<crate::tracking::Tracker>>,
    /// Its buffers as of its last read (CLIENT LIST's qbuf, qbuf-free, rbs, rbp, obl,
    /// multi-mem); the output still queued for it is read live (see [`Registry::snapshot`]).
    pub buffers: Buffers,
}

/// A connection's buffer sizes, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Buffers {
    /// Read and not yet parsed (a partial request).
    pub query: usize,
    /// The whole arguments of a request still arriving, parsed out of `query`.
    pub partial_args: usize,
    /// The read buffer's capacity.
    pub query_capacity: usize,
    /// Replies not yet written.
    pub reply: usize,
    /// The reply buffer's capacity (CLIENT LIST's rbs).
    pub reply_capacity: usize,
    /// The most replies it held at once since its peak last started over (rbp; see
    /// `connection_loop::resize_reply_buffer`).
    pub reply_peak: usize,
    /// Arguments of the commands queued in a transaction.
    pub multi: usize,
    /// Keys it WATCHes.
    pub watched: usize,
    /// Pub/Sub messages, invalidations and MONITOR lines queued and not yet written (filled in
    /// by [`Registry::snapshot`]).
    pub pushes: usize,
}

impl ClientHandle {
    /// Whether its socket was shut down and its task is winding down.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Its info, with the output queued for it right now.
    pub fn snapshot(&self) -> ClientInfo {
        let mut info = self.info.lock().expect("client info lock").clone();
        if let Some(sink) = self.sink.lock().expect("client sink lock").as_ref() {
            info.buffers.pushes = sink.queued_bytes();
        }
        info
    }
}

/// What a connection takes besides its buffers: its task, parser, pipeline and state. Measured
/// with the allocator's count (INFO's used_memory): 1000 connections that sent one PING each
/// took 36.7 KB apiece, 32 KB of it their two 16 KB buffers.
const CONNECTION_OVERHEAD: usize = 3900;

/// What a client's registrations take per entry (WATCHed key, channel, pattern, tracking
/// prefix), as Redis's getClientMemoryUsage counts them: the entries of its lists and tables,
/// not the names (shared there). Enough for maxmemory-clients to reach a client that piles
/// them up.
const WATCHED_KEY_OVERHEAD: usize = 48;
const CHANNEL_OVERHEAD: usize = 32;
const PATTERN_OVERHEAD: usize = 24;
const PREFIX_OVERHEAD: usize = 32;

impl ClientInfo {
    /// Its memory (CLIENT LIST's tot-mem): its fixed cost, its buffers, what is queued for it,
    /// its registrations, and `argv` bytes of the command it runs.
    pub fn memory(&self, argv: usize) -> usize {
        let b = &self.buffers;
        let (channels, patterns, shard_channels) = self.subscriptions;
        let prefixes = self.tracking.as_ref().map_or(0, |t| t.prefixes.len());
        CONNECTION_OVERHEAD
            + b.query_capacity
            + b.reply_capacity
            + b.multi
            + b.partial_args
            + b.pushes
            + argv
            + b.watched * WATCHED_KEY_OVERHEAD
            + (channels + shard_channels) * CHANNEL_OVERHEAD
            + patterns * PATTERN_OVERHEAD
            + prefixes * PREFIX_OVERHEAD
    }

    /// CLIENT LIST's flags, in Redis's order (those WarpEngine has).
    pub fn flags(&self) -> String {
        let mut f = String::new();
        if self.replica {
            f.push('S');
        }
        if self.master {
            f.push('M');
        }
        if self.monitor {
            f.push('O');
        }
        if self.subscriptions != (0, 0, 0) {
            f.push('P');
        }
        if self.multi.is_some() {
            f.push('x');
        }
        if self.blocked {
            f.push('b');
        }
        if let Some(t) = &self.tracking {
            f.push('t');
            if t.broken_redirect.load(std::sync::atomic::Ordering::Relaxed) {
                f.push('R');
            }
            if t.bcast {
                f.push('B');
            }
        }
        if self.addr.is_unix() {
            f.push('U');
        }
        if self.no_evict {
            f.push('e');
        }
        if f.is_empty() {
            f.push('N');
        }
        f
    }

    /// CLIENT KILL TYPE's classes (a monitor is a normal client there, as in Redis).
    pub fn kind(&self) -> &'static str {
        if self.replica {
            "replica"
        } else if self.master {
            "master"
        } else if self.subscriptions != (0, 0, 0) {
            "pubsub"
        } else {
            "normal"
        }
    }
}

pub struct ClientHandle {
    pub info: Mutex<ClientInfo>,
    /// The connection's message queue once it has one (Pub/Sub, MONITOR, tracking): where a
    /// tracking client redirecting here sends its invalidations.
    pub sink: Mutex<Option<Arc<crate::pubsub::Subscriber>>>,
    /// What the client waits on while a blocking command holds it (CLIENT UNBLOCK ends it).
    pub blocked_on: Mutex<Option<Arc<crate::blocked_clients::Waiter>>>,
    /// Its memory as last counted into the registry's total (`maxmemory-clients`).
    counted_memory: AtomicU64,
    /// Evicted by `maxmemory-clients`: no longer counted while its task winds down.
    evicted: AtomicBool,
    /// Its socket was shut down (CLIENT KILL, ACL changes, `timeout`, eviction): gone from
    /// CLIENT LIST at once, as Redis frees such a client before it reads the next command,
    /// though its task may take a moment to notice and unregister.
    closing: AtomicBool,
}

#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
    /// The memory of all clients together, as each last counted its own.
    memory: AtomicU64,
    /// Clients disconnected by `maxmemory-clients` (INFO's evicted_clients).
    pub evicted: AtomicU64,
}

impl Registry {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients
            .lock()
            .expect("registry lock")
            .get(&id)
            .cloned()
    }

    /// Registered clients, those closing included until their task unregisters (as Redis counts
    /// a client until it is freed): O(1), for the `maxclients` check on every accept.
    pub fn count(&self) -> usize {
        self.clients.lock().expect("registry lock").len()
    }

    pub fn register(&self, info: ClientInfo) -> Arc<ClientHandle> {
        let id = info.id;
        let handle = Arc::new(ClientHandle {
            info: Mutex::new(info),
            sink: Mutex::new(None),
            blocked_on: Mutex::new(None),
            counted_memory: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        });
        self.clients
            .lock()
            .expect("registry lock")
            .insert(id, handle.clone());
        handle
    }

    /// Must run before the socket is closed, so that KILL never acts on a reused descriptor.
    pub fn unregister(&self, id: u64) {
        let gone = self.clients.lock().expect("registry lock").remove(&id);
        if let Some(handle) = gone {
            self.account(&handle, 0);
        }
    }

    /// Counts `memory` as the client's own in the total; the total, unless the client was
    /// evicted already. (Unchanged, the total is still given: a lowered `maxmemory-clients`
    /// is judged at any client's next request, as Redis judges it before every command.)
    pub fn account(&self, handle: &ClientHandle, memory: u64) -> Option<u64> {
        let before = handle.counted_memory.load(Ordering::Relaxed);
        if memory > 0 && handle.evicted.load(Ordering::Relaxed) {
            return None;
        }
        if before == memory {
            return Some(self.memory.load(Ordering::Relaxed));
        }
        handle.counted_memory.store(memory, Ordering::Relaxed);
        Some(if memory > before {
            self.memory.fetch_add(memory - before, Ordering::Relaxed) + (memory - before)
        } else {
            self.memory.fetch_sub(before - memory, Ordering::Relaxed) - (before - memory)
        })
    }

    /// What was just queued for `sink`'s client (a message, an invalidation) counts toward its
    /// memory at once, as Redis counts a client's output as it grows: past `limit` for all
    /// clients together, the ones using the most are disconnected now (Redis: before its next
    /// command), not when the client next reads or writes.
    pub fn count_queued(&self, sink: &crate::pubsub::Subscriber, limit: u64) {
        let Some(handle) = sink.owner() else { return };
        let memory = {
            let mut info = handle.info.lock().expect("client info lock");
            info.buffers.pushes = sink.queued_bytes();
            info.memory(0)
        };
        if let Some(total) = self.account(&handle, memory as u64) {
            if total >= limit {
                self.evict_for_memory(limit);
            }
        }
    }

    /// Client eviction (`maxmemory-clients`): while all clients together use `limit` bytes or
    /// more, disconnects the one using the most, as Redis 7.0 does (CLIENT NO-EVICT clients are
    /// spared). How many it disconnected.
    pub fn evict_for_memory(&self, limit: u64) -> usize {
        let clients = self.clients.lock().expect("registry lock");
        let mut by_memory: Vec<(u64, &Arc<ClientHandle>)> = clients
            .values()
            .map(|h| (h.counted_memory.load(Ordering::Relaxed), h))
            .collect();
        by_memory.sort_unstable_by_key(|(memory, _)| std::cmp::Reverse(*memory));
        let mut evicted = 0;
        for (memory, handle) in by_memory {
            if self.memory.load(Ordering::Relaxed) < limit {
                break;
            }
            let info = handle.info.lock().expect("client info lock");
            // (Replicas are never evicted for memory, as in Redis: their unsent stream has its
            // own limit.)
            if info.no_evict || info.replica || handle.evicted.swap(true, Ordering::Relaxed) {
                continue;
            }
            tracing::info!(client = info.id, addr = %info.addr, memory, "Evicting client");
            handle.closing.store(true, Ordering::Relaxed);
            // SAFETY: as in `kill_where`, the connection is registered and its socket open.
            unsafe {
                libc::shutdown(info.fd, libc::SHUT_RDWR);
            }
            // Uncounted now: it is on its way out, and must not cost another client its place.
            drop(info);
            self.account(handle, 0);
            evicted += 1;
        }
        self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
        evicted
    }

    /// The replicas' links served by `worker`: (client id, socket).
    pub fn replica_links(&self, worker: usize) -> Vec<(u64, RawFd)> {
        let clients = self.clients.lock().expect("registry lock");
        clients
            .values()
            .filter_map(|h| {
                let info = h.info.lock().expect("client info lock");
                (info.replica && info.worker == worker).then_some((info.id, info.fd))
            })
            .collect()
    }

    /// The cron's check of output limits: see [`crate::pubsub::Subscriber::recheck_soft_limit`].
    pub fn recheck_soft_limits(&self, limits: &crate::output_limits::OutputLimits) {
        let clients = self.clients.lock().expect("registry lock");
        for handle in clients.values() {
            if let Some(sink) = handle.sink.lock().expect("client sink lock").as_ref() {
                sink.recheck_soft_limit(limits);
            }
        }
    }

    /// Ends every blocking command in progress the way `how` says (a server turned replica:
    /// Redis's disconnectAllBlockedClients).
    pub fn unblock_all(&self, how: crate::blocked_clients::Unblock) {
        for h in self.clients.lock().expect("registry lock").values() {
            if let Some(waiter) = h.blocked_on.lock().expect("blocked_on lock").take() {
                waiter.unblock(how);
            }
        }
    }

    /// Wakes every blocked client to check where its key is served now (the cluster's slots
    /// or state changed).
    pub fn recheck_blocked_routes(&self) {
        for h in self.clients.lock().expect("registry lock").values() {
            if let Some(waiter) = h.blocked_on.lock().expect("blocked_on lock").as_ref() {
                waiter.recheck_route();
            }
        }
    }

    pub fn snapshot(&self) -> Vec<ClientInfo> {
        self.clients
            .lock()
            .expect("registry lock")
            .values()
            .filter(|h| !h.closing())
            .map(|h| h.snapshot())
            .collect()
    }

    /// `timeout`: closes the clients idle for longer than `idle`, sparing those Redis spares
    /// (subscribers, monitors, clients in a blocking command, replicas). How many it closed.
    pub fn close_idle(&self, idle: std::time::Duration) -> usize {
        let (closed, _) = self.kill_where(0, |info| {
            info.last_interaction.elapsed() > idle
                && info.subscriptions == (0, 0, 0)
                && !info.monitor
                && !info.blocked
                && !info.replica
        });
        closed
    }

    /// Closes every client matching `pred` (other than `except`) by shutting its socket down;
    /// its own task then notices the closed socket and cleans up. Returns how many matched,
    /// and whether `except` itself matched.
    pub fn kill_where(&self, except: u64, pred: impl Fn(&ClientInfo) -> bool) -> (usize, bool) {
        let clients = self.clients.lock().expect("registry lock");
        let mut killed = 0;
        let mut self_matched = false;
        for h in clients.values() {
            if h.closing() {
                continue;
            }
            let info = h.info.lock().expect("client info lock");
            if !pred(&info) {
                continue;
            }
            killed += 1;
            if info.id == except {
                self_matched = true;
                continue;
            }
            h.closing.store(true, Ordering::Relaxed);
            // SAFETY: the descriptor belongs to a registered, still-open connection; connections
            // unregister (under this same lock) before their socket is dropped.
            unsafe {
                libc::shutdown(info.fd, libc::SHUT_RDWR);
            }
        }
        (killed, self_matched)
    }
}
