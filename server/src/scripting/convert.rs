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

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::protocol::reply::{format_double, format_human_double};
use crate::protocol::Reply;

/// How deep a reply nests before the rest reads as an error: Redis stops where the Lua stack
/// runs out, and a table that contains itself must not take the server's stack.
const MAX_DEPTH: usize = 1000;

/// C's "%.17g", which Redis uses for numbers passed to `redis.call`.
pub fn g17(n: f64) -> Vec<u8> {
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

fn named(lua: &Lua, name: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(name, value)?;
    Ok(Value::Table(t))
}

/// A command's reply as the Lua value `redis.call` gives the script.
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return named(lua, "err", "ERR reached lua stack limit");
    }
    let string = |b: &[u8]| -> mlua::Result<Value> { Ok(Value::String(lua.create_string(b)?)) };
    let array = |items: &mut dyn Iterator<Item = &Reply>, len: usize| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(len, 0)?;
        for (i, item) in items.enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, item, resp3, depth + 1)?)?;
        }
        Ok(Value::Table(t))
    };
    match reply {
        Reply::Status(s) => named(lua, "ok", lua.create_string(s)?),
        Reply::StatusOwned(s) => named(lua, "ok", lua.create_string(s)?),
        Reply::Error(s) => named(lua, "err", lua.create_string(error_text(s.as_bytes()))?),
        Reply::ErrorBytes(s) => named(lua, "err", lua.create_string(error_text(s))?),
        Reply::Int(i) => Ok(Value::Number(*i as f64)),
        Reply::Bulk(b) => string(b),
        Reply::Nil | Reply::NilArray => Ok(if resp3 {
            Value::Nil
        } else {
            Value::Boolean(false)
        }),
        Reply::Array(items) => array(&mut items.iter(), items.len()),
        Reply::Set(items) if resp3 => {
            let set = lua.create_table_with_capacity(0, items.len())?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp3, depth + 1)?, true)?;
            }
            named(lua, "set", set)
        }
        Reply::Set(items) => array(&mut items.iter(), items.len()),
        Reply::Map(pairs) | Reply::KeyedArrays(pairs) if resp3 => {
            let map = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                map.raw_set(
                    reply_to_lua(lua, k, resp3, depth + 1)?,
                    reply_to_lua(lua, v, resp3, depth + 1)?,
                )?;
            }
            named(lua, "map", map)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) if !resp3 => {
            array(&mut pairs.iter().flat_map(|(k, v)| [k, v]), pairs.len() * 2)
        }
        Reply::Pairs(pairs) | Reply::KeyedArrays(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len(), 0)?;
            for (i, (a, b)) in pairs.iter().enumerate() {
                let pair = lua.create_table_with_capacity(2, 0)?;
                pair.raw_set(1, reply_to_lua(lua, a, resp3, depth + 1)?)?;
                pair.raw_set(2, reply_to_lua(lua, b, resp3, depth + 1)?)?;
                t.raw_set(i + 1, pair)?;
            }
            Ok(Value::Table(t))
        }
        Reply::Map(_) => unreachable!("maps are handled above for both protocols"),
        Reply::Double(d) if resp3 => named(lua, "double", *d),
        Reply::Double(d) => string(format_double(*d).as_bytes()),
        Reply::HumanDouble(d) if resp3 => named(lua, "double", *d),
        Reply::HumanDouble(d) => string(format_human_double(*d).as_bytes()),
        Reply::Bool(b) if resp3 => Ok(Value::Boolean(*b)),
        Reply::Bool(b) => Ok(Value::Number(if *b { 1.0 } else { 0.0 })),
        Reply::Verbatim(text) if resp3 => {
            let v = lua.create_table_with_capacity(0, 2)?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(text)?)?;
            named(lua, "verbatim_string", v)
        }
        Reply::Verbatim(text) => string(text),
        Reply::BigNumber(n) if resp3 => named(lua, "big_number", lua.create_string(n)?),
        Reply::BigNumber(n) => string(n),
        Reply::Raw(bytes) => match crate::protocol::resp_reader::read_all(bytes) {
            Ok(replies) if replies.len() == 1 => reply_to_lua(lua, &replies[0], resp3, depth),
            _ => named(lua, "err", "ERR reply could not be read"),
        },
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

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return Reply::error_bytes(e.as_bytes().to_vec());
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
