//! Redis Cluster, as far as one node knows it without a cluster bus: its node id, the owner of
//! each of the 16384 hash slots, the slots it is importing or migrating, its epochs, and the
//! `nodes.conf` file (`cluster-config-file`) that keeps them across restarts.
//!
//! The cluster slot of a key ([`crate::slot::key_slot`]) decides which *node* serves it; which
//! *worker* inside the node owns it is a separate question (`crate::slot::SlotTable`).
//!
//! Routing ([`Cluster::route`]) follows Redis's `getNodeByQuery`: keys in different slots are a
//! CROSSSLOT error, an unassigned slot is CLUSTERDOWN, a slot owned by another node is MOVED,
//! a missing key in a slot being migrated is ASK, and a slot being imported serves a client
//! that sent ASKING. Only this node is ever known here (no MEET yet), so MOVED and ASK need a
//! peer the bus would have taught; the logic is there and unit-tested with a peer added by hand.

pub mod bus;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use crate::slot::SLOTS;

/// Who serves a slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Unassigned,
    Myself,
    /// Another node, by its index in [`State::peers`].
    Peer(usize),
}

/// A node this one knows of besides itself.
#[derive(Clone, Debug)]
pub struct Peer {
    pub id: String,
    pub ip: String,
    pub port: u16,
}

/// The node's view of the cluster (behind [`Cluster::state`]).
pub struct State {
    pub myself: String,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub last_vote_epoch: u64,
    pub slots: Vec<Owner>,
    pub peers: Vec<Peer>,
    /// Slots this node owns and is handing to another node (CLUSTER SETSLOT MIGRATING).
    pub migrating: BTreeMap<u16, Owner>,
    /// Slots this node is taking from another node (CLUSTER SETSLOT IMPORTING).
    pub importing: BTreeMap<u16, Owner>,
}

impl State {
    fn fresh() -> State {
        State {
            myself: crate::server_state::random_hex(40),
            current_epoch: 0,
            config_epoch: 0,
            last_vote_epoch: 0,
            slots: vec![Owner::Unassigned; SLOTS],
            peers: Vec::new(),
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
        }
    }

    /// The node a CLUSTER command names by id: this one or a known peer.
    pub fn lookup(&self, id: &[u8]) -> Option<Owner> {
        if id == self.myself.as_bytes() {
            return Some(Owner::Myself);
        }
        self.peers
            .iter()
            .position(|p| p.id.as_bytes() == id)
            .map(Owner::Peer)
    }

