//! Arbitrary argument vectors through the command table on one shard, in-process, by the entry
//! a shard's worker runs a batch with (`dispatch::run_batch`, hence `step::execute` and its
//! panic guard), after the checks admission makes (the command exists, its arity, a container's
//! subcommand).
//!
//! Input: commands separated by `\n`, their words by spaces. A line whose first word names a
//! command is that command (so seeds and the dictionary, `fuzz/command_path.dict`, can be
//! written by hand: `SET k v`); otherwise its first byte picks a keyed command of the table
//! (modulo their number; a subcommand row such as TEMPORAL INCR comes with its two words) and
//! the rest of the line is its arguments. Checked for each command:
//! - no panic: `step::execute` turns one into "ERR internal error while executing ..." (and
//!   libFuzzer's panic hook aborts first), which the target refuses;
//! - its allocation is bounded by the data it can touch: the peak of live heap bytes while it
//!   runs grows by at most 4 MB + 256 × (the data set's heap bytes + the input's length);
//! - its CPU time likewise: at most 100 ms + 2 µs per byte of data set and input (the thread's
//!   own CPU clock, so a busy machine does not fail it);
//! - its reply encodes in RESP2 and RESP3.
//!
//! Not run: commands that need a connection or the whole server (blocking ones, Pub/Sub,
//! MULTI/EXEC, scripts, SORT, server-wide metadata: only `Run::Keyed` rows are in the list);
//! MIGRATE, which connects to a host named by its arguments; and SETRANGE, SETBIT, BITFIELD,
//! BITFIELD_RO, SRANDMEMBER, HRANDFIELD and ZRANDMEMBER when an argument is a number (an offset,
//! a count, BITFIELD's `#N`) beyond ±65,536, which legitimately costs what it asks for (Redis
//! too allocates 512 MB for `SETRANGE k 536870911 x`, and answers `SRANDMEMBER s -1000000000`
//! with 10^9 members). LCS runs without the bounds: its table is the product of its strings'
//! lengths, as Redis's.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warpengine::command_table::{self, Run, TABLE};
use warpengine::config_store::ConfigStore;
use warpengine::dispatch::run_batch;
use warpengine::fabric::{BatchItem, RemoteBatch};
use warpengine::protocol::Reply;
use warpengine::server_state::Server;
use warpengine_fuzz::Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Commands that reach outside the process.
const NOT_RUN: &[&str] = &["migrate"];
/// Commands whose numeric arguments (offsets, counts) above `BIG` legitimately cost that much.
const SIZED_BY_NUMBERS: &[&str] = &[
    "setrange",
    "setbit",
    "bitfield",
    "bitfield_ro",
    "srandmember",
    "hrandfield",
    "zrandmember",
];
const BIG: u64 = 65_536;
/// Commands whose cost is legitimately more than linear in their data.
const UNBOUNDED: &[&str] = &["lcs"];

/// The argument words that name each keyed command (one word, or a container's two).
fn commands() -> &'static [Vec<Bytes>] {
    static COMMANDS: OnceLock<Vec<Vec<Bytes>>> = OnceLock::new();
    COMMANDS.get_or_init(|| {
        TABLE
            .iter()
            .filter(|spec| matches!(spec.run, Run::Keyed(_)) && !NOT_RUN.contains(&spec.name))
            .map(|spec| {
                spec.name
                    .split('|')
                    .map(|w| Bytes::copy_from_slice(w.to_ascii_uppercase().as_bytes()))
                    .collect()
            })
            .collect()
    })
}

/// The server, built once (a server costs more to build than most inputs to run), its data
/// emptied before each input.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        warpengine::commands::install();
        Server::new(ConfigStore::default(), 1)
    })
}

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Whether an argument is a number (or BITFIELD's `#N`) too large for the bounds.
fn big_number(arg: &[u8]) -> bool {
    let digits = arg.strip_prefix(b"#").unwrap_or(arg);
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i128>().ok())
        .is_some_and(|n| n.unsigned_abs() > BIG as u128)
}

/// The row `args` runs as after admission's checks, if it is a keyed command.
fn admitted(args: &[Bytes]) -> Option<usize> {
    let index = command_table::lookup(&args[0])?;
    if !command_table::arity_ok(TABLE[index].arity, args.len()) {
        return None;
    }
    let index = command_table::resolve(index, args).ok()?;
    matches!(TABLE[index].run, Run::Keyed(_)).then_some(index)
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let commands = commands();
    let mut shard = server.lock_shard(0);
    shard.dbs.iter_mut().for_each(|db| db.clear());
    let empty = warpengine_fuzz::live();
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, rest)) = line.split_first() else {
            continue;
        };
        let words = |bytes: &[u8]| -> Vec<Bytes> {
            bytes
                .split(|&b| b == b' ')
                .map(Bytes::copy_from_slice)
                .collect()
        };
        let first = line.split(|&b| b == b' ').next().unwrap_or_default();
        let args = if command_table::lookup(first).is_some() {
            words(line)
        } else {
            let mut args = commands[pick as usize % commands.len()].clone();
            if !rest.is_empty() {
                args.extend(words(rest));
            }
            args
        };
        let Some(index) = admitted(&args) else {
            continue;
        };
        let name = TABLE[index].name;
        if SIZED_BY_NUMBERS.contains(&name) && args.iter().any(|a| big_number(a)) {
            continue;
        }
        let data_bytes = warpengine_fuzz::live().saturating_sub(empty) + data.len();
        let mut batch = RemoteBatch::new(0);
        batch.items.push(BatchItem {
            spec: index,
            db: 0,
            args,
        });
        let before = warpengine_fuzz::live();
        warpengine_fuzz::take_peak();
        let cpu = thread_cpu();
        run_batch(server, &mut shard, &mut batch);
        let spent = thread_cpu() - cpu;
        let grew = warpengine_fuzz::take_peak().saturating_sub(before);
        let reply = batch.replies.pop().expect("one reply per item");
        if let Reply::Error(e) = &reply {
            assert!(!e.starts_with("ERR internal error"), "{name}: {e}");
        }
        let mut out = Vec::new();
        reply.encode(&mut out, false);
        reply.encode(&mut out, true);
        drop((reply, out));
        if UNBOUNDED.contains(&name) {
            continue;
        }
        let memory_bound = (4 << 20) + 256 * data_bytes;
        assert!(
            grew <= memory_bound,
            "{name} allocated {grew} bytes at its peak, over {memory_bound} for {data_bytes} bytes of data and input"
        );
        let time_bound = Duration::from_millis(100) + Duration::from_micros(2) * data_bytes as u32;
        assert!(
            spent <= time_bound,
            "{name} took {spent:?} of CPU, over {time_bound:?} for {data_bytes} bytes of data and input"
        );
    }
});
