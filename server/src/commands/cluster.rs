//! CLUSTER and its subcommands, ASKING, READONLY, READWRITE: a node's view of the cluster
//! (`crate::cluster`), with Redis's replies and errors. Commands change the state; the cluster
//! bus (`crate::cluster::links`) carries the changes to the other nodes (MEET starts a
//! handshake it completes, REPLICATE and FAILOVER are carried out by it).
//!
//! COUNTKEYSINSLOT and GETKEYSINSLOT scan the keys instead of keeping a per-slot index that
//! every write would pay for: O(keys in database 0) per call (GETKEYSINSLOT stops at its
//! count). Admin tools call them once per slot while resharding, which a scan makes slow on a
//! large node: the price of keeping writes untouched.

use bytes::Bytes;

use super::util::{help, int_arg};
use super::{commands, session, NO_KEYS};
use crate::cluster::bus::flag;
use crate::cluster::failover::{self, Manual};
use crate::cluster::gossip::{Ctx, Rng};
use crate::cluster::{Owner, Peer, State};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;
use crate::slot::SLOTS;

commands! {
    pub static COMMANDS;
    "asking", 1, "fast", NO_KEYS, "cluster", "3.0.0", session(asking), "Signals that a cluster client is following an -ASK redirect.";
    "readonly", 1, "loading stale fast", NO_KEYS, "cluster", "3.0.0", session(readonly), "Enables read-only queries for a connection to a Redis Cluster replica node.";
    "readwrite", 1, "loading stale fast", NO_KEYS, "cluster", "3.0.0", session(readwrite), "Enables read-write queries for a connection to a Reids Cluster replica node.";
    "cluster", -2, "", NO_KEYS, "cluster", "3.0.0", super::Run::Container, "A container for Redis Cluster commands.";
    "cluster|addslots", -3, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(addslots), "Assigns new hash slots to a node.";
    "cluster|addslotsrange", -4, "admin stale no_async_loading", NO_KEYS, "cluster", "7.0.0", session(addslotsrange), "Assigns new hash slot ranges to a node.";
    "cluster|bumpepoch", 2, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(bumpepoch), "Advances the cluster config epoch.";
    "cluster|count-failure-reports", 3, "admin stale", NO_KEYS, "cluster", "3.0.0", session(count_failure_reports), "Returns the number of active failure reports active for a node.";
    "cluster|countkeysinslot", 3, "stale", NO_KEYS, "cluster", "3.0.0", session(countkeysinslot), "Returns the number of keys in a hash slot.";
    "cluster|delslots", -3, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(delslots), "Sets hash slots as unbound for a node.";
    "cluster|delslotsrange", -4, "admin stale no_async_loading", NO_KEYS, "cluster", "7.0.0", session(delslotsrange), "Sets hash slot ranges as unbound for a node.";
    "cluster|failover", -2, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(failover), "Forces a replica to perform a manual failover of its master.";
    "cluster|flushslots", 2, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(flushslots), "Deletes all slots information from a node.";
    "cluster|forget", 3, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(forget), "Removes a node from the nodes table.";
    "cluster|getkeysinslot", 4, "stale", NO_KEYS, "cluster", "3.0.0", session(getkeysinslot), "Returns the key names in a hash slot.";
    "cluster|help", 2, "loading stale", NO_KEYS, "cluster", "5.0.0", session(help_), "Returns helpful text about the different subcommands.";
    "cluster|info", 2, "stale", NO_KEYS, "cluster", "3.0.0", session(info), "Returns information about the state of a node.";
    "cluster|keyslot", 3, "stale", NO_KEYS, "cluster", "3.0.0", session(keyslot), "Returns the hash slot for a key.";
    "cluster|links", 2, "stale", NO_KEYS, "cluster", "7.0.0", session(links), "Returns a list of all TCP links to and from peer nodes.";
    "cluster|meet", -4, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(meet), "Forces a node to handshake with another node.";
    "cluster|myid", 2, "stale", NO_KEYS, "cluster", "3.0.0", session(myid), "Returns the ID of a node.";
    "cluster|nodes", 2, "stale", NO_KEYS, "cluster", "3.0.0", session(nodes), "Returns the cluster configuration for a node.";
    "cluster|replicas", 3, "admin stale", NO_KEYS, "cluster", "5.0.0", session(replicas), "Lists the replica nodes of a master node.";
    "cluster|replicate", 3, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(replicate), "Configure a node as replica of a master node.";
    "cluster|reset", -2, "admin stale noscript", NO_KEYS, "cluster", "3.0.0", session(reset), "Resets a node.";
    "cluster|saveconfig", 2, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(saveconfig), "Forces a node to save the cluster configuration to disk.";
    "cluster|set-config-epoch", 3, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(set_config_epoch), "Sets the configuration epoch for a new node.";
    "cluster|setslot", -4, "admin stale no_async_loading", NO_KEYS, "cluster", "3.0.0", session(setslot), "Binds a hash slot to a node.";
    "cluster|shards", 2, "stale", NO_KEYS, "cluster", "7.0.0", session(shards), "Returns the mapping of cluster slots to shards.";
    "cluster|slaves", 3, "admin stale", NO_KEYS, "cluster", "3.0.0", session(replicas), "Lists the replica nodes of a master node.";
    "cluster|slots", 2, "stale", NO_KEYS, "cluster", "3.0.0", session(slots), "Returns the mapping of cluster slots to nodes.";
}

