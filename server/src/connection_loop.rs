//! One client connection: read, parse every complete request, execute the pipeline, write all
//! replies of that read in one write. A client that does not take its replies (it sends a long
//! pipeline before it reads any) is read on meanwhile, as Redis reads on while its output
//! buffer waits: the replies wait in [`Unsent`] up to [`UNSENT_READ_LIMIT`], and only past that
//! does the connection stop reading until the client takes some.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::blocked_clients::Unblock;
use crate::busy_clients;
use crate::clients::{ClientHandle, ClientInfo, Peer};
use crate::dispatch::{self, Blocked, Pipeline};
use crate::protocol::{Reply, RequestParser};
use crate::pubsub::Subscriptions;
use crate::server_state::{bump, Server, WorkerStats};
use crate::session::{ConnState, ReplyMode};

const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// The read and reply buffers' starting sizes. (A read buffer's room shrinks by what its
/// requests take until it is reclaimed: 20 KB leaves a fresh client the 16 KB that Redis's own
/// tests read from CLIENT LIST's qbuf + qbuf-free. Redis's 16 KB query buffer takes a 20 KB
/// block of jemalloc's.)
pub(crate) const READ_BUFFER: usize = 20 * 1024;
const REPLY_BUFFER: usize = 16 * 1024;
/// An empty read buffer with less room than this gets back the room its requests took (a
/// cheap check of the buffer's sharing, done once per few KB of requests rather than per read).
const RECLAIM_BELOW: usize = 16 * 1024;
/// The most reply buffer a connection keeps between reads (past it, [`REPLY_BUFFER`]).
const KEPT_REPLY_ROOM: usize = 2 * REPLY_BUFFER;
/// The smallest reply buffer the cron shrinks one to (Redis's PROTO_REPLY_MIN_BYTES).
const REPLY_BUFFER_MIN: usize = 1024;
/// Replies past this size are counted toward `maxmemory-clients` before they are written.
const LARGE_REPLY: usize = 64 * 1024;
/// While this much of a client's replies waits for it to read them, the connection reads no
/// more of its requests: what a client that never reads can make the server hold (Redis holds
/// without bound unless `client-output-buffer-limit` or `maxmemory-clients` says otherwise;
/// those still close the client first when set lower).
pub const UNSENT_READ_LIMIT: usize = 64 * 1024 * 1024;

/// How long a client on the TLS port has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client a listener accepted (or a busy script's hook, see `busy_clients`): counted,
/// registered, and its task started. Its port, for a plain-socket client let in.
pub fn accept(
    server: &Arc<Server>,
    me: usize,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
) -> Option<Arc<busy_clients::Port>> {
    set_keepalive(&stream, server.hot.tcp_keepalive.load(Ordering::Relaxed));
    server
        .stats
        .total_connections_received
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    if tls {
        tokio::spawn(serve_tls(server.clone(), me, stream, peer));
        return None;
    }
    let fd = stream.as_raw_fd();
    let laddr = Peer::Tcp(stream.local_addr().unwrap_or(peer));
    serve_plain(server, me, stream, fd, laddr, Peer::Tcp(peer))
}

/// Takes a client of the Unix socket at `path` (`unixsocket`); CLIENT LIST shows both its
/// ends as `<path>:0`, as Redis does.
pub fn accept_unix(
    server: &Arc<Server>,
    me: usize,
    stream: tokio::net::UnixStream,
    path: Arc<str>,
) -> Option<Arc<busy_clients::Port>> {
    server
        .stats
        .total_connections_received
        .fetch_add(1, Ordering::Relaxed);
    let fd = stream.as_raw_fd();
    let peer = Peer::Unix(path);
    serve_plain(server, me, stream, fd, peer.clone(), peer)
}

/// Lets in (or refuses) a client of a plain socket, TCP or Unix, and starts serving it.
fn serve_plain<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    server: &Arc<Server>,
    me: usize,
    stream: S,
    fd: RawFd,
    laddr: Peer,
    peer: Peer,
) -> Option<Arc<busy_clients::Port>> {
    match open(server, me, fd, true, laddr, peer) {
        Ok(opened) => {
            let port = opened.port.clone();
            tokio::spawn(serve_opened(server.clone(), me, stream, opened));
            port
        }
        Err(refusal) => {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream.write_all(refusal).await;
            });
            None
        }
    }
}

