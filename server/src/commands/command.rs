//! COMMAND: the command table as clients see it (COUNT, INFO, DOCS, GETKEYS, LIST, HELP).

use bytes::Bytes;
use warpengine_storage::glob_match;

use super::util::{eq_ignore_case, help, lower, unknown_subcommand, wrong_arity, SYNTAX};
use super::{lookup, CommandSpec, TABLE};
use crate::protocol::Reply;
use crate::session::Session;

fn status_set(items: impl IntoIterator<Item = String>) -> Reply {
    Reply::Set(items.into_iter().map(Reply::StatusOwned).collect())
}

/// One COMMAND INFO entry in Redis 7's ten-field shape.
pub fn info_entry(spec: &CommandSpec) -> Reply {
    let (first, last, step) = spec.legacy_keys();
    let flags = spec
        .flags
        .split(' ')
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        status_set(flags),
        Reply::Int(first as i64),
        Reply::Int(last as i64),
        Reply::Int(step as i64),
        status_set(spec.acl_categories()),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn docs_entry(spec: &CommandSpec) -> Reply {
    Reply::Map(vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str(spec.since)),
        (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
    ])
}

pub fn command(_s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() == 1 {
        return Reply::Array(TABLE.iter().map(info_entry).collect());
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
        "count" if args.len() == 2 => Reply::Int(TABLE.len() as i64),
        "info" => {
            if args.len() == 2 {
                return Reply::Array(TABLE.iter().map(info_entry).collect());
            }
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|n| lookup(n).map_or(Reply::Nil, |i| info_entry(&TABLE[i])))
                    .collect(),
            )
        }
        "docs" => {
            let specs: Vec<&CommandSpec> = if args.len() == 2 {
                TABLE.iter().collect()
            } else {
                args[2..]
                    .iter()
                    .filter_map(|n| lookup(n).map(|i| &TABLE[i]))
                    .collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk_str(s.name), docs_entry(s)))
                    .collect(),
            )
        }
        "getkeys" if args.len() >= 3 => getkeys(&args[2..]),
        "list" => list(args),
        "count" | "getkeys" => wrong_arity(&format!("command|{sub}")),
        _ => unknown_subcommand(&args[1], "COMMAND"),
    }
}

fn getkeys(cmd: &[Bytes]) -> Reply {
    let Some(index) = lookup(&cmd[0]) else {
        return Reply::err("ERR Invalid command specified");
    };
    let spec = &TABLE[index];
    let argc = cmd.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let keys = spec.key_positions(cmd);
    if keys.is_empty() {
        return Reply::err("ERR The command has no key arguments");
    }
    Reply::Array(
        keys.into_iter()
            .map(|p| Reply::Bulk(cmd[p].clone()))
            .collect(),
    )
}

fn list(args: &[Bytes]) -> Reply {
    let names = TABLE.iter().map(|c| c.name);
    match args.len() {
        2 => Reply::Array(names.map(Reply::bulk_str).collect()),
        5 if eq_ignore_case(&args[2], "filterby") => {
            let by = lower(&args[3]);
            let value = &args[4];
            let keep: Vec<Reply> = TABLE
                .iter()
                .filter(|c| match by.as_str() {
                    "pattern" => glob_match(value, c.name.as_bytes(), true),
                    "aclcat" => {
                        let cat = format!("@{}", lower(value));
                        c.acl_categories().contains(&cat)
                    }
                    _ => false,
                })
                .map(|c| Reply::bulk_str(c.name))
                .collect();
            if !["pattern", "aclcat", "module"].contains(&by.as_str()) {
                return Reply::err(SYNTAX);
            }
            Reply::Array(keep)
        }
        _ => Reply::err(SYNTAX),
    }
}
