//! Replica promotion, as Redis's `clusterHandleSlaveFailover` and friends: when its primary is
//! FAIL, a replica waits a delay that grows with its rank (replicas with more data go first),
//! takes a new epoch and asks every primary for its vote (FAILOVER_AUTH_REQUEST); a primary
//! votes once per epoch, for a replica of a failed primary whose claimed slots are not newer
//! elsewhere. A majority of the slot-owning primaries makes the replica the new primary: it
//! takes its old primary's slots with the election's epoch and tells everyone (PONG).
//!
//! CLUSTER FAILOVER starts a manual failover: the replica sends MFSTART, its primary pauses
//! writes and sends its offset in PINGs (flag PAUSED); once the replica has caught up it runs
//! the election without delay, with FORCEACK so primaries vote although nothing failed.
//! FORCE skips the handshake with the primary; TAKEOVER skips the election too.
//!
//! Replica migration: a primary left without a working replica (orphaned) for a while gets
//! one from the primary with the most replicas, as long as that one keeps more than
//! `cluster-migration-barrier`.

use std::collections::HashMap;

use super::bus::{self, flag, kind, Body, Header, Message};
use super::gossip::{self, Ctx, Rng};
use super::{Owner, State};

/// How long a manual failover may take (`CLUSTER_MF_TIMEOUT`).
pub const MANUAL_TIMEOUT_MS: u64 = 5000;

/// How long a primary stays orphaned before a replica migrates to it
/// (`CLUSTER_SLAVE_MIGRATION_DELAY`).
pub const MIGRATION_DELAY_MS: u64 = 5000;

/// The election and manual-failover state of a node.
#[derive(Debug, Default)]
pub struct Election {
    /// Unix ms from which this replica may ask for votes (0: no election under way).
    pub auth_time: u64,
    pub auth_sent: bool,
    pub auth_rank: usize,
    /// The epoch the election runs in; votes from an older epoch do not count.
    pub auth_epoch: u64,
    pub votes: usize,
    /// Manual failover: its deadline (0: none).
    pub manual_end: u64,
    /// Replica side: the primary's offset once it paused, and whether the election may start.
    pub manual_primary_offset: Option<u64>,
    pub manual_can_start: bool,
    /// Primary side: the replica (peer index) that asked.
    pub manual_replica: Option<usize>,
    /// When this primary last voted for a replica of each (failed) primary, by its id.
    voted: HashMap<String, u64>,
}

impl Election {
    pub fn reset_manual(&mut self) {
        self.manual_end = 0;
        self.manual_primary_offset = None;
        self.manual_can_start = false;
        self.manual_replica = None;
    }

    /// Primary side: writes are paused for a replica taking over.
    pub fn paused_for_replica(&self, now: u64) -> bool {
        self.manual_replica.is_some() && now < self.manual_end
    }

    /// Primary side: the replica `j` asked for a manual failover.
    pub fn start_as_primary(&mut self, j: usize, now: u64) {
        self.reset_manual();
        self.manual_end = now + MANUAL_TIMEOUT_MS;
        self.manual_replica = Some(j);
    }

    /// Primary side: `j` is the replica of a manual failover under way (pinged every tick).
    pub fn manual_for_replica(&self, j: usize, now: u64) -> bool {
        self.manual_replica == Some(j) && now < self.manual_end
    }

    /// Replica side: the paused primary's offset came in a PING.
    pub fn primary_paused_at(&mut self, offset: u64) {
        if self.manual_end != 0 && self.manual_primary_offset.is_none() {
            tracing::warn!(
                "Received replication offset for paused master manual failover: {offset}"
            );
            self.manual_primary_offset = Some(offset);
        }
    }
}

/// How CLUSTER FAILOVER was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manual {
    Default,
    Force,
    Takeover,
}

/// CLUSTER FAILOVER on a replica (checked by the command): starts the manual failover.
pub fn start_manual(st: &mut State, how: Manual, ctx: &Ctx, rng: &mut Rng) {
    st.failover.reset_manual();
    st.failover.manual_end = ctx.now + MANUAL_TIMEOUT_MS;
    match how {
        Manual::Takeover => {
            // A new epoch without agreement, and the slots at once.
            st.current_epoch += 1;
            st.config_epoch = st.current_epoch;
            replace_primary(st, ctx, rng);
        }
        Manual::Force => st.failover.manual_can_start = true,
        Manual::Default => {
            if let Some(p) = st.my_primary() {
                let frame = bus::encode(&Message {
                    header: gossip::header(st, kind::MFSTART, ctx),
                    body: Body::Empty,
                });
                st.send(p, frame);
            }
        }
    }
}

