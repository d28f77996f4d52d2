//! FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]: a coordinated switch of roles between
//! this primary and one of its replicas, run as Redis 7.0 runs it:
//! 1. writes are held, as by CLIENT PAUSE WRITE (expiry too), so the stream stops growing
//!    (`waiting-for-sync`);
//! 2. once the target (without TO: the first replica to get there) has acknowledged the whole
//!    stream, this server becomes the target's replica (`failover-in-progress`) and its link
//!    asks `PSYNC <replid> <offset> FAILOVER`: the target promotes itself and continues this
//!    server's history, so no acknowledged write is lost and nothing is sent twice;
//! 3. the target's answer (`+CONTINUE`, `+FULLRESYNC`) ends the failover and releases the held
//!    writes (this server, a replica now, refuses them); an error, or a link that fails
//!    before the answer, aborts it: this server is a primary again, under a new id.
//!
//! TIMEOUT aborts a failover still waiting for its target (with FORCE: hands over anyway);
//! FAILOVER ABORT aborts at either stage. The target's side (PSYNC ... FAILOVER) is
//! [`accept_handover`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::replica::{self, PrimaryAddr};
use crate::protocol::Reply;
use crate::server_state::Server;

/// How often a waiting failover looks at the replicas' acknowledgements, besides every ACK.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Writes held; waiting for the target to acknowledge the whole stream.
    WaitingForSync,
    /// This server follows the target and asks it to take over.
    InProgress,
}

#[derive(Debug)]
struct Plan {
    stage: Stage,
    /// TO host port, or the replica found caught up.
    target: Option<PrimaryAddr>,
    deadline: Option<Instant>,
    force: bool,
}

/// The failover under way, if any.
///
/// The plan's lock is taken only here, and before any other (becoming a replica takes the
/// history's and the configuration's): readers that may hold those (INFO holds the
/// configuration's) read `stage`, its lock-free copy.
#[derive(Debug, Default)]
pub struct Failover {
    plan: Mutex<Option<Plan>>,
    /// The plan's stage: 0 none, 1 waiting for sync, 2 in progress.
    stage: AtomicU8,
    /// Woken by ABORT, so that the waiting task ends at once.
    aborted: tokio::sync::Notify,
}

/// The plan, locked; `set` keeps `stage` in step with it.
struct Locked<'a> {
    plan: MutexGuard<'a, Option<Plan>>,
    stage: &'a AtomicU8,
}

impl Locked<'_> {
    fn set(&mut self, plan: Option<Plan>) {
        *self.plan = plan;
        self.sync_stage();
    }

    fn sync_stage(&self) {
        let stage = match self.plan.as_ref().map(|p| p.stage) {
            None => 0,
            Some(Stage::WaitingForSync) => 1,
            Some(Stage::InProgress) => 2,
        };
        self.stage.store(stage, Ordering::Release);
    }
}

impl Failover {
    fn lock(&self) -> Locked<'_> {
        Locked {
            plan: self.plan.lock().unwrap_or_else(|p| p.into_inner()),
            stage: &self.stage,
        }
    }

    /// INFO replication's `master_failover_state`.
    pub fn state_name(&self) -> &'static str {
        match self.stage.load(Ordering::Acquire) {
            0 => "no-failover",
            1 => "waiting-for-sync",
            _ => "failover-in-progress",
        }
    }

    /// The replica link is to ask its primary to take over (`PSYNC ... FAILOVER`).
    pub fn in_progress(&self) -> bool {
        self.stage.load(Ordering::Acquire) == 2
    }

    /// A failover is under way (no replica may sync with this server meanwhile).
    pub fn under_way(&self) -> bool {
        self.stage.load(Ordering::Acquire) != 0
    }
}

/// What FAILOVER asked for.
#[derive(Debug)]
pub enum Request {
    Abort,
    Start {
        target: Option<PrimaryAddr>,
        force: bool,
        timeout: Option<Duration>,
    },
}

