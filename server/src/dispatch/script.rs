//! EVAL, EVALSHA, FCALL and their read-only forms: a script (or a function) runs to its end
//! as one atomic step.
//!
//! Where it runs: an EVALSHA or FCALL whose keys all live on one shard travels to that shard's
//! worker in the pipeline's batch for it, as a keyed command does, and runs there under the
//! shard's lock ([`run_on_owner`]); any other script runs on the connection's worker after
//! what was queued before it ([`Pipeline::run_script_now`]), first with its keys' shards
//! locked (ascending, the global lock order). Either way no other client sees its
//! intermediate state. A script that reaches beyond those shards (a key elsewhere, declared
//! or not; a server command that writes or needs more; a value too large to copy) has its
//! writes undone and runs again on the connection's worker with every shard locked, as it
//! then always does (`ScriptCache::broad`).
//!
//! Each `redis.call` goes through the one execution step (`step::execute`) on the locked
//! shards; a server command (TIME, DBSIZE ...) runs with them lent to it
//! (`server_state::with_lent_shards`). The log records of the script's writes form one group,
//! as a transaction's do, so that recovery applies a script whole or not at all, and replays
//! its effects rather than running it again.

use std::sync::Arc;

use bytes::Bytes;

use super::step::{self, guarded, Admission};
use super::{signal_writes, Pipeline};
use crate::acl;
use crate::command_table::{self, Attempt, Flags, Run, ScriptRun, TABLE};
use crate::keyctx::{Caller, KeyCtx, Shards};
use crate::persist::log as wal_log;
use crate::protocol::Reply;
use crate::scripting::{self, Host, ScriptFlags, ScriptId};
use crate::server_state::{bump, unix_ms, with_lent_shards, Server, ShardGuard, ShardNotLent};
use crate::session::{ConnState, Session};
use warpengine_storage::KeyCopy;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// EVAL's keys: the `numkeys` arguments after the script and the count (none when the count
/// is not a valid number: the command answers that error when it runs).
pub fn eval_keys(args: &[Bytes]) -> Vec<usize> {
    match numkeys(args) {
        Ok(n) => (3..3 + n).collect(),
        Err(_) => Vec::new(),
    }
}

/// The number of keys a script call names, with Redis's errors.
fn numkeys(args: &[Bytes]) -> Result<usize, Reply> {
    let n = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Reply::err(crate::protocol::reply::NOT_INTEGER))?;
    if n < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    if n as usize > args.len() - 3 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// Scripts of one read that wait to run together ([`Pipeline::queue_script`]) take the locks
/// once for at most this many (the shards stay locked while they all run).
const SCRIPT_GROUP: usize = 64;

/// A script of this read waiting for the ones after it ([`Pipeline::queue_script`]), with
/// what it runs under as of its place in the read.
pub(super) struct WaitingScript {
    slot: usize,
    index: usize,
    kind: ScriptRun,
    db: usize,
    user: Option<Arc<acl::User>>,
    args: Vec<Bytes>,
}

impl Pipeline {
    /// A script command that runs where the connection is: after what was queued before it,
    /// and together with the scripts that follow it in this read, under one set of locks
    /// ([`Pipeline::run_script_group`]): a pipeline of scripts then takes the shards' locks
    /// once rather than once per script. (A one-shard EVALSHA or FCALL travels to its shard's
    /// worker instead: [`owner_of`].)
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn queue_script(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        slot: usize,
        index: usize,
        kind: ScriptRun,
        args: Vec<Bytes>,
    ) {
        if self.scripts.is_empty() {
            // What was queued before the group runs first; nothing is queued while a group
            // waits (a command queued for a shard runs the group before it queues).
            self.flush(server, conn).await;
        }
        self.scripts.push(WaitingScript {
            slot,
            index,
            kind,
            db: conn.db,
            user: checked_user(conn),
            args,
        });
        if self.scripts.len() >= SCRIPT_GROUP {
            self.run_script_group(server, conn);
        }
    }

