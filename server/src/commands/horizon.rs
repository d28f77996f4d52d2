//! HORIZON: what the eviction policy sees (docs/physics.md, HORIZON). STATS sums every
//! shard: hits, misses, evictions, and under allkeys-horizon its S3-FIFO queues.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_storage::eviction::horizon::SMALL_SHARE_MIN;

use super::util::help;
use crate::protocol::Reply;
use crate::session::Session;

use super::{commands, session, NO_KEYS};

commands! {
    pub static COMMANDS;
    "horizon", -2, "", NO_KEYS, "server", "0.1.0", super::Run::Container, "A container for the HORIZON eviction policy's commands.";
    "horizon|stats", 2, "loading stale", NO_KEYS, "server", "0.1.0", session(stats), "Hits, misses, evictions and the S3-FIFO queues of allkeys-horizon.";
    "horizon|help", 2, "loading stale", NO_KEYS, "server", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "HORIZON",
        &[
            "STATS",
            "    Keyspace hits and misses, evictions, and with maxmemory-policy allkeys-horizon",
            "    the S3-FIFO queues: keys in the small and main queues, the small queue's target",
            "    share of the keys (it adapts between 10% and 90%), ids in the ghost queues,",
            "    ghost hits (evicted keys asked for again), promotions from small to main, and",
            "    cold strings compressed (horizon-compress).",
        ],
    )
}

fn stats(s: &mut Session, _args: &[Bytes]) -> Reply {
    let server = s.server;
    let (mut hits, mut misses, mut evicted) = (server.copy_hits(), 0u64, 0u64);
    let (mut small, mut main, mut ghost, mut ghost_hits, mut promoted) = (0, 0, 0, 0, 0);
    let (mut compressed, mut share_sum, mut live) = (0, 0, 0);
    for shard in server.lock_all() {
        hits += shard.stats.keyspace_hits;
        misses += shard.stats.keyspace_misses;
        evicted += shard.stats.evicted_keys;
        for db in &shard.dbs {
            if let Some(h) = &db.horizon {
                small += h.small_live as u64;
                main += h.main_live as u64;
                ghost += h.ghost_len() as u64;
                ghost_hits += h.stats.ghost_hits;
                promoted += h.stats.promoted;
                compressed += h.stats.compressed;
                let keys = (h.small_live + h.main_live) as u64;
                share_sum += h.small_share_percent() * keys;
                live += keys;
            }
        }
    }
    let policy = server
        .config
        .read()
        .expect("config lock")
        .get("maxmemory-policy")
        .to_string();
    let int = |name: &str, v: u64| (Reply::bulk_str(name), Reply::Int(v as i64));
    Reply::Map(vec![
        (Reply::bulk_str("policy"), Reply::bulk_str(&policy)),
        int("maxmemory", server.limits.maxmemory.load(Ordering::Relaxed)),
        int("used_memory", server.used_memory()),
        int("hits", hits),
        int("misses", misses),
        int("evictions", evicted),
        int("small_queue_keys", small),
        // Each database's queues adapt on their own: their mean, weighted by their keys (the
        // floor while no database holds any).
        int(
            "small_queue_target_percent",
            share_sum
                .checked_div(live)
                .unwrap_or((SMALL_SHARE_MIN * 100.0) as u64),
        ),
        int("main_queue_keys", main),
        int("ghost_queue_ids", ghost),
        int("ghost_hits", ghost_hits),
        int("promotions", promoted),
        int("compressed", compressed),
    ])
}
