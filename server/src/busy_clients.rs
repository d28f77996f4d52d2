//! The clients of a worker whose thread runs a busy script, served from the script's hook.
//!
//! A script past `busy-reply-threshold` keeps its worker's thread: the thread cannot go back
//! to its event loop mid-script, so every other connection of that worker would wait for the
//! script's end, SCRIPT KILL included. Redis serves its clients meanwhile from the script's
//! hook (`processEventsWhileBlocked`); so does WarpEngine: while a connection waits for its
//! next request with nothing half-read, its state ([`ConnParts`]) waits in its [`Port`], and
//! the interpreter's hook, once the script is busy, calls [`serve`] about once a millisecond.
//! `serve` polls the sockets of this worker's parked connections (a private epoll set, built
//! when the script turned busy), reads what they sent, and runs each request through the
//! connection's own pipeline: admission answers most of them -BUSY (and marks a transaction
//! they were queued in as failed, as Redis does); SCRIPT KILL, FUNCTION KILL, FUNCTION
//! STATS, SHUTDOWN NOSAVE, MULTI, HELLO, AUTH, QUIT ... run. Their replies are written at
//! once. A request that cannot run here (it would need a shard the script holds: WATCH, or
//! anything from a connection that watches keys; anything during CLIENT PAUSE) stays unread,
//! with the rest of that connection's input, until the script ends.
//!
//! Not served: TLS connections (their bytes are encrypted inside the task), blocked clients,
//! subscribers and connections with half a request read, and new connections (accepted after
//! the script). Those wait for the script's end, as every client of the worker did before.
//!
//! The same ports let the worker's cron find connections idle long enough to give their
//! buffers back ([`ask_to_trim`]), as Redis's clientsCron frees an idle client's query
//! buffer: a connection that waits for a request holds no buffer then.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::future::Future;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;

use crate::command_table::{self, arity_ok, Flags, Run, TxStep, TABLE};
use crate::connection_loop::{ConnParts, Trim};
use crate::protocol::Reply;
use crate::server_state::{bump, Server};

/// How often a busy script's hook serves the clients, at most.
const SERVE_EVERY: Duration = Duration::from_millis(1);
/// What one round reads from one client at most (the rest waits for the next round).
const READ_PER_ROUND: usize = 64 * 1024;
/// What a read into a connection's empty-handed input takes at most.
const READ_ROOM: usize = 16 * 1024;
/// A read buffer larger than this is brought back to the usual size once its connection
/// waits for a request (Redis's PROTO_RESIZE_THRESHOLD).
const LARGE_READ_ROOM: usize = 32 * 1024;

/// A plain-socket connection's place where its state waits between requests.
pub struct Port {
    fd: RawFd,
    /// The connection's state ([`ConnParts`], boxed) while its task waits for a read; null
    /// while the task has it, or while [`serve`] does. Only this worker's thread touches it
    /// (an atomic pointer rather than a lock: one exchange per wait on the request path).
    parked: AtomicPtr<ConnParts>,
    /// The connection task's waker, to wake it once it was served (a task's waker stays the
    /// same for its life).
    waker: OnceLock<Waker>,
}

impl Port {
    fn park(&self, parts: Box<ConnParts>) {
        let old = self.parked.swap(Box::into_raw(parts), Ordering::AcqRel);
        debug_assert!(old.is_null());
    }

    fn unpark(&self) -> Option<Box<ConnParts>> {
        let raw = self.parked.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a pointer `park` made from a Box, taken out once by the swap.
        (!raw.is_null()).then(|| unsafe { Box::from_raw(raw) })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        drop(self.unpark());
    }
}

/// What a parked read ended with.
pub enum Woke {
    Read(std::io::Result<usize>),
    /// A busy script's hook served the connection meanwhile: its replies, and what it left
    /// unread, are in the connection's parts.
    Served,
    /// The worker's cron asks the connection to trim its buffers (`ConnParts::trim`): its
    /// task does, then waits again.
    Trim,
}

