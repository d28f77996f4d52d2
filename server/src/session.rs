//! Per-connection state, and the context connection- and server-level commands run in.

use std::sync::Arc;

use crate::clients::ClientHandle;
use crate::server_state::Server;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
}

pub struct ConnState {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    /// The ACL user it runs as (`default` until an AUTH).
    pub user: std::sync::Arc<crate::acl::User>,
    pub name: String,
    pub addr: crate::clients::Peer,
    pub reply_mode: ReplyMode,
    /// QUIT, a protocol error or a self-kill: reply, then close.
    pub close_after_reply: bool,
    pub no_touch: bool,
    /// Set by a command that switches replies back on: its own reply is sent even if replies
    /// were off or skipped when it arrived.
    pub answer_regardless: bool,
    pub handle: Arc<ClientHandle>,
    /// What QUANTUM LEARN pairs this client's next read with.
    pub recent_reads: warpengine_physics::entangle::RecentReads,
    /// Between MULTI and EXEC/DISCARD: the queued commands.
    pub tx: Option<Box<crate::transaction_state::Transaction>>,
    /// The keys WATCHed since the last EXEC, DISCARD or UNWATCH.
    pub watching: Option<Box<crate::transaction_state::Watching>>,
    /// Channels, patterns and shard channels subscribed to (Pub/Sub).
    pub pubsub: Option<Box<crate::pubsub::Subscriptions>>,
    /// CLIENT TRACKING while it is on.
    pub tracking: Option<std::sync::Arc<crate::tracking::Tracker>>,
    /// CLIENT CACHING YES|NO given for the next command.
    pub tracking_caching: bool,
    /// The script running now tracks its declared keys if it reads (see `tracking`).
    pub track_script_keys: bool,
    /// What a replica told with REPLCONF, and whether its SYNC/PSYNC was answered.
    pub replication: Option<Box<crate::replication::Handshake>>,
    /// This is the primary's link on a replica: its writes pass read-only mode and stale-data
    /// refusals (`crate::replication::replica`).
    pub primary: bool,
    /// Cluster mode: ASKING was the previous command (one command may use an importing slot).
    pub asking: bool,
    /// Cluster mode: READONLY (reads may be served by a replica of the slot's primary).
    pub readonly: bool,
    /// SCRIPT DEBUG SYNC: the next EVAL runs under the debugger (`scripting::debugger`).
    pub script_debug: bool,
    /// A plain TCP or Unix socket (not TLS): the debugger talks to it directly.
    pub plain_socket: bool,
    /// EXEC is running its queued commands (Redis's `server.in_exec`: BGREWRITEAOF and
    /// `appendonly yes` say their rewrite is scheduled rather than started).
    pub in_exec: bool,
}

impl ConnState {
    /// What keyed commands run on its behalf need of it.
    pub fn caller(&self) -> crate::keyctx::Caller {
        crate::keyctx::Caller {
            no_touch: self.no_touch,
            client: self.id,
            primary: self.primary,
        }
    }

    /// In subscribed mode: RESP2 clients may then only (un)subscribe, PING, QUIT and RESET.
    pub fn subscribed(&self) -> bool {
        self.pubsub.as_ref().is_some_and(|p| p.active())
    }
}

pub struct Session<'a> {
    pub server: &'a Arc<Server>,
    pub conn: &'a mut ConnState,
    pub worker: usize,
}

impl Session<'_> {
    pub fn sync_client_info(&self) {
        let mut info = self.conn.handle.info.lock().expect("client info lock");
        info.db = self.conn.db;
        info.name.clone_from(&self.conn.name);
        info.resp = if self.conn.resp3 { 3 } else { 2 };
        if info.user != self.conn.user.name {
            info.user.clone_from(&self.conn.user.name);
        }
    }
}
