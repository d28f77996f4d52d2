//! List commands (the non-blocking ones): pushes, pops, ranges, LPOS, LMOVE, LMPOP.

use bytes::Bytes;
use warpengine_storage::list::End;
use warpengine_storage::{notify, Entry, ListValue, Value};

use super::util::{atoi, eq_ignore_case, int_arg, NO_SUCH_KEY, SYNTAX};
use super::{commands, k, keyed, Keys, LogForm};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::OK;
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "lpush", -3, "write denyoom fast", k(1, 1, 1), "list", "1.0.0", keyed(lpush), "Prepend one or multiple elements to a list";
    "rpush", -3, "write denyoom fast", k(1, 1, 1), "list", "1.0.0", keyed(rpush), "Append one or multiple elements to a list";
    "lpushx", -3, "write denyoom fast", k(1, 1, 1), "list", "2.2.0", keyed(lpushx), "Prepend an element to a list, only if the list exists", unchanged_when(super::zero_changes);
    "rpushx", -3, "write denyoom fast", k(1, 1, 1), "list", "2.2.0", keyed(rpushx), "Append an element to a list, only if the list exists", unchanged_when(super::zero_changes);
    "lpop", -2, "write fast", k(1, 1, 1), "list", "1.0.0", keyed(lpop), "Remove and get the first elements in a list", unchanged_when(super::nothing_returned);
    "rpop", -2, "write fast", k(1, 1, 1), "list", "1.0.0", keyed(rpop), "Remove and get the last elements in a list", unchanged_when(super::nothing_returned);
    "llen", 2, "readonly fast", k(1, 1, 1), "list", "1.0.0", keyed(llen), "Get the length of a list";
    "lrange", 4, "readonly", k(1, 1, 1), "list", "1.0.0", keyed(lrange), "Get a range of elements from a list";
    "lindex", 3, "readonly", k(1, 1, 1), "list", "1.0.0", keyed(lindex), "Get an element from a list by its index";
    "lset", 4, "write denyoom", k(1, 1, 1), "list", "1.0.0", keyed(lset), "Set the value of an element in a list by its index";
    "linsert", 5, "write denyoom", k(1, 1, 1), "list", "2.2.0", keyed(linsert), "Insert an element before or after another element in a list", unchanged_when(linsert_unchanged);
    "lrem", 4, "write", k(1, 1, 1), "list", "1.0.0", keyed(lrem), "Remove elements from a list", unchanged_when(super::zero_changes);
    "ltrim", 4, "write", k(1, 1, 1), "list", "1.0.0", keyed(ltrim), "Trim a list to the specified range";
    "lpos", -3, "readonly", k(1, 1, 1), "list", "6.0.6", keyed(lpos), "Return the index of matching elements on a list";
    "lmove", 5, "write denyoom", k(1, 2, 1), "list", "6.2.0", keyed(lmove), "Pop an element from a list, push it to another list and return it", unchanged_when(super::nothing_returned), effects_when_spanning(lmove_effects);
    "rpoplpush", 3, "write denyoom", k(1, 2, 1), "list", "1.2.0", keyed(rpoplpush), "Remove the last element in a list, prepend it to another list and return it", unchanged_when(super::nothing_returned), effects_when_spanning(rpoplpush_effects);
    "lmpop", -4, "write movablekeys", Keys::Custom { legacy: (0, 0, 0), find: lmpop_keys }, "list", "7.0.0", keyed(lmpop), "Pop elements from a list", unchanged_when(super::nothing_returned), log(LogForm::Effects(lmpop_effects));
}

const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// Redis's getRangeLongFromObjectOrReply: a strict integer within [min, max]; `msg` (when
/// given) replaces both the parse error and the range error.
fn range_arg(arg: &[u8], min: i64, max: i64, msg: Option<&str>) -> Result<i64, Reply> {
    let v = match int_arg(arg) {
        Ok(v) => v,
        Err(e) => return Err(msg.map_or(e, Reply::err)),
    };
    if v < min || v > max {
        return Err(Reply::err(msg.map_or_else(
            || format!("ERR value is out of range, must be between {min} and {max}"),
            str::to_string,
        )));
    }
    Ok(v)
}