impl Port {
    /// Reads from `stream` into `input` (empty, with no request half-parsed); whenever the
    /// read has to wait, the connection's parts wait here, where [`serve`] can reach them.
    pub fn poll_read<S: AsyncRead + Unpin>(
        &self,
        cx: &mut Context<'_>,
        parts: &mut Option<Box<ConnParts>>,
        stream: &mut S,
        input: &mut BytesMut,
    ) -> Poll<Woke> {
        self.take_back(parts);
        let p = parts
            .as_mut()
            .expect("a connection's parts are here or in its port");
        if p.served {
            p.served = false;
            return Poll::Ready(Woke::Served);
        }
        if p.trim != Trim::Keep {
            return Poll::Ready(Woke::Trim);
        }
        match poll_read(cx, stream, input) {
            Poll::Ready(r) => Poll::Ready(Woke::Read(r)),
            Poll::Pending => {
                self.waker.get_or_init(|| cx.waker().clone());
                self.park(parts.take().expect("checked above"));
                Poll::Pending
            }
        }
    }

    /// Brings the connection's parts back from the port if they wait there.
    pub fn take_back(&self, parts: &mut Option<Box<ConnParts>>) {
        if parts.is_none() {
            *parts = self.unpark();
        }
    }
}

/// Reads what `stream` has into `input`'s spare room (tokio's `read_buf`, as a poll). An
/// `input` with no room (an idle connection gave its buffer back) gets one once something
/// came: the read goes through the stack meanwhile, so that waiting holds no buffer.
pub fn poll_read<S: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    stream: &mut S,
    input: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    if input.capacity() == input.len() {
        let mut room = [std::mem::MaybeUninit::<u8>::uninit(); READ_ROOM];
        let mut buf = tokio::io::ReadBuf::uninit(&mut room);
        return match std::pin::Pin::new(stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let got = buf.filled();
                input.reserve(crate::connection_loop::READ_BUFFER);
                input.extend_from_slice(got);
                Poll::Ready(Ok(got.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
    }
    let mut buf = tokio::io::ReadBuf::uninit(input.spare_capacity_mut());
    match std::pin::Pin::new(stream).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => {
            let n = buf.filled().len();
            // SAFETY: poll_read initialized the first n bytes of the spare room.
            unsafe { input.set_len(input.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// This worker thread's plain-socket connections, and the round of serving in progress.
#[derive(Default)]
struct WorkerPorts {
    server: Option<Arc<Server>>,
    ports: Vec<Arc<Port>>,
    /// Listening sockets: TCP ones, and the Unix socket with its path.
    listeners: Vec<(RawFd, Option<Arc<str>>)>,
    round: Option<Round>,
    /// The last port [`ask_to_trim`] visited.
    trim_cursor: usize,
}

/// The serving of one busy script: the connections parked when it turned busy, watched by a
/// private epoll set (level-triggered: a client left for later is taken out of it).
struct Round {
    /// When the script started: another script's busy time is another round.
    script_started: Instant,
    epoll: OwnedFd,
    ports: Vec<Arc<Port>>,
    last: Instant,
}

thread_local! {
    static WORKER: RefCell<WorkerPorts> = RefCell::default();
}

/// Registers a new plain-socket connection of this worker (its socket `fd`); its parts wait in
/// its port until its task first runs.
pub fn register(server: &Arc<Server>, fd: RawFd, parts: &mut Option<Box<ConnParts>>) -> Arc<Port> {
    let port = Arc::new(Port {
        fd,
        parked: AtomicPtr::new(std::ptr::null_mut()),
        waker: OnceLock::new(),
    });
    if let Some(parts) = parts.take() {
        port.park(parts);
    }
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        w.server.get_or_insert_with(|| server.clone());
        w.ports.push(port.clone());
    });
    port
}

/// Registers a plain listening socket of this worker, TCP or (with its path) the Unix socket:
/// a busy script's hook accepts the clients that connect meanwhile.
pub fn register_listener(server: &Arc<Server>, fd: RawFd, unix: Option<Arc<str>>) {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        w.server.get_or_insert_with(|| server.clone());
        w.listeners.push((fd, unix));
    });
}

/// A listening socket of this worker is closing (CONFIG SET port/bind).
pub fn unregister_listener(fd: RawFd) {
    WORKER.with(|w| w.borrow_mut().listeners.retain(|(l, _)| *l != fd));
}

/// The worker's cron, once a tick: asks this worker's connections that wait for a request
/// to trim their buffers ([`Woke::Trim`], their tasks woken for it): a connection idle for
/// `idle` or longer gives its read buffer back, one that read a large request since keeps a
/// read buffer of the usual size, as Redis's clientsCron resizes query buffers; reply buffers
/// follow their recent peak (`connection_loop::resize_reply_buffer`). Visits a tenth of the
/// connections per tick (all of them up to 64), in turn, as Redis's cron does.
pub fn ask_to_trim(server: &Server, me: usize, idle: Duration) {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let w = &mut *w;
        let count = w.ports.len();
        if count == 0 {
            return;
        }
        let visits = count.div_ceil(10).max(64).min(count);
        for _ in 0..visits {
            w.trim_cursor = (w.trim_cursor + 1) % count;
            let port = &w.ports[w.trim_cursor];
            let Some(mut parts) = port.unpark() else {
                continue;
            };
            if parts.trim == Trim::Keep {
                let resized = crate::connection_loop::resize_reply_buffer(&mut parts, server, me);
                parts.trim = if !parts.idle_trimmed && parts.pipeline.read_at.elapsed() >= idle {
                    Trim::GiveBack
                } else if parts.input_room > LARGE_READ_ROOM {
                    Trim::Shrink
                } else if resized {
                    Trim::Recount
                } else {
                    Trim::Keep
                };
                if parts.trim != Trim::Keep {
                    if let Some(waker) = port.waker.get() {
                        waker.wake_by_ref();
                    }
                }
            }
            port.park(parts);
        }
    });
}

