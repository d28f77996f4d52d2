//! Redis's replication protocol. This slice has the primary's side of a full resync only
//! (`primary`): a replica's handshake is answered, PSYNC and SYNC get the RDB written by the
//! RDB writer, and the link is then kept alive with PINGs. Writes are not streamed to
//! replicas yet (that needs one ordered stream across shards), and WarpEngine cannot yet be a
//! replica itself.
//!
//! The shared state here is the table of connected replicas, which ROLE and INFO report.

pub mod primary;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Instant;

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

/// The primary's replication state: its connected replicas, and INFO's sync counters.
#[derive(Debug, Default)]
pub struct Replication {
    replicas: Mutex<Vec<ReplicaLink>>,
    /// Full resyncs served (INFO's `sync_full`).
    pub sync_full: AtomicU64,
    /// PSYNCs with a replid that could not be continued (INFO's `sync_partial_err`).
    pub sync_partial_err: AtomicU64,
}

impl Replication {
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
