//! Replication commands of a primary: REPLCONF (a replica's handshake), SYNC and PSYNC (a
//! partial resync from the backlog when it can, else a full one; see
//! `crate::replication::primary`) and WAIT; of a replica: REPLICAOF/SLAVEOF (see
//! `crate::replication::replica`); and ROLE for both.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::util::{int_arg, lower, SYNTAX};
use super::{commands, session, NO_KEYS};
use crate::command_table::Run;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::replication::{failover, primary, replica};
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "replconf", -1, "admin noscript loading stale allow_busy", NO_KEYS, "server", "3.0.0", session(replconf), "An internal command for configuring the replication stream.";
    "sync", 1, "admin noscript no_async_loading no_multi", NO_KEYS, "server", "1.0.0", session(sync), "An internal command used in replication.";
    "psync", -3, "admin noscript no_async_loading no_multi", NO_KEYS, "server", "2.8.0", session(psync), "An internal command used in replication.";
    "replicaof", 3, "admin noscript stale no_async_loading", NO_KEYS, "server", "5.0.0", session(replicaof), "Configures a server as replica of another, or promotes it to a master.";
    "slaveof", 3, "admin noscript stale no_async_loading", NO_KEYS, "server", "1.0.0", session(replicaof), "Sets a Redis server as a replica of another, or promotes it to being a master.";
    "role", 1, "noscript loading stale fast", NO_KEYS, "server", "2.8.12", session(role), "Returns the replication role.";
    "failover", -1, "admin noscript stale", NO_KEYS, "server", "6.2.0", session(failover), "Starts a coordinated failover from a server to one of its replicas.";
    "wait", 3, "noscript", NO_KEYS, "generic", "3.0.0", Run::WaitReplicas, "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.";
}

/// REPLCONF option value ...: what a replica tells its primary before SYNC/PSYNC, and its ACKs
/// after. Options are checked and applied in order, as Redis does (an error stops there).
pub fn replconf(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return Reply::err(SYNTAX);
    }
    let handshake = s.conn.replication.get_or_insert_with(Default::default);
    for pair in args[1..].chunks(2) {
        let (option, value) = (&pair[0], &pair[1]);
        match lower(option).as_str() {
            "listening-port" => match int_arg(value) {
                Ok(port) => handshake.listening_port = port as u16,
                Err(e) => return e,
            },
            "ip-address" => {
                handshake.ip_address = Some(String::from_utf8_lossy(value).into_owned());
            }
            // Capabilities: eof (a diskless RDB), psync2 (`+CONTINUE <replid>`); others are
            // ignored, as Redis does.
            "capa" => {
                if value.eq_ignore_ascii_case(b"eof") {
                    handshake.capa_eof = true;
                } else if value.eq_ignore_ascii_case(b"psync2") {
                    handshake.capa_psync2 = true;
                }
            }
            // An ACK on a replica's link is read by the link itself; from another client it is
            // ignored without a reply, as Redis does.
            "ack" => return Reply::Raw(Bytes::new()),
            // GETACK is for a primary to ask its replica; a primary ignores it silently.
            "getack" => return Reply::Raw(Bytes::new()),
            "rdb-only" => match int_arg(value) {
                Ok(v @ 0..=1) => handshake.rdb_only = v == 1,
                Ok(_) => {
                    return Reply::err("ERR value is out of range, value must between 0 and 1")
                }
                Err(e) => return e,
            },
            // Space-separated filter words; `functions` is the only one (an empty filter keeps
            // everything).
            "rdb-filter-only" => {
                let mut functions_only = false;
                for word in value
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                {
                    if !word.eq_ignore_ascii_case(b"functions") {
                        return super::util::err_echo(
                            "ERR Unsupported rdb-filter-only option: ",
                            word,
                            "",
                        );
                    }
                    functions_only = true;
                }
                handshake.functions_only = functions_only;
            }
            _ => {
                return super::util::err_echo("ERR Unrecognized REPLCONF option: ", option, "");
            }
        }
    }
    OK
}

/// Why this server cannot serve a SYNC or PSYNC now, as Redis refuses it: while it fails
/// over, or while it is a replica whose own link is down (its data may be stale).
fn sync_refused(s: &Session) -> Option<Reply> {
    let replication = &s.server.replication;
    if replication.failover.under_way() {
        return Some(Reply::err("NOMASTERLINK Can't SYNC while failing over"));
    }
    let upstream = &replication.upstream;
    (upstream.target().is_some() && !upstream.link_up())
        .then(|| Reply::err("NOMASTERLINK Can't SYNC while not connected with my master"))
}

/// SYNC: the pre-PSYNC full resync (the RDB with no `+FULLRESYNC` line before it).
pub fn sync(s: &mut Session, _args: &[Bytes]) -> Reply {
    if let Some(refused) = sync_refused(s) {
        return refused;
    }
    start_full_resync(s, false)
}

