//! Executing one pipeline read: commands are grouped per owning shard (one batch per
//! destination worker), barriers (connection/server commands, commands whose keys span shards)
//! flush what was queued before them, consecutive commands whose keys span shards run together
//! under one set of locks, and replies come back in request order.
//!
//! A request's way through: `admit` (checks before it runs) → `run` (by the kind of command;
//! `observe` sees keyed ones) → a batch per shard, run here or by its owner through the fabric
//! (`run_batch`, `drain`) → `step::execute` on the locked shard(s) → replies encoded in order
//! once the log is as durable as the writes ask. `locked` runs commands whose keys span shards,
//! `blocked` waits for blocking commands, `fanout` serves QUANTUM GET, `transaction` queues
//! commands inside MULTI and runs them at EXEC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use warpengine_storage::{db::Db, Shard};

use crate::command_table::{Attempt, CommandSpec, Keys, Run, ScriptRun, TxStep, TABLE};
use crate::command_timing::Moment;
use crate::fabric::{self, AwaitBatch, BatchItem, Envelope, RemoteBatch};
use crate::keyctx::{Caller, KeyCtx, Shards};
use crate::output_limits::{Class, UNCOUNTED_REPLY_BYTES};
use crate::persist::log as wal_log;
use crate::persist::Durable;
use crate::protocol::reply::c_string;
use crate::protocol::Reply;
use crate::server_state::{bump, unix_ms, Server};
use crate::session::{ConnState, ReplyMode};
use crate::transaction_state::Queued;

mod admit;
mod blocked;
mod fanout;
mod locked;
mod observe;
mod run;
mod script;
mod step;
mod transaction;

use admit::admit;
pub use blocked::Blocked;
use fanout::Gather;
use locked::{owned_here, run_locked, run_misrouted};
pub use script::eval_keys;
use step::{guarded, Admission};

/// Runs a batch of keyed commands on `shard` (the owner's worker, or a sender under the lock).
pub fn run_batch(server: &Server, shard: &mut Shard, batch: &mut RemoteBatch) {
    let now = unix_ms();
    let shard_id = shard.id;
    let mut ctx = KeyCtx::new(Shards::One(shard), server, 0, now);
    ctx.set_caller(batch.caller);
    let pins = server.wormhole.may_have_moved(batch.route_epoch);
    let mut wrote = false;
    // A batch of one command of one key (P=1) has no misses to overlap.
    let one_key =
        |item: &BatchItem| matches!(TABLE[item.spec].keys, Keys::Range(f, l, _) if f == l);
    let mut prefetched = match &batch.items[..] {
        [item] if one_key(item) => usize::MAX,
        _ => 0,
    };
    for (i, item) in batch.items.iter().enumerate() {
        if i >= prefetched {
            prefetched = i + prefetch_commands(
                &batch.items[i..],
                |item| (item.db, &TABLE[item.spec], &item.args[..]),
                |db, key| ctx.db_of(db, key),
            );
        }
        ctx.db = item.db;
        let Run::Keyed(f) = TABLE[item.spec].run else {
            // A one-shard script (the only other kind batched).
            wrote = true;
            if run_script_item(server, &mut ctx, item, batch.caller, &mut batch.replies) {
                continue;
            }
            // Sent back: the connection's worker runs it and the rest, in order.
            batch.misrouted.extend(i..batch.items.len());
            batch
                .replies
                .extend((i..batch.items.len()).map(|_| Reply::Nil));
            break;
        };
        if pins && !owned_here(server, shard_id, item) {
            batch.misrouted.push(i);
            batch.replies.push(Reply::Nil);
            continue;
        }
        wrote |= wal_log::is_logged(item.spec);
        let reply = step::execute(&mut ctx, item.spec, &item.args, Admission::Check, |ctx| {
            f(ctx, &item.args)
        });
        batch.replies.push(reply);
    }
    drop(ctx);
    // Before the replies leave (a worker answering several batches sends each back while it
    // still holds the shard): the copies of the hot keys they changed.
    server.hot_copies.publish(shard);
    // Only writes grow or fill the key tables (what reads expire lazily, the tick catches up).
    if wrote {
        server.publish_spare(shard);
    }
}

/// How many keys [`prefetch_commands`] prepares at a time: about as many cache misses as a
/// core keeps in flight.
const PREFETCH_AHEAD: usize = 16;

