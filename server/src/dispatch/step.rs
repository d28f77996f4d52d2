//! The one execution step of a keyed command, on the shard or shards of its keys (locked by the
//! caller): every path that runs one goes through [`execute`] — a pipeline's batch on the
//! owner's worker or under its lock, a command whose keys span shards, a batched command a pin
//! moved, a blocking command's first try and its retries when woken, a transaction's commands
//! in EXEC. (Scripts are to run their commands through it too.)
//!
//! In order: admission under maxmemory (make room, or the OOM error), the pre-image for a
//! running background snapshot, the command itself with a panic guard (a panic answers an error
//! instead of taking the worker down), and the log record of what it did. Waking blocked clients
//! ([`super::signal_writes`]) comes after the shards are unlocked.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::command_table::{Attempt, TABLE};
use crate::keyctx::KeyCtx;
use crate::persist::log as wal_log;
use crate::protocol::Reply;

/// What one run of a command gives: a reply, for a blocking command an [`Attempt`], for a
/// fan-out the keys it reads.
pub(super) trait Outcome {
    /// The reply when the command is done (what the log records its effect from).
    fn reply(&self) -> Option<&Reply>;
    /// The outcome of a command refused or failed with this error.
    fn error(reply: Reply) -> Self;
}

impl Outcome for Reply {
    fn reply(&self) -> Option<&Reply> {
        Some(self)
    }
    fn error(reply: Reply) -> Self {
        reply
    }
}

impl Outcome for Attempt {
    fn reply(&self) -> Option<&Reply> {
        match self {
            Attempt::Done(reply) => Some(reply),
            Attempt::Block(_) => None,
        }
    }
    fn error(reply: Reply) -> Self {
        Attempt::Done(reply)
    }
}

/// A fan-out's list of keys to read, or its error.
impl Outcome for Result<Vec<Bytes>, Reply> {
    fn reply(&self) -> Option<&Reply> {
        self.as_ref().err()
    }
    fn error(reply: Reply) -> Self {
        Err(reply)
    }
}

/// Whether the step checks maxmemory before running the command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// A new request: make room, or refuse a command that may grow memory with OOM.
    Check,
    /// Admitted already: a blocked client being served (Redis serves a woken client without
    /// checking memory again), or a command of a transaction (judged with its EXEC).
    Admitted,
}

/// Runs the command at table index `index` in `ctx` (its shards locked): see the module docs.
/// Inline: it is the body of every batch's loop, and a call here cost ~30 instructions per SET
/// once its out-of-line parts grew past the compiler's inlining threshold.
#[inline]
pub(super) fn execute<R: Outcome>(
    ctx: &mut KeyCtx,
    index: usize,
    args: &[Bytes],
    admission: Admission,
    run: impl FnOnce(&mut KeyCtx) -> R,
) -> R {
    let server = ctx.server;
    if admission == Admission::Check && server.limits.maxmemory.load(Ordering::Relaxed) != 0 {
        if let Some(oom) = crate::eviction::before_command(ctx, index) {
            return R::error(oom);
        }
    }
    wal_log::before_command(ctx, index, args);
    let write = TABLE[index].is_write();
    let watched = write && super::transaction::anyone_watching(server);
    let tracked = write && server.tracking.active();
    let held = if watched || tracked {
        keys_held(ctx, index, args)
    } else {
        Vec::new()
    };
    let started = crate::command_timing::ticks();
    let outcome = guarded(TABLE[index].name, || run(ctx));
    let spent = crate::command_timing::ticks().wrapping_sub(started);
    let unchanged = std::mem::take(&mut ctx.unchanged);
    let changed = write
        && !unchanged
        && outcome
            .reply()
            .is_some_and(|r| !r.is_error() && !TABLE[index].changed_nothing(args, r));
    crate::command_timing::account(server, index, args, spent, changed, || ctx.client);
    if changed && (watched || tracked) {
        touch_changed(ctx, index, args, &held, &outcome, watched, tracked);
    }
    crate::keyspace_events::publish_raised(server);
    if server.wal.records() {
        match outcome.reply() {
            Some(reply) => wal_log::after_command(ctx, index, args, reply, changed),
            // A blocking command that waits again may have found its keys expired: their
            // deletions go out now (as Redis propagates a DEL when a lookup expires a key),
            // not with whichever write comes next.
            None => wal_log::expired_only(ctx),
        }
    }
    outcome
}

