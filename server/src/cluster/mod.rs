//! Redis Cluster: a node's id, the owner of each of the 16384 hash slots, the slots it is
//! importing or migrating, its epochs, the other nodes it knows (learnt through the cluster bus,
//! [`links`] and [`gossip`]), and the `nodes.conf` file (`cluster-config-file`, [`nodes_conf`])
//! that keeps them across restarts.
//!
//! The cluster slot of a key ([`crate::slot::key_slot`]) decides which *node* serves it; which
//! *worker* inside the node owns it is a separate question (`crate::slot::SlotTable`).
//!
//! Routing ([`Cluster::route`]) follows Redis's `getNodeByQuery`: keys in different slots are a
//! CROSSSLOT error, an unassigned slot is CLUSTERDOWN, a slot owned by another node is MOVED,
//! a missing key in a slot being migrated is ASK, and a slot being imported serves a client
//! that sent ASKING.
//!
//! Everything here is read under [`Cluster::state`]'s lock: the bus's task takes it to apply a
//! message, commands take it to read or change the node's view. Requests of a server with
//! cluster mode off never touch it.

pub mod bus;
pub mod failover;
pub mod gossip;
pub mod links;
mod nodes_conf;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::slot::SLOTS;
use bus::flag;

/// Who serves a slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Unassigned,
    Myself,
    /// Another node, by its index in [`State::peers`].
    Peer(usize),
}

/// An open bus connection to or from a peer: what is written to it goes through `tx` to the
/// connection's task. Dropping an outbound link ends its connection.
#[derive(Debug)]
pub struct Link {
    pub id: u64,
    pub tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Unix ms of its creation.
    pub created: u64,
    /// Ends the connection's task (outbound links; inbound ones end when the peer hangs up).
    pub abort: Option<tokio::task::AbortHandle>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }
}

/// A node this one knows of besides itself, with what Redis's `clusterNode` keeps of it.
#[derive(Debug, Default)]
pub struct Peer {
    pub id: String,
    pub ip: String,
    pub port: u16,
    /// Its cluster bus port.
    pub cport: u16,
    pub pport: u16,
    pub hostname: String,
    /// [`bus::flag`] bits: MASTER or SLAVE, PFAIL, FAIL, HANDSHAKE, NOADDR, MEET, NOFAILOVER.
    pub flags: u16,
    /// The id of its primary, if it is a replica.
    pub primary: Option<String>,
    pub config_epoch: u64,
    /// Unix ms of the PING in flight to it, 0 when none.
    pub ping_sent: u64,
    pub pong_received: u64,
    /// Unix ms of anything last received from it.
    pub data_received: u64,
    pub fail_time: u64,
    /// Unix ms of when this node learnt of it (handshakes time out from there).
    pub ctime: u64,
    pub repl_offset: u64,
    /// Primaries that told, in gossip, that it is failing: reporter id and when.
    pub fail_reports: Vec<(String, u64)>,
    /// Unix ms since which it is a primary with slots and no working replica (0: it is not).
    pub orphaned_since: u64,
    pub link: Option<Link>,
    pub inbound: Option<Link>,
}

impl Peer {
    pub fn new(id: String, ip: String, port: u16, cport: u16, flags: u16, now: u64) -> Peer {
        Peer {
            id,
            ip,
            port,
            cport,
            flags,
            ctime: now,
            ..Peer::default()
        }
    }

    pub fn has(&self, flags: u16) -> bool {
        self.flags & flags != 0
    }

    pub fn is_master(&self) -> bool {
        self.has(flag::MASTER)
    }
}

/// Where this node tells others to reach it (`cluster-announce-*`, else its own ports).
#[derive(Clone, Debug, Default)]
pub struct Announce {
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
}

