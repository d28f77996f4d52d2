//! CLUSTER and its subcommands, ASKING, READONLY, READWRITE: a node's view of its slots
//! (`crate::cluster`), with Redis's replies and errors. Without a cluster bus a node knows only
//! itself: MEET answers a clear error, and FORGET, REPLICATE, FAILOVER, REPLICAS and
//! COUNT-FAILURE-REPORTS answer as a Redis node that has met no peer does.
//!
//! COUNTKEYSINSLOT and GETKEYSINSLOT scan the keys instead of keeping a per-slot index that
//! every write would pay for: O(keys in database 0) per call (GETKEYSINSLOT stops at its
//! count). Admin tools call them once per slot while resharding, which a scan makes slow on a
//! large node: the price of keeping writes untouched.

use bytes::Bytes;

use super::util::{help, int_arg};
use super::{commands, session, NO_KEYS};
use crate::cluster::{Owner, State};
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
    let reply = match f(&mut s.server.cluster.write()) {
        Ok(reply) => reply,
        Err(refusal) => return refusal,
    };
    if let Err(e) = s.server.cluster.save(s.server.port) {
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
    let full = s
        .server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get_bool("cluster-require-full-coverage");
    on_state(s, |st| {
        let assigned = st.assigned();
        let size = usize::from(st.slots.contains(&Owner::Myself))
            + (0..st.peers.len())
                .filter(|&i| st.slots.contains(&Owner::Peer(i)))
                .count();
        let text = format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
            if st.ok(full) { "ok" } else { "fail" },
            1 + st.peers.len(),
            st.current_epoch,
            st.config_epoch,
        );
        Reply::Verbatim(Bytes::from(text))
    })
}

fn myid(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |st| Reply::bulk_str(&st.myself))
}

fn nodes(s: &mut Session, _args: &[Bytes]) -> Reply {
    let port = s.server.port;
    on_state(s, |st| {
        Reply::Verbatim(Bytes::from(st.describe(port, true)))
    })
}

/// A node as CLUSTER SLOTS lists it: endpoint, port, id, and its (empty) metadata.
fn slot_node(st: &State, owner: Owner, port: u16) -> Reply {
    let (ip, port) = match owner {
        Owner::Peer(i) => (st.peers[i].ip.as_str(), st.peers[i].port),
        _ => ("", port),
    };
    Reply::Array(vec![
        Reply::bulk_str(ip),
        Reply::Int(port as i64),
        Reply::bulk_str(st.node_id(owner)),
        Reply::Map(Vec::new()),
    ])
}

fn slots(s: &mut Session, _args: &[Bytes]) -> Reply {
    let port = s.server.port;
    on_state(s, |st| {
        Reply::Array(
            st.ranges()
                .into_iter()
                .map(|(first, last, owner)| {
                    Reply::Array(vec![
                        Reply::Int(first as i64),
                        Reply::Int(last as i64),
                        slot_node(st, owner, port),
                    ])
                })
                .collect(),
        )
    })
}

fn shards(s: &mut Session, _args: &[Bytes]) -> Reply {
    let port = s.server.port;
    on_state(s, |st| {
        let ranges = st.ranges();
        let owners = std::iter::once(Owner::Myself).chain((0..st.peers.len()).map(Owner::Peer));
        Reply::Array(
            owners
                .map(|owner| {
                    let slots = ranges
                        .iter()
                        .filter(|r| r.2 == owner)
                        .flat_map(|r| [Reply::Int(r.0 as i64), Reply::Int(r.1 as i64)])
                        .collect();
                    let (ip, port) = match owner {
                        Owner::Peer(i) => (st.peers[i].ip.as_str(), st.peers[i].port),
                        _ => ("", port),
                    };
                    let node = Reply::Map(vec![
                        (Reply::bulk_str("id"), Reply::bulk_str(st.node_id(owner))),
                        (Reply::bulk_str("port"), Reply::Int(port as i64)),
                        (Reply::bulk_str("ip"), Reply::bulk_str(ip)),
                        (Reply::bulk_str("endpoint"), Reply::bulk_str(ip)),
                        (Reply::bulk_str("role"), Reply::bulk_str("master")),
                        (Reply::bulk_str("replication-offset"), Reply::Int(0)),
                        (Reply::bulk_str("health"), Reply::bulk_str("online")),
                    ]);
                    Reply::Map(vec![
                        (Reply::bulk_str("slots"), Reply::Array(slots)),
                        (Reply::bulk_str("nodes"), Reply::Array(vec![node])),
                    ])
                })
                .collect(),
        )
    })
}

