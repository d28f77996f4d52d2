//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, XREAD (blocking),
//! and consumer groups: XGROUP, XREADGROUP (blocking), XACK, XPENDING, XCLAIM, XAUTOCLAIM,
//! XINFO. The stored type is `warpengine_storage::stream`.
//!
//! Logging: XADD's generated ID and `~` trims are not deterministic, so XADD and XTRIM are
//! logged with the ID that was used and `MAXLEN = <resulting length>` (trimming only ever
//! removes the oldest entries, so the length left says all). Commands that change a group's
//! pending entries log their effect as Redis propagates it: an `XCLAIM ... FORCE JUSTID` per
//! entry with its owner, delivery time and count, `XACK` for entries dropped, and
//! `XGROUP SETID ... ENTRIESREAD` for the group's position.

use std::time::Duration;

use bytes::Bytes;
use warpengine_storage::stream::{
    node_max_entries, ConsumerGroup, StreamEntry, StreamId, Trim, ENTRIES_READ_UNKNOWN,
};
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{notify, Entry, StreamValue, Value};

use super::util::{eq_ignore_case, help, int_arg, subcommand_syntax_error, wrong_arity, SYNTAX};
use super::{commands, k, keyed, Attempt, BlockingFn, Keys, LogForm, Run};
use crate::command_table::unknown_subcommand;
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::{c_string, OK};
use crate::protocol::Reply;
use crate::server_state::unix_ms;

const fn blocking(f: BlockingFn) -> Run {
    Run::Blocking(f)
}

const XREAD_KEYS: Keys = Keys::Custom {
    legacy: (0, 0, 0),
    find: read_keys,
};
const CONTAINER_KEY: Keys = Keys::Custom {
    legacy: (0, 0, 0),
    find: container_key,
};