    /// Runs the waiting scripts of this read, in order, each atomically, under one set of
    /// locks ([`Pipeline::run_atomically`]).
    pub(super) fn run_script_group(&mut self, server: &Arc<Server>, conn: &mut ConnState) {
        if self.scripts.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.scripts);
        let mut calls = Vec::with_capacity(group.len());
        for (at, waiting) in group.iter().enumerate() {
            match prepare(server, waiting.kind, &waiting.args) {
                Ok(call) => calls.push(Run1 {
                    at,
                    db: waiting.db,
                    user: waiting.user.clone(),
                    call,
                }),
                Err(e) => self.replies[waiting.slot] = Some(e),
            }
        }
        // A script's BCAST invalidations go out once it ended, one message per prefix.
        let results = server
            .tracking
            .holding_bcast(server, || self.run_atomically(server, conn, &calls));
        for (run, (reply, spent)) in calls.iter().zip(results) {
            let waiting = &group[run.at];
            crate::command_timing::account(
                server,
                waiting.index,
                &waiting.args,
                spent,
                false,
                || conn.id,
            );
            self.replies[waiting.slot] = Some(reply);
        }
    }

    /// Runs a script to its end (from EXEC, or again after its shard's worker found it
    /// reaching beyond its shard) and answers its reply.
    pub(super) fn run_script_now(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        kind: ScriptRun,
        args: &[Bytes],
    ) -> Reply {
        match prepare(server, kind, args) {
            Ok(call) => {
                let one = [Run1 {
                    at: 0,
                    db: conn.db,
                    user: checked_user(conn),
                    call,
                }];
                let mut replies = server
                    .tracking
                    .holding_bcast(server, || self.run_atomically(server, conn, &one));
                replies.pop().expect("one reply per script").0
            }
            Err(e) => e,
        }
    }

    /// Runs scripts in order, each atomically, under one set of locks: first the shards of
    /// their declared keys, keeping a copy of each key before a script writes it. A script that
    /// reaches beyond them (a key of another shard, a server command that writes or needs
    /// another shard, a value too large to copy) has its writes undone and runs again with
    /// every shard locked, as it will from then on, and so do the scripts after it. Each
    /// script's writes are logged as one group; once the locks are released, the clients its
    /// writes concern are woken, and the replies wait for the log. Answers each script's reply
    /// and the ticks it took.
    fn run_atomically(
        &mut self,
        server: &Arc<Server>,
        conn: &mut ConnState,
        calls: &[Run1],
    ) -> Vec<(Reply, u64)> {
        // A debugged script holds every shard from the start: run again, it would stop at its
        // first line again.
        let mut all = conn.script_debug
            || calls
                .iter()
                .any(|r| server.scripts.broad.contains(r.call.id()));
        let mut ids: Vec<usize> = calls
            .iter()
            .flat_map(|r| r.call.keys.iter().map(|k| server.route(k)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut guards = if all {
            server.lock_all()
        } else {
            ids.iter().map(|&id| server.lock_shard(id)).collect()
        };
        let caller = conn.caller();
        let mut replies = Vec::with_capacity(calls.len());
        let mut writes = Vec::new();
        let mut server_writes = false;
        for run in calls {
            let started = crate::command_timing::ticks();
            let reply = loop {
                let held = (!all).then(|| ids.clone());
                let session = SessionParts {
                    server,
                    conn: &mut *conn,
                    worker: self.me,
                };
                let mut host = ScriptHost::new(
                    server,
                    Some(session),
                    caller,
                    run.db,
                    held,
                    &mut guards,
                    &run.call,
                );
                host.user = run.user.clone();
                let reply = run_vm(server, &run.call, &mut host);
                if host.beyond {
                    host.undo();
                    drop(host);
                    note_rerun(server, run.call.id());
                    drop(guards);
                    guards = server.lock_all();
                    all = true;
                    continue;
                }
                let finished = host.finish(run.db);
                writes.extend(finished.writes);
                server_writes |= finished.server_writes;
                if finished.read && conn.track_script_keys {
                    server.tracking.remember_keys(server, conn, run.call.keys);
                }
                break reply;
            };
            replies.push((reply, crate::command_timing::ticks().wrapping_sub(started)));
        }
        drop(guards);
        for (index, db, args) in &writes {
            let spec = &TABLE[*index];
            if wal_log::is_logged(*index) && server.wal.is_on() {
                self.mark_keys_written(server, spec, args);
            }
            signal_writes(server, *db, spec, args);
        }
        if server_writes && server.wal.is_on() {
            (0..self.wrote.len()).for_each(|s| self.mark_written(s));
        }
        replies
    }
}

/// The connection's user when its scripts' calls are to be checked (it is not allowed
/// everything).
fn checked_user(conn: &ConnState) -> Option<Arc<acl::User>> {
    (!conn.user.unrestricted()).then(|| conn.user.clone())
}

/// A script of a group, ready to run: its place in the group, its database and user (as of
/// its place in the read), and what it runs.
pub(super) struct Run1<'a> {
    at: usize,
    db: usize,
    user: Option<Arc<acl::User>>,
    call: ScriptCall<'a>,
}

/// A one-shard EVALSHA or FCALL (its keys all on one shard, its script or function known and
/// not one that needs every shard): the shard whose worker runs it, in that worker's batch,
/// under the lock the batch holds anyway, so that scripts on different shards run in
/// parallel without waiting for each other's locks. None: it runs where the connection is.
pub(super) fn owner_of(server: &Server, kind: ScriptRun, args: &[Bytes]) -> Option<usize> {
    if matches!(kind, ScriptRun::Eval { .. }) {
        // (An EVAL is compiled where it arrives; clients send EVALSHA once it is cached.)
        return None;
    }
    let n = numkeys(args).ok()?;
    let mut owners = args[3..3 + n].iter().map(|k| server.route(k));
    let owner = owners.next()?;
    if !owners.all(|o| o == owner) {
        return None;
    }
    let call = prepare(server, kind, args).ok()?;
    let scripts = &server.scripts;
    let stays = scripts.broad.contains(call.id()) || scripts.at_connection.contains(call.id());
    (!stays).then_some(owner)
}

