//! The replica's side of Redis's replication protocol (REPLICAOF host port): one link task,
//! started with the server on worker 0, follows whichever primary REPLICAOF names.
//!
//! The link runs as Redis's replica runs it: connect; PING; `AUTH [masteruser] masterauth`
//! when set; `REPLCONF listening-port` (`replica-announce-port`, else the port) and
//! `ip-address` (`replica-announce-ip`, when set); `REPLCONF capa eof capa psync2`; then
//! `PSYNC <id> <offset+1>` with this server's history once it has synced from a primary (a
//! reconnect, or a failover to a fellow replica) or started from an RDB file that recorded
//! its primary's stream (`resume_saved`), else `PSYNC ? -1`.
//! - `+FULLRESYNC <id> <offset>` is followed by the RDB: `$<len>` and that many bytes, or
//!   diskless `$EOF:<mark>` ... `<mark>`, after any newlines the primary sends as keep-alives
//!   while it prepares it. Every database is emptied, the RDB loaded (keys and function
//!   libraries), and the history restarts at the primary's id and offset.
//! - `+CONTINUE [<id>]` keeps the data and the history; a new id shifts the old one to
//!   `replid2`, as Redis's replica does.
//! - Anything else (an error, a closed link) is retried a second later.
//!
//! Then the stream: the primary's commands, decoded with the `redis-protocol` crate, run through
//! the normal execution path as the primary's client (replies kept only to log failures;
//! `ConnState::primary` lets them past read-only mode), and exactly their bytes are fed into
//! this server's history, so its offset stays its primary's and its own replicas see the same
//! stream. `REPLCONF GETACK` is answered with `REPLCONF ACK <offset>`, which also goes out
//! every second.
//!
//! A REPLICAOF that changes the primary bumps `Upstream::generation`; the link checks it at
//! every step, so nothing of an old primary's stream is applied or fed after the change.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::connection_loop::{register_client, release_client, Registered};
use crate::dispatch::Pipeline;
use crate::persist::rdb_file;
use crate::persist::snapshot::{self, Logging};
use crate::server_state::{random_hex, Server};
use crate::session::ConnState;

/// A client's write on a read-only replica.
pub const READONLY: &str = "READONLY You can't write against a read only replica.";

/// How long a failed attempt waits before the next, as Redis's replication cron.
const RETRY: Duration = Duration::from_secs(1);

/// How often the replica acknowledges its offset unasked.
const ACK_PERIOD: Duration = Duration::from_secs(1);

/// The primary REPLICAOF names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryAddr {
    pub host: String,
    pub port: u16,
}

/// Where the link stands, as ROLE names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to connect (after a failure: the next attempt).
    Connect,
    Connecting,
    /// PING, AUTH, REPLCONF, PSYNC.
    Handshake,
    /// Receiving and loading the RDB.
    Sync,
    Connected,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// What INFO replication and ROLE report of the link.
#[derive(Clone, Copy, Debug)]
pub struct LinkStatus {
    pub state: LinkState,
    /// When the primary last sent something (None: not connected).
    pub last_io: Option<Instant>,
    /// When the link last went down (None: it was never up).
    pub down_since: Option<Instant>,
    /// Bytes received and not yet applied (INFO's `slave_read_repl_offset` beyond the offset).
    pub unapplied: u64,
    /// During a full sync: the RDB's size (-1 for a diskless one, whose size is known at its
    /// end) and the bytes of it read so far.
    pub sync_size: i64,
    pub sync_read: u64,
}

/// This server's primary, if it has one, and the state of the link to it.
#[derive(Debug)]
pub struct Upstream {
    target: watch::Sender<Option<PrimaryAddr>>,
    /// Bumped by every change of primary (under the history's lock, which feeding also takes).
    generation: AtomicU64,
    status: Mutex<LinkStatus>,
    /// The link is connected and past its sync: the data is not stale.
    link_up: AtomicBool,
    /// The history came from a primary, so a PSYNC with it may continue.
    has_history: AtomicBool,
    /// A full sync of the same history is on its way with `repl-diskless-load swapdb`: the
    /// old data is served meanwhile, as Redis's async loading serves it.
    async_loading: AtomicBool,
    /// The database the primary's stream last selected: a partial resync continues in it, as
    /// the stream does (Redis keeps it in its cached master client).
    stream_db: AtomicUsize,
    /// A chunk of the stream is between its first command's run and its bytes' feed into the
    /// history: the data is ahead of the offset (see [`Upstream::consistent_offset`]).
    applying: AtomicBool,
    /// The link starts no new chunk while set (a SHUTDOWN waits for a chunk boundary to save
    /// the data with the offset it matches).
    hold_applying: AtomicBool,
}

impl Default for Upstream {
    fn default() -> Upstream {
        Upstream {
            target: watch::Sender::new(None),
            generation: AtomicU64::new(0),
            status: Mutex::new(LinkStatus {
                state: LinkState::Connect,
                last_io: None,
                down_since: None,
                unapplied: 0,
                sync_size: 0,
                sync_read: 0,
            }),
            link_up: AtomicBool::new(false),
            has_history: AtomicBool::new(false),
            async_loading: AtomicBool::new(false),
            stream_db: AtomicUsize::new(0),
            applying: AtomicBool::new(false),
            hold_applying: AtomicBool::new(false),
        }
    }
}

impl Upstream {
    /// The primary REPLICAOF named (None: this server is a primary).
    pub fn target(&self) -> Option<PrimaryAddr> {
        self.target.borrow().clone()
    }

