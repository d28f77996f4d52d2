//! DUMP and RESTORE: a key's value as Redis 7.0's serialized form (an RDB object, the RDB
//! version and a CRC-64; see `persist::rdb_value`), so values move between WarpEngine and
//! Redis in both directions.

use bytes::Bytes;
use warpengine_storage::notify;

use super::util::{eq_ignore_case, int_arg, SYNTAX};
use super::{commands, k, keyed, LogForm};
use crate::keyctx::KeyCtx;
use crate::persist::rdb::{self, Reader};
use crate::persist::rdb_value;
use crate::protocol::reply::OK;
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "dump", 2, "readonly", k(1, 1, 1), "generic", "2.6.0", keyed(dump), "Returns a serialized representation of the value stored at a key.";
    "restore", -4, "write denyoom", k(1, 1, 1), "generic", "2.6.0", keyed(restore), "Creates a key from the serialized representation of a value.", log(LogForm::Rewritten(restore_log_form));
}

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_DATA: &str = "ERR Bad data format";

/// DUMP key: the value's payload, or nil. TEMPORAL has no RDB form and answers an error.
pub fn dump(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let enc = rdb_value::encodings(ctx.server);
    let Some(entry) = ctx.read(&args[1]) else {
        return Reply::Nil;
    };
    let mut payload = Vec::new();
    match rdb_value::write_value(&mut payload, &entry.value, &enc) {
        Ok(()) => Reply::Bulk(Bytes::from(rdb::seal(payload))),
        Err(rdb_value::NotInRdb(kind)) => Reply::err(format!(
            "ERR DUMP is not supported for {kind} values: the RDB format has no such type"
        )),
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency], checked in
/// Redis's order: options, existing key, TTL, payload footer, payload body.
pub fn restore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut freq, mut idle): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let has_value = j + 1 < args.len();
        if eq_ignore_case(&args[j], "replace") {
            replace = true;
        } else if eq_ignore_case(&args[j], "absttl") {
            absttl = true;
        } else if eq_ignore_case(&args[j], "idletime") && has_value && freq.is_none() {
            let v = match int_arg(&args[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if v < 0 {
                return Reply::err("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle = Some(v);
            j += 1;
        } else if eq_ignore_case(&args[j], "freq") && has_value && idle.is_none() {
            let v = match int_arg(&args[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if !(0..=255).contains(&v) {
                return Reply::err("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
            j += 1;
        } else {
            return Reply::err(SYNTAX);
        }
        j += 1;
    }
    let now = ctx.now_ms;
    if !replace && ctx.db(key).contains(key, now) {
        return Reply::err(BUSYKEY);
    }
    let ttl = match int_arg(&args[2]) {
        Ok(v) if v < 0 => return Reply::err("ERR Invalid TTL value, must be >= 0"),
        Ok(v) => v as u64,
        Err(e) => return e,
    };
    let Some(body) = rdb::open(&args[3]) else {
        return Reply::err(BAD_PAYLOAD);
    };
    let enc = rdb_value::encodings(ctx.server);
    let Some(value) = rdb_value::read_value(&mut Reader::new(body), &enc) else {
        return Reply::err(BAD_DATA);
    };
    let deleted = replace && ctx.remove(key).is_some();
    let expire_at = match ttl {
        0 => 0,
        t if absttl => t,
        t => t.saturating_add(now),
    };
    if expire_at != 0 && expire_at <= now {
        // Already expired: nothing is created (an old value REPLACE named is gone).
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
        return OK;
    }
    ctx.store(key, value, expire_at);
    set_access(ctx, key, idle, freq);
    ctx.notify(notify::GENERIC, "restore", key);
    OK
}

/// IDLETIME under an LRU (or no) policy, FREQ under an LFU one, as Redis's
/// `objectSetLRUOrLFU`; the other is ignored.
fn set_access(ctx: &mut KeyCtx, key: &[u8], idle: Option<i64>, freq: Option<i64>) {
    let lfu = ctx.server.limits.policy().is_lfu();
    let (now, clock) = (ctx.now_ms, ctx.clock);
    let access = match (lfu, idle, freq) {
        (true, _, Some(f)) => crate::eviction::minutes(now) << 8 | f as u32,
        (false, Some(secs), _) => {
            let idle_ms = (secs as u64).saturating_mul(1000).min(u32::MAX as u64) as u32;
            clock.wrapping_sub(idle_ms)
        }
        _ => return,
    };
    if let Some(entry) = ctx.db(key).get_mut(key, now) {
        entry.last_access = access;
    }
}

/// How the log keeps a RESTORE: the payload with the key's absolute expiry, REPLACE and
/// ABSTTL (replayed, it re-creates the same key, or nothing once that expiry has passed); a
/// RESTORE that left no key (an expiry already past) is its DEL.
pub fn restore_log_form(ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let key = &args[1];
    let expiry = ctx.db(key).get_with_expiry(key, 0).map(|(_, at)| at);
    Some(match expiry {
        Some(at) => vec![
            Bytes::from_static(b"RESTORE"),
            key.clone(),
            Bytes::from(at.to_string()),
            args[3].clone(),
            Bytes::from_static(b"REPLACE"),
            Bytes::from_static(b"ABSTTL"),
        ],
        None => vec![Bytes::from_static(b"DEL"), key.clone()],
    })
}
