//! What a node does with bus messages, as Redis's `clusterProcessPacket`: handshakes (a MEET
//! adds its sender under a random name until the first PONG tells the real one), the gossip
//! that teaches nodes of each other, roles, slot claims decided by config epochs (UPDATE to
//! the stale), epoch collisions, failure reports (PFAIL seen by a majority of primaries becomes
//! FAIL, broadcast) — and what it sends: PING/PONG/MEET with its header and gossip.
//!
//! Everything runs on the bus task under the state's lock; sending is queueing a frame on a
//! link ([`super::Link`]). Elections live in [`super::failover`].

use super::bus::{self, flag, kind, Body, Gossip, Header, Message};
use super::{Link, Owner, Peer, State};

/// What processing needs besides the state: the clock and settings read once per event.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Unix ms.
    pub now: u64,
    pub node_timeout: u64,
    /// This node's replication offset (sent in every header).
    pub repl_offset: u64,
    pub allow_replica_migration: bool,
    pub no_failover: bool,
    /// How old this replica's data is: ms since its primary last sent anything (link up), or
    /// since the link went down (u64::MAX if it never came up).
    pub data_age: u64,
    /// `cluster-replica-validity-factor` (0: any data age may run for election).
    pub validity_factor: u64,
    /// `repl-ping-replica-period`, in ms.
    pub repl_ping_period: u64,
}

/// The connection a message came in on.
pub struct Incoming<'a> {
    pub id: u64,
    pub inbound: bool,
    /// Writes to the same connection (PONG answers a PING there).
    pub tx: &'a tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Ends an inbound link's connection.
    pub abort: Option<tokio::task::AbortHandle>,
    /// The remote address, and the local one (which is this node's address, as the sender
    /// reached it).
    pub peer_ip: String,
    pub local_ip: String,
}

/// A small xorshift generator: gossip picks need spread, not quality.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let seed = u64::from_str_radix(&crate::server_state::random_hex(16), 16).unwrap_or(1);
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// Redis's `clusterBuildMessageHdr`: who this node is, the slots it (or its primary) serves,
/// its epochs and offset.
pub fn header(st: &State, kind: u16, ctx: &Ctx) -> Header {
    let master = st.my_master();
    let mut h = Header::new(kind, &st.myself);
    h.port = st.announce.port;
    h.cport = st.announce.cport;
    h.myip = st.announce.ip.clone();
    h.flags = st.flags_of(Owner::Myself) | if ctx.no_failover { flag::NOFAILOVER } else { 0 };
    h.myslots = st.bitmap_of(master);
    h.slaveof = st.primary.clone();
    h.current_epoch = st.current_epoch;
    h.config_epoch = st.epoch_of(master);
    h.offset = ctx.repl_offset;
    // Informational (receivers do not act on it): fail only if even partial coverage is.
    h.state = u8::from(!st.ok(false));
    if st.failover.paused_for_replica(ctx.now) {
        h.mflags[0] |= bus::mflag::PAUSED;
    }
    h
}

fn gossip_entry(p: &Peer) -> Gossip {
    Gossip {
        name: p.id.clone(),
        ping_sent: (p.ping_sent / 1000) as u32,
        pong_received: (p.pong_received / 1000) as u32,
        ip: p.ip.clone(),
        port: p.port,
        cport: p.cport,
        flags: p.flags,
        pport: p.pport,
    }
}

/// Redis's `clusterSendPing`: a PING, PONG or MEET with a gossip section of a tenth of the
/// known nodes (at least 3, at most all but two), plus every node thought failing, and the
/// hostname extension when one is announced.
pub fn ping(st: &State, kind: u16, ctx: &Ctx, rng: &mut Rng) -> Vec<u8> {
    let known = st.peers.len() + 1;
    let wanted = (known / 10).max(3).min(known.saturating_sub(2));
    let mut candidates: Vec<usize> = (0..st.peers.len())
        .filter(|&i| {
            let p = &st.peers[i];
            !p.has(flag::PFAIL | flag::HANDSHAKE | flag::NOADDR)
                && (p.link.is_some() || st.slot_count(Owner::Peer(i)) > 0)
        })
        .collect();
    let mut gossip = Vec::new();
    while gossip.len() < wanted && !candidates.is_empty() {
        let i = candidates.swap_remove(rng.below(candidates.len()));
        gossip.push(gossip_entry(&st.peers[i]));
    }
    for p in &st.peers {
        if p.has(flag::PFAIL) && !p.has(flag::HANDSHAKE | flag::NOADDR) {
            gossip.push(gossip_entry(p));
        }
    }
    let hostname = (!st.announce.hostname.is_empty()).then(|| st.announce.hostname.clone());
    bus::encode(&Message {
        header: header(st, kind, ctx),
        body: Body::Ping { gossip, hostname },
    })
}

