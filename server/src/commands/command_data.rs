//! Redis 7.0.15's own COMMAND DOCS and COMMAND INFO replies for every top-level Redis command,
//! recorded by `tools/gen-command-data.sh` (see `server/data/README.md`), embedded in the
//! binary and parsed once.

use std::collections::HashMap;

use bytes::Bytes;
use std::sync::OnceLock;

use crate::protocol::resp_reader::read_all;
use crate::protocol::Reply;

#[cfg(test)]
use super::TABLE;

static DATA: &[u8] = include_bytes!("../../data/redis-commands.resp");

/// What Redis says about one command.
pub struct RedisCommand {
    /// The docs map (the value side of COMMAND DOCS's `name => docs` entry).
    pub docs: Reply,
    /// The ten fields of the COMMAND INFO entry.
    pub info: Vec<Reply>,
}

/// Commands in file order, as (name, Redis data); None for commands Redis does not know.
fn entries() -> &'static [(String, Option<RedisCommand>)] {
    static ENTRIES: OnceLock<Vec<(String, Option<RedisCommand>)>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let replies = read_all(DATA).expect("embedded redis-commands.resp is valid RESP3");
        assert!(
            replies.len().is_multiple_of(2),
            "DOCS and INFO replies come in pairs"
        );
        replies
            .chunks(2)
            .filter_map(|pair| parse_pair(&pair[0], &pair[1]))
            .collect()
    })
}

/// One DOCS reply (`%1 name docs`, or `%0` for an unknown command) and one INFO reply
/// (`*1 [entry]`, or `*1 _`).
fn parse_pair(docs: &Reply, info: &Reply) -> Option<(String, Option<RedisCommand>)> {
    let info = match info {
        Reply::Array(items) if items.len() == 1 => match &items[0] {
            Reply::Array(fields) if fields.len() == 10 => Some(fields.clone()),
            _ => None,
        },
        _ => panic!("COMMAND INFO reply is a one-element array"),
    };
    let Reply::Map(pairs) = docs else {
        panic!("COMMAND DOCS reply is a map")
    };
    match (pairs.first(), info) {
        (Some((Reply::Bulk(name), docs)), Some(info)) => {
            let name = String::from_utf8(name.to_vec()).expect("utf-8 command name");
            let docs = docs.clone();
            Some((name, Some(RedisCommand { docs, info })))
        }
        // Commands Redis lacks leave no name behind; they are simply not found.
        (None, None) => None,
        _ => panic!("DOCS and INFO disagree about whether Redis knows a command"),
    }
}

fn index() -> &'static HashMap<&'static str, &'static RedisCommand> {
    static INDEX: OnceLock<HashMap<&'static str, &'static RedisCommand>> = OnceLock::new();
    INDEX.get_or_init(|| {
        entries()
            .iter()
            .filter_map(|(name, c)| c.as_ref().map(|c| (name.as_str(), c)))
            .collect()
    })
}

/// Redis's data for a top-level command (lowercase name).
pub fn get(name: &str) -> Option<&'static RedisCommand> {
    index().get(name).copied()
}

fn map_get<'a>(map: &'a Reply, key: &str) -> Option<&'a Reply> {
    let Reply::Map(pairs) = map else { return None };
    pairs
        .iter()
        .find(|(k, _)| matches!(k, Reply::Bulk(b) if b == key.as_bytes()))
        .map(|(_, v)| v)
}

/// Docs of a subcommand (`fullname` like `client|list`, lowercase) of a known command.
pub fn subcommand_docs(parent: &str, fullname: &str) -> Option<&'static Reply> {
    map_get(map_get(&get(parent)?.docs, "subcommands")?, fullname)
}

/// The COMMAND INFO entry of a subcommand (`fullname` like `client|list`, lowercase).
pub fn subcommand_info(parent: &str, fullname: &str) -> Option<&'static Reply> {
    let Reply::Array(subs) = &get(parent)?.info[9] else {
        return None;
    };
    subs.iter().find(|s| match s {
        Reply::Array(fields) => {
            matches!(fields.first(), Some(Reply::Bulk(n)) if n == fullname.as_bytes())
        }
        _ => false,
    })
}

/// Whether Redis flags the subcommand `args` names (`CONFIG GET ...`) `admin`: MONITOR does not
/// show such commands. For containers whose subcommands have no rows of their own here.
pub fn admin_subcommand(args: &[Bytes]) -> bool {
    let (Some(parent), Some(sub)) = (args.first(), args.get(1)) else {
        return false;
    };
    let parent = String::from_utf8_lossy(parent).to_ascii_lowercase();
    let fullname = format!(
        "{parent}|{}",
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    );
    match subcommand_info(&parent, &fullname) {
        Some(Reply::Array(fields)) => statuses(&fields[2]).contains(&"admin"),
        _ => false,
    }
}

