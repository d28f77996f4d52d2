//! MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis 7.0's semantics and errors.
//!
//! While a connection is in MULTI, the dispatcher queues each admitted command (`queue`) instead
//! of running it; a command refused while queuing marks the transaction aborted, so EXEC answers
//! EXECABORT. EXEC first runs what the pipeline queued before it, then the transaction:
//! consecutive keyed commands run as one step with every shard that owns one of their keys
//! locked (in ascending order, as any multi-shard command), so no other client sees part of
//! them; a transaction on one shard locks only that shard. The watched keys' shards are locked
//! with the first step, which checks the watch before anything runs. SELECT runs within a
//! step (it takes no lock: `CommandSpec::runs_in_exec_step`), so that the commands around it
//! stay one step and one group in the log and the replication stream (MULTI ... EXEC, as
//! Redis propagates a transaction). Another connection or server command inside the
//! transaction (FLUSHALL, CONFIG, ...) runs between such steps, with the shards unlocked:
//! those commands take their own locks.
//!
//! The log records of a locked step's commands form one group (across shards, or within one),
//! so that recovery applies the step whole or not at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::locked::run_on_shards_of;
use super::step::{self, guarded, Admission};
use super::{signal_writes, Pipeline};
use crate::command_table::{Attempt, Flags, Run, TxStep, TABLE};
use crate::persist::log as wal_log;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};
use crate::session::{ConnState, Session};
use crate::transaction_state::{self, Queued, Transaction, Watching};

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Whether a command can run inside EXEC's locked steps.
fn runs_locked(spec: &crate::command_table::CommandSpec) -> bool {
    matches!(spec.run, Run::Keyed(_) | Run::Blocking(_)) || spec.runs_in_exec_step
}

impl Pipeline {
    /// Inside MULTI: queues an admitted command (`+QUEUED`), or refuses one that cannot be
    /// part of a transaction and aborts it.
    pub(super) fn queue_in_transaction(
        &mut self,
        conn: &mut ConnState,
        slot: usize,
        queued: Queued,
    ) {
        let tx = conn.tx.as_mut().expect("in MULTI");
        let spec = &TABLE[queued.index];
        let allowed = !spec.flags.contains(Flags::NO_MULTI)
            && !matches!(spec.run, Run::Fanout { .. } | Run::WaitAof);
        self.replies[slot] = Some(if allowed {
            tx.queued.push(queued);
            Reply::Status("QUEUED")
        } else {
            tx.aborted = true;
            Reply::err("ERR Command not allowed inside a transaction")
        });
        transaction_state::show_queued(conn);
    }

    pub(super) async fn run_transaction_step(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        step: TxStep,
        args: &[Bytes],
    ) {
        let started = crate::command_timing::ticks();
        let reply = match step {
            TxStep::Multi if conn.tx.is_some() => Reply::err("ERR MULTI calls can not be nested"),
            TxStep::Multi => {
                conn.tx = Some(Box::default());
                OK
            }
            TxStep::Discard => match conn.tx.take() {
                None => Reply::err("ERR DISCARD without MULTI"),
                Some(_) => {
                    transaction_state::unwatch_all(server, conn);
                    OK
                }
            },
            TxStep::Watch if conn.tx.is_some() => {
                Reply::err("ERR WATCH inside MULTI is not allowed")
            }
            TxStep::Watch => {
                // Writes queued before WATCH in this read happen before it.
                self.flush(server, conn).await;
                transaction_state::watch(server, conn, &args[1..]);
                OK
            }
            TxStep::Unwatch => {
                transaction_state::unwatch_all(server, conn);
                OK
            }
            TxStep::Exec => match conn.tx.take() {
                None => Reply::err("ERR EXEC without MULTI"),
                Some(tx) if tx.aborted => {
                    transaction_state::unwatch_all(server, conn);
                    Reply::err(EXECABORT)
                }
                Some(tx) => {
                    let redirect = if server.cluster.enabled() {
                        cross_slot(server, conn, &tx)
                    } else {
                        None
                    };
                    if let Some(refusal) = redirect {
                        transaction_state::unwatch_all(server, conn);
                        refusal
                    } else {
                        self.flush(server, conn).await;
                        let watching = conn.watching.take();
                        let tracked_after = if tx.queued.iter().any(|q| q.tracks) {
                            server.tracking.before_exec(server, conn, &tx.queued)
                        } else {
                            Vec::new()
                        };
                        let reply = server.tracking.holding_bcast(server, || {
                            self.exec(server, conn, *tx, watching.as_deref())
                        });
                        server.tracking.after_exec(server, conn, &tracked_after);
                        conn.watching = watching;
                        transaction_state::unwatch_all(server, conn);
                        reply
                    }
                }
            },
        };
        if matches!(step, TxStep::Multi | TxStep::Exec | TxStep::Discard) {
            transaction_state::show_queued(conn);
        }
        if let (TxStep::Exec, true, Some(exec)) =
            (step, server.monitors.active(), self.commands[slot])
        {
            server
                .monitors
                .feed(&server.pubsub.limits, conn, &TABLE[exec], args);
        }
        if let Some(index) = self.commands[slot] {
            // EXEC's time includes its commands', which are also each their own, as in Redis.
            let spent = crate::command_timing::ticks().wrapping_sub(started);
            crate::command_timing::account(server, index, args, spent, false, || conn.id);
        }
        self.replies[slot] = Some(reply);
    }