/// Runs a one-shard script on its shard, locked by the caller (its worker's batch): Some
/// reply, or None when it reached beyond the shard (a key elsewhere, a server command, a
/// large value): then its writes are undone, and the connection's worker runs it again with
/// every shard locked.
pub(super) fn run_on_owner(
    server: &Server,
    shard: &mut warpengine_storage::Shard,
    item: &crate::fabric::BatchItem,
    caller: crate::keyctx::Caller,
) -> Option<Reply> {
    let Run::Script(kind) = TABLE[item.spec].run else {
        unreachable!("only scripts run here")
    };
    let call = match prepare(server, kind, &item.args) {
        Ok(call) => call,
        Err(e) => return Some(e),
    };
    if server.scripts.broad.contains(call.id()) {
        return None;
    }
    let started = crate::command_timing::ticks();
    let id = shard.id;
    let mut guards = vec![ShardGuard::Lent(shard)];
    let mut host = ScriptHost::new(
        server,
        None,
        caller,
        item.db,
        Some(vec![id]),
        &mut guards,
        &call,
    );
    let reply = run_vm(server, &call, &mut host);
    if host.beyond {
        host.undo();
        if host.needs_connection {
            // Not beyond its shard: it runs on its connection's worker from now on.
            server.scripts.at_connection.insert(call.id());
            server
                .stats
                .script_reruns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            note_rerun(server, call.id());
        }
        return None;
    }
    let writes = host.finish(item.db).writes;
    for (index, db, args) in &writes {
        signal_writes(server, *db, &TABLE[*index], args);
    }
    let spent = crate::command_timing::ticks().wrapping_sub(started);
    crate::command_timing::account(server, item.spec, &item.args, spent, false, || {
        caller.client
    });
    Some(reply)
}

fn note_rerun(server: &Server, id: ScriptId) {
    server.scripts.broad.insert(id);
    server
        .stats
        .script_reruns
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A script call, ready to run: what runs, its keys and arguments, whether it may write.
struct ScriptCall<'a> {
    target: Target,
    /// The whole command (EVAL, FCALL ...).
    command: &'a [Bytes],
    keys: &'a [Bytes],
    argv: &'a [Bytes],
    read_only: bool,
}

enum Target {
    Script(Arc<scripting::Script>),
    /// A library and its function's place in it.
    Function(Arc<scripting::functions::Library>, usize),
}

impl ScriptCall<'_> {
    /// The flags its shebang or its function's registration declared.
    fn flags(&self) -> ScriptFlags {
        match &self.target {
            Target::Script(script) => script.flags,
            Target::Function(library, i) => library.functions[*i].flags,
        }
    }

    /// What the marks of how scripts run know it by.
    fn id(&self) -> ScriptId<'_> {
        match &self.target {
            Target::Script(script) => ScriptId::Script(&script.sha),
            Target::Function(library, i) => ScriptId::Function(&library.functions[*i].name),
        }
    }
}

/// Whether a script command may write, as CLIENT PAUSE WRITE judges it (Redis's
/// evalGetCommandFlags): not the read-only forms, nor a script or function declared
/// `no-writes`; one that cannot run counts by its form (it fails once released).
pub(super) fn may_write(server: &Server, kind: ScriptRun, args: &[Bytes]) -> bool {
    match prepare(server, kind, args) {
        Ok(call) => !call.read_only,
        Err(_) => !matches!(
            kind,
            ScriptRun::Eval { read_only: true }
                | ScriptRun::EvalSha { read_only: true }
                | ScriptRun::Fcall { read_only: true }
        ),
    }
}

/// A script command's flags as Redis judges it before it runs (scriptFlagsToCmdFlags): one
/// that runs a function, or a script with a shebang, takes them from what it declares (a
/// write unless `no-writes`, `denyoom` unless `allow-oom` or `no-writes`, `stale` only with
/// `allow-stale`); any other keeps the command's own. Used by admission for READONLY,
/// MASTERDOWN, NOREPLICAS and OOM, and for the commands a transaction queued.
pub(super) fn judged_flags(server: &Server, index: usize, args: &[Bytes]) -> Flags {
    let spec = &TABLE[index];
    let Run::Script(kind) = spec.run else {
        return spec.flags;
    };
    let Ok(call) = prepare_unchecked(server, kind, args) else {
        return spec.flags;
    };
    let declared = call.flags();
    if matches!(call.target, Target::Script(_)) && !declared.contains(ScriptFlags::DECLARED) {
        return spec.flags;
    }
    let mut flags = spec.flags.without(
        Flags::STALE
            .with(Flags::DENYOOM)
            .with(Flags::WRITE)
            .with(Flags::MAY_REPLICATE),
    );
    let no_writes = declared.contains(ScriptFlags::NO_WRITES) || call.read_only;
    if !no_writes {
        flags = flags.with(Flags::WRITE);
        if !declared.contains(ScriptFlags::ALLOW_OOM) {
            flags = flags.with(Flags::DENYOOM);
        }
    }
    if declared.contains(ScriptFlags::ALLOW_STALE) {
        flags = flags.with(Flags::STALE);
    }
    flags
}

