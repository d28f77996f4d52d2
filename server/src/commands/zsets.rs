//! Sorted-set commands: ZADD and friends, ranges by rank, score and lex, pops, random members,
//! ZSCAN, and the union / intersection / difference family.

use bytes::Bytes;
use warpengine_physics::lfu::Rng;
use warpengine_storage::{glob_match, notify, Value, ZSetValue};

use super::keyspace::parse_cursor;
use super::util::{eq_ignore_case, int_arg, scan_options, ScanOptions, SYNTAX};
use super::{commands, k, keyed, Keys, LogForm, Writes};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::format_double;
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "zadd", -4, "write denyoom fast", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zadd), "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.";
    "zincrby", 4, "write denyoom fast", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zincrby), "Increments the score of a member in a sorted set.";
    "zrem", -3, "write fast", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zrem), "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", unchanged_when(super::zero_changes);
    "zcard", 2, "readonly fast", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zcard), "Returns the number of members in a sorted set.";
    "zscore", 3, "readonly fast", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zscore), "Returns the score of a member in a sorted set.";
    "zmscore", -3, "readonly fast", k(1, 1, 1), "sorted-set", "6.2.0", keyed(zmscore), "Returns the score of one or more members in a sorted set.";
    "zrange", -4, "readonly", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zrange), "Returns members in a sorted set within a range of indexes.", reply_length_deferred();
    "zrangestore", -5, "write denyoom", k(1, 2, 1), "sorted-set", "6.2.0", keyed(zrangestore), "Stores a range of members from sorted set in a key.", writes(Writes::First);
    "zrevrange", -4, "readonly", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zrevrange), "Returns members in a sorted set within a range of indexes in reverse order.", reply_length_deferred();
    "zrangebyscore", -4, "readonly", k(1, 1, 1), "sorted-set", "1.0.5", keyed(zrangebyscore), "Returns members in a sorted set within a range of scores.", reply_length_deferred();
    "zrevrangebyscore", -4, "readonly", k(1, 1, 1), "sorted-set", "2.2.0", keyed(zrevrangebyscore), "Returns members in a sorted set within a range of scores in reverse order.", reply_length_deferred();
    "zrangebylex", -4, "readonly", k(1, 1, 1), "sorted-set", "2.8.9", keyed(zrangebylex), "Returns members in a sorted set within a lexicographical range.", reply_length_deferred();
    "zrevrangebylex", -4, "readonly", k(1, 1, 1), "sorted-set", "2.8.9", keyed(zrevrangebylex), "Returns members in a sorted set within a lexicographical range in reverse order.", reply_length_deferred();
    "zcount", 4, "readonly fast", k(1, 1, 1), "sorted-set", "2.0.0", keyed(zcount), "Returns the count of members in a sorted set that have scores within a range.";
    "zlexcount", 4, "readonly fast", k(1, 1, 1), "sorted-set", "2.8.9", keyed(zlexcount), "Returns the number of members in a sorted set within a lexicographical range.";
    "zrank", 3, "readonly fast", k(1, 1, 1), "sorted-set", "2.0.0", keyed(zrank), "Returns the index of a member in a sorted set ordered by ascending scores.";
    "zrevrank", 3, "readonly fast", k(1, 1, 1), "sorted-set", "2.0.0", keyed(zrevrank), "Returns the index of a member in a sorted set ordered by descending scores.";
    "zpopmin", -2, "write fast", k(1, 1, 1), "sorted-set", "5.0.0", keyed(zpopmin), "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", unchanged_when(super::nothing_returned);
    "zpopmax", -2, "write fast", k(1, 1, 1), "sorted-set", "5.0.0", keyed(zpopmax), "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", unchanged_when(super::nothing_returned);
    "zremrangebyrank", 4, "write", k(1, 1, 1), "sorted-set", "2.0.0", keyed(zremrangebyrank), "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", unchanged_when(super::zero_changes);
    "zremrangebyscore", 4, "write", k(1, 1, 1), "sorted-set", "1.2.0", keyed(zremrangebyscore), "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", unchanged_when(super::zero_changes);
    "zremrangebylex", 4, "write", k(1, 1, 1), "sorted-set", "2.8.9", keyed(zremrangebylex), "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", unchanged_when(super::zero_changes);
    "zrandmember", -2, "readonly", k(1, 1, 1), "sorted-set", "6.2.0", keyed(zrandmember), "Returns one or more random members from a sorted set.";
    "zscan", -3, "readonly", k(1, 1, 1), "sorted-set", "2.8.0", keyed(zscan), "Iterates over members and scores of a sorted set.";
    "zunion", -3, "readonly movablekeys", Keys::Custom { legacy: (0, 0, 0), find: numkeys_at_1 }, "sorted-set", "6.2.0", keyed(zunion), "Returns the union of multiple sorted sets.";
    "zinter", -3, "readonly movablekeys", Keys::Custom { legacy: (0, 0, 0), find: numkeys_at_1 }, "sorted-set", "6.2.0", keyed(zinter), "Returns the intersect of multiple sorted sets.";
    "zdiff", -3, "readonly movablekeys", Keys::Custom { legacy: (0, 0, 0), find: numkeys_at_1 }, "sorted-set", "6.2.0", keyed(zdiff), "Returns the difference between multiple sorted sets.";
    "zunionstore", -4, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: dest_then_numkeys }, "sorted-set", "2.0.0", keyed(zunionstore), "Stores the union of multiple sorted sets in a key.", writes(Writes::First);
    "zinterstore", -4, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: dest_then_numkeys }, "sorted-set", "2.0.0", keyed(zinterstore), "Stores the intersect of multiple sorted sets in a key.", writes(Writes::First);
    "zdiffstore", -4, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: dest_then_numkeys }, "sorted-set", "6.2.0", keyed(zdiffstore), "Stores the difference of multiple sorted sets in a key.", writes(Writes::First);
    "zintercard", -3, "readonly movablekeys", Keys::Custom { legacy: (0, 0, 0), find: numkeys_at_1 }, "sorted-set", "7.0.0", keyed(zintercard), "Returns the number of members of the intersect of multiple sorted sets.";
    "zmpop", -4, "write movablekeys", Keys::Custom { legacy: (0, 0, 0), find: numkeys_at_1 }, "sorted-set", "7.0.0", keyed(zmpop), "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", unchanged_when(super::nothing_returned), log(LogForm::Effects(zmpop_effects_of_zmpop));
}