    pub fn node_id(&self, owner: Owner) -> &str {
        match owner {
            Owner::Peer(i) => &self.peers[i].id,
            _ => &self.myself,
        }
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

    /// `cluster_state:ok`, as Redis's `clusterUpdateState` decides it for a node that knows no
    /// failed peers: every slot served (under `cluster-require-full-coverage`) and a majority
    /// of slot-owning primaries reachable (here: this node owns some slot).
    pub fn ok(&self, require_full_coverage: bool) -> bool {
        if require_full_coverage && self.slots.contains(&Owner::Unassigned) {
            return false;
        }
        self.slots.contains(&Owner::Myself)
    }

    /// `nodes.conf` as Redis writes it: one line per node, then the epochs.
    pub fn nodes_conf(&self, port: u16) -> String {
        let mut out = self.describe(port, true);
        out.push_str(&format!(
            "vars currentEpoch {} lastVoteEpoch {}\n",
            self.current_epoch, self.last_vote_epoch
        ));
        out
    }

    /// CLUSTER NODES (and the node lines of `nodes.conf`, which add open slots too).
    pub fn describe(&self, port: u16, with_open_slots: bool) -> String {
        let ranges = self.ranges();
        let mut line = format!(
            "{} :{port}@{} myself,master - 0 0 {} connected",
            self.myself,
            port as u32 + 10000,
            self.config_epoch
        );
        for &(first, last, owner) in &ranges {
            if owner != Owner::Myself {
                continue;
            }
            push_range(&mut line, first, last);
        }
        if with_open_slots {
            for (slot, &to) in &self.migrating {
                line.push_str(&format!(" [{slot}->-{}]", self.node_id(to)));
            }
            for (slot, &from) in &self.importing {
                line.push_str(&format!(" [{slot}-<-{}]", self.node_id(from)));
            }
        }
        line.push('\n');
        for (i, peer) in self.peers.iter().enumerate() {
            line.push_str(&format!(
                "{} {}:{}@{} master - 0 0 0 connected",
                peer.id,
                peer.ip,
                peer.port,
                peer.port as u32 + 10000
            ));
            for &(first, last, owner) in &ranges {
                if owner == Owner::Peer(i) {
                    push_range(&mut line, first, last);
                }
            }
            line.push('\n');
        }
        line
    }

    /// Reads back what [`State::nodes_conf`] wrote: this node's id, its slots and open slots,
    /// and the epochs. Lines of other nodes are skipped (without a bus they could not be
    /// reached). None when the text is not a nodes.conf.
    fn parse(text: &str) -> Option<State> {
        let mut state = State::fresh();
        let mut found = false;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() == Some(&"vars") {
                for pair in fields[1..].chunks(2) {
                    let value = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                    match pair[0] {
                        "currentEpoch" => state.current_epoch = value,
                        "lastVoteEpoch" => state.last_vote_epoch = value,
                        _ => {}
                    }
                }
                continue;
            }
            if fields.len() < 8 || !fields[2].split(',').any(|f| f == "myself") {
                continue;
            }
            found = true;
            state.myself = fields[0].to_string();
            state.config_epoch = fields[6].parse().ok()?;
            for spec in &fields[8..] {
                if let Some(open) = spec.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    // Open slots towards this node itself are the only ones it can keep.
                    if let Some((slot, _)) = open.split_once("->-") {
                        state.migrating.insert(slot.parse().ok()?, Owner::Myself);
                    } else if let Some((slot, _)) = open.split_once("-<-") {
                        state.importing.insert(slot.parse().ok()?, Owner::Myself);
                    }
                    continue;
                }
                let (first, last) = match spec.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
                    None => (spec.parse().ok()?, spec.parse().ok()?),
                };
                if first > last || last >= SLOTS {
                    return None;
                }
                state.slots[first..=last].fill(Owner::Myself);
            }
        }
        found.then_some(state)
    }
}

fn push_range(line: &mut String, first: u16, last: u16) {
    if first == last {
        line.push_str(&format!(" {first}"));
    } else {
        line.push_str(&format!(" {first}-{last}"));
    }
}

/// Why a request is not served here: the error a client sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    CrossSlot,
    Unbound,
    Down,
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
            Redirect::Moved(slot, at) => format!("MOVED {slot} {at}"),
            Redirect::Ask(slot, at) => format!("ASK {slot} {at}"),
            Redirect::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
        }
    }
}

/// The cluster side of a server: off (every check one branch on a plain bool fixed at start),
/// or the node's state.
pub struct Cluster {
    enabled: bool,
    pub state: RwLock<State>,
    /// Where `nodes.conf` lives (`dir` + `cluster-config-file`).
    file: PathBuf,
}

impl Cluster {
    /// Off: `cluster-enabled no`.
    pub fn disabled() -> Cluster {
        Cluster {
            enabled: false,
            state: RwLock::new(State::fresh()),
            file: PathBuf::new(),
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
        if let Err(e) = cluster.save(cfg.get_i64("port") as u16) {
            tracing::error!("Cluster config file could not be written: {e}");
            std::process::exit(1)
        }
        cluster
    }

    /// On: the node as `file` left it, or a new node (with a new id) written to `file`.
    pub fn load_or_create(file: PathBuf) -> Result<Cluster, String> {
        let state = match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => State::parse(&text).ok_or_else(|| {
                format!(
                    "Unrecoverable error: corrupted cluster config file \"{}\".",
                    file.display()
                )
            })?,
            _ => State::fresh(),
        };
        let cluster = Cluster {
            enabled: true,
            state: RwLock::new(state),
            file,
        };
        Ok(cluster)
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `nodes.conf` (atomically: a temporary file renamed over it).
    pub fn save(&self, port: u16) -> std::io::Result<()> {
        let text = self.read().nodes_conf(port);
        let tmp = self.file.with_extension("tmp-warpengine");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.file)
    }

