//! ENTROPY: how evenly the load spreads over the shards (docs/physics.md, ENTROPY). STATS reads
//! the rates `entropy_state` samples, and each shard's keys and bytes under its lock.

use std::fmt::Write;

use bytes::Bytes;
use warpengine_physics::lfu::Rng;
use warpengine_storage::Shard;

use super::util::help;
use super::{commands, session, Run, NO_KEYS};
use crate::entropy_state::{busiest, normalized_entropy};
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};
use crate::session::Session;

/// Keys per database whose footprint is measured to estimate a shard's bytes.
const BYTES_SAMPLE: usize = 16;

commands! {
    pub static COMMANDS;
    "entropy", -2, "", NO_KEYS, "entropy", "0.1.0", Run::Container, "A container for ENTROPY commands: balance between shards.";
    "entropy|stats", 2, "loading stale", NO_KEYS, "entropy", "0.1.0", session(stats), "Per-shard requests per second, keys and bytes, and the normalized entropy of the load.";
    "entropy|rebalance", -2, "write", NO_KEYS, "entropy", "0.1.0", Run::Meta(rebalance), "Moves hash slots from the busiest shards to the idlest, by the load sampled lately.";
    "entropy|moveslot", 4, "write", NO_KEYS, "entropy", "0.1.0", Run::Meta(moveslot), "Moves one hash slot, with its keys, to a shard.";
    "entropy|help", 2, "loading stale", NO_KEYS, "entropy", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

/// REBALANCE [DRYRUN]: `[slot, from, to, share of the sampled load, keys moved]` per move.
fn rebalance(server: &Server, shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let dry_run = match &args[2..] {
        [] => false,
        [word] if super::util::eq_ignore_case(word, "dryrun") => true,
        _ => return (Reply::err(super::util::SYNTAX), false),
    };
    let Some(shard0) = shard0 else {
        // Never logged itself: its slot moves are.
        return (Reply::err("ERR REBALANCE is not replayed"), false);
    };
    let total: u64 = server.entropy.slot_loads().iter().sum();
    let moves = crate::entropy_state::rebalance(server, shard0, dry_run);
    let rows = moves
        .into_iter()
        .map(|(m, keys)| {
            Reply::Array(vec![
                Reply::Int(m.slot as i64),
                Reply::Int(m.from as i64),
                Reply::Int(m.to as i64),
                Reply::Double(m.load / total.max(1) as f64),
                Reply::Int(keys as i64),
            ])
        })
        .collect();
    (Reply::Array(rows), false)
}

/// MOVESLOT slot shard: the number of keys moved. Replayed from the log (no shard lent), it
/// only gives the slot to the shard: the keys' moves are in the shards' own logs.
fn moveslot(server: &Server, shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let Some(slot) = crate::entropy_state::parse_slot(&args[2]) else {
        return (Reply::err("ERR Invalid or out of range slot"), false);
    };
    let to = match std::str::from_utf8(&args[3])
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        Some(to) if to < server.threads() => to,
        // A log written with more workers: the slot keeps its place (recovery with another
        // worker count redistributes every key by the table as it is).
        _ if shard0.is_none() => return (Reply::Int(0), false),
        _ => return (Reply::err("ERR no such shard"), false),
    };
    let Some(shard0) = shard0 else {
        // Recovery: the layout moved before, so more moves are likely; the indexes that keep
        // them short are built once the server runs.
        server.entropy.want_slot_indexes();
        server.slots.set_owner(slot, to);
        server.wormhole.routes_changed();
        return (Reply::Int(0), false);
    };
    let keys = crate::entropy_state::move_slot(server, shard0, slot, to);
    (Reply::Int(keys as i64), false)
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "ENTROPY",
        &[
            "STATS",
            "    Per shard (core): keyed requests per second (mean of the last 16 samples,",
            "    taken hz times a second), requests run, keys, and bytes (estimated from 16",
            "    keys per database). Then the normalized Shannon entropy of the request rates",
            "    (1.0 = even, 0.0 = one shard takes everything), the busiest shard and its",
            "    rate over the mean, and the same entropy for keys.",
            "REBALANCE [DRYRUN]",
            "    Move hash slots (with their keys) from the busiest shards to the idlest until",
            "    the busiest carries at most 1.1x the mean of the load sampled lately; DRYRUN",
            "    only shows the plan. Per move: [slot, from, to, share of the load, keys moved].",
            "MOVESLOT <slot> <shard>",
            "    Move one hash slot and its keys to a shard; returns the keys moved.",
        ],
    )
}