    pub fn status(&self) -> LinkStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Relaxed)
    }

    /// A full sync's RDB is being loaded while the old data is served (see `diskless_load`).
    pub fn async_loading(&self) -> bool {
        self.async_loading.load(Ordering::Acquire)
    }

    /// `replica-read-only`.
    pub fn read_only(&self, server: &Server) -> bool {
        server
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_bool("replica-read-only")
    }

    /// Whether clients may read: the link is up, or `replica-serve-stale-data` allows stale data.
    pub fn serves_stale(&self, server: &Server) -> bool {
        self.link_up()
            || server
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get_bool("replica-serve-stale-data")
    }

    /// What an RDB file saved now records of this replica's stream (`repl-stream-db`, and the
    /// history's id and offset, read by the caller): the database its primary's stream has
    /// selected, when the data is exactly the stream up to the history's offset: the link is
    /// up (the data is its primary's, not a sync's half) and between chunks. Called with every
    /// shard locked: a chunk that starts after this check cannot change the data before the
    /// locks are released, nor its bytes move the offset before it ran.
    pub fn consistent_offset(&self) -> Option<usize> {
        (self.link_up() && !self.applying.load(Ordering::SeqCst))
            .then(|| self.stream_db.load(Ordering::Relaxed))
    }

    /// Whether the link is in the middle of a chunk (a SHUTDOWN that saves waits for its end).
    pub fn mid_chunk(&self) -> bool {
        self.link_up() && self.applying.load(Ordering::SeqCst)
    }

    /// Stops the link from starting new chunks (true) or lets it go on (false). Once set, a
    /// chunk either was marked already ([`Upstream::mid_chunk`]) or backs off without
    /// touching the data; a moment after it was set, the mark is settled.
    pub fn hold_applying(&self, hold: bool) {
        self.hold_applying.store(hold, Ordering::SeqCst);
    }

    fn set_status(&self, change: impl FnOnce(&mut LinkStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }
}

/// REPLICAOF host port: follows that primary from now on (the link task connects within a
/// second). False when it already follows it (the host compared without case, as Redis).
pub fn follow(server: &Server, addr: PrimaryAddr) -> bool {
    let upstream = &server.replication.upstream;
    let same = |t: &PrimaryAddr| t.host.eq_ignore_ascii_case(&addr.host) && t.port == addr.port;
    let target = upstream.target();
    if target.as_ref().is_some_and(same) {
        return false;
    }
    if target.is_none() {
        // A primary turned replica asks to continue its own history, as Redis's
        // replicationCacheMasterUsingMyself: a promoted fellow replica (or FAILOVER's target)
        // holds it as its second history and answers +CONTINUE.
        upstream.has_history.store(true, Ordering::Relaxed);
    }
    switch_to(server, addr);
    true
}

/// Follows `addr` from now on: the link task drops what it was doing and connects.
fn switch_to(server: &Server, addr: PrimaryAddr) {
    let upstream = &server.replication.upstream;
    // As Redis: a client blocked on a key here would otherwise be served by the primary's
    // writes and take them from the replica's copy.
    server
        .clients
        .unblock_all(crate::blocked_clients::Unblock::RoleChange);
    info!("REPLICAOF {}:{} enabled", addr.host, addr.port);
    {
        let _history = server.replication.history();
        upstream.generation.fetch_add(1, Ordering::AcqRel);
    }
    upstream.link_up.store(false, Ordering::Relaxed);
    upstream.set_status(|s| {
        s.state = LinkState::Connect;
        s.last_io = None;
        s.down_since = None;
        s.unapplied = 0;
    });
    server.replication.set_replica(true);
    show_in_config(server, &format!("{} {}", addr.host, addr.port));
    apply_oom_score(server);
    upstream.target.send_replace(Some(addr));
    // As Redis: this server's own replicas resynchronize, to learn of the change.
    server.clients.kill_where(0, |c| c.replica || c.master);
}

/// REPLICAOF NO ONE: keeps the data, closes the link, and starts a new history whose previous
/// one (the primary's, up to here) stays continuable for replicas that followed the same
/// primary (PSYNC2). Nothing when this server is already a primary.
pub fn promote(server: &Server) {
    let upstream = &server.replication.upstream;
    if upstream.target().is_none() {
        return;
    }
    {
        let mut history = server.replication.history();
        upstream.generation.fetch_add(1, Ordering::AcqRel);
        history.shift_replid(random_hex(40));
    }
    upstream.link_up.store(false, Ordering::Relaxed);
    upstream.target.send_replace(None);
    // From here on the stream carries this server's own writes (its replicas continue
    // under the new id): the tap goes on while records are still ignored as a replica's, and
    // the next one selects its database, the primary's stream having left another selected.
    if server.replication.history().backlog_active() {
        super::primary::tap_local_writes(server);
    }
    server.replication.reselect();
    server.replication.set_replica(false);
    show_in_config(server, "no one");
    apply_oom_score(server);
    info!("MASTER MODE enabled (REPLICAOF NO ONE)");
    // As Redis: replicas reconnect and continue under the new id.
    server.clients.kill_where(0, |c| c.replica || c.master);
}

/// The process's OOM score for its new role (`oom-score-adj-values`: a replica's second).
fn apply_oom_score(server: &Server) {
    let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
    let _ = crate::oom_score::apply(&cfg, server.replication.is_replica());
}

/// Connects to `host:port`, from `source` when `bind-source-addr` names one (as Redis binds its
/// outgoing links there), trying each address the host resolves to.
async fn connect_from(
    source: Option<std::net::IpAddr>,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = std::io::Error::other("the host resolves to no address");
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// CONFIG GET replicaof (and CONFIG REWRITE) show the primary followed now, as Redis's do.
fn show_in_config(server: &Server, value: &str) {
    let mut cfg = server.config.write().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = cfg.set("replicaof", value, true) {
        warn!("replicaof {value:?} not kept in the configuration: {e:?}");
    }
}

/// Marks a chunk of the stream as being applied for as long as it lives.
struct Applying<'a>(&'a Upstream);