/// The connection ended.
pub fn unregister(port: &Arc<Port>) {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        if let Some(i) = w.ports.iter().position(|p| Arc::ptr_eq(p, port)) {
            w.ports.swap_remove(i);
        }
    });
}

/// Called by the hook of a busy script on this thread (started at `script_started`): serves
/// this worker's parked connections, at most once per [`SERVE_EVERY`].
pub fn serve(script_started: Instant) {
    let Some((server, ready)) = WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let w = &mut *w;
        let server = w.server.clone()?;
        let fresh = w
            .round
            .as_ref()
            .is_none_or(|r| r.script_started != script_started);
        if fresh {
            w.round = Some(Round::start(script_started, &w.ports, &w.listeners)?);
        }
        let round = w.round.as_mut().expect("started above");
        if !fresh && round.last.elapsed() < SERVE_EVERY {
            return None;
        }
        round.last = Instant::now();
        Some((server, round.ready()))
    }) else {
        return;
    };
    crate::replication::primary::forget_hung_up(&server, crate::server_state::current_worker());
    for token in ready {
        if let Some(listener) = token.checked_sub(LISTENER_TOKEN) {
            accept_all(&server, listener as usize);
            continue;
        }
        let port = WORKER.with(|w| {
            w.borrow()
                .round
                .as_ref()
                .and_then(|r| r.ports.get(token as usize).cloned())
        });
        let Some(port) = port else { continue };
        if !serve_port(&server, &port) {
            WORKER.with(|w| {
                if let Some(r) = w.borrow().round.as_ref() {
                    r.forget(port.fd);
                }
            });
        }
    }
}

/// Epoll tokens from this one up are listeners (the rest index the round's connections).
const LISTENER_TOKEN: u64 = 1 << 62;

/// Accepts the clients waiting on listener `index` of this worker; they join the round (and
/// are served once they send something).
fn accept_all(server: &Arc<Server>, index: usize) {
    // A client's task is started on this worker's runtime: only from within it.
    if tokio::runtime::Handle::try_current().is_err()
        || server
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let Some((listener, unix)) = WORKER.with(|w| w.borrow().listeners.get(index).cloned()) else {
        return;
    };
    loop {
        // SAFETY: a listening socket; no address is asked for.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return;
        }
        let me = crate::server_state::current_worker();
        let port = if let Some(path) = &unix {
            // SAFETY: a connected socket accept4 just gave, owned from here on.
            let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
            let Ok(stream) = tokio::net::UnixStream::from_std(std_stream) else {
                continue;
            };
            crate::connection_loop::accept_unix(server, me, stream, path.clone())
        } else {
            // SAFETY: a connected socket accept4 just gave, owned from here on.
            let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            let (Ok(peer), Ok(stream)) = (
                std_stream.peer_addr(),
                tokio::net::TcpStream::from_std(std_stream),
            ) else {
                continue;
            };
            crate::connection_loop::accept(server, me, stream, peer, false)
        };
        if let Some(port) = port {
            WORKER.with(|w| {
                if let Some(r) = w.borrow_mut().round.as_mut() {
                    r.watch(port);
                }
            });
        }
    }
}