commands! {
    pub static COMMANDS;
    "xadd", -5, "write denyoom fast", k(1, 1, 1), "stream", "5.0.0", keyed(xadd), "Appends a new message to a stream. Creates the key if it doesn't exist.", log(LogForm::Rewritten(xadd_log)), wakes_all_waiters();
    "xlen", 2, "readonly fast", k(1, 1, 1), "stream", "5.0.0", keyed(xlen), "Return the number of messages in a stream.";
    "xrange", -4, "readonly", k(1, 1, 1), "stream", "5.0.0", keyed(xrange), "Returns the messages from a stream within a range of IDs.", reply_length_deferred();
    "xrevrange", -4, "readonly", k(1, 1, 1), "stream", "5.0.0", keyed(xrevrange), "Returns the messages from a stream within a range of IDs in reverse order.", reply_length_deferred();
    "xdel", -3, "write fast", k(1, 1, 1), "stream", "5.0.0", keyed(xdel), "Returns the number of messages after removing them from a stream.", unchanged_when(super::zero_changes);
    "xtrim", -4, "write", k(1, 1, 1), "stream", "5.0.0", keyed(xtrim), "Deletes messages from the beginning of a stream.", log(LogForm::Rewritten(xtrim_log)), unchanged_when(super::zero_changes);
    "xsetid", -3, "write denyoom fast", k(1, 1, 1), "stream", "5.0.0", keyed(xsetid), "An internal command for replicating stream values.";
    "xread", -4, "readonly blocking movablekeys", XREAD_KEYS, "stream", "5.0.0", blocking(xread), "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", pins_block_args(pin_xread);
    "xreadgroup", -7, "write blocking movablekeys", XREAD_KEYS, "stream", "5.0.0", blocking(xreadgroup), "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", log(LogForm::Effects(xreadgroup_effects)), pins_block_args(pin_xreadgroup);
    "xgroup", -2, "", CONTAINER_KEY, "stream", "5.0.0", keyed(xgroup), "A container for consumer groups commands.", log(LogForm::Argv), wakes_all_waiters();
    "xack", -4, "write fast", k(1, 1, 1), "stream", "5.0.0", keyed(xack), "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", unchanged_when(super::zero_changes);
    "xpending", -3, "readonly", k(1, 1, 1), "stream", "5.0.0", keyed(xpending), "Returns the information and entries from a stream consumer group's pending entries list.";
    "xclaim", -6, "write fast", k(1, 1, 1), "stream", "5.0.0", keyed(xclaim), "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", log(LogForm::Effects(xclaim_effects));
    "xautoclaim", -6, "write fast", k(1, 1, 1), "stream", "6.2.0", keyed(xautoclaim), "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", log(LogForm::Effects(xautoclaim_effects));
    "xinfo", -2, "", CONTAINER_KEY, "stream", "5.0.0", keyed(xinfo), "A container for stream introspection commands.";
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
/// XADD's and XTRIM's limit on the entries of one XADD (Redis's STREAM_LISTPACK_MAX_SIZE).
const MAX_ENTRY_BYTES: usize = 1 << 30;

// ---------------------------------------------------------------------------------------------
// IDs

/// Redis's `string2ull`: `string2ll` when it applies (a negative number is refused), else C's
/// `strtoull` (leading spaces and a sign allowed, a `-` wraps around).
fn parse_u64(text: &[u8]) -> Option<u64> {
    if let Some(v) = parse_strict_i64(text) {
        return (v >= 0).then_some(v as u64);
    }
    // C's isspace, vertical tab included (Rust's ASCII whitespace leaves it out).
    let start = text
        .iter()
        .position(|c| !b" \t\n\x0b\x0c\r".contains(c))
        .unwrap_or(text.len());
    let text = &text[start..];
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Redis's `streamGenericParseIDOrReply`: `ms-seq`, or `ms` with `missing_seq`; `-` and `+`
/// unless `strict`. With `partial`, also `ms-*` (the flag returned: whether seq was given).
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    partial: bool,
) -> Result<(StreamId, bool), Reply> {
    // Redis copies the argument into a 128-byte C string.
    if arg.len() > 127 {
        return Err(Reply::err(INVALID_ID));
    }
    let arg = c_string(arg, usize::MAX);
    match arg {
        b"-" | b"+" if strict => return Err(Reply::err(INVALID_ID)),
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms_text, seq_text) = match arg.iter().position(|&c| c == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms_text).ok_or_else(|| Reply::err(INVALID_ID))?;
    match seq_text {
        Some(b"*") if partial => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => {
            let seq = parse_u64(seq).ok_or_else(|| Reply::err(INVALID_ID))?;
            Ok((StreamId::new(ms, seq), true))
        }
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_full(arg, missing_seq, false, false).map(|(id, _)| id)
}

fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id_full(arg, 0, true, false).map(|(id, _)| id)
}

/// An interval bound (XRANGE, XPENDING, XAUTOCLAIM): an ID, or `(ID` to exclude it (the ID
/// then moved one step inwards).
fn parse_bound(arg: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, Reply> {
    if arg.len() > 1 && arg[0] == b'(' {
        let (id, _) = parse_id_full(&arg[1..], missing_seq, true, false)?;
        let moved = if start { id.next() } else { id.prev() };
        moved.ok_or_else(|| {
            Reply::err(if start {
                "ERR invalid start ID for the interval"
            } else {
                "ERR invalid end ID for the interval"
            })
        })
    } else {
        parse_id(arg, missing_seq)
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(Bytes::from(id.to_text()))
}

fn id_arg(id: StreamId) -> Bytes {
    Bytes::from(id.to_text())
}

/// An entry as XRANGE and the reads answer it: `[id, [field, value, ...]]`. The same bytes in
/// RESP2 and RESP3 (arrays of bulk strings), so encoded here at once into one buffer rather
/// than built as a tree of replies, which took a third of a COUNT 10 XRANGE's time.
/// (`reply_entry_id` reads the ID back for the log.)
fn entry_reply(id: StreamId, pairs: &[(&[u8], &[u8])]) -> Reply {
    use crate::protocol::reply::{bulk, header};
    let (mut ms, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (ms, seq) = (ms.format(id.ms), seq.format(id.seq));
    let size = 48
        + pairs
            .iter()
            .map(|(f, v)| f.len() + v.len() + 32)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    header(&mut out, b'*', 2);
    header(&mut out, b'$', ms.len() + 1 + seq.len());
    out.extend_from_slice(ms.as_bytes());
    out.push(b'-');
    out.extend_from_slice(seq.as_bytes());
    out.extend_from_slice(b"\r\n");
    header(&mut out, b'*', 2 * pairs.len());
    for (field, value) in pairs {
        bulk(&mut out, field);
        bulk(&mut out, value);
    }
    Reply::Raw(Bytes::from(out))
}

/// The ID text of an entry `entry_reply` encoded: the bulk string after its `*2` header.
fn raw_entry_id(raw: &[u8]) -> Option<&[u8]> {
    let rest = raw.strip_prefix(b"*2\r\n$")?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    let len: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    rest.get(end + 2..end + 2 + len)
}

/// An error echoing two arguments, as Redis's `%s ... %s` formats do.
fn err_echo2(a: &str, x: &[u8], b: &str, y: &[u8], c: &str) -> Reply {
    let mut msg = a.as_bytes().to_vec();
    msg.extend_from_slice(c_string(x, usize::MAX));
    msg.extend_from_slice(b.as_bytes());
    msg.extend_from_slice(c_string(y, usize::MAX));
    msg.extend_from_slice(c.as_bytes());
    Reply::error_bytes(msg)
}

fn no_key_or_group(key: &[u8], group: &[u8]) -> Reply {
    err_echo2(
        "NOGROUP No such key '",
        key,
        "' or consumer group '",
        group,
        "'",
    )
}

fn no_group_for_key(group: &[u8], key: &[u8]) -> Reply {
    err_echo2(
        "NOGROUP No such consumer group '",
        group,
        "' for key name '",
        key,
        "'",
    )
}

// ---------------------------------------------------------------------------------------------
// Looking streams up

fn read_stream<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a mut StreamValue>, Reply> {
    match ctx.read(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::Stream(s),
            ..
        }) => Ok(Some(s)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

fn write_stream<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<Option<&'a mut StreamValue>, Reply> {
    match ctx.write(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::Stream(s),
            ..
        }) => Ok(Some(s)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The stream at `key` as the log writer sees it after the command (no access recorded).
fn logged_stream<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Option<&'a StreamValue> {
    match ctx.db(key).get(key, 0) {
        Some(Entry {
            value: Value::Stream(s),
            ..
        }) => Some(s),
        _ => None,
    }
}

/// The command's time in milliseconds, or the wall clock when the log is replayed (which runs
/// at time 0 so that keys do not expire midway): consumers are seen, and XCLAIM's TIME is
/// checked, at the time of loading, as in Redis.
fn now_ms(ctx: &KeyCtx) -> u64 {
    if ctx.now_ms == 0 {
        unix_ms()
    } else {
        ctx.now_ms
    }
}

fn create_stream(ctx: &mut KeyCtx, key: &[u8]) {
    let clock = ctx.clock;
    ctx.db(key)
        .set(key, Value::Stream(Box::new(StreamValue::new())), 0, clock);
}

// ---------------------------------------------------------------------------------------------
// XADD, XTRIM

/// XADD's and XTRIM's options (Redis's `streamParseAddOrTrimArgsOrReply`).
struct AddTrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    no_mkstream: bool,
    /// XADD: the ID (None: `*`) and whether its sequence was given.
    id: Option<(StreamId, bool)>,
    /// XADD: where the ID is.
    id_index: usize,
}

fn parse_add_or_trim(args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Reply> {
    let mut parsed = AddTrimArgs {
        trim: None,
        approx: false,
        limit: 0,
        no_mkstream: false,
        id: None,
        id_index: args.len(),
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        let is_maxlen = eq_ignore_case(opt, "maxlen");
        if xadd && &opt[..] == b"*" {
            break;
        } else if (is_maxlen || eq_ignore_case(opt, "minid")) && more > 0 {
            if parsed.trim.is_some() {
                return Err(Reply::err(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            parsed.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                parsed.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let value = &args[i + 1];
            parsed.trim = Some(if is_maxlen {
                let max = int_arg(value)?;
                if max < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(max as u64)
            } else {
                Trim::MinId(parse_strict_id(value)?)
            });
            i += 1;
        } else if eq_ignore_case(opt, "limit") && more > 0 {
            let limit = int_arg(&args[i + 1])?;
            if limit < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            parsed.limit = limit as u64;
            limit_given = true;
            i += 1;
        } else if xadd && eq_ignore_case(opt, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_full(opt, 0, true, true)?;
            parsed.id = Some((id, seq_given));
            break;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 1;
    }
    parsed.id_index = i;
    if parsed.limit != 0 && parsed.trim.is_none() {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && parsed.trim.is_none() {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !parsed.approx {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if parsed.approx {
        let limit = 100 * node_max_entries() as u64;
        parsed.limit = if limit == 0 || limit > 10_000 {
            10_000
        } else {
            limit
        };
    } else {
        parsed.limit = 0;
    }
    Ok(parsed)
}

/// The ID XADD adds with, or its error.
fn next_add_id(s: &StreamValue, wanted: Option<(StreamId, bool)>, now_ms: u64) -> Option<StreamId> {
    let last = s.last_id;
    let id = match wanted {
        Some((id, true)) => id,
        Some((id, false)) if id.ms == last.ms => {
            if last.seq == u64::MAX {
                return None;
            }
            StreamId::new(last.ms, last.seq + 1)
        }
        Some((id, false)) => id,
        None if now_ms > last.ms => StreamId::new(now_ms, 0),
        None => last.next()?,
    };
    (id > last).then_some(id)
}

pub fn xadd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let parsed = match parse_add_or_trim(args, true) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let field_pos = parsed.id_index + 1;
    if args.len() < field_pos + 2 || !(args.len() - field_pos).is_multiple_of(2) {
        return wrong_arity("xadd");
    }
    if let Some((id, true)) = parsed.id {
        if id.is_zero() {
            return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = &args[1];
    match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) if parsed.no_mkstream => return Reply::Nil,
        Ok(None) => create_stream(ctx, key),
        Ok(Some(_)) => {}
    }
    let now = now_ms(ctx);
    let s = write_stream(ctx, key).ok().flatten().expect("a stream");
    if s.last_id == StreamId::MAX {
        return Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let Some(id) = next_add_id(s, parsed.id, now) else {
        return Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        );
    };
    let fields = &args[field_pos..];
    if fields.iter().map(|f| f.len()).sum::<usize>() > MAX_ENTRY_BYTES {
        return Reply::err("ERR Elements are too large to be stored");
    }
    let pairs: Vec<(&[u8], &[u8])> = fields.chunks(2).map(|p| (&p[0][..], &p[1][..])).collect();
    s.append(id, &pairs);
    let trimmed = parsed
        .trim
        .is_some_and(|t| s.trim(t, parsed.approx, parsed.limit) > 0);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    id_reply(id)
}

/// XADD as logged: the ID used and, when it trims, `MAXLEN = <length left>`.
fn xadd_log(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let parsed = parse_add_or_trim(args, true).ok()?;
    let s = logged_stream(ctx, &args[1])?;
    let mut argv = vec![Bytes::from_static(b"XADD"), args[1].clone()];
    if parsed.trim.is_some() {
        argv.extend([
            Bytes::from_static(b"MAXLEN"),
            Bytes::from_static(b"="),
            Bytes::from(s.len().to_string()),
        ]);
    }
    argv.push(id_arg(s.last_id));
    argv.extend_from_slice(&args[parsed.id_index + 1..]);
    Some(argv)
}

pub fn xtrim(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let parsed = match parse_add_or_trim(args, false) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let s = match write_stream(ctx, key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let trim = parsed.trim.expect("XTRIM has a strategy");
    let deleted = s.trim(trim, parsed.approx, parsed.limit);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    Reply::Int(deleted as i64)
}

/// XTRIM as logged: `MAXLEN = <length left>`.
fn xtrim_log(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let s = logged_stream(ctx, &args[1])?;
    Some(vec![
        Bytes::from_static(b"XTRIM"),
        args[1].clone(),
        Bytes::from_static(b"MAXLEN"),
        Bytes::from_static(b"="),
        Bytes::from(s.len().to_string()),
    ])
}

// ---------------------------------------------------------------------------------------------
// XLEN, XRANGE, XREVRANGE, XDEL, XSETID

pub fn xlen(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match read_stream(ctx, &args[1]) {
        Ok(Some(s)) => Reply::Int(s.len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

fn range_generic(ctx: &mut KeyCtx, args: &[Bytes], rev: bool) -> Reply {
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = match parse_bound(start_arg, 0, true) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let end = match parse_bound(end_arg, u64::MAX, false) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ignore_case(&args[j], "count") && j + 1 < args.len() {
            count = match int_arg(&args[j + 1]) {
                Ok(c) => c.max(0),
                Err(e) => return e,
            };
            j += 2;
        } else {
            return Reply::err(SYNTAX);
        }
    }
    let s = match read_stream(ctx, &args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Array(Vec::new()),
        Err(e) => return e,
    };
    if count == 0 {
        return Reply::NilArray;
    }
    let limit = if count < 0 { 0 } else { count as usize };
    Reply::Array(
        s.range(start, end, rev, limit)
            .iter()
            .map(|(id, pairs)| entry_reply(*id, pairs))
            .collect(),
    )
}

pub fn xrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    range_generic(ctx, args, false)
}

pub fn xrevrange(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    range_generic(ctx, args, true)
}

pub fn xdel(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match write_stream(ctx, key) {
        Ok(Some(_)) => {}
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    }
    let ids = match args[2..]
        .iter()
        .map(|a| parse_strict_id(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let s = write_stream(ctx, key).ok().flatten().expect("a stream");
    let mut deleted = 0;
    for id in ids {
        if s.delete(id) {
            deleted += 1;
            s.max_deleted_id = s.max_deleted_id.max(id);
        }
    }
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xdel", key);
    }
    Reply::Int(deleted)
}

pub fn xsetid(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let id = match parse_strict_id(&args[2]) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ignore_case(&args[i], "entriesadded") && more > 0 {
            match int_arg(&args[i + 1]) {
                Ok(n) if n < 0 => return Reply::err("ERR entries_added must be positive"),
                Ok(n) => entries_added = Some(n as u64),
                Err(e) => return e,
            }
        } else if eq_ignore_case(&args[i], "maxdeletedid") && more > 0 {
            max_deleted = match parse_strict_id(&args[i + 1]) {
                Ok(m) => m,
                Err(e) => return e,
            };
            if id < max_deleted {
                return Reply::err(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
        } else {
            return Reply::err(SYNTAX);
        }
        i += 2;
    }
    let key = &args[1];
    let s = match write_stream(ctx, key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::err("ERR no such key"),
        Err(e) => return e,
    };
    if !s.is_empty() {
        let top = s.edge(true).map_or(StreamId::MIN, |(id, _)| id);
        if id < top {
            return Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added.is_some_and(|n| n < s.len()) {
            return Reply::err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n;
    }
    if !max_deleted.is_zero() {
        s.max_deleted_id = max_deleted;
    }
    ctx.notify(notify::STREAM, "xsetid", key);
    OK
}

// ---------------------------------------------------------------------------------------------
// XREAD, XREADGROUP

/// XREAD's and XREADGROUP's keys: the first half of what follows `STREAMS`.
pub fn read_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(at) = args
        .iter()
        .skip(1)
        .position(|a| eq_ignore_case(a, "streams"))
    else {
        return Vec::new();
    };
    let first = at + 2;
    let count = (args.len() - first) / 2;
    (first..first + count).collect()
}

struct ReadArgs {
    /// None: no BLOCK; Some(None): block for ever.
    block: Option<Option<Duration>>,
    count: usize,
    streams_at: usize,
    streams: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
}

fn parse_read(args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, Reply> {
    parse_read_from(args, xreadgroup, false)
}

/// XREAD's and XREADGROUP's options; `from_script`: BLOCK is refused, as Redis refuses it.
fn parse_read_from(args: &[Bytes], xreadgroup: bool, from_script: bool) -> Result<ReadArgs, Reply> {
    let mut parsed = ReadArgs {
        block: None,
        count: 0,
        streams_at: 0,
        streams: 0,
        group: None,
        noack: false,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = &args[i];
        if eq_ignore_case(opt, "block") && more > 0 {
            if from_script {
                let mut msg = b"ERR ".to_vec();
                msg.extend_from_slice(c_string(&args[0], usize::MAX));
                msg.extend_from_slice(b" command is not allowed with BLOCK option from scripts");
                return Err(Reply::error_bytes(msg));
            }
            i += 1;
            let ms = parse_strict_i64(&args[i])
                .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(Reply::err("ERR timeout is negative"));
            }
            parsed.block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
        } else if eq_ignore_case(opt, "count") && more > 0 {
            i += 1;
            parsed.count = int_arg(&args[i])?.max(0) as usize;
        } else if eq_ignore_case(opt, "streams") && more > 0 {
            parsed.streams_at = i + 1;
            let rest = args.len() - parsed.streams_at;
            if !rest.is_multiple_of(2) {
                // Redis 7.0 says XREAD and `$` for XREADGROUP too.
                return Err(Reply::err(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            parsed.streams = rest / 2;
            break;
        } else if eq_ignore_case(opt, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            parsed.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if eq_ignore_case(opt, "noack") {
            if !xreadgroup {
                return Err(Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            parsed.noack = true;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 1;
    }
    if parsed.streams_at == 0 {
        return Err(Reply::err(SYNTAX));
    }
    if xreadgroup && parsed.group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(parsed)
}

/// What XREAD/XREADGROUP asks of one stream: entries after this ID, or (`>`) new ones.
#[derive(Clone, Copy)]
enum Want {
    After(StreamId),
    New,
}

/// One try of XREAD or XREADGROUP: Ok(None) when nothing could be served.
fn read_streams(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    parsed: &ReadArgs,
) -> Result<Option<Reply>, Reply> {
    let keys = &args[parsed.streams_at..parsed.streams_at + parsed.streams];
    let id_args = &args[parsed.streams_at + parsed.streams..];
    let xreadgroup = parsed.group.is_some();
    let mut wants = Vec::with_capacity(keys.len());
    let retry = ctx.blocked_retry;
    for (key, id_arg) in keys.iter().zip(id_args) {
        let s = match read_stream(ctx, key) {
            // Woken to find the stream gone: XREADGROUP says so, XREAD waits on (as Redis 7.0).
            Ok(None) | Err(_) if retry && xreadgroup => {
                return Err(Reply::err("UNBLOCKED the stream key no longer exists"));
            }
            Err(_) if retry => None,
            other => other?,
        };
        if let Some((group, _)) = &parsed.group {
            let has_group = s
                .as_ref()
                .is_some_and(|s| s.groups.contains_key(&group[..]));
            if !has_group && retry {
                return Err(Reply::err(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                ));
            }
            if !has_group {
                return Err(err_echo2(
                    "NOGROUP No such key '",
                    key,
                    "' or consumer group '",
                    group,
                    "' in XREADGROUP with GROUP option",
                ));
            }
        }
        let want = match &id_arg[..] {
            b"$" if xreadgroup => {
                return Err(Reply::err(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ))
            }
            b"$" => Want::After(s.map_or(StreamId::MIN, |s| s.last_id)),
            b">" if !xreadgroup => {
                return Err(Reply::err(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ))
            }
            b">" => Want::New,
            other => Want::After(parse_strict_id(other)?),
        };
        wants.push(want);
    }
    let now = now_ms(ctx);
    let mut served = Vec::new();
    for (key, want) in keys.iter().zip(wants) {
        // (A retry's XREAD passes over a key that is no longer a stream.)
        let Some(s) = read_stream(ctx, key).ok().flatten() else {
            continue;
        };
        let top = s.edge(true).map(|(id, _)| id);
        let entries = match &parsed.group {
            None => {
                let Want::After(after) = want else {
                    unreachable!("> is XREADGROUP's")
                };
                if top.is_none_or(|top| top <= after) {
                    continue;
                }
                let start = after.next().unwrap_or(StreamId::MAX);
                s.range(start, StreamId::MAX, false, parsed.count)
                    .iter()
                    .map(|(id, pairs)| entry_reply(*id, pairs))
                    .collect()
            }
            Some((group_name, consumer)) => {
                let history = match want {
                    Want::After(after) => Some(after),
                    Want::New => {
                        let last = s.groups[&group_name[..]].last_id;
                        if top.is_none_or(|top| top <= last) {
                            continue;
                        }
                        None
                    }
                };
                let (entries, created) = serve_group(s, group_name, consumer, history, parsed, now);
                if created {
                    ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
                }
                entries
            }
        };
        served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    Ok((!served.is_empty()).then_some(Reply::KeyedArrays(served)))
}

/// Serves a consumer of a group: its pending entries after `history`, or (None) the entries
/// after the group's last delivered ID, which become pending for it (unless NOACK). Returns
/// the entries' replies and whether the consumer was created.
fn serve_group(
    s: &mut StreamValue,
    group_name: &[u8],
    consumer: &[u8],
    history: Option<StreamId>,
    parsed: &ReadArgs,
    now: u64,
) -> (Vec<Reply>, bool) {
    let created = {
        let group = s.groups.get_mut(group_name).expect("checked");
        let (c, created) = group.consumer_or_create(consumer, now);
        c.seen_time = now;
        created
    };
    let mut replies = Vec::new();
    if let Some(after) = history {
        let Some(start) = after.next() else {
            return (replies, created);
        };
        let group = &s.groups[group_name];
        let ids: Vec<StreamId> = group.consumers[consumer]
            .pending
            .range(start..)
            .take(if parsed.count == 0 {
                usize::MAX
            } else {
                parsed.count
            })
            .copied()
            .collect();
        let mut delivered = Vec::new();
        for id in ids {
            match s.get(id) {
                Some((id, pairs)) => {
                    replies.push(entry_reply(id, &pairs));
                    delivered.push(id);
                }
                None => replies.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
            }
        }
        let group = s.groups.get_mut(group_name).expect("checked");
        for id in delivered {
            if let Some(p) = group.pending.get_mut(&id) {
                p.delivery_time = now;
                p.delivery_count += 1;
            }
        }
        return (replies, created);
    }
    let start = s.groups[group_name].last_id.next().unwrap_or(StreamId::MAX);
    let entries: Vec<(StreamId, Reply)> = s
        .range(start, StreamId::MAX, false, parsed.count)
        .iter()
        .map(|(id, pairs)| (*id, entry_reply(*id, pairs)))
        .collect();
    for (id, reply) in entries {
        advance_group(s, group_name, id);
        if !parsed.noack {
            let group = s.groups.get_mut(group_name).expect("checked");
            group.assign(id, consumer, now, 1);
        }
        replies.push(reply);
    }
    (replies, created)
}

/// Moves a group's last delivered ID to `id`, keeping its read counter as Redis does.
fn advance_group(s: &mut StreamValue, group_name: &[u8], id: StreamId) {
    let group = &s.groups[group_name];
    if id <= group.last_id {
        return;
    }
    let entries_read = if group.entries_read != ENTRIES_READ_UNKNOWN
        && !s.range_has_tombstones(id, StreamId::MAX)
    {
        Some(group.entries_read + 1)
    } else if s.entries_added > 0 {
        Some(s.estimate_distance(id))
    } else {
        None
    };
    let group = s.groups.get_mut(group_name).expect("checked");
    if let Some(n) = entries_read {
        group.entries_read = n;
    }
    group.last_id = id;
}

fn read_generic(ctx: &mut KeyCtx, args: &[Bytes], xreadgroup: bool) -> Attempt {
    let parsed = match parse_read_from(args, xreadgroup, ctx.from_script) {
        Ok(p) => p,
        Err(e) => return Attempt::Done(e),
    };
    match read_streams(ctx, args, &parsed) {
        Err(e) => Attempt::Done(e),
        Ok(Some(reply)) => Attempt::Done(reply),
        Ok(None) => match parsed.block {
            Some(timeout) => Attempt::Block(timeout),
            None => Attempt::Done(Reply::NilArray),
        },
    }
}

pub fn xread(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    read_generic(ctx, args, false)
}

pub fn xreadgroup(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    read_generic(ctx, args, true)
}

/// Entries a blocked XREAD or XREADGROUP without COUNT gets at most when served (Redis's
/// XREAD_BLOCKED_DEFAULT_COUNT), so that an old ID does not make one reply huge.
const BLOCKED_DEFAULT_COUNT: &[u8] = b"1000";

/// Pins what a blocked XREAD or XREADGROUP waits for: XREAD's `$` arguments become the last ID
/// their streams had when it blocked, and without COUNT it is served at most 1000 entries.
fn pin_block_args(ctx: &mut KeyCtx, args: &[Bytes], xreadgroup: bool) -> Option<Vec<Bytes>> {
    let parsed = parse_read(args, xreadgroup).ok()?;
    let mut pinned = args.to_vec();
    if !xreadgroup {
        for i in 0..parsed.streams {
            let id_at = parsed.streams_at + parsed.streams + i;
            if &args[id_at][..] == b"$" {
                let key = &args[parsed.streams_at + i];
                let last = logged_stream(ctx, key).map_or(StreamId::MIN, |s| s.last_id);
                pinned[id_at] = id_arg(last);
            }
        }
    }
    if parsed.count == 0 {
        // A later COUNT wins, so one in front of STREAMS decides.
        pinned.splice(
            parsed.streams_at - 1..parsed.streams_at - 1,
            [
                Bytes::from_static(b"COUNT"),
                Bytes::from_static(BLOCKED_DEFAULT_COUNT),
            ],
        );
    }
    Some(pinned)
}

fn pin_xread(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    pin_block_args(ctx, args, false)
}

fn pin_xreadgroup(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    pin_block_args(ctx, args, true)
}

/// XREADGROUP as logged: the consumer's creation, an XCLAIM per entry now pending, the group's
/// position.
fn xreadgroup_effects(ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let Ok(parsed) = parse_read(args, true) else {
        return Vec::new();
    };
    let Some((group, consumer)) = &parsed.group else {
        return Vec::new();
    };
    let Reply::KeyedArrays(served) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // The group's position moves only for a stream read from `>` (new entries); a read of
    // the consumer's own pending history changes nothing of the group.
    let (keys, ids) = args[parsed.streams_at..].split_at(parsed.streams);
    let reads_new = |key: &Bytes| {
        keys.iter()
            .zip(ids)
            .any(|(k, id)| k == key && &id[..] == b">")
    };
    for (key, entries) in served {
        let (Reply::Bulk(key), Reply::Array(entries)) = (key, entries) else {
            continue;
        };
        let ids: Vec<StreamId> = entries.iter().filter_map(reply_entry_id).collect();
        if let Some(s) = logged_stream(ctx, key) {
            out.extend(group_effects(
                s,
                key,
                group,
                Some(consumer),
                &ids,
                false,
                reads_new(key),
            ));
        }
    }
    out
}

/// The ID of an entry in a reply (`[id, fields]`) or of a bare ID.
fn reply_entry_id(entry: &Reply) -> Option<StreamId> {
    let id: &[u8] = match entry {
        Reply::Raw(raw) => raw_entry_id(raw)?,
        Reply::Array(parts) => match parts.first() {
            Some(Reply::Bulk(id)) => id,
            _ => return None,
        },
        Reply::Bulk(id) => id,
        _ => return None,
    };
    parse_strict_id(id).ok()
}

/// The commands that put a group back as it now is for these IDs: XGROUP CREATECONSUMER
/// for `consumer` unless an XCLAIM names it (which creates it, as Redis leaves it to do),
/// `XCLAIM ... FORCE JUSTID LASTID` for each pending ID (XACK for the others when
/// `ack_missing`), as Redis propagates them, and XGROUP SETID with the read counter when
/// `position` (the replication stream leaves it out after XCLAIMs, whose LASTID says it).
fn group_effects(
    s: &StreamValue,
    key: &Bytes,
    group_name: &Bytes,
    consumer: Option<&Bytes>,
    ids: &[StreamId],
    ack_missing: bool,
    position: bool,
) -> Vec<Vec<Bytes>> {
    let Some(group) = s.groups.get(&group_name[..]) else {
        return Vec::new();
    };
    let word = Bytes::from_static;
    let mut out = Vec::new();
    let claimed_by = |c: &Bytes| {
        ids.iter().any(|id| {
            group
                .pending
                .get(id)
                .is_some_and(|p| p.consumer[..] == c[..])
        })
    };
    if let Some(consumer) =
        consumer.filter(|c| group.consumers.contains_key(&c[..]) && !claimed_by(c))
    {
        out.push(vec![
            word(b"XGROUP"),
            word(b"CREATECONSUMER"),
            key.clone(),
            group_name.clone(),
            consumer.clone(),
        ]);
    }
    for &id in ids {
        match group.pending.get(&id) {
            Some(p) => out.push(vec![
                word(b"XCLAIM"),
                key.clone(),
                group_name.clone(),
                Bytes::copy_from_slice(&p.consumer),
                word(b"0"),
                id_arg(id),
                word(b"TIME"),
                Bytes::from(p.delivery_time.to_string()),
                word(b"RETRYCOUNT"),
                Bytes::from(p.delivery_count.to_string()),
                word(b"FORCE"),
                word(b"JUSTID"),
                word(b"LASTID"),
                id_arg(group.last_id),
            ]),
            None if ack_missing => out.push(vec![
                word(b"XACK"),
                key.clone(),
                group_name.clone(),
                id_arg(id),
            ]),
            None => {}
        }
    }
    if position {
        out.push(vec![
            word(b"XGROUP"),
            word(b"SETID"),
            key.clone(),
            group_name.clone(),
            id_arg(group.last_id),
            word(b"ENTRIESREAD"),
            Bytes::from(group.entries_read.to_string()),
        ]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// XGROUP

/// XGROUP's and XINFO's key is their third argument, when there is one.
pub fn container_key(args: &[Bytes]) -> Vec<usize> {
    if args.len() >= 3 {
        vec![2]
    } else {
        Vec::new()
    }
}

/// XGROUP subcommands and their arities (Redis's `xgroup|...` rows).
const XGROUP_SUBCOMMANDS: &[(&str, i32)] = &[
    ("create", -5),
    ("setid", -5),
    ("destroy", 4),
    ("createconsumer", 5),
    ("delconsumer", 5),
    ("help", 2),
];

/// The subcommand `args[1]` names, checked against its arity.
fn subcommand(
    args: &[Bytes],
    table: &[(&'static str, i32)],
    container: &str,
) -> Result<&'static str, Reply> {
    let sub = &args[1];
    let Some(&(name, arity)) = table.iter().find(|(n, _)| eq_ignore_case(sub, n)) else {
        return Err(unknown_subcommand(sub, container));
    };
    let argc = args.len() as i32;
    let fits = if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    };
    if !fits {
        return Err(wrong_arity(&format!(
            "{}|{name}",
            container.to_ascii_lowercase()
        )));
    }
    Ok(name)
}

fn entries_read_arg(arg: &[u8]) -> Result<i64, Reply> {
    let n = int_arg(arg)?;
    if n < 0 && n != ENTRIES_READ_UNKNOWN {
        return Err(Reply::err(
            "ERR value for ENTRIESREAD must be positive or -1",
        ));
    }
    Ok(n)
}

pub fn xgroup(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match xgroup_run(ctx, args) {
        Ok(r) | Err(r) => r,
    }
}

fn xgroup_run(ctx: &mut KeyCtx, args: &[Bytes]) -> Result<Reply, Reply> {
    let sub = subcommand(args, XGROUP_SUBCOMMANDS, "XGROUP")?;
    if sub == "help" {
        return Ok(help(
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        ));
    }
    let (key, group_name) = (&args[2], &args[3]);
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_UNKNOWN;
    if sub == "create" && args.len() >= 6 {
        let mut i = 5;
        while i < args.len() {
            if eq_ignore_case(&args[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if eq_ignore_case(&args[i], "entriesread") && i + 1 < args.len() {
                entries_read = entries_read_arg(&args[i + 1])?;
                i += 2;
            } else {
                return Err(subcommand_syntax_error(&args[1], "XGROUP"));
            }
        }
    }
    let exists = write_stream(ctx, key)?.is_some();
    if !exists && !mkstream {
        return Err(Reply::err(
            "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    }
    let has_group = exists
        && write_stream(ctx, key)?
            .expect("exists")
            .groups
            .contains_key(&group_name[..]);
    if !has_group && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
        return Err(no_group_for_key(group_name, key));
    }
    let now = now_ms(ctx);
    match sub {
        "create" if args.len() <= 8 => {
            let id = if &args[4][..] == b"$" {
                match write_stream(ctx, key)? {
                    Some(s) => s.last_id,
                    None => StreamId::MIN,
                }
            } else {
                parse_strict_id(&args[4])?
            };
            if !exists {
                create_stream(ctx, key);
            }
            let s = write_stream(ctx, key)?.expect("a stream");
            if has_group {
                return Err(Reply::err("BUSYGROUP Consumer Group name already exists"));
            }
            s.groups
                .insert(group_name[..].into(), ConsumerGroup::new(id, entries_read));
            ctx.notify(notify::STREAM, "xgroup-create", key);
            Ok(OK)
        }
        "setid" if args.len() == 5 || args.len() == 7 => {
            let s = write_stream(ctx, key)?.expect("a stream");
            let id = if &args[4][..] == b"$" {
                s.last_id
            } else {
                parse_id(&args[4], 0)?
            };
            if args.len() == 7 {
                if !eq_ignore_case(&args[5], "entriesread") {
                    return Err(subcommand_syntax_error(&args[1], "XGROUP"));
                }
                entries_read = entries_read_arg(&args[6])?;
            }
            let group = s.groups.get_mut(&group_name[..]).expect("checked");
            group.last_id = id;
            group.entries_read = entries_read;
            ctx.notify(notify::STREAM, "xgroup-setid", key);
            Ok(OK)
        }
        "destroy" => {
            let s = write_stream(ctx, key)?.expect("a stream");
            if s.groups.remove(&group_name[..]).is_none() {
                return Ok(Reply::Int(0));
            }
            ctx.notify(notify::STREAM, "xgroup-destroy", key);
            Ok(Reply::Int(1))
        }
        "createconsumer" => {
            let s = write_stream(ctx, key)?.expect("a stream");
            let group = s.groups.get_mut(&group_name[..]).expect("checked");
            let (_, created) = group.consumer_or_create(&args[4], now);
            if created {
                ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
            }
            Ok(Reply::Int(created as i64))
        }
        "delconsumer" => {
            let s = write_stream(ctx, key)?.expect("a stream");
            let group = s.groups.get_mut(&group_name[..]).expect("checked");
            let Some(consumer) = group.consumers.remove(&args[4][..]) else {
                return Ok(Reply::Int(0));
            };
            for id in &consumer.pending {
                group.pending.remove(id);
            }
            ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
            Ok(Reply::Int(consumer.pending.len() as i64))
        }
        _ => Err(subcommand_syntax_error(&args[1], "XGROUP")),
    }
}

// ---------------------------------------------------------------------------------------------
// XACK, XPENDING

pub fn xack(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let s = match read_stream(ctx, &args[1]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(group) = s.and_then(|s| s.groups.get_mut(&args[2][..])) else {
        return Reply::Int(0);
    };
    let ids = match args[3..]
        .iter()
        .map(|a| parse_strict_id(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    Reply::Int(ids.into_iter().filter(|id| group.ack(*id)).count() as i64)
}

pub fn xpending(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match xpending_run(ctx, args) {
        Ok(r) | Err(r) => r,
    }
}

fn xpending_run(ctx: &mut KeyCtx, args: &[Bytes]) -> Result<Reply, Reply> {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(Reply::err(SYNTAX));
    }
    let mut range = None;
    let mut min_idle = 0i64;
    let mut consumer_name = None;
    if argc >= 6 {
        let mut at = 3;
        if eq_ignore_case(&args[3], "idle") {
            min_idle = int_arg(&args[4])?;
            if argc < 8 {
                return Err(Reply::err(SYNTAX));
            }
            at += 2;
        }
        let count = int_arg(&args[at + 2])?.max(0) as usize;
        let start = parse_bound(&args[at], 0, true)?;
        let end = parse_bound(&args[at + 1], u64::MAX, false)?;
        if at + 3 < argc {
            consumer_name = Some(&args[at + 3]);
        }
        range = Some((start, end, count));
    }
    let (key, group_name) = (&args[1], &args[2]);
    let now = now_ms(ctx) as i64;
    let Some(group) = read_stream(ctx, key)?.and_then(|s| s.groups.get(&group_name[..])) else {
        return Err(no_key_or_group(key, group_name));
    };
    let Some((start, end, count)) = range else {
        if group.pending.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        }
        let first = *group.pending.keys().next().expect("not empty");
        let last = *group.pending.keys().next_back().expect("not empty");
        let consumers = group
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::bulk(name),
                    Reply::Bulk(Bytes::from(c.pending.len().to_string())),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(group.pending.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(consumers),
        ]));
    };
    let ids: Vec<StreamId> = match consumer_name {
        Some(name) => match group.consumers.get(&name[..]) {
            Some(c) if start <= end => c.pending.range(start..=end).copied().collect(),
            Some(_) => Vec::new(),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None if start <= end => group
            .pending
            .range(start..=end)
            .map(|(id, _)| *id)
            .collect(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for id in ids {
        if out.len() >= count {
            break;
        }
        let p = &group.pending[&id];
        let idle = (now - p.delivery_time as i64).max(0);
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::bulk(&p.consumer),
            Reply::Int(idle),
            Reply::Int(p.delivery_count as i64),
        ]));
    }
    Ok(Reply::Array(out))
}

// ---------------------------------------------------------------------------------------------
// XCLAIM, XAUTOCLAIM

pub fn xclaim(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match xclaim_run(ctx, args) {
        Ok(r) | Err(r) => r,
    }
}

/// XCLAIM's arguments: the IDs (up to the first that is not one) and its options.
struct ClaimArgs {
    min_idle: i64,
    ids: Vec<StreamId>,
    delivery_time: Option<i64>,
    retry_count: Option<i64>,
    force: bool,
    just_id: bool,
    last_id: StreamId,
}

fn parse_claim(args: &[Bytes], now: i64) -> Result<ClaimArgs, Reply> {
    let min_idle = parse_strict_i64(&args[4])
        .ok_or_else(|| Reply::err("ERR Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_strict_id(&args[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let mut parsed = ClaimArgs {
        min_idle,
        ids,
        delivery_time: None,
        retry_count: None,
        force: false,
        just_id: false,
        last_id: StreamId::MIN,
    };
    let number = |arg: &[u8], what: &str| {
        parse_strict_i64(arg)
            .ok_or_else(|| Reply::err(format!("ERR Invalid {what} option argument for XCLAIM")))
    };
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if eq_ignore_case(opt, "force") {
            parsed.force = true;
        } else if eq_ignore_case(opt, "justid") {
            parsed.just_id = true;
        } else if eq_ignore_case(opt, "idle") && more > 0 {
            j += 1;
            parsed.delivery_time = Some(now - number(&args[j], "IDLE")?);
        } else if eq_ignore_case(opt, "time") && more > 0 {
            j += 1;
            parsed.delivery_time = Some(number(&args[j], "TIME")?);
        } else if eq_ignore_case(opt, "retrycount") && more > 0 {
            j += 1;
            parsed.retry_count = Some(number(&args[j], "RETRYCOUNT")?);
        } else if eq_ignore_case(opt, "lastid") && more > 0 {
            j += 1;
            parsed.last_id = parse_strict_id(&args[j])?;
        } else {
            let mut msg = b"ERR Unrecognized XCLAIM option '".to_vec();
            msg.extend_from_slice(c_string(opt, usize::MAX));
            msg.push(b'\'');
            return Err(Reply::error_bytes(msg));
        }
        j += 1;
    }
    Ok(parsed)
}

fn xclaim_run(ctx: &mut KeyCtx, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, group_name, consumer) = (&args[1], &args[2], &args[3]);
    let now = now_ms(ctx);
    let found = read_stream(ctx, key)?.is_some_and(|s| s.groups.contains_key(&group_name[..]));
    if !found {
        return Err(no_key_or_group(key, group_name));
    }
    let claim = parse_claim(args, now as i64)?;
    let delivery_time = match claim.delivery_time {
        Some(t) if t < 0 || t > now as i64 => now,
        Some(t) => t as u64,
        None => now,
    };
    let s = read_stream(ctx, key)?.expect("found");
    let mut created = false;
    {
        let group = s.groups.get_mut(&group_name[..]).expect("found");
        if claim.last_id > group.last_id {
            group.last_id = claim.last_id;
        }
    }
    let mut out = Vec::new();
    for &id in &claim.ids {
        let entry = s.get(id).map(|(id, pairs)| entry_reply(id, &pairs));
        let group = s.groups.get_mut(&group_name[..]).expect("found");
        let Some(entry) = entry else {
            // The entry is gone: so goes its pending record.
            group.ack(id);
            continue;
        };
        // The delivery count so far; FORCE makes a pending entry (counted once) for an entry
        // nobody had.
        let count = match group.pending.get(&id) {
            Some(p) => {
                let idle = now as i64 - p.delivery_time as i64;
                if claim.min_idle != 0 && idle < claim.min_idle {
                    continue;
                }
                p.delivery_count
            }
            None if claim.force => 1,
            None => continue,
        };
        let count = match claim.retry_count {
            Some(n) if n >= 0 => n as u64,
            _ if !claim.just_id => count + 1,
            _ => count,
        };
        // The consumer comes to be with its first claim, as in Redis 7.0.
        let (c, new) = group.consumer_or_create(consumer, now);
        c.seen_time = now;
        created |= new;
        group.assign(id, consumer, delivery_time, count);
        out.push(if claim.just_id { id_reply(id) } else { entry });
    }
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(out))
}

/// XCLAIM as logged: the state of every ID it named, and the group's position after LASTID.
fn xclaim_effects(ctx: &mut KeyCtx, args: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let now = now_ms(ctx) as i64;
    let Ok(claim) = parse_claim(args, now) else {
        return Vec::new();
    };
    let Some(s) = logged_stream(ctx, &args[1]) else {
        return Vec::new();
    };
    let position = !claim.last_id.is_zero();
    group_effects(
        s,
        &args[1],
        &args[2],
        Some(&args[3]),
        &claim.ids,
        true,
        position,
    )
}

pub fn xautoclaim(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match xautoclaim_run(ctx, args) {
        Ok(r) | Err(r) => r,
    }
}

fn xautoclaim_run(ctx: &mut KeyCtx, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, group_name, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = parse_strict_i64(&args[4])
        .ok_or_else(|| Reply::err("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = parse_bound(&args[5], 0, true)?;
    let mut count: u64 = 100;
    let mut just_id = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ignore_case(&args[j], "count") && more > 0 {
            // Redis's bound: LONG_MAX / max(sizeof(streamID), 10).
            let max = i64::MAX / 16;
            count = match parse_strict_i64(&args[j + 1]) {
                Some(n) if (1..=max).contains(&n) => n as u64,
                _ => return Err(Reply::err("ERR COUNT must be > 0")),
            };
            j += 1;
        } else if eq_ignore_case(&args[j], "justid") {
            just_id = true;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    let now = now_ms(ctx);
    let Some(s) = read_stream(ctx, key)?.filter(|s| s.groups.contains_key(&group_name[..])) else {
        return Err(no_key_or_group(key, group_name));
    };
    let mut created = false;
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut from = std::ops::Bound::Included(start);
    let mut exhausted = false;
    let mut last_seen = None;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let next = s.groups[&group_name[..]]
            .pending
            .range((from, std::ops::Bound::Unbounded))
            .next()
            .map(|(id, p)| (*id, p.delivery_time, p.delivery_count));
        let Some((id, delivered_at, delivery_count)) = next else {
            exhausted = true;
            break;
        };
        from = std::ops::Bound::Excluded(id);
        last_seen = Some(id);
        let entry = s.get(id).map(|(id, pairs)| entry_reply(id, &pairs));
        let group = s.groups.get_mut(&group_name[..]).expect("found");
        let Some(entry) = entry else {
            group.ack(id);
            deleted.push(id_reply(id));
            count -= 1;
            continue;
        };
        if min_idle != 0 && (now as i64 - delivered_at as i64) < min_idle {
            continue;
        }
        let delivery_count = delivery_count + u64::from(!just_id);
        let (c, new) = group.consumer_or_create(consumer, now);
        c.seen_time = now;
        created |= new;
        group.assign(id, consumer, now, delivery_count);
        claimed.push(if just_id { id_reply(id) } else { entry });
        count -= 1;
    }
    let cursor = if exhausted {
        StreamId::MIN
    } else {
        let after = last_seen.map_or(std::ops::Bound::Included(start), std::ops::Bound::Excluded);
        s.groups[&group_name[..]]
            .pending
            .range((after, std::ops::Bound::Unbounded))
            .next()
            .map_or(StreamId::MIN, |(id, _)| *id)
    };
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(vec![
        id_reply(cursor),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}

/// XAUTOCLAIM as logged: the state of the entries it claimed and of those it dropped.
fn xautoclaim_effects(ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let Reply::Array(parts) = reply else {
        return Vec::new();
    };
    let ids: Vec<StreamId> = parts[1..]
        .iter()
        .filter_map(|p| match p {
            Reply::Array(items) => Some(items.iter().filter_map(reply_entry_id)),
            _ => None,
        })
        .flatten()
        .collect();
    let Some(s) = logged_stream(ctx, &args[1]) else {
        return Vec::new();
    };
    group_effects(s, &args[1], &args[2], Some(&args[3]), &ids, true, false)
}

// ---------------------------------------------------------------------------------------------
// XINFO

const XINFO_SUBCOMMANDS: &[(&str, i32)] =
    &[("consumers", 4), ("groups", 3), ("stream", -3), ("help", 2)];

pub fn xinfo(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match xinfo_run(ctx, args) {
        Ok(r) | Err(r) => r,
    }
}

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(name), value)
}

fn first_or_nil(entry: Option<StreamEntry<'_>>) -> Reply {
    entry.map_or(Reply::Nil, |(id, pairs)| entry_reply(id, &pairs))
}

fn entries_read_reply(group: &ConsumerGroup) -> Reply {
    if group.entries_read == ENTRIES_READ_UNKNOWN {
        Reply::Nil
    } else {
        Reply::Int(group.entries_read)
    }
}

fn xinfo_run(ctx: &mut KeyCtx, args: &[Bytes]) -> Result<Reply, Reply> {
    let sub = subcommand(args, XINFO_SUBCOMMANDS, "XINFO")?;
    if sub == "help" {
        return Ok(help(
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        ));
    }
    let key = &args[2];
    let now = now_ms(ctx) as i64;
    let s = read_stream(ctx, key)?.ok_or_else(|| Reply::err("ERR no such key"))?;
    match sub {
        "consumers" => {
            let group = s
                .groups
                .get(&args[3][..])
                .ok_or_else(|| no_group_for_key(&args[3], key))?;
            Ok(Reply::Array(
                group
                    .consumers
                    .iter()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            field("name", Reply::bulk(name)),
                            field("pending", Reply::Int(c.pending.len() as i64)),
                            field("idle", Reply::Int((now - c.seen_time as i64).max(0))),
                        ])
                    })
                    .collect(),
            ))
        }
        "groups" => Ok(Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        field("name", Reply::bulk(name)),
                        field("consumers", Reply::Int(g.consumers.len() as i64)),
                        field("pending", Reply::Int(g.pending.len() as i64)),
                        field("last-delivered-id", id_reply(g.last_id)),
                        field("entries-read", entries_read_reply(g)),
                        field("lag", s.lag(g).map_or(Reply::Nil, Reply::Int)),
                    ])
                })
                .collect(),
        )),
        _ => xinfo_stream(s, &args[1], &args[3..]),
    }
}

fn xinfo_stream(s: &StreamValue, sub: &[u8], options: &[Bytes]) -> Result<Reply, Reply> {
    let mut full = false;
    let mut count = 10usize;
    if let Some(first) = options.first() {
        if !eq_ignore_case(first, "full") {
            return Err(subcommand_syntax_error(sub, "XINFO"));
        }
        full = true;
        if options.len() > 1 {
            if options.len() != 3 || !eq_ignore_case(&options[1], "count") {
                return Err(subcommand_syntax_error(sub, "XINFO"));
            }
            count = int_arg(&options[2])?.max(0) as usize;
        }
    }
    let mut fields = vec![
        field("length", Reply::Int(s.len() as i64)),
        field("radix-tree-keys", Reply::Int(s.node_count() as i64)),
        field("radix-tree-nodes", Reply::Int(s.radix_tree_nodes() as i64)),
        field("last-generated-id", id_reply(s.last_id)),
        field("max-deleted-entry-id", id_reply(s.max_deleted_id)),
        field("entries-added", Reply::Int(s.entries_added as i64)),
        field("recorded-first-entry-id", id_reply(s.first_id)),
    ];
    if !full {
        fields.push(field("groups", Reply::Int(s.groups.len() as i64)));
        fields.push(field("first-entry", first_or_nil(s.edge(false))));
        fields.push(field("last-entry", first_or_nil(s.edge(true))));
        return Ok(Reply::Map(fields));
    }
    let limit = if count == 0 { usize::MAX } else { count };
    let entries = s
        .range(StreamId::MIN, StreamId::MAX, false, count)
        .iter()
        .map(|(id, pairs)| entry_reply(*id, pairs))
        .collect();
    fields.push(field("entries", Reply::Array(entries)));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pending
                .iter()
                .take(limit)
                .map(|(id, p)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::bulk(&p.consumer),
                        Reply::Int(p.delivery_time as i64),
                        Reply::Int(p.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pending = c
                        .pending
                        .iter()
                        .take(limit)
                        .map(|id| {
                            let p = &g.pending[id];
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(p.delivery_time as i64),
                                Reply::Int(p.delivery_count as i64),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        field("name", Reply::bulk(cname)),
                        field("seen-time", Reply::Int(c.seen_time as i64)),
                        field("pel-count", Reply::Int(c.pending.len() as i64)),
                        field("pending", Reply::Array(pending)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                field("name", Reply::bulk(name)),
                field("last-delivered-id", id_reply(g.last_id)),
                field("entries-read", entries_read_reply(g)),
                field("lag", s.lag(g).map_or(Reply::Nil, Reply::Int)),
                field("pel-count", Reply::Int(g.pending.len() as i64)),
                field("pending", Reply::Array(pending)),
                field("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    fields.push(field("groups", Reply::Array(groups)));
    Ok(Reply::Map(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_reads_them() {
        let id = |s: &str| parse_id(s.as_bytes(), 0).ok();
        assert_eq!(id("5"), Some(StreamId::new(5, 0)));
        assert_eq!(id("5-3"), Some(StreamId::new(5, 3)));
        assert_eq!(id("+5-3"), Some(StreamId::new(5, 3)));
        assert_eq!(id(" 7"), Some(StreamId::new(7, 0)));
        assert_eq!(id("\x0b\t7"), Some(StreamId::new(7, 0)));
        assert_eq!(id(" -1"), None);
        assert_eq!(id("5- -1"), Some(StreamId::new(5, u64::MAX)));
        assert_eq!(id("-"), Some(StreamId::MIN));
        assert_eq!(id("+"), Some(StreamId::MAX));
        assert_eq!(id("-1"), None);
        assert_eq!(
            id("18446744073709551615-18446744073709551615"),
            Some(StreamId::MAX)
        );
        assert_eq!(id("18446744073709551616"), None);
        assert_eq!(id("1-2-3"), None);
        assert_eq!(id("x"), None);
        assert!(parse_strict_id(b"-").is_err());
        assert_eq!(
            parse_id_full(b"5-*", 0, true, true).ok(),
            Some((StreamId::new(5, 0), false))
        );
        assert!(parse_strict_id(b"5-*").is_err());
    }

    #[test]
    fn read_keys_are_the_first_half_after_streams() {
        let args: Vec<Bytes> = ["xread", "count", "2", "STREAMS", "a", "b", "0", "0"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(read_keys(&args), vec![4, 5]);
    }
}