/// `tcp-keepalive`: TCP keepalive probes after this many idle seconds (0: off), every third of
/// that after, as Redis sets them.
fn set_keepalive(stream: &TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let fd = stream.as_raw_fd();
    let set = |level, name, value: libc::c_int| {
        // SAFETY: a valid socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    let secs = secs.min(i32::MAX as u64) as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 3).max(1));
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

/// Serves a client of the TLS port once its handshake succeeds; a client that fails it (no
/// certificate where one is required, one no authority signed, plaintext) is closed.
async fn serve_tls(server: Arc<Server>, me: usize, stream: TcpStream, peer: SocketAddr) {
    let fd = stream.as_raw_fd();
    let laddr = Peer::Tcp(stream.local_addr().unwrap_or(peer));
    let Some(acceptor) = server.tls.acceptor() else {
        return;
    };
    let mut stream =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    match open(&server, me, fd, false, laddr, Peer::Tcp(peer)) {
        Ok(opened) => serve_opened(server, me, stream, opened).await,
        Err(refusal) => {
            let _ = stream.write_all(refusal).await;
        }
    }
}

/// A client let in: registered, with its connection's parts (in its port, for a plain-socket
/// one, as if it waited for its first read: a busy script's hook can serve it at once).
struct Opened {
    id: u64,
    parts: Option<Box<ConnParts>>,
    port: Option<Arc<busy_clients::Port>>,
}

/// Lets a client in, or answers the error it is closed with: maxclients reached, or
/// protected mode and a client from elsewhere. `fd` is its socket's (CLIENT KILL shuts it
/// down); `plain`: not TLS.
fn open(
    server: &Arc<Server>,
    me: usize,
    fd: RawFd,
    plain: bool,
    laddr: Peer,
    peer: Peer,
) -> Result<Opened, &'static [u8]> {
    let hot = &server.hot;
    if server.clients.count() as u64 >= hot.maxclients.load(Ordering::Relaxed) {
        bump_rejected(server);
        return Err(b"-ERR max number of clients reached\r\n");
    }
    // Protected mode as Redis 7.0 applies it at accept: on, the default user `nopass` (even
    // when off), and a peer that is not local (a Unix socket, 127.0.0.0/8, ::1, or
    // IPv4-mapped loopback).
    if hot.protected_mode.load(Ordering::Relaxed) && !peer.is_local() && server.acl.default_nopass()
    {
        bump_rejected(server);
        return Err(PROTECTED_MODE_DENIED.as_bytes());
    }
    let mut conn = register_client(server, me, fd, laddr, peer);
    conn.plain_socket = plain;
    let id = conn.id;
    let mut parts = Some(Box::new(ConnParts {
        conn,
        pipeline: Pipeline::new(server.threads(), me),
        parser: RequestParser::default(),
        out: Vec::with_capacity(REPLY_BUFFER),
        unsent: Unsent::default(),
        unread: BytesMut::new(),
        served: false,
        left_for_later: false,
        trim: Trim::Keep,
        idle_trimmed: false,
        input_room: READ_BUFFER,
        reply_peak: REPLY_BUFFER,
        reply_room: REPLY_BUFFER,
        peak_reset_at: Instant::now(),
    }));
    let port = plain.then(|| busy_clients::register(server, fd, &mut parts));
    Ok(Opened { id, parts, port })
}

/// Serves a client let in until it leaves.
async fn serve_opened<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    me: usize,
    mut stream: S,
    opened: Opened,
) {
    let Opened {
        id,
        mut parts,
        port,
    } = opened;
    // Unregistered (even on a panic) before `stream`, a parameter, is dropped and its
    // descriptor closed: CLIENT KILL acts on the descriptors of registered clients.
    let _registered = Registered {
        server: &server,
        id,
    };
    if let Some(port) = &port {
        port.take_back(&mut parts);
    }
    run(&server, me, &mut stream, &mut parts, port.as_deref()).await;
    if let Some(port) = &port {
        port.take_back(&mut parts);
        busy_clients::unregister(port);
    }
    if let Some(parts) = parts.as_mut() {
        release_client(&server, &mut parts.conn);
    }
}

/// A connection ends: the databases hold its WATCH registrations, the Pub/Sub registry its
/// subscriptions, until told.
pub fn release_client(server: &Server, conn: &mut ConnState) {
    crate::transaction_state::end(server, conn);
    server.monitors.remove(conn);
    server.tracking.disable(conn);
    server.pubsub.leave(&mut conn.pubsub);
}

/// Registers a new client (CLIENT LIST, KILL, maxclients) and gives its connection state, as
/// a client that has not authenticated yet (unless no password is required).
pub fn register_client(
    server: &Server,
    me: usize,
    fd: RawFd,
    laddr: Peer,
    peer: Peer,
) -> ConnState {
    let id = server.clients.next_id();
    let now = Instant::now();
    let handle = server.clients.register(ClientInfo {
        id,
        addr: peer.clone(),
        laddr,
        fd,
        name: String::new(),
        lib_name: String::new(),
        lib_ver: String::new(),
        db: 0,
        resp: 2,
        created: now,
        last_interaction: crate::command_timing::Moment::now(),
        last_cmd: "NULL",
        user: "default".into(),
        no_evict: false,
        worker: me,
        subscriptions: (0, 0, 0),
        tracking: None,
        multi: None,
        blocked: false,
        monitor: false,
        replica: false,
        master: false,
        buffers: crate::clients::Buffers {
            query_capacity: READ_BUFFER,
            reply_capacity: REPLY_BUFFER,
            // As the connection's own count starts (`open`): CLIENT LIST may look before the
            // connection has published its buffers once.
            reply_peak: REPLY_BUFFER,
            ..Default::default()
        },
    });
    ConnState {
        id,
        db: 0,
        resp3: false,
        authenticated: !server.hot.auth_required.load(Ordering::Relaxed),
        user: server.acl.default_user(),
        name: String::new(),
        addr: peer,
        reply_mode: ReplyMode::On,
        close_after_reply: false,
        no_touch: false,
        answer_regardless: false,
        in_exec: false,
        script_debug: false,
        plain_socket: false,
        handle,
        recent_reads: Default::default(),
        tx: None,
        watching: None,
        pubsub: None,
        tracking: None,
        tracking_caching: false,
        track_script_keys: false,
        replication: None,
        primary: false,
        asking: false,
        readonly: false,
    }
}

