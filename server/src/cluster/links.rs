//! The cluster bus's connections and its one task: a listener on `cluster-port` (0: port +
//! 10000) for other nodes' links, an outbound link to every known node, and a loop that
//! applies each incoming message ([`super::gossip::process`]) and runs the 100 ms cron
//! (pings, failure detection, elections) — all on a thread of its own, so a server's
//! requests never wait on the bus. What the bus decides about replication (follow a primary,
//! become one, hold writes for a manual failover) is carried out here, outside the state's lock.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::bus::{self, flag};
use super::failover;
use super::gossip::{self, Ctx, Incoming, Rng};
use super::Link;
use crate::replication::replica::{self, PrimaryAddr};
use crate::server_state::{unix_ms, Server};

/// How often the cron runs (Redis's `clusterCron` runs 10 times a second).
const TICK: Duration = Duration::from_millis(100);

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

enum Event {
    Frame {
        id: u64,
        inbound: bool,
        tx: UnboundedSender<Vec<u8>>,
        /// Ends an inbound link's connection (DEBUG CLUSTERLINK KILL FROM).
        abort: Option<tokio::task::AbortHandle>,
        peer_ip: String,
        local_ip: String,
        bytes: Vec<u8>,
    },
    Closed {
        id: u64,
    },
}

/// Binds the bus port next to the client port at `ip` and starts the bus thread. An error
/// (port taken) stops the server, as in Redis.
pub fn start(server: Arc<Server>, ip: IpAddr) -> std::io::Result<()> {
    let port = {
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        let port = cfg.get_i64("port");
        match cfg.get_i64("cluster-port") {
            0 if port > 55535 => {
                return Err(std::io::Error::other("Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less."));
            }
            0 => port as u16 + 10000,
            p => p as u16,
        }
    };
    let listener = std::net::TcpListener::bind((ip, port))?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("cluster-bus".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cluster bus runtime");
            runtime.block_on(run(server, listener));
        })?;
    Ok(())
}

async fn run(server: Arc<Server>, listener: std::net::TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("bus listener");
    let (events_tx, mut events) = unbounded_channel();
    let accepting = events_tx.clone();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory, most likely: retrying at once would spin.
                    tracing::warn!("Cluster bus accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = unbounded_channel();
            // The connection learns its own abort handle, to pass on with its frames.
            let (own, handle) = tokio::sync::oneshot::channel();
            let events = accepting.clone();
            let task = tokio::spawn(async move {
                let abort = handle.await.ok();
                connection(stream, id, Some(abort), tx, rx, events).await
            });
            let _ = own.send(task.abort_handle());
        }
    });
    let mut bus = Bus {
        server,
        rng: Rng::new(),
        iteration: 0,
        following: false,
        holding_writes: false,
        events: events_tx,
        blocked_routes: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            Some(event) = events.recv() => bus.handle(event),
            _ = tick.tick() => bus.cron(),
        }
    }
}

/// One link's connection: frames read are sent to the bus loop, frames queued are written.
/// Ends when either side fails, telling the loop. `inbound`: for a link another node opened,
/// its own abort handle (passed on with its frames); None for this node's own link.
async fn connection(
    stream: TcpStream,
    id: u64,
    inbound: Option<Option<tokio::task::AbortHandle>>,
    tx: UnboundedSender<Vec<u8>>,
    mut rx: UnboundedReceiver<Vec<u8>>,
    events: UnboundedSender<Event>,
) {
    let ip = |a: std::io::Result<std::net::SocketAddr>| {
        a.map(|a| match a.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.to_string(), |v4| v4.to_string()),
            v4 => v4.to_string(),
        })
        .unwrap_or_default()
    };
    let (peer_ip, local_ip) = (ip(stream.peer_addr()), ip(stream.local_addr()));
    let (mut r, mut w) = stream.into_split();
    let reading = async {
        loop {
            let mut head = [0u8; 8];
            r.read_exact(&mut head).await?;
            let Some(len) = bus::frame_len(&head) else {
                return Ok::<(), std::io::Error>(());
            };
            let mut bytes = vec![0u8; len];
            bytes[..8].copy_from_slice(&head);
            r.read_exact(&mut bytes[8..]).await?;
            let frame = Event::Frame {
                id,
                inbound: inbound.is_some(),
                tx: tx.clone(),
                abort: inbound.clone().flatten(),
                peer_ip: peer_ip.clone(),
                local_ip: local_ip.clone(),
                bytes,
            };
            if events.send(frame).is_err() {
                return Ok(());
            }
        }
    };
    let writing = async {
        while let Some(frame) = rx.recv().await {
            w.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        _ = reading => {}
        _ = writing => {}
    }
    let _ = events.send(Event::Closed { id });
}

