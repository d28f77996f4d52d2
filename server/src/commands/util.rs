//! Argument parsing shared by commands, with Redis's exact error texts.

use bytes::Bytes;
use warpengine_storage::value::parse_strict_i64;

use crate::protocol::reply::c_string;
use crate::protocol::Reply;

pub use crate::protocol::reply::{NOT_INTEGER, SYNTAX};
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const DB_OUT_OF_RANGE: &str = "ERR DB index is out of range";
/// An integer argument that Redis reads as a C int (getIntFromObjectOrReply).
pub const INT_RANGE: &str =
    "ERR value is out of range, value must between -2147483648 and 2147483647";

pub fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_strict_i64(arg).ok_or_else(|| Reply::err(NOT_INTEGER))
}

/// Parses a float as Redis's `string2ld`/`strtold` does: no surrounding spaces, `inf` allowed,
/// NaN refused.
pub fn float_arg(arg: &[u8]) -> Result<f64, Reply> {
    parse_float(arg).ok_or_else(|| Reply::err(NOT_FLOAT))
}

pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty()
        || s.len() > 5000
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => {
            // Rust accepts some spellings C does not ("1_0" no, but "1e" no either): check chars.
            if !s
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

pub fn eq_ignore_case(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

pub use crate::command_table::{unknown_subcommand, wrong_arity};

/// An error that echoes a client's argument as Redis's `%s` does: its bytes as sent (not made
/// UTF-8), up to a NUL.
pub fn err_echo(before: &str, arg: &[u8], after: &str) -> Reply {
    let mut msg = before.as_bytes().to_vec();
    msg.extend_from_slice(c_string(arg, usize::MAX));
    msg.extend_from_slice(after.as_bytes());
    Reply::error_bytes(msg)
}

/// Redis's `addReplySubcommandSyntaxError`: a container's own check of a subcommand's
/// arguments failed (the subcommand echoed as sent, cut as `%.128s` cuts it).
pub fn subcommand_syntax_error(sub: &[u8], container: &str) -> Reply {
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(c_string(sub, 128));
    msg.extend_from_slice(format!("'. Try {container} HELP.").as_bytes());
    Reply::error_bytes(msg)
}

/// A HELP reply: the container's intro line, the given lines, then Redis's closing HELP line.
pub fn help(container: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::StatusOwned(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    out.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    out.push(Reply::Status("HELP"));
    out.push(Reply::Status("    Prints this help."));
    Reply::Array(out)
}

pub fn bulk_list(items: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}

/// SCAN-family options: COUNT, MATCH and (SCAN only) TYPE.
pub struct ScanOptions<'a> {
    pub count: usize,
    /// None also for a lone `*`, which matches everything (Redis skips matching then).
    pub pattern: Option<&'a Bytes>,
    pub type_filter: Option<String>,
}

/// Parses the options of SCAN, HSCAN, SSCAN and ZSCAN from `args[from..]`, with Redis's
/// errors; TYPE is accepted only when `allow_type` (SCAN).
pub fn scan_options(
    args: &[Bytes],
    from: usize,
    allow_type: bool,
) -> Result<ScanOptions<'_>, Reply> {
    let mut opts = ScanOptions {
        count: 10,
        pattern: None,
        type_filter: None,
    };
    let mut j = from;
    while j < args.len() {
        let more = j + 1 < args.len();
        if eq_ignore_case(&args[j], "count") && more {
            match int_arg(&args[j + 1])? {
                c if c >= 1 => opts.count = c as usize,
                _ => return Err(Reply::err(SYNTAX)),
            }
        } else if eq_ignore_case(&args[j], "match") && more {
            opts.pattern = Some(&args[j + 1]).filter(|p| p.as_ref() != b"*");
        } else if allow_type && eq_ignore_case(&args[j], "type") && more {
            opts.type_filter = Some(lower(&args[j + 1]));
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 2;
    }
    Ok(opts)
}

/// C's `atoi` (strtol truncated to int), which Redis uses to read numkeys when finding keys.
pub fn atoi(arg: &[u8]) -> i32 {
    let mut rest = arg;
    while let [c, tail @ ..] = rest {
        if !c.is_ascii_whitespace() && *c != b'\x0b' {
            break;
        }
        rest = tail;
    }
    let neg = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let mut v: i64 = 0;
    for c in rest.iter().take_while(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    // strtol clamps to LONG_MIN/LONG_MAX; the cast to int keeps the low 32 bits.
    let v = if neg {
        if v == i64::MAX {
            i64::MIN
        } else {
            -v
        }
    } else {
        v
    };
    v as i32
}

/// One of two keywords, in any case: true for `yes`, false for `no`; Redis's syntax error
/// otherwise.
pub fn either(arg: &[u8], yes: &str, no: &str) -> Result<bool, Reply> {
    if eq_ignore_case(arg, yes) {
        Ok(true)
    } else if eq_ignore_case(arg, no) {
        Ok(false)
    } else {
        Err(Reply::err(SYNTAX))
    }
}

/// `ON` or `OFF`, in any case; Redis's syntax error otherwise.
pub fn on_off(arg: &[u8]) -> Result<bool, Reply> {
    either(arg, "on", "off")
}

/// `ON|OFF [<option> <n>]` (QUANTUM LEARN, WORMHOLE AUTO): sets the yes/no parameter `switch`
/// and, when given, the positive integer parameter `value` through the config, so that CONFIG
/// GET shows them, then lets the family `refresh` its cached copy. `invalid` is the error for
/// a bad number.
pub fn set_switch(
    server: &crate::server_state::Server,
    args: &[Bytes],
    switch: &str,
    (option, value): (&str, &str),
    invalid: &str,
    refresh: impl FnOnce(&crate::config_store::ConfigStore),
) -> Reply {
    let on = match on_off(&args[2]) {
        Ok(on) => on,
        Err(e) => return e,
    };
    let number = match &args[3..] {
        [] => None,
        [word, n] if eq_ignore_case(word, option) => match parse_strict_i64(n) {
            Some(n) if n > 0 => Some(n),
            _ => return Reply::err(invalid),
        },
        _ => return Reply::err(SYNTAX),
    };
    let mut cfg = server.config.write().expect("config lock");
    let _ = cfg.set(switch, if on { "yes" } else { "no" }, false);
    if let Some(n) = number {
        let _ = cfg.set(value, &n.to_string(), false);
    }
    refresh(&cfg);
    crate::protocol::reply::OK
}

/// The pop with a count an *MPOP reply (`[key, [popped ...]]`) did: `pop key <how many>`, as
/// Redis propagates LMPOP, ZMPOP and their blocking forms; nothing for a nil reply.
pub fn pop_with_count(pop: &'static [u8], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Array(items) => match items.as_slice() {
            [Reply::Bulk(key), Reply::Array(popped)] => vec![vec![
                Bytes::from_static(pop),
                key.clone(),
                Bytes::from(popped.len().to_string()),
            ]],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The most elements a random sample with repetition (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER
/// with a negative count) builds when no output limit would cut it: past that its reply alone
/// would take gigabytes, so the count is refused rather than run the server out of memory
/// (Redis streams such a reply until memory runs out).
const MAX_SAMPLED: u64 = 1 << 24;

/// How many elements of a sample with repetition of `count` (each `per_element` reply
/// elements: 2 WITHVALUES/WITHSCORES) to build. With a normal client's hard output limit, just
/// enough to pass it: the client is then closed as Redis closes it, having stopped the command
/// mid-run, and no more is built than the limit allows. Without one, all of them up to
/// [`MAX_SAMPLED`]; Err past that.
pub fn sampled_count(
    server: &crate::server_state::Server,
    count: u64,
    per_element: u64,
) -> Result<u64, Reply> {
    use crate::output_limits::{Class, UNCOUNTED_REPLY_BYTES};
    // The smallest element's encoding: an empty bulk string, `$0\r\n\r\n`.
    const SMALLEST: u64 = 6;
    let hard = server
        .pubsub
        .limits
        .of(Class::Normal)
        .hard
        .load(std::sync::atomic::Ordering::Relaxed);
    if hard > 0 {
        let past_limit = (hard + UNCOUNTED_REPLY_BYTES) / (SMALLEST * per_element) + 1;
        return Ok(count.min(past_limit));
    }
    if count.saturating_mul(per_element) > MAX_SAMPLED {
        return Err(Reply::err("ERR value is out of range"));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi(b"12x"), 12);
        assert_eq!(atoi(b" -3"), -3);
        assert_eq!(atoi(b"+4"), 4);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"4294967297"), 1);
        assert_eq!(atoi(b"99999999999999999999999"), -1);
    }
}