/// Sends a PING on a peer's outbound link, noting when (a PONG clears it).
pub fn send_ping(st: &mut State, i: usize, ctx: &Ctx, rng: &mut Rng) {
    let kind = if st.peers[i].has(flag::MEET) {
        kind::MEET
    } else {
        kind::PING
    };
    let frame = ping(st, kind, ctx, rng);
    st.send(i, frame);
    if kind == kind::PING {
        st.peers[i].ping_sent = ctx.now;
    }
}

/// A message to every peer with a link.
pub fn broadcast(st: &mut State, frame: &[u8]) {
    for i in 0..st.peers.len() {
        if !st.peers[i].has(flag::HANDSHAKE) {
            st.send(i, frame.to_vec());
        }
    }
}

/// Redis's `clusterBroadcastPong`: everyone learns a new configuration at once.
pub fn broadcast_pong(st: &mut State, ctx: &Ctx, rng: &mut Rng) {
    for i in 0..st.peers.len() {
        if !st.peers[i].has(flag::HANDSHAKE) {
            let frame = ping(st, kind::PONG, ctx, rng);
            st.send(i, frame);
        }
    }
}

/// What a message changed beyond the state itself.
#[derive(Default, Debug)]
pub struct Outcome {
    /// nodes.conf should be written.
    pub save: bool,
    /// The link the message came on is to be closed (a handshake that found a known node).
    pub drop_link: bool,
    /// A PUBLISH to deliver to this node's subscribers: (shard channel?, channel, message).
    pub publish: Option<(bool, Vec<u8>, Vec<u8>)>,
}