impl<'a> Applying<'a> {
    fn start(upstream: &'a Upstream) -> Applying<'a> {
        upstream.applying.store(true, Ordering::SeqCst);
        Applying(upstream)
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.0.applying.store(false, Ordering::SeqCst);
    }
}

/// A replica started from an RDB file that recorded its primary's stream (`repl-stream-db`,
/// `repl-id`, `repl-offset`, saved between two chunks): the history continues from there, so
/// its first PSYNC asks to continue and a primary that still has the stream answers
/// +CONTINUE (as Redis's replicationCacheMasterUsingMyself after loadDataFromDisk).
pub fn resume_saved(server: &Server, db: usize, replid: String, offset: u64) {
    let upstream = &server.replication.upstream;
    server.replication.history().reset(replid, offset);
    upstream.stream_db.store(db, Ordering::Relaxed);
    upstream.has_history.store(true, Ordering::Relaxed);
}

/// At start, before clients connect: `replicaof` in the configuration makes this server a
/// replica from its first request on.
pub fn follow_configured(server: &Server) {
    let configured = server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get("replicaof")
        .to_string();
    if let Some((host, port)) = configured.split_once(' ') {
        if let Ok(port) = port.parse() {
            let host = host.to_string();
            switch_to(server, PrimaryAddr { host, port });
        }
    }
}

/// The link task: follows the primary REPLICAOF (or `replicaof` in the configuration) names,
/// reconnecting after a failure, until the server stops.
pub async fn run(server: Arc<Server>, me: usize) {
    let upstream = &server.replication.upstream;
    let mut target = upstream.target.subscribe();
    // A replica connects to its primary once its own data is loaded, as Redis's does.
    server.loading.wait_until_done().await;
    loop {
        if server.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        // Read before the target: a REPLICAOF in between makes this generation stale, never
        // the old target current.
        let generation = upstream.generation.load(Ordering::Acquire);
        let Some(addr) = target.borrow_and_update().clone() else {
            if target.changed().await.is_err() {
                return;
            }
            continue;
        };
        let failure = Link::run(&server, me, &addr, generation, &mut target).await;
        if upstream.link_up.swap(false, Ordering::Relaxed) {
            upstream.set_status(|s| s.down_since = Some(Instant::now()));
        }
        upstream.set_status(|s| {
            s.last_io = None;
            s.unapplied = 0;
        });
        match failure {
            Failure::Replaced => continue,
            Failure::Broken(why) => {
                warn!(host = %addr.host, port = addr.port, "replication link: {why}");
                super::failover::link_failed(&server);
                if upstream.is_current(generation) {
                    upstream.set_status(|s| s.state = LinkState::Connect);
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = target.changed() => {}
                }
            }
        }
    }
}

/// Why a link ended.
enum Failure {
    /// REPLICAOF changed the primary (or made this server one).
    Replaced,
    /// The connection, the handshake or the primary's data failed; retried.
    Broken(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Broken(e.to_string())
    }
}

/// One connection to the primary.
struct Link<'a> {
    server: &'a Arc<Server>,
    stream: TcpStream,
    input: BytesMut,
    generation: u64,
    target: &'a mut watch::Receiver<Option<PrimaryAddr>>,
    timeout: Duration,
    /// A transaction received from MULTI on, held until its EXEC (or DISCARD) arrives: it then
    /// runs whole, and its bytes count in the offset only then, as in Redis. Should the link
    /// drop before, the offset excludes it and the primary sends it again.
    transaction: Option<Received>,
}

/// Commands received and their bytes.
#[derive(Default)]
struct Received {
    commands: Vec<Vec<Bytes>>,
    bytes: Vec<Bytes>,
}

impl Received {
    fn push(&mut self, args: Vec<Bytes>, raw: Bytes) {
        self.commands.push(args);
        self.bytes.push(raw);
    }

    fn len(&self) -> u64 {
        self.bytes.iter().map(|b| b.len() as u64).sum()
    }
}