/// Unregisters a client when dropped.
pub struct Registered<'a> {
    pub server: &'a Server,
    pub id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.server.clients.unregister(self.id);
    }
}

/// What a connection's requests run with, kept from one read to the next. While the
/// connection waits for its next request with nothing half-read, these wait in its
/// [`busy_clients::Port`], where a busy script's hook can serve the client.
pub struct ConnParts {
    pub conn: ConnState,
    pub pipeline: Pipeline,
    pub parser: RequestParser,
    /// This read's replies, not written yet.
    pub out: Vec<u8>,
    /// Earlier replies the client has not taken yet; they go before `out`.
    pub unsent: Unsent,
    /// What a busy script's hook read and left for after the script: it comes before
    /// whatever the connection reads next.
    pub unread: BytesMut,
    /// The hook served the connection: its task writes `out` and runs `unread` before it
    /// reads again.
    pub served: bool,
    /// The hook left the rest of this connection's requests for after the script.
    pub left_for_later: bool,
    /// What the worker's cron asks of its buffers (`busy_clients::ask_to_trim`).
    pub trim: Trim,
    /// It gave its buffers back, idle, and has read nothing since.
    pub idle_trimmed: bool,
    /// Its read buffer's size when last allocated or reclaimed (`BytesMut::capacity` leaves
    /// out the front its requests took, which the buffer still holds until reclaimed).
    pub input_room: usize,
    /// The most reply bytes one read's replies took since `peak_reset_at` (Redis's
    /// `buf_peak`): what [`resize_reply_buffer`] sizes `out` to.
    pub reply_peak: usize,
    /// The size `out` keeps between reads (Redis's `buf_usable_size`): set by the cron
    /// ([`resize_reply_buffer`]); a read's replies that outgrow it take a larger buffer only
    /// until they are written.
    pub reply_room: usize,
    pub peak_reset_at: Instant,
}

/// What a connection waiting for a request does with its buffers, asked by the worker's cron.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trim {
    Keep,
    /// A large request's read buffer goes; one of the usual size replaces it.
    Shrink,
    /// Idle a while: the read buffer goes, until something comes (Redis frees an idle
    /// client's query buffer after 2 s).
    GiveBack,
    /// Only its reply buffer changed (resized by the cron): its memory is counted again.
    Recount,
}

/// Redis's `clientsCronResizeOutputBuffer` for a connection waiting for its next request (its
/// reply buffer empty), run by the worker's cron: a reply buffer whose peak since the last
/// reset is under half its size shrinks to that peak (at least [`REPLY_BUFFER_MIN`]); one that
/// its replies filled doubles, up to [`REPLY_BUFFER`]; every `reply_peak_reset_ms` the peak
/// starts over, so an idle client's buffer shrinks. True when `out` was replaced.
pub(crate) fn resize_reply_buffer(parts: &mut ConnParts, server: &Server, me: usize) -> bool {
    let hot = &server.hot;
    if !hot.reply_resizing.load(Ordering::Relaxed) || !parts.out.is_empty() {
        return false;
    }
    let (size, peak) = (parts.reply_room, parts.reply_peak);
    let stats = &server.worker_stats[me];
    let resize_to = if size / 2 >= REPLY_BUFFER_MIN && peak < size / 2 {
        bump(&stats.reply_buffer_shrinks, 1);
        Some(REPLY_BUFFER_MIN.max(peak + 1))
    } else if size * 2 < 2 * REPLY_BUFFER && peak >= size {
        bump(&stats.reply_buffer_expands, 1);
        Some(REPLY_BUFFER.min(size * 2))
    } else {
        None
    };
    let reset_ms = hot.reply_peak_reset_ms.load(Ordering::Relaxed);
    if reset_ms >= 0 && parts.peak_reset_at.elapsed() >= Duration::from_millis(reset_ms as u64) {
        parts.reply_peak = 0;
        parts.peak_reset_at = Instant::now();
    }
    let Some(size) = resize_to else {
        return false;
    };
    parts.out = Vec::with_capacity(size);
    parts.reply_room = size;
    true
}

