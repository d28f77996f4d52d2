//! How an admitted request runs, by the kind of command (`Run`): a keyed command is queued
//! for its shard's batch (or, when its keys span shards, runs at once under their locks); a
//! blocking command tries once and may park the connection; metadata changes, WAITAOF and
//! connection/server commands run on the connection's worker after what was queued before
//! them. Keyed work goes through the one execution step (`step.rs`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::admit::Admitted;
use super::locked::{run_locked, run_on_shards_of};
use super::observe::{self, Routed};
use super::step::{self, guarded, Admission};
use super::{signal_writes, Blocked, CrossShard, Pipeline};
use crate::blocked_clients::Waiter;
use crate::command_table::{Attempt, BlockingFn, Keys, MetaFn, Run, SessionFn, TABLE};
use crate::durability;
use crate::fabric::BatchItem;
use crate::keyctx::Caller;
use crate::persist::log as wal_log;
use crate::protocol::Reply;
use crate::server_state::{bump, Server};
use crate::session::{ConnState, ReplyMode, Session};

impl Pipeline {
    /// A keyed command: routed, shown to the observers, then queued for its shard's batch.
    /// Its arguments come back when its keys are on several shards: then it is to run at once
    /// ([`Pipeline::run_cross_shard`]). Not async, so that the common case builds no future.
    pub(super) fn queue_keyed(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        request: &Admitted,
        args: Vec<Bytes>,
    ) -> Option<Vec<Bytes>> {
        let index = request.index;
        let spec = &TABLE[index];
        // Most commands have one key, at position 1 (arity guarantees it is there).
        let positions;
        let routed = if let Keys::Range(1, 1, _) = spec.keys {
            Routed {
                positions: None,
                owner: Some(server.route(&args[1])),
            }
        } else {
            positions = spec.key_positions(&args);
            let mut owners = positions.iter().map(|&p| server.route(&args[p]));
            let first = owners.next().unwrap_or(self.me);
            let one = owners.all(|o| o == first);
            Routed {
                positions: Some(&positions),
                owner: one.then_some(first),
            }
        };
        observe::keyed(server, conn, spec, &args, &routed);
        if let Some(owner) = routed.owner {
            // (While no key is replicated: one load, for the keys of other shards only.)
            if owner != self.me
                && server.hot_copies.active()
                && self.answered_by_copy(server, conn, slot, index, owner, &args)
            {
                return None;
            }
            self.queue_for(server, conn, slot, index, owner, request.logged, args);
            return None;
        }
        Some(args)
    }

    /// A GET of a replicated hot key owned by another shard, answered from this worker's copy
    /// (`hot_copies`) when it has a live one. It overtakes what this read queued before it
    /// only when none of that names the key (a write would change it; a read answered after
    /// it by the owner could see a newer value than this earlier one) and no cross-shard
    /// command or script waits (a script may touch any key). A tracking client reads from
    /// the owner, which remembers the keys it read.
    #[cold]
    #[inline(never)]
    fn answered_by_copy(
        &mut self,
        server: &Server,
        conn: &ConnState,
        slot: usize,
        index: usize,
        owner: usize,
        args: &[Bytes],
    ) -> bool {
        if !TABLE[index].reads_hot_copy
            || !server.hot_copies.may_hold(&args[1])
            || conn.tracking.is_some()
            || self.script_queued
            || !self.cross_shard.is_empty()
            || !self.scripts.is_empty()
            || self.batches[owner]
                .as_ref()
                .is_none_or(|b| b.items.iter().any(|i| i.names(conn.db, &args[1])))
        {
            return false;
        }
        let started = crate::command_timing::ticks();
        let copies = &server.hot_copies;
        let Some(value) = copies.read(self.me, conn.db, &args[1], crate::server_state::unix_ms)
        else {
            return false;
        };
        let spent = crate::command_timing::ticks().wrapping_sub(started);
        bump(&server.worker_stats[self.me].copy_hits, 1);
        crate::command_timing::account(server, index, args, spent, false, || conn.id);
        self.replies[slot] = Some(Reply::Bulk(value));
        true
    }