    /// Where a request whose keys hash to `slots` goes, or None to run it here.
    /// `missing(i)`: whether the i-th key is absent (asked only for open slots); `asking`: the
    /// client sent ASKING; `readonly_ok`: READONLY client and a read command (replica reads,
    /// which only matter once replicas are known).
    pub fn route(
        &self,
        slots: impl Iterator<Item = u16>,
        missing: impl Fn(usize) -> bool,
        asking: bool,
        require_full_coverage: bool,
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
        if !state.ok(require_full_coverage) {
            return Some(Redirect::Down);
        }
        let migrating = owner == Owner::Myself && state.migrating.contains_key(&slot);
        let importing = state.importing.contains_key(&slot);
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
                if asking && keys > 1 {
                    return Some(Redirect::TryAgain);
                }
            }
            if importing && asking {
                return None;
            }
        }
        match owner {
            Owner::Myself => None,
            peer => Some(Redirect::Moved(slot, endpoint(&state, peer))),
        }
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
        c
    }

    #[test]
    fn nodes_conf_round_trips() {
        let c = node();
        {
            let mut s = c.write();
            s.slots[100..200].fill(Owner::Unassigned);
            s.migrating.insert(5, Owner::Myself);
            s.current_epoch = 3;
            s.config_epoch = 2;
        }
        let text = c.read().nodes_conf(7000);
        let back = State::parse(&text).unwrap();
        assert_eq!(back.myself, c.read().myself);
        assert_eq!(back.slots, c.read().slots);
        assert_eq!(back.migrating.get(&5), Some(&Owner::Myself));
        assert_eq!((back.current_epoch, back.config_epoch), (3, 2));
        assert!(text.contains(" 0-99 200-16383 [5->-"));
    }

    #[test]
    fn routes_as_redis() {
        let c = node();
        let here = |slots: &[u16]| c.route(slots.iter().copied(), |_| true, false, true);
        assert_eq!(here(&[1, 1]), None);
        assert_eq!(here(&[1, 2]), Some(Redirect::CrossSlot));
        assert_eq!(here(&[]), None);
        c.write().slots[7] = Owner::Unassigned;
        assert_eq!(here(&[7]), Some(Redirect::Unbound));
        // Not every slot covered: the whole cluster is down under full coverage.
        assert_eq!(here(&[1]), Some(Redirect::Down));
        assert_eq!(c.route([1u16].into_iter(), |_| true, false, false), None);
        {
            let mut s = c.write();
            s.slots[7] = Owner::Myself;
            s.peers.push(Peer {
                id: "b".repeat(40),
                ip: "10.0.0.2".into(),
                port: 7001,
            });
            s.slots[8] = Owner::Peer(0);
            s.migrating.insert(9, Owner::Peer(0));
            s.importing.insert(8, Owner::Peer(0));
        }
        assert_eq!(here(&[8]), Some(Redirect::Moved(8, "10.0.0.2:7001".into())));
        assert_eq!(c.route([8u16].into_iter(), |_| true, true, true), None);
        assert_eq!(
            c.route([8u16, 8].into_iter(), |i| i == 1, true, true),
            Some(Redirect::TryAgain)
        );
        assert_eq!(here(&[9]), Some(Redirect::Ask(9, "10.0.0.2:7001".into())));
        assert_eq!(c.route([9u16].into_iter(), |_| false, false, true), None);
    }
}