// ---------------------------------------------------------------------------------------------
// Key positions for the numkeys forms.

/// `numkeys` at `at`, the keys after it; nothing when numkeys is not a usable count (the
/// command then fails before touching any key).
fn numkeys_keys(args: &[Bytes], at: usize) -> Vec<usize> {
    let Some(n) = args.get(at).and_then(|a| parse_i64_loose(a)) else {
        return Vec::new();
    };
    if n < 1 || n as u64 > (args.len() - at - 1) as u64 {
        return Vec::new();
    }
    (at + 1..at + 1 + n as usize).collect()
}

fn parse_i64_loose(a: &[u8]) -> Option<i64> {
    warpengine_storage::value::parse_strict_i64(a)
}

pub fn numkeys_at_1(args: &[Bytes]) -> Vec<usize> {
    numkeys_keys(args, 1)
}

pub fn dest_then_numkeys(args: &[Bytes]) -> Vec<usize> {
    let mut out = vec![1];
    out.extend(numkeys_keys(args, 2));
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing.

const MINMAX_NOT_FLOAT: &str = "ERR min or max is not a float";
const MINMAX_NOT_LEX: &str = "ERR min or max not valid string range item";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C's `strtod` over the whole string (after optional leading spaces): the value and whether
/// it over- or underflowed (ERANGE). None when not all of it is a number.
fn strtod_full(s: &[u8]) -> Option<(f64, bool)> {
    let start = s.iter().position(|c| !is_c_space(*c)).unwrap_or(s.len());
    let t = std::str::from_utf8(&s[start..]).ok()?;
    if t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    let neg = lower.starts_with('-');
    match unsigned {
        "inf" | "infinity" => {
            return Some((
                if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
                false,
            ))
        }
        "nan" => return Some((f64::NAN, false)),
        _ => {}
    }
    if let Some(hex) = unsigned.strip_prefix("0x") {
        let v = parse_hex_float(hex)?;
        let v = if neg { -v } else { v };
        let erange = v.is_infinite() || (v != 0.0 && v.abs() < f64::MIN_POSITIVE);
        return Some((v, erange));
    }
    if !unsigned
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
        || !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    let v: f64 = t.parse().ok()?;
    let mantissa = unsigned.split('e').next().unwrap_or("");
    let nonzero_digits = mantissa.bytes().any(|c| matches!(c, b'1'..=b'9'));
    let erange = v.is_infinite()
        || (v == 0.0 && nonzero_digits)
        || (v != 0.0 && v.abs() < f64::MIN_POSITIVE);
    Some((v, erange))
}

/// The digits of a C99 hexadecimal float after `0x`: hex digits with an optional fraction,
/// then an optional binary exponent `p[+-]digits`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = match s.split_once('p') {
        Some((m, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let e: i64 = e.parse().unwrap_or(if e.starts_with('-') {
                -100_000
            } else {
                100_000
            });
            (m, e.clamp(-100_000, 100_000))
        }
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int
            .bytes()
            .chain(frac.bytes())
            .all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    let mut v = 0.0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16).expect("hex digit") as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16).expect("hex digit") as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp as i32))
}

/// Redis's getDoubleFromObject: the whole string, no leading space, no NaN, no overflow.
pub(crate) fn parse_score(s: &[u8]) -> Option<f64> {
    if s.is_empty() || is_c_space(s[0]) {
        return None;
    }
    match strtod_full(s) {
        Some((v, erange)) if !v.is_nan() && !(erange && (v.is_infinite() || v == 0.0)) => Some(v),
        _ => None,
    }
}

fn score_arg(s: &[u8], msg: &str) -> Result<f64, Reply> {
    parse_score(s).ok_or_else(|| Reply::err(msg))
}

/// A score bound of zslParseRange: `(` for exclusive, then strtod over the rest.
fn parse_score_bound(s: &[u8]) -> Option<(f64, bool)> {
    let (ex, body) = match s.first() {
        Some(b'(') => (true, &s[1..]),
        _ => (false, s),
    };
    // strtod converts nothing from an empty string and leaves the end pointer at its NUL.
    let v = if body.is_empty() {
        0.0
    } else {
        strtod_full(body)?.0
    };
    if v.is_nan() {
        return None;
    }
    Some((v, ex))
}

#[derive(Clone, Copy)]
struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        match (parse_score_bound(min), parse_score_bound(max)) {
            (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
                min,
                minex,
                max,
                maxex,
            }),
            _ => Err(Reply::err(MINMAX_NOT_FLOAT)),
        }
    }

    /// Positions [start, end) of the entries in range.
    fn span(&self, z: &ZSetValue) -> (usize, usize) {
        let start = z.count_while(|s, _| {
            if self.minex {
                s <= self.min
            } else {
                s < self.min
            }
        });
        let end = z.count_while(|s, _| {
            if self.maxex {
                s < self.max
            } else {
                s <= self.max
            }
        });
        (start, end.max(start))
    }
}

