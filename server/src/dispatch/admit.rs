//! Admission: the checks every request passes before it runs, in Redis's order — the command
//! exists (for a container, its subcommand), arity, AUTH, ACL, a replica's READONLY, MASTERDOWN
//! and LOADING, subscribed mode's allowed commands, the log's MISCONF refusal of a write,
//! `min-replicas-to-write`'s NOREPLICAS, and SET's DURABILITY option. A transaction queues what
//! passes here (`transaction`); a refusal while queuing aborts it.

use bytes::Bytes;

use super::unknown_command;
use crate::command_table::{self, arity_ok, wrong_arity, Flags, TABLE};
use crate::durability;
use crate::persist::Durable;
use crate::protocol::Reply;
use crate::server_state::{bump, Server};
use crate::session::ConnState;

/// A request that may run: the table row it runs as, and what its writes wait for.
pub(super) struct Admitted {
    pub index: usize,
    /// Whether it writes the log (with the log on).
    pub logged: bool,
    /// appendfsync's durability, or the one its DURABILITY option asks for.
    pub class: Durable,
}

/// Admits `args`, or answers the error it gets instead. `cached`: the row the previous request
/// of this connection ran as (pipelines repeat one command), tried before the table.
pub(super) fn admit(
    server: &Server,
    me: usize,
    conn: &mut ConnState,
    args: &[Bytes],
    cached: Option<usize>,
) -> Result<Admitted, Reply> {
    let stats = &server.worker_stats[me];
    let cached = cached.filter(|&i| TABLE[i].name.as_bytes().eq_ignore_ascii_case(&args[0]));
    let Some(index) = cached.or_else(|| command_table::lookup(&args[0])) else {
        return Err(unknown_command(args));
    };
    let refuse = |index: usize, reply: Reply| {
        bump(&stats.commands[index].rejected, 1);
        Err(reply)
    };
    let spec = &TABLE[index];
    if !arity_ok(spec.arity, args.len()) {
        return refuse(index, wrong_arity(spec.name));
    }
    // Only a container's row (CONFIG, CLIENT ...) runs as another: its subcommand's. Checked
    // here, inline, because nearly every request is a plain command.
    let (index, spec) = if matches!(spec.run, command_table::Run::Container) {
        match command_table::resolve(index, args) {
            Ok(sub) => (sub, &TABLE[sub]),
            Err(refusal) => return refuse(index, refusal),
        }
    } else {
        (index, spec)
    };
    if !conn.authenticated
        && server
            .hot
            .auth_required
            .load(std::sync::atomic::Ordering::Relaxed)
        && !spec.flags.contains(Flags::NO_AUTH)
    {
        // Redis 7.0 refuses a command it does not know before it asks for authentication.
        // Clients send CLIENT SETINFO (7.2's) as they connect and ignore 7.0's "unknown
        // subcommand", but not NOAUTH: redis-py's connection to a server with a password it
        // was not given failed at once, before the AUTH its caller meant to send.
        if spec.came_after_redis_7_0() {
            return refuse(
                index,
                match spec.container() {
                    Some(container) => {
                        command_table::unknown_subcommand(&args[1], &container.to_ascii_uppercase())
                    }
                    None => unknown_command(args),
                },
            );
        }
        return refuse(index, Reply::err("NOAUTH Authentication required."));
    }
    if !conn.user.unrestricted() {
        if let Some(refusal) = acl_refusal(server, conn, index, args) {
            return refuse(index, refusal);
        }
    }
    // A plain bool fixed at start: one load and a branch without cluster mode. Before the
    // replica's checks, as Redis: a write sent to a cluster replica is MOVED to its primary.
    if server.cluster.enabled() {
        if let Some(refusal) = cluster_refusal(server, conn, spec, args) {
            return refuse(index, refusal);
        }
    }
    // One relaxed load and a branch for a server that replicates nothing.
    if server.replication.is_replica() {
        if let Some(refusal) = replica_refusal(server, conn, index, args) {
            return refuse(index, refusal);
        }
    }
    if conn.subscribed() && !conn.resp3 && !spec.allowed_when_subscribed {
        return refuse(
            index,
            Reply::err(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            )),
        );
    }
    // One relaxed load and a branch outside a load of the dataset.
    if server.loading.active() {
        if let Some(refusal) = loading_refusal(server, conn, index, args) {
            return refuse(index, refusal);
        }
    }
    if server.scripts.busy.any() && !allowed_while_busy(spec, args) {
        return refuse(index, server.scripts.busy.refusal());
    }
    let logged = spec.is_logged() && server.wal.is_on();
    if logged {
        if let Some(refusal) = server.wal.refusal() {
            return refuse(index, Reply::Error(refusal));
        }
    }
    if server.replication.gates_writes()
        && (spec.flags.contains(Flags::WRITE)
            || script_judged(server, index, spec, args, Flags::WRITE)
            || exec_queued_any(server, spec, conn, |f| f.contains(Flags::WRITE)))
    {
        if let Some(refusal) = server.replication.noreplicas() {
            return refuse(index, refusal);
        }
    }
    // One relaxed load and a branch without maxmemory.
    if server
        .limits
        .maxmemory
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
        && oom_refused(server, conn, spec)
    {
        return refuse(index, Reply::err(crate::eviction::OOM));
    }
    let mut class = server.wal.fsync().durable();
    if spec.takes_durability && args.len() > 4 {
        if let Some(asked) = durability::requested(args) {
            if let Some(refusal) = durability::refusal(asked, server.wal.is_on()) {
                return refuse(index, Reply::err(refusal));
            }
            class = asked.durable();
        }
    }
    bump(&stats.commands[index].calls, 1);
    Ok(Admitted {
        index,
        logged,
        class,
    })
}