/// The node's view of the cluster (behind [`Cluster::state`]).
pub struct State {
    pub myself: String,
    /// This node's address as others reach it: `cluster-announce-ip`, or learnt from the
    /// connections of MEETs (empty until then).
    pub my_ip: String,
    /// The primary this node replicates (CLUSTER REPLICATE, or a failover that left it behind).
    pub primary: Option<String>,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub last_vote_epoch: u64,
    pub slots: Vec<Owner>,
    pub peers: Vec<Peer>,
    /// Slots this node owns and is handing to another node (CLUSTER SETSLOT MIGRATING).
    pub migrating: BTreeMap<u16, Owner>,
    /// Slots this node is taking from another node (CLUSTER SETSLOT IMPORTING).
    pub importing: BTreeMap<u16, Owner>,
    /// Ids just forgotten (CLUSTER FORGET), not to be re-added from gossip until the Unix ms.
    pub blacklist: HashMap<String, u64>,
    pub announce: Announce,
    /// Bus messages sent and received, by type (CLUSTER INFO).
    pub sent: [u64; 11],
    pub received: [u64; 11],
    /// Every slot assigned to a node not FAILed (`cluster_state` under full coverage).
    covered: bool,
    /// A majority of the slot-owning primaries reachable.
    quorum: bool,
    /// Held at fail for a while, whatever the slots say (see [`Holds`]).
    held: bool,
    /// Redis's two holds of a primary's state; None (never held) but in a running node's
    /// state, so that a state built by a test follows its slots alone.
    pub holds: Option<Holds>,
    pub failover: failover::Election,
}

/// What Redis's `clusterUpdateState` keeps besides the slots: it holds a primary's state at
/// fail for its first two seconds (`CLUSTER_WRITABLE_DELAY`: the cluster gets a chance to tell a
/// restarted node of changes before it takes writes), and, after it was in a minority
/// partition (no slots counts), for `cluster-node-timeout` (between 0.5 and 5 s) after that
/// ends. Applied by every [`State::update_state`], as Redis applies them in every update.
#[derive(Debug)]
pub struct Holds {
    /// The first update (Redis's `first_call_time`).
    first_update: Option<Instant>,
    /// When this node last found itself in a minority (`among_minority_time`).
    minority_at: Option<Instant>,
    /// The state the last update settled on (Redis's `server.cluster->state`).
    was_ok: bool,
    /// `cluster-require-full-coverage`, for the state settled on.
    pub full_coverage: bool,
    /// `cluster-node-timeout`, clamped to 0.5-5 s.
    pub rejoin_delay: Duration,
}

impl Holds {
    pub fn new() -> Holds {
        Holds {
            first_update: None,
            minority_at: None,
            was_ok: false,
            full_coverage: true,
            rejoin_delay: Duration::from_millis(5000),
        }
    }

    /// Whether the state is held at fail now; `ok(full_coverage)`: the state the slots give.
    fn hold(&mut self, primary: bool, quorum: bool, ok: impl Fn(bool) -> bool) -> bool {
        const WRITABLE_DELAY: Duration = Duration::from_millis(2000);
        let now = Instant::now();
        let first = *self.first_update.get_or_insert(now);
        // As Redis, this comes before anything else: a minority is not noted meanwhile.
        if primary && !self.was_ok && now.duration_since(first) < WRITABLE_DELAY {
            return true;
        }
        if !quorum {
            self.minority_at = Some(now);
        }
        let would_be_ok = ok(self.full_coverage);
        let held = primary
            && !self.was_ok
            && would_be_ok
            && self
                .minority_at
                .is_some_and(|t| now.duration_since(t) < self.rejoin_delay);
        self.was_ok = would_be_ok && !held;
        held
    }
}

impl Default for Holds {
    fn default() -> Holds {
        Holds::new()
    }
}

impl State {
    fn fresh() -> State {
        State {
            myself: crate::server_state::random_hex(40),
            my_ip: String::new(),
            primary: None,
            current_epoch: 0,
            config_epoch: 0,
            last_vote_epoch: 0,
            slots: vec![Owner::Unassigned; SLOTS],
            peers: Vec::new(),
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            blacklist: HashMap::new(),
            announce: Announce::default(),
            sent: [0; 11],
            received: [0; 11],
            covered: false,
            quorum: false,
            held: false,
            holds: None,
            failover: failover::Election::default(),
        }
    }

