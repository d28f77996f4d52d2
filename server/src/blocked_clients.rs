//! Clients blocked on keys (BLPOP and friends): who waits for which key, in arrival order.
//!
//! A blocked client registers while it still holds the locks of its keys' shards, so a push
//! either happened before its attempt (which then found the data) or finds it registered.
//! A write to a key with waiters wakes the first of them; the woken client retries its command
//! like any other and, when it got something, wakes the next waiter of its keys in turn.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

#[derive(Default)]
pub struct Waiter {
    pub notify: tokio::sync::Notify,
    /// Set by CLIENT UNBLOCK before it wakes the client (see [`Unblock`]).
    unblocked: std::sync::atomic::AtomicU8,
    /// Set by the cluster bus before it wakes the client: the cluster's slots changed, and
    /// the key it waits on may be served elsewhere now (see [`Waiter::recheck_route`]).
    route_changed: std::sync::atomic::AtomicBool,
    /// When the blocking request was read (None: a waiter with no read behind it).
    read_at: Option<crate::command_timing::Moment>,
}

impl Waiter {
    /// The waiter of a blocking request read at `at`.
    pub fn read_at(at: crate::command_timing::Moment) -> Waiter {
        Waiter {
            read_at: Some(at),
            ..Waiter::default()
        }
    }
}

/// How CLIENT UNBLOCK ends a blocked command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unblock {
    /// As if its timeout had passed.
    Timeout,
    /// With Redis's `-UNBLOCKED` error.
    Error,
    /// The server became a replica (REPLICAOF host port): Redis's `-UNBLOCKED ... (master ->
    /// replica?)` error, then the connection closes, since the key it waited on now changes
    /// only as the primary says.
    RoleChange,
}

impl Waiter {
    /// CLIENT UNBLOCK (or a change of role): ends the wait the way `how` says.
    pub fn unblock(&self, how: Unblock) {
        let code = match how {
            Unblock::Timeout => 1,
            Unblock::Error => 2,
            Unblock::RoleChange => 3,
        };
        self.unblocked.store(code, Ordering::Release);
        self.notify.notify_one();
    }

    /// The cluster's slots or state changed: the client checks whether its key is still
    /// served here, and goes on waiting if it is.
    pub fn recheck_route(&self) {
        self.route_changed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether [`Waiter::recheck_route`] was called since the last time this was asked.
    pub fn take_route_change(&self) -> bool {
        self.route_changed.swap(false, Ordering::AcqRel)
    }

    /// Whether CLIENT UNBLOCK ended the wait, and how.
    pub fn unblocked(&self) -> Option<Unblock> {
        match self.unblocked.load(Ordering::Acquire) {
            1 => Some(Unblock::Timeout),
            2 => Some(Unblock::Error),
            3 => Some(Unblock::RoleChange),
            _ => None,
        }
    }
}

/// Clients waiting on one key of one database, oldest first.
type Queues = HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>;

#[derive(Default)]
pub struct BlockRegistry {
    /// Registrations in total, so that writes skip the map entirely while nobody waits.
    waiting: AtomicUsize,
    keys: Mutex<Queues>,
    /// Clients currently blocked (INFO's blocked_clients).
    pub blocked_clients: AtomicUsize,
}

impl BlockRegistry {
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub fn register(&self, db: usize, keys: &[Bytes], waiter: &Arc<Waiter>) {
        let mut map = self.keys.lock().expect("block registry lock");
        for key in keys {
            let queue = map.entry((db, key.clone())).or_default();
            if !queue.iter().any(|w| Arc::ptr_eq(w, waiter)) {
                // In the order the requests were read: two clients' blocking commands, read
                // one after the other by two workers, may reach here in the other order (each
                // worker runs its own), where Redis's one thread keeps their order.
                let at = waiter.read_at.map_or(queue.len(), |mine| {
                    queue
                        .iter()
                        .position(|w| w.read_at.is_some_and(|theirs| theirs > mine))
                        .unwrap_or(queue.len())
                });
                queue.insert(at, waiter.clone());
                self.waiting.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    pub fn unregister(&self, db: usize, keys: &[Bytes], waiter: &Arc<Waiter>) {
        let mut map = self.keys.lock().expect("block registry lock");
        for key in keys {
            let slot = (db, key.clone());
            if let Some(queue) = map.get_mut(&slot) {
                let before = queue.len();
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                self.waiting
                    .fetch_sub(before - queue.len(), Ordering::SeqCst);
                if queue.is_empty() {
                    map.remove(&slot);
                }
            }
        }
    }

    /// A key was written: wake the client that has waited longest for it.
    pub fn signal(&self, db: usize, key: &[u8]) {
        let map = self.keys.lock().expect("block registry lock");
        if let Some(first) = map
            .get(&(db, Bytes::copy_from_slice(key)))
            .and_then(|q| q.front())
        {
            first.notify.notify_one();
        }
    }

    /// Whole databases changed (FLUSHALL: `None`; FLUSHDB, SWAPDB: those databases): every
    /// waiter on a key there tries again, as Redis signals each such key (a woken XREADGROUP
    /// finds its stream gone, a BLPOP in a swapped-in database finds its list).
    pub fn signal_databases(&self, dbs: Option<&[usize]>) {
        if !self.has_waiters() {
            return;
        }
        let map = self.keys.lock().expect("block registry lock");
        for ((db, _), queue) in map.iter() {
            if dbs.is_none_or(|dbs| dbs.contains(db)) {
                queue.iter().for_each(|w| w.notify.notify_one());
            }
        }
    }

    /// A key was written with something every waiter may take (a stream's new entry): wake
    /// them all, each to try again.
    pub fn signal_all(&self, db: usize, key: &[u8]) {
        let map = self.keys.lock().expect("block registry lock");
        if let Some(queue) = map.get(&(db, Bytes::copy_from_slice(key))) {
            queue.iter().for_each(|w| w.notify.notify_one());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_waiter_of_a_key_is_woken() {
        let reg = BlockRegistry::default();
        let (a, b) = (Arc::new(Waiter::default()), Arc::new(Waiter::default()));
        let k = [Bytes::from_static(b"k")];
        assert!(!reg.has_waiters());
        reg.register(0, &k, &a);
        reg.register(0, &k, &b);
        assert!(reg.has_waiters());
        reg.signal(0, b"k");
        // `a` holds a stored permit now; `b` does not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            a.notify.notified().await;
            let b_woken =
                tokio::time::timeout(std::time::Duration::from_millis(20), b.notify.notified())
                    .await;
            assert!(b_woken.is_err());
        });
        reg.unregister(0, &k, &a);
        reg.unregister(0, &k, &b);
        assert!(!reg.has_waiters());
        reg.signal(1, b"other");
    }

    /// Two workers may register their clients in the other order than they read their
    /// requests: the one read first is still woken first.
    #[test]
    fn waiters_queue_in_the_order_their_requests_were_read() {
        use crate::command_timing::Moment;
        let reg = BlockRegistry::default();
        let read_first = Moment::now();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let read_second = Moment::now();
        let (first, second) = (
            Arc::new(Waiter::read_at(read_first)),
            Arc::new(Waiter::read_at(read_second)),
        );
        let k = [Bytes::from_static(b"k")];
        reg.register(0, &k, &second);
        reg.register(0, &k, &first);
        reg.signal(0, b"k");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            first.notify.notified().await;
            let second_woken = tokio::time::timeout(
                std::time::Duration::from_millis(20),
                second.notify.notified(),
            )
            .await;
            assert!(second_woken.is_err());
        });
    }
}
