//! The command table: every command as data (name, arity, flags, key positions, group), used
//! for dispatch, arity checks, routing keys to shards, and COMMAND's replies.
//! Each family's code lives in its own module, one function per command, named after it.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;

use crate::keyctx::KeyCtx;
use crate::protocol::Reply;
use crate::session::Session;

pub mod bitmaps;
pub mod blocking;
pub mod client;
pub mod command;
pub mod command_data;
pub mod config;
pub mod connection;
pub mod debug;
pub mod hashes;
pub mod horizon;
pub mod info;
pub mod keyspace;
pub mod lists;
pub mod memory;
pub mod object;
pub mod physics_info;
pub mod quantum;
pub mod server;
pub mod sets;
pub mod sort;
pub mod strings;
pub mod temporal;
pub mod util;
pub mod waitaof;
pub mod wormhole;
pub mod zsets;

/// A command on its key's shard: runs on the owning worker (or under that shard's lock).
pub type KeyedFn = fn(&mut KeyCtx, &[Bytes]) -> Reply;
/// A command about the connection or the whole server; runs on the connection's worker.
pub type SessionFn = fn(&mut Session, &[Bytes]) -> Reply;

#[derive(Clone, Copy)]
pub enum Run {
    Keyed(KeyedFn),
    Session(SessionFn),
    /// A keyed command that may have to wait for data (BLPOP and friends).
    Blocking(blocking::BlockingFn),
    /// A container of WarpEngine's own (QUANTUM, TEMPORAL, ...) whose subcommands are rows of
    /// their own, named `container|sub`: each is dispatched, logged and counted as a command.
    Container,
    /// A change to server-wide metadata (QUANTUM links and rules, WORMHOLE pins): runs under
    /// shard 0's lock and, when it changed something (the flag it returns), is logged in shard
    /// 0's log, so that replay applies such changes in the order they happened. (A pin logs
    /// itself, with the data it moved, as one group.)
    Meta(MetaFn),
    /// A read of several keys named by the command (QUANTUM GET): the function lists them and
    /// the dispatcher GETs each from its shard, one batch per shard, into one flat array.
    Fanout(FanoutFn),
    /// WAITAOF: waits, off the shards, for the log's fdatasync.
    WaitAof,
}

/// Gets shard 0 (locked) when run for a client, None when replayed from the log (then it
/// changes metadata only: data moves are in the shards' own logs).
pub type MetaFn =
    fn(&crate::server::Server, Option<&mut warpengine_storage::Shard>, &[Bytes]) -> (Reply, bool);
pub type FanoutFn =
    fn(&crate::server::Server, &crate::session::ConnState, &[Bytes]) -> Result<Vec<Bytes>, Reply>;

/// Where a command's keys are: Redis's legacy (first, last, step) triple, or a function for
/// commands whose key positions depend on their arguments.
#[derive(Clone, Copy)]
pub enum Keys {
    None,
    Range(i32, i32, i32),
    Custom {
        /// What COMMAND INFO reports (Redis gives containers like OBJECT 0, 0, 0).
        legacy: (i32, i32, i32),
        find: fn(&[Bytes]) -> Vec<usize>,
    },
}

#[derive(Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    /// Space-separated Redis command flags, as COMMAND INFO prints them.
    pub flags: &'static str,
    pub keys: Keys,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub run: Run,
}

impl CommandSpec {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(' ').any(|f| f == flag)
    }

    pub fn legacy_keys(&self) -> (i32, i32, i32) {
        match self.keys {
            Keys::None => (0, 0, 0),
            Keys::Range(f, l, s) => (f, l, s),
            Keys::Custom { legacy, .. } => legacy,
        }
    }

    /// Positions of the keys in `args` (args[0] is the command name).
    pub fn key_positions(&self, args: &[Bytes]) -> Vec<usize> {
        match self.keys {
            Keys::None => Vec::new(),
            Keys::Range(first, last, step) => {
                let argc = args.len() as i32;
                let last = if last < 0 {
                    argc + last
                } else {
                    last.min(argc - 1)
                };
                let mut out = Vec::new();
                let mut i = first;
                while i <= last && i < argc {
                    out.push(i as usize);
                    i += step.max(1);
                }
                out
            }
            Keys::Custom { find, .. } => find(args),
        }
    }

    /// ACL categories derived from flags and group, as COMMAND INFO lists them.
    pub fn acl_categories(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.has_flag("write") {
            out.push("@write".to_string());
        }
        if self.has_flag("readonly") {
            out.push("@read".to_string());
        }
        match self.group {
            "string" => out.push("@string".into()),
            "generic" => out.push("@keyspace".into()),
            "connection" => out.push("@connection".into()),
            "list" => out.push("@list".into()),
            "hash" => out.push("@hash".into()),
            "set" => out.push("@set".into()),
            "sorted-set" => out.push("@sortedset".into()),
            "bitmap" => out.push("@bitmap".into()),
            _ => {}
        }
        if self.has_flag("admin") {
            out.push("@admin".into());
            out.push("@dangerous".into());
        }
        out.push(
            if self.has_flag("fast") {
                "@fast"
            } else {
                "@slow"
            }
            .into(),
        );
        out
    }
}