    /// The node a CLUSTER command names by id: this one or a known peer.
    pub fn lookup(&self, id: &[u8]) -> Option<Owner> {
        if id == self.myself.as_bytes() {
            return Some(Owner::Myself);
        }
        self.peer(id).map(Owner::Peer)
    }

    /// A known peer by id.
    pub fn peer(&self, id: &[u8]) -> Option<usize> {
        self.peers.iter().position(|p| p.id.as_bytes() == id)
    }

    pub fn node_id(&self, owner: Owner) -> &str {
        match owner {
            Owner::Peer(i) => &self.peers[i].id,
            _ => &self.myself,
        }
    }

    pub fn is_replica(&self) -> bool {
        self.primary.is_some()
    }

    /// This node's primary among the peers.
    pub fn my_primary(&self) -> Option<usize> {
        self.primary
            .as_deref()
            .and_then(|id| self.peer(id.as_bytes()))
    }

    /// The node whose slots this one announces: itself, or its primary.
    pub fn my_master(&self) -> Owner {
        match self.my_primary() {
            Some(i) => Owner::Peer(i),
            None => Owner::Myself,
        }
    }

    /// A node's config epoch (a replica's is its primary's, as Redis shows it).
    pub fn epoch_of(&self, owner: Owner) -> u64 {
        match owner {
            Owner::Peer(i) => self.peers[i].config_epoch,
            Owner::Myself => self.config_epoch,
            Owner::Unassigned => 0,
        }
    }

    /// A node's flags (for this node: MYSELF and its role).
    pub fn flags_of(&self, owner: Owner) -> u16 {
        match owner {
            Owner::Peer(i) => self.peers[i].flags,
            _ if self.is_replica() => flag::MYSELF | flag::SLAVE,
            _ => flag::MYSELF | flag::MASTER,
        }
    }

    pub fn is_master(&self, owner: Owner) -> bool {
        self.flags_of(owner) & flag::MASTER != 0
    }

    pub fn slot_count(&self, owner: Owner) -> usize {
        self.slots.iter().filter(|o| **o == owner).count()
    }

    /// The slots of a node as a bus bitmap.
    pub fn bitmap_of(&self, owner: Owner) -> bus::SlotBitmap {
        let mut map = bus::SlotBitmap::empty();
        for (slot, o) in self.slots.iter().enumerate() {
            if *o == owner {
                map.set(slot);
            }
        }
        map
    }

    /// The replicas of a node (among the peers), as `(index, id)`.
    pub fn replicas_of(&self, owner: Owner) -> Vec<usize> {
        let id = self.node_id(owner).to_string();
        (0..self.peers.len())
            .filter(|&i| self.peers[i].primary.as_deref() == Some(id.as_str()))
            .collect()
    }

    /// Every node: this one first, then the peers.
    pub fn owners(&self) -> impl Iterator<Item = Owner> {
        std::iter::once(Owner::Myself).chain((0..self.peers.len()).map(Owner::Peer))
    }

    /// Whether each node (in [`State::owners`] order) owns at least one slot.
    fn owning(&self) -> Vec<bool> {
        let mut owning = vec![false; self.peers.len() + 1];
        for o in &self.slots {
            match o {
                Owner::Myself => owning[0] = true,
                Owner::Peer(i) => owning[i + 1] = true,
                Owner::Unassigned => {}
            }
        }
        owning
    }

    /// The primaries that own at least one slot (`cluster_size`).
    pub fn size(&self) -> usize {
        let owning = self.owning();
        self.owners()
            .enumerate()
            .filter(|&(k, o)| owning[k] && self.is_master(o))
            .count()
    }

    pub fn assigned(&self) -> usize {
        self.slots
            .iter()
            .filter(|o| **o != Owner::Unassigned)
            .count()
    }

