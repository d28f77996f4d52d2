//! The command families: one module per family, each declaring its commands as rows of the
//! command table (`commands!`) beside the functions that run them, one function per command,
//! named after it. `install` puts every family's rows into `crate::command_table`, which is all
//! the layers below see of the commands.

pub use crate::command_table::{
    is_top_level, lookup, lookup_row, nothing_returned, resolve, subcommands, zero_changes,
    Attempt, BlockingFn, CommandSpec, FanoutFn, Flags, KeyedFn, Keys, LogForm, MetaFn, Run,
    SessionFn, TxStep, Writes, TABLE,
};

pub mod acl;
pub mod bitmaps;
pub mod blocking;
pub mod client;
pub mod cluster;
pub mod command;
pub mod command_data;
pub mod config;
pub mod connection;
pub mod debug;
pub mod dump;
pub mod entropy;
pub mod functions;
pub mod geo;
pub mod gravity;
pub mod hashes;
pub mod horizon;
pub mod hyperloglog;
pub mod info;
pub mod keyspace;
pub mod latency;
pub mod lists;
pub mod lolwut;
pub mod memory;
pub mod module;
pub mod object;
pub mod physics_info;
pub mod pubsub;
pub mod quantum;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod slowlog;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod temporal;
pub mod transactions;
pub mod util;
pub mod wormhole;
pub mod zsets;

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
/// command: name, arity, flags (Redis's names), keys, group, since, run, summary, then any of
/// `CommandSpec`'s modifiers where the defaults do not fit (`log(...)`, `writes(...)`, ...).
macro_rules! commands {
    ($vis:vis static $table:ident; $( $name:literal, $arity:expr, $flags:literal, $keys:expr, $group:literal, $since:literal, $run:expr, $summary:literal $(, $modifier:ident($($value:expr),*))* ; )*) => {
        $vis static $table: &[$crate::commands::CommandSpec] = &[
            $( $crate::commands::CommandSpec::new($name, $arity, $flags, $keys, $group, $since, $run, $summary)
                $( .$modifier($($value),*) )* , )*
        ];
    };
}
pub(crate) use commands;

/// Commands WarpEngine has and Redis has not (COMMAND INFO/DOCS build their entries from the
/// table instead of Redis's recorded data).
pub const WARPENGINE_ONLY: &[&str] = &[
    "entropy", "gravity", "horizon", "quantum", "temporal", "waitaof", "wormhole",
];

/// Installs every family's rows as the command table: the core table below, then each
/// data-type family's own. Called once at start-up, before anything looks a command up.
pub fn install() {
    crate::command_table::install_subcommand_facts(command_data::subcommand_facts);
    crate::command_table::install(|| {
        let rows = [
            CORE,
            acl::COMMANDS,
            bitmaps::COMMANDS,
            blocking::COMMANDS,
            cluster::COMMANDS,
            dump::COMMANDS,
            entropy::COMMANDS,
            functions::COMMANDS,
            geo::COMMANDS,
            gravity::COMMANDS,
            hashes::COMMANDS,
            horizon::COMMANDS,
            hyperloglog::COMMANDS,
            lists::COMMANDS,
            pubsub::COMMANDS,
            quantum::COMMANDS,
            replication::COMMANDS,
            scripting::COMMANDS,
            sets::COMMANDS,
            module::COMMANDS,
            slowlog::COMMANDS,
            latency::COMMANDS,
            lolwut::COMMANDS,
            sort::COMMANDS,
            streams::COMMANDS,
            temporal::COMMANDS,
            transactions::COMMANDS,
            wormhole::COMMANDS,
            zsets::COMMANDS,
        ]
        .concat();
        with_subcommand_rows(rows)
    });
    acl::install();
}

/// Subcommands WarpEngine's containers serve beyond Redis 7.0's (from later Redis versions):
/// full name, arity, flags and the release that brought them.
const LATER_SUBCOMMANDS: &[(&str, i32, &str, &str)] = &[
    ("client|setinfo", 4, "noscript loading stale", "7.2.0"),
    ("client|no-touch", 3, "noscript loading stale", "7.2.0"),
];

