//! Set commands: SADD and friends, random members, the algebra (SINTER, SUNION, SDIFF and
//! their STORE forms, SINTERCARD), SMOVE, SSCAN.
//!
//! Intset-encoded sets keep their members in ascending integer order (see `SetValue`), so
//! every reply that walks one (SMEMBERS, SSCAN, computed results that Redis builds as an
//! intset) comes out in the order Redis gives.

use std::collections::HashSet;

use bytes::Bytes;
use warpengine_storage::set::random_u64;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{glob_match, notify, Entry, SetValue, Value};

use super::keyspace::parse_cursor;
use super::util::{atoi, eq_ignore_case, int_arg, scan_options, ScanOptions, SYNTAX};
use super::{commands, k, keyed, Keys, LogForm, Writes};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "sadd", -3, "write denyoom fast", k(1, 1, 1), "set", "1.0.0", keyed(sadd), "Adds one or more members to a set. Creates the key if it doesn't exist.", unchanged_when(super::zero_changes);
    "srem", -3, "write fast", k(1, 1, 1), "set", "1.0.0", keyed(srem), "Removes one or more members from a set. Deletes the set if the last member was removed.", unchanged_when(super::zero_changes);
    "scard", 2, "readonly fast", k(1, 1, 1), "set", "1.0.0", keyed(scard), "Returns the number of members in a set.";
    "sismember", 3, "readonly fast", k(1, 1, 1), "set", "1.0.0", keyed(sismember), "Determines whether a member belongs to a set.";
    "smismember", -3, "readonly fast", k(1, 1, 1), "set", "6.2.0", keyed(smismember), "Determines whether multiple members belong to a set.";
    "smembers", 2, "readonly", k(1, 1, 1), "set", "1.0.0", keyed(smembers), "Returns all members of a set.", reply_length_deferred();
    "srandmember", -2, "readonly", k(1, 1, 1), "set", "1.0.0", keyed(srandmember), "Get one or multiple random members from a set";
    "spop", -2, "write fast", k(1, 1, 1), "set", "1.0.0", keyed(spop), "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", log(LogForm::Spop), unchanged_when(super::nothing_returned);
    "smove", 4, "write fast", k(1, 2, 1), "set", "1.0.0", keyed(smove), "Moves a member from one set to another.", unchanged_when(super::zero_changes), effects_when_spanning(smove_effects);
    "sinter", -2, "readonly", k(1, -1, 1), "set", "1.0.0", keyed(sinter), "Returns the intersect of multiple sets.", reply_length_deferred();
    "sintercard", -3, "readonly movablekeys", Keys::Custom { legacy: (0, 0, 0), find: sintercard_keys }, "set", "7.0.0", keyed(sintercard), "Returns the number of members of the intersect of multiple sets.";
    "sunion", -2, "readonly", k(1, -1, 1), "set", "1.0.0", keyed(sunion), "Returns the union of multiple sets.";
    "sdiff", -2, "readonly", k(1, -1, 1), "set", "1.0.0", keyed(sdiff), "Returns the difference of multiple sets.";
    "sinterstore", -3, "write denyoom", k(1, -1, 1), "set", "1.0.0", keyed(sinterstore), "Stores the intersect of multiple sets in a key.", writes(Writes::First);
    "sunionstore", -3, "write denyoom", k(1, -1, 1), "set", "1.0.0", keyed(sunionstore), "Stores the union of multiple sets in a key.", writes(Writes::First);
    "sdiffstore", -3, "write denyoom", k(1, -1, 1), "set", "1.0.0", keyed(sdiffstore), "Stores the difference of multiple sets in a key.", writes(Writes::First);
    "sscan", -3, "readonly", k(1, 1, 1), "set", "2.8.0", keyed(sscan), "Iterates over members of a set.";
}

const OUT_OF_RANGE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// set-max-intset-entries.
fn max_intset(ctx: &KeyCtx) -> usize {
    ctx.server
        .hot
        .set_max_intset_entries
        .load(std::sync::atomic::Ordering::Relaxed) as usize
}