    /// Runs of consecutive slots with the same owner: `(first, last, owner)`.
    pub fn ranges(&self) -> Vec<(u16, u16, Owner)> {
        let mut out: Vec<(u16, u16, Owner)> = Vec::new();
        for (slot, &owner) in self.slots.iter().enumerate() {
            if owner == Owner::Unassigned {
                continue;
            }
            match out.last_mut() {
                Some((_, last, o)) if *o == owner && *last as usize + 1 == slot => {
                    *last = slot as u16
                }
                _ => out.push((slot as u16, slot as u16, owner)),
            }
        }
        out
    }

    /// Redis's `clusterUpdateState`, kept for [`State::ok`]: under full coverage every slot
    /// must be served by a node not FAILed; and a majority of the slot-owning primaries must be
    /// reachable (neither PFAIL nor FAIL) from here.
    pub fn update_state(&mut self) {
        self.covered = self
            .slots
            .iter()
            .all(|&o| o != Owner::Unassigned && self.flags_of(o) & flag::FAIL == 0);
        let owning = self.owning();
        let (mut size, mut reachable) = (0, 0);
        for (k, o) in self.owners().enumerate() {
            if owning[k] && self.is_master(o) {
                size += 1;
                if self.flags_of(o) & (flag::FAIL | flag::PFAIL) == 0 {
                    reachable += 1;
                }
            }
        }
        self.quorum = reachable > size / 2;
        if let Some(mut holds) = self.holds.take() {
            self.held = false;
            let primary = !self.is_replica();
            let quorum = self.quorum;
            self.held = holds.hold(primary, quorum, |full| self.ok(full));
            self.holds = Some(holds);
        }
    }

    /// `cluster_state:ok`, as [`State::update_state`] last found it.
    pub fn ok(&self, require_full_coverage: bool) -> bool {
        !self.held && self.quorum && (self.covered || !require_full_coverage)
    }

    /// Forgets a peer, with every slot, open slot and failure report that named it.
    pub fn remove_peer(&mut self, i: usize) {
        let gone = self.peers.remove(i);
        let shift = |o: &mut Owner| match *o {
            Owner::Peer(j) if j == i => *o = Owner::Unassigned,
            Owner::Peer(j) if j > i => *o = Owner::Peer(j - 1),
            _ => {}
        };
        self.slots.iter_mut().for_each(shift);
        for open in [&mut self.migrating, &mut self.importing] {
            open.retain(|_, o| *o != Owner::Peer(i));
            open.values_mut().for_each(shift);
        }
        for p in &mut self.peers {
            p.fail_reports.retain(|(by, _)| *by != gone.id);
        }
    }

    /// Writes a message to a peer's outbound link (dropped when it has none yet), counted for
    /// CLUSTER INFO.
    pub fn send(&mut self, i: usize, frame: Vec<u8>) {
        let Some(tx) = self.peers[i].link.as_ref().map(|l| l.tx.clone()) else {
            return;
        };
        self.count_sent(&frame);
        let _ = tx.send(frame);
    }

    pub fn count_sent(&mut self, frame: &[u8]) {
        let kind = u16::from_be_bytes([frame[12], frame[13]]) as usize;
        if let Some(n) = self.sent.get_mut(kind) {
            *n += 1;
        }
    }

    /// Drops everything learnt of other nodes (CLUSTER RESET): peers, slots, open slots.
    pub fn forget_everything(&mut self) {
        self.slots.fill(Owner::Unassigned);
        self.peers.clear();
        self.migrating.clear();
        self.importing.clear();
        self.primary = None;
        self.blacklist.clear();
    }
}

/// Why a request is not served here: the error a client sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    CrossSlot,
    Unbound,
    Down,
    /// The cluster is down, `cluster-allow-reads-when-down` serves reads only.
    DownReadOnly,
    Moved(u16, String),
    Ask(u16, String),
    TryAgain,
}

impl Redirect {
    pub fn message(&self) -> String {
        match self {
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::Unbound => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
            Redirect::DownReadOnly => {
                "CLUSTERDOWN The cluster is down and only accepts read commands".into()
            }
            Redirect::Moved(slot, at) => format!("MOVED {slot} {at}"),
            Redirect::Ask(slot, at) => format!("ASK {slot} {at}"),
            Redirect::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
        }
    }
}