pub(crate) const fn keyed(f: KeyedFn) -> Run {
    Run::Keyed(f)
}

pub(crate) const fn session(f: SessionFn) -> Run {
    Run::Session(f)
}

pub(crate) const NO_KEYS: Keys = Keys::None;
pub(crate) const fn k(first: i32, last: i32, step: i32) -> Keys {
    Keys::Range(first, last, step)
}

/// Declares a family's commands as data: `commands! { static NAME; rows... }`, one row per
/// command: name, arity, flags, keys, group, since, run, summary.
macro_rules! commands {
    ($vis:vis static $table:ident; $( $name:literal, $arity:expr, $flags:literal, $keys:expr, $group:literal, $since:literal, $run:expr, $summary:literal; )*) => {
        $vis static $table: &[$crate::commands::CommandSpec] = &[
            $( $crate::commands::CommandSpec { name: $name, arity: $arity, flags: $flags, keys: $keys,
                             group: $group, summary: $summary, since: $since, run: $run }, )*
        ];
    };
}
pub(crate) use commands;

/// Commands WarpEngine has and Redis has not (COMMAND INFO/DOCS build their entries from the
/// table instead of Redis's recorded data).
pub const WARPENGINE_ONLY: &[&str] = &["horizon", "quantum", "temporal", "waitaof", "wormhole"];

/// Every command: the core table below, then each data-type family's own table.
pub static TABLE: LazyLock<Vec<CommandSpec>> = LazyLock::new(|| {
    [
        CORE,
        bitmaps::COMMANDS,
        blocking::COMMANDS,
        hashes::COMMANDS,
        horizon::COMMANDS,
        lists::COMMANDS,
        quantum::COMMANDS,
        sets::COMMANDS,
        sort::COMMANDS,
        temporal::COMMANDS,
        wormhole::COMMANDS,
        zsets::COMMANDS,
    ]
    .concat()
});

use client as cl;
use command as cm;
use connection as cn;
use keyspace as ks;
use server as sv;
use strings as st;