/// Finds what a script command runs, with Redis's errors for a bad key count, an unknown
/// script or function, or a function with writes called by FCALL_RO.
fn prepare<'a>(
    server: &Server,
    kind: ScriptRun,
    args: &'a [Bytes],
) -> Result<ScriptCall<'a>, Reply> {
    let call = prepare_unchecked(server, kind, args)?;
    // A function, or a script with a shebang, that may write does not run on a read-only
    // replica (Redis's scriptPrepareForRun); a script without one runs until it writes.
    let declared =
        matches!(call.target, Target::Function(..)) || call.flags().contains(ScriptFlags::DECLARED);
    if declared
        && !call.flags().contains(ScriptFlags::NO_WRITES)
        && server.replication.is_replica()
        && server.replication.upstream.read_only(server)
    {
        return Err(Reply::err(crate::replication::replica::READONLY));
    }
    // A script without a shebang does not run at all on a stale replica (Redis's
    // scriptPrepareForRun, for its compatibility mode); a declared one is judged at admission.
    if !declared
        && server.replication.is_replica()
        && !server.replication.upstream.serves_stale(server)
    {
        return Err(Reply::err(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ));
    }
    // Nor over maxmemory under noeviction without `allow-oom` (no-writes implies it): Redis
    // takes such a script's command as `denyoom` and refuses it with the plain OOM error.
    // (With a policy that evicts, its writes make room as they go.)
    if declared
        && !call.flags().contains(ScriptFlags::NO_WRITES)
        && !call.flags().contains(ScriptFlags::ALLOW_OOM)
        && server.limits.policy() == crate::eviction::Policy::NoEviction
        && crate::eviction::over_limit(server)
    {
        return Err(Reply::err(crate::eviction::OOM));
    }
    Ok(call)
}

