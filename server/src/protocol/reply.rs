//! Replies, independent of protocol version, and their RESP2 / RESP3 encodings.

use bytes::Bytes;

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// A status built at run time (rare: TYPE's answer, CLIENT reply texts).
    StatusOwned(String),
    /// An error line without the leading `-`; it carries its own prefix (`ERR ...`, `WRONGTYPE ...`).
    Error(String),
    /// An error line that echoes bytes a client sent (an unknown command's name, say), which need
    /// not be UTF-8: Redis echoes them as they came. Built by [`Reply::error_bytes`], which keeps
    /// the line one line.
    ErrorBytes(Bytes),
    /// An error already counted in INFO's error stats where it arose: a script's error raised
    /// by a command it called (Redis's ERR_REPLY_FLAG_NO_STATS_UPDATE). The script's command
    /// still counts it as a failed call.
    CountedError(Bytes),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk in RESP2 (`$-1`), `_` in RESP3.
    Nil,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// A map in RESP3, a flat array of key, value, ... in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// An array of two-element arrays in RESP3, a flat array in RESP2 (ZRANGE WITHSCORES).
    Pairs(Vec<(Reply, Reply)>),
    /// A map in RESP3, an array of two-element arrays in RESP2 (XREAD's streams).
    KeyedArrays(Vec<(Reply, Reply)>),
    /// A double in RESP3 (`,`), a bulk string in RESP2.
    Double(f64),
    /// A coordinate as Redis's addReplyHumanLongDouble writes it (`%.17Lf`, trailing zeros
    /// dropped): a double in RESP3, a bulk string in RESP2 (GEOPOS, WITHCOORD).
    HumanDouble(f64),
    /// `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// Verbatim text (`=`) in RESP3, a bulk string in RESP2.
    Verbatim(Bytes),
    /// A big number (`(`) in RESP3, a bulk string in RESP2 (a script's `{big_number=...}`).
    BigNumber(Bytes),
    /// Pre-encoded bytes written as they are (used where a reply is cached).
    Raw(Bytes),
}

pub const OK: Reply = Reply::Status("OK");

/// Redis's error for an argument that is not a 64-bit integer.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// Redis's error for options it cannot parse.
pub const SYNTAX: &str = "ERR syntax error";

