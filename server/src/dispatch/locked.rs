//! Commands whose keys span shards run with those shards locked, in ascending order; WORMHOLE's
//! pins are re-checked under the locks, and a batched command a pin moved away is re-run here.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_storage::Shard;

use super::step::{self, Admission};
use crate::command_table::{CommandSpec, Run, TABLE};
use crate::fabric::BatchItem;
use crate::keyctx::{Caller, KeyCtx, Shards};
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};
use crate::session::ConnState;

/// Runs `f` with every shard that owns one of the command's keys locked, in ascending order (the
/// global lock order, so that concurrent multi-shard commands cannot deadlock).
pub(super) fn run_locked<R>(
    server: &Server,
    conn: &ConnState,
    spec: &CommandSpec,
    args: &[Bytes],
    f: impl FnOnce(&mut KeyCtx) -> R,
) -> R {
    run_locked_as(server, conn.db, conn.caller(), spec, args, f)
}

fn run_locked_as<R>(
    server: &Server,
    db: usize,
    caller: Caller,
    spec: &CommandSpec,
    args: &[Bytes],
    f: impl FnOnce(&mut KeyCtx) -> R,
) -> R {
    let positions = spec.key_positions(args);
    run_on_shards_of(
        server,
        db,
        caller,
        || positions.iter().map(|&p| &args[p][..]),
        f,
    )
}

/// Runs `f` with the shards that own `keys` locked, in ascending order (see [`run_locked`]).
/// `keys` is asked again if a pin moved a key meanwhile.
pub(super) fn run_on_shards_of<'k, R, K: Iterator<Item = &'k [u8]>>(
    server: &Server,
    db: usize,
    caller: Caller,
    keys: impl Fn() -> K,
    f: impl FnOnce(&mut KeyCtx) -> R,
) -> R {
    let mut epoch = server.wormhole.epoch();
    let owners = || {
        let mut ids: Vec<usize> = keys().map(|k| server.route(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut shard_ids = owners();
    loop {
        let mut guards: Vec<_> = shard_ids.iter().map(|&s| server.lock_shard(s)).collect();
        // A pin may have moved a key between routing and locking; with the shards locked the
        // answer is stable.
        if server.wormhole.may_have_moved(epoch) {
            epoch = server.wormhole.epoch();
            let now = owners();
            if now != shard_ids {
                drop(guards);
                shard_ids = now;
                continue;
            }
        }
        let shards: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut ctx = KeyCtx::new(Shards::Many(shards), server, db, unix_ms());
        ctx.set_caller(caller);
        let out = f(&mut ctx);
        drop(ctx);
        for g in &guards {
            server.publish_spare(g);
        }
        return out;
    }
}

/// Runs a batched command that a pin moved off the shard it was sent to, under the locks of
/// its keys' shards now.
pub(super) fn run_misrouted(server: &Server, item: &BatchItem, caller: Caller) -> Reply {
    server
        .wormhole
        .stats
        .misrouted_retries
        .fetch_add(1, Ordering::Relaxed);
    let spec = &TABLE[item.spec];
    let Run::Keyed(f) = spec.run else {
        unreachable!("only keyed commands are batched")
    };
    run_locked_as(server, item.db, caller, spec, &item.args, |ctx| {
        step::execute(ctx, item.spec, &item.args, Admission::Check, |ctx| {
            f(ctx, &item.args)
        })
    })
}

/// Whether every key of `item` is stored on `shard` (checked under that shard's lock).
pub(super) fn owned_here(server: &Server, shard: usize, item: &BatchItem) -> bool {
    let spec = &TABLE[item.spec];
    spec.key_positions(&item.args)
        .into_iter()
        .all(|p| server.route(&item.args[p]) == shard)
}

/// WORMHOLE's figures for a command with several keys, and AUTO's pair counts: a key that
/// keeps being used across shards with the command's first key is pinned to it.
pub(super) fn count_multi_key(
    server: &Server,
    one_shard: bool,
    positions: &[usize],
    args: &[Bytes],
) {
    let w = &server.wormhole;
    if one_shard {
        w.stats.multi_key_one_shard.fetch_add(1, Ordering::Relaxed);
        return;
    }
    w.stats
        .multi_key_cross_shard
        .fetch_add(1, Ordering::Relaxed);
    if !w.auto.load(Ordering::Relaxed) {
        return;
    }
    let first = &args[positions[0]];
    let home = server.route(first);
    let now = unix_ms();
    for &p in &positions[1..] {
        let other = &args[p];
        if other != first && server.route(other) != home && w.observe_pair(first, other, now) {
            crate::wormhole_state::auto_pin(server, other, first);
        }
    }
}
