//! GRAVITY: find hot keys (docs/physics.md, GRAVITY). HOTKEYS reads the per-worker sketches of
//! `gravity_state`, which sample one keyed request in 16 and rate keys by their decayed counts.

use std::fmt::Write;

use bytes::Bytes;

use super::util::{eq_ignore_case, help, int_arg, SYNTAX};
use super::{commands, session, Run, NO_KEYS};
use crate::protocol::Reply;
use crate::server_state::Server;
use crate::session::Session;

/// HOTKEYS's COUNT when none is given.
const DEFAULT_COUNT: i64 = 10;

commands! {
    pub static COMMANDS;
    "gravity", -2, "", NO_KEYS, "gravity", "0.1.0", Run::Container, "A container for GRAVITY commands: hot keys.";
    "gravity|hotkeys", -2, "loading stale", NO_KEYS, "gravity", "0.1.0", session(hotkeys), "Lists the keys of the current database with the highest request rates, from a sampled, decayed sketch.";
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

/// INFO physics lines.
pub fn info(server: &Server, out: &mut String) {
    let g = &server.gravity;
    let (samples, bytes) = g.footprint();
    let _ = write!(
        out,
        "gravity_sketch:{}\r\ngravity_samples:{samples}\r\ngravity_sketch_bytes:{bytes}\r\n\
         gravity_halflife:{}\r\ngravity_max_keys:{}\r\n",
        g.enabled() as u8,
        g.halflife_secs(),
        g.max_keys(),
    );
}