impl Round {
    fn start(
        script_started: Instant,
        ports: &[Arc<Port>],
        listeners: &[(RawFd, Option<Arc<str>>)],
    ) -> Option<Round> {
        // SAFETY: epoll_create1 with a valid flag; the descriptor is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut round = Round {
            script_started,
            epoll,
            ports: Vec::with_capacity(ports.len()),
            last: Instant::now(),
        };
        for port in ports {
            round.watch(port.clone());
        }
        for (i, &(listener, _)) in listeners.iter().enumerate() {
            round.add(listener, LISTENER_TOKEN + i as u64);
        }
        Some(round)
    }

    /// Adds a connection to the round.
    fn watch(&mut self, port: Arc<Port>) {
        self.add(port.fd, self.ports.len() as u64);
        self.ports.push(port);
    }

    fn add(&self, fd: RawFd, token: u64) {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: valid descriptors and event.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    }

    /// The connections with something to read now (indexes into `ports`).
    fn ready(&self) -> Vec<u64> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: a valid epoll descriptor and a buffer of 64 events; no waiting.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                0,
            )
        };
        events[..n.max(0) as usize].iter().map(|e| e.u64).collect()
    }

    /// Leaves a connection to its task from now on.
    fn forget(&self, fd: RawFd) {
        // SAFETY: valid descriptors (an event pointer is ignored for DEL).
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }
}

/// Serves one connection with something to read: reads it, runs its requests, writes the
/// replies. False when the connection is left to its task from now on.
fn serve_port(server: &Arc<Server>, port: &Port) -> bool {
    // Not parked: the task runs (this script's own connection, say) or waits for something else.
    let Some(mut parts) = port.unpark() else {
        return true;
    };
    let keep = serve_parts(server, port.fd, &mut parts);
    port.park(parts);
    if let Some(waker) = port.waker.get() {
        waker.wake_by_ref();
    }
    keep
}

fn serve_parts(server: &Arc<Server>, fd: RawFd, parts: &mut ConnParts) -> bool {
    if parts.left_for_later || parts.conn.close_after_reply {
        return false;
    }
    let (read, open) = read_available(fd, &mut parts.unread);
    let stats = &server.worker_stats[parts.pipeline.worker()];
    bump(&stats.net_input_bytes, read as u64);
    let limit = server.hot.query_buffer_limit.load(Ordering::Relaxed);
    if parts.unread.len() as u64 > limit {
        // Its task closes it (past `client-query-buffer-limit`); nothing more is read here.
        parts.left_for_later = true;
    } else if open {
        run_requests(server, parts);
        write_available(fd, &mut parts.out, stats);
    } else {
        // Its task reads the end of the stream itself.
        parts.left_for_later = true;
    }
    if !parts.out.is_empty() {
        // It does not read its replies: the rest waits for its task.
        parts.left_for_later = true;
    }
    parts.served = true;
    !parts.left_for_later && !parts.conn.close_after_reply
}

/// Reads what the socket has (up to [`READ_PER_ROUND`]): the bytes read, and false once the
/// client closed (or the socket failed).
fn read_available(fd: RawFd, into: &mut BytesMut) -> (usize, bool) {
    let mut total = 0;
    while total < READ_PER_ROUND {
        into.reserve(16 * 1024);
        let spare = into.spare_capacity_mut();
        // SAFETY: reads into the buffer's spare capacity, of that length.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            // SAFETY: recv initialized the first n bytes of the spare capacity.
            unsafe { into.set_len(into.len() + n as usize) };
            total += n as usize;
            continue;
        }
        if n == 0 {
            return (total, false);
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => break,
            _ => return (total, false),
        }
    }
    (total, true)
}