const DISABLED: &str = "ERR This instance has cluster support disabled";

/// Runs `f` on the node's state, or answers Redis's error when cluster mode is off.
fn on_state(s: &Session, f: impl FnOnce(&State) -> Reply) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    f(&s.server.cluster.read())
}

/// Changes the node's state with `f`; a change that succeeds is written to nodes.conf at once
/// (Redis saves it before replying too).
fn change(s: &Session, f: impl FnOnce(&mut State) -> Result<Reply, Reply>) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    let reply = {
        let mut st = s.server.cluster.write();
        match f(&mut st) {
            Ok(reply) => {
                st.update_state();
                reply
            }
            Err(refusal) => return refusal,
        }
    };
    if let Err(e) = s.server.cluster.save() {
        tracing::warn!("cannot write the cluster config file: {e}");
    }
    reply
}

/// Redis's `getSlotOrReply`.
fn slot_arg(arg: &[u8]) -> Result<u16, Reply> {
    match std::str::from_utf8(arg)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(n) if (0..SLOTS as i64).contains(&n) => Ok(n as u16),
        _ => Err(Reply::err("ERR Invalid or out of range slot")),
    }
}

pub fn asking(s: &mut Session, _args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    s.conn.asking = true;
    OK
}

pub fn readonly(s: &mut Session, _args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    s.conn.readonly = true;
    OK
}

pub fn readwrite(s: &mut Session, _args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    s.conn.readonly = false;
    OK
}

fn help_(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |_| {
        help(
            "CLUSTER",
            &[
                "ADDSLOTS <slot> [<slot> ...]",
                "    Assign slots to current node.",
                "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
                "    Assign slots which are between <start-slot> and <end-slot> to current node.",
                "BUMPEPOCH",
                "    Advance the cluster config epoch.",
                "COUNT-FAILURE-REPORTS <node-id>",
                "    Return number of failure reports for <node-id>.",
                "COUNTKEYSINSLOT <slot>",
                "    Return the number of keys in <slot>.",
                "DELSLOTS <slot> [<slot> ...]",
                "    Delete slots information from current node.",
                "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
                "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
                "FAILOVER [FORCE|TAKEOVER]",
                "    Promote current replica node to being a master.",
                "FORGET <node-id>",
                "    Remove a node from the cluster.",
                "GETKEYSINSLOT <slot> <count>",
                "    Return key names stored by current node in a slot.",
                "FLUSHSLOTS",
                "    Delete current node own slots information.",
                "INFO",
                "    Return information about the cluster.",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
                "MEET <ip> <port> [<bus-port>]",
                "    Connect nodes into a working cluster.",
                "MYID",
                "    Return the node id.",
                "NODES",
                "    Return cluster configuration seen by node. Output format:",
                "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
                "REPLICATE <node-id>",
                "    Configure current node as replica to <node-id>.",
                "RESET [HARD|SOFT]",
                "    Reset current node (default: soft).",
                "SET-CONFIG-EPOCH <epoch>",
                "    Set config epoch of current node.",
                "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
                "    Set slot state.",
                "REPLICAS <node-id>",
                "    Return <node-id> replicas.",
                "SAVECONFIG",
                "    Force saving cluster configuration on disk.",
                "SLOTS",
                "    Return information about slots range mappings. Each range is made of:",
                "    start, end, master and replicas IP addresses, ports and ids",
                "SHARDS",
                "    Return information about slot range mappings and the nodes associated with them.",
                "LINKS",
                "    Return information about all network links between this node and its peers.",
                "    Output format is an array where each array element is a map containing attributes of a link",
            ],
        )
    })
}

