//! A blocking command that has to wait: what it waits for and what its read still holds.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::blocked_clients::Waiter;
use crate::protocol::Reply;
use crate::server_state::Server;

/// A blocking command waiting for data, and the requests of its read that come after it.
pub struct Blocked {
    pub(super) spec: usize,
    pub(super) db: usize,
    pub(super) args: Vec<Bytes>,
    pub(super) keys: Vec<Bytes>,
    pub waiter: Arc<Waiter>,
    pub deadline: Option<Instant>,
    /// Whether its reply is sent (CLIENT REPLY), and in which protocol.
    pub emit: bool,
    pub resp3: bool,
    pub rest: Vec<Vec<Bytes>>,
}

impl Blocked {
    /// The table row of the blocked command.
    pub fn command_index(&self) -> usize {
        self.spec
    }

    /// Leaves the waiting lists, and passes the turn on: another client may be waiting for
    /// what is left in these keys.
    pub fn finish(&self, server: &Server) {
        server
            .blocking
            .unregister(self.db, &self.keys, &self.waiter);
        for key in &self.keys {
            server.blocking.signal(self.db, key);
        }
    }

    /// Waits until what serving this command logged is durable.
    pub async fn durable(&self, server: &Server, me: usize) -> Result<(), String> {
        if !server.wal.is_on() {
            return Ok(());
        }
        for key in &self.keys {
            let shard = server.route(key);
            let lsn = server.wal.logs[shard].appended();
            server.wal.wait(me, shard, lsn).await?;
        }
        Ok(())
    }

    /// In cluster mode, the error that ends the wait when the key's slot is no longer served
    /// here (MOVED, or CLUSTERDOWN): see [`crate::cluster::Cluster::redirect_blocked`]. Every
    /// key of a blocking command hashes to one slot (checked before it blocked), so the first
    /// key's decides.
    pub fn cluster_redirect(&self, server: &Server, readonly_client: bool) -> Option<Reply> {
        let key = self.keys.first()?;
        let read = !crate::command_table::TABLE[self.spec].is_write();
        let redirect = server
            .cluster
            .redirect_blocked(crate::slot::key_slot(key), readonly_client && read)?;
        self.finish(server);
        Some(Reply::err(redirect.message()))
    }

    /// The reply when the timeout expires: a null array, as Redis gives for every blocking
    /// list and sorted-set command.
    pub fn timed_out(&self, server: &Server) -> Reply {
        self.finish(server);
        Reply::NilArray
    }
}