#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexBound {
    fn parse(s: &Bytes) -> Option<LexBound> {
        match s.first() {
            Some(b'+') if s.len() == 1 => Some(LexBound::Max),
            Some(b'-') if s.len() == 1 => Some(LexBound::Min),
            Some(b'(') => Some(LexBound::Excl(s.slice(1..))),
            Some(b'[') => Some(LexBound::Incl(s.slice(1..))),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, Reply> {
        match (LexBound::parse(min), LexBound::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Reply::err(MINMAX_NOT_LEX)),
        }
    }

    /// Whether `m` is below the range's minimum.
    fn below_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m < &b[..],
            LexBound::Excl(b) => m <= &b[..],
        }
    }

    /// Whether `m` is at most the range's maximum.
    fn within_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }

    fn span(&self, z: &ZSetValue) -> (usize, usize) {
        let start = z.count_while(|_, m| self.below_min(m));
        let end = z.count_while(|_, m| self.within_max(m));
        (start, end.max(start))
    }
}

/// A rank range as Redis sanitises it: None when empty.
fn rank_span(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as usize, end as usize + 1))
}

// ---------------------------------------------------------------------------------------------
// Access helpers.

/// The sorted set at `key` for reading: Ok(None) when absent, Err(WRONGTYPE) for another type.
pub(crate) fn read_zset<'c>(
    ctx: &'c mut KeyCtx,
    key: &[u8],
) -> Result<Option<&'c mut ZSetValue>, Reply> {
    match ctx.read(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(Reply::err(WRONGTYPE)),
        },
    }
}

fn write_zset<'c>(ctx: &'c mut KeyCtx, key: &[u8]) -> Result<Option<&'c mut ZSetValue>, Reply> {
    match ctx.write(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(Reply::err(WRONGTYPE)),
        },
    }
}

/// After members were removed: raises `event`, then deletes `key` when its sorted set has
/// become empty (and raises `del`), as Redis does.
fn removed_from(ctx: &mut KeyCtx, key: &[u8], event: &'static str) {
    ctx.notify(notify::ZSET, event, key);
    if let Ok(Some(z)) = write_zset(ctx, key) {
        if z.is_empty() {
            ctx.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
}

/// After a STORE form computed an empty result: `dst` is deleted, raising `del` if it existed.
fn delete_empty_result(ctx: &mut KeyCtx, dst: &[u8]) {
    if ctx.remove(dst).is_some() {
        ctx.notify(notify::GENERIC, "del", dst);
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Limits {
    entries: usize,
    value: usize,
}

pub(crate) fn limits(ctx: &KeyCtx) -> Limits {
    let hot = &ctx.server.hot;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    Limits {
        entries: hot.zset_max_listpack_entries.load(relaxed) as usize,
        value: hot.zset_max_listpack_value.load(relaxed) as usize,
    }
}

/// Adds a new member, converting from listpack first when Redis would.
fn add_new(z: &mut ZSetValue, member: &[u8], score: f64, lim: Limits) {
    if z.is_listpack() && (z.len() + 1 > lim.entries || member.len() > lim.value) {
        z.make_skiplist();
    }
    z.insert(member, score);
}

/// Stores a freshly built sorted set as Redis's zsetConvertToListpackIfNeeded leaves it.
pub(crate) fn store_result(
    ctx: &mut KeyCtx,
    dst: &[u8],
    mut z: ZSetValue,
    lim: Limits,
    event: &'static str,
) -> Reply {
    let n = z.len();
    if n == 0 {
        delete_empty_result(ctx, dst);
        return Reply::Int(0);
    }
    let maxlen = z.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    if n <= lim.entries && maxlen <= lim.value {
        z.make_listpack();
    }
    ctx.store(dst, Value::ZSet(Box::new(z)), 0);
    ctx.notify(notify::ZSET, event, dst);
    Reply::Int(n as i64)
}

fn pairs(items: impl Iterator<Item = (Bytes, f64)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE.

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

fn zadd_generic(ctx: &mut KeyCtx, args: &[Bytes], mut f: AddFlags) -> Reply {
    let mut j = 2;
    while j < args.len() {
        let a = &args[j];
        match () {
            _ if eq_ignore_case(a, "nx") => f.nx = true,
            _ if eq_ignore_case(a, "xx") => f.xx = true,
            _ if eq_ignore_case(a, "ch") => f.ch = true,
            _ if eq_ignore_case(a, "incr") => f.incr = true,
            _ if eq_ignore_case(a, "gt") => f.gt = true,
            _ if eq_ignore_case(a, "lt") => f.lt = true,
            _ => break,
        }
        j += 1;
    }
    let elements = args.len() - j;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Reply::err(SYNTAX);
    }
    if f.incr && elements > 2 {
        return Reply::err("ERR INCR option supports a single increment-element pair");
    }
    if f.nx && f.xx {
        return Reply::err("ERR XX and NX options at the same time are not compatible");
    }
    if ((f.gt || f.lt) && f.nx) || (f.gt && f.lt) {
        return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    let mut scores = Vec::with_capacity(elements / 2);
    for pair in args[j..].chunks(2) {
        match score_arg(&pair[0], NOT_FLOAT) {
            Ok(s) => scores.push(s),
            Err(e) => return e,
        }
    }
    let key = &args[1];
    let lim = limits(ctx);
    let clock = ctx.clock;
    let reply_none = |f: &AddFlags| {
        if f.incr {
            Reply::Nil
        } else {
            Reply::Int(0)
        }
    };
    match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(Some(_)) => {}
        Ok(None) => {
            if f.xx {
                return reply_none(&f);
            }
            ctx.db(key)
                .set(key, Value::ZSet(Box::new(ZSetValue::new(true))), 0, clock);
        }
    }
    let z = write_zset(ctx, key)
        .ok()
        .flatten()
        .expect("sorted set exists here");
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last_score = 0.0;
    for (pair, &score) in args[j..].chunks(2).zip(&scores) {
        let member = &pair[1];
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                let new = if f.incr {
                    let n = cur + score;
                    if n.is_nan() {
                        return Reply::err(NAN_SCORE);
                    }
                    n
                } else {
                    score
                };
                if (f.lt && new >= cur) || (f.gt && new <= cur) {
                    continue;
                }
                last_score = new;
                processed += 1;
                // Redis compares with ==, so 0 and -0 count as the same score.
                if new != cur {
                    z.insert(member, new);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                add_new(z, member, score, lim);
                last_score = score;
                added += 1;
                processed += 1;
            }
        }
    }
    if added > 0 || updated > 0 {
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if f.incr {
        if processed > 0 {
            Reply::Double(last_score)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int(if f.ch { added + updated } else { added })
    }
}

pub fn zadd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zadd_generic(ctx, args, AddFlags::default())
}

pub fn zincrby(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    // ZINCRBY key increment member is ZADD key INCR increment member.
    let rewritten = [
        args[0].clone(),
        args[1].clone(),
        args[2].clone(),
        args[3].clone(),
    ];
    zadd_generic(
        ctx,
        &rewritten,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
    )
}

pub fn zrem(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let z = match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => z,
    };
    let mut removed = 0;
    for m in &args[2..] {
        if z.remove(m).is_some() {
            removed += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    if removed > 0 {
        removed_from(ctx, key, "zrem");
    }
    Reply::Int(removed)
}

pub fn zcard(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len() as i64)),
    }
}

pub fn zscore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.score(&args[2]))
            .map_or(Reply::Nil, Reply::Double),
    }
}