/// Redis's `clusterProcessPacket` for one decoded message.
pub fn process(st: &mut State, link: &Incoming, msg: Message, ctx: &Ctx, rng: &mut Rng) -> Outcome {
    let mut out = Outcome::default();
    let h = &msg.header;
    let now = ctx.now;
    if let Some(n) = st.received.get_mut(h.kind as usize) {
        *n += 1;
    }
    // The node at the other end of an outbound link is known by the link.
    let link_node = if link.inbound {
        None
    } else {
        st.peers
            .iter()
            .position(|p| p.link.as_ref().is_some_and(|l| l.id == link.id))
    };
    let sender = match link_node {
        Some(i) if !st.peers[i].has(flag::HANDSHAKE) => Some(i),
        _ => st.peer(h.sender.as_bytes()),
    };
    if let Some(s) = sender {
        if link.inbound && st.peers[s].inbound.as_ref().map(|l| l.id) != Some(link.id) {
            st.peers[s].inbound = Some(Link {
                id: link.id,
                tx: link.tx.clone(),
                created: now,
                abort: link.abort.clone(),
            });
        }
        st.peers[s].data_received = now;
    }
    let known_sender = sender.filter(|&s| !st.peers[s].has(flag::HANDSHAKE));
    if let Some(s) = known_sender {
        st.current_epoch = st.current_epoch.max(h.current_epoch);
        if h.config_epoch > st.peers[s].config_epoch {
            st.peers[s].config_epoch = h.config_epoch;
            out.save = true;
        }
        st.peers[s].repl_offset = h.offset;
        if h.mflags[0] & bus::mflag::PAUSED != 0 && st.my_primary() == Some(s) {
            st.failover.primary_paused_at(h.offset);
        }
    }
    let is_ping = matches!(h.kind, kind::PING | kind::PONG | kind::MEET);
    if h.kind == kind::PING || h.kind == kind::MEET {
        if (h.kind == kind::MEET || st.my_ip.is_empty())
            && st.announce.ip.is_empty()
            && !link.local_ip.is_empty()
            && st.my_ip != link.local_ip
        {
            tracing::info!("IP address for this node updated to {}", link.local_ip);
            st.my_ip = link.local_ip.clone();
            out.save = true;
        }
        if sender.is_none() && h.kind == kind::MEET {
            let ip = if h.myip.is_empty() {
                link.peer_ip.clone()
            } else {
                h.myip.clone()
            };
            let id = crate::server_state::random_hex(40);
            let mut peer = Peer::new(id, ip, h.port, h.cport, flag::HANDSHAKE, now);
            peer.pport = h.pport;
            st.peers.push(peer);
            out.save = true;
        }
        let pong = ping(st, kind::PONG, ctx, rng);
        st.count_sent(&pong);
        let _ = link.tx.send(pong);
    }
    if is_ping {
        if let Some(ln) = link_node {
            if st.peers[ln].has(flag::HANDSHAKE) {
                if let Some(s) = sender {
                    // Already known under its real name: this handshake was a duplicate.
                    update_address(st, s, link, h);
                    st.remove_peer(ln);
                    out.save = true;
                    out.drop_link = true;
                    return out;
                }
                tracing::info!("Handshake with node {} completed.", h.sender);
                let p = &mut st.peers[ln];
                p.id = h.sender.clone();
                p.flags &= !flag::HANDSHAKE;
                p.flags |= h.flags & (flag::MASTER | flag::SLAVE);
                out.save = true;
            } else if st.peers[ln].id != h.sender {
                // Someone else answers at that address now.
                let p = &mut st.peers[ln];
                p.flags |= flag::NOADDR;
                p.ip.clear();
                (p.port, p.cport, p.pport) = (0, 0, 0);
                p.link = None;
                out.save = true;
                return out;
            }
        }
        if let Some(s) = sender {
            let p = &mut st.peers[s];
            p.flags = (p.flags & !flag::NOFAILOVER) | (h.flags & flag::NOFAILOVER);
        }
        if let (Some(s), kind::PING) = (known_sender, h.kind) {
            if update_address(st, s, link, h) {
                out.save = true;
            }
        }
        if let (Some(ln), kind::PONG) = (link_node, h.kind) {
            let p = &mut st.peers[ln];
            p.pong_received = now;
            p.ping_sent = 0;
            if p.has(flag::PFAIL) {
                p.flags &= !flag::PFAIL;
            } else if p.has(flag::FAIL) {
                clear_failure_if_needed(st, ln, ctx);
            }
        }
        if let Some(s) = known_sender {
            set_role(st, s, h, &mut out);
            let master = if st.peers[s].is_master() {
                Some(Owner::Peer(s))
            } else {
                st.peers[s]
                    .primary
                    .as_deref()
                    .and_then(|id| st.lookup(id.as_bytes()))
            };
            let dirty = master.is_some_and(|m| st.bitmap_of(m) != h.myslots);
            if dirty && st.peers[s].is_master() {
                update_slots_config_with(st, Owner::Peer(s), h.config_epoch, &h.myslots, ctx);
                out.save = true;
            }
            if dirty {
                send_update_if_stale(st, s, h, ctx);
            }
            if st.primary.is_none()
                && st.peers[s].is_master()
                && h.config_epoch == st.config_epoch
                && epoch_collision(st, s)
            {
                out.save = true;
            }
            process_gossip(st, Some(s), &msg, ctx);
            if let Body::Ping { hostname, .. } = &msg.body {
                st.peers[s].hostname = hostname.clone().unwrap_or_default();
            }
        }
        return out;
    }
    let Some(s) = known_sender else {
        return out;
    };
    match (&msg.body, h.kind) {
        (Body::Fail { node }, kind::FAIL) => {
            if let Some(f) = st.peer(node.as_bytes()) {
                if !st.peers[f].has(flag::FAIL) {
                    tracing::info!("FAIL message received from {} about {node}", h.sender);
                    let p = &mut st.peers[f];
                    p.flags = (p.flags | flag::FAIL) & !flag::PFAIL;
                    p.fail_time = now;
                    out.save = true;
                }
            }
        }
        (Body::Publish { channel, message }, kind::PUBLISH | kind::PUBLISHSHARD) => {
            out.publish = Some((
                h.kind == kind::PUBLISHSHARD,
                channel.clone(),
                message.clone(),
            ));
        }
        (
            Body::Update {
                config_epoch,
                node,
                slots,
            },
            kind::UPDATE,
        ) => {
            if let Some(n) = st.peer(node.as_bytes()) {
                if st.peers[n].config_epoch < *config_epoch {
                    if !st.peers[n].is_master() {
                        set_as_master(st, n);
                    }
                    st.peers[n].config_epoch = *config_epoch;
                    update_slots_config_with(st, Owner::Peer(n), *config_epoch, slots, ctx);
                    out.save = true;
                }
            }
        }
        (_, kind::FAILOVER_AUTH_REQUEST) => {
            super::failover::vote_if_needed(st, s, h, ctx);
            out.save = true;
        }
        // A vote counts from a primary serving slots, for this election's epoch.
        (_, kind::FAILOVER_AUTH_ACK)
            if st.peers[s].is_master()
                && st.slot_count(Owner::Peer(s)) > 0
                && h.current_epoch >= st.failover.auth_epoch =>
        {
            st.failover.votes += 1;
        }
        // Only a replica of this node may ask it to pause for a manual failover.
        (_, kind::MFSTART) if st.peers[s].primary.as_deref() == Some(st.myself.as_str()) => {
            st.failover.start_as_primary(s, now);
            tracing::warn!("Manual failover requested by replica {}.", h.sender);
            let frame = ping(st, kind::PING, ctx, rng);
            st.count_sent(&frame);
            let _ = link.tx.send(frame);
        }
        _ => {}
    }
    out
}