/// Redis's refusal before a command runs when memory is over maxmemory and nothing can be
/// evicted (`noeviction`): a command that may grow memory, or any command queued in MULTI but
/// EXEC, DISCARD, QUIT and RESET (a queue grows memory too). A rejected call, and a refusal
/// while queuing aborts the transaction. With an evicting policy the command's shards make room
/// when it runs (`eviction::before_command`). A replica (and its primary's link) is never
/// refused, as Redis with `replica-ignore-maxmemory`.
#[cold]
fn oom_refused(
    server: &Server,
    conn: &ConnState,
    spec: &crate::command_table::CommandSpec,
) -> bool {
    let queued = conn.tx.is_some() && !spec.runs_in_multi;
    // EXEC of a transaction with a command that may grow memory is refused too (EXECABORT).
    let grows = spec.flags.contains(Flags::DENYOOM)
        || queued
        || exec_queued_any(server, spec, conn, |f| f.contains(Flags::DENYOOM));
    grows
        && !conn.primary
        && !server.replication.is_replica()
        && server.limits.policy() == crate::eviction::Policy::NoEviction
        && crate::eviction::over_limit(server)
}

/// The NOPERM error when the connection's user may not run this request (its command, keys or
/// channels). Only reached for a user that is not allowed everything.
#[cold]
fn acl_refusal(server: &Server, conn: &ConnState, index: usize, args: &[Bytes]) -> Option<Reply> {
    use crate::acl;
    let no_auth = TABLE[index].flags.contains(Flags::NO_AUTH);
    match conn.user.check(index, args, no_auth) {
        (acl::Verdict::Allowed, _) => None,
        (verdict, entry) => {
            let context = acl::toplevel_context(conn);
            let fields = verdict.log_fields(entry, args);
            let username = bytes::Bytes::from(conn.user.name.clone());
            acl::log_denial(server, conn, context, fields, username);
            Some(Reply::err(verdict.error(acl::fullname(entry))))
        }
    }
}

