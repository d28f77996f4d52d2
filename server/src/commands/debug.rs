//! DEBUG, behind `enable-debug-command` as in Redis: SLEEP, ERROR, SET-ACTIVE-EXPIRE, OBJECT,
//! PROTOCOL (RESP3 reply types, used by client libraries' test suites), DIGEST and
//! DIGEST-VALUE (content hashes test suites compare), RELOAD (through the snapshot format and
//! back, or NOSAVE from the file), LOADAOF (the data emptied and the log replayed),
//! CHANGE-REPL-ID, POPULATE, LOG, REPLICATE, PAUSE-CRON, SET-SKIP-CHECKSUM-VALIDATION,
//! SET-DISABLE-DENY-SCRIPTS,
//! CONFIG-REWRITE-FORCE-ALL, STRINGMATCH-TEST, CLUSTERLINK KILL,
//! SEGFAULT/PANIC/ASSERT/OOM (log, then abort), HELP; REPLYBUFFER and AOF-FLUSH-SLEEP accepted
//! with nothing to set (see HELP).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::util::{
    atoi, eq_ignore_case, help, int_arg, lower, parse_float, subcommand_syntax_error, NO_SUCH_KEY,
};
use warpengine_storage::digest::{self, Digest};
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::Value;

use crate::keyctx::{KeyCtx, Shards};
use crate::protocol::reply::{c_string, OK};
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

const NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Whether a command behind `enable-debug-command` / `enable-module-command` (named by
/// `setting`) may run for this client: `yes`, or `local` and a loopback client.
pub fn protected_command_allowed(s: &Session, setting: &str) -> bool {
    let value = s
        .server
        .config
        .read()
        .expect("config lock")
        .get(setting)
        .to_string();
    value == "yes" || (value == "local" && s.conn.addr.is_local())
}

pub fn debug(s: &mut Session, args: &[Bytes]) -> Reply {
    if !protected_command_allowed(s, "enable-debug-command") {
        return Reply::err(NOT_ALLOWED);
    }
    let sub = lower(&args[1]);
    match sub.as_str() {
        "help" => help(
            "DEBUG",
            &[
                "AOF-FLUSH-SLEEP <microsec>",
                "    Accepted for compatibility: Redis sleeps before flushing its AOF; the log",
                "    writes here have no such pause.",
                "ASSERT",
                "    Crash by assertion failed (here: log it and abort).",
                "CHANGE-REPL-ID",
                "    Change the replication IDs of the instance.",
                "    Dangerous: should be used only for testing the replication subsystem.",
                "CLUSTERLINK KILL <to|from|all> <node-id>",
                "    Kills the link based on the direction to/from (both) with the provided node.",
                "CONFIG-REWRITE-FORCE-ALL",
                "    Like CONFIG REWRITE but writes all configuration options, including",
                "    keywords not listed in original configuration file or default values.",
                "DIGEST",
                "    Output a hex signature representing the current DB content.",
                "DIGEST-VALUE <key> [<key> ...]",
                "    Output a hex signature of the values of all the specified keys.",
                "ERROR <string>",
                "    Return a Redis protocol error with <string> as message. Useful for clients",
                "    unit tests to simulate Redis errors.",
                "LOG <message>",
                "    Write <message> to the server log.",
                "HTSTATS <dbid>",
                "    Return hash table statistics of the specified Redis database.",
                "    (WarpEngine's tables have no chains: size and elements only.)",
                "HTSTATS-KEY <key>",
                "    Like HTSTATS but for the hash table stored at <key>'s value.",
                "LOADAOF",
                "    Flush the log to disk and reload the dataset from it.",
                "OBJECT <key>",
                "    Show low level info about `key` and associated value.",
                "OOM",
                "    Crash the server simulating an out-of-memory error (here: log it and abort).",
                "PANIC",
                "    Crash the server simulating a panic (here: log it and abort).",
                "POPULATE <count> [<prefix>] [<size>]",
                "    Create <count> string keys named key:<num>. If <prefix> is specified then",
                "    it is used instead of the 'key' prefix. These are not propagated to",
                "    replicas. Cluster slots are not respected so keys not belonging to the",
                "    current node can be created in cluster mode.",
                "PROTOCOL <type>",
                "    Reply with a test value of the specified type. <type> can be: string,",
                "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
                "    true, false.",
                "RELOAD [option ...]",
                "    Save the dataset in the snapshot format and load it back (in memory: the",
                "    file on disk is not written). Valid <option> values:",
                "    * MERGE: conflicting keys will be loaded from the file.",
                "    * NOFLUSH: the existing database will not be removed before load;",
                "      conflicting keys are loaded from the file (as with MERGE).",
                "    * NOSAVE: the database will be loaded from the existing snapshot file.",
                "REPLICATE <string>",
                "    Replicates the provided string to replicas, allowing data divergence.",
                "SEGFAULT",
                "    Crash the server (here: log it and abort, SIGABRT rather than SIGSEGV).",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not",
                "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                "    default.",
                "QUICKLIST-PACKED-THRESHOLD <size>",
                "    Sets the threshold for elements to be inserted as plain vs packed nodes",
                "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
                "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
                "    Enables or disables checksum checks for RDB files and RESTORE's payload.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
                "STRINGMATCH-TEST",
                "    Run a fuzz tester against the glob matcher (Redis's stringmatchlen()).",
                "PAUSE-CRON <0|1>",
                "    Stop periodic cron job processing.",
                "SET-DISABLE-DENY-SCRIPTS <0|1>",
                "    Enable scripts to call commands flagged noscript (CLIENT LIST, say).",
                "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
                "    Accepted for compatibility: the reply buffer has no peak-driven resizing",
                "    here, so there is no peak reset time to set.",
                "REPLYBUFFER RESIZING <0|1>",
                "    Accepted for compatibility: there is no reply buffer resize cron job here.",
            ],
        ),
        "clusterlink" if args.len() == 5 && args[2].eq_ignore_ascii_case(b"kill") => {
            if !s.server.cluster.enabled() {
                return Reply::err(
                    "ERR Debug option only available for cluster mode enabled setup!",
                );
            }
            match crate::cluster::links::kill(s.server, &args[3], &args[4]) {
                Ok(()) => OK,
                Err(e) => Reply::err(format!("ERR {e}")),
            }
        }
        "sleep" if args.len() == 3 => {
            let Some(secs) = parse_float(&args[2]).filter(|v| *v >= 0.0) else {
                return Reply::err("ERR value is not a valid float");
            };
            // As Redis's, the whole server sleeps: every shard is held meanwhile, so no
            // worker runs a command on keys, and every worker stops at its connections' next
            // read (Redis's tests use it to make a server that does not answer, a MIGRATE
            // target say; redis-rs's, for a connection that times out).
            let _every_shard = s.server.lock_all();
            let _frozen = s.server.freeze.hold();
            std::thread::sleep(Duration::from_secs_f64(secs));
            OK
        }
        "error" if args.len() == 3 => Reply::Error(String::from_utf8_lossy(&args[2]).into_owned()),
        "set-active-expire" if args.len() == 3 => match int_arg(&args[2]) {
            Ok(v) => {
                s.server.hot.active_expire.store(v != 0, Ordering::Relaxed);
                OK
            }
            Err(e) => e,
        },
        "object" if args.len() == 3 => object(s, &args[2]),
        "protocol" if args.len() == 3 => protocol(&lower(&args[2]), s.conn.resp3),
        "digest" if args.len() == 2 => Reply::bulk_str(&dataset_digest(s).hex()),
        "loadaof" if args.len() == 2 => {
            match crate::persist::recovery::reload_from_logs(s.server) {
                Ok(records) => {
                    tracing::info!(records, "Append Only File loaded by DEBUG LOADAOF");
                    OK
                }
                Err(e) => Reply::err(format!("ERR {e}")),
            }
        }
        "quicklist-packed-threshold" if args.len() == 3 => {
            // As Redis: 0 restores the default (1 GB), and the limit is 4 GB less 1 MB.
            match crate::config_store::parse_memory(&String::from_utf8_lossy(&args[2])) {
                Some(bytes) if (0..=(1 << 32) - (1 << 20)).contains(&bytes) => {
                    let bytes = if bytes == 0 { 1 << 30 } else { bytes as usize };
                    warpengine_storage::list::set_plain_threshold(bytes);
                    OK
                }
                _ => Reply::err(
                    "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
                ),
            }
        }
        "htstats" if args.len() == 3 => htstats(s, &args[2]),
        "htstats-key" if args.len() == 3 => htstats_key(s, &args[2]),
        "change-repl-id" if args.len() == 2 => {
            s.server.change_replid();
            OK
        }
        "reload" => reload(s, &args[2..]),
        "digest-value" => Reply::Array(
            args[2..]
                .iter()
                .map(|key| Reply::bulk_str(&value_digest_of(s, key).hex()))
                .collect(),
        ),
        "populate" if (3..=5).contains(&args.len()) => populate(s, args),
        "log" if args.len() == 3 => {
            // Redis's serverLog(LL_WARNING, "DEBUG LOG: %s"): its tests look for the line.
            let message = String::from_utf8_lossy(c_string(&args[2], usize::MAX));
            tracing::warn!("DEBUG LOG: {message}");
            OK
        }
        "replicate" if args.len() >= 3 => {
            // As Redis: the arguments go to the replicas as a command of the stream, without
            // running here (its tests make a primary and its replica diverge with it).
            let argv: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
            s.server.replication.feed_command(&argv);
            OK
        }
        "pause-cron" if args.len() == 3 => {
            let paused = atoi(&args[2]) != 0;
            s.server.hot.cron_paused.store(paused, Ordering::Relaxed);
            OK
        }
        "set-disable-deny-scripts" if args.len() == 3 => {
            let disabled = atoi(&args[2]) != 0;
            s.server.hot.disable_deny_scripts.store(disabled, Ordering::Relaxed);
            OK
        }
        "set-skip-checksum-validation" if args.len() == 3 => {
            crate::persist::rdb::set_skip_checksum_validation(atoi(&args[2]) != 0);
            OK
        }
        // Accepted only: Redis sleeps before each write of its AOF buffer, a window its tests
        // write into; WarpEngine's log writes have no such pause. The argument is read as
        // Redis reads it (atoi: anything goes).
        "aof-flush-sleep" if args.len() == 3 => OK,
        "replybuffer" if args.len() == 4 => reply_buffer(s, args),
        "segfault" | "panic" | "assert" | "oom" => crash(&sub),
        "config-rewrite-force-all" if args.len() == 2 => {
            match super::config::rewrite(s, true) {
                Ok(()) => OK,
                Err(e) => Reply::err(format!("ERR CONFIG-REWRITE-FORCE-ALL failed: {e}")),
            }
        }
        "stringmatch-test" if args.len() == 2 => {
            stringmatch_fuzz();
            Reply::Status("Apparently Redis did not crash: test passed")
        }
        // As Redis: a known subcommand with the wrong number of arguments gets the same
        // answer as an unknown one.
        _ => subcommand_syntax_error(&args[1], "DEBUG"),
    }
}

/// DEBUG RELOAD [MERGE|NOFLUSH|NOSAVE ...]. Without NOSAVE the RDB file is written first, as
/// Redis's; then the dataset goes through the snapshot format and back in memory
/// (`persist::reload`), or, with NOFLUSH, the file is loaded over the data kept: with MERGE
/// that leaves it as it was, without it every key and library is there twice, which Redis
/// refuses (for keys by stopping itself; here with its load error). NOSAVE loads the file on
/// disk (`persist::reload::load_snapshot_file`).
fn reload(s: &mut Session, options: &[Bytes]) -> Reply {
    let (mut save, mut flush, mut merge) = (true, true, false);
    for option in options {
        if eq_ignore_case(option, "nosave") {
            save = false;
        } else if eq_ignore_case(option, "noflush") {
            flush = false;
        } else if eq_ignore_case(option, "merge") {
            merge = true;
        } else {
            return Reply::err(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            );
        }
    }
    const LOAD_FAILED: &str = "ERR Error trying to load the RDB dump";
    if save {
        // As Redis: the RDB file is written first (a later RELOAD NOSAVE loads it).
        if let Err(e) = crate::persist::rdb_file::save(s.server) {
            return Reply::err(format!("ERR {e}"));
        }
        // Loading the file just written over data kept (NOFLUSH) finds every key and library
        // again: without MERGE, Redis's load stops at the first.
        if !flush && !merge && !dataset_is_empty(s) {
            return Reply::err(LOAD_FAILED);
        }
    }
    let loaded = if save && flush {
        crate::persist::reload::reload(s.server).map_err(|e| Reply::err(format!("ERR {e}")))
    } else {
        crate::persist::reload::load_snapshot_file(s.server, flush).map_err(|e| {
            tracing::warn!("DEBUG RELOAD: {e}");
            Reply::err(LOAD_FAILED)
        })
    };
    match loaded {
        Ok(keys) => {
            tracing::info!(keys, "DB reloaded by DEBUG RELOAD");
            OK
        }
        Err(e) => e,
    }
}

/// No key in any database and no function library.
fn dataset_is_empty(s: &Session) -> bool {
    s.server.functions.function_count() == 0
        && (0..s.server.threads()).all(|id| {
            let shard = s.server.lock_shard(id);
            shard.dbs.iter().all(|db| db.is_empty())
        })
}

/// DEBUG SEGFAULT, PANIC, ASSERT and OOM: the server stops at once, as Redis's crash does, after
/// an error line in the log saying which (tests check that a crash is logged, and use these to
/// kill a server mid-run). Not Redis's crash report: the process aborts (SIGABRT) whichever was
/// asked, with no stack trace or register dump.
fn crash(sub: &str) -> Reply {
    let what = match sub {
        "panic" => format!(
            "Guru Meditation: DEBUG PANIC called at Unix time {}",
            unix_ms() / 1000
        ),
        "assert" => "=== ASSERTION FAILED === DEBUG ASSERT: '1 == 2' is not true".into(),
        "oom" => "DEBUG OOM: out of memory simulated".into(),
        _ => "DEBUG SEGFAULT: crashing the server (by abort, not a real segmentation fault)".into(),
    };
    tracing::error!("{what}");
    std::process::abort()
}

/// DEBUG STRINGMATCH-TEST, as Redis's stringmatchlen_fuzz_test: 100,000 random patterns
/// matched against random strings (bytes of all values, both cases), through the glob matcher
/// KEYS, SCAN and PSUBSCRIBE use; passing means it neither panicked nor ran away.
fn stringmatch_fuzz() {
    let mut seed = unix_ms() | 1;
    let mut next = move |below: u64| {
        // xorshift64: the fuzz needs spread, not secrecy.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for _ in 0..100_000 {
        let mut random_bytes = |max: u64| -> Vec<u8> {
            let len = next(max) as usize;
            (0..len).map(|_| next(256) as u8).collect()
        };
        let (pattern, string) = (random_bytes(32), random_bytes(32));
        let nocase = next(2) == 0;
        std::hint::black_box(warpengine_storage::glob_match(&pattern, &string, nocase));
    }
}

/// DEBUG REPLYBUFFER PEAK-RESET-TIME <NEVER|RESET|ms> and RESIZING <0|1>, with Redis's replies
/// and errors: how often a connection's reply peak starts over, and whether the workers' cron
/// resizes reply buffers to it (`connection_loop::resize_reply_buffer`).
fn reply_buffer(s: &Session, args: &[Bytes]) -> Reply {
    let (what, value) = (&args[2], &args[3]);
    let hot = &s.server.hot;
    if eq_ignore_case(what, "peak-reset-time") {
        let ms = if eq_ignore_case(value, "never") {
            -1
        } else if eq_ignore_case(value, "reset") {
            crate::server_state::REPLY_PEAK_RESET_MS
        } else {
            match int_arg(value) {
                Ok(ms) => ms,
                Err(e) => return e,
            }
        };
        hot.reply_peak_reset_ms.store(ms, Ordering::Relaxed);
        return OK;
    }
    if eq_ignore_case(what, "resizing") {
        hot.reply_resizing
            .store(atoi(value) != 0, Ordering::Relaxed);
        return OK;
    }
    subcommand_syntax_error(&args[1], "DEBUG")
}

/// Keys DEBUG POPULATE inserts into a shard per lock: the shard's worker and its clients wait
/// at most one chunk (milliseconds), not the whole population, however large.
const POPULATE_CHUNK: usize = 10_000;

/// Redis's `getPositiveLongFromObjectOrReply`: one error for anything but an integer >= 0.
fn positive_arg(arg: &[u8]) -> Result<u64, Reply> {
    parse_strict_i64(arg)
        .filter(|v| *v >= 0)
        .map(|v| v as u64)
        .ok_or_else(|| Reply::err("ERR value is out of range, must be positive"))
}

/// DEBUG POPULATE <count> [<prefix>] [<size>], as Redis 7.0: string keys `<prefix>:<n>` for n
/// in 0..count (`key` by default) holding `value:<n>`, or with a size that text cut or padded
/// with zero bytes to exactly `size` bytes; a key that exists is left as it is. The keys go
/// into the client's database through the write path's own insertion (`KeyCtx::store`, as
/// SET's), so memory, eviction, WATCH, keyspace events and tracking see them. Like Redis's,
/// they are neither written to the log nor propagated to replicas: a test's fixture, not a
/// client's write.
fn populate(s: &mut Session, args: &[Bytes]) -> Reply {
    let count = match positive_arg(&args[2]) {
        Ok(count) => count,
        Err(e) => return e,
    };
    let size = match args.get(4).map(|a| positive_arg(a)).transpose() {
        Ok(size) => size.unwrap_or(0) as usize,
        Err(e) => return e,
    };
    // Redis formats the prefix with `%s`: it ends at a NUL byte.
    let prefix = args
        .get(3)
        .map_or(&b"key"[..], |p| c_string(p, POPULATE_KEY_MAX));
    // Keys are routed first and inserted a chunk per shard: a key that repeats (a long prefix
    // cut the numbers off) always lands in the same shard's list, in order, so the first wins
    // as in Redis.
    let mut pending: Vec<Vec<u64>> = vec![Vec::new(); s.server.threads()];
    let mut key = Vec::with_capacity(POPULATE_KEY_MAX + 1);
    for n in 0..count {
        populate_key(&mut key, prefix, n);
        let shard = s.server.route(&key);
        pending[shard].push(n);
        if pending[shard].len() == POPULATE_CHUNK {
            insert_populated(s, shard, &pending[shard], prefix, size);
            pending[shard].clear();
        }
    }
    for (shard, ns) in pending.iter().enumerate() {
        if !ns.is_empty() {
            insert_populated(s, shard, ns, prefix, size);
        }
    }
    OK
}

/// Redis formats POPULATE's keys into a 128-byte buffer: 127 bytes and the NUL at most.
const POPULATE_KEY_MAX: usize = 127;

/// POPULATE's key number `n`: `<prefix>:<n>`, cut to [`POPULATE_KEY_MAX`] bytes.
fn populate_key(key: &mut Vec<u8>, prefix: &[u8], n: u64) {
    use std::io::Write;
    key.clear();
    key.extend_from_slice(prefix);
    write!(key, ":{n}").expect("writing to a Vec");
    key.truncate(POPULATE_KEY_MAX);
}

/// Inserts POPULATE's keys numbered `ns`, all routed to `shard`, under one lock of it.
fn insert_populated(s: &Session, shard: usize, ns: &[u64], prefix: &[u8], size: usize) {
    use std::io::Write;
    let server = s.server;
    let tracked = server.tracking.active();
    let mut guard = server.lock_shard(shard);
    let mut ctx = KeyCtx::new(Shards::One(&mut guard), server, s.conn.db, unix_ms());
    let (mut key, mut value) = (Vec::with_capacity(POPULATE_KEY_MAX + 1), Vec::new());
    for &n in ns {
        populate_key(&mut key, prefix, n);
        // As Redis's lookupKeyWrite: an expired key is removed here and created again.
        if ctx.exists(&key) {
            continue;
        }
        value.clear();
        write!(value, "value:{n}").expect("writing to a Vec");
        if size > 0 {
            value.resize(size, 0);
        }
        ctx.store(&key, Value::string(&value), 0);
        if tracked {
            server.tracking.key_changed(server, &key, s.conn.id);
        }
    }
    drop(ctx);
    // used_memory leaves out the key tables' untouched room: the tables may have grown.
    server.publish_spare(&guard);
}

/// Redis's dictGetStats lines for one table of `elements` with room for `size`. WarpEngine's
/// tables are open-addressed (no chains), so the chain figures Redis adds are not given.
fn table_stats(size: usize, elements: usize) -> String {
    if elements == 0 {
        return "Hash table 0 stats (main hash table):\nNo stats available for empty dictionaries\n"
            .to_string();
    }
    format!(
        "Hash table 0 stats (main hash table):\n table size: {size}\n number of elements: {elements}\n"
    )
}

/// DEBUG HTSTATS <dbid>: the key table and the expiry table of a database, summed over the
/// shards, in Redis's words.
fn htstats(s: &mut Session, dbid: &[u8]) -> Reply {
    let dbid = match int_arg(dbid) {
        Ok(d) => d,
        Err(e) => return e,
    };
    if dbid < 0 || dbid as usize >= s.server.databases() {
        return Reply::err("ERR Out of range database");
    }
    let (mut keys, mut volatile, mut room, mut volatile_room) = (0, 0, 0, 0);
    for shard in 0..s.server.threads() {
        let shard = s.server.lock_shard(shard);
        let db = &shard.dbs[dbid as usize];
        let (main, expires) = db.table_capacities();
        (keys, volatile) = (keys + db.len(), volatile + db.volatile_len());
        (room, volatile_room) = (room + main, volatile_room + expires);
    }
    Reply::Verbatim(Bytes::from(format!(
        "[Dictionary HT]\n{}[Expires HT]\n{}",
        table_stats(room, keys),
        table_stats(volatile_room, volatile)
    )))
}

/// DEBUG HTSTATS-KEY <key>: the hash table of a set, hash or sorted set that has one.
fn htstats_key(s: &mut Session, key: &[u8]) -> Reply {
    let mut shard = s.server.lock_shard(s.server.route(key));
    let Some(entry) = shard.dbs[s.conn.db].get(key, unix_ms()) else {
        return Reply::err(NO_SUCH_KEY);
    };
    match entry.value.hash_table_stats() {
        Some((elements, room)) => Reply::Verbatim(Bytes::from(table_stats(room, elements))),
        None => Reply::err(
            "ERR The value stored at the specified key is not represented using an hash table",
        ),
    }
}

/// DEBUG DIGEST: every database of every shard (see `warpengine_storage::digest`).
fn dataset_digest(s: &mut Session) -> Digest {
    let mut dataset = Digest::default();
    let now = unix_ms();
    for shard in 0..s.server.threads() {
        let shard = s.server.lock_shard(shard);
        for (db_index, db) in shard.dbs.iter().enumerate() {
            for (key, entry, expire_at) in db.iter_live(now) {
                digest::add_key(
                    &mut dataset,
                    db_index,
                    digest::key_digest(key, entry, expire_at != 0),
                );
            }
        }
    }
    dataset
}

/// DEBUG DIGEST-VALUE: one key's value, zeros when it does not exist.
fn value_digest_of(s: &mut Session, key: &[u8]) -> Digest {
    let mut shard = s.server.lock_shard(s.server.route(key));
    shard.dbs[s.conn.db]
        .get(key, unix_ms())
        .map_or_else(Digest::default, |entry| digest::value_digest(&entry.value))
}

/// DEBUG OBJECT: finds a key expired or not (Redis looks in the table itself; its own test of
/// a script deleting an expired key relies on that).
fn object(s: &mut Session, key: &[u8]) -> Reply {
    let shard_id = s.server.route(key);
    let shard = s.server.lock_shard(shard_id);
    let Some(entry) = shard.dbs[s.conn.db].peek_entry(key) else {
        return Reply::err(NO_SUCH_KEY);
    };
    let now = unix_ms() as u32;
    Reply::StatusOwned(format!(
        "Value at:0x0 refcount:1 encoding:{} serializedlength:0 lru:{} lru_seconds_idle:{}",
        entry.value.encoding(),
        (entry.last_access / 1000) & ((1 << 24) - 1),
        now.wrapping_sub(entry.last_access) / 1000,
    ))
}

#[allow(clippy::approx_constant)] // DEBUG PROTOCOL double answers 3.141, as Redis does.
fn protocol(kind: &str, resp3: bool) -> Reply {
    match kind {
        "bignum" => Reply::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        // An attribute is not a reply: a real one follows it.
        "attrib" if resp3 => Reply::Raw(Bytes::from_static(
            b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply following the attribute\r\n",
        )),
        "attrib" => Reply::bulk_str("Some real reply following the attribute"),
        // A push is not a reply either: a real one follows it.
        "push" if resp3 => Reply::Raw(Bytes::from_static(
            b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n",
        )),
        "push" => Reply::err("ERR RESP2 is not supported by this command"),
        "string" => Reply::bulk_str("Hello World"),
        "integer" => Reply::Int(12345),
        "double" => Reply::Double(3.141),
        "null" => Reply::Nil,
        "array" => Reply::Array((0..3).map(Reply::Int).collect()),
        "set" => Reply::Set((0..3).map(Reply::Int).collect()),
        "map" => Reply::Map((0..3).map(|i| (Reply::Int(i), Reply::Bool(i == 1))).collect()),
        "verbatim" => Reply::Verbatim(Bytes::from_static(b"This is a verbatim\nstring")),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        _ => Reply::err(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}