/// The set at `key` for reading: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn read_set<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a mut SetValue>, Reply> {
    as_set(ctx.read(key))
}

/// As `read_set`, without hit/miss accounting (Redis's lookupKeyWrite).
fn write_set<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a mut SetValue>, Reply> {
    as_set(ctx.write(key))
}

fn as_set(entry: Option<&mut Entry>) -> Result<Option<&mut SetValue>, Reply> {
    match entry {
        None => Ok(None),
        Some(Entry {
            value: Value::Set(s),
            ..
        }) => Ok(Some(s)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// A set already looked up and type-checked by the caller, read again without accounting.
fn peek<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Option<&'a SetValue> {
    let now = ctx.now_ms;
    match ctx.db(key).get(key, now) {
        Some(Entry {
            value: Value::Set(s),
            ..
        }) => Some(s),
        _ => None,
    }
}

fn store(ctx: &mut KeyCtx, key: &[u8], set: SetValue) {
    ctx.store(key, Value::Set(Box::new(set)), 0);
}

fn bulk(m: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(m))
}

fn members_reply<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Vec<Reply> {
    members.into_iter().map(bulk).collect()
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

pub fn sadd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let max = max_intset(ctx);
    let key = &args[1];
    if tri!(write_set(ctx, key)).is_none() {
        store(ctx, key, SetValue::for_member(&args[2]));
    }
    let set = tri!(write_set(ctx, key)).expect("just created");
    let added = args[2..].iter().filter(|m| set.add(m, max)).count();
    if added > 0 {
        ctx.notify(notify::SET, "sadd", key);
    }
    Reply::Int(added as i64)
}

pub fn srem(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let Some(set) = tri!(write_set(ctx, key)) else {
        return Reply::Int(0);
    };
    let mut removed = 0;
    for m in &args[2..] {
        if set.remove(m) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    let emptied = set.is_empty();
    if removed > 0 {
        ctx.notify(notify::SET, "srem", key);
    }
    if emptied {
        ctx.remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    Reply::Int(removed)
}

pub fn scard(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.len() as i64)),
        Err(e) => e,
    }
}

pub fn sismember(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.is_some_and(|s| s.contains(&args[2])) as i64),
        Err(e) => e,
    }
}

pub fn smismember(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let set = tri!(read_set(ctx, &args[1]));
    Reply::Array(
        args[2..]
            .iter()
            .map(|m| Reply::Int(set.as_ref().is_some_and(|s| s.contains(m)) as i64))
            .collect(),
    )
}

/// SMEMBERS is SINTER of one key in Redis 7.0.
pub fn smembers(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    sinter(ctx, args)
}

