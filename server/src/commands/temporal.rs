//! TEMPORAL: trending counters whose scores decay exponentially with time (the algorithm is
//! `warpengine_physics::temporal`). INCR, TOP, SCORE and HELP.

use bytes::Bytes;
use warpengine_physics::temporal::{DecayingScores, MAX_HALFLIFE_SECS, MIN_HALFLIFE_SECS};
use warpengine_storage::Value;

use super::util::{eq_ignore_case, float_arg, help, int_arg, SYNTAX};
use super::{commands, k, keyed, session, LogForm, NO_KEYS};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::persist::log::temporal_incr_argv;
use crate::protocol::Reply;
use crate::server_state::Server;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "temporal", -2, "", NO_KEYS, "temporal", "0.1.0", super::Run::Container, "A container for trending counters whose scores decay with time.";
    "temporal|incr", -5, "write denyoom fast", k(2, 2, 1), "temporal", "0.1.0", keyed(incr), "Adds an amount to a member's decaying score.", log(LogForm::Rewritten(deterministic_incr));
    "temporal|top", -4, "readonly", k(2, 2, 1), "temporal", "0.1.0", keyed(top), "Returns the members with the highest decayed scores.";
    "temporal|score", 4, "readonly fast", k(2, 2, 1), "temporal", "0.1.0", keyed(score), "Returns a member's decayed score now.";
    "temporal|help", 2, "loading stale", NO_KEYS, "temporal", "0.1.0", session(help_), "Shows helpful text about the different subcommands.";
}

const AMOUNT_NOT_POSITIVE: &str =
    "ERR TEMPORAL amount must be a positive finite number (decrements are not supported)";
const HALFLIFE_RANGE: &str = "ERR HALFLIFE must be a number of seconds from 0.001 to 1e12";
const OTHER_HALFLIFE: &str = "ERR TEMPORAL key has a different HALFLIFE";
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "TEMPORAL",
        &[
            "INCR <key> <member> <amount> [HALFLIFE <seconds>] [AT <unix-ms>] [MAXMEMBERS <n>]",
            "    Add <amount> (a positive number: decrements are not supported) to the member's",
            "    score, which halves every HALFLIFE seconds (default: temporal-default-halflife;",
            "    fixed when the key is created). AT sets the event time (default: now), for",
            "    backfilling. MAXMEMBERS caps the members kept for this call (default:",
            "    temporal-max-members, 0 = no cap): the lowest are dropped. Returns the member's",
            "    score at the event time.",
            "TOP <key> <n> [WITHSCORES]",
            "    The <n> members with the highest scores now, highest first.",
            "SCORE <key> <member>",
            "    The member's score now, or nil.",
        ],
    )
}

/// TEMPORAL INCR's arguments after the member and amount.
struct IncrOptions {
    halflife_secs: Option<f64>,
    at_ms: Option<i64>,
    max_members: Option<usize>,
}