pub fn zmscore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Array(
            args[2..]
                .iter()
                .map(|m| {
                    z.as_ref()
                        .and_then(|z| z.score(m))
                        .map_or(Reply::Nil, Reply::Double)
                })
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// ZRANGE and its legacy forms, ZRANGESTORE.

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

enum Spec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The entries a range selects, in reply order.
fn select(z: &ZSetValue, spec: &Spec, reverse: bool, offset: i64, limit: i64) -> Vec<(Bytes, f64)> {
    let (start, end) = match spec {
        Spec::Rank(s, e) => {
            let Some((start, end)) = rank_span(*s, *e, z.len()) else {
                return Vec::new();
            };
            return if reverse {
                let len = z.len();
                z.iter_rev_from(len - 1 - start)
                    .owned()
                    .take(end - start)
                    .collect()
            } else {
                z.iter_from(start).owned().take(end - start).collect()
            };
        }
        Spec::Score(r) => r.span(z),
        Spec::Lex(r) => r.span(z),
    };
    // A negative offset skips everything; a negative limit means no limit.
    if offset < 0 || (offset > 0 && offset as u64 >= z.len() as u64) {
        return Vec::new();
    }
    let n = end - start;
    let offset = offset as usize;
    if offset >= n {
        return Vec::new();
    }
    let take = if limit < 0 {
        n - offset
    } else {
        (limit as u64).min((n - offset) as u64) as usize
    };
    if reverse {
        z.iter_rev_from(end - 1 - offset)
            .owned()
            .take(take)
            .collect()
    } else {
        z.iter_from(start + offset).owned().take(take).collect()
    }
}

/// zrangeGenericCommand: `first` is the index of the source key (the destination, for
/// ZRANGESTORE, is just before it).
fn zrange_generic(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    first: usize,
    mut rangetype: RangeType,
    mut direction: Direction,
    store: bool,
) -> Reply {
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = first + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && eq_ignore_case(a, "withscores") {
            withscores = true;
        } else if eq_ignore_case(a, "limit") && left >= 2 {
            match (int_arg(&args[j + 1]), int_arg(&args[j + 2])) {
                (Ok(o), Ok(l)) => {
                    offset = o;
                    limit = l;
                }
                (Err(e), _) | (_, Err(e)) => return e,
            }
            j += 2;
        } else if direction == Direction::Auto && eq_ignore_case(a, "rev") {
            direction = Direction::Reverse;
        } else if rangetype == RangeType::Auto && eq_ignore_case(a, "bylex") {
            rangetype = RangeType::Lex;
        } else if rangetype == RangeType::Auto && eq_ignore_case(a, "byscore") {
            rangetype = RangeType::Score;
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    if direction == Direction::Auto {
        direction = Direction::Forward;
    }
    if rangetype == RangeType::Auto {
        rangetype = RangeType::Rank;
    }
    if limit != -1 && rangetype == RangeType::Rank {
        return Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && rangetype == RangeType::Lex {
        return Reply::err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let reverse = direction == Direction::Reverse;
    let (mut minidx, mut maxidx) = (first + 1, first + 2);
    if reverse && rangetype != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let spec = match rangetype {
        RangeType::Score => match ScoreRange::parse(&args[minidx], &args[maxidx]) {
            Ok(r) => Spec::Score(r),
            Err(e) => return e,
        },
        RangeType::Lex => match LexRange::parse(&args[minidx], &args[maxidx]) {
            Ok(r) => Spec::Lex(r),
            Err(e) => return e,
        },
        _ => match (int_arg(&args[minidx]), int_arg(&args[maxidx])) {
            (Ok(s), Ok(e)) => Spec::Rank(s, e),
            (Err(e), _) | (_, Err(e)) => return e,
        },
    };
    let key = &args[first];
    if store {
        let lim = limits(ctx);
        // Redis adds to the destination in reply order, converting from listpack when a limit
        // is crossed (a -0 added to a listpack reads back as 0).
        let result = match read_zset(ctx, key) {
            Err(e) => return e,
            Ok(None) => ZSetValue::new(true),
            Ok(Some(z)) => {
                let picked = select(z, &spec, reverse, offset, limit);
                // A rank range's length is known up front: past the limit it starts as a
                // skiplist. Score and lex ranges always start as a listpack.
                let start_listpack = !matches!(spec, Spec::Rank(..)) || picked.len() <= lim.entries;
                let mut out = ZSetValue::new(start_listpack);
                for (m, s) in picked {
                    add_new(&mut out, &m, s, lim);
                }
                out
            }
        };
        let dst = &args[1];
        if result.is_empty() {
            delete_empty_result(ctx, dst);
            return Reply::Int(0);
        }
        let n = result.len() as i64;
        ctx.store(dst, Value::ZSet(Box::new(result)), 0);
        ctx.notify(notify::ZSET, "zrangestore", dst);
        return Reply::Int(n);
    }
    match read_zset(ctx, key) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(z)) => pairs(
            select(z, &spec, reverse, offset, limit).into_iter(),
            withscores,
        ),
    }
}

pub fn zrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Auto, Direction::Auto, false)
}