fn keyslot(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |_| Reply::Int(crate::slot::key_slot(&args[2]) as i64))
}

/// The live keys of database 0 in `slot`, up to `max`: a scan of every shard (a slot's keys
/// mostly live in one, but WORMHOLE pins move keys to other shards).
fn keys_in_slot(s: &Session, slot: u16, max: usize) -> Vec<Bytes> {
    let now = crate::server_state::unix_ms();
    let mut out = Vec::new();
    for shard in s.server.lock_all() {
        for (k, _, _) in shard.dbs[0].iter_live(now) {
            if out.len() >= max {
                return out;
            }
            if crate::slot::key_slot(k) == slot {
                out.push(Bytes::copy_from_slice(k));
            }
        }
    }
    out
}

/// O(workers): each worker's database 0 counts its keys per slot (storage's slot index). A
/// slot's keys mostly live on one worker, but WORMHOLE pins move keys to others. Logically
/// expired keys count until deleted, as in Redis.
fn countkeysinslot(s: &mut Session, args: &[Bytes]) -> Reply {
    if !s.server.cluster.enabled() {
        return Reply::err(DISABLED);
    }
    let slot = match int_arg(&args[2]) {
        Ok(n) if (0..SLOTS as i64).contains(&n) => n as u16,
        Ok(_) => return Reply::err("ERR Invalid slot"),
        Err(e) => return e,
    };
    let count: usize = (0..s.server.shards.len())
        .map(|i| {
            let shard = s.server.lock_shard(i);
            shard.dbs[0]
                .keys_in_slot_count(slot)
                .expect("cluster mode indexes database 0")
        })
        .sum();
    Reply::Int(count as i64)
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
    let holds_keys = !keys_in_slot(s, slot, 1).is_empty();
    change(s, |st| {
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
    })
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
    match s.server.cluster.save(s.server.port) {
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
    change(s, |st| {
        if !empty {
            return Err(Reply::err(
                "ERR CLUSTER RESET can't be called with master nodes containing keys",
            ));
        }
        st.slots.fill(Owner::Unassigned);
        st.peers.clear();
        st.migrating.clear();
        st.importing.clear();
        if hard {
            st.myself = crate::server_state::random_hex(40);
            st.current_epoch = 0;
            st.config_epoch = 0;
            st.last_vote_epoch = 0;
        }
        Ok(OK)
    })
}

/// A node id argument of a command about another node: Redis's "Unknown node" when it is
/// neither this node nor a known peer.
fn known(st: &State, id: &[u8]) -> Result<Owner, Reply> {
    st.lookup(id)
        .ok_or_else(|| super::util::err_echo("ERR Unknown node ", id, ""))
}

fn count_failure_reports(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| match known(st, &args[2]) {
        Ok(_) => Reply::Int(0),
        Err(e) => e,
    })
}

fn replicas(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| match known(st, &args[2]) {
        Ok(_) => Reply::Array(Vec::new()),
        Err(e) => e,
    })
}

fn links(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |_| Reply::Array(Vec::new()))
}

fn forget(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| match known(st, &args[2]) {
        Ok(Owner::Myself) => Reply::err("ERR I tried hard but I can't forget myself..."),
        Ok(_) => {
            Reply::err("ERR CLUSTER FORGET needs the cluster bus, which WarpEngine has not yet")
        }
        Err(e) => e,
    })
}

fn replicate(s: &mut Session, args: &[Bytes]) -> Reply {
    on_state(s, |st| match known(st, &args[2]) {
        Ok(Owner::Myself) => Reply::err("ERR Can't replicate myself"),
        Ok(_) => {
            Reply::err("ERR CLUSTER REPLICATE needs the cluster bus, which WarpEngine has not yet")
        }
        Err(e) => e,
    })
}

fn failover(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return super::util::subcommand_syntax_error(&args[1], "CLUSTER");
    }
    if let Some(option) = args.get(2) {
        if !option.eq_ignore_ascii_case(b"force") && !option.eq_ignore_ascii_case(b"takeover") {
            return Reply::err("ERR syntax error");
        }
    }
    on_state(s, |_| {
        Reply::err("ERR You should send CLUSTER FAILOVER to a replica")
    })
}

fn meet(s: &mut Session, _args: &[Bytes]) -> Reply {
    on_state(s, |_| {
        Reply::err("ERR CLUSTER MEET needs the cluster bus, which WarpEngine has not yet")
    })
}