/// What [`Cluster::route`] needs to know of a request besides its keys' slots.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query {
    /// The client sent ASKING (or the command is RESTORE-ASKING).
    pub asking: bool,
    /// A replica of the slot's primary may serve it: a READONLY client's read (replica
    /// reads), or shard Pub/Sub (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH).
    pub readonly_client: bool,
    pub is_write: bool,
    /// The command runs here whenever its slot is open (migrating or importing): MIGRATE
    /// (see `CommandSpec::runs_in_open_slot`).
    pub runs_in_open_slot: bool,
    pub require_full_coverage: bool,
    pub reads_when_down: bool,
}

/// The cluster side of a server: off (every check one branch on a plain bool fixed at start),
/// or the node's state.
pub struct Cluster {
    enabled: bool,
    pub state: RwLock<State>,
    /// Where `nodes.conf` lives (`dir` + `cluster-config-file`).
    file: PathBuf,
    /// `cluster-require-full-coverage` and `cluster-allow-reads-when-down`, kept here (set at
    /// start and by CONFIG SET) so that a keyed request does not take the config lock.
    require_full_coverage: AtomicBool,
    reads_when_down: AtomicBool,
    /// The state last written to the log ("Cluster state changed: ok"), false at start as
    /// Redis's `CLUSTER_FAIL`: tools wait for that line (redis-rs's test cluster reads it).
    reported_ok: AtomicBool,
    /// Held while `nodes.conf` is written. A writer takes it before reading the state it
    /// writes, so the file ends with the newest state: a text made before another thread's
    /// change and written after that thread's own save would bring back what the change undid
    /// (a reshard's last slot, still MIGRATING on the source's restart).
    file_lock: std::sync::Mutex<()>,
}

impl Cluster {
    /// Off: `cluster-enabled no`.
    pub fn disabled() -> Cluster {
        Cluster {
            enabled: false,
            state: RwLock::new(State::fresh()),
            file: PathBuf::new(),
            require_full_coverage: AtomicBool::new(true),
            reads_when_down: AtomicBool::new(false),
            reported_ok: AtomicBool::new(false),
            file_lock: std::sync::Mutex::new(()),
        }
    }

    /// As `cluster-enabled` says; on, from `dir`/`cluster-config-file` (written at once, as
    /// Redis does, so the id is fixed from the first start). A file that is not a nodes.conf
    /// stops the server, as in Redis.
    pub fn from_config(cfg: &crate::config_store::ConfigStore) -> Cluster {
        if !cfg.get_bool("cluster-enabled") {
            return Cluster::disabled();
        }
        let dir = match cfg.get("dir") {
            "" => PathBuf::from("."),
            d => PathBuf::from(d),
        };
        let file = dir.join(cfg.get("cluster-config-file"));
        let cluster = Cluster::load_or_create(file).unwrap_or_else(|e| {
            tracing::error!("{e}");
            std::process::exit(1)
        });
        {
            let mut state = cluster.write();
            state.announce = announce(cfg);
            // Fail until the bus's first update (see `Holds`).
            state.holds = Some(Holds::new());
            state.held = true;
        }
        cluster.refresh(cfg);
        if let Err(e) = cluster.save() {
            tracing::error!("Cluster config file could not be written: {e}");
            std::process::exit(1)
        }
        cluster
    }