pub fn zrangestore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 2, RangeType::Auto, Direction::Auto, true)
}

pub fn zrevrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Rank, Direction::Reverse, false)
}

pub fn zrangebyscore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Score, Direction::Forward, false)
}

pub fn zrevrangebyscore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Score, Direction::Reverse, false)
}

pub fn zrangebylex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Lex, Direction::Forward, false)
}

pub fn zrevrangebylex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, RangeType::Lex, Direction::Reverse, false)
}

// ---------------------------------------------------------------------------------------------
// Counting, ranks.

pub fn zcount(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let range = match ScoreRange::parse(&args[2], &args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => {
            let (s, e) = range.span(z);
            Reply::Int((e - s) as i64)
        }
    }
}

pub fn zlexcount(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let range = match LexRange::parse(&args[2], &args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => {
            let (s, e) = range.span(z);
            Reply::Int((e - s) as i64)
        }
    }
}

fn rank_generic(ctx: &mut KeyCtx, args: &[Bytes], reverse: bool) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Nil,
        Ok(Some(z)) => match z.rank(&args[2]) {
            None => Reply::Nil,
            Some(r) => Reply::Int(if reverse { z.len() - 1 - r } else { r } as i64),
        },
    }
}

pub fn zrank(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    rank_generic(ctx, args, false)
}

pub fn zrevrank(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    rank_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// Pops.

/// Pops up to `count` entries from the sorted set at `key` (which must exist).
fn pop_n(ctx: &mut KeyCtx, key: &[u8], max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let mut out = Vec::new();
    if let Ok(Some(z)) = write_zset(ctx, key) {
        while out.len() < count {
            match z.pop(max) {
                Some(e) => out.push(e),
                None => break,
            }
        }
    }
    if !out.is_empty() {
        removed_from(ctx, key, if max { "zpopmax" } else { "zpopmin" });
    }
    out
}

fn zpop_generic(ctx: &mut KeyCtx, args: &[Bytes], max: bool) -> Reply {
    if args.len() > 3 {
        return Reply::err(SYNTAX);
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match int_arg(a) {
            Ok(c) if c < 0 => {
                return Reply::err("ERR value is out of range, must be positive");
            }
            Ok(c) => Some(c as usize),
            Err(_) => return Reply::err("ERR value is out of range, must be positive"),
        },
    };
    let key = &args[1];
    match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(_)) => {}
    }
    if count == Some(0) {
        return Reply::Array(Vec::new());
    }
    let popped = pop_n(ctx, key, max, count.unwrap_or(1));
    match count {
        None => Reply::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
        Some(_) => Reply::Pairs(
            popped
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        ),
    }
}

pub fn zpopmin(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zpop_generic(ctx, args, false)
}

pub fn zpopmax(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zpop_generic(ctx, args, true)
}

/// ZMPOP's and BZMPOP's arguments after the keys: which end, and how many.
pub struct ZmpopArgs {
    keys: std::ops::Range<usize>,
    max: bool,
    count: usize,
}