impl<'a> Link<'a> {
    /// Connects, synchronizes and applies the stream until something ends it.
    async fn run(
        server: &'a Arc<Server>,
        me: usize,
        addr: &PrimaryAddr,
        generation: u64,
        target: &'a mut watch::Receiver<Option<PrimaryAddr>>,
    ) -> Failure {
        let upstream = &server.replication.upstream;
        upstream.set_status(|s| s.state = LinkState::Connecting);
        // Redis's wording for the link's steps, here and below: test harnesses (Redis's own)
        // wait for these lines in the log.
        info!("Connecting to MASTER {}:{}", addr.host, addr.port);
        let (timeout, source) = {
            let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
            (
                Duration::from_secs(cfg.get_i64("repl-timeout").max(1) as u64),
                cfg.get("bind-source-addr").parse().ok(),
            )
        };
        let connect = connect_from(source, &addr.host, addr.port);
        let stream = tokio::select! {
            connected = tokio::time::timeout(timeout, connect) => match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Failure::Broken(format!("cannot connect: {e}")),
                Err(_) => return Failure::Broken("timed out connecting".into()),
            },
            _ = target.changed() => return Failure::Replaced,
        };
        let _ = stream.set_nodelay(true);
        info!("MASTER <-> REPLICA sync started");
        let mut link = Link {
            server,
            stream,
            input: BytesMut::with_capacity(64 * 1024),
            generation,
            target,
            timeout,
            transaction: None,
        };
        match link.sync_and_follow(me).await {
            Ok(never) => match never {},
            Err(failure) => failure,
        }
    }

    async fn sync_and_follow(&mut self, me: usize) -> Result<std::convert::Infallible, Failure> {
        let server = self.server;
        let upstream = &server.replication.upstream;
        upstream.set_status(|s| s.state = LinkState::Handshake);
        self.handshake().await?;
        let psync = {
            let history = server.replication.history();
            if upstream.has_history.load(Ordering::Relaxed) {
                (
                    history.replid().to_string(),
                    (history.offset() + 1).to_string(),
                )
            } else {
                ("?".to_string(), "-1".to_string())
            }
        };
        // FAILOVER's hand-over: the primary followed now is to take over from this server.
        let handover = server.replication.failover.in_progress();
        let mut args: Vec<&[u8]> = vec![b"PSYNC", psync.0.as_bytes(), psync.1.as_bytes()];
        if handover {
            args.push(b"FAILOVER");
        }
        self.send(&args).await?;
        // Newlines are the primary's keep-alives until it answers (redis-server sends them
        // while its diskless sync waits for `repl-diskless-sync-delay`).
        let reply = loop {
            let line = self.read_line().await?;
            if !line.is_empty() {
                break line;
            }
        };
        let words: Vec<&str> = reply.split(' ').collect();
        let continued = words[0] == "+CONTINUE";
        if handover {
            let accepted = continued || words[0] == "+FULLRESYNC";
            super::failover::handover_answered(server, accepted);
            if !accepted {
                return Err(Failure::Replaced);
            }
        }
        match words.as_slice() {
            ["+FULLRESYNC", replid, offset] => {
                let offset = offset
                    .parse()
                    .map_err(|_| Failure::Broken(format!("bad PSYNC reply: {reply}")))?;
                info!("Full resync from master: {replid}:{offset}");
                upstream.set_status(|s| s.state = LinkState::Sync);
                let same_history = server.replication.history().replid() == *replid;
                let loading = diskless_load(server)
                    .map(|swapdb| LoadingShown::start(server, same_history && swapdb));
                if loading.is_some() {
                    // Redis's line when its diskless load starts (test harnesses wait for it).
                    info!("MASTER <-> REPLICA sync: Loading DB in memory");
                }
                let framing = self.read_rdb_header().await?;
                let serving = loading.as_ref().is_some_and(|l| l.serves_old_data);
                if loading.is_some() && !serving && holds_nothing(server) {
                    // Nothing to keep should the transfer fail: loaded as it arrives.
                    if let RdbFraming::Len(len) = framing {
                        server.loading.set_total_bytes(len as u64);
                    }
                    let started = Instant::now();
                    empty_dataset(server);
                    let loaded = match self.stream_rdb(framing).await {
                        Ok(loaded) => loaded,
                        Err(e) => {
                            empty_dataset(server);
                            if let Failure::Broken(why) = &e {
                                warn!("Internal error in RDB reading: {why}");
                            }
                            return Err(e);
                        }
                    };
                    self.check_current()?;
                    after_load(server, loaded, started).map_err(Failure::Broken)?;
                } else {
                    let rdb = match self.read_rdb(framing).await {
                        Ok(rdb) => rdb,
                        Err(Failure::Broken(why)) if loading.is_some() => {
                            // Redis, parsing the RDB as it comes, reports a cut transfer as a
                            // short read, in these words (test harnesses look for them).
                            warn!("Internal error in RDB reading: the transfer from the primary broke off ({why}): Unexpected EOF reading RDB file");
                            return Err(Failure::Broken(why));
                        }
                        Err(e) => return Err(e),
                    };
                    self.check_current()?;
                    load_full_sync(server, &rdb, loading.is_none(), !serving)
                        .map_err(Failure::Broken)?;
                }
                let backlog = server
                    .config
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_i64("repl-backlog-size")
                    .max(0) as usize;
                let mut history = server.replication.history();
                self.check_current()?;
                history.reset(replid.to_string(), offset);
                history.enable_backlog(backlog);
                info!(offset, "MASTER <-> REPLICA sync: Finished with success");
            }
            ["+CONTINUE", rest @ ..] => {
                let mut history = server.replication.history();
                self.check_current()?;
                let mut new_id = false;
                if let [replid] = rest {
                    if *replid != history.replid() {
                        history.shift_replid(replid.to_string());
                        new_id = true;
                    }
                }
                info!(
                    offset = history.offset(),
                    "Successful partial resynchronization with master."
                );
                if new_id {
                    drop(history);
                    // As Redis: this server's own replicas reconnect to learn the new id
                    // (and continue with a partial resync).
                    info!("Master replication ID changed to {}", rest[0]);
                    server.clients.kill_where(0, |c| c.replica);
                }
                info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
            }
            _ => return Err(Failure::Broken(format!("PSYNC refused: {reply}"))),
        }
        upstream.has_history.store(true, Ordering::Relaxed);
        self.follow_stream(me, continued).await
    }

    /// PING, AUTH when configured, REPLCONF listening-port and capabilities.
    async fn handshake(&mut self) -> Result<(), Failure> {
        let reply = self.command(&[b"PING"]).await?;
        // As Redis: an error that only says authentication is needed is fine here.
        if reply.starts_with('-')
            && !["-NOAUTH", "-NOPERM", "-ERR operation not permitted"]
                .iter()
                .any(|e| reply.starts_with(e))
        {
            return Err(Failure::Broken(format!("PING answered {reply}")));
        }
        let (user, password, port, ip) = {
            let cfg = self.server.config.read().unwrap_or_else(|p| p.into_inner());
            // The address the primary is to report (to Sentinel, say): announced, else seen.
            let port = match cfg.get_i64("replica-announce-port") {
                0 => cfg.get("port").to_string(),
                announced => announced.to_string(),
            };
            (
                cfg.get("masteruser").to_string(),
                cfg.get("masterauth").to_string(),
                port,
                cfg.get("replica-announce-ip").to_string(),
            )
        };
        if !password.is_empty() {
            let reply = if user.is_empty() {
                self.command(&[b"AUTH", password.as_bytes()]).await?
            } else {
                self.command(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                    .await?
            };
            if reply.starts_with('-') {
                // Redis's wording (test harnesses wait for it).
                return Err(Failure::Broken(format!(
                    "Unable to AUTH to MASTER: {reply}"
                )));
            }
        }
        // Errors are not fatal (an old primary may not know these), as in Redis.
        self.command(&[b"REPLCONF", b"listening-port", port.as_bytes()])
            .await?;
        if !ip.is_empty() {
            self.command(&[b"REPLCONF", b"ip-address", ip.as_bytes()])
                .await?;
        }
        self.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
            .await?;
        Ok(())
    }

    /// The RDB after `+FULLRESYNC`, in either form.
    /// The header of the primary's RDB: how its payload is framed.
    async fn read_rdb_header(&mut self) -> Result<RdbFraming, Failure> {
        // Newlines are the primary's keep-alives while it prepares the RDB.
        let header = loop {
            while self.input.first() == Some(&b'\n') {
                let _ = self.input.split_to(1);
            }
            if !self.input.is_empty() {
                break self.read_line().await?;
            }
            self.read_more().await?;
        };
        let Some(size) = header.strip_prefix('$') else {
            return Err(Failure::Broken(format!(
                "the primary sent {header:?} instead of the RDB"
            )));
        };
        if let Some(mark) = size.strip_prefix("EOF:") {
            if mark.len() != 40 {
                return Err(Failure::Broken("bad diskless EOF mark".into()));
            }
            return Ok(RdbFraming::Mark(mark.as_bytes().to_vec()));
        }
        size.parse()
            .map(RdbFraming::Len)
            .map_err(|_| Failure::Broken(format!("bad RDB length {size:?}")))
    }

    fn sync_progress(&self, size: i64, read: u64) {
        self.server.replication.upstream.set_status(|s| {
            s.sync_size = size;
            s.sync_read = read;
        })
    }

    /// The primary's RDB, whole.
    async fn read_rdb(&mut self, framing: RdbFraming) -> Result<BytesMut, Failure> {
        let started = Instant::now();
        let rdb = match framing {
            RdbFraming::Mark(mark) => {
                // Diskless: the payload ends with the mark (the stream may follow it at once).
                let mut scanned = 0;
                let end = loop {
                    self.sync_progress(-1, self.input.len() as u64);
                    if let Some(at) = memchr::memmem::find(&self.input[scanned..], &mark) {
                        break scanned + at;
                    }
                    scanned = self.input.len().saturating_sub(mark.len() - 1);
                    self.read_more().await?;
                };
                let rdb = self.input.split_to(end);
                let _ = self.input.split_to(mark.len());
                rdb
            }
            RdbFraming::Len(len) => {
                self.input.reserve(len.saturating_sub(self.input.len()));
                while self.input.len() < len {
                    self.sync_progress(len as i64, self.input.len() as u64);
                    self.read_more().await?;
                }
                self.input.split_to(len)
            }
        };
        info!(
            bytes = rdb.len(),
            "MASTER <-> REPLICA sync: RDB received from master in {:.3}s",
            started.elapsed().as_secs_f64()
        );
        Ok(rdb)
    }

    /// Loads the primary's RDB as it arrives, into the (empty) live databases, as Redis's
    /// diskless load parses it from the socket: only the object being received is held, and
    /// a slow load (`key-load-delay`) slows the transfer, as Redis's does. Err: the transfer
    /// broke off or the RDB is unreadable (what was loaded is then emptied again).
    async fn stream_rdb(&mut self, framing: RdbFraming) -> Result<rdb_file::Loaded, Failure> {
        let server = self.server;
        let mut loader = rdb_file::Loader::streaming(server);
        let mut received = 0u64;
        let size = match &framing {
            RdbFraming::Mark(_) => -1,
            RdbFraming::Len(len) => *len as i64,
        };
        // An object cut by the end of what arrived is read again once at least this many
        // bytes are there (twice as many: a large object is not parsed over and over).
        let mut wait_for = 0usize;
        loop {
            let (end, last) = match &framing {
                RdbFraming::Mark(mark) if loader.done() => {
                    if self.input.len() >= mark.len() {
                        if self.input[..mark.len()] != mark[..] {
                            return Err(Failure::Broken(
                                "the RDB's end is not followed by its EOF mark".into(),
                            ));
                        }
                        let _ = self.input.split_to(mark.len());
                        break;
                    }
                    (0, false)
                }
                RdbFraming::Mark(mark) => match memchr::memmem::find(&self.input, mark) {
                    Some(at) => (at, true),
                    None => (self.input.len(), false),
                },
                RdbFraming::Len(_) if loader.done() => break,
                RdbFraming::Len(len) => {
                    let left = *len as u64 - received;
                    let end = self.input.len().min(left as usize);
                    (end, end as u64 == left)
                }
            };
            if !loader.done() && (last || end >= wait_for) {
                let used = loader
                    .feed(server, &self.input[..end], last)
                    .map_err(Failure::Broken)?;
                let _ = self.input.split_to(used);
                received += used as u64;
                if let Some(pause) = loader.take_pause() {
                    // The thread is this worker's event loop: other clients get their turn,
                    // and `key-load-delay` is waited out here rather than slept through.
                    if pause.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(pause).await;
                    }
                    wait_for = 0;
                    continue;
                }
                let rest = end - used;
                wait_for = if rest == 0 { 0 } else { rest.saturating_mul(2) };
                if loader.done() {
                    continue;
                }
            }
            self.sync_progress(size, received + self.input.len() as u64);
            self.read_more().await?;
        }
        loader.finish(server).map_err(Failure::Broken)
    }

    /// Applies the primary's stream, as its client, until the link ends.
    async fn follow_stream(
        &mut self,
        me: usize,
        continued: bool,
    ) -> Result<std::convert::Infallible, Failure> {
        let server = self.server;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.stream);
        let peer = crate::clients::Peer::Tcp(self.stream.peer_addr()?);
        let laddr = crate::clients::Peer::Tcp(self.stream.local_addr()?);
        let mut conn = register_client(server, me, fd, laddr, peer);
        let _registered = Registered {
            server,
            id: conn.id,
        };
        conn.primary = true;
        conn.authenticated = true;
        conn.user = crate::acl::superuser();
        let stream_db = &server.replication.upstream.stream_db;
        if continued {
            conn.db = stream_db.load(Ordering::Relaxed);
        }
        {
            let mut info = conn.handle.info.lock().expect("client info lock");
            info.master = true;
            info.user.clone_from(&conn.user.name);
        }
        let mut pipeline = Pipeline::new(server.threads(), me);
        let result = self.apply_stream(&mut conn, &mut pipeline).await;
        stream_db.store(conn.db, Ordering::Relaxed);
        release_client(server, &mut conn);
        result
    }

    async fn apply_stream(
        &mut self,
        conn: &mut ConnState,
        pipeline: &mut Pipeline,
    ) -> Result<std::convert::Infallible, Failure> {
        let upstream = &self.server.replication.upstream;
        upstream.link_up.store(true, Ordering::Relaxed);
        upstream.set_status(|s| {
            s.state = LinkState::Connected;
            s.last_io = Some(Instant::now());
        });
        info!("replication link up: applying the primary's stream");
        self.send_ack().await?;
        let mut ack = tokio::time::interval(ACK_PERIOD);
        ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.apply_buffered(conn, pipeline).await?;
            tokio::select! {
                read = self.read_some() => read?,
                _ = ack.tick() => self.send_ack().await?,
            }
        }
    }

    /// Runs every complete command received, in order, and feeds their bytes to the history.
    async fn apply_buffered(
        &mut self,
        conn: &mut ConnState,
        pipeline: &mut Pipeline,
    ) -> Result<(), Failure> {
        let mut ready = Received::default();
        loop {
            let (frame, raw) = match decode_bytes_mut(&mut self.input) {
                Ok(Some((frame, _, raw))) => (frame, raw),
                Ok(None) => break,
                Err(e) => {
                    return Err(Failure::Broken(format!(
                        "the primary sent a malformed stream: {e:?}"
                    )))
                }
            };
            let args = command_args(frame).ok_or_else(|| {
                Failure::Broken("the primary sent something other than a command".into())
            })?;
            let is = |word: &[u8]| args[0].eq_ignore_ascii_case(word);
            if let Some(transaction) = self.transaction.as_mut() {
                let ends = is(b"exec") || is(b"discard");
                transaction.push(args, raw);
                if ends {
                    let whole = self.transaction.take().expect("checked above");
                    ready.commands.extend(whole.commands);
                    ready.bytes.extend(whole.bytes);
                }
                continue;
            }
            if is(b"multi") {
                self.transaction
                    .get_or_insert_with(Default::default)
                    .push(args, raw);
                continue;
            }
            if is(b"replconf") {
                // What came before counts in the offset the ACK reports; the GETACK itself
                // counts after it, as in Redis.
                let getack = args
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"));
                self.apply(conn, pipeline, &mut ready).await?;
                if getack {
                    self.send_ack().await?;
                }
                ready.bytes.push(raw);
                continue;
            }
            ready.push(args, raw);
        }
        self.apply(conn, pipeline, &mut ready).await?;
        let unapplied =
            self.input.len() as u64 + self.transaction.as_ref().map_or(0, Received::len);
        self.server
            .replication
            .upstream
            .set_status(|s| s.unapplied = unapplied);
        Ok(())
    }

    async fn apply(
        &mut self,
        conn: &mut ConnState,
        pipeline: &mut Pipeline,
        ready: &mut Received,
    ) -> Result<(), Failure> {
        self.check_current()?;
        let server = self.server;
        if ready.commands.is_empty() && ready.bytes.is_empty() {
            return Ok(());
        }
        let upstream = &server.replication.upstream;
        let _applying = loop {
            if !upstream.hold_applying.load(Ordering::SeqCst) {
                // Marked before the hold is checked again: a SHUTDOWN that sets the hold, then
                // finds no chunk marked, knows that none will start (see `hold_applying`).
                let applying = Applying::start(upstream);
                if !upstream.hold_applying.load(Ordering::SeqCst) {
                    break applying;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.check_current()?;
        };
        if !ready.commands.is_empty() {
            // Received, not applied yet (INFO's slave_read_repl_offset runs ahead of
            // slave_repl_offset while CLIENT PAUSE WRITE holds these, as Redis's).
            let unapplied = ready.len()
                + self.input.len() as u64
                + self.transaction.as_ref().map_or(0, Received::len);
            server
                .replication
                .upstream
                .set_status(|s| s.unapplied = unapplied);
        }
        let mut next = Some(std::mem::take(&mut ready.commands)).filter(|r| !r.is_empty());
        if next.is_some() {
            // As Redis's replica: while a script of this server is past busy-reply-threshold,
            // the primary's commands wait (they would get -BUSY, and a write be lost).
            while server.scripts.busy.any() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut out = Vec::new();
        while let Some(batch) = next.take() {
            let names: Vec<Bytes> = batch.iter().map(|args| args[0].clone()).collect();
            // The primary sends effects, never a command that waits; should one wait here,
            // it is given up and the rest run.
            if let Some(blocked) = pipeline.execute(server, conn, batch, &mut out).await {
                blocked.finish(server);
                next = Some(blocked.rest).filter(|r| !r.is_empty());
            }
            report_refusals(server, &names, &out);
            out.clear();
        }
        upstream.stream_db.store(conn.db, Ordering::Relaxed);
        if ready.bytes.is_empty() {
            return Ok(());
        }
        {
            let mut history = server.replication.history();
            if !upstream.is_current(self.generation) {
                return Err(Failure::Replaced);
            }
            for bytes in ready.bytes.drain(..) {
                server.replication.feed_held(&mut history, &bytes);
            }
        }
        Ok(())
    }

    async fn send_ack(&mut self) -> Result<(), Failure> {
        let offset = self.server.replication.history().offset().to_string();
        self.send(&[b"REPLCONF", b"ACK", offset.as_bytes()]).await
    }

    /// Sends a command and reads its one-line reply.
    async fn command(&mut self, args: &[&[u8]]) -> Result<String, Failure> {
        self.send(args).await?;
        self.read_line().await
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), Failure> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// One line, without its CRLF.
    async fn read_line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.input) {
                let line = self.input.split_to(end + 1);
                let line = line.strip_suffix(b"\r\n").unwrap_or(&line[..end]);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.input.len() > 64 * 1024 {
                return Err(Failure::Broken("the primary sent an overlong line".into()));
            }
            self.read_more().await?;
        }
    }

    /// Reads more from the primary; fails when REPLICAOF changed it.
    async fn read_more(&mut self) -> Result<(), Failure> {
        let Link {
            server,
            stream,
            input,
            target,
            timeout,
            ..
        } = self;
        tokio::select! {
            read = read_some(server, stream, input, *timeout) => read,
            _ = target.changed() => Err(Failure::Replaced),
        }
    }

    async fn read_some(&mut self) -> Result<(), Failure> {
        read_some(self.server, &mut self.stream, &mut self.input, self.timeout).await
    }

    fn check_current(&self) -> Result<(), Failure> {
        if self.server.replication.upstream.is_current(self.generation) {
            Ok(())
        } else {
            Err(Failure::Replaced)
        }
    }
}

