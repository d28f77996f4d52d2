//! WORMHOLE: keep keys that work together on one shard (docs/physics.md, WORMHOLE).
//! PIN moves a key's storage (every database) to its anchor's shard; the cluster slot stays
//! the CRC16 slot. A move is logged as one group: the pin in shard 0's log, the key's removal
//! in the old shard's log and its re-creation in the new one's, so recovery applies all of it
//! or none. STATS reports the cross-shard fabric per shard pair.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use warpengine_storage::Shard;

use super::util::{help, set_switch};
use super::{commands, k, session, Run, NO_KEYS};
use crate::protocol::Reply;
use crate::server_state::Server;
use crate::session::Session;
use crate::slot::key_slot;

commands! {
    pub static COMMANDS;
    "wormhole", -2, "", NO_KEYS, "wormhole", "0.1.0", Run::Container, "A container for WORMHOLE commands: key placement and the cross-shard fabric.";
    "wormhole|route", 3, "readonly fast", k(2, 2, 1), "wormhole", "0.1.0", session(route), "Shows a key's hash slot, the shard that stores it and whether a pin moved it.";
    "wormhole|pin", 4, "write", k(2, 3, 1), "wormhole", "0.1.0", Run::Meta(pin), "Stores a key on its anchor's shard.";
    "wormhole|unpin", 3, "write", k(2, 2, 1), "wormhole", "0.1.0", Run::Meta(unpin), "Returns a pinned key to its slot's shard.";
    "wormhole|auto", -3, "admin", NO_KEYS, "wormhole", "0.1.0", session(auto), "Switches automatic pinning of keys that multi-key commands use together.";
    "wormhole|stats", 2, "loading stale", NO_KEYS, "wormhole", "0.1.0", session(stats), "Cross-shard messages, keys per batch and hop latency per shard pair.";
    "wormhole|help", 2, "loading stale", NO_KEYS, "wormhole", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "WORMHOLE",
        &[
            "ROUTE <key>",
            "    The key's hash slot, the shard (core) that stores it, and its anchor if pinned.",
            "PIN <key> <anchor>",
            "    Store key on anchor's shard (every database), so that multi-key commands on",
            "    both run on one core. The cluster slot is unchanged. Returns 1 if the key's",
            "    storage moved, 0 if it was already there.",
            "UNPIN <key>",
            "    Store key on its slot's shard again. Returns 1 if it was pinned.",
            "AUTO ON|OFF [THRESHOLD <n>]",
            "    Pin a key to the first key of the multi-key commands that keep using both",
            "    across shards (n decayed co-uses, halving every minute).",
            "STATS",
            "    Per shard pair: batches, keys, keys per batch, batches run inline, hop",
            "    latency p50/p99 (µs, power-of-two buckets); multi-key commands served by one",
            "    shard or several; keys moved by pins.",
        ],
    )
}

fn route(s: &mut Session, args: &[Bytes]) -> Reply {
    let server = s.server;
    let key = &args[2];
    let slot = key_slot(key);
    let anchor = server.wormhole.anchor(key);
    Reply::Map(vec![
        (Reply::bulk_str("slot"), Reply::Int(slot as i64)),
        (
            Reply::bulk_str("shard"),
            Reply::Int(server.route(key) as i64),
        ),
        (
            Reply::bulk_str("slot_shard"),
            Reply::Int(server.slots.shard_of_slot(slot) as i64),
        ),
        (
            Reply::bulk_str("pinned"),
            Reply::Int(anchor.is_some() as i64),
        ),
        (
            Reply::bulk_str("anchor"),
            anchor.map_or(Reply::Nil, Reply::Bulk),
        ),
    ])
}