    /// Runs a transaction: the watch check and the first run of keyed commands in one locked
    /// step, then each connection or server command and each following run of keyed commands.
    /// A changed watched key: the null reply, and nothing runs.
    fn exec(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        tx: Transaction,
        watching: Option<&Watching>,
    ) -> Reply {
        let queued = tx.queued;
        conn.in_exec = true;
        let reply = self.exec_queued(server, conn, &queued, watching);
        conn.in_exec = false;
        reply
    }

    fn exec_queued(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        queued: &[Queued],
        watching: Option<&Watching>,
    ) -> Reply {
        let mut replies = Vec::with_capacity(queued.len());
        let mut at = 0;
        let mut check_watch = watching.filter(|w| !w.keys.is_empty());
        while at < queued.len() || check_watch.is_some() {
            let end = queued[at..]
                .iter()
                .position(|q| !runs_locked(&TABLE[q.index]))
                .map_or(queued.len(), |n| at + n);
            if end > at || check_watch.is_some() {
                let watch = check_watch.take();
                if !self.run_locked_step(server, conn, &queued[at..end], watch, &mut replies) {
                    return Reply::NilArray;
                }
            }
            if end < queued.len() {
                let reply = self.run_unlocked(server, conn, &queued[end]);
                replies.push(reply);
                at = end + 1;
            } else {
                at = end;
            }
        }
        Reply::Array(replies)
    }