fn info(s: &mut Session, _args: &[Bytes]) -> Reply {
    let full = s.server.cluster.require_full_coverage();
    on_state(s, |st| {
        let assigned = st.assigned();
        let with = |bit: u16| {
            st.slots
                .iter()
                .filter(|&&o| o != Owner::Unassigned && st.flags_of(o) & bit != 0)
                .count()
        };
        let (pfail, fail) = (with(flag::PFAIL), with(flag::FAIL));
        let mut text = format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
            if st.ok(full) { "ok" } else { "fail" },
            assigned - pfail - fail,
            1 + st.peers.len(),
            st.size(),
            st.current_epoch,
            st.epoch_of(st.my_master()),
        );
        for (counts, way) in [(&st.sent, "sent"), (&st.received, "received")] {
            for (name, n) in crate::cluster::bus::kind::NAMES.iter().zip(counts.iter()) {
                if *n > 0 {
                    text.push_str(&format!("cluster_stats_messages_{name}_{way}:{n}\r\n"));
                }
            }
            let total: u64 = counts.iter().sum();
            text.push_str(&format!("cluster_stats_messages_{way}:{total}\r\n"));
        }
        text.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
        Reply::Verbatim(Bytes::from(text))
    })
}

fn myid(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |st| Reply::bulk_str(&st.myself))
}

fn nodes(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |st| Reply::Verbatim(Bytes::from(st.describe(true))))
}

/// A node's client address as CLUSTER SLOTS and SHARDS give it.
fn endpoint(st: &State, owner: Owner) -> (&str, u16, &str) {
    match owner {
        Owner::Peer(i) => {
            let p = &st.peers[i];
            (p.ip.as_str(), p.port, p.hostname.as_str())
        }
        _ => (
            st.my_ip.as_str(),
            st.announce.port,
            st.announce.hostname.as_str(),
        ),
    }
}

/// A node as CLUSTER SLOTS lists it: endpoint, port, id, and its metadata (the hostname).
fn slot_node(st: &State, owner: Owner) -> Reply {
    let (ip, port, hostname) = endpoint(st, owner);
    let meta = if hostname.is_empty() {
        Vec::new()
    } else {
        vec![(Reply::bulk_str("hostname"), Reply::bulk_str(hostname))]
    };
    Reply::Array(vec![
        Reply::bulk_str(ip),
        Reply::Int(port as i64),
        Reply::bulk_str(st.node_id(owner)),
        Reply::Map(meta),
    ])
}

/// The replicas CLUSTER SLOTS lists with a primary: as Redis's `isReplicaAvailable`, those
/// not FAILed that have a replication offset (one with none has not had its primary's data
/// yet: a client reading from it would find nothing).
fn healthy_replicas(st: &State, owner: Owner, my_offset: u64) -> Vec<Owner> {
    let mut out: Vec<Owner> = st
        .replicas_of(owner)
        .into_iter()
        .filter(|&i| !st.peers[i].has(flag::FAIL) && st.peers[i].repl_offset != 0)
        .map(Owner::Peer)
        .collect();
    if st.primary.as_deref() == Some(st.node_id(owner)) && my_offset != 0 {
        out.push(Owner::Myself);
    }
    // In node-id order, so that every node of the cluster lists them alike (Redis's own order
    // is the order each node learned of them, which its suite's consistency checks rely on
    // coming out the same).
    out.sort_by(|a, b| st.node_id(*a).cmp(st.node_id(*b)));
    out
}

