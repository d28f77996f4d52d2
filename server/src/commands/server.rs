//! Server commands over the whole keyspace: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, LASTSAVE,
//! SHUTDOWN.

use bytes::Bytes;

use super::util::{eq_ignore_case, int_arg, DB_OUT_OF_RANGE, SYNTAX};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

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
    for mut shard in s.server.lock_all() {
        shard.dbs[db].clear();
    }
    OK
}

pub fn flushall(s: &mut Session, args: &[Bytes]) -> Reply {
    if !flush_mode_ok(args) {
        return Reply::err(SYNTAX);
    }
    for mut shard in s.server.lock_all() {
        for db in &mut shard.dbs {
            db.clear();
        }
    }
    OK
}

pub fn swapdb(s: &mut Session, args: &[Bytes]) -> Reply {
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
    for mut shard in s.server.lock_all() {
        let (left, right) = shard.dbs.split_at_mut(hi);
        left[lo].swap_with(&mut right[0]);
    }
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

pub fn shutdown(s: &mut Session, args: &[Bytes]) -> Reply {
    for opt in &args[1..] {
        let known = ["nosave", "save", "now", "force", "abort"]
            .iter()
            .any(|o| eq_ignore_case(opt, o));
        if !known {
            return Reply::err(SYNTAX);
        }
    }
    if args[1..].iter().any(|o| eq_ignore_case(o, "abort")) {
        return Reply::err("ERR No shutdown in progress.");
    }
    tracing::warn!(client = s.conn.id, "SHUTDOWN requested");
    s.server.request_shutdown();
    s.conn.close_after_reply = true;
    // Like Redis, a successful SHUTDOWN closes the connection without a reply.
    Reply::Raw(Bytes::new())
}