fn incr_options(args: &[Bytes]) -> Result<IncrOptions, Reply> {
    let mut o = IncrOptions {
        halflife_secs: None,
        at_ms: None,
        max_members: None,
    };
    let mut rest = args.iter();
    while let Some(name) = rest.next() {
        let Some(value) = rest.next() else {
            return Err(Reply::err(SYNTAX));
        };
        if eq_ignore_case(name, "halflife") {
            let h = float_arg(value)?;
            if !(MIN_HALFLIFE_SECS..=MAX_HALFLIFE_SECS).contains(&h) {
                return Err(Reply::err(HALFLIFE_RANGE));
            }
            o.halflife_secs = Some(h);
        } else if eq_ignore_case(name, "at") {
            o.at_ms = Some(int_arg(value)?);
        } else if eq_ignore_case(name, "maxmembers") {
            let n = int_arg(value)?;
            o.max_members = Some(usize::try_from(n).map_err(|_| Reply::err(NOT_POSITIVE))?);
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(o)
}

/// TEMPORAL INCR key member amount [HALFLIFE seconds] [AT unix-ms] [MAXMEMBERS n]
fn incr(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let (key, member) = (&args[2], &args[3]);
    let amount = match float_arg(&args[4]) {
        Ok(a) if a.is_finite() && a > 0.0 => a,
        Ok(_) => return Reply::err(AMOUNT_NOT_POSITIVE),
        Err(e) => return e,
    };
    let o = match incr_options(&args[5..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let at_ms = o.at_ms.unwrap_or(ctx.now_ms as i64);
    let settings = &ctx.server.temporal;
    let max_members = o.max_members.unwrap_or_else(|| settings.max_members());
    let default_halflife = settings.default_halflife_secs();
    let create_with_halflife = match ctx.write(key) {
        Some(e) => match &e.value {
            Value::Temporal(t) if o.halflife_secs.is_some_and(|h| h != t.halflife_secs()) => {
                return Reply::err(OTHER_HALFLIFE)
            }
            Value::Temporal(_) => None,
            _ => return Reply::err(WRONGTYPE),
        },
        None => Some(o.halflife_secs.unwrap_or(default_halflife)),
    };
    if let Some(halflife) = create_with_halflife {
        let (fresh, clock) = (DecayingScores::new(halflife, at_ms), ctx.clock);
        ctx.db(key)
            .set(key, Value::Temporal(Box::new(fresh)), 0, clock);
    }
    let Some(Value::Temporal(scores)) = ctx.write(key).map(|e| &mut e.value) else {
        unreachable!("checked or created above");
    };
    let Ok(done) = scores.incr(member, amount, at_ms, max_members) else {
        unreachable!("the amount was checked above");
    };
    let stats = &mut ctx.shard(key).stats;
    stats.temporal_incrs += 1;
    stats.temporal_members_trimmed += done.trimmed as u64;
    Reply::Double(shown(done.score))
}

/// A score as replies give it: rounded to 15 significant digits, about what the log-score
/// representation keeps (`exp(ln 8)` is 7.9999999999999982, shown as 8).
fn shown(score: f64) -> f64 {
    // Powers of ten that are exact doubles: scaling by them rounds once, so the result is the
    // double nearest the 15-digit decimal without the cost of printing and parsing it.
    const EXACT_POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if !score.is_normal() {
        return score;
    }
    let decimals = 14 - score.abs().log10().floor() as i32;
    match decimals.unsigned_abs() as usize {
        n if n < EXACT_POWERS.len() && decimals >= 0 => {
            (score * EXACT_POWERS[n]).round() / EXACT_POWERS[n]
        }
        n if n < EXACT_POWERS.len() => (score / EXACT_POWERS[n]).round() * EXACT_POWERS[n],
        _ => format!("{score:.14e}").parse().unwrap_or(score),
    }
}

/// The counters at `key` for reading: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn read<'c>(ctx: &'c mut KeyCtx, key: &[u8]) -> Result<Option<&'c DecayingScores>, Reply> {
    match ctx.read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Temporal(t) => Ok(Some(t)),
            _ => Err(Reply::err(WRONGTYPE)),
        },
    }
}

/// TEMPORAL TOP key n [WITHSCORES]
fn top(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let n = match int_arg(&args[3]) {
        Ok(n) if n >= 0 => n as usize,
        Ok(_) => return Reply::err(NOT_POSITIVE),
        Err(e) => return e,
    };
    let withscores = match args.get(4) {
        None => false,
        Some(a) if eq_ignore_case(a, "withscores") && args.len() == 5 => true,
        Some(_) => return Reply::err(SYNTAX),
    };
    let now = ctx.now_ms as i64;
    let scores = match read(ctx, &args[2]) {
        Ok(Some(t)) => t,
        Ok(None) => return Reply::Array(Vec::new()),
        Err(e) => return e,
    };
    let best = scores.top(now).take(n);
    if withscores {
        Reply::Pairs(
            best.map(|(m, s)| {
                (
                    Reply::Bulk(Bytes::copy_from_slice(m)),
                    Reply::Double(shown(s)),
                )
            })
            .collect(),
        )
    } else {
        Reply::Array(
            best.map(|(m, _)| Reply::Bulk(Bytes::copy_from_slice(m)))
                .collect(),
        )
    }
}

/// TEMPORAL SCORE key member
fn score(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let now = ctx.now_ms as i64;
    match read(ctx, &args[2]) {
        Ok(Some(t)) => t
            .score(&args[3], now)
            .map_or(Reply::Nil, |s| Reply::Double(shown(s))),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// The argv that replays a successful TEMPORAL INCR exactly: the same command with the key's
/// half-life, the event time it used, and the member cap it applied spelled out, so a replay
/// at another time or under another configuration has the same effect.
pub fn deterministic_incr(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let o = incr_options(&args[5..]).ok()?;
    let key = &args[2];
    let halflife = match &ctx.db(key).get(key, 0)?.value {
        Value::Temporal(t) => t.halflife_secs(),
        _ => return None,
    };
    let at_ms = o.at_ms.unwrap_or(ctx.now_ms as i64);
    let max_members = o
        .max_members
        .unwrap_or_else(|| ctx.server.temporal.max_members());
    Some(temporal_incr_argv(
        key,
        &args[3],
        args[4].clone(),
        halflife,
        at_ms,
        max_members,
    ))
}

/// TEMPORAL's lines of INFO physics: its work (summed over shards) and its settings.
pub fn write_info(server: &Server, out: &mut String) {
    let (mut incrs, mut trimmed) = (0u64, 0u64);
    for i in 0..server.threads() {
        let shard = server.lock_shard(i);
        incrs += shard.stats.temporal_incrs;
        trimmed += shard.stats.temporal_members_trimmed;
    }
    let t = &server.temporal;
    out.push_str(&format!(
        "temporal_incr_calls:{incrs}\r\ntemporal_members_trimmed:{trimmed}\r\n\
         temporal_max_members:{}\r\ntemporal_default_halflife:{}\r\n",
        t.max_members(),
        t.default_halflife_secs()
    ));
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn shown_scores_keep_15_significant_digits() {
        assert_eq!(shown(7.999_999_999_999_998), 8.0);
        assert_eq!(shown(f64::from_bits(4f64.to_bits() - 1)), 4.0);
        assert_eq!(shown(0.1 + 0.2), 0.3);
        assert_eq!(shown(123_456_789.012_345_68), 123_456_789.012_346);
        assert_eq!(shown(-2.5e-30 * (1.0 + 1e-16)), -2.5e-30);
        assert_eq!(shown(6.02214076e23 * (1.0 + 2e-16)), 6.02214076e23);
        assert_eq!(shown(1e300), 1e300);
        assert_eq!(shown(0.0), 0.0);
        assert!(shown(f64::INFINITY).is_infinite());
    }
}