/// Writes what the socket takes of `out` now.
fn write_available(fd: RawFd, out: &mut Vec<u8>, stats: &crate::server_state::WorkerStats) {
    let mut sent = 0;
    while sent < out.len() {
        // SAFETY: sends from a live buffer of that length.
        let n = unsafe {
            libc::send(
                fd,
                out[sent..].as_ptr().cast(),
                out.len() - sent,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    if sent > 0 {
        bump(&stats.net_output_bytes, sent as u64);
        bump(&stats.socket_writes, 1);
        out.drain(..sent);
    }
}

/// Runs the complete requests read, one at a time, until one has to wait for the script's end.
fn run_requests(server: &Arc<Server>, parts: &mut ConnParts) {
    let limits = server.hot.limits();
    loop {
        // A transaction's end, or any key's, needs the shards the script holds; a paused
        // client's command waits in its task.
        if parts.conn.watching.is_some() || server.pause.active() {
            parts.left_for_later = !parts.unread.is_empty();
            return;
        }
        let args = match parts
            .parser
            .parse(&mut parts.unread, &limits, parts.conn.authenticated)
        {
            Ok(None) => return,
            Ok(Some(args)) if args.is_empty() => continue,
            Ok(Some(args)) => args,
            Err(e) => {
                let mut msg = b"ERR ".to_vec();
                msg.extend_from_slice(&e.0);
                Reply::error_bytes(msg).encode(&mut parts.out, parts.conn.resp3);
                parts.conn.close_after_reply = true;
                parts.unread.clear();
                return;
            }
        };
        if !runs_while_busy(&args) {
            put_back(&args, &mut parts.unread);
            parts.left_for_later = true;
            return;
        }
        let id = parts.conn.id;
        let finished = {
            let ConnParts {
                conn,
                pipeline,
                out,
                ..
            } = &mut *parts;
            let execute = pin!(pipeline.execute(server, conn, vec![args], out));
            execute.poll(&mut Context::from_waker(Waker::noop()))
        };
        match finished {
            Poll::Ready(None) => {}
            Poll::Ready(Some(blocked)) => blocked.finish(server),
            Poll::Pending => tracing::error!(
                client = id,
                "a request served while a script is busy had to wait: dropped"
            ),
        }
        if parts.conn.close_after_reply {
            // QUIT, SHUTDOWN: nothing after it runs.
            parts.unread.clear();
            return;
        }
    }
}

/// Whether a request can run (or be refused) inside the script's hook: everything but the
/// few commands a busy server still runs is refused (-BUSY) without touching a shard; of
/// those, connection and transaction commands run, except WATCH.
fn runs_while_busy(args: &[Bytes]) -> bool {
    let Some(index) = command_table::lookup(&args[0]) else {
        return true;
    };
    let spec = &TABLE[index];
    if !arity_ok(spec.arity, args.len()) {
        return true;
    }
    let spec = if matches!(spec.run, Run::Container) {
        match command_table::resolve(index, args) {
            Ok(sub) => &TABLE[sub],
            Err(_) => return true,
        }
    } else {
        spec
    };
    let flags = command_table::subcommand_facts(args)
        .flatten()
        .map_or(spec.flags, |(_, f)| f);
    if !flags.contains(Flags::ALLOW_BUSY) {
        return true;
    }
    // (SHUTDOWN NOSAVE stops the script, and waits for nothing unless a replica lags.)
    matches!(
        spec.run,
        Run::Session(_)
            | Run::Shutdown
            | Run::Transaction(TxStep::Multi | TxStep::Discard | TxStep::Unwatch)
    )
}

/// Puts a parsed request back in front of what is left unread, as a RESP array.
fn put_back(args: &[Bytes], unread: &mut BytesMut) {
    let mut front = BytesMut::new();
    front.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        front.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        front.extend_from_slice(arg);
        front.extend_from_slice(b"\r\n");
    }
    front.extend_from_slice(unread);
    *unread = front;
}