/// PSYNC replid offset [FAILOVER]: `+CONTINUE` when the backlog holds the history from there
/// (`sync_partial_ok`), else a full resync (a replid other than `?` counts in
/// `sync_partial_err`). With FAILOVER, from the primary this server follows: this server
/// takes over first (`crate::replication::failover`).
pub fn psync(s: &mut Session, args: &[Bytes]) -> Reply {
    let offset = match int_arg(&args[2]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if args
        .get(3)
        .is_some_and(|a| a.eq_ignore_ascii_case(b"failover"))
    {
        let client = format!("id={} addr={}", s.conn.id, s.conn.addr);
        if let Err(e) = failover::accept_handover(s.server, &args[1], &client) {
            return e;
        }
    }
    if let Some(refused) = sync_refused(s) {
        return refused;
    }
    let replication = &s.server.replication;
    let handshake = s.conn.replication.get_or_insert_with(Default::default);
    if !args[1].starts_with(b"?") && !handshake.synced {
        let (id, addr) = (s.conn.id, s.conn.addr.ip());
        if let Some(reply) = u64::try_from(offset)
            .ok()
            .and_then(|o| primary::partial_resync(s.server, id, handshake, &args[1], o))
        {
            replication.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "Partial resynchronization request from {} accepted.",
                handshake.replica_name(addr)
            );
            primary::register(s.server, id, handshake, addr);
            handshake.synced = true;
            return reply;
        }
        replication.sync_partial_err.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "Partial resynchronization not accepted: the backlog does not hold {}:{offset}",
            String::from_utf8_lossy(&args[1])
        );
    }
    start_full_resync(s, true)
}

fn start_full_resync(s: &mut Session, psync: bool) -> Reply {
    let handshake = s.conn.replication.get_or_insert_with(Default::default);
    if handshake.synced {
        // Already a replica's link: Redis ignores a repeated SYNC.
        return Reply::Raw(Bytes::new());
    }
    let name = handshake.replica_name(s.conn.addr.ip());
    // Redis's wording: test harnesses wait for these lines.
    tracing::info!(
        client = s.conn.id,
        "Replica {name} asks for synchronization"
    );
    tracing::info!("Full resync requested by replica {name}");
    s.server
        .replication
        .sync_full
        .fetch_add(1, Ordering::Relaxed);
    primary::register(s.server, s.conn.id, handshake, s.conn.addr.ip());
    handshake.synced = true;
    handshake.full_sync = true;
    if !handshake.functions_only {
        // The RDB follows from the link's task (`primary::send_rdb`), when its walk starts.
        handshake.rdb_pending = true;
        handshake.psync = psync;
        return Reply::Raw(Bytes::new());
    }
    match primary::functions_rdb(s.server, psync) {
        Ok(bytes) => Reply::Raw(Bytes::from(bytes)),
        Err(e) => {
            tracing::error!("full resync failed, could not write the RDB: {e}");
            s.server.replication.remove(s.conn.id);
            s.conn.close_after_reply = true;
            Reply::err("ERR could not write the RDB for the full resync")
        }
    }
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms] (see `crate::replication::failover`).
pub fn failover(s: &mut Session, args: &[Bytes]) -> Reply {
    match failover::parse(args) {
        Ok(request) => failover::command(s.server, request),
        Err(e) => e,
    }
}

/// REPLICAOF host port | NO ONE (and SLAVEOF): follow a primary, or stop and become one.
pub fn replicaof(s: &mut Session, args: &[Bytes]) -> Reply {
    // As Redis: a cluster node's primary is chosen by the cluster (CLUSTER REPLICATE, failover).
    if s.server.cluster.enabled() {
        return Reply::err("ERR REPLICAOF not allowed in cluster mode.");
    }
    if s.conn.replication.as_ref().is_some_and(|h| h.synced) {
        return Reply::err("ERR Command is not valid when client is a replica.");
    }
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        replica::promote(s.server);
        return OK;
    }
    let port = match int_arg(&args[2]) {
        Ok(port @ 0..=65535) => port as u16,
        _ => return Reply::err("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    if !replica::follow(s.server, replica::PrimaryAddr { host, port }) {
        return Reply::Status("OK Already connected to specified master");
    }
    OK
}

/// ROLE: a replica's `slave`, its primary's address, the link's state and its offset (-1
/// while the link is not up).
fn replica_role(s: &Session, primary: replica::PrimaryAddr) -> Reply {
    let upstream = &s.server.replication.upstream;
    let offset = if upstream.link_up() {
        s.server.replication.history().offset() as i64
    } else {
        -1
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(b"slave")),
        Reply::Bulk(Bytes::from(primary.host)),
        Reply::Int(primary.port as i64),
        Reply::Bulk(Bytes::from_static(
            upstream.status().state.name().as_bytes(),
        )),
        Reply::Int(offset),
    ])
}

/// ROLE: a primary's `master`, its replication offset, and its replicas past their RDB
/// (address, listening port, acknowledged offset, all as bulk strings).
pub fn role(s: &mut Session, _args: &[Bytes]) -> Reply {
    if let Some(primary) = s.server.replication.upstream.target() {
        return replica_role(s, primary);
    }
    let replicas = s
        .server
        .replication
        .replicas()
        .into_iter()
        .filter(|r| r.online())
        .map(|r| {
            Reply::Array(vec![
                Reply::Bulk(Bytes::from(r.ip)),
                Reply::Bulk(Bytes::from(r.port.to_string())),
                Reply::Bulk(Bytes::from(r.ack_offset.to_string())),
            ])
        })
        .collect();
    let offset = s.server.replication.history().offset();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(b"master")),
        Reply::Int(offset as i64),
        Reply::Array(replicas),
    ])
}