/// Before commands run on locked shards: starts loading the index lines of their keys, then
/// (those lines on their way) the keys' entries, then their values, so that the look-ups then
/// find them in the cache. With a keyspace larger than the caches a look-up is a chain of
/// dependent misses (index, entry, value); done one command after the other each waits for its
/// chain, where here the chains of up to [`PREFETCH_AHEAD`] keys overlap. Takes the keys of
/// `commands` from the first on (`describe` gives a command's database, spec and arguments;
/// `db_of` the locked database that holds a key) and gives how many commands it covered
/// (at least one). Only key specs that are ranges (the commands batched on the hot paths).
pub(super) fn prefetch_commands<'a, C>(
    commands: &'a [C],
    describe: impl Fn(&'a C) -> (usize, &'a CommandSpec, &'a [Bytes]),
    db_of: impl Fn(usize, &[u8]) -> Option<&'a Db>,
) -> usize {
    let mut slots: [Option<(&Db, u64)>; PREFETCH_AHEAD] = [None; PREFETCH_AHEAD];
    let (mut filled, mut covered) = (0, 0);
    'commands: for command in commands {
        let (db, spec, args) = describe(command);
        if let Keys::Range(..) = spec.keys {
            for at in spec.key_positions_iter(args) {
                if filled == PREFETCH_AHEAD {
                    break 'commands;
                }
                let key = &args[at][..];
                if let Some(db) = db_of(db, key) {
                    slots[filled] = Some((db, db.prefetch_slot(key)));
                    filled += 1;
                }
            }
        }
        covered += 1;
    }
    let mut entries = [None; PREFETCH_AHEAD];
    for (slot, entry) in slots[..filled].iter().zip(&mut entries) {
        *entry = slot.and_then(|(db, hash)| db.prefetch_entry(hash));
    }
    for entry in entries.into_iter().flatten() {
        entry.prefetch_value();
    }
    covered.max(1)
}

/// Runs a one-shard script of a batch on its shard (`script::run_on_owner`); false when it is
/// to be sent back to the connection's worker.
#[cold]
#[inline(never)]
fn run_script_item(
    server: &Server,
    ctx: &mut KeyCtx,
    item: &BatchItem,
    caller: Caller,
    replies: &mut Vec<Reply>,
) -> bool {
    match script::run_on_owner(server, ctx.shard(&[]), item, caller) {
        Some(reply) => {
            replies.push(reply);
            true
        }
        None => false,
    }
}

/// Answers every message waiting for worker `me`: runs requests on its shard, hands replies
/// to the connections waiting for them.
pub fn drain(server: &Server, me: usize) {
    for (to, env) in fabric::take_overflow() {
        if let Err(env) = server.fabric.send(me, to, env) {
            fabric::push_overflow(to, env);
        }
    }
    if !server.fabric.has_pending(me) {
        return;
    }
    let mut shard = None;
    server.fabric.pop_all(me, |_src, env| match env {
        Envelope::Request(mut batch) => {
            let guard = shard.get_or_insert_with(|| server.lock_shard(me));
            guard.stats.remote_requests += batch.items.len() as u64;
            guard.stats.remote_batches += 1;
            run_batch(server, guard, &mut batch);
            let origin = batch.origin;
            if let Err(env) = server.fabric.send(me, origin, Envelope::Done(batch)) {
                fabric::push_overflow(origin, env);
            }
        }
        Envelope::Done(batch) => fabric::complete(batch),
    });
}

/// A keyed command whose keys span shards, waiting to run with the ones after it (see
/// `Pipeline::run_cross_shard`).
struct CrossShard {
    slot: usize,
    index: usize,
    db: usize,
    logged: bool,
    class: Durable,
    args: Vec<Bytes>,
}

