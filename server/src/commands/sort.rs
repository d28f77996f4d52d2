//! SORT and SORT_RO.
//!
//! BY and GET patterns name keys that may live on any shard, so both commands run as session
//! commands holding every shard locked (ascending order, like every multi-shard command): all
//! keys are reachable and the command is atomic.

use std::cmp::Ordering;

use bytes::Bytes;
use warpengine_storage::list::End;
use warpengine_storage::{notify, ListValue, Shard, Value};

use super::util::{eq_ignore_case, int_arg, SYNTAX};
use super::{commands, k, session, Keys};
use crate::keyctx::{KeyCtx, Shards, WRONGTYPE};
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "sort", -2, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: sort_keys }, "generic", "1.0.0", session(sort), "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.";
    "sort_ro", -2, "readonly movablekeys", k(1, 1, 1), "generic", "7.0.0", session(sort_ro), "Returns the sorted elements of a list, a set, or a sorted set.";
}

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// The keys of a SORT call as Redis's `sortGetKeys` finds them: the sorted key, then the
/// destination of the last STORE (options with arguments are skipped over).
pub fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ignore_case(a, "limit") {
            i += 2;
        } else if eq_ignore_case(a, "get") || eq_ignore_case(a, "by") {
            i += 1;
        } else if eq_ignore_case(a, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

pub fn sort(s: &mut Session, args: &[Bytes]) -> Reply {
    sort_generic(s, args, false)
}

pub fn sort_ro(s: &mut Session, args: &[Bytes]) -> Reply {
    sort_generic(s, args, true)
}

/// The parsed options of one SORT call.
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<&'a Bytes>,
    by: Option<&'a Bytes>,
    /// BY names a pattern without `*`: nothing to sort by.
    dontsort: bool,
    gets: Vec<&'a Bytes>,
}