/// What a script command runs, with the errors of its own arguments (and `no-cluster`), but
/// not yet the server's state (a read-only replica, memory).
fn prepare_unchecked<'a>(
    server: &Server,
    kind: ScriptRun,
    args: &'a [Bytes],
) -> Result<ScriptCall<'a>, Reply> {
    let (target, read_only) = match kind {
        ScriptRun::Eval { read_only } => {
            let script = scripting::load(&server.scripts, &args[1])?;
            let ro = read_only || script.flags.contains(ScriptFlags::NO_WRITES);
            (Target::Script(script), ro)
        }
        ScriptRun::EvalSha { read_only } => {
            let script = server
                .scripts
                .get(&args[1])
                .ok_or_else(|| Reply::err(NOSCRIPT))?;
            let ro = read_only || script.flags.contains(ScriptFlags::NO_WRITES);
            (Target::Script(script), ro)
        }
        ScriptRun::Fcall { read_only } => {
            let (library, i) = server
                .functions
                .function(&args[1])
                .ok_or_else(|| Reply::err("ERR Function not found"))?;
            let no_writes = library.functions[i].flags.contains(ScriptFlags::NO_WRITES);
            if read_only && !no_writes {
                // (Checked after the key count, as Redis does.)
                numkeys(args).map_err(bad_function_keys)?;
                return Err(Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                ));
            }
            (Target::Function(library, i), no_writes)
        }
    };
    let n = match kind {
        ScriptRun::Fcall { .. } => numkeys(args).map_err(bad_function_keys)?,
        _ => numkeys(args)?,
    };
    let call = ScriptCall {
        target,
        command: args,
        keys: &args[3..3 + n],
        argv: &args[3 + n..],
        read_only,
    };
    if server.cluster.enabled() && call.flags().contains(ScriptFlags::NO_CLUSTER) {
        return Err(Reply::err(
            "ERR Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    Ok(call)
}

/// FCALL's error for a key count that is not a number.
fn bad_function_keys(e: Reply) -> Reply {
    if e == Reply::err(crate::protocol::reply::NOT_INTEGER) {
        Reply::err("ERR Bad number of keys provided")
    } else {
        e
    }
}

/// Runs the call in this thread's interpreter (compiling the script, or loading the
/// libraries, the first time it sees them).
fn run_vm(server: &Server, call: &ScriptCall, host: &mut ScriptHost) -> Reply {
    scripting::with_vm(&server.scripts, |vm| match &call.target {
        Target::Script(script) => {
            Ok(vm.eval(&script.sha, script.code(), call.keys, call.argv, host))
        }
        Target::Function(library, i) => {
            vm.sync_libraries(&server.functions);
            let name = &library.functions[*i].name;
            Ok(vm.fcall(name, call.command, call.keys.len(), host))
        }
    })
    .unwrap_or_else(|e| e)
}

/// The dispatcher's side of a running script: runs its `redis.call`s on the locked shards.
struct ScriptHost<'a, 'g> {
    server: &'a Server,
    /// Where the connection is: what server commands the script calls run with. None on the
    /// shard's worker, where a server command sends the script back.
    session: Option<SessionParts<'a>>,
    caller: Caller,
    /// The script's database: the caller's at the start; SELECT inside changes it for the
    /// rest of the script only.
    db: usize,
    /// The script's time: frozen while it runs, as in Redis, so that a key does not expire
    /// between two of its commands.
    now_ms: u64,
    shards: &'a mut Vec<ShardGuard<'g>>,
    /// The shards held when the script runs on its declared keys' shards (None: all).
    held: Option<Vec<usize>>,
    /// Then, each key's content before the script's first write to it, to undo the writes
    /// if the script must start again.
    journal: Option<Vec<Undo>>,
    /// The script reached beyond its shards: every call now fails, and it starts again
    /// with every shard locked.
    beyond: bool,
    read_only: bool,
    /// How its commands are admitted: an `allow-oom` script's writes are not refused over
    /// maxmemory (Admitted), any other's are checked as a client's.
    admission: Admission,
    /// In cluster mode (None otherwise): the slot its keys must hash to.
    cluster: Option<ScriptSlot>,
    /// The log records of its writes, logged as one group when it ends.
    captured: Option<Vec<(usize, Vec<u8>)>>,
    /// Its keyed writes (table index, database, arguments): blocked clients are woken and the
    /// replies wait for the log once the shards are unlocked.
    writes: Vec<(usize, usize, Vec<Bytes>)>,
    /// Whether it ran a server command that writes (FLUSHDB ...), logged on its own.
    server_writes: bool,
    /// Whether it called a read-only command: a tracking client then tracks the script's
    /// declared keys, as Redis's.
    read: bool,
    /// On the shard's worker: it called a server command, which needs the connection.
    needs_connection: bool,
    /// The connection's user when it is not allowed everything (its calls are checked); such
    /// scripts run at the connection, never on a shard's worker.
    user: Option<Arc<acl::User>>,
}

/// The connection's side of a script run where the connection is.
struct SessionParts<'a> {
    server: &'a Arc<Server>,
    conn: &'a mut ConnState,
    worker: usize,
}

/// Cluster mode: the slot a script's commands may reach, as Redis's `scriptVerifyClusterState`
/// holds a script to it. Its declared keys' slot, or, with none declared, the slot of the first
/// key it touches; a script without a shebang (Redis 6's scripts) or flagged
/// `allow-cross-slot-keys` may touch any slot this node serves.
struct ScriptSlot {
    slot: Option<u16>,
    any_slot: bool,
}

impl ScriptSlot {
    fn of(call: &ScriptCall) -> ScriptSlot {
        let flags = call.flags();
        let legacy =
            matches!(call.target, Target::Script(_)) && !flags.contains(ScriptFlags::DECLARED);
        ScriptSlot {
            // Admission refused declared keys in different slots (CROSSSLOT).
            slot: call.keys.first().map(|k| crate::slot::key_slot(k)),
            any_slot: legacy || flags.contains(ScriptFlags::ALLOW_CROSS_SLOT),
        }
    }
}

impl<'a, 'g> ScriptHost<'a, 'g> {
    fn new(
        server: &'a Server,
        session: Option<SessionParts<'a>>,
        caller: Caller,
        db: usize,
        held: Option<Vec<usize>>,
        shards: &'a mut Vec<ShardGuard<'g>>,
        call: &ScriptCall,
    ) -> ScriptHost<'a, 'g> {
        ScriptHost {
            server,
            session,
            caller,
            db,
            now_ms: unix_ms(),
            journal: held.is_some().then(Vec::new),
            held,
            shards,
            read_only: call.read_only,
            admission: if call.flags().contains(ScriptFlags::ALLOW_OOM) {
                Admission::Admitted
            } else {
                Admission::Check
            },
            cluster: server.cluster.enabled().then(|| ScriptSlot::of(call)),
            captured: server.wal.records().then(Vec::new),
            writes: Vec::new(),
            server_writes: false,
            read: false,
            beyond: false,
            needs_connection: false,
            user: None,
        }
    }

    /// The script ended: its writes' log records are logged as one group (under the locks),
    /// the shards' spare room published if it wrote; answers its keyed writes and whether it
    /// ran a server command that writes.
    fn finish(self, db: usize) -> Finished {
        let server = self.server;
        if let Some(captured) = self.captured.filter(|c| !c.is_empty()) {
            let shards: Vec<_> = self.shards.iter_mut().map(|g| &mut **g).collect();
            let mut ctx = KeyCtx::new(Shards::Many(shards), server, db, unix_ms());
            wal_log::transaction_step(&mut ctx, captured);
        }
        // Only writes grow or fill the key tables (what reads expire lazily, the tick catches
        // up), as after a batch.
        if !self.writes.is_empty() || self.server_writes {
            for g in self.shards.iter() {
                server.publish_spare(g);
            }
        }
        Finished {
            writes: self.writes,
            server_writes: self.server_writes,
            read: self.read,
        }
    }
}

/// What a finished script leaves its runner to do.
struct Finished {
    /// Its keyed writes (table index, database, arguments).
    writes: Vec<(usize, usize, Vec<Bytes>)>,
    /// Whether it ran a server command that writes.
    server_writes: bool,
    /// Whether it called a read-only command.
    read: bool,
}

impl ScriptHost<'_, '_> {
    /// The error a call the script's user may not make answers (`scriptVerifyACL`'s texts).
    fn acl_refusal(&self, index: usize, args: &[Bytes]) -> Option<Reply> {
        let user = self.user.as_ref()?;
        let no_auth = TABLE[index].flags.contains(Flags::NO_AUTH);
        let (verdict, entry) = user.check(index, args, no_auth);
        if let (Some(parts), false) = (&self.session, verdict == acl::Verdict::Allowed) {
            let fields = verdict.log_fields(entry, args);
            let username = Bytes::from(user.name.clone());
            acl::log_denial(
                self.server,
                parts.conn,
                acl::LogContext::Lua,
                fields,
                username,
            );
        }
        let why = match verdict {
            acl::Verdict::Allowed => return None,
            acl::Verdict::DeniedCommand => "can't run this command or subcommand",
            acl::Verdict::DeniedKey(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            acl::Verdict::DeniedChannel(_) => {
                "can't publish to the channel mentioned in the command"
            }
        };
        Some(Reply::err(format!(
            "ERR The user executing the script {why}"
        )))
    }

    /// The row a script's command runs as, with Redis's errors for scripts.
    /// With the flags of the subcommand called, for containers whose subcommands have no
    /// rows of their own.
    fn row(&self, args: &[Bytes]) -> Result<(usize, Option<Flags>), Reply> {
        let unknown = || Reply::err("ERR Unknown Redis command called from script");
        let index = command_table::lookup(&args[0]).ok_or_else(unknown)?;
        let spec = &TABLE[index];
        let argc = args.len() as i32;
        if (spec.arity >= 0 && argc != spec.arity) || argc < -spec.arity {
            return Err(Reply::err(
                "ERR Wrong number of args calling Redis command from script",
            ));
        }
        let named = index;
        let index = command_table::resolve(index, args).map_err(|e| match e {
            Reply::Error(m) if m.starts_with("ERR wrong number") => {
                Reply::err("ERR Wrong number of args calling Redis command from script")
            }
            _ => unknown(),
        })?;
        Ok((index, self.subcommand_flags(named, args)?))
    }

    /// For a container that parses its own subcommands (CLIENT, CONFIG ...), the flags Redis
    /// gives the subcommand called, checked as Redis checks a script's call.
    fn subcommand_flags(&self, named: usize, args: &[Bytes]) -> Result<Option<Flags>, Reply> {
        if args.len() < 2 {
            return Ok(None);
        }
        match command_table::subcommand_facts_at(named, args) {
            None => Ok(None),
            Some(None) => Err(Reply::err("ERR Unknown Redis command called from script")),
            Some(Some((arity, flags))) => {
                let argc = args.len() as i32;
                if (arity >= 0 && argc != arity) || argc < -arity {
                    return Err(Reply::err(
                        "ERR Wrong number of args calling Redis command from script",
                    ));
                }
                Ok(Some(flags))
            }
        }
    }
}

impl Host for ScriptHost<'_, '_> {
    fn permits(&self, args: &[Bytes]) -> Option<bool> {
        let (index, _) = self.row(args).ok()?;
        Some(self.acl_refusal(index, args).is_none())
    }

    fn wrote(&self) -> bool {
        !self.writes.is_empty() || self.server_writes
    }

    fn must_stop(&self) -> bool {
        self.beyond
    }

    fn debug_socket(&self) -> Option<std::os::fd::RawFd> {
        let conn = &self.session.as_ref()?.conn;
        conn.script_debug
            .then(|| conn.handle.info.lock().expect("client info lock").fd)
    }

    fn end_debug_session(&mut self) {
        if let Some(parts) = self.session.as_mut() {
            parts.conn.script_debug = false;
            parts.conn.close_after_reply = true;
        }
    }

    fn while_busy(&mut self, started: std::time::Instant) {
        crate::busy_clients::serve(started);
    }

    fn call(&mut self, args: Vec<Bytes>) -> Reply {
        let (index, sub_flags) = match self.row(&args) {
            Ok(found) => found,
            Err(e) => return self.refused(None, e),
        };
        let spec = &TABLE[index];
        let flags = sub_flags.unwrap_or(spec.flags);
        let runnable = matches!(spec.run, Run::Keyed(_) | Run::Blocking(_) | Run::Session(_));
        let denied = flags.contains(Flags::NOSCRIPT)
            && !self
                .server
                .hot
                .disable_deny_scripts
                .load(std::sync::atomic::Ordering::Relaxed);
        if denied || !runnable {
            return self.refused(
                Some(index),
                Reply::err("ERR This Redis command is not allowed from script"),
            );
        }
        if let Some(refusal) = self.acl_refusal(index, &args) {
            return self.refused(Some(index), refusal);
        }
        if self.read_only && (flags.contains(Flags::WRITE) || flags.contains(Flags::MAY_REPLICATE))
        {
            return self.refused(
                Some(index),
                Reply::err("ERR Write commands are not allowed from read-only scripts."),
            );
        }
        if self.server.replication.is_replica() && flags.contains(Flags::WRITE) {
            // (A primary's stream carries a script's effects, never the script: any script
            // here is a client's.)
            let upstream = &self.server.replication.upstream;
            if upstream.read_only(self.server) {
                return self.refused(
                    Some(index),
                    Reply::err(crate::replication::replica::READONLY),
                );
            }
        }
        // min-replicas-to-write unmet: a write inside a script is refused as a client's is,
        // unless the script already wrote (Redis cannot fail it halfway then).
        if flags.contains(Flags::WRITE) && self.server.replication.gates_writes() && !self.wrote() {
            if let Some(refusal) = self.server.replication.noreplicas() {
                return self.refused(Some(index), refusal);
            }
        }
        // A stale replica (link down, replica-serve-stale-data no): only commands flagged
        // `stale` run inside a script (which got here by declaring allow-stale).
        if self.server.replication.is_replica()
            && !flags.contains(Flags::STALE)
            && !self.server.replication.upstream.serves_stale(self.server)
        {
            return self.refused(
                Some(index),
                Reply::err("ERR Can not execute the command on a stale replica"),
            );
        }
        if self.cluster.is_some() {
            if let Some(refusal) = self.cluster_refusal(spec, &args) {
                return self.refused(Some(index), refusal);
            }
        }
        if self.beyond {
            return Reply::err(BEYOND);
        }
        self.read |= flags.contains(Flags::READONLY);
        let server = self.server;
        if self.held.is_some()
            && matches!(spec.run, Run::Session(_))
            && (flags.contains(Flags::WRITE) || flags.contains(Flags::MAY_REPLICATE))
        {
            // Not undoable (FLUSHDB, PUBLISH): only once every shard is held.
            return self.reach_beyond();
        }
        let admission = self.admission;
        let reply = match spec.run {
            Run::Keyed(f) => self.keyed(index, args, |ctx, args| {
                step::execute(ctx, index, args, admission, |ctx| f(ctx, args))
            }),
            // Redis refuses blocking commands in scripts (they are `noscript`); one that is
            // not answers what it would on a timeout, as inside MULTI.
            Run::Blocking(f) => self.keyed(index, args, |ctx, args| {
                match step::execute(ctx, index, args, admission, |ctx| f(ctx, args)) {
                    Attempt::Done(reply) => reply,
                    Attempt::Block(_) if spec.nil_bulk_if_cannot_block => Reply::Nil,
                    Attempt::Block(_) => Reply::NilArray,
                }
            }),
            Run::Session(f) => {
                let Some(parts) = self.session.as_mut() else {
                    // On the shard's worker: the connection's worker runs it again.
                    self.needs_connection = true;
                    return self.reach_beyond();
                };
                let callers_db = parts.conn.db;
                parts.conn.db = self.db;
                let (monitors, limits) = (&server.monitors, &server.pubsub.limits);
                if monitors.active() {
                    monitors.feed_from_script(limits, self.db, spec, &args);
                }
                let mut session = Session {
                    server: parts.server,
                    conn: &mut *parts.conn,
                    worker: parts.worker,
                };
                let shards = &mut *self.shards;
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    with_lent_shards(shards, || guarded(spec.name, || f(&mut session, &args)))
                }));
                let parts = self.session.as_mut().expect("checked above");
                let reply = match outcome {
                    Ok(reply) => reply,
                    Err(payload) if payload.is::<ShardNotLent>() => {
                        parts.conn.db = callers_db;
                        return self.reach_beyond();
                    }
                    Err(payload) => std::panic::resume_unwind(payload),
                };
                crate::keyspace_events::publish_raised(server);
                self.db = parts.conn.db;
                parts.conn.db = callers_db;
                if spec.is_write() && !reply.is_error() {
                    self.server_writes = true;
                }
                reply
            }
            _ => unreachable!("refused above"),
        };
        // A script's commands count in their own INFO commandstats and errorstats, as
        // Redis's call() counts them (an error a pcall caught too); not a call that found the
        // script beyond its shards (it did not run: the script starts again).
        if self.beyond {
            return reply;
        }
        if matches!(&reply, Reply::Error(e) if e == crate::eviction::OOM) {
            // Refused for memory before it ran (the step's admission).
            return self.refused(Some(index), reply);
        }
        let stats = &server.worker_stats[crate::server_state::current_worker()];
        bump(&stats.commands[index].calls, 1);
        if reply.is_error() {
            bump(&stats.commands[index].failed, 1);
            bump(&stats.error_replies, 1);
            server.stats.count_error(&reply);
        }
        reply
    }
}

