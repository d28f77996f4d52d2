//! Server commands over the whole keyspace: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, LASTSAVE,
//! SAVE, BGSAVE, BGREWRITEAOF, SHUTDOWN.

use crate::server_state::ShardGuard;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_storage::Shard;

use super::util::{eq_ignore_case, int_arg, DB_OUT_OF_RANGE, SYNTAX};
use crate::persist::background;
use crate::persist::log::{self as wal_log, KeyspaceOp};
use crate::persist::snapshot;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

/// Logs a whole-keyspace write while every shard is still locked.
fn log_keyspace(s: &Session, guards: &mut [ShardGuard<'_>], op: KeyspaceOp) {
    if s.server.wal.records() {
        let mut shards: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        wal_log::whole_keyspace(s.server, &mut shards, op, s.conn.db);
    }
}

pub fn dbsize(s: &mut Session, _args: &[Bytes]) -> Reply {
    let db = s.conn.db;
    let total: usize = s.server.lock_all().iter().map(|g| g.dbs[db].len()).sum();
    Reply::Int(total as i64)
}

/// FLUSHDB/FLUSHALL accept one optional SYNC or ASYNC; both free memory before replying here.
fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.len() {
        1 => true,
        2 => eq_ignore_case(&args[1], "sync") || eq_ignore_case(&args[1], "async"),
        _ => false,
    }
}

pub fn flushdb(s: &mut Session, args: &[Bytes]) -> Reply {
    if !flush_mode_ok(args) {
        return Reply::err(SYNTAX);
    }
    let db = s.conn.db;
    let mut guards = s.server.lock_all();
    {
        // A BGSAVE running keeps the database as it was when it began.
        let mut shards: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        background::preserve_databases(s.server, &mut shards, &[db]);
    }
    let mut removed = 0;
    for shard in guards.iter_mut() {
        removed += shard.dbs[db].len();
        shard.dbs[db].clear();
        // used_memory subtracts each shard's untouched table room as last published: the
        // cleared tables' room is gone with them.
        s.server.publish_spare(shard);
    }
    log_keyspace(s, &mut guards, KeyspaceOp::Flush(Some(db)));
    drop(guards);
    s.server.blocking.signal_databases(Some(&[db]));
    s.server.tracking.flushed(s.server);
    // As Redis's dirty counter: one change per key removed.
    s.server.note_change(removed as u64);
    OK
}

pub fn flushall(s: &mut Session, args: &[Bytes]) -> Reply {
    if !flush_mode_ok(args) {
        return Reply::err(SYNTAX);
    }
    let mut guards = s.server.lock_all();
    background::abort_rdb_save(s.server);
    let mut removed = 0;
    for shard in guards.iter_mut() {
        for db in &mut shard.dbs {
            removed += db.len();
            db.clear();
        }
        s.server.publish_spare(shard);
    }
    log_keyspace(s, &mut guards, KeyspaceOp::Flush(None));
    drop(guards);
    s.server.blocking.signal_databases(None);
    s.server.tracking.flushed(s.server);
    // As Redis's dirty counter: one change per key removed, and one for the flush.
    s.server.note_change(removed as u64 + 1);
    // As Redis: with save rules, FLUSHALL saves the (now empty) dataset at once.
    let save_rules = !s
        .server
        .config
        .read()
        .expect("config lock")
        .get("save")
        .is_empty();
    if save_rules {
        if let Err(e) = snapshot::save(s.server) {
            tracing::error!("FLUSHALL could not save the empty dataset: {e}");
        }
    }
    OK
}

pub fn swapdb(s: &mut Session, args: &[Bytes]) -> Reply {
    // Cluster mode has database 0 only (and keeps its slot index there).
    if s.server.cluster.enabled() {
        return Reply::err("ERR SWAPDB is not allowed in cluster mode");
    }
    let databases = s.server.databases() as i64;
    let a = match int_arg(&args[1]) {
        Ok(v) => v,
        Err(_) => return Reply::err("ERR invalid first DB index"),
    };
    let b = match int_arg(&args[2]) {
        Ok(v) => v,
        Err(_) => return Reply::err("ERR invalid second DB index"),
    };
    if a < 0 || a >= databases || b < 0 || b >= databases {
        return Reply::err(DB_OUT_OF_RANGE);
    }
    if a == b {
        return OK;
    }
    let (lo, hi) = (a.min(b) as usize, a.max(b) as usize);
    // Every shard swaps under one lock set, so no client sees the swap half done.
    let mut guards = s.server.lock_all();
    let now = crate::server_state::unix_ms();
    {
        let mut shards: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        background::preserve_databases(s.server, &mut shards, &[lo, hi]);
    }
    for shard in guards.iter_mut() {
        let (left, right) = shard.dbs.split_at_mut(hi);
        left[lo].swap_with(&mut right[0], now);
    }
    log_keyspace(s, &mut guards, KeyspaceOp::SwapDb(lo, hi));
    drop(guards);
    s.server.blocking.signal_databases(Some(&[lo, hi]));
    s.server.note_change(1);
    OK
}

pub fn time(_s: &mut Session, _args: &[Bytes]) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(now.as_secs().to_string())),
        Reply::Bulk(Bytes::from(now.subsec_micros().to_string())),
    ])
}

pub fn lastsave(s: &mut Session, _args: &[Bytes]) -> Reply {
    Reply::Int(s.server.lastsave.load(std::sync::atomic::Ordering::Relaxed) as i64)
}

/// SAVE: a snapshot now, while every shard waits (as Redis's SAVE blocks the server).
pub fn save(s: &mut Session, _args: &[Bytes]) -> Reply {
    if s.server
        .wal
        .stats
        .snapshot_in_progress
        .load(Ordering::Relaxed)
    {
        return Reply::err("ERR Background save already in progress");
    }
    match snapshot::save(s.server) {
        Ok(_) => OK,
        Err(e) => {
            tracing::error!("SAVE failed: {e}");
            Reply::err("ERR")
        }
    }
}

/// Starts a background snapshot (and then, for BGSAVE, the RDB file); `started` is the status
/// Redis answers.
fn background_snapshot(
    s: &mut Session,
    with_rdb_file: bool,
    started: &'static str,
    busy: &'static str,
) -> Reply {
    if background::start(s.server, with_rdb_file) {
        Reply::Status(started)
    } else {
        Reply::err(busy)
    }
}

pub fn bgsave(s: &mut Session, args: &[Bytes]) -> Reply {
    match args.len() {
        1 => {}
        2 if eq_ignore_case(&args[1], "schedule") => {}
        _ => return Reply::err(SYNTAX),
    }
    background_snapshot(
        s,
        true,
        "Background saving started",
        "ERR Background save already in progress",
    )
}

pub fn bgrewriteaof(s: &mut Session, _args: &[Bytes]) -> Reply {
    // Redis cannot fork inside EXEC and starts the rewrite from its cron; the thread here
    // starts at once, but the answer is Redis's.
    match background::rewrite(s.server) {
        background::Rewrite::Started if !s.conn.in_exec => {
            Reply::Status("Background append only file rewriting started")
        }
        background::Rewrite::Started | background::Rewrite::Scheduled => {
            Reply::Status("Background append only file rewriting scheduled")
        }
        background::Rewrite::Busy => {
            Reply::err("ERR Background append only file rewriting already in progress")
        }
    }
}

/// MONITOR: from now on the connection receives every command the server runs.
pub fn monitor(s: &mut Session, _args: &[Bytes]) -> Reply {
    s.server.monitors.add(s.conn);
    OK
}