/// Parses `numkeys key [key ...] MIN|MAX [COUNT count]` starting at `numkeys_idx`.
pub fn parse_zmpop(args: &[Bytes], numkeys_idx: usize) -> Result<ZmpopArgs, Reply> {
    let numkeys = int_arg(&args[numkeys_idx]).unwrap_or(0);
    if numkeys <= 0 {
        return Err(Reply::err("ERR numkeys should be greater than 0"));
    }
    let where_at = numkeys_idx as u64 + 1 + numkeys as u64;
    if where_at >= args.len() as u64 {
        return Err(Reply::err(SYNTAX));
    }
    let where_at = where_at as usize;
    let max = if eq_ignore_case(&args[where_at], "min") {
        false
    } else if eq_ignore_case(&args[where_at], "max") {
        true
    } else {
        return Err(Reply::err(SYNTAX));
    };
    let mut count: Option<i64> = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && eq_ignore_case(&args[j], "count") && j + 1 < args.len() {
            match int_arg(&args[j + 1]) {
                Ok(c) if c > 0 => count = Some(c),
                _ => return Err(Reply::err("ERR count should be greater than 0")),
            }
            j += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(ZmpopArgs {
        keys: numkeys_idx + 1..where_at,
        max,
        count: count.unwrap_or(1) as usize,
    })
}

/// Pops from the first non-empty sorted set of the parsed keys; a null array when none has any.
/// ZMPOP's work; a woken BZMPOP's try passes over keys of another type.
pub fn zmpop_parsed(ctx: &mut KeyCtx, args: &[Bytes], parsed: &ZmpopArgs) -> Reply {
    let retry = ctx.blocked_retry;
    for key in &args[parsed.keys.clone()] {
        match write_zset(ctx, key) {
            Err(_) if retry => continue,
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(z)) if z.is_empty() => continue,
            Ok(Some(_)) => {}
        }
        let popped = pop_n(ctx, key, parsed.max, parsed.count);
        return Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(
                popped
                    .into_iter()
                    .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                    .collect(),
            ),
        ]);
    }
    Reply::NilArray
}

/// ZMPOP and BZMPOP as Redis propagates them: `ZPOPMIN|ZPOPMAX key <how many it popped>`.
/// `numkeys_idx`: where numkeys is (1 for ZMPOP, 2 for BZMPOP).
pub fn zmpop_effects(args: &[Bytes], reply: &Reply, numkeys_idx: usize) -> Vec<Vec<Bytes>> {
    let Ok(parsed) = parse_zmpop(args, numkeys_idx) else {
        return Vec::new();
    };
    let pop: &'static [u8] = if parsed.max { b"ZPOPMAX" } else { b"ZPOPMIN" };
    super::util::pop_with_count(pop, reply)
}

fn zmpop_effects_of_zmpop(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    zmpop_effects(args, reply, 1)
}

pub fn zmpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match parse_zmpop(args, 1) {
        Ok(parsed) => zmpop_parsed(ctx, args, &parsed),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// ZREMRANGEBY*.

fn zremrange_generic(ctx: &mut KeyCtx, args: &[Bytes], kind: RangeType) -> Reply {
    let spec = match kind {
        RangeType::Score => match ScoreRange::parse(&args[2], &args[3]) {
            Ok(r) => Spec::Score(r),
            Err(e) => return e,
        },
        RangeType::Lex => match LexRange::parse(&args[2], &args[3]) {
            Ok(r) => Spec::Lex(r),
            Err(e) => return e,
        },
        _ => match (int_arg(&args[2]), int_arg(&args[3])) {
            (Ok(s), Ok(e)) => Spec::Rank(s, e),
            (Err(e), _) | (_, Err(e)) => return e,
        },
    };
    let key = &args[1];
    let z = match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => z,
    };
    let (start, end) = match &spec {
        Spec::Rank(s, e) => rank_span(*s, *e, z.len()).unwrap_or((0, 0)),
        Spec::Score(r) => r.span(z),
        Spec::Lex(r) => r.span(z),
    };
    let removed = z.remove_range(start, end);
    if removed > 0 {
        let event = match kind {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        removed_from(ctx, key, event);
    }
    Reply::Int(removed as i64)
}

pub fn zremrangebyrank(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RangeType::Rank)
}

pub fn zremrangebyscore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RangeType::Score)
}

pub fn zremrangebylex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RangeType::Lex)
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN.

/// A generator seeded per call from the hasher's random keys.
fn rng() -> Rng {
    Rng::new(ahash::RandomState::new().hash_one(std::time::SystemTime::now()))
}

pub fn zrandmember(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len() == 2 {
        return match read_zset(ctx, &args[1]) {
            Err(e) => e,
            Ok(None) => Reply::Nil,
            Ok(Some(z)) => {
                let i = rng().below(z.len() as u64) as usize;
                Reply::bulk(z.get(i).expect("index below len").0)
            }
        };
    }
    let count = match int_arg(&args[2]) {
        Ok(c) if c == i64::MIN => {
            return Reply::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Ok(c) => c,
        Err(e) => return e,
    };
    let withscores = match args.len() {
        3 => false,
        4 if eq_ignore_case(&args[3], "withscores") => {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
                return Reply::err("ERR value is out of range");
            }
            true
        }
        _ => return Reply::err(SYNTAX),
    };
    let server = ctx.server;
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(z)) => z,
    };
    if count == 0 {
        return Reply::Array(Vec::new());
    }
    let mut rng = rng();
    let len = z.len();
    let picked: Vec<(Bytes, f64)> = if count < 0 {
        let sampled =
            match super::util::sampled_count(server, count.unsigned_abs(), 1 + withscores as u64) {
                Ok(n) => n,
                Err(e) => return e,
            };
        (0..sampled)
            .map(|_| {
                z.get(rng.below(len as u64) as usize)
                    .expect("index below len")
            })
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect()
    } else if count as u64 >= len as u64 {
        z.iter().owned().collect()
    } else {
        let n = count as usize;
        let positions: Vec<usize> = if n * 3 > len {
            // Partial Fisher-Yates over positions: `n` distinct entries in random order.
            let mut idx: Vec<usize> = (0..len).collect();
            for i in 0..n {
                let j = i + rng.below((len - i) as u64) as usize;
                idx.swap(i, j);
            }
            idx.truncate(n);
            idx
        } else {
            // Few of many: draw positions until `n` distinct ones came up.
            let mut seen = std::collections::HashSet::with_capacity(n);
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let i = rng.below(len as u64) as usize;
                if seen.insert(i) {
                    out.push(i);
                }
            }
            out
        };
        positions
            .into_iter()
            .map(|i| z.get(i).expect("index below len"))
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect()
    };
    pairs(picked.into_iter(), withscores)
}