/// One shard's figures.
struct ShardLoad {
    ops_per_sec: f64,
    requests: u64,
    keys: u64,
    bytes: u64,
}

fn measure(server: &Server) -> Vec<ShardLoad> {
    let now = unix_ms();
    let mut rng = Rng::new(now);
    (0..server.threads())
        .map(|i| {
            let shard = server.lock_shard(i);
            ShardLoad {
                ops_per_sec: server.entropy.ops_per_sec(i),
                requests: shard.stats.local_requests + shard.stats.remote_requests,
                keys: shard.dbs.iter().map(|d| d.len() as u64).sum(),
                bytes: estimated_bytes(&shard, &mut rng, now),
            }
        })
        .collect()
}

/// A shard's bytes: per database, the mean footprint (as MEMORY USAGE counts it) of up to
/// `BYTES_SAMPLE` consecutive keys from a random place in its table, times its keys.
fn estimated_bytes(shard: &Shard, rng: &mut Rng, now: u64) -> u64 {
    let mut total = 0.0;
    for db in shard.dbs.iter().filter(|d| !d.is_empty()) {
        let start = 1 + rng.below(db.len() as u64) as usize;
        let step = db.scan(start, BYTES_SAMPLE, now);
        let sizes: Vec<usize> = step
            .keys
            .iter()
            .filter_map(|k| db.peek_value(k).map(|v| super::memory::footprint(k, v)))
            .collect();
        if !sizes.is_empty() {
            total += sizes.iter().sum::<usize>() as f64 / sizes.len() as f64 * db.len() as f64;
        }
    }
    total as u64
}

fn stats(s: &mut Session, _args: &[Bytes]) -> Reply {
    let shards = measure(s.server);
    let rates: Vec<f64> = shards.iter().map(|l| l.ops_per_sec).collect();
    let keys: Vec<f64> = shards.iter().map(|l| l.keys as f64).collect();
    let (busiest_shard, ratio) = busiest(&rates);
    let int = |name: &str, v: u64| (Reply::bulk_str(name), Reply::Int(v as i64));
    let double = |name: &str, v: f64| (Reply::bulk_str(name), Reply::Double(v));
    let per_shard = shards
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Reply::Map(vec![
                int("shard", i as u64),
                double("ops_per_sec", l.ops_per_sec),
                int("requests", l.requests),
                int("keys", l.keys),
                int("bytes", l.bytes),
            ])
        })
        .collect();
    Reply::Map(vec![
        double("ops_per_sec", rates.iter().sum()),
        double("entropy", normalized_entropy(&rates)),
        int("busiest_shard", busiest_shard as u64),
        double("busiest_to_mean", ratio),
        double("keys_entropy", normalized_entropy(&keys)),
        (Reply::bulk_str("shards"), Reply::Array(per_shard)),
    ])
}

/// INFO physics lines.
pub fn info(server: &Server, out: &mut String) {
    let rates: Vec<f64> = (0..server.threads())
        .map(|i| server.entropy.ops_per_sec(i))
        .collect();
    let (_, ratio) = busiest(&rates);
    let _ = write!(
        out,
        "entropy_load:{:.4}\r\nentropy_busiest_to_mean:{:.4}\r\nentropy_slots_moved:{}\r\n\
         entropy_keys_moved:{}\r\nentropy_slots_off_start:{}\r\nentropy_slot_index:{}\r\n",
        normalized_entropy(&rates),
        ratio,
        server
            .entropy
            .slots_moved
            .load(std::sync::atomic::Ordering::Relaxed),
        server
            .entropy
            .keys_moved
            .load(std::sync::atomic::Ordering::Relaxed),
        server.slots.moved().len(),
        server.entropy.slot_index_state(),
    );
}
