//! Generic keyspace commands: DEL, EXISTS, expiry, RENAME, COPY, MOVE, KEYS, SCAN, RANDOMKEY.

use bytes::Bytes;
use warpengine_storage::{glob_match, notify, Entry};

use super::util::{
    eq_ignore_case, err_echo, int_arg, scan_options, ScanOptions, DB_OUT_OF_RANGE, INT_RANGE,
    NO_SUCH_KEY, SAME_OBJECT, SYNTAX,
};
use crate::keyctx::KeyCtx;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

pub fn del(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    remove_keys(ctx, args, drop)
}

/// UNLINK: DEL, with large values freed in the background (see `crate::lazy_free`).
pub fn unlink(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    remove_keys(ctx, args, crate::lazy_free::free)
}

/// Removes the keys `args` names (raising `del` for each), handing each removed entry to
/// `dispose`; how many there were.
fn remove_keys(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    dispose: fn(warpengine_storage::db::Entry),
) -> Reply {
    let mut removed = 0;
    for key in &args[1..] {
        if let Some(entry) = ctx.remove(key) {
            ctx.notify(notify::GENERIC, "del", key);
            dispose(entry);
            removed += 1;
        }
    }
    Reply::Int(removed as i64)
}

/// EXISTS, TYPE and the TTL family read as Redis's lookupKeyReadWithFlags(LOOKUP_NOTOUCH): a
/// hit or miss (and `keymiss`) is counted, the key's access time is left alone.
fn without_touch<R>(ctx: &mut KeyCtx, read: impl FnOnce(&mut KeyCtx) -> R) -> R {
    let touch = std::mem::replace(&mut ctx.no_touch, true);
    let result = read(ctx);
    ctx.no_touch = touch;
    result
}

pub fn exists(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let n = without_touch(ctx, |ctx| {
        args[1..].iter().filter(|k| ctx.read(k).is_some()).count()
    });
    Reply::Int(n as i64)
}

pub fn touch(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let n = args[1..].iter().filter(|k| ctx.write(k).is_some()).count();
    Reply::Int(n as i64)
}

pub fn type_(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    without_touch(ctx, |ctx| match ctx.read(&args[1]) {
        Some(e) => Reply::Status(e.value.type_name()),
        None => Reply::Status("none"),
    })
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for opt in &args[3..] {
        if eq_ignore_case(opt, "nx") {
            f.nx = true;
        } else if eq_ignore_case(opt, "xx") {
            f.xx = true;
        } else if eq_ignore_case(opt, "gt") {
            f.gt = true;
        } else if eq_ignore_case(opt, "lt") {
            f.lt = true;
        } else {
            return Err(err_echo("ERR Unsupported option ", opt, ""));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `relative` adds the current time; `seconds` scales.
fn expire_generic(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    name: &str,
    relative: bool,
    seconds: bool,
) -> Reply {
    let flags = match parse_expire_flags(args) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut when = match int_arg(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let invalid = || Reply::err(format!("ERR invalid expire time in '{name}' command"));
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid();
        }
        when *= 1000;
    }
    let base = if relative { ctx.now_ms as i64 } else { 0 };
    if when > i64::MAX - base {
        return invalid();
    }
    when += base;
    let key = &args[1];
    if ctx.write(key).is_none() {
        return Reply::Int(0);
    }
    let current: i64 = match ctx.db(key).expire_at(key) {
        0 => -1,
        at => at as i64,
    };
    if (flags.nx && current != -1)
        || (flags.xx && current == -1)
        || (flags.gt && (when <= current || current == -1))
        || (flags.lt && current != -1 && when >= current)
    {
        return Reply::Int(0);
    }
    let now = ctx.now_ms as i64;
    if when <= now {
        ctx.db(key).remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.db(key).set_expire(key, when as u64);
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Reply::Int(1)
}

pub fn expire(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, "expire", true, true)
}

pub fn pexpire(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, "pexpire", true, false)
}

pub fn expireat(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, "expireat", false, true)
}

pub fn pexpireat(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, "pexpireat", false, false)
}

/// The key's expiry in ms, -1 without one, -2 when the key is absent.
fn expiry_of(ctx: &mut KeyCtx, key: &[u8]) -> i64 {
    if without_touch(ctx, |ctx| ctx.read(key).is_none()) {
        return -2;
    }
    match ctx.db(key).expire_at(key) {
        0 => -1,
        at => at as i64,
    }
}