commands! {
    static CORE;
    // strings
    "get", 2, "readonly fast", k(1, 1, 1), "string", "1.0.0", keyed(st::get), "Returns the string value of a key.";
    "set", -3, "write denyoom", k(1, 1, 1), "string", "1.0.0", keyed(st::set), "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.";
    "setnx", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::setnx), "Set the string value of a key only when the key doesn't exist.";
    "setex", 4, "write denyoom", k(1, 1, 1), "string", "2.0.0", keyed(st::setex), "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.";
    "psetex", 4, "write denyoom", k(1, 1, 1), "string", "2.6.0", keyed(st::psetex), "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.";
    "getset", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::getset), "Returns the previous string value of a key after setting it to a new value.";
    "getdel", 2, "write fast", k(1, 1, 1), "string", "6.2.0", keyed(st::getdel), "Returns the string value of a key after deleting the key.";
    "getex", -2, "write fast", k(1, 1, 1), "string", "6.2.0", keyed(st::getex), "Returns the string value of a key after setting its expiration time.";
    "mget", -2, "readonly fast", k(1, -1, 1), "string", "1.0.0", keyed(st::mget), "Atomically returns the string values of one or more keys.";
    "mset", -3, "write denyoom", k(1, -1, 2), "string", "1.0.1", keyed(st::mset), "Atomically creates or modifies the string values of one or more keys.";
    "msetnx", -3, "write denyoom", k(1, -1, 2), "string", "1.0.1", keyed(st::msetnx), "Atomically modifies the string values of one or more keys only when all keys don't exist.";
    "append", 3, "write denyoom fast", k(1, 1, 1), "string", "2.0.0", keyed(st::append), "Appends a string to the value of a key. Creates the key if it doesn't exist.";
    "strlen", 2, "readonly fast", k(1, 1, 1), "string", "2.2.0", keyed(st::strlen), "Returns the length of a string value.";
    "incr", 2, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::incr), "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    "decr", 2, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::decr), "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    "incrby", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::incrby), "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    "decrby", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::decrby), "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.";
    "incrbyfloat", 3, "write denyoom fast", k(1, 1, 1), "string", "2.6.0", keyed(st::incrbyfloat), "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    "getrange", 4, "readonly", k(1, 1, 1), "string", "2.4.0", keyed(st::getrange), "Returns a substring of the string stored at a key.";
    "substr", 4, "readonly", k(1, 1, 1), "string", "1.0.0", keyed(st::getrange), "Returns a substring from a string value.";
    "setrange", 4, "write denyoom", k(1, 1, 1), "string", "2.2.0", keyed(st::setrange), "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.";
    "lcs", -3, "readonly", k(1, 2, 1), "string", "7.0.0", keyed(st::lcs), "Finds the longest common substring.";
    // keyspace
    "del", -2, "write", k(1, -1, 1), "generic", "1.0.0", keyed(ks::del), "Deletes one or more keys.";
    "unlink", -2, "write fast", k(1, -1, 1), "generic", "4.0.0", keyed(ks::del), "Asynchronously deletes one or more keys.";
    "exists", -2, "readonly fast", k(1, -1, 1), "generic", "1.0.0", keyed(ks::exists), "Determines whether one or more keys exist.";
    "touch", -2, "readonly fast", k(1, -1, 1), "generic", "3.2.1", keyed(ks::touch), "Returns the number of existing keys out of those specified after updating the time they were last accessed.";
    "type", 2, "readonly fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::type_), "Determines the type of value stored at a key.";
    "expire", -3, "write fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::expire), "Sets the expiration time of a key in seconds.";
    "pexpire", -3, "write fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pexpire), "Sets the expiration time of a key in milliseconds.";
    "expireat", -3, "write fast", k(1, 1, 1), "generic", "1.2.0", keyed(ks::expireat), "Sets the expiration time of a key to a Unix timestamp.";
    "pexpireat", -3, "write fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pexpireat), "Sets the expiration time of a key to a Unix milliseconds timestamp.";
    "expiretime", 2, "readonly fast", k(1, 1, 1), "generic", "7.0.0", keyed(ks::expiretime), "Returns the expiration time of a key as a Unix timestamp.";
    "pexpiretime", 2, "readonly fast", k(1, 1, 1), "generic", "7.0.0", keyed(ks::pexpiretime), "Returns the expiration time of a key as a Unix milliseconds timestamp.";
    "ttl", 2, "readonly fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::ttl), "Returns the expiration time in seconds of a key.";
    "pttl", 2, "readonly fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pttl), "Returns the expiration time in milliseconds of a key.";
    "persist", 2, "write fast", k(1, 1, 1), "generic", "2.2.0", keyed(ks::persist), "Removes the expiration time of a key.";
    "rename", 3, "write", k(1, 2, 1), "generic", "1.0.0", keyed(ks::rename), "Renames a key and overwrites the destination.";
    "renamenx", 3, "write fast", k(1, 2, 1), "generic", "1.0.0", keyed(ks::renamenx), "Renames a key only when the target key name doesn't exist.";
    "copy", -3, "write denyoom", k(1, 2, 1), "generic", "6.2.0", keyed(ks::copy), "Copies the value of a key to a new key.";
    "move", 3, "write fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::move_), "Moves a key to another database.";
    "object", -2, "", Keys::Custom { legacy: (0, 0, 0), find: object::keys }, "generic", "2.2.3", keyed(object::object), "A container for object introspection commands.";
    "keys", 2, "readonly", NO_KEYS, "generic", "1.0.0", session(ks::keys), "Returns all key names that match a pattern.";
    "scan", -2, "readonly", NO_KEYS, "generic", "2.8.0", session(ks::scan), "Iterates over the key names in the database.";
    "randomkey", 1, "readonly", NO_KEYS, "generic", "1.0.0", session(ks::randomkey), "Returns a random key name from the database.";
    "dbsize", 1, "readonly fast", NO_KEYS, "server", "1.0.0", session(sv::dbsize), "Returns the number of keys in the database.";
    "flushdb", -1, "write", NO_KEYS, "server", "1.0.0", session(sv::flushdb), "Remove all keys from the current database.";
    "flushall", -1, "write", NO_KEYS, "server", "1.0.0", session(sv::flushall), "Removes all keys from all databases.";
    "swapdb", 3, "write fast", NO_KEYS, "server", "4.0.0", session(sv::swapdb), "Swaps two Redis databases.";
    // connection
    "ping", -1, "fast", NO_KEYS, "connection", "1.0.0", session(cn::ping), "Returns the server's liveliness response.";
    "echo", 2, "loading stale fast", NO_KEYS, "connection", "1.0.0", session(cn::echo), "Returns the given string.";
    "quit", -1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "1.0.0", session(cn::quit), "Closes the connection.";
    "reset", 1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "6.2.0", session(cn::reset), "Resets the connection.";
    "hello", -1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "6.0.0", session(cn::hello), "Handshakes with the Redis server.";
    "auth", -2, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "1.0.0", session(cn::auth), "Authenticates the connection.";
    "select", 2, "loading stale fast", NO_KEYS, "connection", "1.0.0", session(cn::select), "Changes the selected database.";
    "client", -2, "", NO_KEYS, "connection", "2.4.0", session(cl::client), "A container for client connection commands.";
    // server
    "command", -1, "loading stale", NO_KEYS, "server", "2.8.13", session(cm::command), "Returns detailed information about all commands.";
    "info", -1, "loading stale", NO_KEYS, "server", "1.0.0", session(info::info), "Returns information and statistics about the server.";
    "config", -2, "", NO_KEYS, "server", "2.0.0", session(config::config), "A container for server configuration commands.";
    "time", 1, "loading stale fast", NO_KEYS, "server", "2.6.0", session(sv::time), "Returns the server time.";
    "save", 1, "admin noscript no_async_loading no_multi", NO_KEYS, "server", "1.0.0", session(sv::save), "Synchronously saves the database(s) to disk.";
    "bgsave", -1, "admin noscript no_async_loading", NO_KEYS, "server", "1.0.0", session(sv::bgsave), "Asynchronously saves the database(s) to disk.";
    "bgrewriteaof", 1, "admin noscript no_async_loading", NO_KEYS, "server", "1.0.0", session(sv::bgrewriteaof), "Asynchronously rewrites the append-only file to disk.";
    "lastsave", 1, "loading stale fast", NO_KEYS, "server", "1.0.0", session(sv::lastsave), "Returns the Unix timestamp of the last successful save to disk.";
    "shutdown", -1, "admin noscript loading stale no_multi allow_busy", NO_KEYS, "server", "1.0.0", session(sv::shutdown), "Synchronously saves the database(s) to disk and shuts down the Redis server.";
    "memory", -2, "", Keys::Custom { legacy: (0, 0, 0), find: memory::keys }, "server", "4.0.0", session(memory::memory), "A container for memory diagnostics commands.";
    "debug", -2, "admin noscript loading stale", NO_KEYS, "server", "1.0.0", session(debug::debug), "A container for debugging commands.";
    "waitaof", 4, "noscript", NO_KEYS, "generic", "7.2.0", Run::WaitAof, "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.";
}