/// Redis's `nodeUpdateAddressIfNeeded`: a node met at a new address (its PING says so) is
/// reconnected there.
fn update_address(st: &mut State, s: usize, link: &Incoming, h: &Header) -> bool {
    let ip = if h.myip.is_empty() {
        link.peer_ip.clone()
    } else {
        h.myip.clone()
    };
    let p = &mut st.peers[s];
    if p.link.as_ref().is_some_and(|l| l.id == link.id) {
        return false;
    }
    if ip.is_empty() || (p.ip == ip && p.port == h.port && p.cport == h.cport) {
        return false;
    }
    tracing::info!("Address updated for node {}, now {ip}:{}", p.id, h.port);
    p.ip = ip;
    p.port = h.port;
    p.cport = h.cport;
    p.pport = h.pport;
    p.flags &= !flag::NOADDR;
    p.link = None;
    true
}

fn set_as_master(st: &mut State, s: usize) {
    let p = &mut st.peers[s];
    p.flags = (p.flags & !(flag::SLAVE | flag::MIGRATE_TO)) | flag::MASTER;
    p.primary = None;
}

/// A sender's role as its header says: a primary, or a replica of `slaveof` (a primary turned
/// replica gives up its slots).
fn set_role(st: &mut State, s: usize, h: &Header, out: &mut Outcome) {
    match &h.slaveof {
        None => {
            if !st.peers[s].is_master() {
                set_as_master(st, s);
                out.save = true;
            }
        }
        Some(primary) => {
            if st.peers[s].is_master() {
                for o in st.slots.iter_mut() {
                    if *o == Owner::Peer(s) {
                        *o = Owner::Unassigned;
                    }
                }
                let p = &mut st.peers[s];
                p.flags = (p.flags & !(flag::MASTER | flag::MIGRATE_TO)) | flag::SLAVE;
                out.save = true;
            }
            if st.lookup(primary.as_bytes()).is_some()
                && st.peers[s].primary.as_deref() != Some(primary.as_str())
            {
                st.peers[s].primary = Some(primary.clone());
                out.save = true;
            }
            // A primary that had a replica may later be orphaned: replicas migrate to it.
            if let Some(m) = st.peer(primary.as_bytes()) {
                if st.slot_count(Owner::Peer(m)) > 0 {
                    st.peers[m].flags |= flag::MIGRATE_TO;
                }
            }
        }
    }
}

/// Redis's `clusterUpdateSlotsConfigWith`: the slots `sender` claims with `epoch` become its
/// own where the current owner's config epoch is older (slots being imported excepted). When
/// that takes every slot of this node's primary (or of this node), this node follows the
/// sender as its replica.
pub fn update_slots_config_with(
    st: &mut State,
    sender: Owner,
    epoch: u64,
    claimed: &bus::SlotBitmap,
    ctx: &Ctx,
) {
    if sender == Owner::Myself {
        return;
    }
    let cur_master = st.my_master();
    let mut new_master = None;
    let mut migrated_ours = 0;
    for slot in 0..st.slots.len() {
        if !claimed.get(slot) {
            continue;
        }
        let owner = st.slots[slot];
        if owner == sender || st.importing.contains_key(&(slot as u16)) {
            continue;
        }
        if owner == Owner::Unassigned || st.epoch_of(owner) < epoch {
            if owner == cur_master {
                new_master = Some(sender);
                migrated_ours += 1;
            }
            st.slots[slot] = sender;
        }
    }
    let Some(Owner::Peer(n)) = new_master else {
        return;
    };
    if st.slot_count(cur_master) == 0
        && (ctx.allow_replica_migration || claimed.count() == migrated_ours)
    {
        tracing::warn!(
            "Configuration change detected. Reconfiguring myself as a replica of {}",
            st.peers[n].id
        );
        become_replica_of(st, n);
    }
}