pub fn ttl(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match expiry_of(ctx, &args[1]) {
        at if at < 0 => Reply::Int(at),
        at => Reply::Int(((at - ctx.now_ms as i64).max(0) + 500) / 1000),
    }
}

pub fn pttl(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match expiry_of(ctx, &args[1]) {
        at if at < 0 => Reply::Int(at),
        at => Reply::Int((at - ctx.now_ms as i64).max(0)),
    }
}

pub fn expiretime(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match expiry_of(ctx, &args[1]) {
        at if at < 0 => Reply::Int(at),
        at => Reply::Int(at / 1000),
    }
}

pub fn pexpiretime(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    Reply::Int(expiry_of(ctx, &args[1]))
}

pub fn persist(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    if ctx.write(key).is_none() || ctx.db(key).expire_at(key) == 0 {
        return Reply::Int(0);
    }
    ctx.db(key).set_expire(key, 0);
    ctx.notify(notify::GENERIC, "persist", key);
    Reply::Int(1)
}

fn rename_generic(ctx: &mut KeyCtx, args: &[Bytes], nx: bool) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    if ctx.write(src).is_none() {
        return Reply::err(NO_SUCH_KEY);
    }
    if src == dst {
        return if nx { Reply::Int(0) } else { OK };
    }
    if ctx.write(dst).is_some() {
        if nx {
            return Reply::Int(0);
        }
        ctx.db(dst).remove(dst);
    }
    let (entry, expire_at) = ctx.db(src).take(src).expect("checked present above");
    ctx.db(dst).insert_entry(dst, entry, expire_at);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    if nx {
        Reply::Int(1)
    } else {
        OK
    }
}

pub fn rename(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    rename_generic(ctx, args, false)
}

pub fn renamenx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    rename_generic(ctx, args, true)
}

/// A database index argument, as Redis's getIntFromObjectOrReply reads it.
fn db_index_arg(ctx: &KeyCtx, arg: &[u8]) -> Result<usize, Reply> {
    let id = int_arg(arg)?;
    if id < i32::MIN as i64 || id > i32::MAX as i64 {
        return Err(Reply::err(INT_RANGE));
    }
    if id < 0 || id as usize >= ctx.databases() {
        return Err(Reply::err(DB_OUT_OF_RANGE));
    }
    Ok(id as usize)
}

/// COPY's target database (its `DB n` option), for the log of a COPY whose keys span shards.
/// Only called after COPY succeeded, so the option is well formed.
pub fn copy_target_db(args: &[Bytes]) -> Option<usize> {
    let i = args.iter().position(|a| eq_ignore_case(a, "db"))?;
    std::str::from_utf8(args.get(i + 1)?).ok()?.parse().ok()
}

/// MOVE's target database.
pub fn move_target_db(args: &[Bytes]) -> Option<usize> {
    std::str::from_utf8(args.get(2)?).ok()?.parse().ok()
}