/// The table row a request runs as: its command, or for a `Run::Container` the subcommand row
/// its second argument names. Errors are Redis's for unknown subcommands and wrong arity.
pub fn resolve(index: usize, args: &[Bytes]) -> Result<usize, Reply> {
    let spec = &TABLE[index];
    if !matches!(spec.run, Run::Container) {
        return Ok(index);
    }
    let container = spec.name;
    let Some(sub) = args.get(1) else {
        return Err(util::wrong_arity(container));
    };
    let mut name = Vec::with_capacity(container.len() + 1 + sub.len());
    name.extend_from_slice(container.as_bytes());
    name.push(b'|');
    name.extend_from_slice(sub);
    let found = if sub.contains(&b'|') {
        None
    } else {
        lookup_row(&name)
    };
    let Some(found) = found else {
        return Err(util::unknown_subcommand(
            sub,
            &container.to_ascii_uppercase(),
        ));
    };
    let row = &TABLE[found];
    let argc = args.len() as i32;
    if (row.arity >= 0 && argc != row.arity) || argc < -row.arity {
        return Err(util::wrong_arity(row.name));
    }
    Ok(found)
}

/// The subcommand rows of a container, in table order.
pub fn subcommands(container: &str) -> impl Iterator<Item = &'static CommandSpec> + '_ {
    TABLE.iter().filter(move |c| {
        c.name
            .split_once('|')
            .is_some_and(|(parent, _)| parent == container)
    })
}

/// Whether a row is a top-level command (COMMAND, COMMAND COUNT and COMMAND LIST show only those).
pub fn is_top_level(spec: &CommandSpec) -> bool {
    !spec.name.contains('|')
}

/// Finds a top-level command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<usize> {
    lookup_row(name).filter(|&i| is_top_level(&TABLE[i]))
}

/// Finds any row, subcommand rows (`container|sub`) included.
pub fn lookup_row(name: &[u8]) -> Option<usize> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize, ahash::RandomState>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        TABLE
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    });
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index.get(&buf[..name.len()]).copied()
}

pub fn spec(index: usize) -> &'static CommandSpec {
    &TABLE[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for c in TABLE.iter() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(seen.insert(c.name), "duplicate {}", c.name);
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|i| TABLE[i].name), Some("get"));
        assert!(lookup(b"nosuch").is_none());
    }

    #[test]
    fn key_positions_follow_the_legacy_triple() {
        let args: Vec<Bytes> = ["mset", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let mset = &TABLE[lookup(b"mset").unwrap()];
        assert_eq!(mset.key_positions(&args), vec![1, 3]);
        let del = &TABLE[lookup(b"del").unwrap()];
        assert_eq!(del.key_positions(&args), vec![1, 2, 3, 4]);
    }
}
