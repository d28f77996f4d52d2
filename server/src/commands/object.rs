//! OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP.

use bytes::Bytes;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::Value;

use super::util::{eq_ignore_case, help, unknown_subcommand, wrong_arity};
use crate::keyctx::KeyCtx;
use crate::protocol::Reply;

/// OBJECT's key is its third argument, when there is one.
pub fn keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() >= 3 {
        vec![2]
    } else {
        Vec::new()
    }
}

pub fn object(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ignore_case(sub, "help") {
        if args.len() != 2 {
            return wrong_arity("object|help");
        }
        return help(
            "OBJECT",
            &[
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
            ],
        );
    }
    let name = match () {
        _ if eq_ignore_case(sub, "encoding") => "encoding",
        _ if eq_ignore_case(sub, "refcount") => "refcount",
        _ if eq_ignore_case(sub, "idletime") => "idletime",
        _ if eq_ignore_case(sub, "freq") => "freq",
        _ => return unknown_subcommand(sub, "OBJECT"),
    };
    if args.len() != 3 {
        return wrong_arity(&format!("object|{name}"));
    }
    let lfu = ctx.server.limits.policy().is_lfu();
    let (now, clock) = (ctx.now_ms, ctx.clock);
    let limits = &ctx.server.limits;
    let decay = limits
        .lfu_decay_time
        .load(std::sync::atomic::Ordering::Relaxed);
    // As Redis: with maxmemory and an LRU or LFU policy, each key keeps its own access clock,
    // so integers are not shared.
    let shares_integers = limits.maxmemory.load(std::sync::atomic::Ordering::Relaxed) == 0
        || !limits.policy().tracks_access();
    let db = ctx.db;
    // OBJECT looks keys up without touching them.
    let Some(entry) = ctx.shard(&args[2]).dbs[db].get(&args[2], now) else {
        return Reply::Nil;
    };
    match name {
        "encoding" => Reply::bulk_str(entry.value.encoding()),
        "refcount" => match &entry.value {
            // Redis shares the integers 0..10000 as immortal objects.
            Value::Str(s)
                if shares_integers
                    && s.encoding() == "int"
                    && parse_strict_i64(&s.as_slice()).is_some_and(|v| (0..10000).contains(&v)) =>
            {
                Reply::Int(i32::MAX as i64)
            }
            _ => Reply::Int(1),
        },
        "idletime" => {
            if lfu {
                return Reply::err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            Reply::Int((clock.wrapping_sub(entry.last_access) / 1000) as i64)
        }
        _ => {
            if !lfu {
                return Reply::err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            let now_min = crate::eviction::minutes(now);
            Reply::Int(crate::eviction::lfu_decayed(entry.last_access, now_min, decay) as i64)
        }
    }
}