    /// Runs keyed commands with their shards (and the watched keys') locked; false, having run
    /// nothing, when a watched key changed.
    fn run_locked_step(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        commands: &[Queued],
        watch: Option<&Watching>,
        replies: &mut Vec<Reply>,
    ) -> bool {
        let mut keys: Vec<&[u8]> = Vec::new();
        for q in commands {
            let spec = &TABLE[q.index];
            keys.extend(spec.key_positions(&q.args).iter().map(|&p| &q.args[p][..]));
        }
        if let Some(w) = watch {
            keys.extend(w.keys.iter().map(|(_, k)| &k[..]));
        }
        let me = self.me;
        // The database each command ran in (a SELECT in the step changes it for the next).
        let mut dbs = Vec::with_capacity(commands.len());
        let caller = conn.caller();
        let ran = run_on_shards_of(
            server,
            conn.db,
            caller,
            || keys.iter().copied(),
            |ctx| {
                if let Some(w) = watch {
                    let now = unix_ms();
                    let changed = w.flag.is_set()
                        || w.keys.iter().any(|(wdb, key)| {
                            ctx.db_at(key, *wdb).watched_key_expired(key, &w.flag, now)
                        });
                    if changed {
                        return false;
                    }
                }
                // The commands' log records are kept, to be logged as one group below.
                if server.wal.records() {
                    ctx.captured = Some(Vec::new());
                }
                let mut prefetched = 0;
                for (j, q) in commands.iter().enumerate() {
                    if j >= prefetched {
                        let db = conn.db;
                        prefetched = j + super::prefetch_commands(
                            &commands[j..],
                            |q| (db, &TABLE[q.index], &q.args[..]),
                            |db, key| ctx.db_of(db, key),
                        );
                    }
                    ctx.db = conn.db;
                    dbs.push(conn.db);
                    if let Some(refusal) = exec_acl_refusal(server, conn, q) {
                        server.note_failure(me, q.index, &refusal);
                        replies.push(refusal);
                        continue;
                    }
                    if server.monitors.active() {
                        server
                            .monitors
                            .feed(&server.pubsub.limits, conn, &TABLE[q.index], &q.args);
                    }
                    // Admitted with EXEC, whose admission judged memory for all of them: as in
                    // Redis, nothing inside the transaction evicts or is refused with OOM (a
                    // CONFIG SET maxmemory it ran takes effect at the next command).
                    let reply = match TABLE[q.index].run {
                        Run::Keyed(f) => {
                            step::execute(ctx, q.index, &q.args, Admission::Admitted, |ctx| {
                                f(ctx, &q.args)
                            })
                        }
                        // Inside a transaction a blocking command does not block: it answers
                        // what it would on a timeout.
                        Run::Blocking(f) => {
                            match step::execute(ctx, q.index, &q.args, Admission::Admitted, |ctx| {
                                f(ctx, &q.args)
                            }) {
                                Attempt::Done(reply) => reply,
                                Attempt::Block(_) if TABLE[q.index].nil_bulk_if_cannot_block => {
                                    Reply::Nil
                                }
                                Attempt::Block(_) => Reply::NilArray,
                            }
                        }
                        // SELECT: no lock of its own, so it runs inside the step.
                        Run::Session(f) => {
                            let mut session = Session {
                                server,
                                conn: &mut *conn,
                                worker: me,
                            };
                            guarded(TABLE[q.index].name, || f(&mut session, &q.args))
                        }
                        _ => unreachable!("only keyed commands run locked"),
                    };
                    // Each command's error counts, as Redis's (EXEC's reply is an array).
                    server.note_failure(me, q.index, &reply);
                    replies.push(reply);
                }
                if let Some(captured) = ctx.captured.take() {
                    wal_log::transaction_step(ctx, captured);
                }
                true
            },
        );
        if !ran {
            return false;
        }
        for (q, db) in commands.iter().zip(dbs) {
            let spec = &TABLE[q.index];
            if wal_log::is_logged(q.index) && server.wal.is_on() {
                self.class = q.class;
                self.mark_keys_written(server, spec, &q.args);
            }
            signal_writes(server, db, spec, &q.args);
        }
        true
    }

    /// A connection or server command inside EXEC, with no shard locked.
    fn run_unlocked(&mut self, server: &Arc<Server>, conn: &mut ConnState, q: &Queued) -> Reply {
        if let Some(refusal) = exec_acl_refusal(server, conn, q) {
            return refusal;
        }
        let spec = &TABLE[q.index];
        let logged = wal_log::is_logged(q.index) && server.wal.is_on();
        if server.monitors.active() {
            server
                .monitors
                .feed(&server.pubsub.limits, conn, spec, &q.args);
        }
        let started = crate::command_timing::ticks();
        let reply = match spec.run {
            Run::Session(f) => {
                let mut session = Session {
                    server,
                    conn,
                    worker: self.me,
                };
                guarded(spec.name, || f(&mut session, &q.args))
            }
            Run::Meta(f) => super::run::meta_step(server, q.index, f, &q.args),
            Run::Script(kind) => {
                self.class = q.class;
                self.run_script_now(server, conn, kind, &q.args)
            }
            // Inside a transaction WAIT does not wait: it answers the count now, as Redis.
            Run::WaitReplicas => match crate::replication::primary::parse_wait(server, &q.args) {
                Ok(_) => crate::replication::primary::acked_now(server, self.stream_woff),
                Err(e) => e,
            },
            _ => unreachable!("refused while queuing or run locked"),
        };
        // Its own time, slow log and latency, as a keyed command's inside EXEC (EXEC itself
        // skips the slow log, as Redis's).
        let spent = crate::command_timing::ticks().wrapping_sub(started);
        let id = conn.id;
        crate::command_timing::account(server, q.index, &q.args, spent, false, || id);
        server.note_failure(self.me, q.index, &reply);
        if logged {
            self.class = q.class;
            (0..self.wrote.len()).for_each(|s| self.mark_written(s));
        }
        reply
    }
}