    /// Queues a command for the batch of shard `owner` (a keyed command, or a one-shard
    /// script: `script::owner_of`); `logged`: its reply waits for that shard's log.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_for(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        index: usize,
        owner: usize,
        logged: bool,
        args: Vec<Bytes>,
    ) {
        // The waiting cross-shard commands or scripts came first.
        if !self.cross_shard.is_empty() {
            self.run_cross_shard_group(server, conn.caller());
        }
        if !self.scripts.is_empty() {
            self.run_script_group(server, conn);
        }
        if logged {
            self.mark_written(owner);
        }
        let batch = self.batches[owner].as_mut().expect("batch is home");
        batch.items.push(BatchItem {
            spec: index,
            db: conn.db,
            args,
        });
        batch.slots.push(slot);
        self.queued += 1;
    }

    /// A keyed command whose keys are on several shards: runs after what was queued before it,
    /// under the locks of its keys' shards. Consecutive such commands of one read wait to run
    /// together, under one set of locks ([`Pipeline::run_cross_shard_group`]): a pipeline of
    /// MSETs then takes the locks once rather than once per command.
    pub(super) async fn run_cross_shard(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        request: &Admitted,
        args: Vec<Bytes>,
    ) {
        if self.cross_shard.is_empty() {
            // What was queued before the group runs first (waiting scripts too); nothing is
            // queued while a group waits (a single-shard command runs the group before it
            // queues).
            self.flush(server, conn).await;
        }
        bump(&server.worker_stats[self.me].cross_shard_commands, 1);
        self.cross_shard.push(CrossShard {
            slot,
            index: request.index,
            db: conn.db,
            logged: request.logged,
            class: request.class,
            args,
        });
    }

    /// Runs the waiting cross-shard commands, in order, with every shard one of them touches
    /// locked for the whole group.
    pub(super) fn run_cross_shard_group(&mut self, server: &Arc<Server>, caller: Caller) {
        if self.cross_shard.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.cross_shard);
        let replies = run_on_shards_of(
            server,
            group[0].db,
            caller,
            || {
                group.iter().flat_map(|c| {
                    TABLE[c.index]
                        .key_positions(&c.args)
                        .into_iter()
                        .map(|p| &c.args[p][..])
                })
            },
            |ctx| {
                let mut prefetched = 0;
                group
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        if j >= prefetched {
                            prefetched = j + super::prefetch_commands(
                                &group[j..],
                                |c| (c.db, &TABLE[c.index], &c.args[..]),
                                |db, key| ctx.db_of(db, key),
                            );
                        }
                        let Run::Keyed(f) = TABLE[c.index].run else {
                            unreachable!("only keyed commands are cross-shard")
                        };
                        ctx.db = c.db;
                        step::execute(ctx, c.index, &c.args, Admission::Check, |ctx| {
                            f(ctx, &c.args)
                        })
                    })
                    .collect::<Vec<Reply>>()
            },
        );
        for (c, reply) in group.iter().zip(replies) {
            let spec = &TABLE[c.index];
            if c.logged {
                self.class = c.class;
                self.mark_keys_written(server, spec, &c.args);
            }
            signal_writes(server, c.db, spec, &c.args);
            self.replies[c.slot] = Some(reply);
        }
    }

    /// A blocking command's first try. When it has to wait, the replies before it are encoded
    /// into `out` and the connection gets back what it waits on (the caller adds the requests
    /// after it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_blocking(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        request: &Admitted,
        f: BlockingFn,
        args: Vec<Bytes>,
        out: &mut Vec<u8>,
    ) -> Option<Blocked> {
        let index = request.index;
        let spec = &TABLE[index];
        self.flush(server, conn).await;
        let waiter = Arc::new(Waiter::read_at(self.read_at));
        let keys: Vec<Bytes> = spec
            .key_positions(&args)
            .into_iter()
            .map(|p| args[p].clone())
            .collect();
        let mut pinned = None;
        let attempt = run_locked(server, conn, spec, &args, |ctx| {
            let attempt = step::execute(ctx, index, &args, Admission::Check, |ctx| f(ctx, &args));
            if matches!(attempt, Attempt::Block(_)) {
                // Registered while the keys' shards are still locked: a later push is bound
                // to find this client.
                server.blocking.register(conn.db, &keys, &waiter);
                pinned = spec.pins_block_args.and_then(|pin| pin(ctx, &args));
            }
            attempt
        });
        let args = pinned.unwrap_or(args);
        let timeout = match attempt {
            Attempt::Done(reply) => {
                signal_writes(server, conn.db, spec, &args);
                if request.logged {
                    self.mark_keys_written(server, spec, &args);
                }
                self.replies[slot] = Some(reply);
                return None;
            }
            Attempt::Block(timeout) => timeout,
        };
        let emit = self.emit[slot];
        let resp3 = self.resp3[slot];
        self.replies.pop();
        self.emit.pop();
        self.resp3.pop();
        self.commands.pop();
        self.await_durable(server).await;
        self.encode_replies(server, out);
        Some(Blocked {
            spec: index,
            db: conn.db,
            args,
            keys,
            waiter,
            deadline: timeout.map(|t| Instant::now() + t),
            emit,
            resp3,
            rest: Vec::new(),
        })
    }

    /// A change to server-wide metadata (QUANTUM links, WORMHOLE pins), under shard 0's lock.
    pub(super) async fn run_meta(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        request: &Admitted,
        f: MetaFn,
        args: &[Bytes],
    ) {
        self.flush(server, conn).await;
        let started = crate::command_timing::ticks();
        let reply = meta_step(server, request.index, f, args);
        let spent = crate::command_timing::ticks().wrapping_sub(started);
        crate::command_timing::account(server, request.index, args, spent, false, || conn.id);
        if request.logged {
            // A pin also logs in the shards whose data it moved.
            (0..self.wrote.len()).for_each(|s| self.mark_written(s));
        }
        self.replies[slot] = Some(reply);
    }

    /// WAITAOF and WAIT (`replicas`): wait, off the shards, for this read's writes, then for the
    /// log's fdatasync or for the replicas' acknowledgements.
    pub(super) async fn run_wait(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        args: &[Bytes],
        replicas: bool,
    ) {
        self.flush(server, conn).await;
        // This read's own earlier writes first, as for any reply.
        self.await_durable(server).await;
        use crate::replication::primary;
        let reply = if replicas {
            match primary::parse_wait(server, args) {
                Ok((wanted, timeout)) => {
                    primary::wait(server, self.stream_woff, wanted, timeout).await
                }
                Err(e) => e,
            }
        } else {
            match durability::parse_waitaof(server, args) {
                Ok(plan) => durability::waitaof(server, self.me, plan).await,
                Err(e) => e,
            }
        };
        self.replies[slot] = Some(reply);
    }

    /// A command about the connection or the whole server, on the connection's worker.
    pub(super) async fn run_session(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        request: &Admitted,
        f: SessionFn,
        args: &[Bytes],
    ) {
        self.flush(server, conn).await;
        let mut session = Session {
            server,
            conn,
            worker: self.me,
        };
        let started = crate::command_timing::ticks();
        let mut reply = guarded(TABLE[request.index].name, || f(&mut session, args));
        let spent = crate::command_timing::ticks().wrapping_sub(started);
        crate::command_timing::account(server, request.index, args, spent, false, || conn.id);
        // SORT ... STORE, and lazy expiry in KEYS, SCAN, RANDOMKEY ...
        crate::keyspace_events::publish_raised(server);
        if conn.resp3 && conn.subscribed() && !reply.is_error() {
            // Pushes queued while it ran (its own PUBLISH's message) go before its reply.
            let mut out = Vec::new();
            if let Some(subs) = conn.pubsub.as_mut() {
                subs.take_queued(&mut out);
            }
            if !out.is_empty() {
                reply.encode(&mut out, true);
                reply = Reply::Raw(Bytes::from(out));
            }
        }
        if request.logged {
            // FLUSHDB, FLUSHALL, SWAPDB, SORT ... STORE: logged on any shard.
            (0..self.wrote.len()).for_each(|s| self.mark_written(s));
        }
        self.replies[slot] = Some(reply);
        self.resp3[slot] = conn.resp3;
        // Replies are off after CLIENT REPLY OFF/SKIP (for that command too); a command that
        // turns them back on (CLIENT REPLY ON, RESET) is answered, and so is a Pub/Sub
        // confirmation (SUBSCRIBE's), which CLIENT REPLY does not silence.
        self.emit[slot] = (conn.reply_mode == ReplyMode::On && self.emit[slot])
            || std::mem::take(&mut conn.answer_regardless)
            || TABLE[request.index].confirms_subscription;
    }
}

/// Runs a metadata change under shard 0's lock, which orders such changes with their log
/// records and with snapshots (taken under every shard's lock); logs it if it changed anything.
pub(super) fn meta_step(server: &Server, index: usize, f: MetaFn, args: &[Bytes]) -> Reply {
    let mut shard0 = server.lock_shard(0);
    let mut changed = false;
    let reply = guarded(TABLE[index].name, || {
        let (reply, did) = f(server, Some(&mut shard0), args);
        changed = did;
        reply
    });
    crate::keyspace_events::publish_raised(server);
    if changed && server.wal.records() {
        wal_log::meta(server, &mut shard0, args);
    }
    reply
}
