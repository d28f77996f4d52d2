//! Fan-out reads (QUANTUM GET): the keys a command names are fetched as GETs queued with the
//! pipeline's other commands, one batch per owning shard, into hidden reply slots; the
//! command's flat `key value ...` reply is assembled from them before encoding.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Pipeline;
use crate::command_table;
use crate::fabric::BatchItem;
use crate::protocol::Reply;
use crate::server_state::Server;
use crate::session::ConnState;

/// A fan-out read (QUANTUM GET): `keys[i]`'s GET reply is in the hidden slot `first + i`, and
/// the flat `key value ...` array goes to `slot`.
pub(super) struct Gather {
    slot: usize,
    first: usize,
    keys: Vec<Bytes>,
}

impl Pipeline {
    /// Queues a GET of each key on its shard, into hidden reply slots that `gather` collects.
    pub(super) fn queue_fanout(
        &mut self,
        server: &Server,
        conn: &ConnState,
        slot: usize,
        each: &'static str,
        keys: Vec<Bytes>,
    ) {
        let get =
            command_table::lookup_original(each.as_bytes()).expect("a fan-out's command exists");
        let first = self.replies.len();
        let mut shards_used = vec![false; self.batches.len()];
        for key in &keys {
            let hidden = self.replies.len();
            self.replies.push(None);
            self.emit.push(false);
            self.resp3.push(conn.resp3);
            self.commands.push(None);
            let owner = server.route(key);
            shards_used[owner] = true;
            let batch = self.batches[owner].as_mut().expect("batch is home");
            batch.items.push(BatchItem {
                spec: get,
                db: conn.db,
                args: vec![Bytes::from_static(each.as_bytes()), key.clone()],
            });
            batch.slots.push(hidden);
            self.queued += 1;
        }
        let q = &server.quantum.stats;
        q.get_calls.fetch_add(1, Ordering::Relaxed);
        q.partners_fetched
            .fetch_add(keys.len() as u64 - 1, Ordering::Relaxed);
        let remote = shards_used
            .iter()
            .enumerate()
            .filter(|&(s, &used)| used && s != self.me)
            .count();
        q.partner_shard_batches
            .fetch_add(remote as u64, Ordering::Relaxed);
        self.gathers.push(Gather { slot, first, keys });
    }

    /// Assembles each fan-out reply from its hidden GET replies: a partner that is not a string
    /// reads as nil; the key itself answers its error (WRONGTYPE) for the whole command.
    pub(super) fn gather(&mut self) {
        for g in self.gathers.drain(..) {
            let mut items = Vec::with_capacity(g.keys.len() * 2);
            let mut failed = None;
            for (i, key) in g.keys.into_iter().enumerate() {
                let reply = self.replies[g.first + i]
                    .replace(Reply::Nil)
                    .expect("fan-out GETs are answered before encoding");
                let value = if reply.is_error() {
                    if i == 0 {
                        failed = Some(reply);
                        break;
                    }
                    Reply::Nil
                } else {
                    reply
                };
                items.push(Reply::Bulk(key));
                items.push(value);
            }
            self.replies[g.slot] = Some(failed.unwrap_or(Reply::Array(items)));
        }
    }
}
