//! Redis's replication protocol. The primary's side (`primary`): a replica's handshake is
//! answered, PSYNC and SYNC get the RDB written by the RDB writer, and the link is then kept
//! alive with PINGs (writes are not streamed to replicas yet). The replica's side (`replica`):
//! REPLICAOF's link to a primary, its RDB loaded and its stream applied.
//!
//! The shared state here is the table of connected replicas, which ROLE and INFO report.

pub mod history;
pub mod primary;
pub mod replica;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use history::History;

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
    /// Waiting for the RDB (`wait_bgsave`) or past it (`online`).
    pub online: bool,
}

/// What a connection told the primary with REPLCONF before its SYNC or PSYNC.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    pub listening_port: u16,
    pub ip_address: Option<String>,
    /// `REPLCONF rdb-only 1` (redis-cli --rdb): the link ends after the RDB.
    pub rdb_only: bool,
    /// `REPLCONF rdb-filter-only functions` (redis-cli --functions-rdb): an RDB of the
    /// function libraries, no keys.
    pub functions_only: bool,
    /// SYNC or PSYNC was answered: after its reply the connection is a replica's link.
    pub synced: bool,
}

/// The replication state: the stream's history (id, offset, backlog), whether this server is
/// a replica, its connected replicas, and INFO's sync counters.
#[derive(Debug)]
pub struct Replication {
    history: Mutex<History>,
    /// Woken whenever bytes are fed to the stream.
    pub fed: tokio::sync::Notify,
    /// This server replicates a primary (REPLICAOF host port): the stream is then its
    /// primary's, fed verbatim, and its own writes are not fed.
    replica: AtomicBool,
    replicas: Mutex<Vec<ReplicaLink>>,
    /// This server's own primary (REPLICAOF) and the link to it.
    pub upstream: replica::Upstream,
    /// Full resyncs served (INFO's `sync_full`).
    pub sync_full: AtomicU64,
    /// PSYNCs with a replid that could not be continued (INFO's `sync_partial_err`).
    pub sync_partial_err: AtomicU64,
}

impl Replication {
    pub fn new(replid: String) -> Replication {
        Replication {
            history: Mutex::new(History::new(replid)),
            fed: tokio::sync::Notify::new(),
            replica: AtomicBool::new(false),
            replicas: Mutex::new(Vec::new()),
            upstream: replica::Upstream::default(),
            sync_full: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
        }
    }

    /// The stream's id, offset and backlog.
    pub fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends bytes to the stream and wakes the replicas' links.
    pub fn feed(&self, bytes: &[u8]) {
        self.history().feed(bytes);
        self.fed.notify_waiters();
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    pub fn set_replica(&self, replica: bool) {
        self.replica.store(replica, Ordering::Relaxed);
    }

    pub fn add(&self, link: ReplicaLink) {
        self.lock().push(link);
    }

    pub fn remove(&self, client: u64) {
        self.lock().retain(|r| r.client != client);
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

/// The address a replica is reported under: what it announced, else where it connects from.
pub fn announced_ip(handshake: &Handshake, peer: IpAddr) -> String {
    handshake
        .ip_address
        .clone()
        .unwrap_or_else(|| peer.to_string())
}