impl Ctx {
    /// The clock, the settings the bus acts on, and this node's replication offset.
    pub fn of(server: &Server) -> Ctx {
        let upstream = &server.replication.upstream;
        let status = upstream.status();
        let since = if upstream.link_up() {
            status.last_io
        } else {
            status.down_since
        };
        let data_age = since.map_or(u64::MAX, |t| t.elapsed().as_millis() as u64);
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        Ctx {
            now: unix_ms(),
            node_timeout: cfg.get_i64("cluster-node-timeout").max(1) as u64,
            repl_offset: server.replication.history().offset(),
            allow_replica_migration: cfg.get_bool("cluster-allow-replica-migration"),
            no_failover: cfg.get_bool("cluster-replica-no-failover"),
            data_age,
            validity_factor: cfg.get_i64("cluster-replica-validity-factor").max(0) as u64,
            repl_ping_period: cfg.get_i64("repl-ping-replica-period").max(1) as u64 * 1000,
        }
    }
}

/// DEBUG CLUSTERLINK KILL TO|FROM|ALL node-id: closes this node's link to that node (the
/// cron opens a new one), the node's link to this one (the node reconnects), or both, as
/// Redis's `freeClusterLink`. Err: Redis's message.
pub fn kill(server: &Server, direction: &[u8], node: &[u8]) -> Result<(), String> {
    let mut st = server.cluster.write();
    let Some(i) = st.peer(node) else {
        return Err(format!("Unknown node {}", String::from_utf8_lossy(node)));
    };
    let peer = &mut st.peers[i];
    match direction.to_ascii_lowercase().as_slice() {
        b"to" => peer.link = None,
        b"from" => peer.inbound = None,
        b"all" => (peer.link, peer.inbound) = (None, None),
        _ => {
            return Err(format!(
                "Unknown direction {}",
                String::from_utf8_lossy(direction)
            ))
        }
    }
    Ok(())
}

/// A PONG to every node now (Redis's `clusterBroadcastPong`), from a command that changed this
/// node's configuration (a slot imported by CLUSTER SETSLOT NODE).
pub fn broadcast_pong(server: &Server) {
    let ctx = Ctx::of(server);
    let mut st = server.cluster.write();
    gossip::broadcast_pong(&mut st, &ctx, &mut Rng::new());
}

/// PUBLISH in cluster mode reaches every node's subscribers through the bus (instead of the
/// replication stream); SPUBLISH the nodes of this node's shard (its primary and replicas).
pub fn publish(server: &Server, shard: bool, channel: &[u8], message: &[u8]) {
    let ctx = Ctx::of(server);
    let mut st = server.cluster.write();
    let kind = if shard {
        bus::kind::PUBLISHSHARD
    } else {
        bus::kind::PUBLISH
    };
    let frame = bus::encode(&bus::Message {
        header: gossip::header(&st, kind, &ctx),
        body: bus::Body::Publish {
            channel: channel.to_vec(),
            message: message.to_vec(),
        },
    });
    let master = st.node_id(st.my_master()).to_string();
    for i in 0..st.peers.len() {
        let p = &st.peers[i];
        let same_shard = p.id == master || p.primary.as_deref() == Some(master.as_str());
        if !p.has(flag::HANDSHAKE) && (!shard || same_shard) {
            st.send(i, frame.clone());
        }
    }
}

struct Bus {
    server: Arc<Server>,
    rng: Rng,
    iteration: u64,
    /// The bus made this node a replica (and so may promote it).
    following: bool,
    /// Writes are held for a replica's manual failover.
    holding_writes: bool,
    events: UnboundedSender<Event>,
    /// [`super::blocked_clients_fingerprint`] at the last tick with clients blocked.
    blocked_routes: u64,
}

impl Bus {
    fn handle(&mut self, event: Event) {
        let ctx = Ctx::of(&self.server);
        let cluster = &self.server.cluster;
        let mut publish = None;
        let changed = {
            let mut st = cluster.write();
            match event {
                Event::Closed { id } => {
                    for p in st.peers.iter_mut() {
                        if p.link.as_ref().is_some_and(|l| l.id == id) {
                            p.link = None;
                        }
                        if p.inbound.as_ref().is_some_and(|l| l.id == id) {
                            p.inbound = None;
                        }
                    }
                    false
                }
                Event::Frame {
                    id,
                    inbound,
                    tx,
                    abort,
                    peer_ip,
                    local_ip,
                    bytes,
                } => {
                    let msg = match bus::decode(&bytes) {
                        Ok(msg) => msg,
                        Err(e) => {
                            tracing::warn!("Received an invalid cluster bus message: {e}");
                            return;
                        }
                    };
                    let link = Incoming {
                        id,
                        inbound,
                        tx: &tx,
                        abort,
                        peer_ip,
                        local_ip,
                    };
                    let out = gossip::process(&mut st, &link, msg, &ctx, &mut self.rng);
                    st.update_state();
                    self.server.cluster.log_state_change(&st);
                    publish = out.publish;
                    out.save
                }
            }
        };
        // The role before the file, as in `cron`.
        self.reconcile(&ctx);
        if changed {
            self.save();
        }
        if let Some((shard, channel, message)) = publish {
            self.server.pubsub.publish(
                shard,
                &channel.into(),
                &message.into(),
                self.server.client_memory(),
            );
        }
    }

