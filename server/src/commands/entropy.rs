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
    "entropy|help", 2, "loading stale", NO_KEYS, "entropy", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
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
        "entropy_load:{:.4}\r\nentropy_busiest_to_mean:{:.4}\r\n",
        normalized_entropy(&rates),
        ratio
    );
}