/// FAILOVER's arguments, checked as Redis checks them (each option once, in any order; ABORT
/// alone).
pub fn parse(args: &[Bytes]) -> Result<Request, Reply> {
    let is = |a: &Bytes, word: &str| a.eq_ignore_ascii_case(word.as_bytes());
    if args.len() == 2 && is(&args[1], "abort") {
        return Ok(Request::Abort);
    }
    let number = |a: &Bytes| {
        std::str::from_utf8(a)
            .ok()
            .and_then(|a| a.parse::<i64>().ok())
            .ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))
    };
    let (mut target, mut force, mut timeout) = (None, false, None);
    let mut j = 1;
    while j < args.len() {
        if is(&args[j], "timeout") && j + 1 < args.len() && timeout.is_none() {
            let ms = number(&args[j + 1])?;
            if ms <= 0 {
                return Err(Reply::err("ERR FAILOVER timeout must be greater than 0"));
            }
            timeout = Some(Duration::from_millis(ms as u64));
            j += 2;
        } else if is(&args[j], "to") && j + 2 < args.len() && target.is_none() {
            let port = number(&args[j + 2])?;
            let host = String::from_utf8_lossy(&args[j + 1]).into_owned();
            // (No replica listens on a port out of range.)
            let Ok(port) = u16::try_from(port) else {
                return Err(Reply::err(
                    "ERR FAILOVER target HOST and PORT is not a replica.",
                ));
            };
            target = Some(PrimaryAddr { host, port });
            j += 3;
        } else if is(&args[j], "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(Reply::err(crate::protocol::reply::SYNTAX));
        }
    }
    Ok(Request::Start {
        target,
        force,
        timeout,
    })
}

/// FAILOVER: starts the failover (holding writes) and the task that carries it out, or
/// aborts the one under way; Redis's errors otherwise.
pub fn command(server: &Arc<Server>, request: Request) -> Reply {
    let replication = &server.replication;
    let (target, force, timeout) = match request {
        Request::Abort => {
            if !replication.failover.under_way() {
                return Reply::err("ERR No failover in progress.");
            }
            abort(server, "Failover manually aborted");
            return crate::protocol::reply::OK;
        }
        Request::Start {
            target,
            force,
            timeout,
        } => (target, force, timeout),
    };
    let mut locked = replication.failover.lock();
    if locked.plan.is_some() {
        return Reply::err("ERR FAILOVER already in progress.");
    }
    if replication.upstream.target().is_some() {
        return Reply::err("ERR FAILOVER is not valid when server is a replica.");
    }
    let replicas = replication.replicas();
    if replicas.is_empty() {
        return Reply::err("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout.is_none() || target.is_none()) {
        return Reply::err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        );
    }
    if let Some(target) = &target {
        let Some(link) = replicas.iter().find(|r| is_at(r, target)) else {
            return Reply::err("ERR FAILOVER target HOST and PORT is not a replica.");
        };
        if !link.online() {
            return Reply::err("ERR FAILOVER target replica is not online.");
        }
        info!("FAILOVER requested to {}:{}.", target.host, target.port);
    } else {
        info!("FAILOVER requested to any replica.");
    }
    locked.set(Some(Plan {
        stage: Stage::WaitingForSync,
        target,
        deadline: timeout.map(|t| Instant::now() + t),
        force,
    }));
    server.pause.hold_writes_for_failover(true);
    drop(locked);
    tokio::spawn(wait_for_target(server.clone()));
    crate::protocol::reply::OK
}

/// Whether a replica's link is the one at `addr` (its announced address and listening port).
fn is_at(link: &super::ReplicaLink, addr: &PrimaryAddr) -> bool {
    link.ip.eq_ignore_ascii_case(&addr.host) && link.port == addr.port
}

