//! The conversions between Redis replies and Lua values, both ways, as Redis documents them.
//!
//! A command's reply in Lua (`redis.call`), by the protocol the script chose (`redis.setresp`):
//! integers are numbers, bulk strings strings, a null false (RESP2) or nil (RESP3), a status
//! `{ok=...}`, an error `{err=...}`, arrays tables; in RESP3 maps, sets, doubles, big numbers
//! and verbatim strings are tables named by their kind, booleans booleans. In RESP2 those read
//! as their RESP2 form (a map a flat array, a double a string, a boolean 1 or 0).
//!
//! A script's value as a reply: strings bulk strings, numbers integers (truncated), true 1 and
//! false a null (RESP2; RESP3 booleans under `setresp(3)`), tables arrays up to their first nil
//! unless they are `{err=...}`, `{ok=...}`, `{double=...}`, `{big_number=...}`,
//! `{verbatim_string=...}`, `{map=...}` or `{set=...}`; anything else a null.

use std::ffi::CStr;

use bytes::Bytes;
use mlua::ffi::{self, lua_State};
use mlua::{Table, Value};

use crate::protocol::reply::{format_double, format_human_double};
use crate::protocol::Reply;

/// How deep a reply nests before the rest reads as an error: Redis stops where the Lua stack
/// runs out, and a table that contains itself must not take the server's stack.
const MAX_DEPTH: usize = 1000;

/// C's "%.17g", which Redis uses for numbers passed to `redis.call`.
pub fn g17(n: f64) -> Vec<u8> {
    // A whole number below 2^53 in magnitude is written by "%.17g" as its digits (17
    // significant digits cover it, and it is exact): the common case (counters, scores,
    // timestamps) without snprintf's float formatting.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 && !(n == 0.0 && n.is_sign_negative())
    {
        return (n as i64).to_string().into_bytes();
    }
    c_format(n, c"%.17g")
}

/// Lua 5.1's "%.14g", how `tostring` and string coercion write a number.
pub fn lua_number_text(n: f64) -> String {
    String::from_utf8_lossy(&c_format(n, c"%.14g")).into_owned()
}

fn c_format(n: f64, fmt: &std::ffi::CStr) -> Vec<u8> {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for any %g output of a double at these precisions,
    // and snprintf never writes past the size it is given.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), n) };
    buf[..(len.max(0) as usize).min(buf.len() - 1)].to_vec()
}

/// Redis's luaPushErrorBuff for an error reply's text: "CODE msg" keeps its code, a text
/// without a space gets ERR; line ends are trimmed.
pub fn error_text(line: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (b"ERR", line),
    };
    let msg = trim_line_ends(msg);
    let mut out = Vec::with_capacity(code.len() + 1 + msg.len());
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(msg);
    out
}