/// getPositiveLongFromObjectOrReply.
fn positive_arg(arg: &[u8], msg: &str) -> Result<i64, Reply> {
    range_arg(arg, 0, i64::MAX, Some(msg))
}

/// LEFT or RIGHT, case-insensitively.
fn end_arg(arg: &[u8]) -> Result<End, Reply> {
    if eq_ignore_case(arg, "left") {
        Ok(End::Head)
    } else if eq_ignore_case(arg, "right") {
        Ok(End::Tail)
    } else {
        Err(Reply::err(SYNTAX))
    }
}

/// The list at `key` for writing: Ok(None) when absent, Err(WRONGTYPE) when another type.
fn write_list<'c>(ctx: &'c mut KeyCtx, key: &[u8]) -> Result<Option<&'c mut ListValue>, Reply> {
    match ctx.write(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::List(l),
            ..
        }) => Ok(Some(l)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The list at `key` for reading (counts hits and misses).
fn read_list<'c>(ctx: &'c mut KeyCtx, key: &[u8]) -> Result<Option<&'c mut ListValue>, Reply> {
    match ctx.read(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::List(l),
            ..
        }) => Ok(Some(l)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// After a removal: raises `event`, then deletes `key` when its list has become empty, as
/// Redis does after every removal.
fn delete_if(ctx: &mut KeyCtx, key: &[u8], event: &'static str, emptied: bool) {
    ctx.notify(notify::LIST, event, key);
    if emptied {
        ctx.db(key).remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    }
}

/// Stores a new list at `key`.
fn create(ctx: &mut KeyCtx, key: &[u8], list: ListValue) {
    let clock = ctx.clock;
    ctx.db(key).set(key, Value::List(Box::new(list)), 0, clock);
}

fn push(ctx: &mut KeyCtx, args: &[Bytes], end: End, only_existing: bool) -> Reply {
    let key = &args[1];
    let values = &args[2..];
    match write_list(ctx, key) {
        Err(e) => e,
        Ok(Some(l)) => {
            values.iter().for_each(|v| l.push(end, v));
            let len = l.len();
            ctx.notify(notify::LIST, push_event(end), key);
            Reply::Int(len as i64)
        }
        Ok(None) if only_existing => Reply::Int(0),
        Ok(None) => {
            let mut l = ListValue::default();
            values.iter().for_each(|v| l.push(end, v));
            let len = l.len();
            create(ctx, key, l);
            ctx.notify(notify::LIST, push_event(end), key);
            Reply::Int(len as i64)
        }
    }
}

pub fn lpush(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Head, false)
}

pub fn rpush(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Tail, false)
}

pub fn lpushx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Head, true)
}

pub fn rpushx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Tail, true)
}

/// Pops up to `count` elements from one end of a list.
fn pop_many(l: &mut ListValue, end: End, count: usize) -> Vec<Reply> {
    let n = count.min(l.len());
    (0..n)
        .map(|_| Reply::Bulk(l.pop(end).expect("counted")))
        .collect()
}

fn pop(ctx: &mut KeyCtx, args: &[Bytes], end: End) -> Reply {
    let name = if end == End::Head { "lpop" } else { "rpop" };
    if args.len() > 3 {
        return super::util::wrong_arity(name);
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match range_arg(a, 0, i64::MAX, None) {
            Ok(c) => Some(usize::try_from(c).unwrap_or(usize::MAX)),
            Err(_) => return Reply::err(MUST_BE_POSITIVE),
        },
    };
    let key = &args[1];
    let l = match write_list(ctx, key) {
        Err(e) => return e,
        Ok(None) if count.is_some() => return Reply::NilArray,
        Ok(None) => return Reply::Nil,
        Ok(Some(l)) => l,
    };
    let reply = match count {
        Some(0) => return Reply::Array(Vec::new()),
        Some(n) => Reply::Array(pop_many(l, end, n)),
        None => Reply::Bulk(l.pop(end).expect("a stored list is never empty")),
    };
    let emptied = l.is_empty();
    delete_if(ctx, key, pop_event(end), emptied);
    reply
}

