//! DUMP, RESTORE and MIGRATE: a key's value as Redis 7.0's serialized form (an RDB object, the
//! RDB version and a CRC-64; see `persist::rdb_value`), so values move between WarpEngine and
//! Redis in both directions, and MIGRATE moves keys to another server with those payloads.

use bytes::Bytes;
use warpengine_storage::notify;

use super::util::{atoi, eq_ignore_case, int_arg, SYNTAX};
use super::{commands, k, keyed, Keys, LogForm};
use crate::keyctx::KeyCtx;
use crate::persist::rdb::{self, Reader};
use crate::persist::rdb_value;
use crate::protocol::reply::OK;
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "dump", 2, "readonly", k(1, 1, 1), "generic", "2.6.0", keyed(dump), "Returns a serialized representation of the value stored at a key.";
    "restore", -4, "write denyoom", k(1, 1, 1), "generic", "2.6.0", keyed(restore), "Creates a key from the serialized representation of a value.", log(LogForm::Rewritten(restore_log_form));
    "restore-asking", -4, "write denyoom asking", k(1, 1, 1), "server", "3.0.0", keyed(restore), "An internal command for migrating keys in a cluster", log(LogForm::Rewritten(restore_log_form));
    "migrate", -6, "write movablekeys", Keys::Custom { legacy: (3, 3, 1), find: migrate_keys }, "generic", "2.6.0", keyed(migrate), "Atomically transfers a key from one Redis instance to another.", log(LogForm::Rewritten(migrate_log_form)), redacts(migrate_secrets), runs_in_open_slot();
}

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_DATA: &str = "ERR Bad data format";