/// Redis's containers whose function reads its own subcommand (CONFIG, CLIENT, OBJECT, XGROUP
/// ..., but COMMAND) become containers with a row per subcommand Redis records (and per one of
/// [`LATER_SUBCOMMANDS`]), with Redis's arity and flags and the container's function: each
/// subcommand is then admitted, counted (INFO's `cmdstat_config|get`, its latency), checked by
/// ACL and by scripts as a row of Redis's own table.
fn with_subcommand_rows(rows: Vec<CommandSpec>) -> Vec<CommandSpec> {
    let mut generated = Vec::new();
    let rows = rows
        .into_iter()
        .map(|mut row| {
            // COMMAND (arity -1) also runs bare, which a container row cannot: it keeps
            // reading its subcommand itself.
            if matches!(row.run, Run::Container)
                || row.arity == -1
                || !command_data::has_subcommands(row.name)
            {
                return row;
            }
            let later = LATER_SUBCOMMANDS
                .iter()
                .filter(|(full, ..)| full.split_once('|').is_some_and(|(p, _)| p == row.name))
                .map(|&(full, arity, flags, since)| {
                    (full.to_string(), arity, Flags::parse(flags), Some(since))
                });
            let redis_own = command_data::subcommand_rows(row.name)
                .into_iter()
                .map(|(full, arity, flags)| (full, arity, flags, None));
            for (fullname, arity, flags, since) in redis_own.chain(later) {
                let mut sub = row;
                sub.name = Box::leak(fullname.into_boxed_str());
                sub.arity = arity;
                sub.flags = flags;
                sub.since = since.unwrap_or(row.since);
                sub.log = match (flags.contains(Flags::WRITE), row.log) {
                    (false, _) => LogForm::NotLogged,
                    (true, LogForm::NotLogged) => LogForm::Argv,
                    (true, form) => form,
                };
                generated.push(sub);
            }
            row.run = Run::Container;
            row
        })
        .collect::<Vec<_>>();
    [rows, generated].concat()
}

use client as cl;
use command as cm;
use connection as cn;
use keyspace as ks;
use server as sv;
use strings as st;

