//! A connection's transaction state: the commands queued since MULTI, and the keys it WATCHes
//! (registered in the databases of the shards that own them, which set the connection's flag
//! when one changes: see `warpengine_storage::watch`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use warpengine_storage::watch::WatchFlag;

use crate::server_state::{unix_ms, Server};
use crate::session::ConnState;

/// Commands queued between MULTI and EXEC.
#[derive(Default)]
pub struct Transaction {
    pub queued: Vec<Queued>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// A command admitted while queuing: its table row, arguments, and what its writes wait for.
pub struct Queued {
    pub index: usize,
    pub args: Vec<Bytes>,
    pub class: crate::persist::Durable,
    /// A tracking client's read: its keys are tracked when EXEC runs it, not when queued.
    pub tracks: bool,
}

/// The keys a connection WATCHes: (database, key), and the flag their changes set.
#[derive(Default)]
pub struct Watching {
    pub flag: Arc<WatchFlag>,
    pub keys: Vec<(usize, Bytes)>,
}

/// WATCH: registers each key in its database on the shard that owns it.
pub fn watch(server: &Server, conn: &mut ConnState, keys: &[Bytes]) {
    let watching = conn.watching.get_or_insert_with(Box::default);
    let now = unix_ms();
    for key in keys {
        if watching
            .keys
            .iter()
            .any(|(db, k)| *db == conn.db && k == key)
        {
            continue;
        }
        let mut shard = server.lock_shard(server.route(key));
        shard.dbs[conn.db].watch(key, &watching.flag, now);
        drop(shard);
        watching.keys.push((conn.db, key.clone()));
        server.watched_keys.fetch_add(1, Ordering::Relaxed);
    }
}

/// UNWATCH (and the end of EXEC, DISCARD, RESET, a closed connection): forgets every key.
pub fn unwatch_all(server: &Server, conn: &mut ConnState) {
    let Some(watching) = conn.watching.take() else {
        return;
    };
    for (db, key) in &watching.keys {
        let mut shard = server.lock_shard(server.route(key));
        shard.dbs[*db].unwatch(key, &watching.flag);
        drop(shard);
        server.watched_keys.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends any transaction and watch of the connection (RESET, QUIT, disconnection).
pub fn end(server: &Server, conn: &mut ConnState) {
    conn.tx = None;
    show_queued(conn);
    unwatch_all(server, conn);
}

/// CLIENT LIST's `multi` (and its `x` flag): the commands queued, or none outside MULTI.
pub fn show_queued(conn: &ConnState) {
    let queued = conn.tx.as_ref().map(|tx| tx.queued.len());
    conn.handle.info.lock().expect("client info lock").multi = queued;
}
