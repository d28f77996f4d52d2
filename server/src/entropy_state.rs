//! ENTROPY's measure of balance between the shards (docs/physics.md, ENTROPY): each shard's
//! request rate, sampled off the request path from the counters its batches already keep
//! (`ShardStats::local_requests` and `remote_requests`: keyed commands run on the shard, from
//! any worker's connections), and the normalized Shannon entropy of those rates.
//!
//! Each worker samples its own shard's total at its expiry tick (`hz` times a second, skipping a
//! tick when a script holds the shard); a rate is the mean over the last 16 samples, as INFO's
//! `instantaneous_ops_per_sec` (`stats_sampler`).

//!
//! REBALANCE moves hash slots from the busiest shards to the idlest ([`plan`], [`move_slot`]):
//! each slot's load comes from GRAVITY's sample of keyed requests (one in 16, off the request
//! path: `gravity_state::sample` adds its weight to the request's slots), halved every
//! [`SLOT_DECAY_SECS`] seconds. A move locks shard 0 (whose log holds the route change), the
//! old and the new shard, moves the slot's keys (WORMHOLE's pinned keys stay where their pins
//! put them), logs the move as one group (`persist::log::log_key_moves`: recovery rebuilds the
//! same layout, all of a move or none), gives the slot to its new shard and bumps the route
//! epoch before the locks are released: a batch routed before the move finds its command
//! misrouted and runs it where the key is now, and a multi-shard command, transaction or
//! script routes again under its locks, as after a WORMHOLE pin.
//!
//! Finding a slot's keys: once a move was asked for (MOVESLOT, REBALANCE, `entropy-auto`),
//! every worker keeps a slot index for its databases ([`Entropy::keep_slot_indexes`]: the
//! cluster-mode index, 8 bytes a key), built over the keys already there a chunk per tick,
//! so that a move's locks are held for the slot's keys, not for a walk of the old shard's whole
//! table (which a move still does until the index is complete).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use warpengine_storage::Shard;

use crate::server_state::Server;
use crate::slot::{key_slot, SLOTS};
use crate::stats_sampler::Sampler;

/// Slots' sampled loads are halved this often (seconds), so that a plan follows the load of
/// the last several seconds.
pub const SLOT_DECAY_SECS: u64 = 2;

/// REBALANCE stops once the busiest shard's load over the mean is at most this.
pub const TARGET_BUSIEST_TO_MEAN: f64 = 1.1;

/// At most this many slots move in one REBALANCE (each move holds three shard locks while its
/// keys move).
pub const MAX_MOVES: usize = 64;

pub struct Entropy {
    shards: Vec<Sampler>,
    /// Per hash slot: the sampled requests to its keys (weights of GRAVITY's samples), decayed.
    slot_load: Vec<AtomicU64>,
    /// Slots moved and keys moved by REBALANCE (INFO physics).
    pub slots_moved: AtomicU64,
    pub keys_moved: AtomicU64,
    /// A slot move was asked for: workers keep slot indexes from then on.
    slot_index_wanted: AtomicBool,
    /// Per shard: every database of it that holds keys has a complete slot index (as of its
    /// last tick).
    slot_index_ready: Vec<AtomicBool>,
}

/// How long a worker links keys into its slot indexes per tick: its own connections and the
/// batches sent to its shard wait meanwhile. A shard of 500K keys took 6-8 ticks (0.6-0.8 s
/// at the default `hz` of 10; bench/moveslot_pause.py).
const SLOT_INDEX_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// Keys linked between two looks at the clock.
const SLOT_INDEX_CHUNK: usize = 1024;

/// One slot to move: from `from` to `to`, with its share of the sampled load.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub slot: u16,
    pub from: usize,
    pub to: usize,
    pub load: f64,
}

