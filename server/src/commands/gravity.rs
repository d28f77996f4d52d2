//! GRAVITY: find and relieve hot keys (docs/physics.md, GRAVITY). HOTKEYS reads the per-worker
//! sketches of `gravity_state`, which sample one keyed request in 16 and rate keys by their
//! decayed counts; REPLICATE, UNREPLICATE and LIST manage the per-worker copies of hot keys
//! (`hot_copies`), by hand or, with AUTO, from the sketches.

use std::fmt::Write;

use bytes::Bytes;

use super::util::{eq_ignore_case, float_arg, help, int_arg, SYNTAX};
use super::{commands, session, Run, NO_KEYS};
use crate::hot_copies::{Refusal, MAX_REPLICATED};
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};
use crate::session::Session;

/// HOTKEYS's COUNT when none is given.
const DEFAULT_COUNT: i64 = 10;

/// REPLICATE AUTO's MINRATE (requests per second) when none is given.
const DEFAULT_MINRATE: f64 = 1000.0;

commands! {
    pub static COMMANDS;
    "gravity", -2, "", NO_KEYS, "gravity", "0.1.0", Run::Container, "A container for GRAVITY commands: hot keys.";
    "gravity|hotkeys", -2, "loading stale", NO_KEYS, "gravity", "0.1.0", session(hotkeys), "Lists the keys of the current database with the highest request rates, from a sampled, decayed sketch.";
    "gravity|replicate", -3, "loading stale", NO_KEYS, "gravity", "0.1.0", session(replicate), "Serves a hot, read-mostly key from a copy on every worker, or (AUTO) the hottest keys.";
    "gravity|unreplicate", 3, "loading stale", NO_KEYS, "gravity", "0.1.0", session(unreplicate), "Stops serving a key from copies, or (AUTO) ends automatic replication.";
    "gravity|list", 2, "loading stale", NO_KEYS, "gravity", "0.1.0", session(list), "Lists the replicated keys with their copy reads and refreshes.";
    "gravity|help", 2, "loading stale", NO_KEYS, "gravity", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "GRAVITY",
        &[
            "HOTKEYS [COUNT <n>]",
            "    The n (default 10) keys of the current database with the highest estimated",
            "    request rates (requests per second, decayed with gravity-halflife), highest",
            "    first, as [key, rate] pairs. Estimated from one keyed request in 16.",
            "REPLICATE <key>",
            "    Serve GETs of the key (of the current database) from a copy on every worker;",
            "    writes go to its owner, which updates the copies before acknowledging.",
            "    Returns 1 if the key was not replicated yet, else 0.",
            "REPLICATE AUTO [MINRATE <rate>]",
            "    Every second, replicate the hottest keys (HOTKEYS) with at least <rate>",
            "    requests per second (default 1000); drop the ones that cool below half of",
            "    it or are written too often for their reads.",
            "UNREPLICATE <key>|AUTO",
            "    Stop replicating the key (returns 1 if it was, else 0), or end AUTO and drop",
            "    the keys it chose (returns how many).",
            "LIST",
            "    The replicated keys: [db, key, mode (manual|auto), copy reads, refreshes].",
        ],
    )
}

fn hotkeys(s: &mut Session, args: &[Bytes]) -> Reply {
    let count = match &args[2..] {
        [] => DEFAULT_COUNT,
        [word, n] if eq_ignore_case(word, "count") => match int_arg(n) {
            Ok(n) if n > 0 => n,
            Ok(_) => return Reply::err("ERR COUNT must be > 0"),
            Err(e) => return e,
        },
        _ => return Reply::err(SYNTAX),
    };
    let g = &s.server.gravity;
    if !g.enabled() {
        return Reply::err("ERR the hot-key sketch is off (CONFIG SET gravity-sketch yes)");
    }
    Reply::Pairs(
        g.hottest(s.conn.db, count as usize)
            .into_iter()
            .map(|h| (Reply::Bulk(h.key), Reply::Double(h.rate)))
            .collect(),
    )
}

fn replicate(s: &mut Session, args: &[Bytes]) -> Reply {
    let server = s.server;
    if eq_ignore_case(&args[2], "auto") {
        let minrate = match &args[3..] {
            [] => DEFAULT_MINRATE,
            [word, r] if eq_ignore_case(word, "minrate") => match float_arg(r) {
                Ok(r) if r > 0.0 && r.is_finite() => r,
                Ok(_) => return Reply::err("ERR MINRATE must be > 0"),
                Err(e) => return e,
            },
            _ => return Reply::err(SYNTAX),
        };
        if !server.gravity.enabled() {
            return Reply::err("ERR AUTO needs the hot-key sketch (CONFIG SET gravity-sketch yes)");
        }
        server.hot_copies.set_auto(Some(minrate));
        return crate::protocol::reply::OK;
    }
    if args.len() != 3 {
        return Reply::err(SYNTAX);
    }
    let key = &args[2];
    let mut shard = server.lock_shard(server.route(key));
    let copies = &server.hot_copies;
    match copies.replicate(
        &mut shard,
        s.conn.db,
        key,
        false,
        unix_ms(),
        &server.watched_keys,
    ) {
        Ok(fresh) => Reply::Int(fresh as i64),
        Err(Refusal::Full) => Reply::err(format!(
            "ERR at most {MAX_REPLICATED} keys can be replicated (GRAVITY UNREPLICATE some)"
        )),
    }
}

fn unreplicate(s: &mut Session, args: &[Bytes]) -> Reply {
    let server = s.server;
    let copies = &server.hot_copies;
    if eq_ignore_case(&args[2], "auto") {
        copies.set_auto(None);
        let mut dropped = 0;
        for id in 0..server.threads() {
            let mut shard = server.lock_shard(id);
            for (db, key) in copies.auto_keys(id) {
                dropped +=
                    copies.unreplicate(&mut shard, db, key.as_bytes(), &server.watched_keys) as i64;
            }
        }
        return Reply::Int(dropped);
    }
    let key = &args[2];
    let mut shard = server.lock_shard(server.route(key));
    Reply::Int(copies.unreplicate(&mut shard, s.conn.db, key, &server.watched_keys) as i64)
}

fn list(s: &mut Session, _args: &[Bytes]) -> Reply {
    let rows = s.server.hot_copies.list();
    Reply::Array(
        rows.into_iter()
            .map(|r| {
                Reply::Array(vec![
                    Reply::Int(r.db as i64),
                    Reply::Bulk(r.key),
                    Reply::Bulk(Bytes::from_static(if r.auto { b"auto" } else { b"manual" })),
                    Reply::Int(r.hits as i64),
                    Reply::Int(r.refreshes as i64),
                ])
            })
            .collect(),
    )
}

/// INFO physics lines.
pub fn info(server: &Server, out: &mut String) {
    let g = &server.gravity;
    let (samples, bytes) = g.footprint();
    let _ = write!(
        out,
        "gravity_sketch:{}\r\ngravity_samples:{samples}\r\ngravity_sketch_bytes:{bytes}\r\n\
         gravity_halflife:{}\r\ngravity_max_keys:{}\r\ngravity_replicated_keys:{}\r\n\
         gravity_copy_hits:{}\r\ngravity_auto:{}\r\ngravity_auto_benched:{}\r\n",
        g.enabled() as u8,
        g.halflife_secs(),
        g.max_keys(),
        server.hot_copies.len(),
        server.copy_hits(),
        server.hot_copies.auto().map_or(0.0, |r| r),
        server.hot_copies.benched(crate::server_state::unix_ms()),
    );
}
