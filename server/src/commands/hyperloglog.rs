//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST, as Redis 7.0's
//! `hyperloglog.c` answers them. HLLs are plain string values in Redis's own byte layout
//! (`warpengine_storage::hyperloglog`), changed in place so that a key keeps its expiry.
//!
//! The log: PFADD, PFMERGE and PFDEBUG are logged as sent (replayed on the same state and with
//! the same `hll-sparse-max-bytes` they give the same bytes, as Redis's AOF does). PFCOUNT is a
//! read, yet on one key it caches the cardinality in the value's header, as Redis does; that
//! cache write is not logged (a read would otherwise wait for the log), so after a restart
//! replayed from the log the cache is stale and the next PFCOUNT recomputes it: the count is the
//! same, only the header bytes `GET` shows may differ until then. Snapshots keep the bytes as
//! they are.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_storage::hyperloglog::{self as hll, Encoding, REGISTERS};
use warpengine_storage::{notify, Entry, StrValue, Value};

use super::util::{eq_ignore_case, err_echo};
use super::{commands, k, keyed, session, Writes, NO_KEYS};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "pfadd", -2, "write denyoom fast", k(1, 1, 1), "hyperloglog", "2.8.9", keyed(pfadd), "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", unchanged_when(super::zero_changes);
    "pfcount", -2, "readonly may_replicate", k(1, -1, 1), "hyperloglog", "2.8.9", keyed(pfcount), "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).";
    "pfmerge", -2, "write denyoom", k(1, -1, 1), "hyperloglog", "2.8.9", keyed(pfmerge), "Merges one or more HyperLogLog values into a single key.", writes(Writes::First);
    "pfdebug", 3, "write denyoom admin", k(2, 2, 1), "hyperloglog", "2.8.9", keyed(pfdebug), "Internal commands for debugging HyperLogLog values.";
    "pfselftest", 1, "admin", NO_KEYS, "hyperloglog", "2.8.9", session(pfselftest), "An internal command for testing HyperLogLog values.";
}

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn sparse_max_bytes(ctx: &KeyCtx) -> usize {
    ctx.server.hot.hll_sparse_max_bytes.load(Ordering::Relaxed) as usize
}

/// The string value of a looked-up entry if it is an HLL: Ok(None) when absent, the generic
/// WRONGTYPE for another type, Redis's HLL WRONGTYPE for a string that is not an HLL.
fn hll_value(entry: Option<&mut Entry>) -> Result<Option<&mut StrValue>, Reply> {
    match entry {
        None => Ok(None),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) if hll::encoding_of(&s.as_slice()).is_some() => {
            // HORIZON may have compressed a cold HLL: its registers are read in place.
            s.unpack();
            Ok(Some(s))
        }
        Some(Entry {
            value: Value::Str(_),
            ..
        }) => Err(Reply::err(NOT_HLL)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The HLL bytes of a looked-up entry, for reading (see [`hll_value`]).
fn hll_bytes(entry: Option<&mut Entry>) -> Result<Option<&[u8]>, Reply> {
    Ok(hll_value(entry)?.map(|s| s.plain()))
}

/// The HLL of a looked-up entry, for changing it in place (Redis's dbUnshareStringValue: the
/// value becomes a buffer of its own, OBJECT ENCODING `raw`).
fn hll_buffer(entry: Option<&mut Entry>) -> Result<Option<&mut Vec<u8>>, Reply> {
    Ok(hll_value(entry)?.map(StrValue::make_owned))
}

/// The HLL at `key` for writing, created empty (sparse) when absent; and whether it was.
fn hll_for_write<'a>(ctx: &'a mut KeyCtx, key: &[u8]) -> Result<(&'a mut Vec<u8>, bool), Reply> {
    let created = hll_buffer(ctx.write(key))?.is_none();
    if created {
        ctx.store(key, Value::Str(StrValue::owned(hll::new_sparse())), 0);
    }
    match hll_buffer(ctx.write(key)) {
        Ok(Some(buf)) => Ok((buf, created)),
        _ => unreachable!("an HLL was just found or stored"),
    }
}

/// Redis's signalModifiedKey for a command not flagged as a write (PFCOUNT updating its
/// cache): the dispatcher does this for writes only.
fn signal_modified(ctx: &mut KeyCtx, key: &[u8]) {
    ctx.db(key).touch_watched(key);
    let server = ctx.server;
    if server.tracking.active() {
        server.tracking.key_changed(server, key, ctx.client);
    }
}

/// PFADD key [element ...]: 1 when a register changed or the key was created.
pub fn pfadd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let max_bytes = sparse_max_bytes(ctx);
    let (buf, created) = match hll_for_write(ctx, key) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let mut updated = created;
    for element in &args[2..] {
        match hll::add(buf, element, max_bytes) {
            Ok(changed) => updated |= changed,
            // As Redis: the registers changed before the corrupt part stay changed.
            Err(hll::Corrupt) => return Reply::err(CORRUPT),
        }
    }
    if updated {
        hll::invalidate_cache(buf);
        ctx.notify(notify::STRING, "pfadd", key);
    }
    Reply::Int(updated as i64)
}