commands! {
    static CORE;
    // strings
    "get", 2, "readonly fast", k(1, 1, 1), "string", "1.0.0", keyed(st::get), "Returns the string value of a key.", reads_hot_copy();
    "set", -3, "write denyoom", k(1, 1, 1), "string", "1.0.0", keyed(st::set), "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", log(LogForm::ArgvWithExpiry), takes_durability(true), unchanged_when(st::set_unchanged);
    "setnx", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::setnx), "Set the string value of a key only when the key doesn't exist.", unchanged_when(zero_changes);
    "setex", 4, "write denyoom", k(1, 1, 1), "string", "2.0.0", keyed(st::setex), "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", log(LogForm::ArgvWithExpiry);
    "psetex", 4, "write denyoom", k(1, 1, 1), "string", "2.6.0", keyed(st::psetex), "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", log(LogForm::ArgvWithExpiry);
    "getset", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::getset), "Returns the previous string value of a key after setting it to a new value.", log(LogForm::Effects(st::getset_effects));
    "getdel", 2, "write fast", k(1, 1, 1), "string", "6.2.0", keyed(st::getdel), "Returns the string value of a key after deleting the key.", log(LogForm::Effects(st::getdel_effects));
    "getex", -2, "write fast", k(1, 1, 1), "string", "6.2.0", keyed(st::getex), "Returns the string value of a key after setting its expiration time.", log(LogForm::ArgvWithExpiry), unchanged_when(st::getex_unchanged);
    "mget", -2, "readonly fast", k(1, -1, 1), "string", "1.0.0", keyed(st::mget), "Atomically returns the string values of one or more keys.";
    "mset", -3, "write denyoom", k(1, -1, 2), "string", "1.0.1", keyed(st::mset), "Atomically creates or modifies the string values of one or more keys.";
    "msetnx", -3, "write denyoom", k(1, -1, 2), "string", "1.0.1", keyed(st::msetnx), "Atomically modifies the string values of one or more keys only when all keys don't exist.", unchanged_when(zero_changes);
    "append", 3, "write denyoom fast", k(1, 1, 1), "string", "2.0.0", keyed(st::append), "Appends a string to the value of a key. Creates the key if it doesn't exist.";
    "strlen", 2, "readonly fast", k(1, 1, 1), "string", "2.2.0", keyed(st::strlen), "Returns the length of a string value.";
    "incr", 2, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::incr), "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    "decr", 2, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::decr), "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    "incrby", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::incrby), "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    "decrby", 3, "write denyoom fast", k(1, 1, 1), "string", "1.0.0", keyed(st::decrby), "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.";
    "incrbyfloat", 3, "write denyoom fast", k(1, 1, 1), "string", "2.6.0", keyed(st::incrbyfloat), "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", log(LogForm::Effects(st::incrbyfloat_effects));
    "getrange", 4, "readonly", k(1, 1, 1), "string", "2.4.0", keyed(st::getrange), "Returns a substring of the string stored at a key.";
    "substr", 4, "readonly", k(1, 1, 1), "string", "1.0.0", keyed(st::getrange), "Returns a substring from a string value.";
    "setrange", 4, "write denyoom", k(1, 1, 1), "string", "2.2.0", keyed(st::setrange), "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.";
    "lcs", -3, "readonly", k(1, 2, 1), "string", "7.0.0", keyed(st::lcs), "Finds the longest common substring.";
    // keyspace
    "del", -2, "write", k(1, -1, 1), "generic", "1.0.0", keyed(ks::del), "Deletes one or more keys.", unchanged_when(zero_changes);
    "unlink", -2, "write fast", k(1, -1, 1), "generic", "4.0.0", keyed(ks::unlink), "Asynchronously deletes one or more keys.", unchanged_when(zero_changes);
    "exists", -2, "readonly fast", k(1, -1, 1), "generic", "1.0.0", keyed(ks::exists), "Determines whether one or more keys exist.";
    "touch", -2, "readonly fast", k(1, -1, 1), "generic", "3.2.1", keyed(ks::touch), "Returns the number of existing keys out of those specified after updating the time they were last accessed.";
    "type", 2, "readonly fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::type_), "Determines the type of value stored at a key.";
    "expire", -3, "write fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::expire), "Sets the expiration time of a key in seconds.", log(LogForm::ArgvWithExpiry), unchanged_when(zero_changes);
    "pexpire", -3, "write fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pexpire), "Sets the expiration time of a key in milliseconds.", log(LogForm::ArgvWithExpiry), unchanged_when(zero_changes);
    "expireat", -3, "write fast", k(1, 1, 1), "generic", "1.2.0", keyed(ks::expireat), "Sets the expiration time of a key to a Unix timestamp.", log(LogForm::ArgvWithExpiry), unchanged_when(zero_changes);
    "pexpireat", -3, "write fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pexpireat), "Sets the expiration time of a key to a Unix milliseconds timestamp.", log(LogForm::ArgvWithExpiry), unchanged_when(zero_changes);
    "expiretime", 2, "readonly fast", k(1, 1, 1), "generic", "7.0.0", keyed(ks::expiretime), "Returns the expiration time of a key as a Unix timestamp.";
    "pexpiretime", 2, "readonly fast", k(1, 1, 1), "generic", "7.0.0", keyed(ks::pexpiretime), "Returns the expiration time of a key as a Unix milliseconds timestamp.";
    "ttl", 2, "readonly fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::ttl), "Returns the expiration time in seconds of a key.";
    "pttl", 2, "readonly fast", k(1, 1, 1), "generic", "2.6.0", keyed(ks::pttl), "Returns the expiration time in milliseconds of a key.";
    "persist", 2, "write fast", k(1, 1, 1), "generic", "2.2.0", keyed(ks::persist), "Removes the expiration time of a key.", unchanged_when(zero_changes);
    "rename", 3, "write", k(1, 2, 1), "generic", "1.0.0", keyed(ks::rename), "Renames a key and overwrites the destination.";
    "renamenx", 3, "write fast", k(1, 2, 1), "generic", "1.0.0", keyed(ks::renamenx), "Renames a key only when the target key name doesn't exist.", unchanged_when(zero_changes);
    "copy", -3, "write denyoom", k(1, 2, 1), "generic", "6.2.0", keyed(ks::copy), "Copies the value of a key to a new key.", writes(Writes::Second), other_db(ks::copy_target_db), unchanged_when(zero_changes);
    "move", 3, "write fast", k(1, 1, 1), "generic", "1.0.0", keyed(ks::move_), "Moves a key to another database.", other_db(ks::move_target_db), unchanged_when(zero_changes);
    "object", -2, "", Keys::Custom { legacy: (0, 0, 0), find: object::keys }, "generic", "2.2.3", keyed(object::object), "A container for object introspection commands.";
    "keys", 2, "readonly", NO_KEYS, "generic", "1.0.0", session(ks::keys), "Returns all key names that match a pattern.", reply_length_deferred();
    "scan", -2, "readonly", NO_KEYS, "generic", "2.8.0", session(ks::scan), "Iterates over the key names in the database.";
    "randomkey", 1, "readonly", NO_KEYS, "generic", "1.0.0", session(ks::randomkey), "Returns a random key name from the database.";
    "dbsize", 1, "readonly fast", NO_KEYS, "server", "1.0.0", session(sv::dbsize), "Returns the number of keys in the database.";
    "monitor", 1, "admin noscript loading stale", NO_KEYS, "server", "1.0.0", session(sv::monitor), "Listens for all requests received by the server in real-time.";
    "flushdb", -1, "write", NO_KEYS, "server", "1.0.0", session(sv::flushdb), "Remove all keys from the current database.";
    "flushall", -1, "write", NO_KEYS, "server", "1.0.0", session(sv::flushall), "Removes all keys from all databases.";
    "swapdb", 3, "write fast", NO_KEYS, "server", "4.0.0", session(sv::swapdb), "Swaps two Redis databases.";
    // connection
    "ping", -1, "fast", NO_KEYS, "connection", "1.0.0", session(cn::ping), "Returns the server's liveliness response.", allowed_when_subscribed();
    "echo", 2, "loading stale fast", NO_KEYS, "connection", "1.0.0", session(cn::echo), "Returns the given string.";
    "quit", -1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "1.0.0", session(cn::quit), "Closes the connection.", runs_in_multi(), allowed_when_subscribed();
    "reset", 1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "6.2.0", session(cn::reset), "Resets the connection.", runs_in_multi(), allowed_when_subscribed();
    "hello", -1, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "6.0.0", session(cn::hello), "Handshakes with the Redis server.", redacts(cn::hello_secrets);
    "auth", -2, "noscript loading stale fast no_auth allow_busy", NO_KEYS, "connection", "1.0.0", session(cn::auth), "Authenticates the connection.", redacts(cn::auth_secrets);
    "select", 2, "loading stale fast", NO_KEYS, "connection", "1.0.0", session(cn::select), "Changes the selected database.", runs_in_exec_step();
    "client", -2, "", NO_KEYS, "connection", "2.4.0", session(cl::client), "A container for client connection commands.", monitor_hides(command_data::admin_subcommand), keeps_tracking_caching();
    // server
    "command", -1, "loading stale", NO_KEYS, "server", "2.8.13", session(cm::command), "Returns detailed information about all commands.";
    "info", -1, "loading stale", NO_KEYS, "server", "1.0.0", session(info::info), "Returns information and statistics about the server.";
    "config", -2, "", NO_KEYS, "server", "2.0.0", session(config::config), "A container for server configuration commands.", monitor_hides(command_data::admin_subcommand), redacts(config::config_secrets);
    "time", 1, "loading stale fast", NO_KEYS, "server", "2.6.0", session(sv::time), "Returns the server time.";
    "save", 1, "admin noscript no_async_loading no_multi", NO_KEYS, "server", "1.0.0", session(sv::save), "Synchronously saves the database(s) to disk.";
    "bgsave", -1, "admin noscript no_async_loading", NO_KEYS, "server", "1.0.0", session(sv::bgsave), "Asynchronously saves the database(s) to disk.";
    "bgrewriteaof", 1, "admin noscript no_async_loading", NO_KEYS, "server", "1.0.0", session(sv::bgrewriteaof), "Asynchronously rewrites the append-only file to disk.";
    "lastsave", 1, "loading stale fast", NO_KEYS, "server", "1.0.0", session(sv::lastsave), "Returns the Unix timestamp of the last successful save to disk.";
    "shutdown", -1, "admin noscript loading stale no_multi allow_busy", NO_KEYS, "server", "1.0.0", Run::Shutdown, "Synchronously saves the database(s) to disk and shuts down the Redis server.";
    "memory", -2, "", Keys::Custom { legacy: (0, 0, 0), find: memory::keys }, "server", "4.0.0", session(memory::memory), "A container for memory diagnostics commands.";
    "debug", -2, "admin noscript loading stale", NO_KEYS, "server", "1.0.0", session(debug::debug), "A container for debugging commands.";
    "waitaof", 4, "noscript", NO_KEYS, "generic", "7.2.0", Run::WaitAof, "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.";
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn every_name_is_unique_and_lowercase() {
        install();
        let mut seen = std::collections::HashSet::new();
        for c in TABLE.iter() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(seen.insert(c.name), "duplicate {}", c.name);
        }
    }

    #[test]
    fn lookup_ignores_case() {
        install();
        assert_eq!(lookup(b"GeT").map(|i| TABLE[i].name), Some("get"));
        assert!(lookup(b"nosuch").is_none());
    }

    #[test]
    fn key_positions_follow_the_legacy_triple() {
        install();
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