impl Reply {
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    /// An error echoing client bytes, as Redis's `addReplyErrorFormat` sends it: CR and LF become
    /// spaces so the error stays one protocol line.
    pub fn error_bytes(mut msg: Vec<u8>) -> Reply {
        for c in &mut msg {
            if *c == b'\r' || *c == b'\n' {
                *c = b' ';
            }
        }
        Reply::ErrorBytes(Bytes::from(msg))
    }

    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Reply::Error(_) | Reply::ErrorBytes(_) | Reply::CountedError(_)
        )
    }

    pub fn encode(&self, out: &mut Vec<u8>, resp3: bool) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::StatusOwned(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::ErrorBytes(s) | Reply::CountedError(s) => line(out, b'-', s),
            Reply::Int(i) => {
                out.push(b':');
                out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for r in items {
                    r.encode(out, resp3);
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                for r in items {
                    r.encode(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Pairs(pairs) => {
                if resp3 {
                    header(out, b'*', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (a, b) in pairs {
                    if resp3 {
                        header(out, b'*', 2);
                    }
                    a.encode(out, resp3);
                    b.encode(out, resp3);
                }
            }
            Reply::KeyedArrays(pairs) => {
                header(out, if resp3 { b'%' } else { b'*' }, pairs.len());
                for (k, v) in pairs {
                    if !resp3 {
                        header(out, b'*', 2);
                    }
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Double(d) => double(out, &format_double(*d), resp3),
            Reply::HumanDouble(d) => double(out, &format_human_double(*d), resp3),
            Reply::Bool(b) => {
                if resp3 {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Reply::Verbatim(b) => {
                if resp3 {
                    header(out, b'=', b.len() + 4);
                    out.extend_from_slice(b"txt:");
                    out.extend_from_slice(b);
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, b);
                }
            }
            Reply::BigNumber(b) => {
                if resp3 {
                    line(out, b'(', b);
                } else {
                    bulk(out, b);
                }
            }
            Reply::Raw(b) => out.extend_from_slice(b),
        }
    }
}

/// What C's `printf("%.{max}s", bytes)` prints of a client's argument: the bytes up to the first
/// NUL (C strings end there), at most `max` of them. Redis builds the errors that echo arguments
/// this way, so ours echo the same bytes.
pub fn c_string(bytes: &[u8], max: usize) -> &[u8] {
    let end = memchr::memchr(0, bytes).unwrap_or(bytes.len()).min(max);
    &bytes[..end]
}

fn line(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A double's text: `,text` in RESP3, a bulk string in RESP2.
fn double(out: &mut Vec<u8>, text: &str, resp3: bool) {
    if resp3 {
        line(out, b',', text.as_bytes());
    } else {
        bulk(out, text.as_bytes());
    }
}

pub(crate) fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double as Redis 7.0 does in replies (`%.17g`, with `inf`/`-inf`/`nan`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format_g(d, 17)
}

/// Redis's ld2string in LD_STR_HUMAN mode: `%.17Lf` (exact for a double), trailing zeros and
/// a trailing dot dropped, `-0` written `0`.
pub fn format_human_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let mut text = format!("{d:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".into();
    }
    text
}

/// C's `%.{precision}g`.
pub fn format_g(d: f64, precision: usize) -> String {
    let p = precision.max(1);
    // An integer of at most `p` digits prints as itself (no exponent, nothing to round); the
    // exact formatting below costs ~2,500 instructions (ZPOPMIN's reply of an integer score).
    // (Zero goes the long way for its sign; p is capped where i64 would overflow.)
    if d != 0.0 && d.fract() == 0.0 && d.abs() < 10f64.powi(p.min(18) as i32) {
        return (d as i64).to_string();
    }
    format_g_exact(d, p)
}

/// `%.{p}g` from the exact decimal expansion rounded to `p` significant digits.
fn format_g_exact(d: f64, p: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, exp) = match short_digits(d, p) {
        Some((digits, exp)) => (digits.to_string(), exp),
        None => {
            let sci = format!("{:.*e}", p - 1, d.abs());
            let (mantissa, exp) = sci.split_once('e').expect("exponent form");
            (
                mantissa.replace('.', ""),
                exp.parse().expect("exponent digits"),
            )
        }
    };
    let sign = if d < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= p as i32 {
        let mut mantissa = digits[..1].to_string();
        if digits.len() > 1 {
            mantissa.push('.');
            mantissa.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{sign}{}e{exp_sign}{:02}",
            trim_fraction(&mantissa),
            exp.abs()
        )
    } else {
        // The fixed form has the same p digits (C's %g rounds once, for the %e form): the
        // point is placed in them.
        let mut fixed = String::with_capacity(p + 8);
        fixed.push_str(sign);
        if exp >= 0 {
            let whole = exp as usize + 1;
            fixed.push_str(&digits[..whole]);
            if whole < digits.len() {
                fixed.push('.');
                fixed.push_str(&digits[whole..]);
            }
        } else {
            fixed.push_str("0.");
            for _ in 0..(-exp - 1) {
                fixed.push('0');
            }
            fixed.push_str(&digits);
        }
        trim_fraction(&fixed).to_string()
    }
}

/// The `p` significant digits of a fraction between 1e-6 and 2^53, correctly rounded (ties
/// to even, as printf), with the decimal exponent of the first: in u128 arithmetic, since
/// `mantissa * 10^s` stays below 2^127 there, where core's exact formatting falls back to
/// big-number arithmetic for 17 digits (~3,500 instructions a double: ZSCORE's and ZRANGE
/// WITHSCORES' replies). None elsewhere.
fn short_digits(d: f64, p: usize) -> Option<(u128, i32)> {
    let a = d.abs();
    if !(1e-6..9007199254740992.0).contains(&a) || a.fract() == 0.0 || p > 17 {
        return None;
    }
    let bits = a.to_bits();
    let mantissa = (bits & ((1u64 << 52) - 1) | (1u64 << 52)) as u128;
    let shift = 1075 - ((bits >> 52) & 0x7ff) as u32; // a = mantissa / 2^shift, shift >= 1
    let low = 10u128.pow(p as u32 - 1);
    let mut exp = a.log10().floor() as i32;
    for _ in 0..3 {
        let s = p as i32 - 1 - exp;
        if !(0..=22).contains(&s) {
            return None;
        }
        let scaled = mantissa * 10u128.pow(s as u32);
        let truncated = scaled >> shift;
        if truncated < low {
            exp -= 1;
            continue;
        }
        if truncated >= low * 10 {
            exp += 1;
            continue;
        }
        let rest = scaled & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let mut digits = truncated;
        if rest > half || (rest == half && digits & 1 == 1) {
            digits += 1;
        }
        if digits == low * 10 {
            return Some((low, exp + 1));
        }
        return Some((digits, exp));
    }
    None
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut out = Vec::new();
        r.encode(&mut out, resp3);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
        let m = Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), true), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), false), ":1\r\n");
    }

    /// `%.{p}g` as it was first written here (formatting the fixed form a second time): the
    /// reference the digit placing must match.
    fn format_g_twice(d: f64, p: usize) -> String {
        let sci = format!("{:.*e}", p - 1, d);
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        if exp < -4 || exp >= p as i32 {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{}e{sign}{:02}", trim_fraction(mantissa), exp.abs())
        } else {
            let decimals = (p as i32 - 1 - exp).max(0) as usize;
            trim_fraction(&format!("{:.*}", decimals, d)).to_string()
        }
    }

    /// The u128 digits agree with core's exact formatting wherever they are used.
    #[test]
    fn short_digits_round_as_exact_formatting_does() {
        let mut seed = 5u64;
        let mut used = 0;
        for i in 0..100_000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = match i % 3 {
                // Any bits in the range (all 52 fraction bits in play).
                0 => f64::from_bits(0x3EB0_0000_0000_0000 + (seed >> 12) % 0x0950_0000_0000_0000),
                // Short decimals, as scores are written: ties and near-ties of rounding.
                1 => (seed % 100_000_000) as f64 / 10f64.powi((seed >> 40) as i32 % 9),
                _ => (seed >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((seed % 22) as i32 - 6),
            };
            for p in [1, 6, 15, 16, 17] {
                if let Some((digits, exp)) = short_digits(d, p) {
                    used += 1;
                    let sci = format!("{:.*e}", p - 1, d);
                    let (mantissa, e) = sci.split_once('e').unwrap();
                    assert_eq!(
                        digits.to_string(),
                        mantissa.replace('.', ""),
                        "{d:e} at {p}"
                    );
                    assert_eq!(exp, e.parse::<i32>().unwrap(), "{d:e} at {p}");
                }
            }
        }
        assert!(used > 200_000, "the short cut was taken {used} times");
    }

    #[test]
    fn fractional_doubles_print_as_printf_g_does() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(-0.0001), "-0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(9.999999999999998), "9.9999999999999982");
        assert_eq!(format_double(99.99999999999999), "99.999999999999986");
        assert_eq!(format_double(13.361389338970184), "13.361389338970184");
        assert_eq!(format_g(9.96, 2), "10");
        assert_eq!(format_g(0.000999, 2), "0.001");
        let mut seed = 11u64;
        for _ in 0..50_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let d = unit * 10f64.powi((seed % 30) as i32 - 10);
            let d = if seed & 2 == 0 { d } else { -d };
            if d == 0.0 {
                continue;
            }
            for p in [1, 2, 6, 15, 17] {
                assert_eq!(format_g_exact(d, p), format_g_twice(d, p), "{d:e} at {p}");
            }
        }
    }

    /// Integers take a short cut that must print what `%.17g` (and `%.{p}g`) prints.
    #[test]
    fn integral_doubles_print_as_printf_g_does() {
        assert_eq!(format_double(123456.0), "123456");
        assert_eq!(format_double(-5.0), "-5");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(99999999999999984.0), "99999999999999984");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double((1u64 << 60) as f64), "1.152921504606847e+18");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_g(123456.0, 5), "1.2346e+05");
        assert_eq!(format_g(12345.0, 5), "12345");
        let mut seed = 7u64;
        for i in 0..20_000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let magnitude = 10f64.powi((i % 19) as i32);
            let d = ((seed >> 11) as f64 / (1u64 << 53) as f64 * magnitude).trunc();
            let d = if seed & 1 == 0 { d } else { -d };
            for p in [1, 5, 15, 17, 20] {
                assert_eq!(format_g(d, p), format_g_exact(d, p), "{d} at {p}");
            }
        }
    }

    #[test]
    fn human_doubles_print_as_ld2string_does() {
        assert_eq!(
            format_human_double(13.361389338970184),
            "13.36138933897018433"
        );
        assert_eq!(format_human_double(180.0), "180");
        assert_eq!(format_human_double(-0.0), "0");
        assert_eq!(format_human_double(-2.5), "-2.5");
        // Exact ties at the 18th decimal round to even, as glibc's printf does.
        assert_eq!(format_human_double(2f64.powi(-18)), "0.00000381469726562");
        assert_eq!(
            format_human_double(3.0 * 2f64.powi(-18)),
            "0.00001144409179688"
        );
        assert_eq!(enc(&Reply::HumanDouble(1.5), true), ",1.5\r\n");
        assert_eq!(enc(&Reply::HumanDouble(1.5), false), "$3\r\n1.5\r\n");
    }

    #[test]
    fn errors_echo_client_bytes_on_one_line() {
        let mut out = Vec::new();
        Reply::error_bytes(b"ERR '\xff\r\n'".to_vec()).encode(&mut out, false);
        assert_eq!(out, b"-ERR '\xff  '\r\n");
        assert_eq!(c_string(b"ab\0cd", 128), b"ab");
        assert_eq!(c_string(b"abcd", 2), b"ab");
        assert_eq!(c_string(b"\xff\xfe", 128), b"\xff\xfe");
    }

    #[test]
    fn percent_g_formatting() {
        assert_eq!(format_g(1.5, 17), "1.5");
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(100.0, 17), "100");
        assert_eq!(format_g(1e20, 17), "1e+20");
        assert_eq!(format_g(1.25e-5, 17), "1.2500000000000001e-05");
        assert_eq!(format_double(f64::INFINITY), "inf");
    }
}