pub fn copy(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut dst_db = ctx.db;
    let mut j = 3;
    while j < args.len() {
        if eq_ignore_case(&args[j], "replace") {
            replace = true;
        } else if eq_ignore_case(&args[j], "db") && j + 1 < args.len() {
            dst_db = match db_index_arg(ctx, &args[j + 1]) {
                Ok(d) => d,
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    // Cluster mode has database 0 only (and keeps its keys indexed by slot there).
    if ctx.server.cluster.enabled() && (ctx.db != 0 || dst_db != 0) {
        return Reply::err("ERR Copying to another database is not allowed in cluster mode");
    }
    if dst_db == ctx.db && src == dst {
        return Reply::err(SAME_OBJECT);
    }
    let Some(entry) = ctx.read(src) else {
        return Reply::Int(0);
    };
    let copy = Entry::new(entry.value.clone(), entry.last_access);
    let expire_at = ctx.db(src).expire_at(src);
    let now = ctx.now_ms;
    let target = ctx.db_at(dst, dst_db);
    if target.contains(dst, now) {
        if !replace {
            return Reply::Int(0);
        }
        target.remove(dst);
    }
    target.insert_entry(dst, copy, expire_at);
    notify::raise(notify::GENERIC, "copy_to", dst_db, dst);
    Reply::Int(1)
}

pub fn move_(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if ctx.server.cluster.enabled() {
        return Reply::err("ERR MOVE is not allowed in cluster mode");
    }
    let key = &args[1];
    let target = match int_arg(&args[2]) {
        Ok(v) if v < i32::MIN as i64 || v > i32::MAX as i64 => return Reply::err(INT_RANGE),
        Ok(v) if v < 0 || v as usize >= ctx.databases() => return Reply::err(DB_OUT_OF_RANGE),
        Ok(v) => v as usize,
        Err(e) => return e,
    };
    if target == ctx.db {
        return Reply::err(SAME_OBJECT);
    }
    if ctx.write(key).is_none() {
        return Reply::Int(0);
    }
    let now = ctx.now_ms;
    if ctx.db_at(key, target).contains(key, now) {
        return Reply::Int(0);
    }
    let (entry, expire_at) = ctx.db(key).take(key).expect("checked present above");
    ctx.db_at(key, target).insert_entry(key, entry, expire_at);
    ctx.notify(notify::GENERIC, "move_from", key);
    notify::raise(notify::GENERIC, "move_to", target, key);
    Reply::Int(1)
}

pub fn keys(s: &mut Session, args: &[Bytes]) -> Reply {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let now = unix_ms();
    let mut out = Vec::new();
    // All shards at once, so that a concurrent cross-shard RENAME is seen whole or not at all.
    for shard in s.server.lock_all() {
        for (k, _, _) in shard.dbs[s.conn.db].iter_live(now) {
            if all || glob_match(pattern, k, false) {
                out.push(Reply::bulk(k));
            }
        }
    }
    Reply::Array(out)
}

/// Parses a cursor as Redis does with `strtoul`: an optional sign (a negative value wraps),
/// digits, nothing after them; the empty string is cursor 0; leading space and overflow fail.
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    if arg
        .first()
        .is_some_and(|c| c.is_ascii_whitespace() || *c == 0x0b)
    {
        return None;
    }
    if arg.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN's cursor packs the shard being walked and the position within it: `pos * shards + shard`.
/// Positions start at 1 (0 would read as "start"), so a returned cursor is never 0 unless done.
pub fn scan(s: &mut Session, args: &[Bytes]) -> Reply {
    let Some(cursor) = parse_cursor(&args[1]) else {
        return Reply::err("ERR invalid cursor");
    };
    let ScanOptions {
        count,
        pattern,
        type_filter,
    } = match scan_options(args, 2, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let shards = s.server.threads() as u64;
    let (mut shard, mut pos) = if cursor == 0 {
        (0usize, 0usize)
    } else {
        ((cursor % shards) as usize, (cursor / shards) as usize)
    };
    if shard >= shards as usize {
        shard = 0;
    }
    let now = unix_ms();
    let mut keys = Vec::new();
    let mut budget = count;
    let next_cursor;
    loop {
        let mut guard = s.server.lock_shard(shard);
        let db = &mut guard.dbs[s.conn.db];
        let step = db.scan(pos, budget, now);
        budget = budget.saturating_sub(step.keys.len().max(1));
        for k in step.keys {
            if pattern.is_some_and(|p| !glob_match(p, &k, false)) {
                continue;
            }
            if let Some(t) = &type_filter {
                if db.get(&k, now).is_none_or(|e| e.value.type_name() != t) {
                    continue;
                }
            }
            keys.push(Reply::Bulk(k));
        }
        drop(guard);
        if step.next != 0 {
            next_cursor = step.next as u64 * shards + shard as u64;
            break;
        }
        shard += 1;
        pos = 0;
        if shard as u64 >= shards {
            next_cursor = 0;
            break;
        }
        if budget == 0 {
            // Resume at the top of the next shard: its full length is the starting position.
            let len = s.server.lock_shard(shard).dbs[s.conn.db].len();
            if len == 0 {
                continue;
            }
            next_cursor = len as u64 * shards + shard as u64;
            break;
        }
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next_cursor.to_string())),
        Reply::Array(keys),
    ])
}

pub fn randomkey(s: &mut Session, _args: &[Bytes]) -> Reply {
    let now = unix_ms();
    let mut guards = s.server.lock_all();
    let db = s.conn.db;
    let total: usize = guards.iter().map(|g| g.dbs[db].len()).sum();
    if total == 0 {
        return Reply::Nil;
    }
    // Pick a shard in proportion to its size, so every key is equally likely.
    let mut pick = (unix_ms() as usize ^ (total.wrapping_mul(2654435761))) % total;
    for g in guards.iter_mut() {
        let len = g.dbs[db].len();
        if pick < len {
            if let Some(k) = g.dbs[db].random_key(now) {
                return Reply::Bulk(k);
            }
        }
        pick = pick.saturating_sub(len);
    }
    for g in guards.iter_mut() {
        if let Some(k) = g.dbs[db].random_key(now) {
            return Reply::Bulk(k);
        }
    }
    Reply::Nil
}
