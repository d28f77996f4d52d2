//! Redis 7.0.15's own COMMAND DOCS and COMMAND INFO replies for every top-level Redis command,
//! recorded by `tools/gen-command-data.sh` (see `server/data/README.md`), embedded in the
//! binary. The INFO replies are parsed once; the docs (most of the data: parsed, 1.2 MB of
//! `used_memory` for ever) are parsed when COMMAND DOCS asks for them.

use std::collections::HashMap;

use bytes::Bytes;
use std::sync::OnceLock;

use crate::protocol::resp_reader::read_reply;
use crate::protocol::Reply;

#[cfg(test)]
use super::TABLE;

static DATA: &[u8] = include_bytes!("../../data/redis-commands.resp");

/// What Redis says about one command.
pub struct RedisCommand {
    /// Its COMMAND DOCS reply as recorded (`%1 name docs`), unparsed: see [`RedisCommand::docs`].
    docs_reply: Bytes,
    /// The ten fields of the COMMAND INFO entry.
    pub info: Vec<Reply>,
}

impl RedisCommand {
    /// The docs map (the value side of COMMAND DOCS's `name => docs` entry).
    pub fn docs(&self) -> Reply {
        let (reply, _) = read_reply(&self.docs_reply, 0).expect("recorded docs are valid RESP3");
        match reply {
            Reply::Map(mut pairs) if pairs.len() == 1 => pairs.pop().expect("one pair").1,
            _ => panic!("a recorded COMMAND DOCS reply is a one-entry map"),
        }
    }
}

/// Commands in file order, as (name, Redis data); None for commands Redis does not know.
fn entries() -> &'static [(String, Option<RedisCommand>)] {
    static ENTRIES: OnceLock<Vec<(String, Option<RedisCommand>)>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let data = Bytes::from_static(DATA);
        let read = |at| read_reply(&data, at).expect("embedded redis-commands.resp is valid RESP3");
        let mut entries = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let (docs, after_docs) = read(pos);
            let (info, after_info) = read(after_docs);
            entries.extend(parse_pair(&docs, data.slice(pos..after_docs), &info));
            pos = after_info;
        }
        entries
    })
}