/// One read from the primary, within `repl-timeout`.
async fn read_some(
    server: &Server,
    stream: &mut TcpStream,
    input: &mut BytesMut,
    timeout: Duration,
) -> Result<(), Failure> {
    if input.capacity() - input.len() < 16 * 1024 {
        input.reserve(64 * 1024);
    }
    match tokio::time::timeout(timeout, stream.read_buf(input)).await {
        // Redis's words for each step (test harnesses look for them).
        Err(_) => Err(Failure::Broken(
            match server.replication.upstream.status().state {
                LinkState::Sync => "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.",
                LinkState::Connected => "MASTER timeout: no data nor PING received...",
                _ => "Timeout connecting to the MASTER...",
            }
            .into(),
        )),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(0)) => Err(Failure::Broken("the primary closed the link".into())),
        Ok(Ok(_)) => {
            server
                .replication
                .upstream
                .set_status(|s| s.last_io = Some(Instant::now()));
            Ok(())
        }
    }
}

/// A command of the primary's stream that failed here (a command this server lacks, a
/// divergence, a bug): logged in Redis's words, one line per error, and counted (INFO `unexpected_error_replies`). With
/// `propagation-error-behavior panic` or `panic-on-replicas`, a read-only replica then stops,
/// as Redis's panics, rather than run on with data that differs from its primary's. `replies`
/// are those of `names`, in order (the primary's client gets replies encoded for this check
/// only).
fn report_refusals(server: &Server, names: &[Bytes], replies: &[u8]) {
    if !replies.contains(&b'-') {
        return;
    }
    let Ok(replies) = crate::protocol::resp_reader::read_all(&Bytes::copy_from_slice(replies))
    else {
        return;
    };
    let refused = names
        .iter()
        .zip(&replies)
        .filter_map(|(name, reply)| match reply {
            crate::protocol::Reply::Error(e) => Some((name, e)),
            // EXEC's replies: one per queued command.
            crate::protocol::Reply::Array(items) => items.iter().find_map(|item| match item {
                crate::protocol::Reply::Error(e) => Some((name, e)),
                _ => None,
            }),
            _ => None,
        });
    for (name, error) in refused {
        let command = crate::command_table::lookup(name)
            .map_or("<unknown>", |i| crate::command_table::TABLE[i].name);
        let mut cut = error.len().min(4096);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let error = &error[..cut];
        warn!("== CRITICAL == This replica is sending an error to its master: '{error}' after processing the command '{command}'");
        crate::server_state::bump(&server.stats.unexpected_error_replies, 1);
        let panics = {
            let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
            cfg.get_bool("replica-read-only")
                && matches!(
                    cfg.get("propagation-error-behavior"),
                    "panic" | "panic-on-replicas"
                )
        };
        if panics {
            tracing::error!("Guru Meditation: This replica panicked sending an error to its master after processing the command '{command}'");
            std::process::abort();
        }
    }
}