fn slots(s: &mut Session, _args: &[Bytes]) -> Reply {
    let my_offset = s.server.replication.history().offset();
    on_state(s, |st| {
        Reply::Array(
            st.ranges()
                .into_iter()
                .map(|(first, last, owner)| {
                    let mut entry = vec![
                        Reply::Int(first as i64),
                        Reply::Int(last as i64),
                        slot_node(st, owner),
                    ];
                    for replica in healthy_replicas(st, owner, my_offset) {
                        entry.push(slot_node(st, replica));
                    }
                    Reply::Array(entry)
                })
                .collect(),
        )
    })
}

/// A node as CLUSTER SHARDS describes it.
fn shard_node(st: &State, owner: Owner, repl_offset: u64) -> Reply {
    let (ip, port, hostname) = endpoint(st, owner);
    let (offset, failed) = match owner {
        Owner::Peer(i) => (st.peers[i].repl_offset, st.peers[i].has(flag::FAIL)),
        _ => (repl_offset, false),
    };
    let mut fields = vec![
        (Reply::bulk_str("id"), Reply::bulk_str(st.node_id(owner))),
        (Reply::bulk_str("port"), Reply::Int(port as i64)),
        (Reply::bulk_str("ip"), Reply::bulk_str(ip)),
        (Reply::bulk_str("endpoint"), Reply::bulk_str(ip)),
    ];
    if !hostname.is_empty() {
        fields.push((Reply::bulk_str("hostname"), Reply::bulk_str(hostname)));
    }
    // As Redis: a replica with no offset yet is still loading its primary's data.
    let health = match (failed, st.is_master(owner), offset) {
        (true, _, _) => "fail",
        (false, false, 0) => "loading",
        _ => "online",
    };
    let role = if st.is_master(owner) {
        "master"
    } else {
        "replica"
    };
    fields.extend([
        (Reply::bulk_str("role"), Reply::bulk_str(role)),
        (
            Reply::bulk_str("replication-offset"),
            Reply::Int(offset as i64),
        ),
        (Reply::bulk_str("health"), Reply::bulk_str(health)),
    ]);
    Reply::Map(fields)
}

fn shards(s: &mut Session, _args: &[Bytes]) -> Reply {
    let offset = s.server.replication.history().offset();
    on_state(s, |st| {
        let ranges = st.ranges();
        Reply::Array(
            st.owners()
                .filter(|&o| st.is_master(o))
                .map(|owner| {
                    let slots = ranges
                        .iter()
                        .filter(|r| r.2 == owner)
                        .flat_map(|r| [Reply::Int(r.0 as i64), Reply::Int(r.1 as i64)])
                        .collect();
                    let mut nodes = vec![shard_node(st, owner, offset)];
                    let replicas = st.replicas_of(owner).into_iter().map(Owner::Peer);
                    let me =
                        (st.primary.as_deref() == Some(st.node_id(owner))).then_some(Owner::Myself);
                    for r in me.into_iter().chain(replicas) {
                        nodes.push(shard_node(st, r, offset));
                    }
                    Reply::Map(vec![
                        (Reply::bulk_str("slots"), Reply::Array(slots)),
                        (Reply::bulk_str("nodes"), Reply::Array(nodes)),
                    ])
                })
                .collect(),
        )
    })
}

fn keyslot(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |_| Reply::Int(crate::slot::key_slot(&args[2]) as i64))
}

/// How many keys of database 0 are in `slot`, over every worker (a slot's keys mostly live
/// on one, but WORMHOLE pins move keys to others): O(workers), from storage's slot index, which
/// exists in cluster mode only (0 without). Logically expired keys count until deleted, as in
/// Redis.
fn count_keys_in_slot(s: &Session, slot: u16) -> usize {
    (0..s.server.shards.len())
        .map(|i| {
            let shard = s.server.lock_shard(i);
            shard.dbs[0].keys_in_slot_count(slot).unwrap_or(0)
        })
        .sum()
}

