//! Client-side caching (CLIENT TRACKING), as Redis 7.0's tracking.c does it.
//!
//! * Default mode: the keys of every read-only command a tracking client runs are remembered
//!   (key → client ids, whatever the database, as in Redis); the first change to such a key
//!   sends each of those clients one invalidation and forgets the key. OPTIN / OPTOUT with
//!   CLIENT CACHING choose the commands whose keys are remembered.
//! * BCAST: no keys are remembered; a change to any key under one of the client's prefixes
//!   is sent to it, the keys one command changed in one message.
//! * A change is a write command's effect on a key present before or after it (the step,
//!   `dispatch/step.rs`), an expiry or eviction (queued by the database through
//!   `warpengine_storage::notify`), or FLUSHDB / FLUSHALL (a null invalidation to every
//!   tracking client, and the table is emptied).
//! * Messages go to the client's own message queue (the one Pub/Sub and MONITOR use) as RESP3
//!   pushes (`>2 invalidate [keys]`), or to the REDIRECT client: a push if it speaks RESP3, a
//!   `__redis__:invalidate` message if it is subscribed in RESP2, nothing otherwise. A RESP2
//!   client without redirection gets nothing, as in Redis.
//! * NOLOOP: a client is not told of its own changes.
//!
//! Nothing here costs a plain GET or SET while no client tracks: one relaxed load per write.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use warpengine_storage::notify;

use crate::command_table::{Flags, TABLE};
use crate::protocol::Reply;
use crate::pubsub::Subscriber;
use crate::server_state::Server;
use crate::session::ConnState;

/// Partitions of the key table (each its own lock), so that writers on different workers
/// rarely meet.
const PARTITIONS: usize = 16;

/// One tracking client, as the invalidation path sees it: its options (`t.bcast`, ...; the
/// prefixes those of every ON so far) and where to send. Replaced whole by each CLIENT
/// TRACKING ON.
pub struct Tracker {
    pub id: u64,
    sink: Arc<Subscriber>,
    mode: Options,
    /// The REDIRECT client has gone.
    pub broken_redirect: AtomicBool,
    /// The client's own protocol (for the null of a flush's invalidation).
    resp3: bool,
}

impl std::ops::Deref for Tracker {
    type Target = Options;
    fn deref(&self) -> &Options {
        &self.mode
    }
}

/// CLIENT TRACKING ON's options.
#[derive(Default)]
pub struct Options {
    /// The client invalidations go to (0: this one).
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// BCAST prefixes ("" for every key).
    pub prefixes: Vec<Bytes>,
}

#[derive(Default)]
struct Table {
    by_key: HashMap<Bytes, Vec<u64>>,
}

pub struct Tracking {
    trackers: RwLock<HashMap<u64, Arc<Tracker>>>,
    /// Tracking clients (INFO's tracking_clients; 0: nothing to do on writes).
    count: AtomicUsize,
    tables: Vec<Mutex<Table>>,
    keys: AtomicUsize,
    items: AtomicUsize,
    /// BCAST registrations: (prefix, client id).
    prefixes: RwLock<Vec<(Bytes, u64)>>,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("id", &self.id)
            .field("redirect", &self.redirect)
            .field("bcast", &self.bcast)
            .finish_non_exhaustive()
    }
}

impl Default for Tracking {
    fn default() -> Tracking {
        Tracking {
            trackers: RwLock::default(),
            count: AtomicUsize::new(0),
            tables: (0..PARTITIONS).map(|_| Mutex::default()).collect(),
            keys: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            prefixes: RwLock::default(),
            hasher: ahash::RandomState::new(),
        }
    }
}