/// The waiting stage: every ACK (and every `POLL`), checks whether the target caught up with
/// the stream, or the timeout passed.
///
/// The first look comes a `POLL` after writes were held: a write admitted just before (a
/// pipeline's, queued for its shard while the pipeline reads on) has reached its shard by
/// then, so the stream's offset the target must acknowledge includes it.
async fn wait_for_target(server: Arc<Server>) {
    let replication = &server.replication;
    tokio::time::sleep(POLL).await;
    loop {
        let acked = replication.acked.notified();
        let aborted = replication.failover.aborted.notified();
        tokio::pin!(acked, aborted);
        acked.as_mut().enable();
        aborted.as_mut().enable();
        if !step(&server) {
            return;
        }
        tokio::select! {
            _ = acked => {}
            _ = aborted => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One look at the waiting failover (Redis's updateFailoverStatus); false once it no longer
/// waits.
fn step(server: &Server) -> bool {
    let replication = &server.replication;
    let mut locked = replication.failover.lock();
    let Some(plan) = locked.plan.as_mut() else {
        return false;
    };
    if plan.stage != Stage::WaitingForSync {
        return false;
    }
    if plan.deadline.is_some_and(|d| Instant::now() >= d) {
        if !plan.force {
            drop(locked);
            abort(server, "Replica never caught up before timeout");
            return false;
        }
        let target = plan.target.clone().expect("FORCE comes with TO");
        hand_over(server, &mut locked, server.lock_all(), target, false);
        return false;
    }
    // With every shard locked no write is halfway through: the offset is final.
    let shards = server.lock_all();
    let offset = replication.history().offset();
    let replicas = replication.replicas();
    let caught_up = match &plan.target {
        Some(target) => replicas
            .iter()
            .any(|r| is_at(r, target) && r.ack_offset == offset),
        None => match replicas
            .iter()
            .find(|r| r.online() && r.ack_offset == offset)
        {
            Some(r) => {
                plan.target = Some(PrimaryAddr {
                    host: r.ip.clone(),
                    port: r.port,
                });
                true
            }
            None => false,
        },
    };
    if caught_up {
        let target = plan.target.clone().expect("set above");
        hand_over(server, &mut locked, shards, target, true);
        return false;
    }
    true
}

/// This server follows the target (`synced`: it caught up; else FORCE at the timeout); its
/// link asks `PSYNC ... FAILOVER`. Called with the plan locked, so that an ABORT cannot fall
/// between, and every shard (`shards`): from here on this server's writes no longer enter
/// the stream.
fn hand_over(
    server: &Server,
    locked: &mut Locked<'_>,
    shards: Vec<crate::server_state::ShardGuard<'_>>,
    target: PrimaryAddr,
    synced: bool,
) {
    server.replication.set_replica(true);
    drop(shards);
    let (host, port) = (&target.host, target.port);
    if synced {
        info!("Failover target {host}:{port} is synced, failing over.");
    } else {
        info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
    }
    if let Some(plan) = locked.plan.as_mut() {
        plan.stage = Stage::InProgress;
    }
    locked.sync_stage();
    replica::follow(server, target);
}

/// The target answered the link's `PSYNC ... FAILOVER`: accepted (`+CONTINUE`, `+FULLRESYNC`),
/// the failover is done and the held writes go on (refused now: this server is a replica);
/// refused, it is aborted. Nothing when no failover is in progress.
pub fn handover_answered(server: &Server, accepted: bool) {
    if !server.replication.failover.in_progress() {
        return;
    }
    if accepted {
        info!("FAILOVER done: the target took over; this server now replicates it.");
        clear(server);
    } else {
        abort(server, "Failover target rejected psync request");
    }
}

/// The link to the target failed before its answer: the failover is aborted.
pub fn link_failed(server: &Server) {
    if server.replication.failover.in_progress() {
        abort(server, "Failover target unreachable");
    }
}

/// Ends the failover under way: a server already following its target is a primary again
/// (REPLICAOF NO ONE's promotion), and writes go on.
fn abort(server: &Server, why: &str) {
    let mut locked = server.replication.failover.lock();
    let Some(p) = locked.plan.as_ref() else {
        return;
    };
    match &p.target {
        Some(t) => warn!("FAILOVER to {}:{} aborted: {why}", t.host, t.port),
        None => warn!("FAILOVER to any replica aborted: {why}"),
    }
    if p.stage == Stage::InProgress {
        replica::promote(server);
    }
    locked.set(None);
    drop(locked);
    server.pause.hold_writes_for_failover(false);
    server.replication.failover.aborted.notify_waiters();
}

fn clear(server: &Server) {
    server.replication.failover.lock().set(None);
    server.pause.hold_writes_for_failover(false);
}

/// The target's side: `PSYNC <replid> <offset> FAILOVER` from the primary this server
/// follows (the same history) promotes it, after which the PSYNC is served as a primary's.
/// Err: the history differs (Redis's error).
pub fn accept_handover(server: &Server, replid: &[u8], client: &str) -> Result<(), Reply> {
    if server.replication.upstream.target().is_none() {
        return Err(Reply::err("ERR PSYNC FAILOVER can't be sent to a master."));
    }
    let same = server.replication.history().replid().as_bytes() == replid;
    if !same {
        return Err(Reply::err(
            "ERR PSYNC FAILOVER replid must match my replid.",
        ));
    }
    replica::promote(server);
    info!("MASTER MODE enabled (failover request from '{client}')");
    Ok(())
}