fn countkeysinslot(s: &mut Session, args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    let slot = match int_arg(&args[2]) {
        Ok(n) if (0..SLOTS as i64).contains(&n) => n as u16,
        Ok(_) => return Reply::err("ERR Invalid slot"),
        Err(e) => return e,
    };
    Reply::Int(count_keys_in_slot(s, slot) as i64)
}

/// O(keys returned), from storage's slot index: newest first within a worker, as Redis lists a
/// slot (expired keys too, until deleted).
fn getkeysinslot(s: &mut Session, args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    let (slot, max) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Err(e), _) | (_, Err(e)) => return e,
        (Ok(slot), Ok(max)) => (slot, max),
    };
    if !(0..SLOTS as i64).contains(&slot) || max < 0 {
        return Reply::err("ERR Invalid slot or number of keys");
    }
    let mut keys = Vec::new();
    for i in 0..s.server.shards.len() {
        let shard = s.server.lock_shard(i);
        let in_slot = shard.dbs[0].keys_in_slot(slot as u16);
        let in_slot = in_slot.expect("cluster mode indexes database 0");
        keys.extend(
            in_slot
                .take(max as usize - keys.len())
                .map(|k| Reply::Bulk(Bytes::copy_from_slice(k))),
        );
    }
    Reply::Array(keys)
}

/// ADDSLOTS/DELSLOTS (and their RANGE forms once expanded): every slot checked before any
/// changes, with Redis's errors.
fn assign(s: &Session, slots: Result<Vec<u16>, Reply>, add: bool) -> Reply {
    let slots = match slots {
        Ok(v) => v,
        Err(e) => return e,
    };
    change(s, |st| {
        let mut seen = vec![false; SLOTS];
        for &slot in &slots {
            let owner = st.slots[slot as usize];
            if add && owner != Owner::Unassigned {
                return Err(Reply::err(format!("ERR Slot {slot} is already busy")));
            }
            if !add && owner == Owner::Unassigned {
                return Err(Reply::err(format!("ERR Slot {slot} is already unassigned")));
            }
            if std::mem::replace(&mut seen[slot as usize], true) {
                return Err(Reply::err(format!(
                    "ERR Slot {slot} specified multiple times"
                )));
            }
        }
        for &slot in &slots {
            if add {
                // Owning a slot ends importing it.
                st.importing.remove(&slot);
                st.slots[slot as usize] = Owner::Myself;
            } else {
                st.slots[slot as usize] = Owner::Unassigned;
            }
        }
        Ok(OK)
    })
}

fn slot_list(args: &[Bytes]) -> Result<Vec<u16>, Reply> {
    args[2..].iter().map(|a| slot_arg(a)).collect()
}

fn slot_ranges(args: &[Bytes], name: &str) -> Result<Vec<u16>, Reply> {
    if args.len() % 2 == 1 {
        return Err(super::util::wrong_arity(name));
    }
    let mut out = Vec::new();
    for pair in args[2..].chunks(2) {
        let (first, last) = (slot_arg(&pair[0])?, slot_arg(&pair[1])?);
        if first > last {
            return Err(Reply::err(format!(
                "ERR start slot number {first} is greater than end slot number {last}"
            )));
        }
        out.extend(first..=last);
    }
    Ok(out)
}

fn addslots(s: &mut Session, args: &[Bytes]) -> Reply {
    assign(s, slot_list(args), true)
}

fn delslots(s: &mut Session, args: &[Bytes]) -> Reply {
    assign(s, slot_list(args), false)
}

fn addslotsrange(s: &mut Session, args: &[Bytes]) -> Reply {
    assign(s, slot_ranges(args, "cluster|addslotsrange"), true)
}

fn delslotsrange(s: &mut Session, args: &[Bytes]) -> Reply {
    assign(s, slot_ranges(args, "cluster|delslotsrange"), false)
}