/// A command of the stream: an array of strings.
fn command_args(frame: BytesFrame) -> Option<Vec<Bytes>> {
    let BytesFrame::Array(items) = frame else {
        return None;
    };
    let args: Vec<Bytes> = items
        .into_iter()
        .map(|item| match item {
            BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => Some(b),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!args.is_empty()).then_some(args)
}

/// How the primary frames its RDB: diskless, ended by a 40-byte mark (`$EOF:<mark>`), or with
/// its length first (`$<len>`).
enum RdbFraming {
    Mark(Vec<u8>),
    Len(usize),
}

/// Whether this replica loads its primary's RDB "diskless" (`repl-diskless-load swapdb`, or
/// `on-empty-db` with no keys): Redis then parses the RDB as it arrives, so it is loading
/// (INFO `loading:1`, -LOADING to clients) from the RDB's first byte. So does this replica:
/// with nothing to keep it loads the RDB as it arrives (`Link::stream_rdb`); with data, the
/// RDB is read whole first and the old data stays untouched until then, so a transfer that
/// fails leaves it, as swapdb's does. With swapdb and a full sync of the history the replica already follows,
/// the old data is a point of the same history: Redis then serves it while loading ("async
/// loading", INFO `async_loading:1`, only commands flagged `no_async_loading` refused), and
/// so does this replica, until the RDB, whole, replaces it at once. Some(whether swapdb) when
/// it loads diskless.
fn diskless_load(server: &Server) -> Option<bool> {
    let mode = server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get("repl-diskless-load")
        .to_string();
    match mode.as_str() {
        "swapdb" => Some(true),
        "on-empty-db" => server
            .lock_all()
            .iter()
            .all(|g| g.dbs.iter().all(|db| db.is_empty()))
            .then_some(false),
        _ => None,
    }
}

/// The replica is loading (or async loading) while this lives (see `diskless_load`).
struct LoadingShown<'a> {
    server: &'a Server,
    serves_old_data: bool,
}