/// Primary side of FAILOVER_AUTH_REQUEST (Redis's `clusterSendFailoverAuthIfNeeded`).
pub fn vote_if_needed(st: &mut State, s: usize, req: &Header, ctx: &Ctx) {
    if st.is_replica() || st.slot_count(Owner::Myself) == 0 {
        return;
    }
    if req.current_epoch < st.current_epoch || st.last_vote_epoch == st.current_epoch {
        return;
    }
    let force = req.mflags[0] & bus::mflag::FORCEACK != 0;
    let Some(primary) = st.peers[s]
        .primary
        .clone()
        .filter(|_| !st.peers[s].is_master())
    else {
        return;
    };
    // Its primary may be this node itself (a manual failover of a replica of mine: the only
    // vote a one-primary cluster has), which is not FAILed: then only a FORCEACK request.
    let primary_failed = if primary == st.myself {
        false
    } else {
        let Some(m) = st.peer(primary.as_bytes()) else {
            return;
        };
        st.peers[m].has(flag::FAIL)
    };
    if !primary_failed && !force {
        return;
    }
    let voted = st.failover.voted.get(&primary).copied().unwrap_or(0);
    if ctx.now.saturating_sub(voted) < ctx.node_timeout * 2 {
        return;
    }
    for slot in 0..st.slots.len() {
        if !req.myslots.get(slot) || st.slots[slot] == Owner::Unassigned {
            continue;
        }
        if st.epoch_of(st.slots[slot]) > req.config_epoch {
            return;
        }
    }
    st.last_vote_epoch = st.current_epoch;
    st.failover.voted.insert(primary, ctx.now);
    tracing::info!(
        "Failover auth granted to {} for epoch {}",
        st.peers[s].id,
        st.current_epoch
    );
    let ack = bus::encode(&Message {
        header: gossip::header(st, kind::FAILOVER_AUTH_ACK, ctx),
        body: Body::Empty,
    });
    st.send(s, ack);
}

/// How many fellow replicas of this node's primary have more data: the rank that delays it.
fn rank(st: &State, ctx: &Ctx) -> usize {
    let Some(primary) = st.primary.clone() else {
        return 0;
    };
    st.peers
        .iter()
        .filter(|p| {
            p.primary.as_deref() == Some(primary.as_str()) && p.repl_offset > ctx.repl_offset
        })
        .count()
}