fn db0_empty(s: &Session) -> bool {
    (0..s.server.shards.len()).all(|i| s.server.lock_shard(i).dbs[0].is_empty())
}

fn flushslots(s: &mut Session, _args: &[Bytes]) -> Reply {
    let empty = db0_empty(s);
    change(s, |st| {
        if !empty {
            return Err(Reply::err(
                "ERR DB must be empty to perform CLUSTER FLUSHSLOTS.",
            ));
        }
        for owner in st.slots.iter_mut() {
            if *owner == Owner::Myself {
                *owner = Owner::Unassigned;
            }
        }
        Ok(OK)
    })
}

fn setslot(s: &mut Session, args: &[Bytes]) -> Reply {
    let slot = match slot_arg(&args[2]) {
        Ok(slot) => slot,
        Err(e) if s.server.cluster.enabled() => return e,
        Err(_) => return Reply::err(DISABLED),
    };
    let action = super::util::lower(&args[3]);
    let holds_keys = count_keys_in_slot(s, slot) > 0;
    let imported = std::cell::Cell::new(false);
    let reply = change(s, |st| {
        let node = |st: &State, unknown: &str| {
            st.lookup(&args[4])
                .ok_or_else(|| super::util::err_echo(&format!("ERR {unknown} "), &args[4], ""))
        };
        let owner = st.slots[slot as usize];
        match (action.as_str(), args.len()) {
            ("migrating", 5) => {
                if owner != Owner::Myself {
                    return Err(Reply::err(format!(
                        "ERR I'm not the owner of hash slot {slot}"
                    )));
                }
                let to = node(st, "I don't know about node")?;
                st.migrating.insert(slot, to);
            }
            ("importing", 5) => {
                if owner == Owner::Myself {
                    return Err(Reply::err(format!(
                        "ERR I'm already the owner of hash slot {slot}"
                    )));
                }
                let from = node(st, "I don't know about node")?;
                st.importing.insert(slot, from);
            }
            ("stable", 4) => {
                st.migrating.remove(&slot);
                st.importing.remove(&slot);
            }
            ("node", 5) => {
                let to = node(st, "Unknown node")?;
                if owner == Owner::Myself && to != Owner::Myself && holds_keys {
                    return Err(Reply::err(format!("ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot.")));
                }
                if !holds_keys {
                    st.migrating.remove(&slot);
                }
                if to == Owner::Myself && st.importing.remove(&slot).is_some() {
                    bump_epoch(st);
                    imported.set(true);
                }
                st.slots[slot as usize] = to;
            }
            _ => {
                return Err(Reply::err(
                    "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
                ))
            }
        }
        Ok(OK)
    });
    // As Redis: a slot imported here is announced to every node at once (its replicas, and the
    // nodes redis-cli did not tell), rather than on the next pings, up to half a node timeout.
    if imported.get() {
        crate::cluster::links::broadcast_pong(s.server);
    }
    reply
}

/// Redis's `clusterBumpConfigEpochWithoutConsensus`: a new config epoch unless this node's is
/// already the only greatest one. True if it bumped.
fn bump_epoch(st: &mut State) -> bool {
    if st.config_epoch == 0 || st.config_epoch != st.current_epoch {
        st.current_epoch += 1;
        st.config_epoch = st.current_epoch;
        true
    } else {
        false
    }
}

fn bumpepoch(s: &mut Session, _args: &[Bytes]) -> Reply {
    change(s, |st| {
        let word = if bump_epoch(st) { "BUMPED" } else { "STILL" };
        Ok(Reply::StatusOwned(format!("{word} {}", st.config_epoch)))
    })
}

fn saveconfig(s: &mut Session, _args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    match s.server.cluster.save() {
        Ok(()) => OK,
        Err(e) => Reply::err(format!("ERR Error saving the cluster node config: {e}")),
    }
}