/// PFCOUNT key [key ...]: the cardinality of one HLL (cached in its header), or of the union
/// of several (computed in a register set of its own, nothing written).
pub fn pfcount(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        let mut max = Box::new([0u8; REGISTERS]);
        return match merge_keys(ctx, &args[1..], &mut max) {
            Ok(_) => Reply::Int(hll::count_registers(&max) as i64),
            Err(e) => e,
        };
    }
    let key = &args[1];
    let buf = match hll_buffer(ctx.read(key)) {
        Ok(Some(buf)) => buf,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    if let Some(card) = hll::cached_count(buf) {
        return Reply::Int(card as i64);
    }
    let Ok(card) = hll::count(buf) else {
        return Reply::err(CORRUPT);
    };
    // A read that writes: a running snapshot keeps the value as it was, as for a write.
    crate::persist::log::before_key(ctx, key, false);
    if let Ok(Some(buf)) = hll_buffer(ctx.write(key)) {
        hll::store_count(buf, card);
    }
    signal_modified(ctx, key);
    Reply::Int(card as i64)
}

/// Raises `max`'s registers to those of each HLL in `keys` (absent keys count as empty).
/// Whether any of them was dense.
fn merge_keys(ctx: &mut KeyCtx, keys: &[Bytes], max: &mut [u8; REGISTERS]) -> Result<bool, Reply> {
    let mut any_dense = false;
    for key in keys {
        let Some(bytes) = hll_bytes(ctx.read(key))? else {
            continue;
        };
        any_dense |= hll::encoding_of(bytes) == Some(Encoding::Dense);
        hll::merge_into(max, bytes).map_err(|_| Reply::err(CORRUPT))?;
    }
    Ok(any_dense)
}

