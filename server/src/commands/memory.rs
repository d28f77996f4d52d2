//! MEMORY: USAGE (what one key costs), STATS (a subset of Redis's fields), DOCTOR,
//! MALLOC-STATS, PURGE, HELP.
//!
//! USAGE measures instead of estimating: the value is copied once on this worker and the
//! allocator's count for this thread says what the copy took (so every structure is counted as
//! it is laid out, size-class rounding included), plus the key's own allocation and its slot in
//! the table. That is exact for what the copy allocates and linear in the value's size: SAMPLES
//! is accepted for compatibility and not used.

use bytes::Bytes;
use warpengine_storage::{Entry, Key, StrValue, Value};

use super::util::{eq_ignore_case, help, int_arg, unknown_subcommand, SYNTAX};
use crate::memory_accounting;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

/// MEMORY USAGE's key, for routing and COMMAND GETKEYS.
pub fn keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() >= 3 && eq_ignore_case(&args[1], "usage") {
        vec![2]
    } else {
        Vec::new()
    }
}

pub fn memory(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let arity = |name: &str| super::util::wrong_arity(&format!("memory|{name}"));
    if eq_ignore_case(sub, "usage") {
        if args.len() < 3 {
            return arity("usage");
        }
        return usage(s, args);
    }
    if eq_ignore_case(sub, "help") {
        return help(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    measured whole (SAMPLES is accepted and not needed).",
            ],
        );
    }
    for (name, run) in [
        ("stats", stats as fn(&mut Session) -> Reply),
        ("doctor", doctor),
        ("malloc-stats", |_| {
            Reply::bulk_str("Stats not supported for the current allocator")
        }),
        ("purge", |_| OK),
    ] {
        if eq_ignore_case(sub, name) {
            if args.len() != 2 {
                return arity(name);
            }
            return run(s);
        }
    }
    unknown_subcommand(sub, "MEMORY")
}

fn usage(s: &mut Session, args: &[Bytes]) -> Reply {
    let key = &args[2];
    let mut rest = &args[3..];
    while !rest.is_empty() {
        if eq_ignore_case(&rest[0], "samples") && rest.len() >= 2 {
            match int_arg(&rest[1]) {
                Err(e) => return e,
                Ok(n) if n < 0 => return Reply::err(SYNTAX),
                Ok(_) => rest = &rest[2..],
            }
        } else {
            return Reply::err(SYNTAX);
        }
    }
    let server = s.server;
    let db = s.conn.db;
    let mut shard = server.lock_shard(server.route(key));
    match shard.dbs[db].get(key, unix_ms()) {
        Some(entry) => Reply::Int(footprint(key, &entry.value) as i64),
        None => Reply::Nil,
    }
}

/// The bytes `key` and its entry take: the table slot, the key's own allocation if it does not
/// fit inline, and what a copy of the value allocates (also ENTROPY STATS's per-shard bytes).
pub(crate) fn footprint(key: &[u8], value: &Value) -> usize {
    // The entry and its key in the dense table, a u32 position and a control byte in the index.
    let slot = std::mem::size_of::<(Key, Entry)>() + std::mem::size_of::<u32>() + 1;
    let (key_copy, key_bytes) = memory_accounting::measure(|| Key::from_slice(key));
    let (value_copy, value_bytes) = memory_accounting::measure(|| match value {
        // HORIZON's compressed form is what the key holds: a clone is its size.
        Value::Str(s) if s.is_packed() => value.clone(),
        // A large string's clone would only share its bytes: store a copy as SET would.
        Value::Str(s) => Value::Str(StrValue::from_slice(&s.as_slice())),
        other => other.clone(),
    });
    drop((key_copy, value_copy));
    slot + key_bytes.max(0) as usize + value_bytes.max(0) as usize
}

fn stats(s: &mut Session) -> Reply {
    let server = s.server;
    let allocated = server.used_memory();
    let peak = memory_accounting::note_peak(allocated);
    let startup = memory_accounting::startup();
    let keys: u64 = server
        .lock_all()
        .iter()
        .map(|g| g.dbs.iter().map(|d| d.len() as u64).sum::<u64>())
        .sum();
    let rss = crate::memory_accounting::rss_bytes();
    let dataset = allocated.saturating_sub(startup);
    let int = |name: &str, v: u64| (Reply::bulk_str(name), Reply::Int(v as i64));
    let ratio = |name: &str, v: f64| (Reply::bulk_str(name), Reply::Double(v));
    Reply::Map(vec![
        int("peak.allocated", peak),
        int("total.allocated", allocated),
        int("startup.allocated", startup),
        int("keys.count", keys),
        int("keys.bytes-per-key", dataset.checked_div(keys).unwrap_or(0)),
        int("dataset.bytes", dataset),
        ratio(
            "dataset.percentage",
            100.0 * dataset as f64 / allocated.max(1) as f64,
        ),
        ratio(
            "peak.percentage",
            100.0 * allocated as f64 / peak.max(1) as f64,
        ),
        int("allocator.allocated", memory_accounting::allocated()),
        int("allocator.resident", rss),
        ratio("fragmentation", rss as f64 / allocated.max(1) as f64),
        int("fragmentation.bytes", rss.saturating_sub(allocated)),
    ])
}

fn doctor(s: &mut Session) -> Reply {
    let allocated = s.server.used_memory();
    let rss = crate::memory_accounting::rss_bytes();
    let ratio = rss as f64 / allocated.max(1) as f64;
    // Redis's texts, for the checks that apply here (no replicas, no big client buffers
    // measured apart).
    let text = if allocated < 5 << 20 {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".to_string()
    } else if ratio > 1.4 {
        format!(
            "Sam, I detected a few issues in this Redis instance memory implants:\n\n * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed): {rss} bytes resident for {allocated} allocated. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Note: The currently used allocator is \"mimalloc\".\n\nI'm here to keep you safe, Sam. I want to help you.\n"
        )
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".to_string()
    };
    Reply::Verbatim(Bytes::from(text))
}