/// The full names (`config|get`) and ACL categories of the subcommands Redis records for a
/// command.
pub fn subcommands_with_categories(parent: &str) -> Vec<(String, Vec<String>)> {
    let Some(Reply::Array(subs)) = get(parent).map(|c| &c.info[9]) else {
        return Vec::new();
    };
    subs.iter()
        .filter_map(|sub| match sub {
            Reply::Array(fields) => match (fields.first(), fields.get(6)) {
                (Some(Reply::Bulk(name)), Some(categories)) => Some((
                    String::from_utf8_lossy(name).into_owned(),
                    statuses(categories)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether Redis splits this command into subcommands (CLIENT, OBJECT, COMMAND, ...).
pub fn has_subcommands(name: &str) -> bool {
    get(name).is_some_and(|c| matches!(&c.info[9], Reply::Array(subs) if !subs.is_empty()))
}

/// A subcommand's arity and whether it has key specs, as Redis declares them.
pub fn subcommand_arity_and_keyed(parent: &str, fullname: &str) -> Option<(i32, bool)> {
    let Reply::Array(fields) = subcommand_info(parent, fullname)? else {
        return None;
    };
    let Reply::Int(arity) = fields[1] else {
        return None;
    };
    // Redis 7.0 sends key specs as a set.
    let keyed = matches!(&fields[8], Reply::Set(specs) | Reply::Array(specs) if !specs.is_empty());
    Some((arity as i32, keyed))
}

/// Every status in a set reply (flags, ACL categories).
/// Whether every key specification Redis records for a top-level command is flagged `not_key`
/// (SSUBSCRIBE, SPUBLISH: channel names placed like keys for cluster routing, which COMMAND
/// GETKEYS does not count as keys).
pub fn only_not_keys(name: &str) -> bool {
    let Some(Reply::Array(specs) | Reply::Set(specs)) = get(name).map(|c| &c.info[8]) else {
        return false;
    };
    !specs.is_empty()
        && specs.iter().all(|spec| {
            map_get(spec, "flags").is_some_and(|flags| statuses(flags).contains(&"not_key"))
        })
}

pub fn statuses(set: &Reply) -> Vec<&str> {
    match set {
        Reply::Set(items) | Reply::Array(items) => items
            .iter()
            .filter_map(|r| match r {
                Reply::StatusOwned(s) => Some(s.as_str()),
                Reply::Status(s) => Some(*s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_channels_are_not_keys() {
        assert!(super::only_not_keys("ssubscribe"));
        assert!(super::only_not_keys("spublish"));
        assert!(!super::only_not_keys("get"));
        assert!(!super::only_not_keys("ping"));
    }

    use super::*;

    fn int(r: &Reply) -> i64 {
        match r {
            Reply::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    #[test]
    fn data_covers_every_redis_command_in_the_table() {
        crate::commands::install();
        // The data holds all of Redis 7.0's commands (tools/gen-command-data.sh).
        assert!(
            entries().len() >= 200,
            "only {} commands recorded",
            entries().len()
        );
        for c in TABLE.iter().filter(|c| crate::commands::is_top_level(c)) {
            if crate::commands::WARPENGINE_ONLY.contains(&c.name) {
                assert!(get(c.name).is_none(), "{} is in Redis's data", c.name);
                continue;
            }
            assert!(get(c.name).is_some(), "{} is not in Redis's data", c.name);
        }
    }

    #[test]
    fn table_agrees_with_redis_on_arity_keys_and_flags() {
        crate::commands::install();
        let mut wrong = Vec::new();
        for c in TABLE.iter() {
            let Some(redis) = get(c.name) else { continue };
            let info = &redis.info;
            let ours = (c.arity as i64, c.legacy_keys());
            let (f, l, s) = (int(&info[3]), int(&info[4]), int(&info[5]));
            let theirs = (int(&info[1]), (f as i32, l as i32, s as i32));
            if ours != theirs {
                wrong.push(format!("{}: ours {ours:?}, Redis {theirs:?}", c.name));
            }
            let flags: Vec<&str> = c.flags.names().collect();
            if flags != statuses(&info[2]) {
                wrong.push(format!(
                    "{}: flags ours {flags:?}, Redis {:?}",
                    c.name,
                    statuses(&info[2])
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn subcommands_are_found() {
        let Some(Reply::Array(fields)) = subcommand_info("client", "client|list") else {
            panic!("client|list info")
        };
        assert_eq!(fields[0], Reply::bulk_str("client|list"));
        assert!(map_get(subcommand_docs("client", "client|list").unwrap(), "summary").is_some());
        assert!(subcommand_info("client", "client|nosuch").is_none());
        assert!(subcommand_docs("get", "get|x").is_none());
        assert!(has_subcommands("object") && !has_subcommands("get"));
        assert_eq!(
            subcommand_arity_and_keyed("object", "object|encoding"),
            Some((3, true))
        );
        assert_eq!(
            subcommand_arity_and_keyed("object", "object|help"),
            Some((2, false))
        );
    }
}
