//! Hash commands: HSET and friends, counters, HRANDFIELD, HSCAN.

use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use warpengine_storage::hash::random_below;
use warpengine_storage::longdouble::LongDouble;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{glob_match, notify, Entry, HashValue, Value};

use super::keyspace::parse_cursor;
use super::util::{eq_ignore_case, int_arg, wrong_arity, NOT_FLOAT, SYNTAX};
use super::{commands, k, keyed, LogForm};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::OK;
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "hset", -4, "write denyoom fast", k(1, 1, 1), "hash", "2.0.0", keyed(hset), "Set the string value of a hash field";
    "hsetnx", 4, "write denyoom fast", k(1, 1, 1), "hash", "2.0.0", keyed(hsetnx), "Set the value of a hash field, only if the field does not exist", unchanged_when(super::zero_changes);
    "hget", 3, "readonly fast", k(1, 1, 1), "hash", "2.0.0", keyed(hget), "Get the value of a hash field";
    "hmget", -3, "readonly fast", k(1, 1, 1), "hash", "2.0.0", keyed(hmget), "Get the values of all the given hash fields";
    "hmset", -4, "write denyoom fast", k(1, 1, 1), "hash", "2.0.0", keyed(hmset), "Set multiple hash fields to multiple values";
    "hdel", -3, "write fast", k(1, 1, 1), "hash", "2.0.0", keyed(hdel), "Delete one or more hash fields", unchanged_when(super::zero_changes);
    "hlen", 2, "readonly fast", k(1, 1, 1), "hash", "2.0.0", keyed(hlen), "Get the number of fields in a hash";
    "hstrlen", 3, "readonly fast", k(1, 1, 1), "hash", "3.2.0", keyed(hstrlen), "Get the length of the value of a hash field";
    "hexists", 3, "readonly fast", k(1, 1, 1), "hash", "2.0.0", keyed(hexists), "Determine if a hash field exists";
    "hkeys", 2, "readonly", k(1, 1, 1), "hash", "2.0.0", keyed(hkeys), "Get all the fields in a hash";
    "hvals", 2, "readonly", k(1, 1, 1), "hash", "2.0.0", keyed(hvals), "Get all the values in a hash";
    "hgetall", 2, "readonly", k(1, 1, 1), "hash", "2.0.0", keyed(hgetall), "Get all the fields and values in a hash";
    "hincrby", 4, "write denyoom fast", k(1, 1, 1), "hash", "2.0.0", keyed(hincrby), "Increment the integer value of a hash field by the given number";
    "hincrbyfloat", 4, "write denyoom fast", k(1, 1, 1), "hash", "2.6.0", keyed(hincrbyfloat), "Increment the float value of a hash field by the given amount", log(LogForm::Effects(hincrbyfloat_effects));
    "hrandfield", -2, "readonly", k(1, 1, 1), "hash", "6.2.0", keyed(hrandfield), "Get one or multiple random fields from a hash";
    "hscan", -3, "readonly", k(1, 1, 1), "hash", "2.8.0", keyed(hscan), "Incrementally iterate hash fields and associated values";
}

/// hash-max-listpack-entries and hash-max-listpack-value.
fn limits(ctx: &KeyCtx) -> (usize, usize) {
    let hot = &ctx.server.hot;
    (
        hot.hash_max_listpack_entries.load(Relaxed) as usize,
        hot.hash_max_listpack_value.load(Relaxed) as usize,
    )
}