/// Whether each key of a write command is in its database before it runs (expired or not).
fn keys_held(ctx: &mut KeyCtx, index: usize, args: &[Bytes]) -> Vec<bool> {
    TABLE[index]
        .key_positions(args)
        .into_iter()
        .map(|p| ctx.db(&args[p]).holds(&args[p]))
        .collect()
}

/// A write command ran: the watchers of its keys see a change, and the clients tracking them
/// an invalidation (a change in place, INCR or LPUSH on an existing key, is seen nowhere
/// else). Only called for a command that changed something (not refused, and its reply does
/// not say it changed nothing: `CommandSpec::unchanged_when`, SADD of members already there);
/// of its keys, those absent before and after are skipped. A command that leaves a present key
/// as it was without saying so still counts, which at worst makes an EXEC fail that Redis
/// would run (the client retries) or drops a cached value that was still good.
fn touch_changed<R: Outcome>(
    ctx: &mut KeyCtx,
    index: usize,
    args: &[Bytes],
    held: &[bool],
    outcome: &R,
    watched: bool,
    tracked: bool,
) {
    if outcome.reply().is_none_or(|r| r.is_error()) {
        return;
    }
    let (server, client) = (ctx.server, ctx.client);
    for (p, &was) in TABLE[index].key_positions(args).into_iter().zip(held) {
        let db = ctx.db(&args[p]);
        if was || db.holds(&args[p]) {
            if watched {
                db.touch_watched(&args[p]);
            }
            if tracked {
                server.tracking.key_changed(server, &args[p], client);
            }
        }
    }
}

/// Runs a command, turning a panic into an error reply so that one faulty command cannot take
/// its worker, its connection or a waiting remote connection down with it.
pub(super) fn guarded<R: Outcome>(name: &str, run: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        // Not a fault: a script's call reached for a shard the script does not hold.
        Err(payload) if payload.is::<crate::server_state::ShardNotLent>() => {
            std::panic::resume_unwind(payload)
        }
        Err(_) => {
            tracing::error!(command = name, "command panicked; replied with an error");
            R::error(Reply::err(format!(
                "ERR internal error while executing '{name}'"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::lookup;
    use crate::config_store::ConfigStore;
    use crate::keyctx::Shards;
    use crate::server_state::Server;

    #[test]
    fn a_panicking_command_answers_an_error_on_every_kind_of_path() {
        crate::commands::install();
        let server = Server::new(ConfigStore::default(), 1);
        let mut shard = server.lock_shard(0);
        let mut ctx = KeyCtx::new(Shards::One(&mut shard), &server, 0, 0);
        let get = lookup(b"get").expect("GET");
        let blpop = lookup(b"blpop").expect("BLPOP");
        let args = [Bytes::from_static(b"GET"), Bytes::from_static(b"k")];
        let expected = Reply::err("ERR internal error while executing 'get'");
        let reply: Reply = execute(&mut ctx, get, &args, Admission::Check, |_| panic!("bug"));
        assert_eq!(reply, expected);
        let attempt: Attempt = execute(&mut ctx, blpop, &args, Admission::Admitted, |_| {
            panic!("bug")
        });
        assert!(matches!(attempt, Attempt::Done(r) if r.is_error()));
        // The shard is still usable after the panics.
        let ok: Reply = execute(&mut ctx, get, &args, Admission::Check, |_| Reply::Nil);
        assert_eq!(ok, Reply::Nil);
    }
}