    /// On: the node as `file` left it, or a new node (with a new id) written to `file`.
    pub fn load_or_create(file: PathBuf) -> Result<Cluster, String> {
        let mut state = match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => State::parse(&text).ok_or_else(|| {
                format!(
                    "Unrecoverable error: corrupted cluster config file \"{}\".",
                    file.display()
                )
            })?,
            _ => State::fresh(),
        };
        state.update_state();
        let cluster = Cluster {
            enabled: true,
            state: RwLock::new(state),
            file,
            require_full_coverage: AtomicBool::new(true),
            reads_when_down: AtomicBool::new(false),
            reported_ok: AtomicBool::new(false),
            file_lock: std::sync::Mutex::new(()),
        };
        Ok(cluster)
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Takes the settings read per request from the configuration (at start, CONFIG SET).
    pub fn refresh(&self, cfg: &crate::config_store::ConfigStore) {
        let full = cfg.get_bool("cluster-require-full-coverage");
        self.require_full_coverage.store(full, Relaxed);
        let reads = cfg.get_bool("cluster-allow-reads-when-down");
        self.reads_when_down.store(reads, Relaxed);
        // CONFIG SET cluster-announce-*: CLUSTER NODES says it at once, and the bus's next
        // ping tells the peers (the bus's cron would pick it up too, a tick later).
        let announce = announce(cfg);
        let mut state = self.write();
        if !announce.ip.is_empty() {
            state.my_ip = announce.ip.clone();
        }
        state.announce = announce;
        if let Some(holds) = state.holds.as_mut() {
            holds.full_coverage = full;
            let timeout = cfg.get_i64("cluster-node-timeout").max(0) as u64;
            holds.rejoin_delay = Duration::from_millis(timeout.clamp(500, 5000));
        }
    }

    /// `cluster-require-full-coverage`.
    pub fn require_full_coverage(&self) -> bool {
        self.require_full_coverage.load(Relaxed)
    }

    /// Logs the state when it differs from the one last logged, as Redis's
    /// `clusterUpdateState` does ("Cluster state changed: ok" / "fail", at warning level).
    pub fn log_state_change(&self, st: &State) {
        let ok = st.ok(self.require_full_coverage());
        if self.reported_ok.swap(ok, Relaxed) != ok {
            tracing::warn!("Cluster state changed: {}", if ok { "ok" } else { "fail" });
        }
    }

    /// `cluster-allow-reads-when-down`.
    pub fn reads_when_down(&self) -> bool {
        self.reads_when_down.load(Relaxed)
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `nodes.conf` with the state as it is now, in place, as Redis 7.0's
    /// `clusterSaveConfig` does: the new text over the old, padded with blank lines (which a
    /// reader skips) to the old length, then cut to its own, so that the file reads as a whole
    /// configuration at every step. A temporary file renamed over it would be atomic on a power
    /// loss too, but costs a new inode and, on ext4, a flush of the data at each rename: 2-3 ms a
    /// save, which a reshard pays five times per slot moved (the SETSLOTs on every primary).
    pub fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        let _writing = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        let text = self.read().nodes_conf();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.file)?;
        let old_len = file.metadata()?.len() as usize;
        let mut padded = text.as_bytes().to_vec();
        padded.resize(old_len.max(text.len()), b'\n');
        file.write_all(&padded)?;
        file.set_len(text.len() as u64)
    }

    /// Where a request whose keys hash to `slots` goes, or None to run it here.
    /// `missing(i)`: whether the i-th key is absent (asked only for open slots).
    pub fn route(
        &self,
        slots: impl Iterator<Item = u16>,
        missing: impl Fn(usize) -> bool,
        query: Query,
    ) -> Option<Redirect> {
        let state = self.read();
        let mut slot = None;
        let mut keys = 0;
        for s in slots {
            match slot {
                None => slot = Some(s),
                Some(first) if first != s => return Some(Redirect::CrossSlot),
                _ => {}
            }
            keys += 1;
        }
        let slot = slot?;
        let owner = state.slots[slot as usize];
        if owner == Owner::Unassigned {
            return Some(Redirect::Unbound);
        }
        if !state.ok(query.require_full_coverage) {
            if !query.reads_when_down {
                return Some(Redirect::Down);
            }
            if query.is_write {
                return Some(Redirect::DownReadOnly);
            }
        }
        let migrating = owner == Owner::Myself && state.migrating.contains_key(&slot);
        let importing = state.importing.contains_key(&slot);
        if (migrating || importing) && query.runs_in_open_slot {
            return None;
        }
        if migrating || importing {
            let absent = (0..keys).filter(|&i| missing(i)).count();
            if absent > 0 {
                if migrating {
                    let to = state.migrating[&slot];
                    return match to {
                        Owner::Myself => None,
                        _ => Some(Redirect::Ask(slot, endpoint(&state, to))),
                    };
                }
                if query.asking && keys > 1 {
                    return Some(Redirect::TryAgain);
                }
            }
            if importing && query.asking {
                return None;
            }
        }
        // A READONLY client reading a slot of this replica's own primary is served here.
        if query.readonly_client && !query.is_write && owner == state.my_master() {
            return None;
        }
        match owner {
            Owner::Myself => None,
            peer => Some(Redirect::Moved(slot, endpoint(&state, peer))),
        }
    }
}