pub struct Pipeline {
    me: usize,
    /// When the requests being run were read: a blocked command waits behind the ones read
    /// before it (see `BlockRegistry::register`).
    pub read_at: Moment,
    /// Consecutive cross-shard commands of this read, to run under one set of locks.
    cross_shard: Vec<CrossShard>,
    /// Consecutive scripts of this read that run where the connection is, likewise.
    scripts: Vec<script::WaitingScript>,
    replies: Vec<Option<Reply>>,
    emit: Vec<bool>,
    /// The protocol each reply is encoded in: the one in force when its command ran.
    resp3: Vec<bool>,
    /// The command table index behind each reply, for per-command statistics.
    commands: Vec<Option<usize>>,
    /// One reusable batch per worker; `batches[me]` runs locally.
    batches: Vec<Option<Box<RemoteBatch>>>,
    queued: usize,
    last_command: Option<usize>,
    /// A script is queued in a batch of this read (see `Pipeline::answered_by_copy`).
    script_queued: bool,
    /// Remote batches awaiting their replies during a flush: (worker, waiter token).
    in_flight: Vec<(usize, usize)>,
    /// Commands a shard's worker sent back to run here, in order, once the flush has placed
    /// every batch: a script that reached beyond its shard, and what followed it there.
    sent_back: Vec<(usize, BatchItem)>,
    /// Shards this read wrote to: its replies wait until their logs are durable.
    /// Per shard, what this read's writes there wait for (None: no write).
    wrote: Vec<Option<Durable>>,
    /// What the command being queued waits for if it writes: appendfsync's, or its DURABILITY.
    class: Durable,
    any_write: bool,
    /// This read wrote while the replication stream was on (`note_stream_write`).
    stream_write: bool,
    /// The replication stream's offset once this connection's last write was in it (Redis's
    /// `c->woff`): what WAIT waits for replicas to acknowledge. 0 while it wrote nothing.
    stream_woff: u64,
    /// QUANTUM GETs of this read: their replies are assembled from hidden GET replies.
    gathers: Vec<Gather>,
    /// The WORMHOLE epoch when this read started routing (see `RemoteBatch::route_epoch`).
    route_epoch: u64,
    /// The class of the client's output limit for this read, and the reply bytes under which
    /// it needs no check (`output_limits`).
    output_class: Class,
    output_threshold: u64,
    /// Replies of earlier reads still waiting to be written (the client has not read them):
    /// they count toward the output limit with this read's.
    unsent: u64,
    /// When (Unix ms) the unwritten replies went over the soft limit; 0 while they are not.
    over_soft_since: AtomicU64,
    /// The replies passed the output limit: the connection is to close, unanswered.
    over_output_limit: bool,
    /// The last read's list of requests, emptied, for the next read to fill (one allocation
    /// per read less: `take_request_list`).
    spare_requests: Vec<Vec<Bytes>>,
}

impl Pipeline {
    pub fn new(workers: usize, me: usize) -> Pipeline {
        Pipeline {
            me,
            cross_shard: Vec::new(),
            scripts: Vec::new(),
            replies: Vec::new(),
            emit: Vec::new(),
            resp3: Vec::new(),
            commands: Vec::new(),
            batches: (0..workers).map(|_| Some(RemoteBatch::new(me))).collect(),
            queued: 0,
            script_queued: false,
            in_flight: Vec::new(),
            sent_back: Vec::new(),
            wrote: vec![None; workers],
            class: Durable::Written,
            any_write: false,
            stream_write: false,
            stream_woff: 0,
            last_command: None,
            read_at: Moment::now(),
            gathers: Vec::new(),
            route_epoch: 0,
            output_class: Class::Normal,
            output_threshold: u64::MAX,
            unsent: 0,
            over_soft_since: AtomicU64::new(0),
            over_output_limit: false,
            spare_requests: Vec::new(),
        }
    }

    /// Keeps an emptied list of requests for the next read (not a long pipeline's large one).
    pub fn put_back_request_list(&mut self, list: Vec<Vec<Bytes>>) {
        debug_assert!(list.is_empty());
        if list.capacity() <= fabric::KEPT_ROOM {
            self.spare_requests = list;
        }
    }

    /// An empty list for the next read's requests: the one the last `execute` emptied.
    pub fn take_request_list(&mut self) -> Vec<Vec<Bytes>> {
        let mut list = std::mem::take(&mut self.spare_requests);
        if list.capacity() == 0 {
            // A pipeline read is typically 16 requests: room for them without regrowing.
            list.reserve(16);
        }
        list
    }

    /// Whether the last replies passed the client's `client-output-buffer-limit`; the
    /// connection then closes without them, as Redis closes it.
    pub fn over_output_limit(&self) -> bool {
        self.over_output_limit
    }

    /// While the unwritten replies are over the soft limit: how long they may stay so before
    /// the client is closed. The connection waits that long at most for a client that does not
    /// read (Redis, which reads on while replies wait, closes it at its next reply).
    pub fn output_soft_deadline(&self, server: &Server) -> Option<std::time::Duration> {
        let since = self.over_soft_since.load(Ordering::Relaxed);
        if since == 0 {
            return None;
        }
        let limit = server.pubsub.limits.of(self.output_class);
        let until = since + limit.soft_seconds.load(Ordering::Relaxed) * 1000;
        Some(std::time::Duration::from_millis(
            until.saturating_sub(unix_ms()),
        ))
    }