pub fn zscan(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let Some(cursor) = parse_cursor(&args[2]) else {
        return Reply::err("ERR invalid cursor");
    };
    // The key is looked up before the options are checked, as in Redis.
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(Vec::new())]);
        }
        Ok(Some(z)) => z,
    };
    let ScanOptions { count, pattern, .. } = match scan_options(args, 3, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let matches = |m: &[u8]| pattern.is_none_or(|p| glob_match(p, m, false));
    let mut out = Vec::new();
    let mut push = |m: Bytes, s: f64| {
        if matches(&m) {
            out.push(Reply::Bulk(m));
            out.push(Reply::Bulk(Bytes::from(format_double(s))));
        }
    };
    let next = if z.is_listpack() {
        // A listpack is returned whole, in order, as Redis does.
        for (m, s) in z.iter().owned() {
            push(m, s);
        }
        0
    } else {
        // Walk down by position: deleting visited members never hides unvisited ones.
        let len = z.len() as u64;
        let pos = if cursor == 0 || cursor > len {
            len
        } else {
            cursor
        } as usize;
        let take = count.min(pos);
        if pos > 0 {
            for (m, s) in z.iter_rev_from(pos - 1).owned().take(take) {
                push(m, s);
            }
        }
        pos - take
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ])
}

// ---------------------------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD.

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// The size of an input: a sorted set, a plain set, or nothing.
fn source_len(ctx: &mut KeyCtx, key: &[u8]) -> usize {
    let now = ctx.now_ms;
    match ctx.db(key).get(key, now).map(|e| &e.value) {
        Some(Value::ZSet(z)) => z.len(),
        Some(Value::Set(s)) => s.len(),
        _ => 0,
    }
}

/// An input's entries; a plain set's members all score 1.
fn source_entries(ctx: &mut KeyCtx, key: &[u8]) -> Vec<(Bytes, f64)> {
    let now = ctx.now_ms;
    match ctx.db(key).get(key, now).map(|e| &e.value) {
        Some(Value::ZSet(z)) => z.iter().owned().collect(),
        Some(Value::Set(s)) => s
            .members
            .iter()
            .map(|m| (Bytes::copy_from_slice(m.as_bytes()), 1.0))
            .collect(),
        _ => Vec::new(),
    }
}

/// Keeps the candidates present in the input at `key`, passing each one's score there.
fn source_filter(
    ctx: &mut KeyCtx,
    key: &[u8],
    candidates: &mut Vec<(Bytes, f64)>,
    mut keep: impl FnMut(&mut f64, Option<f64>) -> bool,
) {
    let now = ctx.now_ms;
    let value = ctx.db(key).get(key, now).map(|e| &e.value);
    candidates.retain_mut(|(m, score)| {
        let found = match value {
            Some(Value::ZSet(z)) => z.score(m),
            Some(Value::Set(s)) => s.members.contains(&m[..]).then_some(1.0),
            _ => None,
        };
        keep(score, found)
    });
}

fn aggregate(agg: Aggregate, target: &mut f64, val: f64) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// What a set operation parsed and computed.
enum SetOpOutcome {
    Done(ZSetValue, bool),
    Card(usize),
}