/// `count` distinct random indices below `len` (count < len).
fn distinct_indices(len: usize, count: usize) -> Vec<usize> {
    if count * 3 > len {
        // Close to the whole set: a partial Fisher-Yates shuffle.
        let mut all: Vec<usize> = (0..len).collect();
        for i in 0..count {
            let j = i + (random_u64() % (len - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = (random_u64() % len as u64) as usize;
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

pub fn srandmember(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::err(SYNTAX);
    }
    if args.len() == 2 {
        return match tri!(read_set(ctx, &args[1])) {
            None => Reply::Nil,
            Some(s) => bulk(s.members[s.random_index()].as_bytes()),
        };
    }
    let l = tri!(int_arg(&args[2]));
    if l == i64::MIN {
        return Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        );
    }
    let server = ctx.server;
    let Some(set) = tri!(read_set(ctx, &args[1])) else {
        return Reply::Array(Vec::new());
    };
    let count = l.unsigned_abs();
    if count == 0 {
        return Reply::Array(Vec::new());
    }
    if l < 0 {
        let count = match super::util::sampled_count(server, count, 1) {
            Ok(n) => n,
            Err(e) => return e,
        };
        return Reply::Array(
            (0..count)
                .map(|_| bulk(set.members[set.random_index()].as_bytes()))
                .collect(),
        );
    }
    if count >= set.len() as u64 {
        return Reply::Array(members_reply(set.iter()));
    }
    let picks = distinct_indices(set.len(), count as usize);
    Reply::Array(
        picks
            .into_iter()
            .map(|i| bulk(set.members[i].as_bytes()))
            .collect(),
    )
}

pub fn spop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::err(SYNTAX);
    }
    let key = &args[1];
    if args.len() == 2 {
        let Some(set) = tri!(write_set(ctx, key)) else {
            return Reply::Nil;
        };
        let m = set
            .remove_index(set.random_index())
            .expect("set is not empty");
        let emptied = set.is_empty();
        ctx.notify(notify::SET, "spop", key);
        if emptied {
            ctx.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        return bulk(m.as_bytes());
    }
    let count = match parse_strict_i64(&args[2]) {
        Some(c) if c >= 0 => c as u64,
        _ => return Reply::err(OUT_OF_RANGE_POSITIVE),
    };
    let max = max_intset(ctx);
    let Some(set) = tri!(write_set(ctx, key)) else {
        return Reply::Set(Vec::new());
    };
    if count == 0 {
        return Reply::Set(Vec::new());
    }
    let size = set.len() as u64;
    ctx.notify(notify::SET, "spop", key);
    if count >= size {
        // Redis answers with the union of the one set (an intset while it can be).
        let set = tri!(write_set(ctx, key)).expect("checked above");
        let all = SetValue::collect(set.iter(), max);
        let reply = Reply::Set(members_reply(all.iter()));
        ctx.remove(key);
        ctx.notify(notify::GENERIC, "del", key);
        return reply;
    }
    let set = tri!(write_set(ctx, key)).expect("checked above");
    let remaining = size - count;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let m = set
            .remove_index(set.random_index())
            .expect("set is not empty");
        out.push(Reply::Bulk(Bytes::copy_from_slice(m.as_bytes())));
    }
    if remaining * 5 <= count {
        // Redis keeps the remaining members in a new set, which may be an intset again.
        set.rebuild(max);
    }
    Reply::Set(out)
}

/// SMOVE's steps when its sets live on two shards: the SREM from the source and the SADD to
/// the destination, each logged on its own shard (rather than both sets whole).
pub fn smove_effects(_: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    if *reply != Reply::Int(1) {
        return Vec::new();
    }
    let member = args[3].clone();
    vec![
        vec![Bytes::from_static(b"SREM"), args[1].clone(), member.clone()],
        vec![Bytes::from_static(b"SADD"), args[2].clone(), member],
    ]
}

pub fn smove(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let max = max_intset(ctx);
    let src_exists = tri!(write_set(ctx, src)).is_some();
    let dst_exists = match write_set(ctx, dst) {
        Ok(s) => s.is_some(),
        Err(e) => {
            if src_exists {
                return e;
            }
            false
        }
    };
    if !src_exists {
        return Reply::Int(0);
    }
    if src == dst {
        let set = peek(ctx, src).expect("checked above");
        return Reply::Int(set.contains(member) as i64);
    }
    let set = tri!(write_set(ctx, src)).expect("checked above");
    if !set.remove(member) {
        return Reply::Int(0);
    }
    let emptied = set.is_empty();
    ctx.notify(notify::SET, "srem", src);
    if emptied {
        ctx.remove(src);
        ctx.notify(notify::GENERIC, "del", src);
    }
    if !dst_exists {
        store(ctx, dst, SetValue::for_member(member));
    }
    let set = tri!(write_set(ctx, dst)).expect("exists");
    if set.add(member, max) || !dst_exists {
        ctx.notify(notify::SET, "sadd", dst);
    }
    Reply::Int(1)
}

/// Looks every key up for reading (the STORE forms too: Redis 7.0 counts their hits and
/// misses and raises `keymiss`), checking types before anything else: the sizes of the sets,
/// None for a missing key.
fn lookup_all(ctx: &mut KeyCtx, keys: &[Bytes]) -> Result<Vec<Option<usize>>, Reply> {
    keys.iter()
        .map(|k| Ok(read_set(ctx, k)?.map(|s| s.len())))
        .collect()
}

/// The intersection of `keys`, in the order Redis produces it (the smallest set's order),
/// at most `limit` members (0: no limit); empty when a key is missing.
fn intersect(
    ctx: &mut KeyCtx,
    keys: &[Bytes],
    sizes: &[Option<usize>],
    limit: usize,
) -> Vec<Bytes> {
    if sizes.iter().any(Option::is_none) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let first = &keys[order[0]];
    let mut result: Vec<Bytes> = peek(ctx, first)
        .map(|s| s.iter().map(Bytes::copy_from_slice).collect())
        .unwrap_or_default();
    // Filter set by set: one key lookup per set, the smallest set's order kept.
    for &i in &order[1..] {
        if keys[i] == first || result.is_empty() {
            continue;
        }
        let set = peek(ctx, &keys[i]).expect("every key is present");
        result.retain(|m| set.contains(m));
    }
    if limit != 0 {
        result.truncate(limit);
    }
    result
}

pub fn sinter(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let keys = &args[1..];
    let sizes = tri!(lookup_all(ctx, keys));
    let result = intersect(ctx, keys, &sizes, 0);
    Reply::Set(result.into_iter().map(Reply::Bulk).collect())
}

pub fn sinterstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (dst, keys) = (&args[1], &args[2..]);
    let max = max_intset(ctx);
    let sizes = tri!(lookup_all(ctx, keys));
    let result = intersect(ctx, keys, &sizes, 0);
    let set = SetValue::collect(result.iter().map(|b| &b[..]), max);
    store_result(ctx, dst, set, "sinterstore")
}