/// DUMP key: the value's payload, or nil. TEMPORAL has no RDB form and answers an error.
pub fn dump(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let enc = rdb_value::encodings(ctx.server);
    match payload_of(ctx, &args[1], &enc) {
        Ok(Some(payload)) => Reply::Bulk(payload),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// The DUMP payload of `key` (read as a lookup for reading: it counts as an access), None if
/// absent, Err for a value with no RDB form.
fn payload_of(
    ctx: &mut KeyCtx,
    key: &[u8],
    enc: &rdb_value::Encodings,
) -> Result<Option<Bytes>, Reply> {
    let Some(entry) = ctx.read(key) else {
        return Ok(None);
    };
    let mut payload = Vec::new();
    match rdb_value::write_value(&mut payload, &entry.value, enc) {
        Ok(()) => Ok(Some(Bytes::from(rdb::seal(payload)))),
        Err(rdb_value::NotInRdb(kind)) => Err(Reply::err(format!(
            "ERR DUMP is not supported for {kind} values: the RDB format has no such type"
        ))),
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency], checked in
/// Redis's order: options, existing key, TTL, payload footer, payload body.
pub fn restore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut freq, mut idle): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let has_value = j + 1 < args.len();
        if eq_ignore_case(&args[j], "replace") {
            replace = true;
        } else if eq_ignore_case(&args[j], "absttl") {
            absttl = true;
        } else if eq_ignore_case(&args[j], "idletime") && has_value && freq.is_none() {
            let v = match int_arg(&args[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if v < 0 {
                return Reply::err("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle = Some(v);
            j += 1;
        } else if eq_ignore_case(&args[j], "freq") && has_value && idle.is_none() {
            let v = match int_arg(&args[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if !(0..=255).contains(&v) {
                return Reply::err("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
            j += 1;
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    let now = ctx.now_ms;
    if !replace && ctx.db(key).contains(key, now) {
        return Reply::err(BUSYKEY);
    }
    let ttl = match int_arg(&args[2]) {
        Ok(v) if v < 0 => return Reply::err("ERR Invalid TTL value, must be >= 0"),
        Ok(v) => v as u64,
        Err(e) => return e,
    };
    let Some(body) = rdb::open(&args[3]) else {
        return Reply::err(BAD_PAYLOAD);
    };
    let enc = rdb_value::encodings(ctx.server);
    let value = match rdb_value::read_value(&mut Reader::new(body), &enc) {
        Ok(value) => value,
        Err(why) => {
            // As Redis: the reason at its VERBOSE level, the client told only "Bad data format".
            if let rdb_value::Unreadable::Corrupt(why) = why {
                tracing::debug!(
                    target: crate::logging::VERBOSE,
                    "Internal error in RDB reading (RESTORE payload) -> {why}"
                );
            }
            return Reply::err(BAD_DATA);
        }
    };
    let deleted = replace && ctx.remove(key).is_some();
    let expire_at = match ttl {
        0 => 0,
        t if absttl => t,
        t => t.saturating_add(now),
    };
    if expire_at != 0 && expire_at <= now {
        // Already expired: nothing is created (an old value REPLACE named is gone).
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
        return OK;
    }
    ctx.store(key, value, expire_at);
    set_access(ctx, key, idle, freq);
    ctx.notify(notify::GENERIC, "restore", key);
    OK
}

/// IDLETIME under an LRU (or no) policy, FREQ under an LFU one, as Redis's
/// `objectSetLRUOrLFU`; the other is ignored.
fn set_access(ctx: &mut KeyCtx, key: &[u8], idle: Option<i64>, freq: Option<i64>) {
    let lfu = ctx.server.limits.policy().is_lfu();
    let (now, clock) = (ctx.now_ms, ctx.clock);
    let access = match (lfu, idle, freq) {
        (true, _, Some(f)) => crate::eviction::minutes(now) << 8 | f as u32,
        (false, Some(secs), _) => {
            let idle_ms = (secs as u64).saturating_mul(1000).min(u32::MAX as u64) as u32;
            clock.wrapping_sub(idle_ms)
        }
        _ => return,
    };
    if let Some(entry) = ctx.db(key).get_mut(key, now) {
        entry.last_access = access;
    }
}

/// How the log keeps a RESTORE: the payload with the key's absolute expiry, REPLACE and
/// ABSTTL (replayed, it re-creates the same key, or nothing once that expiry has passed); a
/// RESTORE that left no key (an expiry already past) is its DEL.
pub fn restore_log_form(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let key = &args[1];
    let expiry = ctx.db(key).get_with_expiry(key, 0).map(|(_, at)| at);
    Some(match expiry {
        Some(at) => vec![
            Bytes::from_static(b"RESTORE"),
            key.clone(),
            Bytes::from(at.to_string()),
            args[3].clone(),
            Bytes::from_static(b"REPLACE"),
            Bytes::from_static(b"ABSTTL"),
        ],
        None => vec![Bytes::from_static(b"DEL"), key.clone()],
    })
}

/// MIGRATE's options, parsed in Redis's order.
struct MigrateOptions {
    copy: bool,
    replace: bool,
    /// AUTH password, or AUTH2 username password.
    auth: Option<(Option<Bytes>, Bytes)>,
    /// Where the keys start: 3 (the one key), or after KEYS.
    first_key: usize,
    /// Past the last key.
    end_key: usize,
}

fn migrate_options(args: &[Bytes]) -> Result<MigrateOptions, Reply> {
    let mut o = MigrateOptions {
        copy: false,
        replace: false,
        auth: None,
        first_key: 3,
        end_key: 4,
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ignore_case(&args[j], "copy") {
            o.copy = true;
        } else if eq_ignore_case(&args[j], "replace") {
            o.replace = true;
        } else if eq_ignore_case(&args[j], "auth") {
            if more < 1 {
                return Err(Reply::err(SYNTAX));
            }
            o.auth = Some((None, args[j + 1].clone()));
            j += 1;
        } else if eq_ignore_case(&args[j], "auth2") {
            if more < 2 {
                return Err(Reply::err(SYNTAX));
            }
            o.auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
            j += 2;
        } else if eq_ignore_case(&args[j], "keys") {
            if !args[3].is_empty() {
                return Err(Reply::err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.first_key = j + 1;
            o.end_key = args.len();
            break;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// MIGRATE's passwords and AUTH2's user name, which MONITOR and SLOWLOG hide (as Redis).
pub fn migrate_secrets(args: &[Bytes]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut j = 6;
    while j < args.len() {
        let take = match () {
            _ if eq_ignore_case(&args[j], "auth") => 1,
            _ if eq_ignore_case(&args[j], "auth2") => 2,
            _ if eq_ignore_case(&args[j], "keys") => break,
            _ => 0,
        };
        out.extend((j + 1..=j + take).filter(|&p| p < args.len()));
        j += 1 + take;
    }
    out
}

/// MIGRATE's keys: the key argument, or those after KEYS.
pub fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    match migrate_options(args) {
        Ok(o) if o.first_key > 3 => (o.first_key..o.end_key).collect(),
        _ if args.len() > 3 => vec![3],
        _ => Vec::new(),
    }
}

const IOERR_CONNECT: &str = "IOERR error or timeout connecting to the client";
const IOERR_WRITE: &str = "IOERR error or timeout writing to target instance";
const IOERR_READ: &str = "IOERR error or timeout reading to target instance";

/// MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k ...]:
/// sends the present keys to the target as RESTORE commands (with AUTH and SELECT first) and,
/// without COPY, deletes each key the target acknowledged. As in Redis the command waits for
/// the target (up to `timeout` ms per step) with its keys' shards held; a new connection is
/// made each time (Redis keeps one per target for 10 s).
pub fn migrate(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let o = match migrate_options(args) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let timeout = match int_arg(&args[5]) {
        Ok(t) if t <= 0 => 1000,
        Ok(t) => t as u64,
        Err(e) => return e,
    };
    let db = match int_arg(&args[4]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let enc = rdb_value::encodings(ctx.server);
    let now = ctx.now_ms;
    // (key, TTL in ms, payload) of each key present; a key with no time left is skipped.
    let mut moving: Vec<(&Bytes, u64, Bytes)> = Vec::new();
    for key in &args[o.first_key..o.end_key] {
        let payload = match payload_of(ctx, key, &enc) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => return e,
        };
        let ttl = match ctx.db(key).expire_at(key) {
            0 => 0,
            at => at.saturating_sub(now).max(1),
        };
        moving.push((key, ttl, payload));
    }
    if moving.is_empty() {
        return Reply::Status("NOKEY");
    }
    let db_index = usize::try_from(db).ok();
    // A cached connection the target closed meanwhile fails at once: Redis tries once more,
    // on a new connection, when nothing was read yet.
    let mut retried = false;
    let (mut target, selects, first_line) = loop {
        let mut target = match Target::connect(ctx.server, &args[1], &args[2], timeout) {
            Ok(t) => t,
            // Redis connects without blocking and waits for the socket to be writable, which a
            // refused connection is: the refusal shows when it writes.
            Err(Unreached::Refused) => return Reply::err(IOERR_WRITE),
            Err(Unreached::NoConnection) => return Reply::err(IOERR_CONNECT),
        };
        // As Redis: no SELECT when the connection has that database selected already.
        let selects = target.conn.db.is_none() || target.conn.db != db_index;
        let request = migrate_request(ctx, &o, db, selects, &moving);
        let sent = target.send(&request).is_ok();
        let first_line = if sent { target.line() } else { None };
        if first_line.is_none() && target.cached && !target.timed_out && !retried {
            retried = true;
            continue;
        }
        match first_line {
            Some(line) => break (target, selects, Some(line)),
            None if sent => return Reply::err(IOERR_READ),
            None => return Reply::err(IOERR_WRITE),
        }
    };
    // The AUTH and SELECT replies, then one per RESTORE.
    let mut pending_first = first_line;
    let mut next_line = |target: &mut Target| pending_first.take().or_else(|| target.line());
    let mut setup_error: Option<Vec<u8>> = None;
    for _ in 0..selects as usize + o.auth.is_some() as usize {
        match next_line(&mut target) {
            Some(line) if line.first() == Some(&b'-') => {
                setup_error.get_or_insert(line);
            }
            Some(_) => {}
            None => return Reply::err(IOERR_READ),
        }
    }
    // As Redis: after a failed AUTH or SELECT no key moved; otherwise each key the target
    // acknowledged is deleted here, whatever the others' replies, and the first error is told.
    let setup_failed = setup_error.is_some();
    let mut target_error = setup_error;
    let mut socket_error = false;
    let mut deleted = Vec::new();
    for (key, _, _) in &moving {
        let Some(line) = next_line(&mut target) else {
            socket_error = true;
            break;
        };
        if setup_failed || line.first() == Some(&b'-') {
            target_error.get_or_insert(line);
        } else if !o.copy {
            ctx.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
            deleted.push(*key);
        }
    }
    let reply = match (target_error, socket_error) {
        (Some(line), _) => Reply::err(format!(
            "ERR Target instance replied with error: {}",
            String::from_utf8_lossy(&line[1..])
        )),
        (None, true) => Reply::err(IOERR_READ),
        (None, false) => OK,
    };
    // A connection that answered everything is kept for the next MIGRATE to this target.
    if !socket_error {
        target.conn.db = if setup_failed { None } else { db_index };
        ctx.server
            .migrate_sockets
            .give_back(&target.name, target.conn);
    }
    // After an error reply the dispatcher neither logs the command's log form nor tells
    // WATCH and tracking about its keys: the keys already moved are told here.
    if reply.is_error() {
        let server = ctx.server;
        for key in deleted {
            ctx.db(key).touch_watched(key);
            if server.tracking.active() {
                server.tracking.key_changed(server, key, ctx.client);
            }
            if server.wal.records() {
                crate::persist::log::key_state(ctx, key);
            }
        }
    }
    reply
}

/// MIGRATE's request to its target: AUTH when asked, SELECT when `selects`, one RESTORE per
/// key (RESTORE-ASKING in cluster mode: the target is importing the slot and serves it without
/// an ASKING first, as Redis's MIGRATE sends it).
fn migrate_request(
    ctx: &KeyCtx,
    o: &MigrateOptions,
    db: i64,
    selects: bool,
    moving: &[(&Bytes, u64, Bytes)],
) -> Vec<u8> {
    let mut request = Vec::new();
    let mut put_command = |parts: &[&[u8]]| {
        request.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
        for p in parts {
            request.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            request.extend_from_slice(p);
            request.extend_from_slice(b"\r\n");
        }
    };
    match &o.auth {
        Some((Some(user), password)) => put_command(&[b"AUTH", user, password]),
        Some((None, password)) => put_command(&[b"AUTH", password]),
        None => {}
    }
    if selects {
        put_command(&[b"SELECT", db.to_string().as_bytes()]);
    }
    let restore: &[u8] = if ctx.server.cluster.enabled() {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    for (key, ttl, payload) in moving {
        let ttl = ttl.to_string();
        let mut parts: Vec<&[u8]> = vec![restore, key, ttl.as_bytes(), payload];
        if o.replace {
            parts.push(b"REPLACE");
        }
        put_command(&parts);
    }
    request
}

/// How the log keeps a MIGRATE that moved keys: the DEL of those no longer here (COPY: none).
pub fn migrate_log_form(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let o = migrate_options(args).ok().filter(|o| !o.copy)?;
    let gone: Vec<Bytes> = args[o.first_key..o.end_key]
        .iter()
        .filter(|k| !ctx.db(k).holds(k))
        .cloned()
        .collect();
    if gone.is_empty() {
        return None;
    }
    Some(
        std::iter::once(Bytes::from_static(b"DEL"))
            .chain(gone)
            .collect(),
    )
}

/// Why MIGRATE has no connection: none within the timeout (or no such host), or one refused.
enum Unreached {
    NoConnection,
    Refused,
}

/// MIGRATE's connection to the target: blocking, each step bounded by the timeout; taken from
/// the server's cache of MIGRATE connections when it has one to this target.
struct Target {
    conn: crate::migrate_sockets::Connection,
    /// `host:port`, its place in the cache.
    name: String,
    /// Taken from the cache: a failure on it may be its having gone stale.
    cached: bool,
    /// A read ran into the timeout (the target is slow, not gone: no second try).
    timed_out: bool,
}

impl Target {
    /// Connects to `host` and `port` (read as C's atoi, as Redis reads it), or takes the
    /// cached connection to them.
    fn connect(
        server: &crate::server_state::Server,
        host: &[u8],
        port: &[u8],
        timeout_ms: u64,
    ) -> Result<Target, Unreached> {
        use std::net::ToSocketAddrs;
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let host = std::str::from_utf8(host).map_err(|_| Unreached::NoConnection)?;
        let port = u16::try_from(atoi(port)).map_err(|_| Unreached::NoConnection)?;
        let name = format!("{host}:{port}");
        let setup = |s: &std::net::TcpStream| {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.set_nodelay(true)
        };
        if let Some(conn) = server.migrate_sockets.take(&name) {
            // This MIGRATE's own timeout applies on it.
            if setup(conn.stream.get_ref()).is_ok() {
                return Ok(Target {
                    conn,
                    name,
                    cached: true,
                    timed_out: false,
                });
            }
        }
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(Unreached::NoConnection)?;
        let stream = match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(Unreached::NoConnection)
            }
            Err(_) => return Err(Unreached::Refused),
        };
        setup(&stream).map_err(|_| Unreached::Refused)?;
        Ok(Target {
            conn: crate::migrate_sockets::Connection::new(stream),
            name,
            cached: false,
            timed_out: false,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.conn.stream.get_mut().write_all(bytes)
    }

    /// One reply line without its line end (the replies MIGRATE reads are all one line);
    /// None on a timeout, a closed connection or a line past 64 KB.
    fn line(&mut self) -> Option<Vec<u8>> {
        use std::io::{BufRead, Read};
        let mut line = Vec::new();
        let read = match (&mut self.conn.stream)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
        {
            Ok(read) => read,
            Err(e) => {
                self.timed_out = matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                return None;
            }
        };
        if read == 0 || line.last() != Some(&b'\n') {
            return None;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Some(line)
    }
}