/// What decides where a client blocked on a key goes, reduced to a number: the slots' owners,
/// the slots being imported, this node's primary, and whether the cluster is up. The bus
/// compares it from tick to tick while clients are blocked (see
/// [`Cluster::redirect_blocked`]); an owner is hashed by its node id, since peers' indices
/// move when one is forgotten.
pub fn blocked_clients_fingerprint(state: &State, require_full_coverage: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = ahash::AHasher::default();
    let mut previous = None;
    for (slot, &owner) in state.slots.iter().enumerate() {
        if previous != Some(owner) {
            (slot, owner == Owner::Unassigned, state.node_id(owner)).hash(&mut h);
            previous = Some(owner);
        }
    }
    for slot in state.importing.keys() {
        slot.hash(&mut h);
    }
    (&state.primary, state.ok(require_full_coverage)).hash(&mut h);
    h.finish()
}

impl Cluster {
    /// Where a client blocked on a key of `slot` goes now, or None to go on waiting: Redis's
    /// `clusterRedirectBlockedClientIfNeeded` (called from its clients' cron): CLUSTERDOWN
    /// while the cluster is down or the slot unassigned, MOVED once another node serves the
    /// slot and this one is not importing it. `readonly_read`: a READONLY client's read, which
    /// a replica of the slot's primary serves.
    pub fn redirect_blocked(&self, slot: u16, readonly_read: bool) -> Option<Redirect> {
        let state = self.read();
        if !state.ok(self.require_full_coverage()) {
            return Some(Redirect::Down);
        }
        let mut owner = state.slots[slot as usize];
        if readonly_read && state.is_replica() && owner == state.my_master() {
            owner = Owner::Myself;
        }
        if owner == Owner::Myself || state.importing.contains_key(&slot) {
            return None;
        }
        Some(match owner {
            Owner::Peer(_) => Redirect::Moved(slot, endpoint(&state, owner)),
            _ => Redirect::Unbound,
        })
    }
}

/// Where this node says it is, from the config: `cluster-announce-*` over its own ports
/// (`cluster-port` 0: port + 10000).
pub fn announce(cfg: &crate::config_store::ConfigStore) -> Announce {
    let port = cfg.get_i64("port") as u16;
    let bus = match cfg.get_i64("cluster-port") as u16 {
        0 => port.wrapping_add(10000),
        p => p,
    };
    let pick = |key: &str, own: u16| match cfg.get_i64(key) as u16 {
        0 => own,
        p => p,
    };
    Announce {
        ip: cfg.get("cluster-announce-ip").to_string(),
        port: pick("cluster-announce-port", port),
        cport: pick("cluster-announce-bus-port", bus),
        hostname: cfg.get("cluster-announce-hostname").to_string(),
    }
}