fn trim_line_ends(mut s: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// Readies a command's reply for [`push_reply`], before any Lua code runs: what would need a
/// Rust allocation while Lua may raise an error (an error's text as Redis's luaPushErrorBuff
/// writes it, RESP2's text of a double, a cached raw reply read back) is made here, so that
/// the push holds nothing that must be dropped.
pub fn ready_for_lua(reply: &mut Reply, resp3: bool) {
    match reply {
        Reply::Error(s) => *reply = Reply::ErrorBytes(Bytes::from(error_text(s.as_bytes()))),
        Reply::ErrorBytes(s) | Reply::CountedError(s) => *s = Bytes::from(error_text(s)),
        Reply::Double(d) if !resp3 => *reply = Reply::Bulk(Bytes::from(format_double(*d))),
        Reply::HumanDouble(d) if !resp3 => {
            *reply = Reply::Bulk(Bytes::from(format_human_double(*d)))
        }
        Reply::Array(items) | Reply::Set(items) => {
            items.iter_mut().for_each(|r| ready_for_lua(r, resp3))
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::KeyedArrays(pairs) => {
            for (k, v) in pairs {
                ready_for_lua(k, resp3);
                ready_for_lua(v, resp3);
            }
        }
        Reply::Raw(bytes) => {
            *reply = match crate::protocol::resp_reader::read_all(bytes) {
                Ok(mut replies) if replies.len() == 1 => {
                    let mut one = replies.pop().expect("one reply");
                    ready_for_lua(&mut one, resp3);
                    one
                }
                _ => Reply::ErrorBytes(Bytes::from_static(b"ERR reply could not be read")),
            }
        }
        _ => {}
    }
}

/// Pushes a command's reply, readied by [`ready_for_lua`], as the Lua value `redis.call`
/// gives the script.
///
/// # Safety
/// `l` is a running Lua state with room for one more value. Lua may raise an error here (a
/// failed allocation, a stack overflow): nothing of this function needs dropping then.
pub unsafe fn push_reply(l: *mut lua_State, reply: &Reply, resp3: bool, depth: usize) {
    ffi::luaL_checkstack(l, 4, c"a reply nested too deep".as_ptr());
    if depth > MAX_DEPTH {
        return push_named(l, c"err", |l| push_bytes(l, b"ERR reached lua stack limit"));
    }
    match reply {
        Reply::Status(s) => push_named(l, c"ok", |l| push_bytes(l, s.as_bytes())),
        Reply::StatusOwned(s) => push_named(l, c"ok", |l| push_bytes(l, s.as_bytes())),
        // (Readied: the text as luaPushErrorBuff leaves it.) Marked as counted already: the
        // command's error went into the stats when it was answered, as Redis marks it.
        Reply::Error(s) => push_error(l, s.as_bytes()),
        Reply::ErrorBytes(s) | Reply::CountedError(s) => push_error(l, s),
        Reply::Int(i) => ffi::lua_pushnumber(l, *i as f64),
        Reply::Bulk(b) => push_bytes(l, b),
        Reply::Nil | Reply::NilArray if resp3 => ffi::lua_pushnil(l),
        Reply::Nil | Reply::NilArray => ffi::lua_pushboolean(l, 0),
        Reply::Array(items) => push_array(l, items.iter(), items.len(), resp3, depth),
        Reply::Set(items) if resp3 => push_named(l, c"set", |l| {
            ffi::lua_createtable(l, 0, table_size(items.len()));
            for item in items {
                push_reply(l, item, resp3, depth + 1);
                ffi::lua_pushboolean(l, 1);
                ffi::lua_rawset(l, -3);
            }
        }),
        Reply::Set(items) => push_array(l, items.iter(), items.len(), resp3, depth),
        Reply::Map(pairs) | Reply::KeyedArrays(pairs) if resp3 => push_named(l, c"map", |l| {
            ffi::lua_createtable(l, 0, table_size(pairs.len()));
            for (k, v) in pairs {
                push_reply(l, k, resp3, depth + 1);
                push_reply(l, v, resp3, depth + 1);
                ffi::lua_rawset(l, -3);
            }
        }),
        Reply::Map(pairs) | Reply::Pairs(pairs) if !resp3 => {
            let flat = pairs.iter().flat_map(|(k, v)| [k, v]);
            push_array(l, flat, pairs.len() * 2, resp3, depth)
        }
        Reply::Pairs(pairs) | Reply::KeyedArrays(pairs) => {
            ffi::lua_createtable(l, table_size(pairs.len()), 0);
            for (i, (a, b)) in pairs.iter().enumerate() {
                ffi::lua_createtable(l, 2, 0);
                push_reply(l, a, resp3, depth + 1);
                ffi::lua_rawseti(l, -2, 1);
                push_reply(l, b, resp3, depth + 1);
                ffi::lua_rawseti(l, -2, 2);
                ffi::lua_rawseti(l, -2, i as i64 + 1);
            }
        }
        Reply::Map(_) => unreachable!("maps are handled above for both protocols"),
        Reply::Double(d) | Reply::HumanDouble(d) if resp3 => {
            push_named(l, c"double", |l| ffi::lua_pushnumber(l, *d))
        }
        // (Readied into bulk strings.)
        Reply::Double(_) | Reply::HumanDouble(_) => ffi::lua_pushnil(l),
        Reply::Bool(b) if resp3 => ffi::lua_pushboolean(l, *b as i32),
        Reply::Bool(b) => ffi::lua_pushnumber(l, if *b { 1.0 } else { 0.0 }),
        Reply::Verbatim(text) if resp3 => push_named(l, c"verbatim_string", |l| {
            ffi::lua_createtable(l, 0, 2);
            push_bytes(l, b"txt");
            ffi::lua_setfield(l, -2, c"format".as_ptr());
            push_bytes(l, text);
            ffi::lua_setfield(l, -2, c"string".as_ptr());
        }),
        Reply::Verbatim(text) => push_bytes(l, text),
        Reply::BigNumber(n) if resp3 => push_named(l, c"big_number", |l| push_bytes(l, n)),
        Reply::BigNumber(n) => push_bytes(l, n),
        // (Readied into the reply it holds.)
        Reply::Raw(_) => push_named(l, c"err", |l| push_bytes(l, b"ERR reply could not be read")),
    }
}

/// A table size hint for `lua_createtable` (an int in C).
fn table_size(len: usize) -> i32 {
    len.min(i32::MAX as usize) as i32
}

unsafe fn push_bytes(l: *mut lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
}

/// A table of one field, `{name = value}`, the value pushed by `value`.
/// The field of an error table that says its error was counted in the stats already (Redis's
/// name for it).
pub const COUNTED: &str = "ignore_error_stats_update";

/// A command's error as `{err=..., ignore_error_stats_update=true}`.
unsafe fn push_error(l: *mut lua_State, text: &[u8]) {
    push_named(l, c"err", |l| push_bytes(l, text));
    ffi::lua_pushboolean(l, 1);
    ffi::lua_setfield(l, -2, c"ignore_error_stats_update".as_ptr());
}

unsafe fn push_named(l: *mut lua_State, name: &CStr, value: impl FnOnce(*mut lua_State)) {
    ffi::lua_createtable(l, 0, 1);
    value(l);
    // (A new table has no metatable: this is a raw set.)
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn push_array<'r>(
    l: *mut lua_State,
    items: impl Iterator<Item = &'r Reply>,
    len: usize,
    resp3: bool,
    depth: usize,
) {
    ffi::lua_createtable(l, table_size(len), 0);
    for (i, item) in items.enumerate() {
        push_reply(l, item, resp3, depth + 1);
        ffi::lua_rawseti(l, -2, i as i64 + 1);
    }
}

/// Pushes a table of strings, `{items[1], items[2], ...}` (KEYS, ARGV).
///
/// # Safety
/// As for [`push_reply`].
pub unsafe fn push_strings(l: *mut lua_State, items: &[Bytes]) {
    ffi::luaL_checkstack(l, 2, std::ptr::null());
    ffi::lua_createtable(l, table_size(items.len()), 0);
    for (i, item) in items.iter().enumerate() {
        push_bytes(l, item);
        ffi::lua_rawseti(l, -2, i as i64 + 1);
    }
}

/// A script's value as its reply. `resp3` is the protocol the script chose (`setresp`): it
/// decides booleans only, the caller's own protocol decides the rest when the reply is sent.
pub fn lua_to_reply(value: &Value, resp3: bool, depth: usize) -> Reply {
    match value {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(truncate(*n)),
        Value::Table(t) if depth > MAX_DEPTH => {
            let _ = t;
            Reply::err("ERR reached lua stack limit")
        }
        Value::Table(t) => table_to_reply(t, resp3, depth),
        _ => Reply::Nil,
    }
}

/// C's `(long long)` of a double as x86 computes it: out of range (or NaN) is the minimum.
fn truncate(n: f64) -> i64 {
    if n.is_finite() && n > -9.223_372_036_854_776e18 && n < 9.223_372_036_854_776e18 {
        n.trunc() as i64
    } else {
        i64::MIN
    }
}

fn one_line(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

/// An error reply made from error table `t`: counted already when `t` says so.
pub fn counted_or_not(reply: Reply, t: &Table) -> Reply {
    match reply {
        Reply::ErrorBytes(b) if matches!(t.raw_get::<Value>(COUNTED), Ok(Value::Boolean(true))) => {
            Reply::CountedError(b)
        }
        other => other,
    }
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return counted_or_not(Reply::error_bytes(e.as_bytes().to_vec()), t);
    }
    if let Value::String(s) = field("ok") {
        return Reply::StatusOwned(String::from_utf8_lossy(&one_line(&s.as_bytes())).into_owned());
    }
    match field("double") {
        Value::Number(d) => return Reply::Double(d),
        Value::Integer(i) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Value::String(n) = field("big_number") {
        return Reply::BigNumber(Bytes::from(one_line(&n.as_bytes())));
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let (Ok(Value::String(_)), Ok(Value::String(text))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Reply::Verbatim(Bytes::copy_from_slice(&text.as_bytes()));
        }
    }
    if let Value::Table(map) = field("map") {
        let pairs = map
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    lua_to_reply(&k, resp3, depth + 1),
                    lua_to_reply(&v, resp3, depth + 1),
                )
            })
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(set) = field("set") {
        let members = set
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| lua_to_reply(&k, resp3, depth + 1))
            .collect();
        return Reply::Set(members);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply(&v, resp3, depth + 1)),
        }
    }
    Reply::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_c_writes_them() {
        assert_eq!(g17(1.5), b"1.5");
        assert_eq!(g17(0.1), b"0.10000000000000001");
        assert_eq!(g17(1e17), b"1e+17");
        assert_eq!(g17(42.0), b"42");
        for n in [
            0.0,
            -0.0,
            7.0,
            -7.0,
            1e15,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1e16,
            -1e17,
            2.5e-300,
        ] {
            assert_eq!(g17(n), c_format(n, c"%.17g"), "{n}");
        }
        assert_eq!(lua_number_text(3.7), "3.7");
    }

    #[test]
    fn error_texts_keep_or_get_their_code() {
        assert_eq!(error_text(b"WRONGTYPE Operation"), b"WRONGTYPE Operation");
        assert_eq!(error_text(b"NOSPACE"), b"ERR NOSPACE");
        assert_eq!(error_text(b"ERR x\r\n"), b"ERR x");
    }

    #[test]
    fn numbers_truncate_like_c() {
        assert_eq!(truncate(3.99), 3);
        assert_eq!(truncate(-3.99), -3);
        assert_eq!(truncate(f64::NAN), i64::MIN);
        assert_eq!(truncate(1e300), i64::MIN);
    }
}