/// The replica side, every tick: start, pace and conclude an election when the primary is
/// FAIL (or a manual failover may start). True when this node became a primary.
pub fn handle_replica(st: &mut State, ctx: &Ctx, rng: &mut Rng) -> bool {
    let now = ctx.now;
    let f = &mut st.failover;
    if f.manual_end != 0 && now > f.manual_end {
        tracing::warn!("Manual failover timed out.");
        f.reset_manual();
    }
    if st.failover.manual_end != 0 && !st.failover.manual_can_start {
        if let Some(offset) = st.failover.manual_primary_offset {
            if ctx.repl_offset >= offset {
                tracing::warn!(
                    "All master replication stream processed, manual failover can start."
                );
                st.failover.manual_can_start = true;
            }
        }
    }
    let manual = st.failover.manual_end != 0 && st.failover.manual_can_start;
    let Some(m) = st.my_primary() else {
        return false;
    };
    if (!manual && (!st.peers[m].has(flag::FAIL) || ctx.no_failover))
        || st.slot_count(Owner::Peer(m)) == 0
    {
        return false;
    }
    if !manual && too_stale(ctx) {
        return false;
    }
    let auth_timeout = (ctx.node_timeout * 2).max(2000);
    let retry = auth_timeout * 2;
    if now.saturating_sub(st.failover.auth_time) > retry {
        let rank = rank(st, ctx);
        let f = &mut st.failover;
        f.auth_rank = rank;
        f.auth_time = now + 500 + rng.below(500) as u64 + f.auth_rank as u64 * 1000;
        f.votes = 0;
        f.auth_sent = false;
        if manual {
            f.auth_time = now;
            f.auth_rank = 0;
        }
        tracing::warn!(
            "Start of election delayed for {} milliseconds (rank #{}, offset {}).",
            f.auth_time - now,
            f.auth_rank,
            ctx.repl_offset
        );
        return false;
    }
    if !st.failover.auth_sent && !manual {
        let new_rank = rank(st, ctx);
        let f = &mut st.failover;
        if new_rank > f.auth_rank {
            f.auth_time += (new_rank - f.auth_rank) as u64 * 1000;
            f.auth_rank = new_rank;
        }
    }
    let f = &st.failover;
    if now < f.auth_time || now - f.auth_time > auth_timeout {
        return false;
    }
    if !f.auth_sent {
        st.current_epoch += 1;
        st.failover.auth_epoch = st.current_epoch;
        st.failover.auth_sent = true;
        tracing::warn!(
            "Starting a failover election for epoch {}.",
            st.current_epoch
        );
        let mut h = gossip::header(st, kind::FAILOVER_AUTH_REQUEST, ctx);
        if manual {
            h.mflags[0] |= bus::mflag::FORCEACK;
        }
        let frame = bus::encode(&Message {
            header: h,
            body: Body::Empty,
        });
        gossip::broadcast(st, &frame);
        return false;
    }
    if st.failover.votes > st.size() / 2 {
        tracing::warn!("Failover election won: I'm the new master.");
        if st.config_epoch < st.failover.auth_epoch {
            st.config_epoch = st.failover.auth_epoch;
        }
        replace_primary(st, ctx, rng);
        return true;
    }
    false
}

/// Redis's replica migration (`clusterCron`'s orphan count, `clusterHandleSlaveMigration`),
/// every tick: the replica with the smallest id among those of the primaries with the most
/// working replicas moves to a primary orphaned for [`MIGRATION_DELAY_MS`], if its own keeps
/// more than `barrier` working replicas. True when this node changed primary.
pub fn migrate_if_orphans(st: &mut State, ctx: &Ctx, barrier: usize) -> bool {
    // Working replicas of each node, this one counted for its primary; their ids.
    let mut replicas: Vec<Vec<&str>> = vec![Vec::new(); st.peers.len()];
    let mine = st.my_primary();
    for p in &st.peers {
        if let Some(m) = p.primary.as_deref().and_then(|id| st.peer(id.as_bytes())) {
            if !p.has(flag::FAIL | flag::PFAIL) {
                replicas[m].push(&p.id);
            }
        }
    }
    if let Some(m) = mine {
        replicas[m].push(&st.myself);
    }
    let most = replicas.iter().map(Vec::len).max().unwrap_or(0);
    let candidate = replicas
        .iter()
        .filter(|r| r.len() == most)
        .flatten()
        .min()
        .map(|id| id.to_string());
    let counts: Vec<usize> = replicas.iter().map(Vec::len).collect();
    let mut target = None;
    for (i, &working) in counts.iter().enumerate() {
        let p = &st.peers[i];
        let orphan = p.is_master() && !p.has(flag::FAIL) && p.has(flag::MIGRATE_TO) && working == 0;
        let owns = st.slot_count(Owner::Peer(i)) > 0;
        let p = &mut st.peers[i];
        if !orphan {
            p.orphaned_since = 0;
            continue;
        }
        if p.orphaned_since == 0 {
            p.orphaned_since = ctx.now;
        }
        if target.is_none() && owns {
            target = Some(i);
        }
    }
    let Some(m) = mine else {
        return false;
    };
    let Some(t) = target else {
        return false;
    };
    let eligible = ctx.allow_replica_migration
        && most >= 2
        && counts[m] == most
        && counts[m] > barrier
        && st.ok(true)
        && candidate.as_deref() == Some(st.myself.as_str())
        && ctx.now.saturating_sub(st.peers[t].orphaned_since) > MIGRATION_DELAY_MS;
    if !eligible {
        return false;
    }
    tracing::warn!("Migrating to orphaned master {}", st.peers[t].id);
    super::gossip::become_replica_of(st, t);
    true
}