/// Redis's `clusterSetMaster`: this node follows `n` (replication itself is started by the
/// bus task, which watches [`State::primary`]).
pub fn become_replica_of(st: &mut State, n: usize) {
    if st.primary.is_none() {
        st.migrating.clear();
        st.importing.clear();
    }
    st.primary = Some(st.peers[n].id.clone());
    st.failover.reset_manual();
}

/// A sender claiming slots that a node with a greater config epoch owns is told so.
fn send_update_if_stale(st: &mut State, s: usize, h: &Header, ctx: &Ctx) {
    for slot in 0..st.slots.len() {
        if !h.myslots.get(slot) {
            continue;
        }
        let owner = st.slots[slot];
        if owner == Owner::Peer(s) || owner == Owner::Unassigned {
            continue;
        }
        if st.epoch_of(owner) > h.config_epoch {
            tracing::debug!(
                "Node {} has old slots configuration, sending an UPDATE message about {}",
                st.peers[s].id,
                st.node_id(owner)
            );
            let update = Message {
                header: header(st, kind::UPDATE, ctx),
                body: Body::Update {
                    config_epoch: st.epoch_of(owner),
                    node: st.node_id(owner).to_string(),
                    slots: st.bitmap_of(owner),
                },
            };
            st.send(s, bus::encode(&update));
            return;
        }
    }
}

/// Redis's `clusterHandleConfigEpochCollision`: of two primaries with one config epoch, the
/// one with the smaller id takes a new epoch.
fn epoch_collision(st: &mut State, s: usize) -> bool {
    if st.peers[s].id.as_str() <= st.myself.as_str() {
        return false;
    }
    st.current_epoch += 1;
    st.config_epoch = st.current_epoch;
    tracing::info!(
        "WARNING: configEpoch collision with node {}. configEpoch set to {}",
        st.peers[s].id,
        st.config_epoch
    );
    true
}

/// Redis's `clusterProcessGossipSection`: failure reports from primaries, fresher PONG times,
/// new addresses of unreachable nodes, and nodes never seen (added under their real names).
fn process_gossip(st: &mut State, sender: Option<usize>, msg: &Message, ctx: &Ctx) {
    let Body::Ping { gossip, .. } = &msg.body else {
        return;
    };
    let now = ctx.now;
    let sender_is_master = sender.is_some_and(|s| st.peers[s].is_master());
    for g in gossip {
        if g.name == st.myself {
            continue;
        }
        match st.peer(g.name.as_bytes()) {
            Some(n) => {
                if let (Some(s), true) = (sender, sender_is_master) {
                    let by = st.peers[s].id.clone();
                    let reports = &mut st.peers[n].fail_reports;
                    if g.flags & (flag::FAIL | flag::PFAIL) != 0 {
                        match reports.iter_mut().find(|(r, _)| *r == by) {
                            Some(r) => r.1 = now,
                            None => reports.push((by, now)),
                        }
                        mark_failing_if_needed(st, n, ctx);
                    } else {
                        reports.retain(|(r, _)| *r != by);
                    }
                }
                let p = &mut st.peers[n];
                if g.flags & (flag::FAIL | flag::PFAIL) == 0
                    && p.ping_sent == 0
                    && p.fail_reports.is_empty()
                {
                    let pong = g.pong_received as u64 * 1000;
                    if pong <= now + 500 && pong > p.pong_received {
                        p.pong_received = pong;
                    }
                }
                if p.has(flag::FAIL | flag::PFAIL)
                    && g.flags & (flag::NOADDR | flag::FAIL | flag::PFAIL) == 0
                    && (p.ip != g.ip || p.port != g.port || p.cport != g.cport)
                {
                    p.link = None;
                    p.ip = g.ip.clone();
                    p.port = g.port;
                    p.cport = g.cport;
                    p.pport = g.pport;
                    p.flags &= !flag::NOADDR;
                }
            }
            None => {
                let listed = st.blacklist.get(&g.name).is_some_and(|&until| until > now);
                if sender.is_some() && g.flags & flag::NOADDR == 0 && !listed {
                    let flags = g.flags & (flag::MASTER | flag::SLAVE | flag::NOFAILOVER);
                    let mut p =
                        Peer::new(g.name.clone(), g.ip.clone(), g.port, g.cport, flags, now);
                    p.pport = g.pport;
                    st.peers.push(p);
                }
            }
        }
    }
}

