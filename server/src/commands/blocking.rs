//! Blocking list and sorted-set commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP. Each first tries its
//! non-blocking counterpart; with nothing to pop it asks to block (the connection then waits
//! for a write to one of its keys, or for the timeout, and tries again). A try after a wake-up
//! passes over keys of another type, as Redis 7.0 does (its blocked client stays blocked when
//! the key it waits on became a string): only the first try fails with WRONGTYPE.

use std::time::Duration;

use bytes::Bytes;

use super::lists::{self, lmpop_keys, mpop, parse_mpop};
use super::util::{eq_ignore_case, parse_float, SYNTAX};
use super::zsets;
use super::{commands, k, Attempt, BlockingFn, Keys, LogForm, Run};
use crate::keyctx::KeyCtx;
use crate::protocol::Reply;

const fn blocking(f: BlockingFn) -> Run {
    Run::Blocking(f)
}

commands! {
    pub static COMMANDS;
    "blpop", -3, "write noscript blocking", k(1, -2, 1), "list", "2.0.0", blocking(blpop), "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", log(LogForm::ListPop("LPOP"));
    "brpop", -3, "write noscript blocking", k(1, -2, 1), "list", "2.0.0", blocking(brpop), "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", log(LogForm::ListPop("RPOP"));
    "blmove", 6, "write denyoom noscript blocking", k(1, 2, 1), "list", "6.2.0", blocking(blmove), "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", log(LogForm::Move("LMOVE")), nil_bulk_if_cannot_block(), effects_when_spanning(super::lists::lmove_effects);
    "brpoplpush", 4, "write denyoom noscript blocking", k(1, 2, 1), "list", "2.2.0", blocking(brpoplpush), "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", log(LogForm::Move("RPOPLPUSH")), nil_bulk_if_cannot_block(), effects_when_spanning(super::lists::rpoplpush_effects);
    "bzpopmin", -3, "write noscript blocking fast", k(1, -2, 1), "sorted-set", "5.0.0", blocking(bzpopmin), "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", log(LogForm::Effects(bzpop_effects));
    "bzpopmax", -3, "write noscript blocking fast", k(1, -2, 1), "sorted-set", "5.0.0", blocking(bzpopmax), "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise. Deletes the sorted set if the last element was popped.", log(LogForm::Effects(bzpop_effects));
    "bzmpop", -5, "write blocking movablekeys", Keys::Custom { legacy: (0, 0, 0), find: blmpop_keys }, "sorted-set", "7.0.0", blocking(bzmpop), "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", log(LogForm::Effects(bzmpop_effects));
    "blmpop", -5, "write blocking movablekeys", Keys::Custom { legacy: (0, 0, 0), find: blmpop_keys }, "list", "7.0.0", blocking(blmpop), "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", log(LogForm::Effects(blmpop_effects));
}

/// Redis's timeout argument: seconds as a float, rounded up to milliseconds; 0 blocks for ever.
fn timeout_arg(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let secs =
        parse_float(arg).ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    // Redis converts to a long long: anything that does not fit reads as negative.
    if !(0.0..9.223_372_036_854_775e18).contains(&ms) {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// Whether `reply` is the WRONGTYPE error a woken client's try passes over.
fn wrong_type_on_retry(ctx: &KeyCtx, reply: &Reply) -> bool {
    ctx.blocked_retry && matches!(reply, Reply::Error(e) if e.starts_with("WRONGTYPE"))
}

/// BLPOP/BRPOP: the first non-empty list among the keys, in order; a wrong type fails at once
/// (on a first try).
fn pop_first(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    pop: super::KeyedFn,
    name: &'static [u8],
) -> Attempt {
    let timeout = match timeout_arg(&args[args.len() - 1]) {
        Ok(t) => t,
        Err(e) => return Attempt::Done(e),
    };
    for key in &args[1..args.len() - 1] {
        match pop(ctx, &[Bytes::from_static(name), key.clone()]) {
            Reply::Nil => continue,
            Reply::Bulk(v) => {
                return Attempt::Done(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]))
            }
            other if wrong_type_on_retry(ctx, &other) => continue,
            other => return Attempt::Done(other),
        }
    }
    Attempt::Block(timeout)
}

pub fn blpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    pop_first(ctx, args, lists::lpop, b"lpop")
}

pub fn brpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    pop_first(ctx, args, lists::rpop, b"rpop")
}

/// BZPOPMIN/BZPOPMAX: the best member of the first non-empty sorted set, as [key, member, score].
fn zpop_first(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    pop: super::KeyedFn,
    name: &'static [u8],
) -> Attempt {
    let timeout = match timeout_arg(&args[args.len() - 1]) {
        Ok(t) => t,
        Err(e) => return Attempt::Done(e),
    };
    for key in &args[1..args.len() - 1] {
        match pop(ctx, &[Bytes::from_static(name), key.clone()]) {
            Reply::Array(mut pair) if pair.len() == 2 => {
                let score = pair.pop().expect("two items");
                let member = pair.pop().expect("two items");
                return Attempt::Done(Reply::Array(vec![Reply::Bulk(key.clone()), member, score]));
            }
            Reply::Array(_) => continue,
            other if wrong_type_on_retry(ctx, &other) => continue,
            other => return Attempt::Done(other),
        }
    }
    Attempt::Block(timeout)
}