/// `reads_every_key`: the user may read any key (BY and GET patterns name keys no ACL check
/// saw, so Redis refuses them otherwise).
fn parse(args: &[Bytes], readonly: bool, reads_every_key: bool) -> Result<Options<'_>, Reply> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if eq_ignore_case(a, "asc") {
            o.desc = false;
        } else if eq_ignore_case(a, "desc") {
            o.desc = true;
        } else if eq_ignore_case(a, "alpha") {
            o.alpha = true;
        } else if eq_ignore_case(a, "limit") && left >= 2 {
            o.limit_start = int_arg(&args[j + 1])?;
            o.limit_count = int_arg(&args[j + 2])?;
            j += 2;
        } else if !readonly && eq_ignore_case(a, "store") && left >= 1 {
            o.store = Some(&args[j + 1]);
            j += 1;
        } else if eq_ignore_case(a, "by") && left >= 1 {
            o.by = Some(&args[j + 1]);
            // Once a BY without `*` is seen, a later BY does not turn sorting back on.
            let pattern = c_str(&args[j + 1]).contains(&b'*');
            o.dontsort |= !pattern;
            if pattern && !reads_every_key {
                return Err(Reply::err(
                    "ERR BY option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            j += 1;
        } else if eq_ignore_case(a, "get") && left >= 1 {
            if !reads_every_key {
                return Err(Reply::err(
                    "ERR GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            o.gets.push(&args[j + 1]);
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// The bytes a C string function sees: everything before the first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is
/// replaced by the element, and a `->field` after it reads that field of a hash. Only string
/// values (or hash fields) are found.
fn lookup_by_pattern(ctx: &mut KeyCtx, pattern: &[u8], subst: &Bytes) -> Option<Bytes> {
    let cpat = c_str(pattern);
    if cpat == b"#" {
        return Some(subst.clone());
    }
    let star = cpat.iter().position(|&c| c == b'*')?;
    let after = &cpat[star + 1..];
    let field_at = after
        .windows(2)
        .position(|w| w == b"->")
        .map(|f| star + 1 + f)
        .filter(|&f| f + 2 < cpat.len());
    let (postfix_end, field) = match field_at {
        Some(f) => (f, Some(&pattern[f + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(pattern.len() + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    let entry = ctx.read(&key)?;
    match (&entry.value, field) {
        (Value::Str(v), None) => Some(v.to_bytes()),
        (Value::Hash(h), Some(f)) => h.get_bytes(f),
        _ => None,
    }
}

/// Redis's check of a sort weight: `strtod` must read the whole (C) string, without a range
/// error, and not give NaN. The empty string reads as 0.
fn parse_weight(b: &[u8]) -> Option<f64> {
    let s = c_str(b);
    if s.is_empty() {
        return Some(0.0);
    }
    let mut i = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let neg = match s[i] {
        b'-' => {
            i += 1;
            true
        }
        b'+' => {
            i += 1;
            false
        }
        _ => false,
    };
    let rest = &s[i..];
    let lower = rest.to_ascii_lowercase();
    let v = if lower == b"inf" || lower == b"infinity" {
        f64::INFINITY
    } else if lower.starts_with(b"0x") && lower.len() > 2 {
        parse_hex(&lower[2..])?
    } else {
        parse_decimal(rest)?
    };
    Some(if neg { -v } else { v })
}

fn parse_decimal(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut digits = 0;
    let mut nonzero = false;
    let mut eat_digits = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_digit() {
            nonzero |= s[*i] != b'0';
            digits += 1;
            *i += 1;
        }
    };
    eat_digits(&mut i);
    if i < s.len() && s[i] == b'.' {
        i += 1;
        eat_digits(&mut i);
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != s.len() {
        return None;
    }
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    in_range(v, nonzero)
}

fn parse_hex(s: &[u8]) -> Option<f64> {
    let mut mantissa = 0f64;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut nonzero = false;
    let mut i = 0;
    let mut seen_point = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            mantissa = mantissa * 16.0 + d as f64;
            nonzero |= d != 0;
            digits += 1;
            if seen_point {
                exp -= 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && s[i] == b'p' {
        i += 1;
        let neg = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            e = (e * 10 + (s[i] - b'0') as i64).min(100_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if neg { -e } else { e };
    }
    if i != s.len() {
        return None;
    }
    let v = mantissa * 2f64.powi(exp.clamp(-5000, 5000) as i32);
    in_range(v, nonzero)
}

/// `strtod`'s ERANGE: overflow to infinity, or underflow to zero or a subnormal.
fn in_range(v: f64, nonzero: bool) -> Option<f64> {
    if v.is_infinite() || (nonzero && v.abs() < f64::MIN_POSITIVE) {
        None
    } else {
        Some(v)
    }
}

/// One element to sort with its weight: a number, or (ALPHA BY) the looked-up string.
struct Item {
    obj: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

fn sort_generic(s: &mut Session, args: &[Bytes], readonly: bool) -> Reply {
    let row = crate::command_table::lookup_original(if readonly { b"sort_ro" } else { b"sort" })
        .expect("SORT is in the table");
    let reads_every_key = s.conn.user.reads_every_key(row, args);
    let opts = match parse(args, readonly, reads_every_key) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let dest = opts.store.cloned();
    let db = s.conn.db;
    let server = s.server;
    let reply = {
        let mut guards = server.lock_all();
        let shards: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut ctx = KeyCtx::new(Shards::Many(shards), server, db, unix_ms());
        ctx.no_touch = s.conn.no_touch;
        if let Some(dest) = &dest {
            crate::persist::log::before_key(&mut ctx, dest, false);
        }
        let reply = run(&mut ctx, &args[1], opts);
        if let Some(dest) = dest
            .as_ref()
            .filter(|_| server.wal.records() && !reply.is_error())
        {
            crate::persist::log::key_state(&mut ctx, dest);
        }
        reply
    };
    if let Some(dest) = dest.filter(|_| !reply.is_error()) {
        if server.blocking.has_waiters() {
            server.blocking.signal(db, &dest);
        }
    }
    reply
}

fn run(ctx: &mut KeyCtx, key: &[u8], o: Options) -> Reply {
    let Options {
        desc,
        mut alpha,
        limit_start,
        limit_count,
        store,
        mut by,
        mut dontsort,
        gets,
    } = o;

    // The elements, in the order the sort starts from; what kind of value held them.
    enum Source {
        List(Vec<Bytes>),
        Set(Vec<Bytes>),
        /// Members in rank order, and whether that order is the dictionary's (unsorted).
        ZSet(Vec<Bytes>),
    }
    let source = match ctx.read(key) {
        None => Source::List(Vec::new()),
        Some(e) => match &mut e.value {
            Value::List(l) => Source::List(l.iter().owned().collect()),
            Value::Set(set) => Source::Set(set.iter().map(Bytes::copy_from_slice).collect()),
            Value::ZSet(z) => {
                // SORT destructively converts a listpack sorted set (Redis 7.0).
                z.make_skiplist();
                if dontsort {
                    Source::ZSet(z.iter().owned().map(|(m, _)| m).collect())
                } else {
                    Source::ZSet(z.dict_iter().owned().map(|(m, _)| m).collect())
                }
            }
            _ => return Reply::err(WRONGTYPE),
        },
    };

    // A set has no order of its own: when storing, or for a script, sort it anyway so the
    // result is stable (as Redis 7.0 still does for scripts).
    if dontsort
        && matches!(source, Source::Set(_))
        && (store.is_some() || crate::server_state::called_by_script())
    {
        dontsort = false;
        alpha = true;
        by = None;
    }

    let len = match &source {
        Source::List(v) | Source::Set(v) | Source::ZSet(v) => v.len() as i64,
    };
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(limit_count).saturating_sub(1)
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }

    let mut vector: Vec<Bytes> = match source {
        Source::List(v) | Source::ZSet(v) if dontsort => {
            if end >= start {
                let n = (end - start + 1) as usize;
                let picked: Vec<Bytes> = if desc {
                    v.into_iter().rev().skip(start as usize).take(n).collect()
                } else {
                    v.into_iter().skip(start as usize).take(n).collect()
                };
                end -= start;
                start = 0;
                picked
            } else {
                Vec::new()
            }
        }
        Source::List(v) | Source::Set(v) | Source::ZSet(v) => v,
    };

    if !dontsort {
        let mut items = Vec::with_capacity(vector.len());
        let mut bad_weight = false;
        for obj in vector.drain(..) {
            let mut item = Item {
                obj,
                score: 0.0,
                cmp: None,
            };
            let byval = match by {
                Some(pattern) => lookup_by_pattern(ctx, pattern, &item.obj),
                None => Some(item.obj.clone()),
            };
            if let Some(val) = byval {
                if alpha {
                    if by.is_some() {
                        item.cmp = Some(val);
                    }
                } else {
                    match parse_weight(&val) {
                        Some(sc) => item.score = sc,
                        None => bad_weight = true,
                    }
                }
            }
            items.push(item);
        }
        if bad_weight {
            return Reply::err(NOT_DOUBLE);
        }
        let by_pattern = by.is_some();
        let storing = store.is_some();
        // Strings compare as Redis does: binary when storing, strcoll (the C locale's strcmp,
        // which stops at a NUL) when replying.
        let text_cmp = |a: &[u8], b: &[u8]| {
            if storing {
                a.cmp(b)
            } else {
                c_str(a).cmp(c_str(b))
            }
        };
        items.sort_by(|a, b| {
            let ord = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.obj.cmp(&b.obj))
            } else if by_pattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => text_cmp(x, y),
                }
            } else {
                text_cmp(&a.obj, &b.obj)
            };
            if desc {
                ord.reverse()
            } else {
                ord
            }
        });
        vector = items.into_iter().map(|i| i.obj).collect();
    }

    let window: &[Bytes] = if end >= start {
        &vector[start as usize..=end as usize]
    } else {
        &[]
    };

    match store {
        None => {
            let mut out = Vec::with_capacity(window.len() * gets.len().max(1));
            for obj in window {
                if gets.is_empty() {
                    out.push(Reply::Bulk(obj.clone()));
                }
                for pattern in &gets {
                    out.push(match lookup_by_pattern(ctx, pattern, obj) {
                        Some(v) => Reply::Bulk(v),
                        None => Reply::Nil,
                    });
                }
            }
            Reply::Array(out)
        }
        Some(dest) => {
            let mut list = ListValue::default();
            for obj in window {
                if gets.is_empty() {
                    list.push(End::Tail, obj);
                }
                for pattern in &gets {
                    let v = lookup_by_pattern(ctx, pattern, obj).unwrap_or_default();
                    list.push(End::Tail, &v);
                }
            }
            let n = list.len();
            if n > 0 {
                ctx.store(dest, Value::List(Box::new(list)), 0);
                ctx.notify(notify::LIST, "sortstore", dest);
            } else if ctx.remove(dest).is_some() {
                ctx.notify(notify::GENERIC, "del", dest);
            }
            Reply::Int(n as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn weights_read_like_strtod() {
        assert_eq!(parse_weight(b""), Some(0.0));
        assert_eq!(parse_weight(b" 5"), Some(5.0));
        assert_eq!(parse_weight(b"5 "), None);
        assert_eq!(parse_weight(b"   "), None);
        assert_eq!(parse_weight(b"0x1p3"), Some(8.0));
        assert_eq!(parse_weight(b"-0x10"), Some(-16.0));
        assert_eq!(parse_weight(b"1."), Some(1.0));
        assert_eq!(parse_weight(b".5"), Some(0.5));
        assert_eq!(parse_weight(b"."), None);
        assert_eq!(parse_weight(b"1e"), None);
        assert_eq!(parse_weight(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_weight(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_weight(b"nan"), None);
        assert_eq!(parse_weight(b"1e400"), None);
        assert_eq!(parse_weight(b"1e-310"), None);
        assert_eq!(parse_weight(b"0e-500"), Some(0.0));
        assert_eq!(parse_weight(b"12\0x"), Some(12.0));
    }

    #[test]
    fn store_key_is_found_after_options() {
        let a = args(&["sort", "k", "limit", "0", "1", "store", "d", "get", "store"]);
        assert_eq!(sort_keys(&a), vec![1, 6]);
        let a = args(&["sort", "k", "by", "store", "get", "#"]);
        assert_eq!(sort_keys(&a), vec![1]);
        let a = args(&["sort", "k", "store", "a", "store", "b"]);
        assert_eq!(sort_keys(&a), vec![1, 5]);
    }
}