pub fn lpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    pop(ctx, args, End::Head)
}

pub fn rpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    pop(ctx, args, End::Tail)
}

pub fn llen(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_list(ctx, &args[1]) {
        Err(e) => e,
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len() as i64)),
    }
}

pub fn lrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match read_list(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(l)) => match l.range(start, end) {
            None => Reply::Array(Vec::new()),
            Some((s, e)) => range_reply(l, s, e - s + 1),
        },
    }
}

/// LRANGE's reply, encoded as it is read out of the list: an array of bulk strings (the same
/// bytes in RESP2 and RESP3), one allocation for the whole reply rather than one per element.
fn range_reply(l: &ListValue, start: usize, count: usize) -> Reply {
    let mut out = Vec::with_capacity(16 + count * 16);
    let mut digits = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(digits.format(count).as_bytes());
    out.extend_from_slice(b"\r\n");
    for e in l.iter_from(start).take(count) {
        out.push(b'$');
        out.extend_from_slice(digits.format(e.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(e);
        out.extend_from_slice(b"\r\n");
    }
    Reply::Raw(Bytes::from(out))
}

pub fn lindex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_list(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Nil,
        Ok(Some(l)) => match int_arg(&args[2]) {
            Err(e) => e,
            Ok(i) => l.get(i).map_or(Reply::Nil, Reply::bulk),
        },
    }
}

pub fn lset(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let reply = match write_list(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::err(NO_SUCH_KEY),
        Ok(Some(l)) => match int_arg(&args[2]) {
            Err(e) => e,
            Ok(i) if l.set(i, &args[3]) => OK,
            Ok(_) => Reply::err("ERR index out of range"),
        },
    };
    if !reply.is_error() {
        ctx.notify(notify::LIST, "lset", &args[1]);
    }
    reply
}

pub fn linsert(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let after = if eq_ignore_case(&args[2], "after") {
        true
    } else if eq_ignore_case(&args[2], "before") {
        false
    } else {
        return Reply::err(SYNTAX);
    };
    match write_list(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(l)) => {
            if l.insert(&args[3], &args[4], after) {
                let len = l.len();
                ctx.notify(notify::LIST, "linsert", &args[1]);
                Reply::Int(len as i64)
            } else {
                Reply::Int(-1)
            }
        }
    }
}

pub fn lrem(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let count = match int_arg(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = &args[1];
    let removed = match write_list(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => (l.remove(&args[3], count), l.is_empty()),
    };
    if removed.0 > 0 {
        delete_if(ctx, key, "lrem", removed.1);
    }
    Reply::Int(removed.0 as i64)
}

pub fn ltrim(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let key = &args[1];
    let emptied = match write_list(ctx, key) {
        Err(e) => return e,
        Ok(None) => return OK,
        Ok(Some(l)) => {
            l.trim(start, end);
            l.is_empty()
        }
    };
    delete_if(ctx, key, "ltrim", emptied);
    OK
}

pub fn lpos(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let mut rank = 1i64;
    let mut count: Option<i64> = None;
    let mut maxlen = 0i64;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = j + 1 < args.len();
        if eq_ignore_case(opt, "rank") && more {
            j += 1;
            rank = match int_arg(&args[j]) {
                Ok(r) => r,
                Err(e) => return e,
            };
            if rank == 0 {
                return Reply::err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                );
            }
        } else if eq_ignore_case(opt, "count") && more {
            j += 1;
            count = match positive_arg(&args[j], "ERR COUNT can't be negative") {
                Ok(c) => Some(c),
                Err(e) => return e,
            };
        } else if eq_ignore_case(opt, "maxlen") && more {
            j += 1;
            maxlen = match positive_arg(&args[j], "ERR MAXLEN can't be negative") {
                Ok(m) => m,
                Err(e) => return e,
            };
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    let l = match read_list(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) if count.is_some() => return Reply::Array(Vec::new()),
        Ok(None) => return Reply::Nil,
        Ok(Some(l)) => l,
    };
    let maxlen = usize::try_from(maxlen).unwrap_or(usize::MAX);
    // Redis 7.0 negates RANK in a C long: LONG_MIN stays negative, so every match from the
    // tail qualifies, and the COUNT test (which overflows the same way) never stops the scan.
    let (rank, count) = match rank {
        i64::MIN => (-1, count.map(|_| 0)),
        _ => (rank, count),
    };
    match count {
        Some(c) => {
            let c = usize::try_from(c).unwrap_or(usize::MAX);
            let found = l.positions(&args[2], rank, c, maxlen);
            Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect())
        }
        None => match l.positions(&args[2], rank, 1, maxlen).first() {
            Some(&i) => Reply::Int(i as i64),
            None => Reply::Nil,
        },
    }
}

