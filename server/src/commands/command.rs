//! COMMAND: the command table as clients see it (COUNT, INFO, DOCS, GETKEYS, LIST, HELP).

use bytes::Bytes;
use warpengine_storage::glob_match;

use super::util::{eq_ignore_case, help, lower, unknown_subcommand, wrong_arity, SYNTAX};
use super::{command_data, is_top_level, lookup, subcommands, CommandSpec, Keys, Run, TABLE};
use crate::protocol::Reply;
use crate::session::Session;

fn status_set(items: impl IntoIterator<Item = String>) -> Reply {
    Reply::Set(items.into_iter().map(Reply::StatusOwned).collect())
}

/// One COMMAND INFO entry in Redis 7's ten-field shape: Redis's own entry (ACL categories,
/// tips, key specs, subcommands), with arity, flags and the legacy key triple from our table.
pub fn info_entry(spec: &CommandSpec) -> Reply {
    let (first, last, step) = spec.legacy_keys();
    let flags = spec.flags.names().map(str::to_string);
    let ours = [
        Reply::bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        status_set(flags),
        Reply::Int(first as i64),
        Reply::Int(last as i64),
        Reply::Int(step as i64),
    ];
    let mut fields = match command_data::get(spec.name) {
        Some(redis) => redis.info.clone(),
        None => vec![
            Reply::Nil,
            Reply::Nil,
            Reply::Nil,
            Reply::Nil,
            Reply::Nil,
            Reply::Nil,
            status_set(spec.acl_categories()),
            Reply::Set(vec![]),
            Reply::Array(vec![]),
            Reply::Array(subcommands(spec.name).map(info_entry).collect()),
        ],
    };
    for (slot, value) in fields.iter_mut().zip(ours) {
        *slot = value;
    }
    Reply::Array(fields)
}

/// ACL categories as COMMAND INFO lists them (Redis's, or derived for commands Redis lacks).
fn acl_categories(spec: &CommandSpec) -> Vec<String> {
    match command_data::get(spec.name) {
        Some(redis) => command_data::statuses(&redis.info[6])
            .into_iter()
            .map(str::to_string)
            .collect(),
        None => spec.acl_categories(),
    }
}