pub fn bzpopmin(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    zpop_first(ctx, args, zsets::zpopmin, b"zpopmin")
}

pub fn bzpopmax(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    zpop_first(ctx, args, zsets::zpopmax, b"zpopmax")
}

fn move_or_block(ctx: &mut KeyCtx, lmove_args: &[Bytes], timeout: &[u8]) -> Attempt {
    let timeout = match timeout_arg(timeout) {
        Ok(t) => t,
        Err(e) => return Attempt::Done(e),
    };
    match lists::lmove(ctx, lmove_args) {
        Reply::Nil => Attempt::Block(timeout),
        // A source of another type: wait on. (A destination of another type fails, as Redis's.)
        other
            if wrong_type_on_retry(ctx, &other)
                && lists::llen(ctx, &[Bytes::from_static(b"llen"), lmove_args[1].clone()])
                    .is_error() =>
        {
            Attempt::Block(timeout)
        }
        other => Attempt::Done(other),
    }
}

fn is_end(arg: &[u8]) -> bool {
    eq_ignore_case(arg, "left") || eq_ignore_case(arg, "right")
}

pub fn blmove(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    // The directions are checked before the timeout, as in Redis.
    if !is_end(&args[3]) || !is_end(&args[4]) {
        return Attempt::Done(Reply::err(SYNTAX));
    }
    let lmove_args = [
        Bytes::from_static(b"lmove"),
        args[1].clone(),
        args[2].clone(),
        args[3].clone(),
        args[4].clone(),
    ];
    move_or_block(ctx, &lmove_args, &args[5])
}

pub fn brpoplpush(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    let lmove_args = [
        Bytes::from_static(b"lmove"),
        args[1].clone(),
        args[2].clone(),
        Bytes::from_static(b"right"),
        Bytes::from_static(b"left"),
    ];
    move_or_block(ctx, &lmove_args, &args[3])
}

/// BLMPOP's and BZMPOP's keys: LMPOP's, one argument further on (numkeys comes second).
pub fn blmpop_keys(args: &[Bytes]) -> Vec<usize> {
    lmpop_keys(&args[1..]).into_iter().map(|p| p + 1).collect()
}

pub fn blmpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    let parsed = match parse_mpop(args, 2) {
        Ok(p) => p,
        Err(e) => return Attempt::Done(e),
    };
    let timeout = match timeout_arg(&args[1]) {
        Ok(t) => t,
        Err(e) => return Attempt::Done(e),
    };
    match mpop(ctx, args, &parsed) {
        Reply::NilArray => Attempt::Block(timeout),
        other => Attempt::Done(other),
    }
}

pub fn bzmpop(ctx: &mut KeyCtx, args: &[Bytes]) -> Attempt {
    let parsed = match zsets::parse_zmpop(args, 2) {
        Ok(p) => p,
        Err(e) => return Attempt::Done(e),
    };
    let timeout = match timeout_arg(&args[1]) {
        Ok(t) => t,
        Err(e) => return Attempt::Done(e),
    };
    match zsets::zmpop_parsed(ctx, args, &parsed) {
        Reply::NilArray => Attempt::Block(timeout),
        other => Attempt::Done(other),
    }
}

/// BZPOPMIN/BZPOPMAX as Redis propagates them: `ZPOPMIN|ZPOPMAX key` (no count).
fn bzpop_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let Reply::Array(items) = reply else {
        return Vec::new();
    };
    let Some(Reply::Bulk(key)) = items.first() else {
        return Vec::new();
    };
    let pop: &'static [u8] = if eq_ignore_case(&args[0], "bzpopmax") {
        b"ZPOPMAX"
    } else {
        b"ZPOPMIN"
    };
    vec![vec![Bytes::from_static(pop), key.clone()]]
}

fn bzmpop_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    zsets::zmpop_effects(args, reply, 2)
}

fn blmpop_effects(_ctx: &mut KeyCtx, args: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    lists::mpop_effects(args, reply, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(timeout_arg(b"0").unwrap(), None);
        assert_eq!(
            timeout_arg(b"0.0011").unwrap(),
            Some(Duration::from_millis(2))
        );
        assert_eq!(timeout_arg(b"1").unwrap(), Some(Duration::from_secs(1)));
        assert!(timeout_arg(b"-1").is_err());
        assert!(timeout_arg(b"1e100").is_err());
        assert!(timeout_arg(b"inf").is_err());
        assert!(timeout_arg(b"abc").is_err());
    }
}