/// Pops from one end of `src` and pushes to one end of `dst` (they may be the same key, on
/// the same or another shard).
fn move_one(ctx: &mut KeyCtx, src: &[u8], dst: &[u8], from: End, to: End) -> Reply {
    match write_list(ctx, src) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(l)) if src == dst => {
            let v = l.pop(from).expect("a stored list is never empty");
            l.push(to, &v);
            ctx.notify(notify::LIST, push_event(to), dst);
            ctx.notify(notify::LIST, pop_event(from), src);
            return Reply::Bulk(v);
        }
        Ok(Some(_)) => {}
    }
    if let Err(e) = write_list(ctx, dst) {
        return e;
    }
    let (v, emptied) = match write_list(ctx, src) {
        Ok(Some(l)) => (
            l.pop(from).expect("a stored list is never empty"),
            l.is_empty(),
        ),
        _ => unreachable!("checked above"),
    };
    // As Redis: the push (and its event) first, then the pop's event and the deletion.
    match write_list(ctx, dst) {
        Ok(Some(l)) => l.push(to, &v),
        _ => {
            let mut l = ListValue::default();
            l.push(to, &v);
            create(ctx, dst, l);
        }
    }
    ctx.notify(notify::LIST, push_event(to), dst);
    delete_if(ctx, src, pop_event(from), emptied);
    Reply::Bulk(v)
}

pub fn lmove(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (from, to) = match (end_arg(&args[3]), end_arg(&args[4])) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    move_one(ctx, &args[1], &args[2], from, to)
}

pub fn rpoplpush(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    move_one(ctx, &args[1], &args[2], End::Tail, End::Head)
}

/// LMOVE's (and BLMOVE's) steps when its lists live on two shards: the pop from the source
/// and the push of the moved element onto the destination, each logged on its own shard.
pub fn lmove_effects(_: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match (end_arg(&args[3]), end_arg(&args[4])) {
        (Ok(from), Ok(to)) => move_steps(args, reply, from, to),
        _ => Vec::new(),
    }
}

/// RPOPLPUSH's (and BRPOPLPUSH's) steps when its lists live on two shards (see
/// `lmove_effects`).
pub fn rpoplpush_effects(_: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    move_steps(args, reply, End::Tail, End::Head)
}

fn move_steps(args: &[Bytes], reply: &Reply, from: End, to: End) -> Vec<Vec<Bytes>> {
    let Reply::Bulk(element) = reply else {
        return Vec::new();
    };
    let word = |end: End, head: &'static [u8], tail: &'static [u8]| {
        Bytes::from_static(if end == End::Head { head } else { tail })
    };
    vec![
        vec![word(from, b"LPOP", b"RPOP"), args[1].clone()],
        vec![
            word(to, b"LPUSH", b"RPUSH"),
            args[2].clone(),
            element.clone(),
        ],
    ]
}