/// PFMERGE destkey [sourcekey ...]: the destination (read as a source too) gets the highest
/// of each register; it becomes dense if any input was (Redis 7.0), else stays sparse as far
/// as `hll-sparse-max-bytes` allows.
pub fn pfmerge(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let dest = &args[1];
    let max_bytes = sparse_max_bytes(ctx);
    let mut max = Box::new([0u8; REGISTERS]);
    let use_dense = match merge_keys(ctx, &args[1..], &mut max) {
        Ok(dense) => dense,
        Err(e) => return e,
    };
    let (buf, _) = match hll_for_write(ctx, dest) {
        Ok(found) => found,
        Err(e) => return e,
    };
    if use_dense && hll::to_dense(buf).is_err() {
        return Reply::err(CORRUPT);
    }
    for (index, &value) in max.iter().enumerate() {
        if value != 0 {
            // The destination was checked as a source: Redis ignores the result here too.
            let _ = hll::raise(buf, index, value, max_bytes);
        }
    }
    hll::invalidate_cache(buf);
    // A merge is a mass add: Redis raises PFADD's event for it.
    ctx.notify(notify::STRING, "pfadd", dest);
    OK
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key. The key is looked up (and made a buffer of its
/// own) before the subcommand is read, as in Redis.
pub fn pfdebug(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let buf = match hll_buffer(ctx.write(&args[2])) {
        Ok(Some(buf)) => buf,
        Ok(None) => return Reply::err("ERR The specified key does not exist"),
        Err(e) => return e,
    };
    let sub = &args[1];
    let encoding = hll::encoding_of(buf);
    if eq_ignore_case(sub, "getreg") {
        if hll::to_dense(buf).is_err() {
            return Reply::err(CORRUPT);
        }
        let registers = hll::dense_registers(buf);
        Reply::Array(
            registers
                .into_iter()
                .map(|r| Reply::Int(r as i64))
                .collect(),
        )
    } else if eq_ignore_case(sub, "decode") {
        if encoding != Some(Encoding::Sparse) {
            return Reply::err("ERR HLL encoding is not sparse");
        }
        Reply::bulk_str(&hll::decode_sparse(buf))
    } else if eq_ignore_case(sub, "encoding") {
        Reply::Status(encoding.map_or("dense", Encoding::name))
    } else if eq_ignore_case(sub, "todense") {
        match hll::to_dense(buf) {
            Ok(converted) => Reply::Int(converted as i64),
            Err(hll::Corrupt) => Reply::err(CORRUPT),
        }
    } else {
        err_echo("ERR Unknown PFDEBUG subcommand '", sub, "'")
    }
}

/// PFSELFTEST: Redis's checks of the implementation, run on this one: register access in the
/// dense layout, then 10 million elements added to a dense and a sparse HLL, whose estimates
/// must agree and stay within six standard errors at each power of ten.
pub fn pfselftest(s: &mut Session, _args: &[Bytes]) -> Reply {
    let max_bytes = s.server.hot.hll_sparse_max_bytes.load(Ordering::Relaxed) as usize;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64);
    match selftest(max_bytes, &mut SplitMix(seed)) {
        Ok(()) => OK,
        Err(msg) => Reply::err(format!("ERR TESTFAILED {msg}")),
    }
}

/// The random numbers PFSELFTEST draws (Redis uses libc's rand()).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const TEST_CYCLES: usize = 1000;
const TEST_ELEMENTS: u64 = 10_000_000;

fn selftest(max_bytes: usize, rng: &mut SplitMix) -> Result<(), String> {
    // Test 1: every register keeps its own value and leaves its neighbours alone.
    let mut dense = hll::new_sparse();
    hll::to_dense(&mut dense).map_err(|_| "dense conversion".to_string())?;
    let mut expected = [0u8; REGISTERS];
    for _ in 0..TEST_CYCLES {
        let registers = &mut dense[hll::HEADER_LEN..];
        for (i, slot) in expected.iter_mut().enumerate() {
            *slot = (rng.next() & 63) as u8;
            hll::dense_put(registers, i, *slot);
        }
        for (i, &want) in expected.iter().enumerate() {
            let got = hll::dense_get(registers, i);
            if got != want {
                return Err(format!("Register {i} should be {want} but is {got}"));
            }
        }
    }
    // Test 2: the estimate's error, on a dense and a sparse HLL fed the same elements.
    dense[hll::HEADER_LEN..].fill(0);
    let mut sparse = hll::new_sparse();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let seed = rng.next();
    let mut checkpoint = 1u64;
    for j in 1..=TEST_ELEMENTS {
        let element = (j ^ seed).to_le_bytes();
        let _ = hll::add(&mut dense, &element, max_bytes);
        let _ = hll::add(&mut sparse, &element, max_bytes);
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && hll::encoding_of(&sparse) != Some(Encoding::Sparse) {
            return Err("sparse encoding not used".into());
        }
        let card = hll::count(&dense).map_err(|_| "dense/sparse disagree".to_string())?;
        if hll::count(&sparse) != Ok(card) {
            return Err("dense/sparse disagree".into());
        }
        let abs_error = (checkpoint as i64 - card as i64).unsigned_abs();
        // Cardinality 10 is often off by more than the bound through collisions alone.
        let max_error = if j == 10 {
            1
        } else {
            (relative_error * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abs_error > max_error {
            return Err(format!(
                "Too big error. card:{checkpoint} abserr:{abs_error}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_test_passes_on_this_implementation() {
        assert_eq!(selftest(3000, &mut SplitMix(7)), Ok(()));
    }
}