impl ScriptHost<'_, '_> {
    /// A script's command refused before it ran: counted as Redis's scriptCall counts it (a
    /// rejected call of the command, the error in INFO's error stats), so the script's own
    /// error reply, if the refusal ends it, does not count it again.
    fn refused(&self, index: Option<usize>, refusal: Reply) -> Reply {
        let stats = &self.server.worker_stats[crate::server_state::current_worker()];
        if let Some(index) = index {
            bump(&stats.commands[index].rejected, 1);
        }
        bump(&stats.error_replies, 1);
        self.server.stats.count_error(&refusal);
        refusal
    }

    /// Cluster mode: Redis's refusal of a script's command whose keys this node does not
    /// serve (another node's slot, an unassigned one, one being migrated away, keys in
    /// different slots), or, with the cluster down, of any command with keys; then of keys
    /// outside the script's slot ([`ScriptSlot`]). ASKING is not carried into the script.
    #[cold]
    fn cluster_refusal(
        &mut self,
        spec: &command_table::CommandSpec,
        args: &[Bytes],
    ) -> Option<Reply> {
        let keys: Vec<&Bytes> = spec.key_positions_iter(args).map(|p| &args[p]).collect();
        let first = keys.first()?;
        let server = self.server;
        // Asked only in a slot being migrated. A key on a shard not held here counts as
        // present: the command then reaches beyond the held shards, and the script runs again
        // with every shard, where this is asked again.
        let missing = |i: usize| {
            let shard = server.route(keys[i]);
            self.shards
                .iter()
                .find(|g| g.id == shard)
                .is_some_and(|g| !g.dbs[self.db].holds(keys[i]))
        };
        let slots = keys.iter().map(|k| crate::slot::key_slot(k));
        // As Redis's scriptVerifyClusterState, but without the client's ASKING and READONLY.
        let query = crate::cluster::Query {
            asking: false,
            readonly_client: false,
            is_write: spec.is_write(),
            runs_in_open_slot: false,
            require_full_coverage: server.cluster.require_full_coverage(),
            reads_when_down: server.cluster.reads_when_down(),
        };
        match server.cluster.route(slots, missing, query) {
            None => {}
            Some(crate::cluster::Redirect::Down) => {
                return Some(Reply::err(
                    "ERR Script attempted to execute a command while the cluster is down",
                ))
            }
            Some(crate::cluster::Redirect::DownReadOnly) => {
                return Some(Reply::err(
                    "ERR Script attempted to execute a write command while the cluster is down and readonly",
                ))
            }
            Some(_) => {
                return Some(Reply::err(
                    "ERR Script attempted to access a non local key in a cluster node",
                ))
            }
        }
        let rule = self.cluster.as_mut().expect("cluster mode");
        let slot = crate::slot::key_slot(first);
        match rule.slot {
            _ if rule.any_slot => None,
            None => {
                rule.slot = Some(slot);
                None
            }
            Some(own) if own == slot => None,
            Some(_) => Some(Reply::err(
                "ERR Script attempted to access keys that do not hash to the same slot",
            )),
        }
    }