/// Replaces `dst` with `set` and raises `event`, or deletes it when the result is empty;
/// replies the size.
fn store_result(ctx: &mut KeyCtx, dst: &[u8], set: SetValue, event: &'static str) -> Reply {
    let n = set.len();
    if n > 0 {
        store(ctx, dst, set);
        ctx.notify(notify::SET, event, dst);
    } else if ctx.remove(dst).is_some() {
        ctx.notify(notify::GENERIC, "del", dst);
    }
    Reply::Int(n as i64)
}

/// Where SINTERCARD's keys are, as Redis's key finder reads numkeys (atoi, and none when
/// numkeys is out of bounds).
pub fn sintercard_keys(args: &[Bytes]) -> Vec<usize> {
    let num = args.get(1).map_or(0, |a| atoi(a));
    if num < 1 || num as usize > args.len().saturating_sub(2) {
        return Vec::new();
    }
    (2..2 + num as usize).collect()
}

pub fn sintercard(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let numkeys = match parse_strict_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Reply::err("ERR numkeys should be greater than 0"),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let numkeys = numkeys as usize;
    let mut limit = 0usize;
    let mut j = 2 + numkeys;
    while j < args.len() {
        if eq_ignore_case(&args[j], "limit") && j + 1 < args.len() {
            match parse_strict_i64(&args[j + 1]) {
                Some(l) if l >= 0 => limit = l as usize,
                _ => return Reply::err("ERR LIMIT can't be negative"),
            }
            j += 2;
        } else {
            return Reply::err(SYNTAX);
        }
    }
    let keys = &args[2..2 + numkeys];
    let sizes = tri!(lookup_all(ctx, keys));
    Reply::Int(intersect(ctx, keys, &sizes, limit).len() as i64)
}

#[derive(PartialEq, Clone, Copy)]
enum Op {
    Union,
    Diff,
}