    fn save(&self) {
        if let Err(e) = self.server.cluster.save() {
            tracing::warn!("cannot write the cluster config file: {e}");
        }
    }

    fn cron(&mut self) {
        self.iteration += 1;
        let ctx = Ctx::of(&self.server);
        let (announce, migration_barrier) = {
            let cfg = self.server.config.read().unwrap_or_else(|p| p.into_inner());
            let barrier = cfg.get_i64("cluster-migration-barrier").max(0) as usize;
            (super::announce(&cfg), barrier)
        };
        let changed = {
            let mut st = self.server.cluster.write();
            if !announce.ip.is_empty() {
                st.my_ip = announce.ip.clone();
            }
            st.announce = announce;
            let known = st.peers.len();
            gossip::cron(&mut st, &ctx, self.iteration, &mut self.rng);
            self.connect(&mut st, &ctx);
            let promoted = failover::handle_replica(&mut st, &ctx, &mut self.rng)
                | failover::migrate_if_orphans(&mut st, &ctx, migration_barrier);
            st.update_state();
            self.server.cluster.log_state_change(&st);
            promoted || st.peers.len() != known
        };
        // The role first, then the file (as Redis's clusterFailoverReplaceYourMaster unsets
        // the master before it saves): until `reconcile` promotes it, a replica that won its
        // election owns the slots but still refuses writes as a replica (READONLY).
        self.reconcile(&ctx);
        if changed {
            self.save();
        }
        self.recheck_blocked_clients();
    }

    /// Clients blocked on a key (BLPOP ...) whose slot another node serves now, or while the
    /// cluster is down, are ended with MOVED or CLUSTERDOWN, as Redis's clients' cron does:
    /// when what decides it changed since the last tick, every blocked client checks its key.
    fn recheck_blocked_clients(&mut self) {
        let blocking = &self.server.blocking;
        if blocking
            .blocked_clients
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            return;
        }
        let full_coverage = self.server.cluster.require_full_coverage();
        let routes = super::blocked_clients_fingerprint(&self.server.cluster.read(), full_coverage);
        if std::mem::replace(&mut self.blocked_routes, routes) != routes {
            self.server.clients.recheck_blocked_routes();
        }
    }

    /// An outbound link to every node that has none (Redis's cron does the same), starting
    /// with a PING, or a MEET to a node met by CLUSTER MEET.
    fn connect(&self, st: &mut super::State, ctx: &Ctx) {
        for i in 0..st.peers.len() {
            let p = &st.peers[i];
            if p.link.is_some() || p.has(flag::NOADDR) || p.ip.is_empty() {
                continue;
            }
            let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = unbounded_channel();
            let addr = format!("{}:{}", p.ip, p.cport);
            let (events, frames) = (self.events.clone(), tx.clone());
            let wait = Duration::from_millis(ctx.node_timeout.max(100));
            let task = tokio::spawn(async move {
                match tokio::time::timeout(wait, TcpStream::connect(&addr)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        connection(stream, id, None, frames, rx, events).await;
                    }
                    _ => {
                        let _ = events.send(Event::Closed { id });
                    }
                }
            });
            st.peers[i].link = Some(Link {
                id,
                tx,
                created: ctx.now,
                abort: Some(task.abort_handle()),
            });
            // A PING in flight before is kept: failure detection counts from it.
            let in_flight = st.peers[i].ping_sent;
            let mut rng = Rng::new();
            gossip::send_ping(st, i, ctx, &mut rng);
            if in_flight != 0 {
                st.peers[i].ping_sent = in_flight;
            }
            st.peers[i].flags &= !flag::MEET;
        }
    }

    /// Carries out what the state says of replication: follow this node's primary, become a
    /// primary when an election (or a takeover) made it one, hold writes while a replica
    /// takes over by CLUSTER FAILOVER.
    fn reconcile(&mut self, ctx: &Ctx) {
        let (want, hold) = {
            let st = self.server.cluster.read();
            let want = st.primary.as_ref().map(|_| {
                st.my_primary()
                    .map(|m| &st.peers[m])
                    .filter(|p| !p.ip.is_empty() && !p.has(flag::NOADDR))
                    .map(|p| PrimaryAddr {
                        host: p.ip.clone(),
                        port: p.port,
                    })
            });
            (want, st.failover.paused_for_replica(ctx.now))
        };
        match want {
            Some(Some(addr)) => {
                if replica::follow(&self.server, addr.clone()) {
                    tracing::info!("Cluster: replicating {}:{}", addr.host, addr.port);
                }
                self.following = true;
            }
            Some(None) => {}
            None => {
                if self.following {
                    self.following = false;
                    replica::promote(&self.server);
                }
            }
        }
        if hold != self.holding_writes {
            self.holding_writes = hold;
            self.server.pause.hold_writes_for_failover(hold);
        }
    }
}