/// zunionInterDiffGenericCommand. `numkeys_at` indexes numkeys; `name` is for error texts.
fn set_op(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    numkeys_at: usize,
    op: SetOp,
    store: bool,
    card_only: bool,
    name: &str,
) -> Result<SetOpOutcome, Reply> {
    let setnum = int_arg(&args[numkeys_at])?;
    if setnum < 1 {
        return Err(Reply::err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (args.len() - numkeys_at - 1) as u64 {
        return Err(Reply::err(SYNTAX));
    }
    let setnum = setnum as usize;
    let keys = &args[numkeys_at + 1..numkeys_at + 1 + setnum];
    // Type checks come before any option is parsed, as in Redis; the STORE forms read their
    // inputs too (hits, misses and `keymiss` as Redis 7.0 counts them).
    for key in keys {
        let found = ctx.read(key);
        if let Some(e) = found {
            if !matches!(e.value, Value::ZSet(_) | Value::Set(_)) {
                return Err(Reply::err(WRONGTYPE));
            }
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = numkeys_at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ignore_case(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = score_arg(&args[j], "ERR weight value is not a float")?;
                j += 1;
            }
        } else if op != SetOp::Diff
            && !card_only
            && remaining >= 2
            && eq_ignore_case(a, "aggregate")
        {
            let v = &args[j + 1];
            agg = if eq_ignore_case(v, "sum") {
                Aggregate::Sum
            } else if eq_ignore_case(v, "min") {
                Aggregate::Min
            } else if eq_ignore_case(v, "max") {
                Aggregate::Max
            } else {
                return Err(Reply::err(SYNTAX));
            };
            j += 2;
        } else if !store && !card_only && eq_ignore_case(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ignore_case(a, "limit") {
            match int_arg(&args[j + 1]) {
                Ok(l) if l >= 0 => limit = l as usize,
                _ => return Err(Reply::err("ERR LIMIT can't be negative")),
            }
            j += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }

    let weighted = |w: f64, v: f64| {
        let v = w * v;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    // Inputs from the smallest to the largest (Redis's order, which sums follow), except
    // that a difference keeps its first input first.
    let mut order: Vec<usize> = (0..setnum).collect();
    if op != SetOp::Diff {
        let lens: Vec<usize> = keys.iter().map(|k| source_len(ctx, k)).collect();
        order.sort_by_key(|&i| lens[i]);
    }
    let entries = match op {
        SetOp::Inter => {
            let first = order[0];
            let mut cands: Vec<(Bytes, f64)> = source_entries(ctx, &keys[first])
                .into_iter()
                .map(|(m, s)| (m, weighted(weights[first], s)))
                .collect();
            for &i in &order[1..] {
                if cands.is_empty() {
                    break;
                }
                source_filter(ctx, &keys[i], &mut cands, |score, found| match found {
                    None => false,
                    Some(v) => {
                        aggregate(agg, score, weighted(weights[i], v));
                        true
                    }
                });
            }
            if card_only {
                let n = cands.len();
                return Ok(SetOpOutcome::Card(if limit != 0 {
                    n.min(limit)
                } else {
                    n
                }));
            }
            cands
        }
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Bytes, f64, ahash::RandomState> =
                Default::default();
            for &i in &order {
                for (m, s) in source_entries(ctx, &keys[i]) {
                    let v = weighted(weights[i], s);
                    match acc.entry(m) {
                        std::collections::hash_map::Entry::Occupied(mut e) => {
                            aggregate(agg, e.get_mut(), v)
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(v);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
        SetOp::Diff => {
            let mut cands = source_entries(ctx, &keys[0]);
            for key in &keys[1..] {
                if cands.is_empty() {
                    break;
                }
                source_filter(ctx, key, &mut cands, |_, found| found.is_none());
            }
            cands
        }
    };
    let out = ZSetValue::from_entries(entries, false);
    Ok(SetOpOutcome::Done(out, withscores))
}

fn set_op_reply(ctx: &mut KeyCtx, args: &[Bytes], op: SetOp, name: &str) -> Reply {
    match set_op(ctx, args, 1, op, false, false, name) {
        Err(e) => e,
        Ok(SetOpOutcome::Card(n)) => Reply::Int(n as i64),
        Ok(SetOpOutcome::Done(z, withscores)) => pairs(z.iter().owned(), withscores),
    }
}

fn set_op_store(ctx: &mut KeyCtx, args: &[Bytes], op: SetOp, name: &str) -> Reply {
    let lim = limits(ctx);
    match set_op(ctx, args, 2, op, true, false, name) {
        Err(e) => e,
        Ok(SetOpOutcome::Card(n)) => Reply::Int(n as i64),
        Ok(SetOpOutcome::Done(z, _)) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_result(ctx, &args[1], z, lim, event)
        }
    }
}

pub fn zunion(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, args, SetOp::Union, "zunion")
}

pub fn zinter(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, args, SetOp::Inter, "zinter")
}

pub fn zdiff(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, args, SetOp::Diff, "zdiff")
}

pub fn zunionstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Union, "zunionstore")
}

pub fn zinterstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Inter, "zinterstore")
}

pub fn zdiffstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Diff, "zdiffstore")
}

pub fn zintercard(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match set_op(ctx, args, 1, SetOp::Inter, false, true, "zintercard") {
        Err(e) => e,
        Ok(SetOpOutcome::Card(n)) => Reply::Int(n as i64),
        Ok(SetOpOutcome::Done(z, _)) => Reply::Int(z.len() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_like_strtod_with_redis_checks() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x1.8p1"), Some(3.0));
        assert_eq!(parse_score(b"-0X1A"), Some(-26.0));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"5."), Some(5.0));
        assert!(parse_score(b"1e-310").is_some());
        for bad in [
            &b"nan"[..],
            b"",
            b" 1",
            b"1 ",
            b"1e400",
            b"1e-400",
            b"0x",
            b"0x1p",
            b"0x1p5000",
            b"1_0",
            b"5e",
            b"--1",
        ] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn range_bounds_follow_zsl_parse_range() {
        assert_eq!(parse_score_bound(b"(1"), Some((1.0, true)));
        assert_eq!(parse_score_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(parse_score_bound(b"nan"), None);
        assert_eq!(parse_score_bound(b"((1"), None);
        assert!(LexBound::parse(&Bytes::from_static(b"x")).is_none());
        assert!(matches!(
            LexBound::parse(&Bytes::from_static(b"(")),
            Some(LexBound::Excl(b)) if b.is_empty()
        ));
    }

    #[test]
    fn rank_spans_are_sanitised_like_redis() {
        assert_eq!(rank_span(0, -1, 5), Some((0, 5)));
        assert_eq!(rank_span(-100, 100, 5), Some((0, 5)));
        assert_eq!(rank_span(3, 1, 5), None);
        assert_eq!(rank_span(5, 10, 5), None);
        assert_eq!(rank_span(i64::MIN, -1, 5), Some((0, 5)));
    }

    #[test]
    fn numkeys_forms_find_their_keys() {
        let args: Vec<Bytes> = ["zunionstore", "d", "2", "a", "b", "weights", "1", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(dest_then_numkeys(&args), vec![1, 3, 4]);
        assert_eq!(numkeys_at_1(&args[1..]), vec![2, 3]);
        let bad: Vec<Bytes> = ["zunion", "9", "a"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert!(numkeys_at_1(&bad).is_empty());
    }
}
