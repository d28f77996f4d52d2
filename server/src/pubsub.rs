//! Pub/Sub: the server's registry of channel, pattern and shard-channel subscriptions, and each
//! subscribed connection's queue of messages.
//!
//! A subscriber is a connection's handle: the sending half of its message queue, the bytes
//! queued and not yet written (for `client-output-buffer-limit pubsub`), and the protocol its
//! messages are encoded in. PUBLISH encodes a message once per protocol and queues it for every
//! subscriber of the channel, then for every pattern that matches; the connection's task writes
//! what its queue holds between requests (`connection_loop`). One publisher's messages reach
//! each subscriber in the order they were published, whichever workers the two are on.
//!
//! A subscriber whose unwritten messages pass the hard limit, or stay above the soft limit for
//! its seconds, is closed as Redis closes it: its queue takes nothing more, and its connection
//! ends, so a client that does not read cannot grow the server's memory without bound.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;
use warpengine_storage::glob::glob_match;

use crate::output_limits::{Class, OutputLimits};
use crate::session::ConnState;

/// The three kinds of subscription, with Redis's reply names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn subscribe_name(self) -> &'static str {
        match self {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        }
    }

    fn unsubscribe_name(self) -> &'static str {
        match self {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
            Kind::Shard => "sunsubscribe",
        }
    }
}

/// A subscribed connection, as publishers see it.
pub struct Subscriber {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued and not yet written to the socket.
    queued: AtomicUsize,
    resp3: AtomicBool,
    /// In subscribed mode: its limit is then the pubsub class's, else the normal class's
    /// (MONITOR, tracking invalidations).
    subscribed: AtomicBool,
    /// Over its output limit: takes no more messages, and its connection closes.
    closed: AtomicBool,
    /// Since when (Unix ms) it has been over the soft limit; 0 while it is not.
    over_soft_since: AtomicU64,
    /// Signalled when it is closed: its connection may be stuck writing to a client that does
    /// not read.
    closing: tokio::sync::Notify,
    /// The client it queues for: what is queued counts toward its memory (`maxmemory-clients`).
    owner: OnceLock<Weak<crate::clients::ClientHandle>>,
}

impl Subscriber {
    /// Bytes queued for it and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The client it queues for, while it is connected.
    pub fn owner(&self) -> Option<Arc<crate::clients::ClientHandle>> {
        self.owner.get().and_then(Weak::upgrade)
    }

    /// Queues `frame`; false if the subscriber is (now) over its limit.
    pub(crate) fn offer(&self, frame: &Bytes, limits: &OutputLimits) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let queued = self.queued.fetch_add(frame.len(), Ordering::AcqRel) + frame.len();
        if self.over_limit(queued, limits) {
            self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
            self.close();
            return false;
        }
        self.tx.send(frame.clone()).is_ok()
    }

    /// Called once a second: a subscriber that stays over its soft limit with nothing more
    /// offered to it is closed all the same once its seconds have passed, as Redis's client
    /// cron checks every client's output buffer.
    pub(crate) fn recheck_soft_limit(&self, limits: &OutputLimits) {
        if self.over_soft_since.load(Ordering::Relaxed) == 0 || self.closed.load(Ordering::Acquire)
        {
            return;
        }
        if self.over_limit(self.queued.load(Ordering::Acquire), limits) {
            self.close();
        }
    }

    fn over_limit(&self, queued: usize, limits: &OutputLimits) -> bool {
        let class = if self.subscribed.load(Ordering::Relaxed) {
            Class::PubSub
        } else {
            Class::Normal
        };
        limits
            .of(class)
            .exceeded(queued as u64, &self.over_soft_since)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // An empty frame wakes the connection waiting for messages; the signal, one waiting
        // for its socket.
        let _ = self.tx.send(Bytes::new());
        self.closing.notify_one();
    }
}

/// A connection's subscriptions, kept in its state.
pub struct Subscriptions {
    pub me: Arc<Subscriber>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
}

impl Subscriptions {
    pub(crate) fn new(resp3: bool) -> Subscriptions {
        let (tx, rx) = mpsc::unbounded_channel();
        Subscriptions {
            me: Arc::new(Subscriber {
                tx,
                queued: AtomicUsize::new(0),
                resp3: AtomicBool::new(resp3),
                subscribed: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                over_soft_since: AtomicU64::new(0),
                closing: tokio::sync::Notify::new(),
                owner: OnceLock::new(),
            }),
            rx,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
        }
    }