/// SUNION / SDIFF and their STORE forms, as Redis's sunionDiffGenericCommand builds them:
/// the result is an intset for as long as Redis's would be, and so comes out in its order.
fn union_diff(ctx: &mut KeyCtx, keys: &[Bytes], dst: Option<&Bytes>, op: Op) -> Reply {
    let max = max_intset(ctx);
    let sizes = tri!(lookup_all(ctx, keys));
    let mut result = SetValue::new_intset();
    match op {
        Op::Union => {
            for k in keys {
                if let Some(s) = peek(ctx, k) {
                    for m in s.iter() {
                        result.add(m, max);
                    }
                }
            }
        }
        Op::Diff => {
            if let Some(first_size) = sizes[0] {
                // Redis picks between two algorithms; the second one adds the whole first set
                // to the result before removing, which decides the result's encoding.
                let present = sizes.iter().flatten().count();
                let one = (first_size * present) / 2;
                let two: usize = sizes.iter().flatten().sum();
                let algo_two = one > two;
                let first = &keys[0];
                let mut kept: Vec<Bytes> = peek(ctx, first)
                    .map(|s| s.iter().map(Bytes::copy_from_slice).collect())
                    .unwrap_or_default();
                for k in &keys[1..] {
                    if k == first {
                        kept.clear();
                    }
                    if kept.is_empty() {
                        break;
                    }
                    if let Some(set) = peek(ctx, k) {
                        kept.retain(|m| !set.contains(m));
                    }
                }
                if algo_two {
                    let whole = peek(ctx, first).expect("present");
                    result = SetValue::collect(whole.iter(), max);
                    let keep: HashSet<&[u8]> = kept.iter().map(|b| &b[..]).collect();
                    let gone: Vec<Bytes> = result
                        .iter()
                        .filter(|m| !keep.contains(m))
                        .map(Bytes::copy_from_slice)
                        .collect();
                    for m in gone {
                        result.remove(&m);
                    }
                } else {
                    result = SetValue::collect(kept.iter().map(|b| &b[..]), max);
                }
            }
        }
    }
    let event = match op {
        Op::Union => "sunionstore",
        Op::Diff => "sdiffstore",
    };
    match dst {
        Some(dst) => store_result(ctx, dst, result, event),
        None => Reply::Set(members_reply(result.iter())),
    }
}

pub fn sunion(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    union_diff(ctx, &args[1..], None, Op::Union)
}

pub fn sdiff(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    union_diff(ctx, &args[1..], None, Op::Diff)
}

pub fn sunionstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    union_diff(ctx, &args[2..], Some(&args[1]), Op::Union)
}

pub fn sdiffstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    union_diff(ctx, &args[2..], Some(&args[1]), Op::Diff)
}

pub fn sscan(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let Some(cursor) = parse_cursor(&args[2]) else {
        return Reply::err("ERR invalid cursor");
    };
    let empty = || Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(Vec::new())]);
    if tri!(read_set(ctx, &args[1])).is_none() {
        return empty();
    }
    let ScanOptions { count, pattern, .. } = match scan_options(args, 3, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let set = peek(ctx, &args[1]).expect("checked above");
    // An intset is answered whole, whatever the cursor and count, as Redis does.
    let (seen, next) = if set.intset {
        (set.iter().collect(), 0)
    } else {
        let cursor = usize::try_from(cursor).unwrap_or(usize::MAX);
        set.scan(cursor, count)
    };
    let items = seen
        .into_iter()
        .filter(|m| pattern.is_none_or(|p| glob_match(p, m, false)))
        .map(bulk)
        .collect();
    Reply::Array(vec![
        Reply::bulk_str(&next.to_string()),
        Reply::Array(items),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn sintercard_keys_follow_numkeys() {
        assert_eq!(sintercard_keys(&args("sintercard 2 a b limit 1")), [2, 3]);
        assert_eq!(sintercard_keys(&args("sintercard 2x a b")), [2, 3]);
        assert!(sintercard_keys(&args("sintercard 3 a b")).is_empty());
        assert!(sintercard_keys(&args("sintercard 0 a")).is_empty());
        assert!(sintercard_keys(&args("sintercard -1 a")).is_empty());
    }

    #[test]
    fn distinct_indices_are_distinct_and_in_range() {
        for (len, count) in [(10, 9), (100, 3), (5, 1)] {
            let v = distinct_indices(len, count);
            let set: HashSet<_> = v.iter().collect();
            assert_eq!((v.len(), set.len()), (count, count));
            assert!(v.iter().all(|&i| i < len));
        }
    }
}