impl LoadingShown<'_> {
    fn start(server: &Server, serves_old_data: bool) -> LoadingShown<'_> {
        if serves_old_data {
            server
                .replication
                .upstream
                .async_loading
                .store(true, Ordering::Release);
        } else {
            server.loading.begin(server, 0);
        }
        LoadingShown {
            server,
            serves_old_data,
        }
    }
}

impl Drop for LoadingShown<'_> {
    fn drop(&mut self) {
        if self.serves_old_data {
            let upstream = &self.server.replication.upstream;
            upstream.async_loading.store(false, Ordering::Release);
        } else {
            self.server.loading.end();
        }
    }
}

/// A full resync's RDB replaces the dataset: every database emptied, function libraries
/// flushed, the RDB's keys and libraries loaded. The caller then restarts the history at the
/// primary's id and offset.
///
/// With the log on, a snapshot is taken right after the load: it holds exactly the loaded
/// data and replaces the log (as Redis rewrites its AOF after a full sync), which is simpler
/// and cheaper than logging a flush and every key. `log_start`: Redis's line that the load
/// starts, unless it was logged when the RDB began to arrive. With `refuse_clients`, clients get
/// -LOADING meanwhile (not while async loading serves the old data: the load, under every
/// shard's lock, replaces it at once).
fn load_full_sync(
    server: &Server,
    rdb: &[u8],
    log_start: bool,
    refuse_clients: bool,
) -> Result<(), String> {
    let started = Instant::now();
    if refuse_clients {
        server.loading.begin(server, rdb.len() as u64);
    }
    empty_dataset(server);
    if log_start {
        info!("MASTER <-> REPLICA sync: Loading DB in memory");
    }
    let loaded = rdb_file::load(server, rdb)
        .map_err(|e| format!("the primary's RDB: {e}"))
        .and_then(|loaded| after_load(server, loaded, started));
    if refuse_clients {
        server.loading.end();
    }
    loaded
}