    fn set(&mut self, kind: Kind) -> &mut HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// The count Redis reports beside a (un)subscription: channels and patterns together, or
    /// shard channels alone.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard_channels.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's sub, psub, ssub).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.channels.len(),
            self.patterns.len(),
            self.shard_channels.len(),
        )
    }

    /// Whether the connection is in subscribed mode (any subscription at all).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }

    /// Tells publishers whether the connection is in subscribed mode, which decides the
    /// class of its output limit.
    fn note_mode(&self) {
        self.me.subscribed.store(self.active(), Ordering::Relaxed);
    }

    /// Waits for the next message (None: never, the registry holds a sender while subscribed).
    pub async fn next(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// Takes the messages already queued, up to about `max` bytes, into `out`; the bytes taken.
    /// They still count against the output limit until [`Subscriptions::written`].
    pub fn drain_into(&mut self, first: Bytes, out: &mut Vec<u8>, max: usize) -> usize {
        let mut taken = 0;
        let mut frame = Some(first);
        while let Some(f) = frame.take() {
            taken += f.len();
            out.extend_from_slice(&f);
            if out.len() < max {
                frame = self.rx.try_recv().ok();
            }
        }
        taken
    }

    /// Takes the messages already queued into `out` (they go out with the reply being built):
    /// a RESP3 client that publishes to its own channel gets the message before PUBLISH's
    /// reply, as Redis writes it into the client's buffer while PUBLISH runs.
    pub fn take_queued(&mut self, out: &mut Vec<u8>) {
        while let Ok(frame) = self.rx.try_recv() {
            if frame.is_empty() {
                // The close signal: leave it for the connection loop.
                let _ = self.me.tx.send(frame);
                return;
            }
            self.me.queued.fetch_sub(frame.len(), Ordering::AcqRel);
            out.extend_from_slice(&frame);
        }
    }

    /// `n` bytes of messages reached the socket.
    pub fn written(&self, n: usize) {
        self.me.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Closed for its output limit: the connection is to end.
    pub fn is_closed(&self) -> bool {
        self.me.closed.load(Ordering::Acquire)
    }
}

impl Subscriber {
    /// HELLO switched the connection's protocol.
    pub fn set_resp3(&self, resp3: bool) {
        self.resp3.store(resp3, Ordering::Relaxed);
    }

    pub fn is_resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    /// Resolves once the subscriber is closed for its output limit.
    pub async fn closed(&self) {
        while !self.closed.load(Ordering::Acquire) {
            self.closing.notified().await;
        }
    }
}

/// The connection's message queue (Pub/Sub messages, MONITOR lines, tracking invalidations),
/// created on first use and made reachable by client id (a tracking client's REDIRECT).
pub fn queue_of(conn: &mut ConnState) -> &mut Subscriptions {
    if conn.pubsub.is_none() {
        let subs = Box::new(Subscriptions::new(conn.resp3));
        let _ = subs.me.owner.set(Arc::downgrade(&conn.handle));
        *conn.handle.sink.lock().expect("client sink") = Some(subs.me.clone());
        conn.pubsub = Some(subs);
    }
    conn.pubsub.as_mut().expect("created above")
}

/// Every subscription on the server.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>,
    patterns: RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>,
    shard_channels: RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>,
    /// `client-output-buffer-limit`, read by every message queued (and by the reply path).
    pub limits: OutputLimits,
}

/// One element of a Pub/Sub frame.
enum Part<'a> {
    Bulk(&'a [u8]),
    NullBulk,
    Int(usize),
}

/// A Pub/Sub frame: an array in RESP2, a push in RESP3.
fn frame(resp3: bool, kind: &str, parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(if resp3 { b'>' } else { b'*' });
    out.extend_from_slice(format!("{}\r\n", parts.len() + 1).as_bytes());
    bulk(&mut out, kind.as_bytes());
    for p in parts {
        match p {
            Part::Bulk(b) => bulk(&mut out, b),
            Part::NullBulk if resp3 => out.extend_from_slice(b"_\r\n"),
            Part::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Part::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        }
    }
    out
}