/// Drops failure reports older than twice the node timeout; the number left.
fn live_reports(st: &mut State, n: usize, ctx: &Ctx) -> usize {
    let max_age = ctx.node_timeout * 2;
    let reports = &mut st.peers[n].fail_reports;
    reports.retain(|(_, at)| ctx.now.saturating_sub(*at) <= max_age);
    reports.len()
}

/// Redis's `markNodeAsFailingIfNeeded`: PFAIL becomes FAIL once a majority of the slot-owning
/// primaries (this one included, if it is one) reports it; everyone is told.
pub fn mark_failing_if_needed(st: &mut State, n: usize, ctx: &Ctx) {
    let quorum = st.size() / 2 + 1;
    if !st.peers[n].has(flag::PFAIL) || st.peers[n].has(flag::FAIL) {
        return;
    }
    let mut failures = live_reports(st, n, ctx);
    if st.primary.is_none() {
        failures += 1;
    }
    if failures < quorum {
        return;
    }
    tracing::info!(
        "Marking node {} as failing (quorum reached).",
        st.peers[n].id
    );
    let p = &mut st.peers[n];
    p.flags = (p.flags | flag::FAIL) & !flag::PFAIL;
    p.fail_time = ctx.now;
    let fail = bus::encode(&Message {
        header: header(st, kind::FAIL, ctx),
        body: Body::Fail {
            node: st.peers[n].id.clone(),
        },
    });
    broadcast(st, &fail);
}

/// Redis's `clearNodeFailureIfNeeded`: a FAILed replica or slot-less primary that answers is
/// fine again; a primary with slots only once nobody took them over for a while.
fn clear_failure_if_needed(st: &mut State, n: usize, ctx: &Ctx) {
    let owns = st.slot_count(Owner::Peer(n)) > 0;
    let p = &mut st.peers[n];
    if !p.is_master() || !owns {
        tracing::info!("Clear FAIL state for node {}: is reachable again.", p.id);
        p.flags &= !flag::FAIL;
    } else if ctx.now.saturating_sub(p.fail_time) > ctx.node_timeout * 2 {
        tracing::info!(
            "Clear FAIL state for node {}: is reachable again and nobody is serving its slots after some time.",
            p.id
        );
        p.flags &= !flag::FAIL;
    }
}