/// Every database emptied and the function libraries flushed, for a full sync's RDB.
fn empty_dataset(server: &Server) {
    info!("MASTER <-> REPLICA sync: Flushing old data");
    {
        let mut guards = server.lock_all();
        crate::persist::background::abort_rdb_save(server);
        for shard in guards.iter_mut() {
            for db in &mut shard.dbs {
                db.clear();
            }
            server.publish_spare(shard);
        }
    }
    server.functions.flush();
    server.tracking.flushed(server);
}

/// After a full sync's RDB was loaded: with the log on, a snapshot of exactly the loaded data;
/// this server's own replicas resynchronize (as Redis's do); Redis's lines.
fn after_load(server: &Server, loaded: rdb_file::Loaded, started: Instant) -> Result<(), String> {
    server.note_change(1);
    if server.wal.is_on() {
        snapshot::take(server, Logging::Keep)
            .map_err(|e| format!("the snapshot after the full sync failed: {e}"))?;
    }
    server.clients.kill_where(0, |c| c.replica);
    info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
        loaded.keys, loaded.expired, loaded.empty_skipped
    );
    info!(
        "MASTER <-> REPLICA sync: RDB loaded in {:.3}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether this replica holds nothing a failed transfer should leave it with (no keys, no
/// function libraries): its primary's RDB may then be loaded as it arrives.
fn holds_nothing(server: &Server) -> bool {
    server.functions.libraries().is_empty()
        && server
            .lock_all()
            .iter()
            .all(|g| g.dbs.iter().all(|db| db.is_empty()))
}