/// One DOCS reply (`%1 name docs`, or `%0` for an unknown command), as read and as recorded,
/// and one INFO reply (`*1 [entry]`, or `*1 _`).
fn parse_pair(
    docs: &Reply,
    docs_reply: Bytes,
    info: &Reply,
) -> Option<(String, Option<RedisCommand>)> {
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
        (Some((Reply::Bulk(name), _)), Some(info)) => {
            let name = String::from_utf8(name.to_vec()).expect("utf-8 command name");
            Some((name, Some(RedisCommand { docs_reply, info })))
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
pub fn subcommand_docs(parent: &str, fullname: &str) -> Option<Reply> {
    let docs = get(parent)?.docs();
    map_get(map_get(&docs, "subcommands")?, fullname).cloned()
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

/// The key specifications Redis records for a command, or for its subcommand `fullname`.
pub fn key_specs(parent: &str, fullname: Option<&str>) -> Option<&'static [Reply]> {
    let specs = match fullname {
        Some(full) => match subcommand_info(parent, full)? {
            Reply::Array(fields) => fields.get(8)?,
            _ => return None,
        },
        None => get(parent)?.info.get(8)?,
    };
    match specs {
        Reply::Set(items) | Reply::Array(items) => Some(items),
        _ => None,
    }
}

fn int_at(map: &Reply, path: &[&str]) -> Option<i64> {
    let mut at = map;
    for key in path {
        at = map_get(at, key)?;
    }
    match at {
        Reply::Int(n) => Some(*n),
        _ => None,
    }
}

fn str_at<'a>(map: &'a Reply, path: &[&str]) -> Option<&'a [u8]> {
    let mut at = map;
    for key in path {
        at = map_get(at, key)?;
    }
    match at {
        Reply::Bulk(b) => Some(b),
        Reply::Status(s) => Some(s.as_bytes()),
        Reply::StatusOwned(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Finds a command's keys with Redis's key specifications, as Redis does for COMMAND
/// GETKEYSANDFLAGS: each spec's begin search (an index, or a keyword searched forwards or
/// backwards) then its find-keys rule (a range, or a count in the arguments). Positions in
/// `argv` (the command's name at 0) with the spec's flags; None when a spec is incomplete or of
/// a kind that needs the command's own key finder, or its flags vary with the arguments (the
/// caller falls back to that finder), as Redis.
pub fn keys_by_specs(specs: &[Reply], argv: &[Bytes]) -> Option<Vec<(usize, Vec<String>)>> {
    let mut found = Vec::new();
    for spec in specs {
        let Some(flags) = key_flags(spec) else {
            continue;
        };
        // Flags that depend on the arguments, or keys the spec cannot find: Redis asks the
        // command's own key finder instead.
        if flags
            .iter()
            .any(|f| f == "incomplete" || f == "variable_flags")
        {
            return None;
        }
        match spec_keys(spec, argv)? {
            Ok(positions) => found.extend(positions.into_iter().map(|p| (p, flags.clone()))),
            // As Redis's getKeysUsingKeySpecs: a spec whose keys would run past the arguments
            // (EVAL "" 3 a b) makes the command have no keys at all.
            Err(OutOfBounds) => return Some(Vec::new()),
        }
    }
    Some(found)
}

/// A key spec whose keys would lie outside the arguments (Redis's `invalid_spec`).
struct OutOfBounds;

/// A key spec's flags; None for a spec of things that are not keys (`not_key`: SPUBLISH's
/// shard channel).
fn key_flags(spec: &Reply) -> Option<Vec<String>> {
    let flags: Vec<String> = map_get(spec, "flags")
        .map(|f| statuses(f).into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    (!flags.iter().any(|f| f == "not_key")).then_some(flags)
}

/// The positions in `argv` of the keys one spec finds (its flags aside); None for a search of
/// a kind it cannot do (`unknown`); Err when they would lie outside the arguments.
fn spec_keys(spec: &Reply, argv: &[Bytes]) -> Option<Result<Vec<usize>, OutOfBounds>> {
    let argc = argv.len() as i64;
    let Some(first) = spec_begin(spec, argv)? else {
        return Some(Ok(Vec::new()));
    };
    let (first, last, step) = match str_at(spec, &["find_keys", "type"])? {
        b"range" => {
            let lastkey = int_at(spec, &["find_keys", "spec", "lastkey"])?;
            let step = int_at(spec, &["find_keys", "spec", "keystep"])?;
            let limit = int_at(spec, &["find_keys", "spec", "limit"])?;
            let last = if lastkey >= 0 {
                first + lastkey
            } else if limit == 0 {
                argc + lastkey
            } else {
                first + ((argc - first) / limit + lastkey)
            };
            (first, last, step)
        }
        b"keynum" => {
            let idx = int_at(spec, &["find_keys", "spec", "keynumidx"])?;
            let firstkey = int_at(spec, &["find_keys", "spec", "firstkey"])?;
            let step = int_at(spec, &["find_keys", "spec", "keystep"])?;
            let numkeys = argv
                .get((first + idx) as usize)
                .and_then(|a| std::str::from_utf8(a).ok()?.parse::<i64>().ok())
                .filter(|n| *n >= 0)?;
            let first = first + firstkey;
            (first, first + (numkeys - 1) * step, step)
        }
        _ => return None,
    };
    if step <= 0 {
        return None;
    }
    if last >= argc || last < first || first >= argc {
        return Some(Err(OutOfBounds));
    }
    let mut keys = Vec::new();
    let mut i = first;
    while i <= last && i >= 1 && i < argc {
        keys.push(i as usize);
        i += step;
    }
    Some(Ok(keys))
}

/// Where a key spec's keys begin in `argv`: its index, or the argument after its keyword
/// (searched forwards or backwards); Some(None) when the keyword is not there; None for a
/// begin search of another kind.
fn spec_begin(spec: &Reply, argv: &[Bytes]) -> Option<Option<i64>> {
    let argc = argv.len() as i64;
    match str_at(spec, &["begin_search", "type"])? {
        b"index" => Some(Some(int_at(spec, &["begin_search", "spec", "index"])?)),
        b"keyword" => {
            let keyword = str_at(spec, &["begin_search", "spec", "keyword"])?;
            let from = int_at(spec, &["begin_search", "spec", "startfrom"])?;
            let start = if from > 0 { from } else { argc + from };
            let end = if from > 0 { argc - 1 } else { 1 };
            let mut i = start;
            loop {
                if i >= argc || i < 1 {
                    return Some(None);
                }
                if argv[i as usize].eq_ignore_ascii_case(keyword) {
                    return Some(Some(i + 1));
                }
                if i == end {
                    return Some(None);
                }
                i += if start <= end { 1 } else { -1 };
            }
        }
        _ => None,
    }
}

/// The flags of the key at `pos` (found by the command's own key finder, where the specs are
/// incomplete), as Redis's own finders (sortGetKeys, migrateGetKeys) give each key its spec's
/// flags: those of a spec that finds a key there, else of the last spec whose search is
/// `unknown` (SORT's STORE destination). None when neither is.
pub fn flags_of_key(specs: &[Reply], argv: &[Bytes], pos: usize) -> Option<Vec<String>> {
    let mut unknown = None;
    for spec in specs {
        let Some(flags) = key_flags(spec) else {
            continue;
        };
        match spec_keys(spec, argv) {
            Some(Ok(keys)) if keys.contains(&pos) => return Some(flags),
            Some(_) => {}
            None => unknown = Some(flags),
        }
    }
    unknown
}

/// What Redis records of the subcommand `args` names (see
/// `command_table::SubcommandFacts`).
pub fn subcommand_facts(args: &[Bytes]) -> Option<Option<(i32, super::Flags)>> {
    // (Called for each command a script calls: no copy of a name already lower-case.)
    let name = String::from_utf8_lossy(args.first()?);
    let parent = if name.bytes().any(|c| c.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        name
    };
    if !has_subcommands(&parent) {
        return None;
    }
    let sub = args.get(1)?;
    let fullname = format!(
        "{parent}|{}",
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    );
    let Some(Reply::Array(fields)) = subcommand_info(&parent, &fullname) else {
        return Some(None);
    };
    let Reply::Int(arity) = fields[1] else {
        return Some(None);
    };
    Some(Some((arity as i32, flags_of(&fields[2]))))
}

/// A COMMAND INFO flags set as our flags.
fn flags_of(set: &Reply) -> super::Flags {
    let mut flags = super::Flags::default();
    for name in statuses(set) {
        if let Some((_, f)) = super::Flags::NAMES.iter().find(|(n, _)| *n == name) {
            flags = flags.with(*f);
        }
    }
    flags
}

/// Each subcommand Redis records for `parent`: its full name (`config|get`), arity and flags.
pub fn subcommand_rows(parent: &str) -> Vec<(String, i32, super::Flags)> {
    let Some(Reply::Array(subs)) = get(parent).map(|c| &c.info[9]) else {
        return Vec::new();
    };
    subs.iter()
        .filter_map(|sub| match sub {
            Reply::Array(fields) => match (fields.first(), fields.get(1), fields.get(2)) {
                (Some(Reply::Bulk(name)), Some(Reply::Int(arity)), Some(flags)) => Some((
                    String::from_utf8_lossy(name).into_owned(),
                    *arity as i32,
                    flags_of(flags),
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
        assert!(map_get(
            &subcommand_docs("client", "client|list").unwrap(),
            "summary"
        )
        .is_some());
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