/// Redis's `clusterCron` minus links and elections (the bus task and [`super::failover`]):
/// handshakes time out, a random node is pinged every second, any node not pinged for half
/// the node timeout is, and a node silent for the node timeout is PFAIL.
pub fn cron(st: &mut State, ctx: &Ctx, iteration: u64, rng: &mut Rng) {
    let now = ctx.now;
    let handshake_timeout = ctx.node_timeout.max(1000);
    let mut i = 0;
    while i < st.peers.len() {
        let p = &st.peers[i];
        if p.has(flag::HANDSHAKE) && now.saturating_sub(p.ctime) > handshake_timeout {
            st.remove_peer(i);
            continue;
        }
        i += 1;
    }
    st.blacklist.retain(|_, until| *until > now);
    if iteration.is_multiple_of(10) && !st.peers.is_empty() {
        let mut oldest: Option<usize> = None;
        for _ in 0..5 {
            let j = rng.below(st.peers.len());
            let p = &st.peers[j];
            if p.link.is_none() || p.ping_sent != 0 || p.has(flag::HANDSHAKE) {
                continue;
            }
            if oldest.is_none_or(|o| p.pong_received < st.peers[o].pong_received) {
                oldest = Some(j);
            }
        }
        if let Some(j) = oldest {
            send_ping(st, j, ctx, rng);
        }
    }
    let half = ctx.node_timeout / 2;
    for j in 0..st.peers.len() {
        let p = &st.peers[j];
        if p.has(flag::NOADDR | flag::HANDSHAKE) {
            continue;
        }
        // A link that sent a PING long unanswered, with nothing else heard: reconnect.
        if let Some(link) = &p.link {
            if now.saturating_sub(link.created) > ctx.node_timeout
                && p.ping_sent != 0
                && now.saturating_sub(p.ping_sent) > half
                && now.saturating_sub(p.data_received) > half
            {
                st.peers[j].link = None;
            }
        }
        let p = &st.peers[j];
        if p.link.is_some() && p.ping_sent == 0 && now.saturating_sub(p.pong_received) > half {
            send_ping(st, j, ctx, rng);
            continue;
        }
        if st.failover.manual_for_replica(j, now) && st.peers[j].link.is_some() {
            send_ping(st, j, ctx, rng);
        }
        let p = &st.peers[j];
        if p.ping_sent == 0 {
            continue;
        }
        let delay = now
            .saturating_sub(p.ping_sent)
            .min(now.saturating_sub(p.data_received));
        if delay > ctx.node_timeout && !p.has(flag::PFAIL | flag::FAIL) {
            tracing::debug!("*** NODE {} possibly failing", p.id);
            st.peers[j].flags |= flag::PFAIL;
        }
    }
    st.update_state();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(now: u64) -> Ctx {
        Ctx {
            now,
            node_timeout: 1000,
            repl_offset: 0,
            allow_replica_migration: true,
            no_failover: false,
            data_age: 0,
            validity_factor: 10,
            repl_ping_period: 10_000,
        }
    }

    fn incoming(
        id: u64,
        inbound: bool,
        tx: &tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    ) -> Incoming<'_> {
        Incoming {
            id,
            inbound,
            tx,
            abort: None,
            peer_ip: "127.0.0.1".into(),
            local_ip: "127.0.0.2".into(),
        }
    }

    fn link(id: u64) -> (Link, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Link {
                id,
                tx,
                created: 0,
                abort: None,
            },
            rx,
        )
    }

    /// Two nodes' states meeting through messages passed by hand: MEET, PONG, the renamed
    /// handshake node, then slots claimed by epochs.
    #[test]
    fn handshake_then_slot_claims() {
        let mut rng = Rng::new();
        let mut a = State::fresh();
        let mut b = State::fresh();
        a.announce.port = 7000;
        a.announce.cport = 17000;
        b.announce.port = 7001;
        b.announce.cport = 17001;
        a.slots[..100].fill(Owner::Myself);
        a.config_epoch = 1;
        // A knows B by address only (CLUSTER MEET): a handshake node with a random name.
        a.peers.push(Peer::new(
            "x".repeat(40),
            "127.0.0.1".into(),
            7001,
            17001,
            flag::HANDSHAKE | flag::MEET,
            0,
        ));
        let (l, mut a_out) = link(1);
        a.peers[0].link = Some(l);
        send_ping(&mut a, 0, &ctx(10), &mut rng);
        let meet = bus::decode(&a_out.try_recv().unwrap()).unwrap();
        assert_eq!(meet.header.kind, kind::MEET);
        // B gets the MEET on an inbound link: adds A in handshake, answers PONG there.
        let (b_in, mut b_replies) = tokio::sync::mpsc::unbounded_channel();
        process(&mut b, &incoming(5, true, &b_in), meet, &ctx(11), &mut rng);
        assert_eq!(b.peers.len(), 1);
        assert!(b.peers[0].has(flag::HANDSHAKE));
        assert_eq!(b.my_ip, "127.0.0.2");
        let pong = bus::decode(&b_replies.try_recv().unwrap()).unwrap();
        assert_eq!(pong.header.kind, kind::PONG);
        // A gets the PONG on its outbound link: the handshake node takes B's real name.
        let out_tx = a.peers[0].link.as_ref().unwrap().tx.clone();
        process(
            &mut a,
            &incoming(1, false, &out_tx),
            pong,
            &ctx(12),
            &mut rng,
        );
        assert_eq!(a.peers[0].id, b.myself);
        assert!(!a.peers[0].has(flag::HANDSHAKE));
        assert!(a.peers[0].is_master());
        assert_eq!(a.peers[0].pong_received, 12);
        // B claims slots 50..150 with a greater epoch: A gives up 50..99 to it.
        b.slots[50..150].fill(Owner::Myself);
        b.config_epoch = 2;
        b.current_epoch = 2;
        let claim = bus::decode(&ping(&b, kind::PING, &ctx(20), &mut rng)).unwrap();
        process(
            &mut a,
            &incoming(1, false, &out_tx),
            claim,
            &ctx(21),
            &mut rng,
        );
        assert_eq!(a.current_epoch, 2);
        assert!(a.slots[..50].iter().all(|&o| o == Owner::Myself));
        assert!(a.slots[50..150].iter().all(|&o| o == Owner::Peer(0)));
        // With a smaller epoch, B's claim on 0..10 loses and B is sent an UPDATE.
        while a_out.try_recv().is_ok() {}
        b.slots[..10].fill(Owner::Myself);
        b.config_epoch = 0;
        let stale = bus::decode(&ping(&b, kind::PING, &ctx(30), &mut rng)).unwrap();
        process(
            &mut a,
            &incoming(1, false, &out_tx),
            stale,
            &ctx(31),
            &mut rng,
        );
        assert!(a.slots[..10].iter().all(|&o| o == Owner::Myself));
        let sent: Vec<Message> = std::iter::from_fn(|| a_out.try_recv().ok())
            .map(|f| bus::decode(&f).unwrap())
            .collect();
        assert!(
            sent.iter().any(|m| m.header.kind == kind::UPDATE),
            "{sent:?}"
        );
    }

    #[test]
    fn gossip_teaches_nodes_and_failures() {
        let mut rng = Rng::new();
        let mut a = State::fresh();
        let mut c = Peer::new(
            "c".repeat(40),
            "10.0.0.3".into(),
            7002,
            17002,
            flag::MASTER,
            0,
        );
        c.pong_received = 5_000;
        let (l, _rx) = link(3);
        c.link = Some(l);
        let mut gossiper = State::fresh();
        gossiper.peers.push(c);
        gossiper.peers[0].flags |= flag::PFAIL;
        gossiper.slots[..10].fill(Owner::Myself);
        gossiper.slots[10..20].fill(Owner::Peer(0));
        a.slots[20..30].fill(Owner::Myself);
        let b_id = gossiper.myself.clone();
        let mut b = Peer::new(b_id, "10.0.0.2".into(), 7001, 17001, flag::MASTER, 0);
        let (l, _rx2) = link(2);
        b.link = Some(l);
        a.peers.push(b);
        a.slots[..10].fill(Owner::Peer(0));
        let msg = bus::decode(&ping(&gossiper, kind::PING, &ctx(6_000), &mut rng)).unwrap();
        let tx = a.peers[0].link.as_ref().unwrap().tx.clone();
        process(&mut a, &incoming(2, false, &tx), msg, &ctx(6_000), &mut rng);
        // C was learnt, under its real name, from B's gossip (sent as PFAIL: B reports it).
        let ci = a.peer("c".repeat(40).as_bytes()).unwrap();
        assert_eq!(a.peers[ci].ip, "10.0.0.3");
        assert!(a.peers[ci].is_master());
        // A times C out itself: PFAIL, and with B's report a majority of {A, B}: FAIL.
        a.peers[ci].ping_sent = 1;
        a.peers[ci].flags |= flag::PFAIL;
        let reporter = a.peers[0].id.clone();
        a.peers[ci].fail_reports.push((reporter, 6_000));
        mark_failing_if_needed(&mut a, ci, &ctx(6_100));
        assert!(a.peers[ci].has(flag::FAIL));
    }

    #[test]
    fn silent_nodes_become_pfail_and_handshakes_expire() {
        let mut rng = Rng::new();
        let mut a = State::fresh();
        a.slots.fill(Owner::Myself);
        let mut b = Peer::new(
            "b".repeat(40),
            "10.0.0.2".into(),
            7001,
            17001,
            flag::MASTER,
            0,
        );
        let (l, _rx) = link(2);
        b.link = Some(l);
        b.ping_sent = 1_000;
        b.data_received = 1_000;
        a.peers.push(b);
        a.peers.push(Peer::new(
            "h".repeat(40),
            "10.0.0.9".into(),
            1,
            10001,
            flag::HANDSHAKE,
            0,
        ));
        cron(&mut a, &ctx(1_500), 1, &mut rng);
        assert!(!a.peers[0].has(flag::PFAIL));
        cron(&mut a, &ctx(2_100), 2, &mut rng);
        assert_eq!(a.peers.len(), 1, "the handshake timed out");
        assert!(a.peers[0].has(flag::PFAIL));
        assert!(a.ok(true));
    }
}