thread_local! {
    /// Keys the command running on this thread changed under BCAST prefixes: (prefix, key,
    /// client that changed it).
    static BCAST_PENDING: RefCell<Vec<(Bytes, Bytes, u64)>> = const { RefCell::new(Vec::new()) };
    /// While set (a transaction runs), BCAST invalidations wait for its end: one message per
    /// prefix for the whole transaction, as Redis sends them once per event-loop turn.
    static BCAST_HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What an invalidation carries.
enum Payload<'a> {
    Keys(&'a [Bytes]),
    /// FLUSHDB / FLUSHALL: every key.
    Everything,
}

impl Tracking {
    /// Whether any client tracks (one load per write while none does).
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    fn partition(&self, key: &[u8]) -> &Mutex<Table> {
        &self.tables[self.hasher.hash_one(key) as usize % PARTITIONS]
    }

    /// INFO: tracking_clients, tracking_total_keys, tracking_total_items,
    /// tracking_total_prefixes.
    pub fn info(&self) -> (usize, usize, usize, usize) {
        let prefixes = self.prefixes.read().expect("tracking prefixes");
        let mut distinct: Vec<&Bytes> = prefixes.iter().map(|(p, _)| p).collect();
        distinct.sort();
        distinct.dedup();
        (
            self.count.load(Ordering::Relaxed),
            self.keys.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
            distinct.len(),
        )
    }

    /// CLIENT TRACKING ON with `opts` (already checked against each other).
    pub fn enable(&self, conn: &mut ConnState, opts: Options) -> Result<(), Reply> {
        let old = conn.tracking.take();
        // Prefixes add up over repeated ONs, as in Redis.
        let mut prefixes = old.as_ref().map_or_else(Vec::new, |t| t.prefixes.clone());
        if opts.bcast {
            for p in &opts.prefixes {
                if let Some(clash) = prefixes.iter().find(|q| overlaps(p, q)) {
                    conn.tracking = old.clone();
                    return Err(prefix_error(p, clash, "an existing"));
                }
            }
            let wanted = if opts.prefixes.is_empty() && prefixes.is_empty() {
                vec![Bytes::new()]
            } else {
                opts.prefixes.clone()
            };
            for p in wanted {
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
        }
        let sink = crate::pubsub::queue_of(conn).me.clone();
        let bcast = opts.bcast;
        let tracker = Arc::new(Tracker {
            id: conn.id,
            sink,
            mode: Options {
                prefixes: prefixes.clone(),
                ..opts
            },
            broken_redirect: AtomicBool::new(false),
            resp3: conn.resp3,
        });
        if bcast {
            let mut registered = self.prefixes.write().expect("tracking prefixes");
            registered.retain(|(_, id)| *id != conn.id);
            registered.extend(prefixes.into_iter().map(|p| (p, conn.id)));
        }
        let mut trackers = self.trackers.write().expect("trackers");
        if trackers.insert(conn.id, tracker.clone()).is_none() {
            self.count.store(trackers.len(), Ordering::Relaxed);
            notify::set_removals_wanted(true);
        }
        drop(trackers);
        conn.handle.info.lock().expect("client info lock").tracking = Some(tracker.clone());
        conn.tracking = Some(tracker);
        conn.tracking_caching = false;
        Ok(())
    }

    /// CLIENT TRACKING OFF, RESET, disconnection.
    pub fn disable(&self, conn: &mut ConnState) {
        let Some(old) = conn.tracking.take() else {
            return;
        };
        conn.tracking_caching = false;
        conn.handle.info.lock().expect("client info lock").tracking = None;
        if old.bcast {
            self.prefixes
                .write()
                .expect("tracking prefixes")
                .retain(|(_, id)| *id != conn.id);
        }
        let mut trackers = self.trackers.write().expect("trackers");
        trackers.remove(&conn.id);
        self.count.store(trackers.len(), Ordering::Relaxed);
        if trackers.is_empty() {
            notify::set_removals_wanted(false);
        }
    }

    /// Before a command of a tracking client runs: remembers the keys of a read-only one (as
    /// OPTIN/OPTOUT and CLIENT CACHING decide), and spends CLIENT CACHING's flag, which lasts
    /// for one command (CLIENT's own subcommands and a transaction's queued commands aside).
    /// `queued`: the command is queued in MULTI; then its keys are not tracked now, and the
    /// answer says whether EXEC is to track them (as Redis tracks a read's keys when it runs).
    pub fn before_command(
        &self,
        server: &Server,
        conn: &mut ConnState,
        index: usize,
        args: &[Bytes],
        queued: bool,
    ) -> bool {
        let Some(t) = conn.tracking.clone() else {
            return false;
        };
        let spec = &TABLE[index];
        let caching = conn.tracking_caching;
        if !spec.keeps_tracking_caching && conn.tx.is_none() {
            conn.tracking_caching = false;
        }
        // OPTIN tracks after CLIENT CACHING YES, OPTOUT but after CLIENT CACHING NO.
        let wanted = !t.bcast && (!t.optin || caching) && (!t.optout || !caching);
        // A script's declared keys are tracked once it has called a read-only command
        // (`remember_keys`), as Redis tracks its caller's keys then.
        let script = matches!(spec.run, crate::command_table::Run::Script(_));
        conn.track_script_keys = wanted && script;
        if !wanted || script || !spec.flags.contains(Flags::READONLY) {
            return false;
        }
        if queued {
            return true;
        }
        for p in spec.key_positions(args) {
            self.remember(server, &args[p], t.id);
        }
        false
    }

    /// EXEC of a tracking client's transaction, before it runs: the keys of its queued reads
    /// are tracked as Redis tracks them, each when its command runs. A key a command before
    /// the read writes is to be tracked after the transaction (that write must not
    /// invalidate it: the keys returned, for [`Tracking::after_exec`]); the others now (a
    /// later write in the transaction invalidates them, as in Redis).
    pub fn before_exec(
        &self,
        server: &Server,
        conn: &ConnState,
        queued: &[crate::transaction_state::Queued],
    ) -> Vec<Bytes> {
        let Some(id) = conn.tracking.as_ref().map(|t| t.id) else {
            return Vec::new();
        };
        let mut written: Vec<&Bytes> = Vec::new();
        let mut after = Vec::new();
        for q in queued {
            let spec = &TABLE[q.index];
            let keys = spec.key_positions(&q.args).into_iter().map(|p| &q.args[p]);
            if q.tracks {
                for key in keys {
                    if written.contains(&key) {
                        after.push(key.clone());
                    } else {
                        self.remember(server, key, id);
                    }
                }
            } else if spec.is_write() {
                written.extend(keys);
            }
        }
        after
    }

    /// After EXEC: tracks the keys [`Tracking::before_exec`] left for then.
    pub fn after_exec(&self, server: &Server, conn: &ConnState, keys: &[Bytes]) {
        self.remember_keys(server, conn, keys);
    }

    /// A script of a tracking client called a read-only command: its declared keys are
    /// remembered for the client.
    pub fn remember_keys(&self, server: &Server, conn: &ConnState, keys: &[Bytes]) {
        if let Some(t) = &conn.tracking {
            for key in keys {
                self.remember(server, key, t.id);
            }
        }
    }

    fn remember(&self, server: &Server, key: &[u8], id: u64) {
        let mut table = self.partition(key).lock().expect("tracking table");
        match table.by_key.get_mut(key) {
            Some(ids) => {
                if !ids.contains(&id) {
                    ids.push(id);
                    self.items.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                table.by_key.insert(Bytes::copy_from_slice(key), vec![id]);
                self.keys.fetch_add(1, Ordering::Relaxed);
                self.items.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(table);
        self.limit_keys(server);
    }

    /// Whether the table holds more keys than `tracking-table-max-keys` allows.
    pub fn over_max_keys(&self, server: &Server) -> bool {
        let max = server.hot.tracking_max_keys.load(Ordering::Relaxed) as usize;
        max != 0 && self.keys.load(Ordering::Relaxed) > max
    }

    /// Keeps the table within `tracking-table-max-keys`: past it, keys are invalidated (their
    /// clients told) and forgotten, as Redis's trackingLimitUsedSlots does, when a key is
    /// remembered and from the cron (a lowered limit takes effect with no new key tracked).
    pub fn limit_keys(&self, server: &Server) {
        let max = server.hot.tracking_max_keys.load(Ordering::Relaxed) as usize;
        if max == 0 {
            return;
        }
        let mut spin = 0;
        while self.keys.load(Ordering::Relaxed) > max && spin < PARTITIONS * 4 {
            let part = &self.tables[spin % PARTITIONS];
            spin += 1;
            let victim = {
                let table = part.lock().expect("tracking table");
                table.by_key.keys().next().cloned()
            };
            if let Some(key) = victim {
                self.key_changed(server, &key, 0);
            }
        }
    }

    /// `key` changed (written by client `by`, 0 for expiry and eviction): its default-mode
    /// clients are sent an invalidation and it is forgotten; BCAST clients whose prefix it has
    /// get it with the command's other keys ([`Tracking::flush_bcast`]).
    pub fn key_changed(&self, server: &Server, key: &[u8], by: u64) {
        let ids = {
            let mut table = self.partition(key).lock().expect("tracking table");
            table.by_key.remove(key)
        };
        if let Some(ids) = ids {
            self.keys.fetch_sub(1, Ordering::Relaxed);
            self.items.fetch_sub(ids.len(), Ordering::Relaxed);
            let trackers = self.trackers.read().expect("trackers");
            let key = [Bytes::copy_from_slice(key)];
            for id in ids {
                let Some(t) = trackers.get(&id) else {
                    continue;
                };
                // A client that switched to BCAST since it read the key is not told.
                if t.bcast || (t.noloop && id == by) {
                    continue;
                }
                self.send(server, t, Payload::Keys(&key));
            }
        }
        let prefixes = self.prefixes.read().expect("tracking prefixes");
        if prefixes.is_empty() {
            return;
        }
        let mut matched: Vec<&Bytes> = prefixes
            .iter()
            .filter(|(p, _)| key.starts_with(p))
            .map(|(p, _)| p)
            .collect();
        matched.dedup();
        BCAST_PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            for p in matched {
                pending.push((p.clone(), Bytes::copy_from_slice(key), by));
            }
        });
    }

    /// After a command: sends the keys it changed under BCAST prefixes, as Redis's
    /// trackingBroadcastInvalidationMessages does: prefix by prefix in byte order, one message
    /// per prefix and client with that prefix's keys in byte order (a NOLOOP client's own
    /// changes left out).
    pub fn flush_bcast(&self, server: &Server) {
        if BCAST_HELD.with(|held| held.get()) {
            return;
        }
        let mut pending = BCAST_PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if pending.is_empty() {
            return;
        }
        pending.sort();
        pending.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        let registered = self.prefixes.read().expect("tracking prefixes").clone();
        let trackers = self.trackers.read().expect("trackers");
        let mut start = 0;
        while start < pending.len() {
            let prefix = pending[start].0.clone();
            let end = start
                + pending[start..]
                    .iter()
                    .take_while(|e| e.0 == prefix)
                    .count();
            let group = &pending[start..end];
            start = end;
            for (_, id) in registered.iter().filter(|(p, _)| *p == prefix) {
                let Some(t) = trackers.get(id) else {
                    continue;
                };
                let keys: Vec<Bytes> = group
                    .iter()
                    .filter(|(_, _, by)| !(t.noloop && by == id))
                    .map(|(_, k, _)| k.clone())
                    .collect();
                if !keys.is_empty() {
                    self.send(server, t, Payload::Keys(&keys));
                }
            }
        }
    }

    /// Runs `f` (a transaction) with BCAST invalidations held until it ends, then sends them.
    pub fn holding_bcast<R>(&self, server: &Server, f: impl FnOnce() -> R) -> R {
        let outer = BCAST_HELD.with(|held| held.replace(true));
        let result = f();
        BCAST_HELD.with(|held| held.set(outer));
        if !outer && self.active() {
            self.flush_bcast(server);
        }
        result
    }

    /// FLUSHDB / FLUSHALL: every tracking client is told that everything changed, and the
    /// table is emptied.
    pub fn flushed(&self, server: &Server) {
        // Emptied even with no tracking client left: keys remembered for clients that turned
        // tracking off since stay in the table until then (as in Redis).
        if self.keys.load(Ordering::Relaxed) != 0 {
            for part in &self.tables {
                part.lock().expect("tracking table").by_key.clear();
            }
            self.keys.store(0, Ordering::Relaxed);
            self.items.store(0, Ordering::Relaxed);
        }
        if !self.active() {
            return;
        }
        let trackers: Vec<Arc<Tracker>> = self
            .trackers
            .read()
            .expect("trackers")
            .values()
            .cloned()
            .collect();
        for t in trackers {
            self.send(server, &t, Payload::Everything);
        }
    }

    /// Sends one invalidation for `t`: to its REDIRECT client or itself (see the module docs).
    fn send(&self, server: &Server, t: &Tracker, payload: Payload) {
        let limits = &server.pubsub.limits;
        let (sink, resp3, subscribed) = if t.redirect != 0 {
            let target = server.clients.get(t.redirect).and_then(|h| {
                let sink = h.sink.lock().expect("client sink").clone()?;
                let info = h.info.lock().expect("client info lock");
                Some((sink, info.resp == 3, info.subscriptions != (0, 0, 0)))
            });
            match target {
                Some(target) => target,
                None => {
                    t.broken_redirect.store(true, Ordering::Relaxed);
                    if t.sink.is_resp3() {
                        let mut f = b">2\r\n$21\r\ntracking-redir-broken\r\n".to_vec();
                        Reply::Int(t.redirect as i64).encode(&mut f, true);
                        t.sink.offer(&Bytes::from(f), limits);
                    }
                    return;
                }
            }
        } else {
            (t.sink.clone(), t.sink.is_resp3(), false)
        };
        let mut frame = if resp3 {
            b">2\r\n$10\r\ninvalidate\r\n".to_vec()
        } else if t.redirect != 0 && subscribed {
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n".to_vec()
        } else {
            return;
        };
        match payload {
            Payload::Keys(keys) => {
                Reply::Array(keys.iter().cloned().map(Reply::Bulk).collect())
                    .encode(&mut frame, resp3);
            }
            // Redis sends the null of the tracking client's own protocol.
            Payload::Everything => Reply::Nil.encode(&mut frame, t.resp3),
        }
        if sink.offer(&Bytes::from(frame), limits) {
            if let Some((clients, limit)) = server.client_memory() {
                clients.count_queued(&sink, limit);
            }
        }
    }
}

/// Whether one prefix is a prefix of the other.
pub fn overlaps(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn prefix_error(p: &[u8], other: &[u8], which: &str) -> Reply {
    let mut msg = b"ERR Prefix '".to_vec();
    msg.extend_from_slice(p);
    msg.extend_from_slice(format!("' overlaps with {which} prefix '").as_bytes());
    msg.extend_from_slice(other);
    msg.extend_from_slice(b"'. Prefixes for a single client must not overlap.");
    Reply::error_bytes(msg)
}
