//! A writable replica's own keys with a TTL (`replica-read-only no`): the replica expires them
//! itself, as Redis's `expireSlaveKeys` does, since no primary will send their DELs. Every
//! other key of a replica waits for its primary's DEL (reads skip it once expired).
//!
//! The keys a client of the replica writes are noted at admission (the write has not run yet,
//! so whether it leaves a TTL is not known): the replica's tick (worker 0, while active expiry
//! is on) looks at each, deletes the ones past their time, keeps the ones still to expire, and
//! forgets the ones without a TTL or gone, once their write had a second to run. INFO's
//! `slave_expires_tracked_keys` counts them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::server_state::{unix_ms, Server};

/// How long a noted key is kept without a TTL: its write runs after it was noted.
const WRITE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct LocalKeys {
    /// (database, key) -> when a client of this replica last wrote it.
    keys: Mutex<HashMap<(usize, Bytes), Instant>>,
}

impl LocalKeys {
    /// A client of this replica is about to write these keys of database `db`.
    pub fn note<'a>(&self, db: usize, keys: impl Iterator<Item = &'a Bytes>) {
        let now = Instant::now();
        let mut noted = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            noted.insert((db, key.clone()), now);
        }
    }

    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key (the server is a primary again: its active expiry covers them).
    pub fn clear(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The replica's tick: deletes the noted keys whose TTL has passed (logged and replicated
    /// as any expiry), forgets those without one.
    pub fn expire_due(&self, server: &Server) {
        let noted: Vec<((usize, Bytes), Instant)> = {
            let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if keys.is_empty() {
                return;
            }
            keys.iter().map(|(k, t)| (k.clone(), *t)).collect()
        };
        let now = unix_ms();
        let mut by_shard: Vec<Vec<((usize, Bytes), Instant)>> = vec![Vec::new(); server.threads()];
        for entry in noted {
            by_shard[server.route(&entry.0 .1)].push(entry);
        }
        let mut forget = Vec::new();
        for (shard_id, entries) in by_shard.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            // A script holding the shard (busy, maybe) must not hold up this worker's tick:
            // its keys wait for the next one.
            let Some(mut shard) = server.try_lock_shard(shard_id) else {
                continue;
            };
            for ((db, key), written) in entries {
                let Some(d) = shard.dbs.get_mut(db) else {
                    forget.push(((db, key), written));
                    continue;
                };
                match d.expire_at(&key) {
                    0 if written.elapsed() >= WRITE_GRACE => forget.push(((db, key), written)),
                    0 => {}
                    at if now > at => {
                        d.expire_key_now(&key);
                        forget.push(((db, key), written));
                    }
                    _ => {}
                }
            }
            if server.wal.records() {
                crate::persist::log::flush_expired(server, &mut shard);
            }
            drop(shard);
            crate::keyspace_events::publish_raised(server);
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for (key, written) in forget {
            // Written again meanwhile: kept for the next tick.
            if keys.get(&key) == Some(&written) {
                keys.remove(&key);
            }
        }
    }
}