fn reset(s: &mut Session, args: &[Bytes]) -> Reply {
    let hard = match args.get(2).map(|a| super::util::lower(a)).as_deref() {
        None | Some("soft") => false,
        Some("hard") => true,
        Some(_) if args.len() == 3 => return Reply::err("ERR syntax error"),
        Some(_) => return super::util::subcommand_syntax_error(&args[1], "CLUSTER"),
    };
    let empty = db0_empty(s);
    let mut was_replica = false;
    let reply = change(s, |st| {
        was_replica = st.is_replica();
        if !empty && !was_replica {
            return Err(Reply::err(
                "ERR CLUSTER RESET can't be called with master nodes containing keys",
            ));
        }
        st.forget_everything();
        if hard {
            st.myself = crate::server_state::random_hex(40);
            st.current_epoch = 0;
            st.config_epoch = 0;
            st.last_vote_epoch = 0;
        }
        Ok(OK)
    });
    // A replica reset becomes an empty primary (the bus ends its replication), as Redis
    // empties its data.
    if was_replica && reply == OK {
        crate::replication::replica::promote(s.server);
        super::server::flushall(s, &args[..1]);
    }
    reply
}

/// A node id argument of a command about another node: Redis's "Unknown node" when it is
/// neither this node nor a known peer.
fn known(st: &State, id: &[u8]) -> Result<Owner, Reply> {
    st.lookup(id)
        .ok_or_else(|| super::util::err_echo("ERR Unknown node ", id, ""))
}

fn count_failure_reports(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| match known(st, &args[2]) {
        Ok(Owner::Peer(i)) => Reply::Int(st.peers[i].fail_reports.len() as i64),
        Ok(_) => Reply::Int(0),
        Err(e) => e,
    })
}

fn replicas(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| {
        let owner = match known(st, &args[2]) {
            Ok(o) => o,
            Err(e) => return e,
        };
        if !st.is_master(owner) {
            return Reply::err("ERR The specified node is not a master");
        }
        let id = st.node_id(owner);
        let lines = st.describe(false);
        Reply::Array(
            lines
                .lines()
                .filter(|l| l.split(' ').nth(3) == Some(id))
                .map(Reply::bulk_str)
                .collect(),
        )
    })
}

/// One bus connection as CLUSTER LINKS describes it.
fn link_entry(p: &Peer, link: &crate::cluster::Link, direction: &str) -> Reply {
    Reply::Map(vec![
        (Reply::bulk_str("direction"), Reply::bulk_str(direction)),
        (Reply::bulk_str("node"), Reply::bulk_str(&p.id)),
        (
            Reply::bulk_str("create-time"),
            Reply::Int(link.created as i64),
        ),
        (Reply::bulk_str("events"), Reply::bulk_str("r")),
        (Reply::bulk_str("send-buffer-allocated"), Reply::Int(0)),
        (Reply::bulk_str("send-buffer-used"), Reply::Int(0)),
    ])
}

fn links(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |st| {
        let mut out = Vec::new();
        for p in &st.peers {
            if let Some(l) = &p.link {
                out.push(link_entry(p, l, "to"));
            }
            if let Some(l) = &p.inbound {
                out.push(link_entry(p, l, "from"));
            }
        }
        Reply::Array(out)
    })
}

/// How long a forgotten node is not re-added from gossip (Redis's blacklist TTL).
const FORGET_TTL_MS: u64 = 60_000;

fn forget(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, |st| match known(st, &args[2])? {
        Owner::Myself => Err(Reply::err("ERR I tried hard but I can't forget myself...")),
        Owner::Peer(i) if st.my_primary() == Some(i) => {
            Err(Reply::err("ERR Can't forget my master!"))
        }
        Owner::Peer(i) => {
            let until = crate::server_state::unix_ms() + FORGET_TTL_MS;
            st.blacklist.insert(st.peers[i].id.clone(), until);
            st.remove_peer(i);
            Ok(OK)
        }
        Owner::Unassigned => unreachable!("a known node has an owner"),
    })
}

