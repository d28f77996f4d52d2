//! String commands: GET, SET and friends, counters, ranges, LCS.

use bytes::Bytes;
use warpengine_storage::longdouble::LongDouble;
use warpengine_storage::notify;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{Entry, StrValue, Value};

use super::util::{eq_ignore_case, int_arg, NOT_FLOAT, NOT_INTEGER, SYNTAX};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::OK;
use crate::protocol::Reply;

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

fn max_string(ctx: &KeyCtx) -> u64 {
    ctx.server
        .hot
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

pub fn get(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match ctx.read_str(&args[1]) {
        Ok(Some(s)) => Reply::Bulk(s.to_bytes()),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ExpireOpt {
    None,
    KeepTtl,
    Persist,
    /// Absolute Unix milliseconds.
    At(u64),
}

#[derive(Default)]
struct SetFlags {
    nx: bool,
    xx: bool,
    get: bool,
}

/// Parses SET/GETEX options the way Redis's `parseExtendedStringArgumentsOrReply` does,
/// including which combinations are a syntax error.
#[derive(PartialEq, Clone, Copy)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Options as parsed, before the expire time itself is checked (GETEX checks it only once
/// the key is found, SET at once).
struct SetOptions<'a> {
    flags: SetFlags,
    unit: Option<(Unit, &'a Bytes)>,
    keepttl: bool,
    persist: bool,
}

fn parse_set_options(args: &[Bytes], from: usize, is_set: bool) -> Result<SetOptions<'_>, Reply> {
    let mut flags = SetFlags::default();
    let mut keepttl = false;
    let mut persist = false;
    let mut unit: Option<(Unit, &Bytes)> = None;
    let mut j = from;
    while j < args.len() {
        let opt = &args[j];
        let has_next = j + 1 < args.len();
        let timed = |u: Unit| unit.is_some_and(|(x, _)| x != u);
        if is_set && eq_ignore_case(opt, "nx") && !flags.xx {
            flags.nx = true;
        } else if is_set && eq_ignore_case(opt, "xx") && !flags.nx {
            flags.xx = true;
        } else if is_set && eq_ignore_case(opt, "get") {
            flags.get = true;
        } else if is_set && eq_ignore_case(opt, "keepttl") && !persist && unit.is_none() {
            keepttl = true;
        } else if is_set
            && eq_ignore_case(opt, "durability")
            && args
                .get(j + 1)
                .is_some_and(|v| crate::durability::parse(v).is_some())
        {
            // Read by the dispatcher (crate::durability): how long the reply waits.
            j += 1;
        } else if !is_set && eq_ignore_case(opt, "persist") && unit.is_none() && !keepttl {
            persist = true;
        } else if let Some(u) = [
            ("ex", Unit::Ex),
            ("px", Unit::Px),
            ("exat", Unit::ExAt),
            ("pxat", Unit::PxAt),
        ]
        .iter()
        .find(|(name, _)| eq_ignore_case(opt, name))
        .map(|(_, u)| *u)
        .filter(|u| !keepttl && !persist && !timed(*u) && has_next)
        {
            unit = Some((u, &args[j + 1]));
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(SetOptions {
        flags,
        unit,
        keepttl,
        persist,
    })
}

/// Validates the expire time and makes it absolute, with Redis's error texts.
fn resolve_expire(opts: &SetOptions, command: &str, now_ms: u64) -> Result<ExpireOpt, Reply> {
    let expire = if let Some((u, raw)) = opts.unit {
        let invalid = || Reply::err(format!("ERR invalid expire time in '{command}' command"));
        let v = int_arg(raw)?;
        let seconds = matches!(u, Unit::Ex | Unit::ExAt);
        if v <= 0 || (seconds && v > i64::MAX / 1000) {
            return Err(invalid());
        }
        let mut ms = if seconds { v * 1000 } else { v };
        if matches!(u, Unit::Ex | Unit::Px) {
            if ms > i64::MAX - now_ms as i64 {
                return Err(invalid());
            }
            ms += now_ms as i64;
        }
        ExpireOpt::At(ms as u64)
    } else if opts.keepttl {
        ExpireOpt::KeepTtl
    } else if opts.persist {
        ExpireOpt::Persist
    } else {
        ExpireOpt::None
    };
    Ok(expire)
}

/// Stores a string, honouring KEEPTTL; raises `set` (and `expire` with one), as Redis's SET
/// family does. An expiry already past is stored as it is, as Redis 7.0 stores it: the key is
/// there until expiry removes it (with its `expired` event).
/// Takes the value by reference: the request's buffer belongs to the connection's worker, and
/// touching its reference count from the owning shard's worker would bounce a cache line.
fn store(ctx: &mut KeyCtx, key: &[u8], value: &[u8], expire: ExpireOpt) {
    let now = ctx.now_ms;
    let expire_at = match expire {
        ExpireOpt::KeepTtl => ctx
            .db(key)
            .get_with_expiry(key, now)
            .map_or(0, |(_, at)| at),
        ExpireOpt::At(at) => at,
        ExpireOpt::None | ExpireOpt::Persist => 0,
    };
    ctx.set_string(key, value, expire_at);
    ctx.notify(notify::STRING, "set", key);
    if let ExpireOpt::At(_) = expire {
        ctx.notify(notify::GENERIC, "expire", key);
    }
}

pub fn set(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (flags, expire) = match parse_set_options(args, 3, true)
        .and_then(|o| Ok((resolve_expire(&o, "set", ctx.now_ms)?, o.flags)))
    {
        Ok((expire, flags)) => (flags, expire),
        Err(e) => return e,
    };
    let key = &args[1];
    let old = if flags.get {
        match ctx.read_str(key) {
            Ok(v) => Some(v.map(StrValue::to_bytes)),
            Err(e) => return e,
        }
    } else {
        None
    };
    // Existence only matters for NX/XX; a plain SET goes straight to one insert.
    let found = match &old {
        Some(v) => v.is_some(),
        None => (flags.nx || flags.xx) && ctx.exists(key),
    };
    if (flags.nx && found) || (flags.xx && !found) {
        return match old {
            Some(v) => v.map_or(Reply::Nil, Reply::Bulk),
            None => Reply::Nil,
        };
    }
    store(ctx, key, &args[2], expire);
    match old {
        Some(v) => v.map_or(Reply::Nil, Reply::Bulk),
        None => OK,
    }
}

pub fn setnx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if ctx.exists(&args[1]) {
        return Reply::Int(0);
    }
    store(ctx, &args[1], &args[2], ExpireOpt::None);
    Reply::Int(1)
}

fn set_with_ttl(ctx: &mut KeyCtx, args: &[Bytes], name: &str, unit_ms: i64) -> Reply {
    let ttl = match int_arg(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let invalid = || Reply::err(format!("ERR invalid expire time in '{name}' command"));
    if ttl <= 0 || ttl > i64::MAX / unit_ms {
        return invalid();
    }
    let ms = ttl * unit_ms;
    if ms > i64::MAX - ctx.now_ms as i64 {
        return invalid();
    }
    let at = ctx.now_ms + ms as u64;
    store(ctx, &args[1], &args[3], ExpireOpt::At(at));
    OK
}

pub fn setex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_with_ttl(ctx, args, "setex", 1000)
}

pub fn psetex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    set_with_ttl(ctx, args, "psetex", 1)
}

pub fn getset(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let old = match ctx.read_str(&args[1]) {
        Ok(v) => v.map(StrValue::to_bytes),
        Err(e) => return e,
    };
    store(ctx, &args[1], &args[2], ExpireOpt::None);
    old.map_or(Reply::Nil, Reply::Bulk)
}

pub fn getdel(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let old = match ctx.read_str(&args[1]) {
        Ok(v) => v.map(StrValue::to_bytes),
        Err(e) => return e,
    };
    if old.is_some() {
        ctx.remove(&args[1]);
        ctx.notify(notify::GENERIC, "del", &args[1]);
    }
    old.map_or(Reply::Nil, Reply::Bulk)
}

pub fn getex(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let opts = match parse_set_options(args, 2, false) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let key = &args[1];
    let value = match ctx.read_str(key) {
        Ok(Some(v)) => v.to_bytes(),
        Ok(None) => return Reply::Nil,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let expire = match resolve_expire(&opts, "getex", now) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match expire {
        ExpireOpt::At(at) if at <= now => {
            ctx.db(key).remove(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ExpireOpt::At(at) => {
            ctx.db(key).set_expire(key, at);
            ctx.notify(notify::GENERIC, "expire", key);
        }
        ExpireOpt::Persist => {
            let db = ctx.db(key);
            if db.expire_at(key) != 0 {
                db.set_expire(key, 0);
                ctx.notify(notify::GENERIC, "persist", key);
            }
        }
        ExpireOpt::None | ExpireOpt::KeepTtl => {}
    }
    Reply::Bulk(value)
}

pub fn mget(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    Reply::Array(
        args[1..]
            .iter()
            .map(|k| match ctx.read_str(k) {
                Ok(Some(s)) => Reply::Bulk(s.to_bytes()),
                // MGET answers nil for keys of another type rather than failing.
                _ => Reply::Nil,
            })
            .collect(),
    )
}

pub fn mset(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return super::util::wrong_arity("mset");
    }
    for pair in args[1..].chunks(2) {
        store(ctx, &pair[0], &pair[1], ExpireOpt::None);
    }
    OK
}

pub fn msetnx(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return super::util::wrong_arity("msetnx");
    }
    if args[1..].chunks(2).any(|pair| ctx.exists(&pair[0])) {
        return Reply::Int(0);
    }
    for pair in args[1..].chunks(2) {
        store(ctx, &pair[0], &pair[1], ExpireOpt::None);
    }
    Reply::Int(1)
}

pub fn append(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let limit = max_string(ctx);
    let key = &args[1];
    match ctx.write(key) {
        None => {
            let len = args[2].len();
            ctx.set_string(key, &args[2], 0);
            ctx.notify(notify::STRING, "append", key);
            Reply::Int(len as i64)
        }
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => {
            if (s.len() + args[2].len()) as u64 > limit {
                return Reply::err(TOO_BIG);
            }
            let buf = s.make_owned();
            buf.extend_from_slice(&args[2]);
            let len = buf.len();
            ctx.notify(notify::STRING, "append", key);
            Reply::Int(len as i64)
        }
        #[allow(unreachable_patterns)]
        Some(_) => Reply::err(WRONGTYPE),
    }
}

pub fn strlen(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match ctx.read_str(&args[1]) {
        Ok(Some(s)) => Reply::Int(s.len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

/// INCR/DECR/INCRBY/DECRBY: the current value must be a strict integer; the TTL is kept.
fn add_to_integer(ctx: &mut KeyCtx, key: &[u8], delta: i64) -> Reply {
    let current = match ctx.write(key) {
        None => 0,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => match parse_strict_i64(&s.as_slice()) {
            Some(v) => v,
            None => return Reply::err(NOT_INTEGER),
        },
        #[allow(unreachable_patterns)]
        Some(_) => return Reply::err(WRONGTYPE),
    };
    let Some(new) = current.checked_add(delta) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    let mut digits = itoa::Buffer::new();
    let text = digits.format(new).as_bytes();
    match ctx.write(key) {
        Some(e) => e.value = Value::string(text),
        None => ctx.set_string(key, text, 0),
    }
    ctx.notify(notify::STRING, "incrby", key);
    Reply::Int(new)
}

pub fn incr(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    add_to_integer(ctx, &args[1], 1)
}

pub fn decr(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    add_to_integer(ctx, &args[1], -1)
}

pub fn incrby(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(d) => add_to_integer(ctx, &args[1], d),
        Err(e) => e,
    }
}

pub fn decrby(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(i64::MIN) => Reply::err("ERR decrement would overflow"),
        Ok(d) => add_to_integer(ctx, &args[1], -d),
        Err(e) => e,
    }
}

/// Parses a float as Redis's `string2ld` (x87 long double); `Err(negative)` is infinity.
fn long_double_arg(arg: &[u8]) -> Result<Result<LongDouble, bool>, Reply> {
    LongDouble::parse(arg).ok_or_else(|| Reply::err(NOT_FLOAT))
}

/// INCRBYFLOAT computes in x87 long double, as Redis does on x86-64, and stores the result
/// formatted with `%.17Lf` minus trailing zeros.
pub fn incrbyfloat(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let current = match ctx.write(key) {
        None => Ok(LongDouble {
            neg: false,
            mant: 0,
            exp: 0,
        }),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => match long_double_arg(&s.as_slice()) {
            Ok(v) => v,
            Err(e) => return e,
        },
        #[allow(unreachable_patterns)]
        Some(_) => return Reply::err(WRONGTYPE),
    };
    let incr = match long_double_arg(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let new = match (current, incr) {
        (Ok(a), Ok(b)) => a.checked_add(b),
        _ => None,
    };
    let Some(new) = new else {
        return Reply::err("ERR increment would produce NaN or Infinity");
    };
    let text = Bytes::from(new.to_human_string());
    match ctx.write(key) {
        // Stored as written, never int-encoded, as Redis stores it (OBJECT ENCODING: embstr).
        Some(e) => e.value = Value::Str(StrValue::verbatim(&text)),
        None => {
            let clock = ctx.clock;
            ctx.db(key)
                .set(key, Value::Str(StrValue::verbatim(&text)), 0, clock);
        }
    }
    ctx.notify(notify::STRING, "incrbyfloat", key);
    Reply::Bulk(text)
}

pub fn getrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (mut start, mut end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let value = match ctx.read_str(&args[1]) {
        Ok(Some(s)) => s.to_bytes(),
        Ok(None) => return Reply::Bulk(Bytes::new()),
        Err(e) => return e,
    };
    if start < 0 && end < 0 && start > end {
        return Reply::Bulk(Bytes::new());
    }
    let len = value.len() as i64;
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Reply::Bulk(Bytes::new());
    }
    Reply::Bulk(value.slice(start as usize..=end as usize))
}

pub fn setrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let offset = match int_arg(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if offset < 0 {
        return Reply::err("ERR offset is out of range");
    }
    let limit = max_string(ctx);
    let value = &args[3];
    let key = &args[1];
    let needed = offset as u64 + value.len() as u64;
    match ctx.write(key) {
        None => {
            if value.is_empty() {
                return Reply::Int(0);
            }
            if needed > limit {
                return Reply::err(TOO_BIG);
            }
            let mut buf = vec![0u8; needed as usize];
            buf[offset as usize..].copy_from_slice(value);
            let clock = ctx.clock;
            ctx.db(key)
                .set(key, Value::Str(StrValue::owned(buf)), 0, clock);
            ctx.notify(notify::STRING, "setrange", key);
            Reply::Int(needed as i64)
        }
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => {
            if value.is_empty() {
                return Reply::Int(s.len() as i64);
            }
            if needed > limit {
                return Reply::err(TOO_BIG);
            }
            let buf = s.make_owned();
            if buf.len() < needed as usize {
                buf.resize(needed as usize, 0);
            }
            buf[offset as usize..needed as usize].copy_from_slice(value);
            let len = buf.len();
            ctx.notify(notify::STRING, "setrange", key);
            Reply::Int(len as i64)
        }
        #[allow(unreachable_patterns)]
        Some(_) => Reply::err(WRONGTYPE),
    }
}

pub fn lcs(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let mut values = Vec::with_capacity(2);
    for key in &args[1..3] {
        match ctx.read_str(key) {
            Ok(v) => values.push(v.map(StrValue::to_bytes).unwrap_or_default()),
            Err(_) => return Reply::err("ERR The specified keys must contain string values"),
        }
    }
    let (mut get_len, mut get_idx, mut with_match_len, mut min_match_len) =
        (false, false, false, 0i64);
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = args.len() - 1 - j;
        if eq_ignore_case(opt, "idx") {
            get_idx = true;
        } else if eq_ignore_case(opt, "len") {
            get_len = true;
        } else if eq_ignore_case(opt, "withmatchlen") {
            with_match_len = true;
        } else if eq_ignore_case(opt, "minmatchlen") && more > 0 {
            min_match_len = match int_arg(&args[j + 1]) {
                Ok(v) => v.max(0),
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    if get_idx && get_len {
        return Reply::err("ERR If you want both the length and indexes, please just use IDX.");
    }
    let (a, b) = (&values[0][..], &values[1][..]);
    let (alen, blen) = (a.len(), b.len());
    if (alen as u64 + 1) * (blen as u64 + 1) * 4 > max_string(ctx) {
        return Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let width = blen + 1;
    let mut dp = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for jj in 1..=blen {
            dp[i * width + jj] = if a[i - 1] == b[jj - 1] {
                dp[(i - 1) * width + jj - 1] + 1
            } else {
                dp[(i - 1) * width + jj].max(dp[i * width + jj - 1])
            };
        }
    }
    let total = dp[alen * width + blen];
    if get_len {
        return Reply::Int(total as i64);
    }
    // Walk back from the end, as Redis does, collecting the common string and the ranges.
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut i, mut jj) = (alen, blen);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                a_start = i - 1;
                a_end = i - 1;
                b_start = jj - 1;
                b_end = jj - 1;
            } else if a_start == i && b_start == jj {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            if dp[(i - 1) * width + jj] > dp[i * width + jj - 1] {
                i -= 1;
            } else {
                jj -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        let match_len = a_end as i64 - a_start as i64 + 1;
        if emit {
            if get_idx && (min_match_len == 0 || match_len >= min_match_len) {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if with_match_len {
                    m.push(Reply::Int(match_len));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if get_idx {
        Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Int(total as i64)),
        ])
    } else {
        Reply::Bulk(Bytes::from(result))
    }
}

// What the log and the replication stream keep of some string writes: Redis's propagated forms.

/// SET changed nothing when NX or XX was not met: nil, without GET (whose nil may follow a set).
pub fn set_unchanged(args: &[Bytes], reply: &Reply) -> bool {
    matches!(reply, Reply::Nil) && !args[3..].iter().any(|a| eq_ignore_case(a, "get"))
}

/// GETEX changed nothing without options, or on a missing key.
pub fn getex_unchanged(args: &[Bytes], reply: &Reply) -> bool {
    args.len() == 2 || matches!(reply, Reply::Nil)
}

/// GETSET as Redis propagates it: `SET key value`.
pub fn getset_effects(_ctx: &mut KeyCtx, args: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    vec![vec![
        Bytes::from_static(b"SET"),
        args[1].clone(),
        args[2].clone(),
    ]]
}

/// GETDEL as Redis propagates it: `DEL key` when there was one.
pub fn getdel_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Bulk(_) => vec![vec![Bytes::from_static(b"DEL"), args[1].clone()]],
        _ => Vec::new(),
    }
}

/// INCRBYFLOAT as Redis propagates it: `SET key <result> KEEPTTL`, so that no replica (or
/// replay) computes the float again, perhaps rounding otherwise.
pub fn incrbyfloat_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Bulk(result) => vec![vec![
            Bytes::from_static(b"SET"),
            args[1].clone(),
            result.clone(),
            Bytes::from_static(b"KEEPTTL"),
        ]],
        _ => Vec::new(),
    }
}