    /// Runs a keyed command on the locked shards, keeping its log record for the group.
    fn keyed(
        &mut self,
        index: usize,
        args: Vec<Bytes>,
        run: impl FnOnce(&mut KeyCtx, &[Bytes]) -> Reply,
    ) -> Reply {
        if self.held.is_some() && !self.within_reach(index, &args) {
            return self.reach_beyond();
        }
        self.show_to_monitors(index, &args);
        // One shard held: every key is on it (checked above, or the server has one shard).
        let shards = match &mut self.shards[..] {
            [one] => Shards::One(one),
            many => Shards::Many(many.iter_mut().map(|g| &mut **g).collect()),
        };
        let mut ctx = KeyCtx::new(shards, self.server, self.db, self.now_ms);
        ctx.set_caller(self.caller);
        ctx.from_script = true;
        ctx.captured = self.captured.take();
        let reply = run(&mut ctx, &args);
        self.captured = ctx.captured.take();
        if TABLE[index].is_write() && !reply.is_error() {
            self.writes.push((index, self.db, args));
        }
        reply
    }

    /// Whether a keyed command can run on the held shards, undoably: each of its keys is on
    /// one, and for a write each key's content before the script's first write to it is
    /// copied (a value too large to copy cheaply is beyond reach).
    fn within_reach(&mut self, index: usize, args: &[Bytes]) -> bool {
        let spec = &TABLE[index];
        let held = self.held.as_ref().expect("declared mode");
        let server = self.server;
        let held_shard = |key: &[u8]| Some(server.route(key)).filter(|s| held.contains(s));
        if !spec.is_write() {
            return spec
                .key_positions_iter(args)
                .all(|p| held_shard(&args[p]).is_some());
        }
        if spec.other_db.is_some() {
            // MOVE, COPY ... DB: a write to another database, not copied here.
            return false;
        }
        let journal = self.journal.as_mut().expect("declared mode");
        for p in spec.key_positions_iter(args) {
            let key = &args[p];
            let Some(shard) = held_shard(key) else {
                // (The copies taken so far put back what is there: harmless.)
                return false;
            };
            if journal
                .iter()
                .any(|u| u.shard == shard && u.db == self.db && u.key == key)
            {
                continue;
            }
            let guard = self
                .shards
                .iter()
                .find(|g| g.id == shard)
                .expect("held shard is locked");
            let Some(copy) = guard.dbs[self.db].undo_copy_of(key) else {
                return false;
            };
            journal.push(Undo {
                shard,
                db: self.db,
                key: key.clone(),
                copy,
            });
        }
        true
    }

    /// MONITOR shows a script's commands as Redis does, once they are to run here.
    fn show_to_monitors(&self, index: usize, args: &[Bytes]) {
        let server = self.server;
        if server.monitors.active() {
            server
                .monitors
                .feed_from_script(&server.pubsub.limits, self.db, &TABLE[index], args);
        }
    }

    /// The script needs more than it holds: from now on its calls fail, and the runner
    /// undoes its writes and runs it again with every shard locked.
    fn reach_beyond(&mut self) -> Reply {
        self.beyond = true;
        Reply::err(BEYOND)
    }

    /// Puts back every key the script wrote, newest first.
    fn undo(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for u in journal.into_iter().rev() {
            if let Some(g) = self.shards.iter_mut().find(|g| g.id == u.shard) {
                g.dbs[u.db].restore_copy(&u.key, u.copy);
            }
        }
        self.captured = None;
        self.writes.clear();
    }
}

/// A key as it was before a script's first write to it.
struct Undo {
    shard: usize,
    db: usize,
    key: Bytes,
    /// None: the key was absent.
    copy: Option<KeyCopy>,
}

/// What a script's calls answer once it reached beyond its shards (its run is discarded).
const BEYOND: &str = "ERR script restarts with every shard locked";