/// A request held by a pause, checked again once released: FAILOVER may have made this server
/// a replica meanwhile (the refusal `admit` would give now; it was counted as a call then).
#[cold]
pub(super) fn refusal_after_pause(
    server: &Server,
    conn: &mut ConnState,
    index: usize,
    args: &[Bytes],
) -> Option<Reply> {
    // Cluster mode first, as at admission: a manual failover that handed the slot to the new
    // primary meanwhile answers MOVED (Redis's processCommand, run again), not READONLY.
    // (EXEC checks its queued commands' slots when it runs.) An ASKING before the command was
    // spent at admission: here it counts as not asked, which at worst redirects once more.
    let spec = &TABLE[index];
    if server.cluster.enabled()
        && !matches!(
            spec.run,
            command_table::Run::Transaction(command_table::TxStep::Exec)
        )
    {
        if let Some(refusal) = cluster_refusal(server, conn, spec, args) {
            return Some(refusal);
        }
    }
    if !server.replication.is_replica() {
        return None;
    }
    replica_refusal(server, conn, index, args)
}

/// Cluster mode: where a command with keys goes when this node should not run it (CROSSSLOT,
/// CLUSTERDOWN, MOVED, ASK), as Redis's `getNodeByQuery`. A primary's link is never redirected.
/// ASKING lasts one command, or through a transaction to its EXEC (as Redis keeps it in MULTI):
/// cleared here otherwise, before the command that follows it.
#[cold]
fn cluster_refusal(
    server: &Server,
    conn: &mut ConnState,
    spec: &crate::command_table::CommandSpec,
    args: &[Bytes],
) -> Option<Reply> {
    let opens_transaction = matches!(
        spec.run,
        command_table::Run::Transaction(command_table::TxStep::Multi)
    );
    let asking = if conn.tx.is_some() || opens_transaction {
        conn.asking
    } else {
        std::mem::take(&mut conn.asking)
    };
    if conn.primary {
        return None;
    }
    // RESTORE-ASKING (a migration's own command) is served in an importing slot as if asked.
    let asking = asking || spec.flags.contains(Flags::ASKING);
    let keys: Vec<&Bytes> = spec.key_positions_iter(args).map(|p| &args[p]).collect();
    let open_slot = spec.runs_in_open_slot;
    // SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH (the pubsub commands with keys) are served by the
    // shard's replicas too, as reads of a READONLY client are (Redis's getNodeByQuery).
    let shard_pubsub = spec.flags.contains(Flags::PUBSUB);
    let query = crate::cluster::Query {
        asking,
        readonly_client: conn.readonly || shard_pubsub,
        is_write: spec.is_write(),
        runs_in_open_slot: open_slot,
        ..Default::default()
    };
    cluster_redirect(server, conn, &keys, query)
}

/// The CROSSSLOT, CLUSTERDOWN, MOVED or ASK error for a request with these keys (for EXEC,
/// every queued command's), or None to run it here. `query` says how the request is routed;
/// the cluster's settings are filled in here.
#[cold]
pub(super) fn cluster_redirect(
    server: &Server,
    conn: &ConnState,
    keys: &[&Bytes],
    query: crate::cluster::Query,
) -> Option<Reply> {
    if keys.is_empty() {
        return None;
    }
    let query = crate::cluster::Query {
        require_full_coverage: server.cluster.require_full_coverage(),
        reads_when_down: server.cluster.reads_when_down(),
        ..query
    };
    let now = crate::server_state::unix_ms();
    let db = conn.db;
    // Asked only for a slot being migrated or imported.
    let missing = |i: usize| {
        let shard = server.slots.shard_of(keys[i]);
        !server.lock_shard(shard).dbs[db].contains(keys[i], now)
    };
    let slots = keys.iter().map(|k| crate::slot::key_slot(k));
    server
        .cluster
        .route(slots, missing, query)
        .map(|redirect| Reply::err(redirect.message()))
}