/// `cluster-replica-validity-factor`: a replica whose data is older than the ping period plus
/// the factor times the node timeout (besides the node timeout itself, which failure detection
/// takes) does not run for election on its own.
fn too_stale(ctx: &Ctx) -> bool {
    let mut age = ctx.data_age;
    if age > ctx.node_timeout {
        age -= ctx.node_timeout;
    }
    let limit = ctx
        .repl_ping_period
        .saturating_add(ctx.node_timeout.saturating_mul(ctx.validity_factor));
    ctx.validity_factor != 0 && age > limit
}

/// Redis's `clusterFailoverReplaceYourMaster`: this node becomes a primary with its old
/// primary's slots, and says so to everyone.
fn replace_primary(st: &mut State, ctx: &Ctx, rng: &mut Rng) {
    let Some(m) = st.my_primary() else {
        return;
    };
    st.primary = None;
    for o in st.slots.iter_mut() {
        if *o == Owner::Peer(m) {
            *o = Owner::Myself;
        }
    }
    st.update_state();
    gossip::broadcast_pong(st, ctx, rng);
    st.failover.reset_manual();
    st.failover.auth_time = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Link, Peer};

    fn ctx(now: u64, offset: u64) -> Ctx {
        Ctx {
            now,
            node_timeout: 1000,
            repl_offset: offset,
            allow_replica_migration: true,
            no_failover: false,
            data_age: 0,
            validity_factor: 10,
            repl_ping_period: 10_000,
        }
    }

    fn linked(mut p: Peer) -> (Peer, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        p.link = Some(Link {
            id: 1,
            tx,
            created: 0,
            abort: None,
        });
        (p, rx)
    }

    /// A replica of a FAILed primary asks for votes after its delay, a primary grants one,
    /// and with a majority of {failed, voter} ... the replica takes the slots.
    #[test]
    fn replica_wins_an_election() {
        let mut rng = Rng::new();
        let mut replica = State::fresh();
        let mut voter = State::fresh();
        let (m, _m_rx) = linked(Peer::new(
            "m".repeat(40),
            "h".into(),
            1,
            2,
            flag::MASTER | flag::FAIL,
            0,
        ));
        let (v, mut v_rx) = linked(Peer::new(
            voter.myself.clone(),
            "h".into(),
            3,
            4,
            flag::MASTER,
            0,
        ));
        replica.peers.push(m);
        replica.peers.push(v);
        replica.primary = Some("m".repeat(40));
        replica.slots[..100].fill(Owner::Peer(0));
        replica.slots[100..].fill(Owner::Peer(1));
        replica.peers[0].config_epoch = 1;
        replica.peers[1].config_epoch = 2;
        replica.current_epoch = 2;
        // Tick 1 schedules the election, a tick after the delay sends the request.
        assert!(!handle_replica(&mut replica, &ctx(10_000, 0), &mut rng));
        let at = replica.failover.auth_time;
        assert!((10_500..11_000).contains(&at));
        assert!(!handle_replica(&mut replica, &ctx(at + 1, 0), &mut rng));
        assert_eq!(replica.current_epoch, 3);
        let request = bus::decode(&v_rx.try_recv().unwrap()).unwrap();
        assert_eq!(request.header.kind, kind::FAILOVER_AUTH_REQUEST);
        // The voter knows the replica and its FAILed primary.
        voter.slots[100..].fill(Owner::Myself);
        voter.config_epoch = 2;
        voter.current_epoch = 3;
        let (mut r, mut r_rx) = linked(Peer::new(
            replica.myself.clone(),
            "h".into(),
            5,
            6,
            flag::SLAVE,
            0,
        ));
        r.primary = Some("m".repeat(40));
        voter.peers.push(r);
        voter.peers.push(Peer::new(
            "m".repeat(40),
            "h".into(),
            1,
            2,
            flag::MASTER | flag::FAIL,
            0,
        ));
        voter.slots[..100].fill(Owner::Peer(1));
        vote_if_needed(&mut voter, 0, &request.header, &ctx(at + 2, 0));
        let ack = bus::decode(&r_rx.try_recv().unwrap()).unwrap();
        assert_eq!(ack.header.kind, kind::FAILOVER_AUTH_ACK);
        assert_eq!(voter.last_vote_epoch, 3);
        // Once per epoch.
        vote_if_needed(&mut voter, 0, &request.header, &ctx(at + 3, 0));
        assert!(r_rx.try_recv().is_err());
        // One vote of two primaries owning slots: 2/2+1 = 2 needed... the failed one cannot
        // vote, so with a single vote the replica waits.
        replica.failover.votes = 1;
        assert!(!handle_replica(&mut replica, &ctx(at + 4, 0), &mut rng));
        replica.failover.votes = 2;
        assert!(handle_replica(&mut replica, &ctx(at + 5, 0), &mut rng));
        assert!(replica.primary.is_none());
        assert_eq!(replica.config_epoch, 3);
        assert!(replica.slots[..100].iter().all(|&o| o == Owner::Myself));
    }

    /// A primary votes for its own replica's manual failover (FORCEACK), as Redis's
    /// `clusterSendFailoverAuthIfNeeded` does: in a cluster of one primary that is the only
    /// vote there is. Without FORCEACK (a primary that has not failed) it does not.
    #[test]
    fn a_primary_votes_for_its_own_replica_s_manual_failover() {
        let mut primary = State::fresh();
        primary.slots.fill(Owner::Myself);
        primary.config_epoch = 1;
        primary.current_epoch = 2;
        let (mut r, mut r_rx) = linked(Peer::new("r".repeat(40), "h".into(), 5, 6, flag::SLAVE, 0));
        r.primary = Some(primary.myself.clone());
        primary.peers.push(r);
        let mut request = gossip::header(&primary, kind::FAILOVER_AUTH_REQUEST, &ctx(0, 0));
        request.current_epoch = 2;
        request.config_epoch = 1;
        request.myslots = bus::SlotBitmap::empty();
        vote_if_needed(&mut primary, 0, &request, &ctx(100_000, 0));
        assert!(r_rx.try_recv().is_err(), "no vote without FORCEACK");
        request.mflags[0] |= bus::mflag::FORCEACK;
        vote_if_needed(&mut primary, 0, &request, &ctx(100_001, 0));
        let ack = bus::decode(&r_rx.try_recv().unwrap()).unwrap();
        assert_eq!(ack.header.kind, kind::FAILOVER_AUTH_ACK);
        assert_eq!(primary.last_vote_epoch, 2);
    }

    #[test]
    fn a_spare_replica_migrates_to_an_orphaned_primary() {
        let mut st = State::fresh();
        st.myself = "1".repeat(40);
        let m1 = Peer::new("a".repeat(40), "h".into(), 1, 2, flag::MASTER, 0);
        let mut other = Peer::new("9".repeat(40), "h".into(), 3, 4, flag::SLAVE, 0);
        other.primary = Some("a".repeat(40));
        let m2 = Peer::new(
            "b".repeat(40),
            "h".into(),
            5,
            6,
            flag::MASTER | flag::MIGRATE_TO,
            0,
        );
        st.peers.extend([m1, other, m2]);
        st.primary = Some("a".repeat(40));
        st.slots[..8000].fill(Owner::Peer(0));
        st.slots[8000..].fill(Owner::Peer(2));
        st.update_state();
        assert!(!migrate_if_orphans(&mut st, &ctx(1_000, 0), 1));
        assert_eq!(st.peers[2].orphaned_since, 1_000);
        // Not before the delay; not past the barrier (2 replicas must stay above it).
        assert!(!migrate_if_orphans(&mut st, &ctx(6_000, 0), 1));
        assert!(!migrate_if_orphans(&mut st, &ctx(6_001, 0), 2));
        assert!(migrate_if_orphans(&mut st, &ctx(6_001, 0), 1));
        assert_eq!(st.primary.as_deref(), Some("b".repeat(40).as_str()));
    }

    #[test]
    fn stale_replicas_do_not_run() {
        let fresh = ctx(0, 0);
        assert!(!too_stale(&fresh));
        // 10 s ping period + 10 x 1 s node timeout, past the node timeout itself.
        let limit = Ctx {
            data_age: 21_000,
            ..fresh
        };
        assert!(!too_stale(&limit));
        let stale = Ctx {
            data_age: 21_001,
            ..fresh
        };
        assert!(too_stale(&stale));
        assert!(!too_stale(&Ctx {
            validity_factor: 0,
            ..stale
        }));
        assert!(too_stale(&Ctx {
            data_age: u64::MAX,
            ..fresh
        }));
    }
}