/// Redis's docs map, or a short one for commands Redis lacks.
fn docs_entry(spec: &CommandSpec) -> Reply {
    if let Some(redis) = command_data::get(spec.name) {
        return redis.docs();
    }
    let mut docs = vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str(spec.since)),
        (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
    ];
    let subs: Vec<(Reply, Reply)> = subcommands(spec.name)
        .map(|sub| (Reply::bulk_str(sub.name), docs_entry(sub)))
        .collect();
    if !subs.is_empty() {
        docs.push((Reply::bulk_str("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(docs)
}

/// Top-level commands (subcommand rows are listed under their container).
fn top_level() -> impl Iterator<Item = &'static CommandSpec> {
    TABLE.iter().filter(|c| is_top_level(c))
}

/// A name given to COMMAND INFO / DOCS: one of our commands, or `parent|sub` of one of ours.
enum Named {
    Command(&'static CommandSpec),
    Subcommand {
        parent: &'static str,
        fullname: String,
    },
}

fn resolve(name: &[u8]) -> Option<Named> {
    let Some(bar) = name.iter().position(|&b| b == b'|') else {
        return lookup(name).map(|i| Named::Command(&TABLE[i]));
    };
    let (parent, sub) = (&name[..bar], &name[bar + 1..]);
    if sub.contains(&b'|') {
        return None;
    }
    let parent = &TABLE[lookup(parent)?];
    let fullname = format!("{}|{}", parent.name, lower(sub));
    // Redis's own record of a subcommand wins over a row of ours (PUBSUB's).
    if command_data::subcommand_info(parent.name, &fullname).is_some() {
        return Some(Named::Subcommand {
            parent: parent.name,
            fullname,
        });
    }
    if matches!(parent.run, Run::Container) {
        let mut full = parent.name.as_bytes().to_vec();
        full.push(b'|');
        full.extend_from_slice(sub);
        return super::lookup_row(&full).map(|i| Named::Command(&TABLE[i]));
    }
    Some(Named::Subcommand {
        parent: parent.name,
        fullname,
    })
}

fn info_for(name: &[u8]) -> Reply {
    match resolve(name) {
        Some(Named::Command(spec)) => info_entry(spec),
        Some(Named::Subcommand { parent, fullname }) => {
            command_data::subcommand_info(parent, &fullname).map_or(Reply::Nil, Reply::clone)
        }
        None => Reply::Nil,
    }
}

fn docs_for(name: &[u8]) -> Option<(Reply, Reply)> {
    match resolve(name)? {
        Named::Command(spec) => Some((Reply::bulk_str(spec.name), docs_entry(spec))),
        Named::Subcommand { parent, fullname } => {
            let docs = command_data::subcommand_docs(parent, &fullname)?;
            Some((Reply::bulk_str(&fullname), docs))
        }
    }
}

pub fn command(_s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() == 1 {
        return Reply::Array(top_level().map(info_entry).collect());
    }
    let sub = lower(&args[1]);
    match sub.as_str() {
        "help" => help(
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
                "GETKEYSANDFLAGS <full-command>",
                "    Return the keys and the access flags from a full Redis command.",
            ],
        ),
        "count" if args.len() == 2 => Reply::Int(top_level().count() as i64),
        "info" => {
            if args.len() == 2 {
                return Reply::Array(top_level().map(info_entry).collect());
            }
            Reply::Array(args[2..].iter().map(|n| info_for(n)).collect())
        }
        "docs" => {
            if args.len() == 2 {
                return Reply::Map(
                    top_level()
                        .map(|s| (Reply::bulk_str(s.name), docs_entry(s)))
                        .collect(),
                );
            }
            Reply::Map(args[2..].iter().filter_map(|n| docs_for(n)).collect())
        }
        "getkeys" => getkeys(args),
        "getkeysandflags" => getkeysandflags(args),
        "list" => list(args),
        "count" => wrong_arity(&format!("command|{sub}")),
        _ => unknown_subcommand(&args[1], "COMMAND"),
    }
}

/// COMMAND GETKEYS, with Redis's checks in Redis's order. Containers (OBJECT, ...) are judged
/// by the subcommand named in the command, as Redis does.
fn getkeys(args: &[Bytes]) -> Reply {
    match keys_of(args, "getkeys", false) {
        Ok((cmd, keys)) => Reply::Array(
            keys.into_iter()
                .map(|(p, _)| Reply::Bulk(cmd[p].clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

/// COMMAND GETKEYSANDFLAGS: the keys with the flags of the key specifications that found them.
fn getkeysandflags(args: &[Bytes]) -> Reply {
    match keys_of(args, "getkeysandflags", true) {
        Ok((cmd, keys)) => Reply::Array(
            keys.into_iter()
                .map(|(p, flags)| {
                    Reply::Array(vec![
                        Reply::Bulk(cmd[p].clone()),
                        Reply::Set(
                            flags
                                .iter()
                                .map(|f| Reply::StatusOwned(f.clone()))
                                .collect(),
                        ),
                    ])
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

/// The keys of the command in `args[2..]`, after Redis's checks. With `flags`, Redis's key
/// specifications find them where it has them (with their flags); otherwise, and for
/// WarpEngine's own commands, the command's own key positions, flagged `RW` for a write and
/// `RO` otherwise.
#[allow(clippy::type_complexity)]
fn keys_of<'a>(
    args: &'a [Bytes],
    sub: &str,
    flags: bool,
) -> Result<(&'a [Bytes], Vec<(usize, Vec<String>)>), Reply> {
    if args.len() < 4 {
        return Err(wrong_arity(&format!("command|{sub}")));
    }
    let cmd = &args[2..];
    let Some(index) = lookup(&cmd[0]) else {
        return Err(Reply::err("ERR Invalid command specified"));
    };
    let mut spec = &TABLE[index];
    if matches!(spec.run, Run::Container) {
        match super::resolve(index, cmd) {
            Ok(sub) => spec = &TABLE[sub],
            Err(Reply::Error(e)) if e.starts_with("ERR wrong number") => {
                return Err(Reply::err(
                    "ERR Invalid number of arguments specified for command",
                ))
            }
            Err(_) => return Err(Reply::err("ERR Invalid command specified")),
        }
    }
    // A subcommand Redis records (a row `parent|sub`, or named by a container that reads its
    // own) is judged by Redis's record of it; WarpEngine's own by its row.
    let (parent, fullname) = match spec.name.split_once('|') {
        Some((parent, _)) if command_data::get(parent).is_some() => {
            (parent, Some(spec.name.to_string()))
        }
        Some(_) => (spec.name, None),
        None => (
            spec.name,
            command_data::has_subcommands(spec.name)
                .then(|| format!("{}|{}", spec.name, lower(&cmd[1]))),
        ),
    };
    let (arity, keyed) = match &fullname {
        Some(full) => match command_data::subcommand_arity_and_keyed(parent, full) {
            Some(found) => found,
            None => return Err(Reply::err("ERR Invalid command specified")),
        },
        None => {
            let keyed = !matches!(spec.keys, Keys::None) && !command_data::only_not_keys(spec.name);
            (spec.arity, keyed)
        }
    };
    if !keyed {
        return Err(Reply::err("ERR The command has no key arguments"));
    }
    let argc = cmd.len() as i32;
    if (arity > 0 && argc != arity) || argc < -arity {
        return Err(Reply::err(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let by_specs = command_data::key_specs(parent, fullname.as_deref())
        .filter(|_| flags)
        .and_then(|specs| command_data::keys_by_specs(specs, cmd));
    let keys = match by_specs {
        Some(keys) => keys,
        None => spec
            .key_positions(cmd)
            .into_iter()
            .map(|p| (p, own_key_flags(spec, cmd, p)))
            .collect(),
    };
    if keys.is_empty() {
        // As Redis: a command whose keys are optional (EVAL with numkeys 0) has none.
        if spec.flags.contains(super::Flags::NO_MANDATORY_KEYS) {
            return Ok((cmd, Vec::new()));
        }
        return Err(Reply::err("ERR Invalid arguments specified for command"));
    }
    Ok((cmd, keys))
}

/// The key flags of the key at `position` a command's own key finder gives, where Redis's key
/// specifications cannot: SET's depend on GET (Redis's `setGetKeys`: with it the key is read
/// too, without it only overwritten); SORT reads its key and overwrites its STORE target
/// (Redis's `sortGetKeys`; SORT_RO only reads); otherwise `RW` for a write and `RO` for a read.
fn own_key_flags(spec: &CommandSpec, cmd: &[Bytes], position: usize) -> Vec<String> {
    let flags: &[&str] = if spec.name == "sort" || spec.name == "sort_ro" {
        if position == 1 {
            &["RO", "access"]
        } else {
            &["OW", "update"]
        }
    } else if spec.name == "set" {
        if cmd.iter().skip(3).any(|a| eq_ignore_case(a, "get")) {
            &["RW", "access", "update"]
        } else {
            &["OW", "update"]
        }
    } else if spec.is_write() {
        &["RW"]
    } else {
        &["RO"]
    };
    flags.iter().map(|f| f.to_string()).collect()
}

/// Every command COMMAND LIST names, with its ACL categories: each top-level command followed
/// by its subcommands (`config|get`), as Redis lists them.
fn listed() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for c in top_level() {
        out.push((c.name.to_string(), acl_categories(c)));
        for (fullname, categories) in command_data::subcommands_with_categories(c.name) {
            out.push((fullname, categories));
        }
        // WarpEngine's own containers' rows (a Redis command's subcommands are Redis's
        // record above: CLIENT's rows of later Redis versions are not listed, as 7.0's).
        if command_data::get(c.name).is_some() {
            continue;
        }
        let prefix = format!("{}|", c.name);
        for sub in TABLE.iter().filter(|s| s.name.starts_with(&prefix)) {
            if !out.iter().any(|(n, _)| n == sub.name) {
                out.push((sub.name.to_string(), acl_categories(sub)));
            }
        }
    }
    out
}

fn list(args: &[Bytes]) -> Reply {
    match args.len() {
        2 => Reply::Array(listed().iter().map(|(n, _)| Reply::bulk_str(n)).collect()),
        5 if eq_ignore_case(&args[2], "filterby") => {
            let by = lower(&args[3]);
            let value = &args[4];
            if !["pattern", "aclcat", "module"].contains(&by.as_str()) {
                return Reply::err(SYNTAX);
            }
            let cat = format!("@{}", lower(value));
            let keep: Vec<Reply> = listed()
                .into_iter()
                .filter(|(name, categories)| match by.as_str() {
                    "pattern" => glob_match(value, name.as_bytes(), true),
                    "aclcat" => categories.contains(&cat),
                    // No modules.
                    _ => false,
                })
                .map(|(name, _)| Reply::bulk_str(&name))
                .collect();
            Reply::Array(keep)
        }
        _ => Reply::err(SYNTAX),
    }
}