fn pin(server: &Server, shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let (key, anchor) = (&args[2], &args[3]);
    let anchor = match server.wormhole.check_pin(key, anchor) {
        Ok(a) => a,
        Err(e) => return (Reply::Error(e.message()), false),
    };
    let Some(shard0) = shard0 else {
        // Replay: the data's move is in the shards' own logs.
        server.wormhole.set_pin(&server.slots, key, anchor);
        return (Reply::Int(1), false);
    };
    let to = server.slots.shard_of(&anchor);
    let moved = crate::wormhole_state::move_key(server, shard0, key, to, Some(anchor));
    (Reply::Int(moved as i64), false)
}

fn unpin(server: &Server, shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let key = &args[2];
    if server.wormhole.anchor(key).is_none() {
        return (Reply::Int(0), false);
    }
    let Some(shard0) = shard0 else {
        server.wormhole.clear_pin(key);
        return (Reply::Int(1), false);
    };
    crate::wormhole_state::move_key(server, shard0, key, server.slots.shard_of(key), None);
    (Reply::Int(1), false)
}

fn auto(s: &mut Session, args: &[Bytes]) -> Reply {
    let server = s.server;
    set_switch(
        server,
        args,
        "wormhole-auto",
        ("threshold", "wormhole-auto-threshold"),
        "ERR THRESHOLD must be a positive integer",
        |cfg| server.wormhole.refresh(cfg),
    )
}

fn stats(s: &mut Session, _args: &[Bytes]) -> Reply {
    let w = &s.server.wormhole;
    let int = |name: &str, v: u64| (Reply::bulk_str(name), Reply::Int(v as i64));
    let mut pairs = Vec::new();
    for (from, row) in w.hops.iter().enumerate() {
        for (to, hop) in row.iter().enumerate() {
            let batches = hop.batches.load(Relaxed);
            if batches == 0 {
                continue;
            }
            let keys = hop.keys.load(Relaxed);
            let mut name = String::new();
            let _ = write!(name, "{from}->{to}");
            pairs.push((
                Reply::bulk_str(&name),
                Reply::Map(vec![
                    int("batches", batches),
                    int("keys", keys),
                    (
                        Reply::bulk_str("keys_per_batch"),
                        Reply::Double(keys as f64 / batches as f64),
                    ),
                    int("inline", hop.inline.load(Relaxed)),
                    int("hop_p50_us", hop.quantile_us(0.5)),
                    int("hop_p99_us", hop.quantile_us(0.99)),
                ]),
            ));
        }
    }
    let st = &w.stats;
    Reply::Map(vec![
        int("pins", w.pin_count() as u64),
        int("auto", w.auto.load(Relaxed) as u64),
        int("keys_moved", st.keys_moved.load(Relaxed)),
        int("auto_pins", st.auto_pins.load(Relaxed)),
        int("multi_key_one_shard", st.multi_key_one_shard.load(Relaxed)),
        int(
            "multi_key_cross_shard",
            st.multi_key_cross_shard.load(Relaxed),
        ),
        int("misrouted_retries", st.misrouted_retries.load(Relaxed)),
        (Reply::bulk_str("pairs"), Reply::Map(pairs)),
    ])
}

/// INFO physics lines.
pub fn info(server: &Server, out: &mut String) {
    let w = &server.wormhole;
    let st = &w.stats;
    let (mut batches, mut keys) = (0u64, 0u64);
    for row in &w.hops {
        for hop in row {
            batches += hop.batches.load(Relaxed);
            keys += hop.keys.load(Relaxed);
        }
    }
    let _ = write!(
        out,
        "wormhole_pins:{}\r\nwormhole_auto:{}\r\nwormhole_keys_moved:{}\r\nwormhole_auto_pins:{}\r\n\
         wormhole_multi_key_one_shard:{}\r\nwormhole_multi_key_cross_shard:{}\r\n\
         wormhole_cross_shard_batches:{batches}\r\nwormhole_cross_shard_keys:{keys}\r\n",
        w.pin_count(),
        w.auto.load(Relaxed) as u8,
        st.keys_moved.load(Relaxed),
        st.auto_pins.load(Relaxed),
        st.multi_key_one_shard.load(Relaxed),
        st.multi_key_cross_shard.load(Relaxed),
    );
}