fn replicate(s: &mut Session, args: &[Bytes]) -> Reply {
    let empty = db0_empty(s);
    change(s, |st| match known(st, &args[2])? {
        Owner::Myself => Err(Reply::err("ERR Can't replicate myself")),
        Owner::Peer(i) if !st.peers[i].is_master() => Err(Reply::err(
            "ERR I can only replicate a master, not a replica.",
        )),
        Owner::Peer(i) => {
            if !st.is_replica() && (st.slot_count(Owner::Myself) > 0 || !empty) {
                return Err(Reply::err(
                    "ERR To set a master the node must be empty and without assigned slots.",
                ));
            }
            crate::cluster::gossip::become_replica_of(st, i);
            Ok(OK)
        }
        Owner::Unassigned => unreachable!("a known node has an owner"),
    })
}

fn failover(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return super::util::subcommand_syntax_error(&args[1], "CLUSTER");
    }
    let how = match args.get(2) {
        None => Manual::Default,
        Some(o) if o.eq_ignore_ascii_case(b"force") => Manual::Force,
        Some(o) if o.eq_ignore_ascii_case(b"takeover") => Manual::Takeover,
        Some(_) => return Reply::err("ERR syntax error"),
    };
    let ctx = Ctx::of(s.server);
    change(s, |st| {
        if !st.is_replica() {
            return Err(Reply::err(
                "ERR You should send CLUSTER FAILOVER to a replica",
            ));
        }
        let Some(m) = st.my_primary() else {
            return Err(Reply::err(
                "ERR I'm a replica but my master is unknown to me",
            ));
        };
        let p = &st.peers[m];
        if how == Manual::Default && (p.has(flag::FAIL) || p.link.is_none()) {
            return Err(Reply::err(
                "ERR Master is down or failed, please use CLUSTER FAILOVER FORCE",
            ));
        }
        failover::start_manual(st, how, &ctx, &mut Rng::new());
        Ok(OK)
    })
}

/// Redis's `clusterStartHandshake` checks: an IP address (not a name) and ports in range.
fn meet_address(ip: &[u8], port: i64, cport: i64) -> Option<String> {
    let ip: std::net::IpAddr = std::str::from_utf8(ip).ok()?.parse().ok()?;
    let ok = |p: i64| (1..=65535).contains(&p);
    (ok(port) && ok(cport)).then(|| ip.to_string())
}

fn meet(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 5 {
        return super::util::subcommand_syntax_error(&args[1], "CLUSTER");
    }
    let number = |a: &Bytes| {
        std::str::from_utf8(a)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
    };
    let Some(port) = number(&args[3]) else {
        return super::util::err_echo("ERR Invalid TCP base port specified: ", &args[3], "");
    };
    let cport = match args.get(4) {
        Some(a) => match number(a) {
            Some(p) => p,
            None => return super::util::err_echo("ERR Invalid TCP bus port specified: ", a, ""),
        },
        None => port + 10000,
    };
    let Some(ip) = meet_address(&args[2], port, cport) else {
        let mut both = args[2].to_vec();
        both.push(b':');
        both.extend_from_slice(&args[3]);
        return super::util::err_echo("ERR Invalid node address specified: ", &both, "");
    };
    change(s, |st| {
        let (port, cport) = (port as u16, cport as u16);
        let pending = st
            .peers
            .iter()
            .any(|p| p.has(flag::HANDSHAKE) && p.ip == ip && p.port == port && p.cport == cport);
        if !pending {
            let now = crate::server_state::unix_ms();
            let id = crate::server_state::random_hex(40);
            let flags = flag::HANDSHAKE | flag::MEET;
            st.peers
                .push(Peer::new(id, ip.clone(), port, cport, flags, now));
        }
        Ok(OK)
    })
}

fn set_config_epoch(s: &mut Session, args: &[Bytes]) -> Reply {
    let epoch = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    change(s, |st| {
        if epoch < 0 {
            return Err(Reply::err(format!(
                "ERR Invalid config epoch specified: {epoch}"
            )));
        }
        if !st.peers.is_empty() {
            return Err(Reply::err("ERR The user can assign a config epoch only when the node does not know any other node."));
        }
        if st.config_epoch != 0 {
            return Err(Reply::err("ERR Node config epoch is already non-zero"));
        }
        st.config_epoch = epoch as u64;
        st.current_epoch = st.current_epoch.max(epoch as u64);
        Ok(OK)
    })
}