/// On a replica, as Redis refuses them: clients' writes under `replica-read-only`; while the
/// link to the primary is down under `replica-serve-stale-data no`, every command not flagged
/// `stale`; while a full sync loads, every command not flagged `loading` (while it loads "async",
/// serving the old data, those flagged `no_async_loading`). The primary's own link passes.
#[cold]
fn replica_refusal(
    server: &Server,
    conn: &ConnState,
    index: usize,
    args: &[Bytes],
) -> Option<Reply> {
    if conn.primary {
        return None;
    }
    let spec = &TABLE[index];
    let upstream = &server.replication.upstream;
    // A container that resolves its own subcommand (CONFIG, CLIENT ...): the subcommand's flags;
    // a script command that declares its flags: the script's.
    let flags = match spec.run {
        command_table::Run::Script(_) => super::script::judged_flags(server, index, args),
        _ => command_table::subcommand_facts(args)
            .flatten()
            .map_or(spec.flags, |(_, f)| f),
    };
    let writes = spec.is_write()
        || flags.contains(Flags::WRITE)
        || exec_queued_any(server, spec, conn, |f| f.contains(Flags::WRITE));
    if writes && upstream.read_only(server) {
        return Some(Reply::err(crate::replication::replica::READONLY));
    }
    if writes {
        // A writable replica's own write: its keys may get a TTL the replica then expires.
        let keys = spec.key_positions_iter(args).map(|p| &args[p]);
        server.replication.local_keys.note(conn.db, keys);
    }
    // EXEC as its commands: refused if one of them would be (Redis's is_denystale_command).
    let stale_ok = flags.contains(Flags::STALE)
        && !exec_queued_any(server, spec, conn, |f| !f.contains(Flags::STALE));
    if !stale_ok && !upstream.serves_stale(server) {
        return Some(Reply::err(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ));
    }
    if upstream.async_loading()
        && (flags.contains(Flags::NO_ASYNC_LOADING)
            || exec_queued_any(server, spec, conn, |f| f.contains(Flags::NO_ASYNC_LOADING)))
    {
        return Some(Reply::err(crate::persist::loading::REFUSAL));
    }
    None
}

/// While the dataset loads (at start, or a replica's full sync), as Redis's
/// `is_denyloading_command`: every command not flagged `loading` is refused (EXEC, if one of
/// the commands it would run is not).
#[cold]
fn loading_refusal(
    server: &Server,
    conn: &ConnState,
    index: usize,
    args: &[Bytes],
) -> Option<Reply> {
    let spec = &TABLE[index];
    let flags = match spec.run {
        command_table::Run::Script(_) => super::script::judged_flags(server, index, args),
        _ => spec.flags,
    };
    let refused = !flags.contains(Flags::LOADING)
        || exec_queued_any(server, spec, conn, |f| !f.contains(Flags::LOADING));
    refused.then(|| Reply::err(crate::persist::loading::REFUSAL))
}

/// While a script is past `busy-reply-threshold`, what Redis still serves: commands flagged
/// `allow_busy` (for containers, the subcommand's flag: SCRIPT KILL, FUNCTION STATS ...).
/// SHUTDOWN itself refuses to save then.
#[cold]
fn allowed_while_busy(spec: &crate::command_table::CommandSpec, args: &[Bytes]) -> bool {
    let flags = command_table::subcommand_facts(args)
        .flatten()
        .map_or(spec.flags, |(_, f)| f);
    flags.contains(Flags::ALLOW_BUSY)
}

/// For EXEC: whether a command of the transaction has flags that `test` picks (Redis judges
/// EXEC by the commands it runs: a transaction with a write is a write when EXEC comes; a
/// queued script by the flags it declares).
fn exec_queued_any(
    server: &Server,
    spec: &crate::command_table::CommandSpec,
    conn: &ConnState,
    test: impl Fn(Flags) -> bool,
) -> bool {
    matches!(
        spec.run,
        command_table::Run::Transaction(command_table::TxStep::Exec)
    ) && conn.tx.as_ref().is_some_and(|tx| {
        tx.queued
            .iter()
            .any(|q| test(super::script::judged_flags(server, q.index, &q.args)))
    })
}

/// Whether a script command's declared flags (see `script::judged_flags`) include `flag`.
#[cold]
fn script_judged(
    server: &Server,
    index: usize,
    spec: &crate::command_table::CommandSpec,
    args: &[Bytes],
    flag: Flags,
) -> bool {
    matches!(spec.run, command_table::Run::Script(_))
        && super::script::judged_flags(server, index, args).contains(flag)
}
