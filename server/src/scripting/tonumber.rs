//! `tonumber` with a fast path for decimal integers, the shape scripts convert most (a
//! counter read with `redis.call('get', ...)`, an ARGV limit or timestamp).
//!
//! Lua 5.1's own `tonumber` converts a string twice (`lua_isnumber`, then `lua_tonumber`),
//! each time through C's `strtod`: about 1,800 of a small script's 24,000 instructions
//! (callgrind, BENCHMARKS.md "Lua scripts and functions"). This is the same function (lbaselib.c's
//! `luaB_tonumber`, the same errors through the same `luaL_*` calls, so that a message names
//! `tonumber` as Lua's does), except that a string of at most 15 digits with an optional
//! leading minus, which `strtod` reads exactly, is read here directly.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

/// The replacement for the global `tonumber`.
///
/// # Safety
/// Called by Lua only. It may raise Lua errors (the argument checks); its frame holds nothing
/// that needs dropping.
pub unsafe extern "C-unwind" fn tonumber(l: *mut lua_State) -> c_int {
    // (luaL_optint: the C int of the integer.)
    let base = ffi::luaL_optinteger(l, 2, 10) as c_int;
    if base == 10 {
        ffi::luaL_checkany(l, 1);
        if ffi::lua_type(l, 1) == ffi::LUA_TSTRING {
            let mut len = 0;
            let text = ffi::lua_tolstring(l, 1, &mut len);
            if let Some(n) = decimal_integer(std::slice::from_raw_parts(text.cast(), len)) {
                ffi::lua_pushnumber(l, n);
                return 1;
            }
        }
        if ffi::lua_isnumber(l, 1) != 0 {
            ffi::lua_pushnumber(l, ffi::lua_tonumber(l, 1));
            return 1;
        }
    } else {
        let mut len = 0;
        let s1 = ffi::luaL_checklstring(l, 1, &mut len);
        if !(2..=36).contains(&base) {
            ffi::luaL_argerror(l, 2, c"base out of range".as_ptr());
        }
        let mut s2: *mut std::ffi::c_char = std::ptr::null_mut();
        let n = libc::strtoul(s1, &mut s2, base);
        if s1 != s2.cast_const() {
            while (*s2 as u8).is_ascii_whitespace() || *s2 as u8 == 0x0b {
                s2 = s2.add(1);
            }
            if *s2 == 0 {
                ffi::lua_pushnumber(l, n as f64);
                return 1;
            }
        }
    }
    ffi::lua_pushnil(l);
    1
}

/// `-?[0-9]{1,15}`: the value `strtod` gives it (exact: under 2^53), else None.
fn decimal_integer(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    let n = n as f64;
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::decimal_integer;

    #[test]
    fn only_plain_decimal_integers_take_the_fast_path() {
        assert_eq!(decimal_integer(b"42"), Some(42.0));
        assert_eq!(decimal_integer(b"-17"), Some(-17.0));
        assert_eq!(decimal_integer(b"007"), Some(7.0));
        assert_eq!(
            decimal_integer(b"999999999999999"),
            Some(999_999_999_999_999.0)
        );
        // strtod's -0 is negative zero, as here.
        assert!(decimal_integer(b"-0").is_some_and(|z| z == 0.0 && z.is_sign_negative()));
        for slow in [
            &b""[..],
            b"-",
            b"+5",
            b" 5",
            b"5 ",
            b"1e3",
            b"0x10",
            b"1.5",
            b"1234567890123456",
            b"inf",
        ] {
            assert_eq!(decimal_integer(slow), None, "{slow:?}");
        }
    }
}