fn endpoint(state: &State, owner: Owner) -> String {
    match owner {
        Owner::Peer(i) => format!("{}:{}", state.peers[i].ip, state.peers[i].port),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Cluster {
        let dir = std::env::temp_dir().join(format!("warp-cluster-{}", std::process::id()));
        let c = Cluster::load_or_create(dir.join("none.conf")).unwrap();
        c.write().slots.fill(Owner::Myself);
        c.write().update_state();
        c
    }

    #[test]
    fn nodes_conf_is_rewritten_in_place_to_its_new_length() {
        let dir = std::env::temp_dir().join(format!("warp-nodes-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nodes.conf");
        let c = Cluster::load_or_create(file.clone()).unwrap();
        c.write().slots.fill(Owner::Myself);
        c.save().unwrap();
        let long = std::fs::read_to_string(&file).unwrap();
        // Slots 0-99 and 200-16383: two ranges, a longer line; then one range again.
        c.write().slots[100..200].fill(Owner::Unassigned);
        c.save().unwrap();
        let longer = std::fs::read_to_string(&file).unwrap();
        assert!(
            longer.len() > long.len() && longer.contains("0-99 200-16383"),
            "{longer}"
        );
        c.write().slots[100..200].fill(Owner::Myself);
        c.save().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), long);
        let again = Cluster::load_or_create(file).unwrap();
        assert!(again.read().slots.iter().all(|&o| o == Owner::Myself));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn routes_as_redis() {
        let c = node();
        let q = |asking, full| Query {
            asking,
            require_full_coverage: full,
            ..Query::default()
        };
        let here = |slots: &[u16]| c.route(slots.iter().copied(), |_| true, q(false, true));
        assert_eq!(here(&[1, 1]), None);
        assert_eq!(here(&[1, 2]), Some(Redirect::CrossSlot));
        assert_eq!(here(&[]), None);
        c.write().slots[7] = Owner::Unassigned;
        c.write().update_state();
        assert_eq!(here(&[7]), Some(Redirect::Unbound));
        // Not every slot covered: the whole cluster is down under full coverage.
        assert_eq!(here(&[1]), Some(Redirect::Down));
        assert_eq!(c.route([1u16].into_iter(), |_| true, q(false, false)), None);
        let reads = Query {
            require_full_coverage: true,
            reads_when_down: true,
            ..Query::default()
        };
        assert_eq!(c.route([1u16].into_iter(), |_| true, reads), None);
        let write = Query {
            is_write: true,
            ..reads
        };
        assert_eq!(
            c.route([1u16].into_iter(), |_| true, write),
            Some(Redirect::DownReadOnly)
        );
        {
            let mut s = c.write();
            s.slots[7] = Owner::Myself;
            s.peers.push(Peer::new(
                "b".repeat(40),
                "10.0.0.2".into(),
                7001,
                17001,
                flag::MASTER,
                0,
            ));
            s.slots[8] = Owner::Peer(0);
            s.slots[10] = Owner::Peer(0);
            s.migrating.insert(9, Owner::Peer(0));
            s.importing.insert(8, Owner::Peer(0));
            s.update_state();
        }
        assert_eq!(here(&[8]), Some(Redirect::Moved(8, "10.0.0.2:7001".into())));
        assert_eq!(c.route([8u16].into_iter(), |_| true, q(true, true)), None);
        assert_eq!(
            c.route([8u16, 8].into_iter(), |i| i == 1, q(true, true)),
            Some(Redirect::TryAgain)
        );
        assert_eq!(here(&[9]), Some(Redirect::Ask(9, "10.0.0.2:7001".into())));
        assert_eq!(c.route([9u16].into_iter(), |_| false, q(false, true)), None);
        // MIGRATE runs here in any open slot, even one this node imports and does not own.
        let migrate = Query {
            runs_in_open_slot: true,
            ..q(false, true)
        };
        assert_eq!(c.route([8u16].into_iter(), |_| true, migrate), None);
        assert_eq!(c.route([9u16].into_iter(), |_| true, migrate), None);
        assert_eq!(
            c.route([10u16].into_iter(), |_| true, migrate),
            Some(Redirect::Moved(10, "10.0.0.2:7001".into()))
        );
        // A replica of the peer serves its primary's slots to READONLY readers only.
        c.write().importing.clear();
        c.write().primary = Some("b".repeat(40));
        let readonly = Query {
            readonly_client: true,
            ..q(false, true)
        };
        assert_eq!(c.route([8u16].into_iter(), |_| true, readonly), None);
        assert!(matches!(
            c.route(
                [8u16].into_iter(),
                |_| true,
                Query {
                    is_write: true,
                    ..readonly
                }
            ),
            Some(Redirect::Moved(..))
        ));
    }
}