/// LMPOP's keys, as Redis's genericGetKeys finds them: `numkeys` keys after the numkeys
/// argument, or none when numkeys is below 1 or more than the arguments left.
pub fn lmpop_keys(args: &[Bytes]) -> Vec<usize> {
    let num = args.get(1).map_or(0, |a| atoi(a));
    if num < 1 || num as usize > args.len().saturating_sub(2) {
        return Vec::new();
    }
    (2..2 + num as usize).collect()
}

/// LMPOP's and BLMPOP's arguments after the keys: which end, and how many.
pub struct MpopArgs {
    keys: std::ops::Range<usize>,
    end: End,
    count: usize,
}

/// Parses `numkeys key [key ...] LEFT|RIGHT [COUNT count]` starting at `numkeys_idx`.
pub fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<MpopArgs, Reply> {
    let numkeys = range_arg(
        &args[numkeys_idx],
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    )? as u64;
    let where_idx = numkeys.saturating_add(numkeys_idx as u64 + 1);
    if where_idx >= args.len() as u64 {
        return Err(Reply::err(SYNTAX));
    }
    let where_idx = where_idx as usize;
    let end = end_arg(&args[where_idx])?;
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && eq_ignore_case(&args[j], "count") && j + 1 < args.len() {
            j += 1;
            count = Some(range_arg(
                &args[j],
                1,
                i64::MAX,
                Some("ERR count should be greater than 0"),
            )?);
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: numkeys_idx + 1..where_idx,
        end,
        count: usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX),
    })
}

/// Pops from the first non-empty list of the parsed keys; a null array when all are empty.
/// LMPOP's work; a woken BLMPOP's try passes over keys of another type.
pub fn mpop(ctx: &mut KeyCtx, args: &[Bytes], parsed: &MpopArgs) -> Reply {
    let retry = ctx.blocked_retry;
    for key in &args[parsed.keys.clone()] {
        match write_list(ctx, key) {
            Err(_) if retry => continue,
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(l)) => {
                let popped = pop_many(l, parsed.end, parsed.count);
                let emptied = l.is_empty();
                delete_if(ctx, key, pop_event(parsed.end), emptied);
                return Reply::Array(vec![Reply::bulk(key), Reply::Array(popped)]);
            }
        }
    }
    Reply::NilArray
}

pub fn lmpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match parse_mpop(args, 1) {
        Ok(parsed) => mpop(ctx, args, &parsed),
        Err(e) => e,
    }
}

/// LMPOP and BLMPOP as Redis propagates them: `LPOP|RPOP key <how many it popped>`.
/// `numkeys_idx`: where numkeys is (1 for LMPOP, 2 for BLMPOP).
pub fn mpop_effects(args: &[Bytes], reply: &Reply, numkeys_idx: usize) -> Vec<Vec<Bytes>> {
    let Ok(parsed) = parse_mpop(args, numkeys_idx) else {
        return Vec::new();
    };
    let pop: &'static [u8] = match parsed.end {
        End::Head => b"LPOP",
        End::Tail => b"RPOP",
    };
    super::util::pop_with_count(pop, reply)
}

fn lmpop_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    mpop_effects(args, reply, 1)
}

/// LINSERT changed nothing: no such list (0) or no such pivot (-1).
fn linsert_unchanged(_args: &[Bytes], reply: &Reply) -> bool {
    matches!(reply, Reply::Int(n) if *n <= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn lmpop_keys_stay_within_the_arguments() {
        assert_eq!(lmpop_keys(&args("lmpop 2 a b left")), [2, 3]);
        assert!(lmpop_keys(&args("lmpop 3 a b")).is_empty());
        assert!(lmpop_keys(&args("lmpop 0 a left")).is_empty());
        assert!(lmpop_keys(&args("lmpop -9223372036854775808 a b")).is_empty());
    }
}