fn bump_rejected(server: &Server) {
    server
        .stats
        .rejected_connections
        .fetch_add(1, Ordering::Relaxed);
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Arc<Server>,
    me: usize,
    stream: &mut S,
    parts_slot: &mut Option<Box<ConnParts>>,
    port: Option<&busy_clients::Port>,
) {
    let mut input = BytesMut::with_capacity(READ_BUFFER);
    let stats = &server.worker_stats[me];
    // `input` holds requests not run yet: replies to UNSENT_READ_LIMIT wait for the client.
    let mut held_back = false;
    loop {
        // At least 4 KB free, grown by 16 KB; for a large argument's rest, room for up to 1 MB
        // of it, so that it arrives in few reads (as Redis reads a big argument's rest at
        // once), the buffer never ahead of what came by more than that.
        let wanted = parts_slot
            .as_deref()
            .map_or(0, |p| p.parser.still_needs(input.len()))
            .clamp(16 * 1024, 1 << 20);
        let floor = if wanted > 16 * 1024 { wanted } else { 4096 };
        let parts = parts_slot
            .as_deref_mut()
            .expect("a connection's parts are here between reads");
        // (An idle connection that gave its buffer back gets one when something comes.)
        if input.capacity() - input.len() < floor && !parts.idle_trimmed {
            input.reserve(wanted);
            parts.input_room = input.capacity();
        }
        let idle_limit = server.hot.timeout_secs.load(Ordering::Relaxed);
        // None: run the requests `input` holds already (held back, see below).
        let read = if held_back && parts.out.len() + parts.unsent.len() < UNSENT_READ_LIMIT {
            held_back = false;
            None
        } else if !parts.unsent.is_empty() {
            // Replies wait for the client to read them: written as it takes them, its next
            // requests read meanwhile.
            match write_or_read(server, stream, parts, &mut input, stats, idle_limit).await {
                Waited::Read(read) => Some(busy_clients::Woke::Read(read)),
                Waited::Wrote => {
                    let memory = {
                        let mut info = parts.conn.handle.info.lock().expect("client info lock");
                        info.last_interaction = crate::command_timing::Moment::now();
                        info.buffers.reply = parts.out.len() + parts.unsent.len();
                        info.buffers.reply_capacity =
                            parts.out.capacity() + parts.unsent.buf.capacity();
                        info.memory(0)
                    };
                    account_memory(server, &parts.conn, memory);
                    continue;
                }
                Waited::Closed => return,
            }
        } else if let Some(subs) = parts.conn.pubsub.as_mut() {
            // A message queue (Pub/Sub, MONITOR, tracking, RESP3): messages are written as they
            // come, between requests.
            let exempt = idle_limit == 0 || spared_idle(Some(subs), &parts.conn.handle);
            let idle = async {
                if exempt {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_secs(idle_limit)).await;
            };
            let message = tokio::select! {
                message = subs.next() => Ok(message),
                read = stream.read_buf(&mut input) => Err(read),
                _ = idle => {
                    debug!(client = parts.conn.id, "closing idle client");
                    return;
                }
            };
            match message {
                Ok(Some(first)) => {
                    let taken = subs.drain_into(first, &mut parts.out, 64 * 1024);
                    let me = subs.me.clone();
                    // A client that does not read blocks this write: the output limit, reached
                    // meanwhile by what is still queued, ends it.
                    let wrote = tokio::select! {
                        wrote = write_out(stream, &mut parts.out, &mut parts.unsent, stats) => wrote,
                        _ = me.closed() => false,
                    };
                    subs.written(taken);
                    if !wrote || subs.is_closed() {
                        debug!(
                            client = parts.conn.id,
                            "closing subscriber past its output limit"
                        );
                        return;
                    }
                    if server.client_memory().is_some() {
                        // Written: what is queued for it counts less now.
                        let memory = {
                            let mut info = parts.conn.handle.info.lock().expect("client info lock");
                            info.buffers.pushes = me.queued_bytes();
                            info.memory(0)
                        };
                        account_memory(server, &parts.conn, memory);
                    }
                    continue;
                }
                Ok(None) => return,
                Err(read) => Some(busy_clients::Woke::Read(read)),
            }
        } else {
            let id = parts.conn.id;
            // With nothing half-read, the connection's parts wait in its port meanwhile (a
            // busy script's hook may serve it).
            let park = port.filter(|_| input.is_empty() && parts.parser.is_idle());
            let reading = std::future::poll_fn(|cx| match park {
                Some(port) => port.poll_read(cx, parts_slot, stream, &mut input),
                None => {
                    busy_clients::poll_read(cx, stream, &mut input).map(busy_clients::Woke::Read)
                }
            });
            let woke = if idle_limit > 0 {
                tokio::time::timeout(Duration::from_secs(idle_limit), reading).await
            } else {
                Ok(reading.await)
            };
            if let Some(port) = park {
                port.take_back(parts_slot);
            }
            match woke {
                Ok(woke) => Some(woke),
                Err(_) => {
                    debug!(client = id, "closing idle client");
                    return;
                }
            }
        };
        // DEBUG SLEEP: the worker sleeps with the server (this connection holds no lock here).
        server.freeze.wait();
        let ConnParts {
            conn,
            pipeline,
            parser,
            out,
            unsent,
            unread,
            left_for_later,
            idle_trimmed,
            trim,
            input_room,
            reply_peak,
            reply_room,
            ..
        } = parts_slot
            .as_deref_mut()
            .expect("a connection's parts are here between reads");
        let n = match read {
            None => 0,
            Some(busy_clients::Woke::Read(Ok(0) | Err(_))) => return,
            Some(busy_clients::Woke::Read(Ok(n))) => n,
            Some(busy_clients::Woke::Trim) => {
                // (Only a connection that waits in its port, with nothing half-read and no
                // reply waiting, is asked: `input` and `out` are empty.)
                match *trim {
                    Trim::GiveBack => {
                        input = BytesMut::new();
                        *idle_trimmed = true;
                    }
                    Trim::Shrink => input = BytesMut::with_capacity(READ_BUFFER),
                    Trim::Recount | Trim::Keep => {}
                }
                *trim = Trim::Keep;
                *input_room = input.capacity();
                let memory = {
                    let mut info = conn.handle.info.lock().expect("client info lock");
                    info.buffers.query_capacity = input.capacity();
                    info.buffers.reply_capacity = out.capacity();
                    info.buffers.reply_peak = *reply_peak;
                    info.memory(0)
                };
                account_memory(server, conn, memory);
                continue;
            }
            Some(busy_clients::Woke::Served) => {
                // What the busy script's hook read and did not run comes first (nothing was
                // read since: the hook's wake-up is seen before the socket).
                input.extend_from_slice(unread);
                unread.clear();
                *left_for_later = false;
                0
            }
        };
        if *idle_trimmed {
            // (The read took a buffer.)
            *input_room = input.capacity();
            *idle_trimmed = false;
        }
        bump(&stats.net_input_bytes, n as u64);
        bump(&stats.socket_reads, 1);
        pipeline.read_at = crate::command_timing::Moment::now();
        pipeline.set_unsent(unsent.len());
        if let Some(subs) = conn.pubsub.as_mut() {
            // Messages queued before these requests were read (an invalidation another
            // client's write caused, say) go out before their replies, as in Redis, where they
            // are already in the output buffer. (Not a biased select: a busy channel would
            // then keep the client's own requests from being read.)
            subs.take_queued(out);
        }
        dispatch::drain(server, me);
        if input.len() as u64 > server.hot.query_buffer_limit.load(Ordering::Relaxed) {
            debug!(
                client = conn.id,
                "closing client that exceeded the query buffer limit"
            );
            return;
        }
        // A large read counts whole before it runs, as Redis counts a command's arguments
        // when it judges client eviction before running it: a client that one request takes
        // past maxmemory-clients goes without running it. (Smaller reads are counted after
        // their replies, below.)
        if input.len() > READ_BUFFER && server.hot.maxmemory_clients.load(Ordering::Relaxed) > 0 {
            let memory = {
                let mut info = conn.handle.info.lock().expect("client info lock");
                info.buffers.query = input.len().saturating_sub(parser.parsed_bytes());
                info.buffers.partial_args = parser.parsed_args_bytes();
                info.buffers.query_capacity = input.capacity();
                info.memory(0)
            };
            account_memory(server, conn, memory);
            if conn.handle.closing() {
                return;
            }
        }
        let limits = server.hot.limits();
        let mut protocol_error = None;
        // Requests run in batches. Until it authenticates, a client's batch is one request,
        // so that the stricter unauthenticated limits apply exactly up to its AUTH. A client
        // whose replies pile up unread has its requests run a few at a time, and none while
        // UNSENT_READ_LIMIT of replies wait: what it makes the server hold stays near that
        // bound (the rest waits in `input` until the client reads).
        while !input.is_empty() && protocol_error.is_none() {
            let waiting = out.len() + unsent.len();
            if waiting >= UNSENT_READ_LIMIT {
                held_back = true;
                break;
            }
            let batch_limit = if !conn.authenticated {
                1
            } else if waiting > LARGE_REPLY {
                16
            } else {
                usize::MAX
            };
            let mut requests = pipeline.take_request_list();
            loop {
                match parser.parse(&mut input, &limits, conn.authenticated) {
                    Ok(Some(args)) => {
                        if !args.is_empty() {
                            requests.push(args);
                            if requests.len() >= batch_limit {
                                break;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
            if requests.is_empty() {
                pipeline.put_back_request_list(requests);
                break;
            }
            let mut next = Some(requests);
            while let Some(batch) = next.take() {
                let blocked = pipeline.execute(server, conn, batch, out).await;
                if pipeline.over_output_limit() {
                    if let Some(blocked) = blocked {
                        blocked.finish(server);
                    }
                    warn!(
                        client = conn.id,
                        "client closed for overcoming of output buffer limits"
                    );
                    return;
                }
                let Some(blocked) = blocked else {
                    break;
                };
                // Send what came before the blocking command, then wait for it.
                if !write_out(stream, out, unsent, stats).await {
                    blocked.finish(server);
                    return;
                }
                let reply =
                    wait_until_served(server, stream, &mut input, conn, pipeline, &blocked).await;
                let Some(reply) = reply else {
                    return;
                };
                if blocked.emit {
                    reply.encode(out, blocked.resp3);
                }
                if blocked.waiter.unblocked() == Some(Unblock::RoleChange) {
                    conn.close_after_reply = true;
                }
                next = Some(blocked.rest);
            }
            if conn.close_after_reply {
                break;
            }
        }
        if conn.tracking.is_some() {
            // Invalidations of the keys this read changed follow its replies, as in Redis
            // (where they go to the same output buffer), not whenever the loop next waits.
            if let Some(subs) = conn.pubsub.as_mut() {
                subs.take_queued(out);
            }
        }
        if let Some(e) = protocol_error {
            let mut msg = b"ERR ".to_vec();
            msg.extend_from_slice(&e.0);
            Reply::error_bytes(msg).encode(out, conn.resp3);
            conn.close_after_reply = true;
        }
        if out.len() + unsent.len() > LARGE_REPLY {
            // It may wait in the socket a while: counted toward maxmemory-clients meanwhile,
            // and shown in CLIENT LIST's omem.
            let memory = {
                let mut info = conn.handle.info.lock().expect("client info lock");
                info.buffers.reply = out.len() + unsent.len();
                info.buffers.reply_capacity = out.capacity() + unsent.buf.capacity();
                info.memory(0)
            };
            account_memory(server, conn, memory);
        }
        *reply_peak = (*reply_peak).max(out.len());
        // What the client does not take now waits in `unsent` (see `write_or_read`), unless
        // the connection is to close or becomes a replica's link: those write all first.
        let write_all_now =
            conn.close_after_reply || conn.replication.as_ref().is_some_and(|h| h.synced);
        let wrote = if !write_all_now {
            write_available(stream, out, unsent, stats).await
        } else {
            match pipeline.output_soft_deadline(server) {
                None => write_out(stream, out, unsent, stats).await,
                Some(allowed) => {
                    tokio::select! {
                        wrote = write_out(stream, out, unsent, stats) => wrote,
                        _ = tokio::time::sleep(allowed) => {
                            warn!(
                                client = conn.id,
                                "client closed for overcoming of output buffer limits"
                            );
                            false
                        }
                    }
                }
            }
        };
        if !wrote {
            return;
        }
        if out.is_empty() && out.capacity() > *reply_room {
            // Replies that outgrew the buffer do not grow it for good (Redis writes what does
            // not fit its fixed buffer to a list it frees once written): the cron resizes it
            // to its peak instead.
            *out = Vec::with_capacity(*reply_room);
        }
        if input.is_empty() && input.capacity() < RECLAIM_BELOW {
            // The room its requests took comes back (nothing to copy), unless their arguments
            // still point into it (stored, or queued in a transaction): then it is theirs, and
            // the next read takes a new buffer.
            let _ = input.try_reclaim(READ_BUFFER);
        }
        let memory = {
            let mut info = conn.handle.info.lock().expect("client info lock");
            info.last_interaction = crate::command_timing::Moment::now();
            info.db = conn.db;
            if let Some(index) = pipeline.last_command() {
                info.last_cmd = crate::command_table::TABLE[index].name;
            }
            let b = &mut info.buffers;
            b.query = input.len().saturating_sub(parser.parsed_bytes());
            b.partial_args = parser.parsed_args_bytes();
            *input_room = (*input_room).max(input.capacity());
            b.query_capacity = input.capacity();
            b.reply = out.len() + unsent.len();
            b.reply_capacity = out.capacity() + unsent.buf.capacity();
            b.reply_peak = *reply_peak;
            b.pushes = conn.pubsub.as_ref().map_or(0, |s| s.me.queued_bytes());
            b.multi = conn.tx.as_ref().map_or(0, |tx| {
                tx.queued
                    .iter()
                    .map(|q| q.args.iter().map(|a| a.len()).sum::<usize>())
                    .sum()
            });
            b.watched = conn.watching.as_ref().map_or(0, |w| w.keys.len());
            info.memory(0)
        };
        account_memory(server, conn, memory);
        if conn.close_after_reply {
            let _ = stream.shutdown().await;
            return;
        }
        if let Some(handshake) = conn.replication.clone().filter(|h| h.synced) {
            // The connection is now a replica's link: its RDB (if a full sync's is still to
            // come), then the stream.
            conn.handle.info.lock().expect("client info lock").replica = true;
            let rdb_only = handshake.rdb_only;
            let mut rdb_form = None;
            if handshake.rdb_pending {
                let peer = conn.addr.ip();
                let sent = crate::replication::primary::send_rdb(
                    server, stream, conn.id, peer, &handshake,
                )
                .await;
                if sent.is_none() {
                    let _ = stream.shutdown().await;
                    return;
                }
                rdb_form = sent;
            }
            if handshake.full_sync {
                // Redis's wording (test harnesses wait for it).
                let name = handshake.replica_name(conn.addr.ip());
                tracing::info!("Synchronization with replica {name} succeeded");
            }
            let plain_fd = conn
                .plain_socket
                .then(|| conn.handle.info.lock().expect("client info lock").fd);
            crate::replication::primary::hold_link(
                server, stream, conn.id, rdb_only, rdb_form, plain_fd,
            )
            .await;
            return;
        }
    }
}

/// Whether the idle timeout spares the client, as Redis spares subscribers and monitors.
fn spared_idle(subs: Option<&Subscriptions>, handle: &ClientHandle) -> bool {
    subs.is_some_and(|subs| subs.active()) || handle.info.lock().expect("client info lock").monitor
}

/// Counts the client's memory toward `maxmemory-clients`; when all clients together reach the
/// limit, the ones using the most are disconnected (this one among them, possibly).
fn account_memory(server: &Server, conn: &ConnState, memory: usize) {
    if let Some(total) = server.clients.account(&conn.handle, memory as u64) {
        let limit = server.hot.maxmemory_clients.load(Ordering::Relaxed);
        if limit > 0 && total >= limit {
            server.clients.evict_for_memory(limit);
        }
    }
}

/// Replies the client has not taken yet: the socket took the part before `from`.
#[derive(Default)]
pub struct Unsent {
    buf: Vec<u8>,
    from: usize,
    /// Written, but the stream may hold the last of it (a TLS record) until flushed.
    unflushed: bool,
}

impl Unsent {
    pub fn len(&self) -> usize {
        self.buf.len() - self.from
    }

    pub fn is_empty(&self) -> bool {
        self.from == self.buf.len() && !self.unflushed
    }
}

/// How far [`push_out`] got.
enum Pushed {
    /// Everything is written.
    Done,
    /// Some bytes went, then the socket took no more.
    Progress,
    /// The socket took nothing.
    Stalled,
    /// The client is gone.
    Gone,
}

/// Writes `unsent`, then `out`, until everything is written or the socket takes no more (its
/// waker then registered with `cx`). With nothing older waiting, `out` is written from where
/// it is; what the socket does not take of it moves to `unsent` (buffers swapped, not copied).
fn push_out<S: AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    stream: &mut S,
    out: &mut Vec<u8>,
    unsent: &mut Unsent,
    stats: &WorkerStats,
) -> Pushed {
    let mut wrote = false;
    let stopped = |wrote| {
        if wrote {
            Pushed::Progress
        } else {
            Pushed::Stalled
        }
    };
    loop {
        if unsent.from == unsent.buf.len() {
            if out.is_empty() {
                break;
            }
            unsent.unflushed = true;
            let taken = match Pin::new(&mut *stream).poll_write(cx, out) {
                Poll::Ready(Ok(0) | Err(_)) => return Pushed::Gone,
                Poll::Ready(Ok(n)) => {
                    wrote = true;
                    bump(&stats.net_output_bytes, n as u64);
                    bump(&stats.socket_writes, 1);
                    n
                }
                Poll::Pending => 0,
            };
            if taken == out.len() {
                out.clear();
                continue;
            }
            unsent.buf.clear();
            std::mem::swap(&mut unsent.buf, out);
            unsent.from = taken;
            if taken == 0 {
                return stopped(wrote);
            }
            continue;
        }
        match Pin::new(&mut *stream).poll_write(cx, &unsent.buf[unsent.from..]) {
            Poll::Ready(Ok(0) | Err(_)) => return Pushed::Gone,
            Poll::Ready(Ok(n)) => {
                unsent.from += n;
                wrote = true;
                bump(&stats.net_output_bytes, n as u64);
                bump(&stats.socket_writes, 1);
            }
            Poll::Pending => return stopped(wrote),
        }
    }
    // (flush: a TLS stream may hold the last record; a TCP stream's is a no-op.)
    if unsent.unflushed {
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => unsent.unflushed = false,
            Poll::Ready(Err(_)) => return Pushed::Gone,
            Poll::Pending => return stopped(wrote),
        }
    }
    // One buffer is kept between reads, the larger: `out` and `unsent` trade theirs when the
    // socket is full, and keeping both would hold twice a pipeline's replies for good.
    if unsent.buf.capacity() > out.capacity() {
        std::mem::swap(&mut unsent.buf, out);
    }
    out.clear();
    unsent.buf = Vec::new();
    unsent.from = 0;
    if out.capacity() > KEPT_REPLY_ROOM {
        // As Redis keeps 16 KB per client and frees the blocks of a larger reply once written:
        // a pipeline's worth of replies is not held between reads (under maxmemory, what a
        // connection holds leaves that much less for keys).
        *out = Vec::with_capacity(REPLY_BUFFER);
    }
    Pushed::Done
}

/// Writes and clears `unsent` and `out`, waiting for the client to take them; false when the
/// client is gone.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    unsent: &mut Unsent,
    stats: &WorkerStats,
) -> bool {
    std::future::poll_fn(|cx| match push_out(cx, stream, out, unsent, stats) {
        Pushed::Done => Poll::Ready(true),
        Pushed::Gone => Poll::Ready(false),
        Pushed::Progress | Pushed::Stalled => Poll::Pending,
    })
    .await
}

/// Writes what the socket takes now; the rest waits in `unsent`. False when the client is gone.
async fn write_available<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    unsent: &mut Unsent,
    stats: &WorkerStats,
) -> bool {
    let pushed = std::future::poll_fn(|cx| Poll::Ready(push_out(cx, stream, out, unsent, stats)));
    !matches!(pushed.await, Pushed::Gone)
}

/// What [`write_or_read`] saw first.
enum Waited {
    /// Requests came (or the read failed).
    Read(std::io::Result<usize>),
    /// The client took some of its replies.
    Wrote,
    /// The client is gone, or closed: idle too long, or over its output limit's soft limit
    /// too long.
    Closed,
}

/// Writes the replies waiting for the client as it takes them, and meanwhile reads its next
/// requests unless [`UNSENT_READ_LIMIT`] of replies wait already. The idle timeout counts from
/// the client's last read of a reply, as Redis counts a write as the client's interaction.
/// Pub/Sub messages wait in their queue meanwhile (they follow the replies), its output limit
/// still watched.
async fn write_or_read<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    stream: &mut S,
    parts: &mut ConnParts,
    input: &mut BytesMut,
    stats: &WorkerStats,
    idle_limit: u64,
) -> Waited {
    let ConnParts {
        conn,
        pipeline,
        out,
        unsent,
        ..
    } = parts;
    let waiting = std::future::poll_fn(|cx| {
        match push_out(cx, stream, out, unsent, stats) {
            Pushed::Gone => return Poll::Ready(Waited::Closed),
            Pushed::Done | Pushed::Progress => return Poll::Ready(Waited::Wrote),
            Pushed::Stalled => {}
        }
        if unsent.len() + out.len() < UNSENT_READ_LIMIT {
            if let Poll::Ready(read) = busy_clients::poll_read(cx, stream, input) {
                return Poll::Ready(Waited::Read(read));
            }
        }
        Poll::Pending
    });
    let exempt = idle_limit == 0 || spared_idle(conn.pubsub.as_deref(), &conn.handle);
    let idle = async {
        if exempt {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(idle_limit)).await;
    };
    let queue_closed = async {
        match &conn.pubsub {
            Some(subs) => subs.me.closed().await,
            None => std::future::pending::<()>().await,
        }
    };
    let soft_limit = async {
        match pipeline.output_soft_deadline(server) {
            Some(allowed) => tokio::time::sleep(allowed).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        waited = waiting => waited,
        _ = idle => {
            debug!(client = conn.id, "closing idle client");
            Waited::Closed
        }
        _ = soft_limit => {
            warn!(client = conn.id, "client closed for overcoming of output buffer limits");
            Waited::Closed
        }
        _ = queue_closed => {
            debug!(client = conn.id, "closing subscriber past its output limit");
            Waited::Closed
        }
    }
}

/// Waits until a blocked command is served (a write to one of its keys woke this client and
/// the retry got something) or times out. None when the client disconnected meanwhile; what
/// it sends while blocked is kept for after.
async fn wait_until_served<S: AsyncRead + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    input: &mut BytesMut,
    conn: &ConnState,
    pipeline: &Pipeline,
    blocked: &Blocked,
) -> Option<Reply> {
    server
        .blocking
        .blocked_clients
        .fetch_add(1, Ordering::Relaxed);
    *conn.handle.blocked_on.lock().expect("blocked_on lock") = Some(blocked.waiter.clone());
    {
        // CLIENT LIST shows the command the client waits in (`cmd=brpop`), as Redis's does.
        let mut info = conn.handle.info.lock().expect("client info lock");
        info.blocked = true;
        info.last_cmd = crate::command_table::TABLE[blocked.command_index()].name;
    }
    let served = loop {
        let deadline = async {
            match blocked.deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        tokio::select! {
            _ = blocked.waiter.notify.notified() => {
                match blocked.waiter.unblocked() {
                    Some(Unblock::Timeout) => break Some(blocked.timed_out(server)),
                    Some(Unblock::Error) => {
                        blocked.finish(server);
                        break Some(Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"));
                    }
                    Some(Unblock::RoleChange) => {
                        blocked.finish(server);
                        break Some(Reply::err(
                            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
                        ));
                    }
                    None => {}
                }
                if blocked.waiter.take_route_change() {
                    if let Some(redirect) = blocked.cluster_redirect(server, conn.readonly) {
                        break Some(redirect);
                    }
                }
                if let Some(reply) = pipeline.retry_blocked(server, conn, blocked) {
                    break Some(match blocked.durable(server, pipeline.worker()).await {
                        Ok(()) => reply,
                        Err(e) => Reply::Error(e),
                    });
                }
            }
            _ = deadline => break Some(blocked.timed_out(server)),
            read = stream.read_buf(input) => {
                if matches!(read, Ok(0) | Err(_)) {
                    blocked.finish(server);
                    break None;
                }
            }
        }
    };
    if let Some(reply) = &served {
        server.note_failure(pipeline.worker(), blocked.command_index(), reply);
    }
    *conn.handle.blocked_on.lock().expect("blocked_on lock") = None;
    conn.handle.info.lock().expect("client info lock").blocked = false;
    server
        .blocking
        .blocked_clients
        .fetch_sub(1, Ordering::Relaxed);
    served
}