/// A (un)subscription's confirmation: what, the name (None: a null), the count after it.
fn confirmation(resp3: bool, what: &str, name: Option<&[u8]>, count: usize) -> Vec<u8> {
    let name = name.map_or(Part::NullBulk, Part::Bulk);
    frame(resp3, what, &[name, Part::Int(count)])
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

impl PubSub {
    fn map(&self, kind: Kind) -> &RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// Channels, or shard channels.
    fn channel_map(&self, shard: bool) -> &RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>> {
        self.map(if shard { Kind::Shard } else { Kind::Channel })
    }

    /// (P|S)SUBSCRIBE: subscribes the connection (its queue, [`queue_of`]) to each name; the
    /// confirmations, encoded.
    pub fn subscribe(
        &self,
        s: &mut Subscriptions,
        resp3: bool,
        kind: Kind,
        names: &[Bytes],
    ) -> Vec<u8> {
        s.me.resp3.store(resp3, Ordering::Relaxed);
        let mut out = Vec::new();
        for name in names {
            if s.set(kind).insert(name.clone()) {
                let mut map = self.map(kind).write().expect("pubsub registry");
                map.entry(name.clone()).or_default().push(s.me.clone());
            }
            let count = s.count(kind);
            out.extend(confirmation(
                resp3,
                kind.subscribe_name(),
                Some(name),
                count,
            ));
        }
        s.note_mode();
        out
    }

    /// (P|S)UNSUBSCRIBE: the names given, or every one of this kind; the confirmations.
    pub fn unsubscribe(
        &self,
        subs: &mut Option<Box<Subscriptions>>,
        resp3: bool,
        kind: Kind,
        names: &[Bytes],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(s) = subs.as_mut() else {
            // Never subscribed: each name is confirmed with a count of 0; no name, with a null.
            if names.is_empty() {
                return confirmation(resp3, kind.unsubscribe_name(), None, 0);
            }
            return names
                .iter()
                .flat_map(|n| confirmation(resp3, kind.unsubscribe_name(), Some(n), 0))
                .collect();
        };
        let names: Vec<Bytes> = if names.is_empty() {
            s.set(kind).iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            let count = s.count(kind);
            return confirmation(resp3, kind.unsubscribe_name(), None, count);
        }
        for name in &names {
            if s.set(kind).remove(name) {
                self.forget(kind, name, &s.me);
            }
            let count = s.count(kind);
            out.extend(confirmation(
                resp3,
                kind.unsubscribe_name(),
                Some(name),
                count,
            ));
        }
        s.note_mode();
        out
    }

    fn forget(&self, kind: Kind, name: &Bytes, me: &Arc<Subscriber>) {
        let mut map = self.map(kind).write().expect("pubsub registry");
        if let Some(list) = map.get_mut(name) {
            list.retain(|x| !Arc::ptr_eq(x, me));
            if list.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Drops every subscription of a connection (RESET, disconnection), and its queue.
    pub fn leave(&self, subs: &mut Option<Box<Subscriptions>>) {
        let Some(mut s) = subs.take() else { return };
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(s.set(kind)) {
                self.forget(kind, &name, &s.me);
            }
        }
    }

    /// PUBLISH / SPUBLISH: queues the message for every subscriber; how many received it.
    /// `clients`: where what is queued counts toward each subscriber's memory, with
    /// `maxmemory-clients` on (see [`crate::server_state::Server::client_memory`]).
    pub fn publish(
        &self,
        shard: bool,
        channel: &Bytes,
        message: &Bytes,
        clients: Option<(&crate::clients::Registry, u64)>,
    ) -> usize {
        let mut encoded: [Option<Bytes>; 2] = [None, None];
        let kind = if shard { "smessage" } else { "message" };
        let mut receivers = 0;
        let send = |sub: &Arc<Subscriber>,
                    encoded: &mut [Option<Bytes>; 2],
                    build: &dyn Fn(bool) -> Vec<u8>| {
            let resp3 = sub.resp3.load(Ordering::Relaxed);
            let f = encoded[resp3 as usize].get_or_insert_with(|| Bytes::from(build(resp3)));
            if sub.offer(f, &self.limits) {
                if let Some((clients, limit)) = clients {
                    clients.count_queued(sub, limit);
                }
            }
        };
        let map = self.channel_map(shard);
        if let Some(list) = map.read().expect("pubsub registry").get(channel) {
            for sub in list {
                send(sub, &mut encoded, &|resp3| {
                    frame(resp3, kind, &[Part::Bulk(channel), Part::Bulk(message)])
                });
                receivers += 1;
            }
        }
        if shard {
            return receivers;
        }
        for (pattern, list) in self.patterns.read().expect("pubsub registry").iter() {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            let mut by_pattern: [Option<Bytes>; 2] = [None, None];
            for sub in list {
                send(sub, &mut by_pattern, &|resp3| {
                    frame(
                        resp3,
                        "pmessage",
                        &[
                            Part::Bulk(pattern),
                            Part::Bulk(channel),
                            Part::Bulk(message),
                        ],
                    )
                });
                receivers += 1;
            }
        }
        receivers
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern` (all without one).
    /// What one subscriber is subscribed to: (channels and shard channels, patterns). Scans
    /// every channel: for ACL changes, not for the request path.
    pub fn subscribed_by(&self, sub: &Arc<Subscriber>) -> (Vec<Bytes>, Vec<Bytes>) {
        let of = |map: &RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>| -> Vec<Bytes> {
            map.read()
                .expect("pubsub lock")
                .iter()
                .filter(|(_, subs)| subs.iter().any(|s| Arc::ptr_eq(s, sub)))
                .map(|(name, _)| name.clone())
                .collect()
        };
        let mut channels = of(&self.channels);
        channels.extend(of(&self.shard_channels));
        (channels, of(&self.patterns))
    }

    pub fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let map = self.channel_map(shard);
        map.read()
            .expect("pubsub registry")
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of one channel.
    pub fn subscribers(&self, shard: bool, channel: &[u8]) -> usize {
        let map = self.channel_map(shard);
        map.read()
            .expect("pubsub registry")
            .get(channel)
            .map_or(0, Vec::len)
    }

    /// Channels (or shard channels) with a subscriber (INFO's pubsub_channels and
    /// pubsubshard_channels, as Redis 7.0 names it).
    pub fn channel_count(&self, shard: bool) -> usize {
        self.channel_map(shard)
            .read()
            .expect("pubsub registry")
            .len()
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed to.
    pub fn patterns(&self) -> usize {
        self.patterns.read().expect("pubsub registry").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_soft_limit_closes_a_subscriber_once_it_has_lasted_its_seconds() {
        for (seconds, closed) in [("0", true), ("60", false)] {
            let ps = PubSub::default();
            ps.limits.refresh(&format!("pubsub 0 100 {seconds}"));
            let mut s = Some(Box::new(Subscriptions::new(false)));
            ps.subscribe(s.as_mut().unwrap(), false, Kind::Channel, &[b("c")]);
            for _ in 0..5 {
                ps.publish(
                    false,
                    &b("c"),
                    &b("0123456789012345678901234567890123456789"),
                    None,
                );
            }
            assert_eq!(s.as_ref().unwrap().is_closed(), closed, "{seconds} s");
        }
    }

    #[test]
    fn frames_are_redis_s() {
        assert_eq!(
            frame(false, "subscribe", &[Part::Bulk(b"ch"), Part::Int(1)]),
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        );
        assert_eq!(
            frame(true, "unsubscribe", &[Part::NullBulk, Part::Int(0)]),
            b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
    }

    #[test]
    fn publish_reaches_channel_then_pattern_subscribers_and_respects_the_hard_limit() {
        let ps = PubSub::default();
        ps.limits.refresh("normal 0 0 0 pubsub 100 0 0");
        let mut a = Some(Box::new(Subscriptions::new(false)));
        let mut p = Some(Box::new(Subscriptions::new(true)));
        ps.subscribe(a.as_mut().unwrap(), false, Kind::Channel, &[b("news")]);
        ps.subscribe(p.as_mut().unwrap(), true, Kind::Pattern, &[b("n*")]);
        assert_eq!(ps.publish(false, &b("news"), &b("hi"), None), 2);
        assert_eq!(ps.publish(false, &b("other"), &b("hi"), None), 0);
        let mut out = Vec::new();
        let first = a.as_mut().unwrap().rx.try_recv().unwrap();
        let taken = a.as_mut().unwrap().drain_into(first, &mut out, 1 << 20);
        assert_eq!(taken, out.len());
        assert!(!a.as_ref().unwrap().is_closed());
        assert_eq!(out, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        // The pattern subscriber does not read: past 100 bytes it is closed.
        for _ in 0..10 {
            ps.publish(false, &b("news"), &b("0123456789"), None);
        }
        assert!(p.as_ref().unwrap().me.closed.load(Ordering::Acquire));
        assert!(p.as_ref().unwrap().me.queued.load(Ordering::Acquire) <= 100);
        ps.leave(&mut p);
        ps.leave(&mut a);
        assert_eq!(ps.channels(false, None), Vec::<Bytes>::new());
        assert_eq!(ps.patterns(), 0);
    }
}