/// Cluster mode: EXEC's keys are every queued command's, and must all be in one slot served
/// here, as Redis checks them (the transaction is discarded otherwise).
#[cold]
fn cross_slot(server: &Server, conn: &ConnState, tx: &Transaction) -> Option<Reply> {
    let keys: Vec<&Bytes> = tx
        .queued
        .iter()
        .flat_map(|q| {
            TABLE[q.index]
                .key_positions_iter(&q.args)
                .map(|p| &q.args[p])
        })
        .collect();
    let writes = tx.queued.iter().any(|q| TABLE[q.index].is_write());
    let query = crate::cluster::Query {
        asking: conn.asking,
        readonly_client: conn.readonly,
        is_write: writes,
        ..Default::default()
    };
    super::admit::cluster_redirect(server, conn, &keys, query)
}

/// EXEC checks each queued command again, as Redis does, in case the user's rules changed
/// since it was queued: the NOPERM error that command answers then.
fn exec_acl_refusal(server: &Server, conn: &ConnState, q: &Queued) -> Option<Reply> {
    if conn.user.unrestricted() {
        return None;
    }
    let no_auth = TABLE[q.index]
        .flags
        .contains(crate::command_table::Flags::NO_AUTH);
    let (verdict, entry) = conn.user.check(q.index, &q.args, no_auth);
    if verdict != crate::acl::Verdict::Allowed {
        let fields = verdict.log_fields(entry, &q.args);
        let username = Bytes::from(conn.user.name.clone());
        crate::acl::log_denial(
            server,
            conn,
            crate::acl::LogContext::Multi,
            fields,
            username,
        );
    }
    let reason = match verdict {
        crate::acl::Verdict::Allowed => return None,
        crate::acl::Verdict::DeniedCommand => "no permission to execute the command or subcommand",
        crate::acl::Verdict::DeniedKey(_) => "no permission to touch the specified keys",
        crate::acl::Verdict::DeniedChannel(_) => {
            "no permission to access one of the channels used as arguments"
        }
    };
    Some(Reply::err(format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and its execution. This command is no longer allowed for the following reason: {reason}")))
}

/// Whether any client watches a key now (a write command then tells the watchers of its keys).
pub(super) fn anyone_watching(server: &Server) -> bool {
    server.watched_keys.load(Ordering::Relaxed) != 0
}

/// A request refused at admission: inside MULTI the transaction is aborted (EXEC will answer
/// EXECABORT); a refused EXEC itself ends the transaction and any watch, and says why in
/// Redis's words (`execCommandAbort`).
pub(super) fn refused(
    server: &Server,
    conn: &mut ConnState,
    args: &[Bytes],
    refusal: Reply,
) -> Reply {
    let is_exec = crate::command_table::lookup(&args[0])
        .is_some_and(|i| matches!(TABLE[i].run, Run::Transaction(TxStep::Exec)));
    if !is_exec {
        if let Some(tx) = conn.tx.as_mut() {
            tx.aborted = true;
        }
        return refusal;
    }
    transaction_state::end(server, conn);
    let why = match &refusal {
        Reply::Error(e) => e.strip_prefix("ERR ").unwrap_or(e).to_string(),
        _ => return refusal,
    };
    Reply::err(format!("EXECABORT Transaction discarded because of: {why}"))
}
