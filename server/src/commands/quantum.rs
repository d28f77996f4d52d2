//! QUANTUM: fetch a key and its partners in one round trip (docs/physics.md, QUANTUM).
//! LINK/UNLINK/RULE change server-wide metadata (`Run::Meta`: logged in shard 0's log); GET
//! names the keys to fetch and the dispatcher fetches them, one batch per owning shard.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use warpengine_physics::entangle::{Rule, RuleError};
use warpengine_storage::Shard;

use super::util::{eq_ignore_case, err_echo, help, set_switch, SYNTAX};
use super::{commands, k, session, Run, NO_KEYS};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};
use crate::session::{ConnState, Session};
use warpengine_storage::value::parse_strict_i64 as parse_i64;

commands! {
    pub static COMMANDS;
    "quantum", -2, "", NO_KEYS, "quantum", "0.1.0", Run::Container, "A container for QUANTUM commands: keys fetched together with their partners.";
    "quantum|link", -4, "write fast", k(2, -1, 1), "quantum", "0.1.0", Run::Meta(link), "Links a key with partners, both ways, so that QUANTUM GET fetches them together.";
    "quantum|unlink", -4, "write fast", k(2, -1, 1), "quantum", "0.1.0", Run::Meta(unlink), "Removes links between a key and partners.";
    "quantum|rule", -3, "write", NO_KEYS, "quantum", "0.1.0", Run::Meta(rule), "Adds, removes or lists rules that entangle keys by name (RULE ADD|DEL|LIST).";
    "quantum|learn", -3, "admin", NO_KEYS, "quantum", "0.1.0", session(learn), "Switches learning of links from co-read keys on or off.";
    "quantum|partners", 3, "readonly", k(2, 2, 1), "quantum", "0.1.0", session(partners), "Lists a key's partners with their origin and weight.";
    "quantum|get", -3, "readonly", k(2, 2, 1), "quantum", "0.1.0", Run::Fanout { list: get, each: "get" }, "Returns the values of a key and of its partners, fetched in parallel from their shards.";
    "quantum|help", 2, "loading stale", NO_KEYS, "quantum", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "QUANTUM",
        &[
            "LINK <key> <partner> [<partner> ...]",
            "    Entangle key with each partner (both ways). Returns how many links are new.",
            "UNLINK <key> <partner> [<partner> ...]",
            "    Remove those links. Returns how many there were.",
            "RULE ADD <pattern> <partner-pattern> [<partner-pattern> ...]",
            "    Keys matching pattern (one '*') are entangled with each partner pattern,",
            "    the text matched by '*' carried over: RULE ADD user:* profile:* settings:*.",
            "RULE DEL <pattern>",
            "    Remove the rule with that pattern.",
            "RULE LIST",
            "    List the rules.",
            "LEARN ON|OFF [WINDOW <ms>]",
            "    Learn links from keys that one client reads within <ms> of each other;",
            "    learned weights decay (quantum-learn-halflife) and are capped per key.",
            "PARTNERS <key>",
            "    The key's partners: [partner, origin (link|rule|learned), weight] each.",
            "GET <key> [LIMIT <n>]",
            "    key, value, partner, value, ...: partners fetched in parallel, one batch",
            "    per shard; nil for a partner that is missing or not a string.",
        ],
    )
}

fn link(server: &Server, _shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let key = &args[2];
    let partners = &args[3..];
    if partners.iter().any(|p| p == key) {
        return (Reply::err("ERR a key cannot be linked to itself"), false);
    }
    match server.quantum.link(&server.slots, key, partners) {
        Ok(fresh) => (Reply::Int(fresh), fresh > 0),
        Err(e) => (Reply::Error(e), false),
    }
}

fn unlink(server: &Server, _shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let removed = server.quantum.unlink(&server.slots, &args[2], &args[3..]);
    (Reply::Int(removed), removed > 0)
}

fn rule(server: &Server, _shard0: Option<&mut Shard>, args: &[Bytes]) -> (Reply, bool) {
    let q = &server.quantum;
    let action = &args[2];
    if eq_ignore_case(action, "add") && args.len() >= 5 {
        let partners: Vec<&[u8]> = args[4..].iter().map(|p| &p[..]).collect();
        return match Rule::new(&args[3], &partners) {
            Err(RuleError::Wildcards) => (
                Reply::err("ERR QUANTUM RULE patterns need exactly one '*'"),
                false,
            ),
            Ok(rule) => {
                if q.add_rule(rule) {
                    (OK, true)
                } else {
                    (
                        Reply::err(
                            "ERR QUANTUM RULE ADD would exceed quantum-max-rules; remove a rule first",
                        ),
                        false,
                    )
                }
            }
        };
    }
    if eq_ignore_case(action, "del") && args.len() == 4 {
        let removed = q.del_rule(&args[3]);
        return (Reply::Int(removed as i64), removed);
    }
    if eq_ignore_case(action, "list") && args.len() == 3 {
        let rules = q
            .rules()
            .into_iter()
            .map(|r| {
                Reply::Array(vec![
                    Reply::Bulk(Bytes::from(r.pattern)),
                    Reply::Array(
                        r.partners
                            .into_iter()
                            .map(|p| Reply::Bulk(Bytes::from(p)))
                            .collect(),
                    ),
                ])
            })
            .collect();
        return (Reply::Array(rules), false);
    }
    if ["add", "del", "list"]
        .iter()
        .any(|a| eq_ignore_case(action, a))
    {
        let name = String::from_utf8_lossy(action).to_ascii_lowercase();
        return (
            super::util::wrong_arity(&format!("quantum|rule|{name}")),
            false,
        );
    }
    (
        err_echo(
            "ERR unknown QUANTUM RULE action '",
            action,
            "'. Try QUANTUM HELP.",
        ),
        false,
    )
}

fn learn(s: &mut Session, args: &[Bytes]) -> Reply {
    let server = s.server;
    set_switch(
        server,
        args,
        "quantum-learn",
        ("window", "quantum-learn-window-ms"),
        "ERR WINDOW must be a positive number of milliseconds",
        |cfg| server.quantum.refresh(cfg),
    )
}

fn partners(s: &mut Session, args: &[Bytes]) -> Reply {
    let list = s
        .server
        .quantum
        .partners(&s.server.slots, &args[2], unix_ms(), true);
    Reply::Array(
        list.into_iter()
            .map(|p| {
                Reply::Array(vec![
                    Reply::Bulk(p.key),
                    Reply::bulk_str(p.origin.name()),
                    Reply::Double(p.weight),
                ])
            })
            .collect(),
    )
}

/// The keys QUANTUM GET fetches: the key, then at most LIMIT partners.
fn get(server: &Server, _conn: &ConnState, args: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    let q = &server.quantum;
    let mut limit = q.limits.max_partners.load(Relaxed) as usize;
    match &args[3..] {
        [] => {}
        [word, n] if eq_ignore_case(word, "limit") => match parse_i64(n) {
            Some(n) if n >= 0 => limit = limit.min(n as usize),
            _ => return Err(Reply::err("ERR LIMIT must be a non-negative integer")),
        },
        _ => return Err(Reply::err(SYNTAX)),
    }
    let key = args[2].clone();
    let mut keys = vec![key.clone()];
    let partners = q.partners(&server.slots, &key, unix_ms(), false);
    keys.extend(partners.into_iter().take(limit).map(|p| p.key));
    Ok(keys)
}