    /// Replies of earlier reads the client has not taken yet: the output limit counts them.
    pub fn set_unsent(&mut self, bytes: usize) {
        self.unsent = bytes as u64;
    }

    /// The command this pipeline ran last (its row in the table).
    pub fn last_command(&self) -> Option<usize> {
        self.last_command
    }

    /// The worker this pipeline runs on.
    pub fn worker(&self) -> usize {
        self.me
    }

    /// Executes `requests` in order and encodes their replies into `out`. Stops at a blocking
    /// command that has to wait: the replies before it are encoded, and the rest is handed back.
    pub async fn execute(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        mut requests: Vec<Vec<Bytes>>,
        out: &mut Vec<u8>,
    ) -> Option<Blocked> {
        self.replies.clear();
        self.emit.clear();
        self.resp3.clear();
        self.commands.clear();
        self.route_epoch = server.wormhole.epoch();
        self.output_class = if conn.subscribed() {
            Class::PubSub
        } else {
            Class::Normal
        };
        self.output_threshold = server
            .pubsub
            .limits
            .of(self.output_class)
            .threshold()
            .saturating_sub(self.unsent);
        let mut next = requests.drain(..);
        while let Some(args) = next.next() {
            // As Redis's processCommand: before any command, eviction (see `evict_ahead`) and
            // the tracking table's trim to tracking-table-max-keys (a lowered limit applies at
            // the next command).
            if conn.tracking.is_some() {
                if server.limits.maxmemory.load(Ordering::Relaxed) != 0
                    || server.tracking.over_max_keys(server)
                {
                    self.evict_ahead(server, conn, out).await;
                }
            } else if server.tracking.active() && server.tracking.over_max_keys(server) {
                server.tracking.limit_keys(server);
            }
            let slot = self.replies.len();
            self.replies.push(None);
            self.commands.push(None);
            let emit = match conn.reply_mode {
                ReplyMode::On => true,
                ReplyMode::Off => false,
                ReplyMode::Skip => {
                    conn.reply_mode = ReplyMode::On;
                    false
                }
            };
            self.emit.push(emit);
            self.resp3.push(conn.resp3);
            let request = match admit(server, self.me, conn, &args, self.last_command) {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    self.replies[slot] = Some(transaction::refused(server, conn, &args, refusal));
                    continue;
                }
            };
            let index = request.index;
            self.last_command = Some(index);
            self.class = request.class;
            self.commands[slot] = Some(index);
            // (One relaxed load per request while no replica ever attached.)
            if server.wal.is_tapped() {
                self.note_stream_write(index);
            }
            if server.pause.active() && self.wait_out_pause(server, conn, index, &args).await {
                // As Redis runs a held command again from the start: what changed meanwhile
                // (FAILOVER made this server a replica) may refuse it now.
                if let Some(refusal) = admit::refusal_after_pause(server, conn, index, &args) {
                    self.replies[slot] = Some(transaction::refused(server, conn, &args, refusal));
                    continue;
                }
            }
            if server.monitors.active() {
                show_to_monitors(server, conn, index, &args);
            }
            let queues = conn.tx.is_some() && !TABLE[index].runs_in_multi;
            let tracks = conn.tracking.is_some()
                && server
                    .tracking
                    .before_command(server, conn, index, &args, queues);
            if queues {
                let queued = Queued {
                    index,
                    args,
                    class: request.class,
                    tracks,
                };
                self.queue_in_transaction(conn, slot, queued);
                continue;
            }
            match TABLE[index].run {
                Run::Keyed(_) => {
                    if let Some(args) = self.queue_keyed(server, conn, slot, &request, args) {
                        self.run_cross_shard(server, conn, slot, &request, args)
                            .await;
                    }
                }
                Run::Blocking(f) => {
                    let blocked = self.run_blocking(server, conn, slot, &request, f, args, out);
                    if let Some(mut blocked) = blocked.await {
                        blocked.rest = next.collect();
                        return Some(blocked);
                    }
                }
                Run::Container => unreachable!("resolved to a subcommand above"),
                Run::Meta(f) => self.run_meta(server, conn, slot, &request, f, &args).await,
                Run::WaitAof => self.run_wait(server, conn, slot, &args, false).await,
                Run::WaitReplicas => self.run_wait(server, conn, slot, &args, true).await,
                Run::Shutdown => {
                    self.flush(server, conn).await;
                    self.replies[slot] =
                        Some(crate::shutdown::run_command(server, conn, &args).await);
                }
                Run::Fanout { list, each } => {
                    match guarded(TABLE[index].name, || list(server, conn, &args)) {
                        Err(reply) => self.replies[slot] = Some(reply),
                        Ok(keys) => self.queue_fanout(server, conn, slot, each, keys),
                    }
                }
                Run::Transaction(step) => {
                    self.run_transaction_step(server, conn, slot, step, &args)
                        .await
                }
                Run::Script(kind) => {
                    self.class = request.class;
                    if conn.script_debug && matches!(kind, ScriptRun::EvalSha { .. }) {
                        self.replies[slot] = Some(Reply::err(
                            "ERR Please use EVAL instead of EVALSHA for debugging",
                        ));
                        continue;
                    }
                    match script::owner_of(server, kind, &args) {
                        Some(owner)
                            if conn.tracking.is_none()
                                && conn.user.unrestricted()
                                && !conn.script_debug =>
                        {
                            // Its writes are logged in its shard's log.
                            let logged = server.wal.is_on();
                            self.script_queued = true;
                            self.queue_for(server, conn, slot, index, owner, logged, args)
                        }
                        _ => {
                            self.queue_script(server, conn, slot, index, kind, args)
                                .await
                        }
                    }
                }
                Run::Session(f) => {
                    self.run_session(server, conn, slot, &request, f, &args)
                        .await;
                    if conn.close_after_reply {
                        // QUIT, or a client that killed itself: nothing after it runs.
                        break;
                    }
                }
            }
            if conn.tracking.is_some() && TABLE[index].is_write() {
                self.follow_with_invalidations(server, conn, slot).await;
            }
        }
        drop(next);
        self.put_back_request_list(requests);
        self.flush(server, conn).await;
        self.await_durable(server).await;
        self.encode_replies(server, out);
        None
    }

    /// Over maxmemory, Redis evicts before every command, read or write, and the invalidations
    /// of the evicted keys reach a tracking client before the command's reply. For a tracking
    /// client the same order here: what came before this command runs and its replies are
    /// encoded, every shard evicts, then the invalidations follow. (For other clients a keyed
    /// command makes room on its own shards when it runs: `eviction::before_command`.)
    /// The same for the tracking table's trim: its invalidations reach a tracking client
    /// before the reply of the command it came with.
    #[cold]
    async fn evict_ahead(&mut self, server: &Arc<Server>, conn: &mut ConnState, out: &mut Vec<u8>) {
        let evict = crate::eviction::over_limit(server) && !server.replication.is_replica();
        let trim = server.tracking.over_max_keys(server);
        if !evict && !trim {
            return;
        }
        self.flush(server, conn).await;
        self.encode_replies(server, out);
        if evict {
            crate::eviction::evict_now(server);
        }
        if trim {
            server.tracking.limit_keys(server);
        }
        if let Some(subs) = conn.pubsub.as_mut() {
            subs.take_queued(out);
        }
    }

    /// A tracking client's write: runs it now, and puts the invalidations it caused for this
    /// client right after its reply, where Redis puts them, rather than after the replies to
    /// the rest of the pipeline.
    #[cold]
    async fn follow_with_invalidations(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
    ) {
        self.flush(server, conn).await;
        let Some(subs) = conn.pubsub.as_mut() else {
            return;
        };
        let mut pushes = Vec::new();
        subs.take_queued(&mut pushes);
        if pushes.is_empty() {
            return;
        }
        if let Some(reply) = self.replies[slot].take() {
            let mut bytes = Vec::new();
            reply.encode(&mut bytes, self.resp3[slot]);
            bytes.extend_from_slice(&pushes);
            self.replies[slot] = Some(Reply::Raw(Bytes::from(bytes)));
        }
    }

    /// CLIENT PAUSE holds this request: what was queued before it runs first, then it waits
    /// for the pause to end. EXEC of a transaction that writes is held as a write. Whether it
    /// was held.
    #[cold]
    async fn wait_out_pause(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        index: usize,
        args: &[Bytes],
    ) -> bool {
        // A script writes unless it is declared `no-writes` (or run by a read-only form).
        let holds_as_write = |index: usize, args: &[Bytes]| match TABLE[index].run {
            Run::Script(kind) => script::may_write(server, kind, args),
            _ => crate::client_pause::writes(&TABLE[index], false),
        };
        let spec = &TABLE[index];
        let exec = matches!(spec.run, Run::Transaction(TxStep::Exec));
        let tx_writes = exec
            && conn
                .tx
                .as_ref()
                .is_some_and(|tx| tx.queued.iter().any(|q| holds_as_write(q.index, &q.args)));
        let writes = tx_writes || holds_as_write(index, args);
        if !server.pause.holds(writes) {
            return false;
        }
        self.flush(server, conn).await;
        let blocked = &server.blocking.blocked_clients;
        blocked.fetch_add(1, Ordering::Relaxed);
        conn.handle.info.lock().expect("client info lock").blocked = true;
        server.pause.wait(writes).await;
        conn.handle.info.lock().expect("client info lock").blocked = false;
        blocked.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// While the stream is on: whether this request writes (or may: a script, EXEC, a command
    /// queued in MULTI, all counted), so that WAIT then waits for this connection's writes.
    #[cold]
    fn note_stream_write(&mut self, index: usize) {
        let spec = &TABLE[index];
        let exec = matches!(spec.run, Run::Transaction(TxStep::Exec));
        if crate::client_pause::writes(spec, exec) {
            self.stream_write = true;
            crate::replication::will_send_before_reply();
        }
    }

    fn mark_written(&mut self, shard: usize) {
        self.wrote[shard] = self.wrote[shard].max(Some(self.class));
        self.any_write = true;
    }

    fn mark_keys_written(&mut self, server: &Server, spec: &CommandSpec, args: &[Bytes]) {
        for p in spec.key_positions(args) {
            self.mark_written(server.route(&args[p]));
        }
    }

    /// Holds the replies until the log records of this read's writes are durable (written, or
    /// fdatasync'd under `appendfsync always`). If the log failed, the writes answer MISCONF.
    async fn await_durable(&mut self, server: &Server) {
        if std::mem::take(&mut self.stream_write) {
            // This read's writes are in the stream by now; its end may also hold other
            // clients' later writes, so WAIT may wait a little longer than it needs, never less.
            self.stream_woff = server.replication.stream_end();
            server.replication.send_before_reply();
            tokio::task::yield_now().await;
        }
        if !std::mem::take(&mut self.any_write) {
            return;
        }
        let mut failure = None;
        // Every shard's write (and fdatasync) starts before this read waits for any of them.
        for shard in 0..self.wrote.len() {
            if let Some(class) = self.wrote[shard] {
                server.wal.start_durability(self.me, shard, class);
            }
        }
        for shard in 0..self.wrote.len() {
            let Some(class) = self.wrote[shard].take() else {
                continue;
            };
            let lsn = server.wal.logs[shard].appended();
            if let Err(e) = server.wal.wait_as(self.me, shard, lsn, class).await {
                failure = Some(e);
            }
        }
        let Some(e) = failure else { return };
        for (reply, command) in self.replies.iter_mut().zip(&self.commands) {
            if command.is_some_and(wal_log::is_logged) {
                *reply = Some(Reply::Error(e.clone()));
            }
        }
    }

    /// Encodes the replies gathered so far, in order, and accounts for them.
    fn encode_replies(&mut self, server: &Server, out: &mut Vec<u8>) {
        self.gather();
        let stats = &server.worker_stats[self.me];
        let slots = self.replies.iter().zip(&self.emit).zip(&self.commands);
        for (((reply, emit), command), resp3) in slots.zip(&self.resp3) {
            let reply = reply.as_ref().expect("every request got a reply");
            if let Some(index) = command {
                if reply.is_error() {
                    bump(&stats.commands[*index].failed, 1);
                }
            }
            // (A script's error that a command inside it raised was counted then.)
            if reply.is_error() && !matches!(reply, Reply::CountedError(_)) {
                bump(&stats.error_replies, 1);
                server.stats.count_error(reply);
            }
            if *emit {
                let before = out.len() as u64;
                reply.encode(out, *resp3);
                let len = out.len() as u64;
                // One comparison per reply while under the limits.
                if len > self.output_threshold || self.over_soft_since.load(Ordering::Relaxed) != 0
                {
                    // What Redis's 16 KB buffer would hold leaves the count, but for a reply
                    // whose length Redis writes last (all of it in its reply list).
                    let uncounted = match command {
                        Some(index) if TABLE[*index].reply_length_deferred => {
                            before.min(UNCOUNTED_REPLY_BYTES)
                        }
                        _ => UNCOUNTED_REPLY_BYTES,
                    };
                    let used = len.saturating_sub(uncounted);
                    if server
                        .pubsub
                        .limits
                        .of(self.output_class)
                        .exceeded(used + self.unsent, &self.over_soft_since)
                    {
                        self.over_output_limit = true;
                        break;
                    }
                }
            }
        }
        self.replies.clear();
        self.emit.clear();
        self.resp3.clear();
        self.commands.clear();
        if self.replies.capacity() > fabric::KEPT_ROOM {
            let room = fabric::KEPT_ROOM;
            self.replies.shrink_to(room);
            self.emit.shrink_to(room);
            self.resp3.shrink_to(room);
            self.commands.shrink_to(room);
        }
    }

    /// Tries a blocked command again; the reply once it has been served.
    pub fn retry_blocked(
        &self,
        server: &Arc<Server>,
        conn: &ConnState,
        b: &Blocked,
    ) -> Option<Reply> {
        let spec = &TABLE[b.spec];
        let Run::Blocking(f) = spec.run else {
            unreachable!("only blocking commands block")
        };
        let attempt = run_locked(server, conn, spec, &b.args, |ctx| {
            ctx.blocked_retry = true;
            step::execute(ctx, b.spec, &b.args, Admission::Admitted, |ctx| {
                f(ctx, &b.args)
            })
        });
        match attempt {
            Attempt::Done(reply) => {
                b.finish(server);
                signal_writes(server, b.db, spec, &b.args);
                Some(reply)
            }
            Attempt::Block(_) => None,
        }
    }

    /// Runs every queued batch: remote ones are sent first, the local one runs meanwhile,
    /// then the remote replies are collected.
    async fn flush(&mut self, server: &Arc<Server>, conn: &mut ConnState) {
        let caller = conn.caller();
        // Cross-shard commands and scripts wait only while nothing is queued after them (and
        // only one of the two kinds waits at a time: each runs the other's group first).
        self.run_cross_shard_group(server, caller);
        self.run_script_group(server, conn);
        if self.queued == 0 {
            return;
        }
        self.queued = 0;
        self.script_queued = false;
        let stats = &server.worker_stats[self.me];
        let run_inline = server.hot.fabric_inline_when_idle.load(Ordering::Relaxed);
        let mut in_flight = std::mem::take(&mut self.in_flight);
        for dest in 0..self.batches.len() {
            if dest == self.me
                || self.batches[dest]
                    .as_ref()
                    .is_none_or(|b| b.items.is_empty())
            {
                continue;
            }
            let mut batch = self.batches[dest].take().expect("checked above");
            batch.caller = caller;
            batch.route_epoch = self.route_epoch;
            // An owner that is parked would need a wake-up (an eventfd write and a context
            // switch); running its batch here under its shard lock is cheaper.
            if run_inline && server.fabric.is_sleeping(dest) {
                if let Some(mut shard) = server.try_lock_shard(dest) {
                    let started = Moment::now();
                    bump(&stats.remote_batches_inline, 1);
                    shard.stats.remote_requests += batch.items.len() as u64;
                    run_batch(server, &mut shard, &mut batch);
                    drop(shard);
                    let hop = &server.wormhole.hops[self.me][dest];
                    hop.inline.fetch_add(1, Ordering::Relaxed);
                    hop.record(batch.items.len(), started.elapsed());
                    self.place(server, batch, dest);
                    continue;
                }
            }
            batch.token = fabric::reserve_waiter();
            batch.sent_at = Some(Moment::now());
            bump(&stats.remote_batches_sent, 1);
            bump(&stats.remote_commands_sent, batch.items.len() as u64);
            let token = batch.token;
            match server.fabric.send(self.me, dest, Envelope::Request(batch)) {
                Ok(()) => in_flight.push((dest, token)),
                Err(Envelope::Request(mut batch)) | Err(Envelope::Done(mut batch)) => {
                    // The destination is saturated: run the batch here under its lock.
                    fabric::release_waiter(token);
                    run_batch(server, &mut server.lock_shard(dest), &mut batch);
                    self.place(server, batch, dest);
                }
            }
        }
        let me = self.me;
        if let Some(mut local) = self.batches[me].take() {
            if !local.items.is_empty() {
                local.caller = caller;
                local.route_epoch = self.route_epoch;
                bump(&stats.local_commands, local.items.len() as u64);
                let mut shard = server.lock_shard(me);
                shard.stats.local_requests += local.items.len() as u64;
                run_batch(server, &mut shard, &mut local);
            }
            self.place(server, local, me);
        }
        for (dest, token) in in_flight.drain(..) {
            let batch = AwaitBatch { token }.await;
            if let Some(sent) = batch.sent_at {
                server.wormhole.hops[self.me][dest].record(batch.items.len(), sent.elapsed());
            }
            self.place(server, batch, dest);
        }
        self.in_flight = in_flight;
        if !self.sent_back.is_empty() {
            self.run_sent_back(server, conn);
        }
    }

    fn place(&mut self, server: &Server, mut batch: Box<RemoteBatch>, dest: usize) {
        let mut sending_back = false;
        for i in std::mem::take(&mut batch.misrouted) {
            let item = &batch.items[i];
            // From a script that reached beyond its shard on, the items run here in order,
            // after the flush (the script needs the connection).
            sending_back |= matches!(TABLE[item.spec].run, Run::Script(_));
            if sending_back {
                let item = BatchItem {
                    spec: item.spec,
                    db: item.db,
                    args: item.args.clone(),
                };
                self.sent_back.push((batch.slots[i], item));
                continue;
            }
            batch.replies[i] = run_misrouted(server, item, batch.caller);
            if wal_log::is_logged(item.spec) && server.wal.is_on() {
                self.class = server.wal.fsync().durable();
                self.mark_keys_written(server, &TABLE[item.spec], &item.args);
            }
        }
        if server.blocking.has_waiters() {
            for item in &batch.items {
                signal_writes(server, item.db, &TABLE[item.spec], &item.args);
            }
        }
        for (slot, reply) in batch.slots.drain(..).zip(batch.replies.drain(..)) {
            self.replies[slot] = Some(reply);
        }
        batch.clear();
        self.batches[dest] = Some(batch);
    }
}