/// The hash at `key` for reading: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn read_hash<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a HashValue>, Reply> {
    match ctx.read(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => Ok(Some(h)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

fn write_hash<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a mut HashValue>, Reply> {
    match ctx.write(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => Ok(Some(h)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The hash at `key`, created empty when absent (the caller adds to it at once).
fn write_or_create<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<&'a mut HashValue, Reply> {
    if write_hash(ctx, key)?.is_none() {
        let clock = ctx.clock;
        ctx.db(key)
            .set(key, Value::Hash(Box::new(HashValue::new())), 0, clock);
    }
    Ok(write_hash(ctx, key)?.expect("just created"))
}

fn set_pairs(ctx: &mut KeyCtx, args: &[Bytes], name: &str) -> Result<i64, Reply> {
    if !args.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    let (entries, value_len) = limits(ctx);
    let h = write_or_create(ctx, &args[1])?;
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        if h.set(&pair[0], &pair[1], entries, value_len) {
            added += 1;
        }
    }
    ctx.notify(notify::HASH, "hset", &args[1]);
    Ok(added)
}

pub fn hset(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_pairs(ctx, args, "hset").map_or_else(|e| e, Reply::Int)
}

pub fn hmset(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_pairs(ctx, args, "hmset").map_or_else(|e| e, |_| OK)
}

pub fn hsetnx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (entries, value_len) = limits(ctx);
    let h = match write_or_create(ctx, &args[1]) {
        Ok(h) => h,
        Err(e) => return e,
    };
    if h.contains(&args[2]) {
        return Reply::Int(0);
    }
    h.set(&args[2], &args[3], entries, value_len);
    ctx.notify(notify::HASH, "hset", &args[1]);
    Reply::Int(1)
}

pub fn hget(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(Some(h)) => h.get_bytes(&args[2]).map_or(Reply::Nil, Reply::Bulk),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

pub fn hmget(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Array(
            args[2..]
                .iter()
                .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, Reply::bulk))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub fn hdel(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let (removed, empty) = match write_hash(ctx, key) {
        Ok(Some(h)) => {
            let removed = args[2..].iter().filter(|f| h.remove(f)).count();
            (removed, h.is_empty())
        }
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    if removed > 0 {
        ctx.notify(notify::HASH, "hdel", key);
        if empty {
            ctx.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Reply::Int(removed as i64)
}

pub fn hlen(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(h.map_or(0, |h| h.len() as i64)),
        Err(e) => e,
    }
}

pub fn hstrlen(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(
            h.and_then(|h| h.get(&args[2]))
                .map_or(0, |v| v.len() as i64),
        ),
        Err(e) => e,
    }
}

pub fn hexists(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(h.is_some_and(|h| h.contains(&args[2])) as i64),
        Err(e) => e,
    }
}

pub fn hkeys(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Array(
            h.into_iter()
                .flat_map(|h| h.iter())
                .map(|(k, _)| Reply::bulk(k))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub fn hvals(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Array(
            h.into_iter()
                .flat_map(|h| h.iter())
                .map(|(_, v)| Reply::bulk(v))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub fn hgetall(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_hash(ctx, &args[1]) {
        Ok(h) => Reply::Map(
            h.into_iter()
                .flat_map(|h| h.iter())
                .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub fn hincrby(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let incr = match int_arg(&args[3]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (entries, value_len) = limits(ctx);
    let h = match write_or_create(ctx, &args[1]) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match h.get(&args[2]) {
        None => 0,
        Some(v) => match parse_strict_i64(v) {
            Some(v) => v,
            None => return Reply::err("ERR hash value is not an integer"),
        },
    };
    let Some(new) = current.checked_add(incr) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    h.set(
        &args[2],
        itoa::Buffer::new().format(new).as_bytes(),
        entries,
        value_len,
    );
    ctx.notify(notify::HASH, "hincrby", &args[1]);
    Reply::Int(new)
}

pub fn hincrbyfloat(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let incr = match LongDouble::parse(&args[3]) {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Reply::err("ERR value is NaN or Infinity"),
        None => return Reply::err(NOT_FLOAT),
    };
    let (entries, value_len) = limits(ctx);
    let h = match write_or_create(ctx, &args[1]) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match h.get(&args[2]) {
        None => Ok(LongDouble {
            neg: false,
            mant: 0,
            exp: 0,
        }),
        Some(v) => match LongDouble::parse(v) {
            Some(v) => v,
            None => return Reply::err("ERR hash value is not a float"),
        },
    };
    let Some(new) = current.ok().and_then(|c| c.checked_add(incr)) else {
        return Reply::err("ERR increment would produce NaN or Infinity");
    };
    let text = Bytes::from(new.to_human_string());
    h.set(&args[2], &text, entries, value_len);
    ctx.notify(notify::HASH, "hincrbyfloat", &args[1]);
    Reply::Bulk(text)
}

pub fn hrandfield(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len() == 2 {
        return match read_hash(ctx, &args[1]) {
            Ok(Some(h)) => {
                let (k, _) = h.get_index(random_below(h.len())).expect("index below len");
                Reply::bulk(k)
            }
            Ok(None) => Reply::Nil,
            Err(e) => e,
        };
    }
    let l = match int_arg(&args[2]) {
        Ok(i64::MIN) => {
            return Reply::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Ok(v) => v,
        Err(e) => return e,
    };
    if args.len() > 4 || (args.len() == 4 && !eq_ignore_case(&args[3], "withvalues")) {
        return Reply::err(SYNTAX);
    }
    let withvalues = args.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Reply::err("ERR value is out of range");
    }
    let server = ctx.server;
    let h = match read_hash(ctx, &args[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return Reply::Array(Vec::new()),
        Err(e) => return e,
    };
    let count = l.unsigned_abs();
    if count == 0 {
        return Reply::Array(Vec::new());
    }
    let size = h.len();
    let count = if l < 0 {
        match super::util::sampled_count(server, count, 1 + withvalues as u64) {
            Ok(n) => n,
            Err(e) => return e,
        }
    } else {
        count
    };
    let picks: Vec<usize> = if l < 0 || count == 1 {
        (0..count).map(|_| random_below(size)).collect()
    } else if count >= size as u64 {
        (0..size).collect()
    } else {
        distinct_indexes(count as usize, size)
    };
    if withvalues {
        Reply::Pairs(
            picks
                .into_iter()
                .map(|i| {
                    let (k, v) = h.get_index(i).expect("index below len");
                    (Reply::bulk(k), Reply::bulk(v))
                })
                .collect(),
        )
    } else {
        Reply::Array(
            picks
                .into_iter()
                .map(|i| Reply::bulk(h.get_index(i).expect("index below len").0))
                .collect(),
        )
    }
}

/// `count` distinct random positions below `size` (count < size), in ascending order (a
/// listpack answers in its own order): a partial shuffle when most are wanted, sampling otherwise.
fn distinct_indexes(count: usize, size: usize) -> Vec<usize> {
    let mut picked = if count * 3 > size {
        let mut all: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = i + random_below(size - i);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(count);
        while seen.len() < count {
            seen.insert(random_below(size));
        }
        seen.into_iter().collect()
    };
    picked.sort_unstable();
    picked
}

pub fn hscan(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let Some(cursor) = parse_cursor(&args[2]) else {
        return Reply::err("ERR invalid cursor");
    };
    let h = match read_hash(ctx, &args[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return scan_reply(0, Vec::new()),
        Err(e) => return e,
    };
    let mut count = 10usize;
    let mut pattern: Option<&Bytes> = None;
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        if eq_ignore_case(&args[j], "count") && more {
            match int_arg(&args[j + 1]) {
                Ok(c) if c >= 1 => count = c as usize,
                Ok(_) => return Reply::err(SYNTAX),
                Err(e) => return e,
            }
        } else if eq_ignore_case(&args[j], "match") && more {
            pattern = Some(&args[j + 1]).filter(|p| p.as_ref() != b"*");
        } else {
            return Reply::err(SYNTAX);
        }
        j += 2;
    }
    let keep = |f: &[u8]| pattern.is_none_or(|p| glob_match(p, f, false));
    if h.is_listpack() {
        // Redis answers a small (listpack) hash whole, in one call.
        let pairs = h
            .iter()
            .filter(|(f, _)| keep(f))
            .map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)))
            .collect();
        return scan_reply(0, pairs);
    }
    let step = h.scan(cursor.try_into().unwrap_or(usize::MAX), count);
    let pairs = step.pairs.into_iter().filter(|(f, _)| keep(f)).collect();
    scan_reply(step.next as u64, pairs)
}

fn scan_reply(cursor: u64, pairs: Vec<(Bytes, Bytes)>) -> Reply {
    let mut items = Vec::with_capacity(pairs.len() * 2);
    for (f, v) in pairs {
        items.push(Reply::Bulk(f));
        items.push(Reply::Bulk(v));
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ])
}

/// HINCRBYFLOAT as Redis propagates it: `HSET key field <result>` (no float computed again).
fn hincrbyfloat_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Bulk(result) => vec![vec![
            Bytes::from_static(b"HSET"),
            args[1].clone(),
            args[2].clone(),
            result.clone(),
        ]],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_indexes_are_distinct_and_in_range() {
        for (count, size) in [(1, 2), (5, 6), (3, 100), (40, 100), (99, 100)] {
            let v = distinct_indexes(count, size);
            assert_eq!(v.len(), count);
            assert!(v.windows(2).all(|w| w[0] < w[1]));
            assert!(v.iter().all(|&i| i < size));
        }
    }
}