impl Entropy {
    pub fn new(threads: usize) -> Entropy {
        Entropy {
            shards: (0..threads).map(|_| Sampler::default()).collect(),
            slot_load: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            slots_moved: AtomicU64::new(0),
            keys_moved: AtomicU64::new(0),
            slot_index_wanted: AtomicBool::new(false),
            slot_index_ready: (0..threads).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Slot moves are coming: from now on the workers keep slot indexes.
    pub fn want_slot_indexes(&self) {
        self.slot_index_wanted.store(true, Relaxed);
    }

    /// At a worker's tick, its shard locked: once slot moves were asked for, starts the slot
    /// index of each database that holds keys and has none, and links keys of one being built
    /// for [`SLOT_INDEX_TICK`].
    pub fn keep_slot_indexes(&self, shard: &mut Shard) {
        if !self.slot_index_wanted.load(Relaxed) {
            return;
        }
        let mut ready = true;
        let mut stepped = false;
        for db in shard.dbs.iter_mut() {
            // (An empty database has nothing to walk; it is indexed once it holds keys.)
            if db.is_empty() || db.slot_index_complete() {
                continue;
            }
            if stepped {
                ready = false;
                continue;
            }
            stepped = true;
            db.start_slot_index();
            let started = std::time::Instant::now();
            loop {
                if db.build_slot_index(SLOT_INDEX_CHUNK) {
                    break;
                }
                if started.elapsed() >= SLOT_INDEX_TICK {
                    ready = false;
                    break;
                }
            }
        }
        self.slot_index_ready[shard.id].store(ready, Relaxed);
    }

    /// INFO physics' `entropy_slot_index`: off (no move asked for yet), building or ready.
    pub fn slot_index_state(&self) -> &'static str {
        if !self.slot_index_wanted.load(Relaxed) {
            "off"
        } else if self.slot_index_ready.iter().all(|r| r.load(Relaxed)) {
            "ready"
        } else {
            "building"
        }
    }

    /// A sampled request's key, standing for `weight` requests (from `gravity_state::sample`).
    pub fn note_key(&self, key: &[u8], weight: u32) {
        self.slot_load[key_slot(key) as usize].fetch_add(weight as u64, Relaxed);
    }

    /// Halves every slot's load (worker 0, every [`SLOT_DECAY_SECS`]).
    pub fn decay_slots(&self) {
        for l in &self.slot_load {
            let v = l.load(Relaxed);
            if v != 0 {
                l.store(v / 2, Relaxed);
            }
        }
    }

    /// Each slot's sampled load.
    pub fn slot_loads(&self) -> Vec<u64> {
        self.slot_load.iter().map(|l| l.load(Relaxed)).collect()
    }

    /// Samples `shard`'s request total (called by its worker, with the shard locked).
    pub fn sample(&self, shard: &Shard) {
        let requests = shard.stats.local_requests + shard.stats.remote_requests;
        self.shards[shard.id].sample([requests, 0, 0]);
    }

    /// Shard `id`'s requests per second, lately.
    pub fn ops_per_sec(&self, id: usize) -> f64 {
        self.shards[id].rate(0)
    }
}

/// The slots to move so that no shard carries much more than the mean: greedily, from the
/// busiest shard to the idlest, the slot whose load comes closest to half their difference
/// (never one that would leave the idlest busier than the busiest was), until the busiest is
/// within [`TARGET_BUSIEST_TO_MEAN`] of the mean, no slot helps, or [`MAX_MOVES`].
/// `loads[slot]`: each slot's load; `owner(slot)`: its shard now.
pub fn plan(loads: &[u64], owner: impl Fn(u16) -> usize, shards: usize) -> Vec<Move> {
    let mut owners: Vec<usize> = (0..loads.len() as u16).map(&owner).collect();
    let mut per_shard = vec![0f64; shards];
    for (slot, &l) in loads.iter().enumerate() {
        per_shard[owners[slot]] += l as f64;
    }
    let mut moves = Vec::new();
    while moves.len() < MAX_MOVES {
        let (from, ratio) = busiest(&per_shard);
        if ratio <= TARGET_BUSIEST_TO_MEAN {
            break;
        }
        let to = (0..shards)
            .min_by(|&a, &b| per_shard[a].total_cmp(&per_shard[b]))
            .expect("a shard");
        let gap = per_shard[from] - per_shard[to];
        let best = (0..loads.len())
            .filter(|&s| owners[s] == from && loads[s] > 0 && (loads[s] as f64) < gap)
            .min_by(|&a, &b| {
                let off = |s: usize| (loads[s] as f64 - gap / 2.0).abs();
                off(a).total_cmp(&off(b))
            });
        let Some(slot) = best else { break };
        let load = loads[slot] as f64;
        per_shard[from] -= load;
        per_shard[to] += load;
        owners[slot] = to;
        moves.push(Move {
            slot: slot as u16,
            from,
            to,
            load,
        });
    }
    moves
}

/// Moves `slot` to shard `to` (shard 0 held by the caller; the others are locked here): its keys
/// in every database, but keys a WORMHOLE pin placed, which stay; logged when the log is on.
/// The number of keys moved.
pub fn move_slot(server: &Server, shard0: &mut Shard, slot: u16, to: usize) -> usize {
    server.entropy.want_slot_indexes();
    let from = server.slots.shard_of_slot(slot);
    if from == to {
        return 0;
    }
    let mut ids = vec![from, to];
    ids.retain(|&s| s != 0);
    ids.sort_unstable();
    let mut guards: Vec<_> = ids.iter().map(|&s| server.lock_shard(s)).collect();
    let mut shards: Vec<&mut Shard> = vec![shard0];
    shards.extend(guards.iter_mut().map(|g| &mut **g));
    let src = shards.iter().position(|s| s.id == from).expect("locked");
    let mut moved = Vec::new();
    for db in 0..shards[src].dbs.len() {
        let keys = shards[src].dbs[db].keys_in_slots(|s| s == slot);
        for key in keys {
            if server.wormhole.anchor(key.as_bytes()).is_some() {
                continue;
            }
            crate::persist::background::preserve(server, &mut *shards[src], db, key.as_bytes());
            if let Some((entry, at)) = shards[src].dbs[db].take(key.as_bytes()) {
                moved.push((key, db, entry, at));
            }
        }
    }
    if server.wal.records() {
        for s in shards.iter_mut() {
            crate::persist::log::flush_expired(server, s);
        }
        let slot_arg = slot.to_string();
        let to_arg = to.to_string();
        let meta: [&[u8]; 4] = [
            b"ENTROPY",
            b"MOVESLOT",
            slot_arg.as_bytes(),
            to_arg.as_bytes(),
        ];
        let logged: Vec<_> = moved
            .iter()
            .map(|(k, db, e, at)| (k.as_bytes(), *db, e, *at))
            .collect();
        crate::persist::log::log_key_moves(server, &meta, from, to, &logged);
    }
    let dst = shards.iter().position(|s| s.id == to).expect("locked");
    let count = moved.len();
    let now = crate::server_state::unix_ms();
    for (key, db, entry, at) in moved {
        shards[dst].dbs[db].insert_entry(key.as_bytes(), entry, at);
        let [from_shard, to_shard] = shards
            .get_disjoint_mut([src, dst])
            .expect("two different shards");
        server
            .hot_copies
            .follow_move(from_shard, to_shard, db, key.as_bytes(), now);
    }
    server.slots.set_owner(slot, to);
    server.wormhole.routes_changed();
    server.entropy.slots_moved.fetch_add(1, Relaxed);
    server.entropy.keys_moved.fetch_add(count as u64, Relaxed);
    count
}

/// The route changes to replay after a snapshot: every slot off the shard it started on.
pub fn meta_records(server: &Server) -> Vec<Vec<Vec<u8>>> {
    server
        .slots
        .moved()
        .into_iter()
        .map(|(slot, shard)| {
            vec![
                b"ENTROPY".to_vec(),
                b"MOVESLOT".to_vec(),
                slot.to_string().into_bytes(),
                shard.to_string().into_bytes(),
            ]
        })
        .collect()
}

/// REBALANCE: the plan for the load sampled lately, carried out unless `dry_run` (shard 0 held
/// by the caller). The moves, with the keys each moved (0 in a dry run).
pub fn rebalance(server: &Server, shard0: &mut Shard, dry_run: bool) -> Vec<(Move, usize)> {
    if !dry_run {
        server.entropy.want_slot_indexes();
    }
    let loads = server.entropy.slot_loads();
    let moves = plan(&loads, |s| server.slots.shard_of_slot(s), server.threads());
    moves
        .into_iter()
        .map(|m| {
            let keys = if dry_run {
                0
            } else {
                move_slot(server, shard0, m.slot, m.to)
            };
            (m, keys)
        })
        .collect()
}

/// `entropy-auto`'s step (worker 0, every few seconds): a rebalance when the shards' request
/// rates are uneven beyond the target. Takes shard 0's lock if it is free.
pub fn auto_step(server: &Server) {
    // Moves may come: the indexes that make them short are built meanwhile.
    server.entropy.want_slot_indexes();
    let rates: Vec<f64> = (0..server.threads())
        .map(|i| server.entropy.ops_per_sec(i))
        .collect();
    // (Below a few hundred requests a second there is nothing worth moving.)
    if rates.iter().sum::<f64>() < 500.0 || busiest(&rates).1 <= 1.2 {
        return;
    }
    // A shard held long (a script past busy-reply-threshold) must not stall the worker this
    // runs on: it waits for the next look.
    let Some(mut shard0) = server.try_lock_shard(0) else {
        return;
    };
    let done = rebalance(server, &mut shard0, false);
    if !done.is_empty() {
        tracing::info!(
            slots = done.len(),
            "entropy-auto moved hash slots to even the load"
        );
    }
}

/// Parses a slot number.
pub fn parse_slot(arg: &Bytes) -> Option<u16> {
    std::str::from_utf8(arg)
        .ok()?
        .parse::<u16>()
        .ok()
        .filter(|&s| (s as usize) < SLOTS)
}

/// How evenly `loads` spread: Shannon entropy of their shares over its maximum, ln(n), so 1.0
/// when every share is equal and 0.0 when one holds everything. No load at all, or a single
/// shard, is even (1.0).
pub fn normalized_entropy(loads: &[f64]) -> f64 {
    let total: f64 = loads.iter().sum();
    if loads.len() < 2 || total <= 0.0 {
        return 1.0;
    }
    let h: f64 = loads
        .iter()
        .filter(|&&l| l > 0.0)
        // p * ln(1/p) rather than -p * ln(p): the latter is -0.0 for p = 1, which a client
        // would read as "-0".
        .map(|&l| l / total * (total / l).ln())
        .sum();
    (h / (loads.len() as f64).ln()).clamp(0.0, 1.0)
}

/// The busiest of `loads` (its index) and its load over the mean: 1.0 when even, n when one
/// shard of n holds everything; 1.0 with no load.
pub fn busiest(loads: &[f64]) -> (usize, f64) {
    let (at, most) = loads
        .iter()
        .copied()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    let mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
    if mean <= 0.0 {
        return (at, 1.0);
    }
    (at, most / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_spreads_concentrated_slots() {
        // Four loaded slots, all on shard 0 of 2 (the skew benchmark's shares).
        let mut loads = vec![0u64; SLOTS];
        for (slot, l) in [(4748, 378), (685, 207), (4616, 242), (553, 173)] {
            loads[slot] = l;
        }
        let moves = plan(&loads, |s| (s as usize * 2) / SLOTS, 2);
        let mut per = [0f64; 2];
        for (slot, &l) in loads.iter().enumerate() {
            let owner = moves
                .iter()
                .rfind(|m| m.slot as usize == slot)
                .map_or((slot * 2) / SLOTS, |m| m.to);
            per[owner] += l as f64;
        }
        let (_, ratio) = busiest(&per);
        assert!(ratio <= 1.11, "{moves:?} {per:?}");
        assert!(moves.iter().all(|m| m.from == 0 && m.to == 1));
        // Even already: nothing moves.
        let even = plan(&loads, |s| [0, 1][(s == 4748 || s == 553) as usize], 2);
        assert!(even.is_empty(), "{even:?}");
        // One slot with everything: nothing can help.
        let mut one = vec![0u64; SLOTS];
        one[5] = 100;
        assert!(plan(&one, |_| 0, 2).is_empty());
    }

    #[test]
    fn entropy_is_one_when_even_and_zero_when_concentrated() {
        assert_eq!(normalized_entropy(&[5.0, 5.0, 5.0, 5.0]), 1.0);
        let one = normalized_entropy(&[0.0, 9.0, 0.0, 0.0]);
        assert!(one == 0.0 && one.is_sign_positive(), "{one}");
        assert_eq!(normalized_entropy(&[0.0, 0.0]), 1.0);
        assert_eq!(normalized_entropy(&[3.0]), 1.0);
        let skewed = normalized_entropy(&[90.0, 10.0]);
        assert!((skewed - 0.469).abs() < 1e-3, "{skewed}");
    }

    #[test]
    fn busiest_over_mean() {
        assert_eq!(busiest(&[1.0, 1.0]), (0, 1.0));
        assert_eq!(busiest(&[0.0, 0.0, 8.0, 0.0]), (2, 4.0));
        assert_eq!(busiest(&[0.0, 0.0]), (0, 1.0));
    }
}