impl Pipeline {
    /// Runs what shards' workers sent back (see `place`), in order, where the connection is.
    #[cold]
    #[inline(never)]
    fn run_sent_back(&mut self, server: &Arc<Server>, conn: &mut ConnState) {
        for (slot, item) in std::mem::take(&mut self.sent_back) {
            let spec = &TABLE[item.spec];
            let reply = match spec.run {
                Run::Script(kind) => self.run_script_now(server, conn, kind, &item.args),
                _ => {
                    let reply = run_misrouted(server, &item, conn.caller());
                    if wal_log::is_logged(item.spec) && server.wal.is_on() {
                        self.class = server.wal.fsync().durable();
                        self.mark_keys_written(server, spec, &item.args);
                    }
                    signal_writes(server, item.db, spec, &item.args);
                    reply
                }
            };
            self.replies[slot] = Some(reply);
        }
    }
}

/// MONITOR's view of an admitted request. Queued commands are shown when EXEC runs them, and
/// EXEC after them, as Redis shows them. Out of line: nobody monitors, nearly always.
#[cold]
#[inline(never)]
fn show_to_monitors(server: &Server, conn: &ConnState, index: usize, args: &[Bytes]) {
    let spec = &TABLE[index];
    let exec = matches!(spec.run, Run::Transaction(TxStep::Exec));
    if (conn.tx.is_none() || spec.runs_in_multi) && !exec {
        server
            .monitors
            .feed(&server.pubsub.limits, conn, spec, args);
    }
}

/// Wakes a client blocked on any key a write command just wrote.
fn signal_writes(server: &Server, db: usize, spec: &CommandSpec, args: &[Bytes]) {
    if !server.blocking.has_waiters() || !(spec.is_write() || spec.wakes_all_waiters) {
        return;
    }
    for p in spec.key_positions(args) {
        if spec.wakes_all_waiters {
            server.blocking.signal_all(db, &args[p]);
        } else {
            server.blocking.signal(db, &args[p]);
        }
    }
}

/// Redis's text: the name and the first arguments, quoted, each followed by a space, built
/// from the bytes the client sent as Redis's `%.128s` prints them (up to a NUL, 128 at most).
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(c_string(&args[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for a in &args[1..] {
        if listed >= 128 {
            break;
        }
        let shown = c_string(a, 128 - listed);
        msg.push(b'\'');
        msg.extend_from_slice(shown);
        msg.extend_from_slice(b"' ");
        listed += shown.len() + 3;
    }
    Reply::error_bytes(msg)
}
