//! Issue 14's experiment "io_uring for the sockets against epoll", taken apart from the server so
//! that nothing but the socket handling differs: one thread serves the same small Redis subset
//! (GET, SET, PING, CONFIG GET, enough for redis-benchmark) over TCP, either
//!
//! - `epoll`: level-triggered readiness, one `read` per ready socket and the replies written at
//!   once, the loop Redis runs and the one WarpEngine's workers get from tokio; or
//! - `uring`: io_uring with a multishot accept, a multishot receive per connection into a ring
//!   of provided buffers (no receive is submitted per request), and sends queued and submitted
//!   together once per loop turn (`submit_and_wait`), with `SINGLE_ISSUER | DEFER_TASKRUN`.
//!
//! `bench/sockets.sh` runs both (and redis-server for scale) under redis-benchmark at P=1 and
//! P=16 and prints the server CPU per million requests: whether io_uring's batching pays on this
//! kernel, before any of the server is rebuilt on it.
//!
//!     socket-spike epoll|uring PORT
//!     socket-spike syscall          (what one system call costs here: what io_uring can save)

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("syscall") {
        syscall_cost();
        return;
    }
    let (Some(mode), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!("usage: socket-spike epoll|uring PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let result = match mode.as_str() {
        "epoll" => run_epoll(&listener),
        "uring" => run_uring(&listener),
        _ => {
            eprintln!("mode must be epoll or uring");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("socket-spike {mode}: {e}");
        std::process::exit(1);
    }
}

/// Prints the time of one system call that does nothing (`getppid`), the median of 5 runs of
/// 2 million.
fn syscall_cost() {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..2_000_000 {
                // SAFETY: getppid has no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            start.elapsed().as_nanos() as f64 / 2e6
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!("one system call (getppid): {:.1} ns", runs[2]);
}

/// The keyspace and the request handling both loops share.
#[derive(Default)]
struct Store {
    map: HashMap<Vec<u8>, Vec<u8>>,
    /// One request's arguments, as ranges of the input (kept to reuse its room).
    args: Vec<(usize, usize)>,
}

impl Store {
    /// Answers every complete request at the start of `input` into `out`; the bytes consumed,
    /// or None for input that is not a multibulk request (the connection is then closed).
    fn serve(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut pos = 0;
        while pos < input.len() {
            match parse(&input[pos..], &mut self.args)? {
                0 => break,
                used => {
                    let request = &input[pos..pos + used];
                    self.answer(request, out);
                    pos += used;
                }
            }
        }
        Some(pos)
    }

    fn answer(&mut self, request: &[u8], out: &mut Vec<u8>) {
        let arg = |i: usize| -> &[u8] {
            let (s, e) = self.args[i];
            &request[s..e]
        };
        let name = arg(0);
        if name.eq_ignore_ascii_case(b"GET") && self.args.len() == 2 {
            match self.map.get(arg(1)) {
                Some(v) => {
                    out.push(b'$');
                    out.extend_from_slice(v.len().to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(b"$-1\r\n"),
            }
        } else if name.eq_ignore_ascii_case(b"SET") && self.args.len() == 3 {
            let (key, value) = (arg(1).to_vec(), arg(2).to_vec());
            self.map.insert(key, value);
            out.extend_from_slice(b"+OK\r\n");
        } else if name.eq_ignore_ascii_case(b"PING") {
            out.extend_from_slice(b"+PONG\r\n");
        } else if name.eq_ignore_ascii_case(b"CONFIG") && self.args.len() == 3 {
            // redis-benchmark asks for `save` and `appendonly` (CONFIG GET name): empty.
            let name = arg(2);
            out.extend_from_slice(b"*2\r\n$");
            out.extend_from_slice(name.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\r\n$0\r\n\r\n");
        } else {
            out.extend_from_slice(b"-ERR unknown command\r\n");
        }
    }
}

/// One multibulk request at the start of `b`: its length (0: not complete yet), its arguments'
/// ranges in `args`; None when it is not a multibulk request.
fn parse(b: &[u8], args: &mut Vec<(usize, usize)>) -> Option<usize> {
    /// `<digits>\r\n` at `at`: the number and the position after it (None: malformed; Some(None):
    /// incomplete).
    fn number(b: &[u8], mut at: usize) -> Option<Option<(usize, usize)>> {
        let mut n = 0usize;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            n = n.checked_mul(10)?.checked_add((b[at] - b'0') as usize)?;
            at += 1;
        }
        if at + 1 >= b.len() {
            return Some(None);
        }
        if at == start || b[at] != b'\r' || b[at + 1] != b'\n' {
            return None;
        }
        Some(Some((n, at + 2)))
    }
    args.clear();
    if b.is_empty() {
        return Some(0);
    }
    if b[0] != b'*' {
        return None;
    }
    let Some((count, mut at)) = number(b, 1)? else {
        return Some(0);
    };
    if count == 0 || count > 1024 {
        return None;
    }
    for _ in 0..count {
        if at >= b.len() {
            return Some(0);
        }
        if b[at] != b'$' {
            return None;
        }
        let Some((len, start)) = number(b, at + 1)? else {
            return Some(0);
        };
        if start + len + 2 > b.len() {
            return Some(0);
        }
        args.push((start, start + len));
        at = start + len + 2;
    }
    Some(at)
}

/// A connection's buffers, in both loops.
#[derive(Default)]
struct Conn {
    /// Bytes of a request not complete yet.
    input: Vec<u8>,
    /// Replies not handed to the kernel yet.
    out: Vec<u8>,
    /// uring: the replies a send is in flight for (untouched until it completes), and how much
    /// of them went; epoll: what a short write left.
    sending: Vec<u8>,
    sent: usize,
    in_flight: bool,
    /// uring: a multishot receive is armed.
    receiving: bool,
    closed: bool,
}

impl Conn {
    /// Serves `data` just received; false when the connection is to close.
    fn received(&mut self, store: &mut Store, data: &[u8]) -> bool {
        if self.input.is_empty() {
            // The common case: whole requests, served straight from the receive buffer.
            let Some(used) = store.serve(data, &mut self.out) else {
                return false;
            };
            self.input.extend_from_slice(&data[used..]);
        } else {
            self.input.extend_from_slice(data);
            let Some(used) = store.serve(&self.input, &mut self.out) else {
                return false;
            };
            self.input.drain(..used);
        }
        true
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

const LISTENER: u64 = u64::MAX;

fn run_epoll(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: plain syscalls on descriptors this function owns; buffers outlive each call.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        let watch = |op: i32, fd: RawFd, events: u32, token: u64| {
            let mut ev = libc::epoll_event { events, u64: token };
            libc::epoll_ctl(ep, op, fd, &mut ev);
        };
        watch(
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            libc::EPOLLIN as u32,
            LISTENER,
        );
        let mut store = Store::default();
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1);
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return Err(io::Error::last_os_error());
            }
            for ev in &events[..n as usize] {
                let (flags, token) = (ev.events, ev.u64);
                if token == LISTENER {
                    loop {
                        let fd = libc::accept4(
                            listener.as_raw_fd(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        );
                        if fd < 0 {
                            break;
                        }
                        set_nodelay(fd);
                        if conns.len() <= fd as usize {
                            conns.resize_with(fd as usize + 1, || None);
                        }
                        conns[fd as usize] = Some(Conn::default());
                        watch(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, fd as u64);
                    }
                    continue;
                }
                let fd = token as RawFd;
                let Some(conn) = conns[fd as usize].as_mut() else {
                    continue;
                };
                let mut close = false;
                if flags & libc::EPOLLOUT as u32 != 0 && !conn.sending.is_empty() {
                    let rest = &conn.sending[conn.sent..];
                    let w = libc::write(fd, rest.as_ptr().cast(), rest.len());
                    if w > 0 {
                        conn.sent += w as usize;
                        if conn.sent == conn.sending.len() {
                            conn.sending.clear();
                            conn.sent = 0;
                            watch(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, token);
                        }
                    } else if errno() != libc::EAGAIN {
                        close = true;
                    }
                }
                if !close && flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    if r == 0 || (r < 0 && errno() != libc::EAGAIN) {
                        close = true;
                    } else if r > 0 {
                        close = !conn.received(&mut store, &buf[..r as usize]);
                    }
                }
                if !close && !conn.out.is_empty() {
                    if conn.sending.is_empty() {
                        let w = libc::write(fd, conn.out.as_ptr().cast(), conn.out.len());
                        let w = if w < 0 {
                            if errno() != libc::EAGAIN {
                                close = true;
                            }
                            0
                        } else {
                            w as usize
                        };
                        if !close && w < conn.out.len() {
                            // The kernel took part: the rest goes when the socket is writable.
                            conn.sending.extend_from_slice(&conn.out[w..]);
                            watch(
                                libc::EPOLL_CTL_MOD,
                                fd,
                                (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                                token,
                            );
                        }
                        conn.out.clear();
                    } else {
                        let out = std::mem::take(&mut conn.out);
                        conn.sending.extend_from_slice(&out);
                        conn.out = out;
                        conn.out.clear();
                    }
                }
                if close {
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
                    libc::close(fd);
                    conns[fd as usize] = None;
                }
            }
        }
    }
}

/// The provided buffers multishot receives fill: how many and how large.
const BUFFERS: u16 = 1024;
const BUFFER_BYTES: usize = 16 * 1024;
const GROUP: u16 = 0;

const ACCEPT: u64 = 1 << 56;
const RECV: u64 = 2 << 56;
const SEND: u64 = 3 << 56;
const KIND: u64 = 0xff << 56;

/// Queues `entry`, submitting what is queued first when the submission queue is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every entry refers to a descriptor and, for sends, to a connection's
        // `sending` buffer, which is not touched until the send completes.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

fn send_entry(fd: RawFd, bytes: &[u8]) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), bytes.as_ptr(), bytes.len() as u32)
        .build()
        .user_data(SEND | fd as u64)
}

fn recv_entry(fd: RawFd) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fd(fd), GROUP)
        .build()
        .user_data(RECV | fd as u64)
}

fn run_uring(listener: &TcpListener) -> io::Result<()> {
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)?;
    // The provided-buffer ring: BUFFERS entries of 16 bytes, page-aligned, and the buffers.
    let layout =
        std::alloc::Layout::from_size_align(BUFFERS as usize * 16, 4096).expect("buffer ring");
    // SAFETY: a non-zero layout; the memory lives until the process ends (the loop never returns
    // but on error, when the ring is dropped first).
    let entries = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
    let mut buffers = vec![0u8; BUFFERS as usize * BUFFER_BYTES];
    // SAFETY: `entries` covers BUFFERS entries and outlives the ring's use of it.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(entries as u64, BUFFERS, GROUP, 0)?;
    }
    let tail = |entries: *mut types::BufRingEntry| {
        // SAFETY: the ring's tail is the first entry's reserved field, as the kernel reads it.
        unsafe { &*(types::BufRingEntry::tail(entries) as *const std::sync::atomic::AtomicU16) }
    };
    let mut next_tail: u16 = 0;
    // Hands buffer `bid` (back) to the kernel; published with the tail at the end of a turn.
    let provide = |next_tail: &mut u16, buffers: &mut [u8], bid: u16| {
        // SAFETY: the index is within the ring (BUFFERS is a power of two).
        let entry = unsafe { &mut *entries.add((*next_tail & (BUFFERS - 1)) as usize) };
        entry.set_addr(buffers[bid as usize * BUFFER_BYTES..].as_mut_ptr() as u64);
        entry.set_len(BUFFER_BYTES as u32);
        entry.set_bid(bid);
        *next_tail = next_tail.wrapping_add(1);
    };
    for bid in 0..BUFFERS {
        provide(&mut next_tail, &mut buffers, bid);
    }
    tail(entries).store(next_tail, std::sync::atomic::Ordering::Release);

    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
        .build()
        .user_data(ACCEPT);
    push(&mut ring, &accept)?;
    let mut store = Store::default();
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, res, flags) in &done {
            let fd = (data & !KIND) as RawFd;
            match data & KIND {
                ACCEPT => {
                    if res >= 0 {
                        set_nodelay(res);
                        if conns.len() <= res as usize {
                            conns.resize_with(res as usize + 1, || None);
                        }
                        conns[res as usize] = Some(Conn {
                            receiving: true,
                            ..Conn::default()
                        });
                        push(&mut ring, &recv_entry(res))?;
                    }
                    if !cqueue::more(flags) {
                        push(&mut ring, &accept)?;
                    }
                }
                RECV => {
                    let Some(conn) = conns.get_mut(fd as usize).and_then(|c| c.as_mut()) else {
                        continue;
                    };
                    if res > 0 {
                        let bid = cqueue::buffer_select(flags).expect("a provided buffer");
                        let at = bid as usize * BUFFER_BYTES;
                        let data = &buffers[at..at + res as usize];
                        if !conn.received(&mut store, data) {
                            conn.closed = true;
                        }
                        provide(&mut next_tail, &mut buffers, bid);
                        if !conn.in_flight && !conn.out.is_empty() {
                            std::mem::swap(&mut conn.out, &mut conn.sending);
                            conn.sent = 0;
                            conn.in_flight = true;
                            push(&mut ring, &send_entry(fd, &conn.sending))?;
                        }
                    } else if res != -libc::ENOBUFS {
                        // The client closed (0) or the socket failed.
                        conn.closed = true;
                    }
                    conn.receiving = cqueue::more(flags);
                    if !conn.closed && !conn.receiving {
                        // Out of buffers (ENOBUFS) or ended by the kernel: armed again.
                        conn.receiving = true;
                        push(&mut ring, &recv_entry(fd))?;
                    }
                    retire_if_closed(&mut conns, fd);
                }
                SEND => {
                    let Some(conn) = conns.get_mut(fd as usize).and_then(|c| c.as_mut()) else {
                        continue;
                    };
                    conn.in_flight = false;
                    if res < 0 {
                        conn.closed = true;
                    } else {
                        conn.sent += res as usize;
                    }
                    if !conn.closed && conn.sent < conn.sending.len() {
                        conn.in_flight = true;
                        push(&mut ring, &send_entry(fd, &conn.sending[conn.sent..]))?;
                    } else if !conn.closed {
                        conn.sending.clear();
                        conn.sent = 0;
                        if !conn.out.is_empty() {
                            std::mem::swap(&mut conn.out, &mut conn.sending);
                            conn.in_flight = true;
                            push(&mut ring, &send_entry(fd, &conn.sending))?;
                        }
                    }
                    retire_if_closed(&mut conns, fd);
                }
                _ => {}
            }
        }
        tail(entries).store(next_tail, std::sync::atomic::Ordering::Release);
    }
}

/// A closed connection's descriptor is closed once nothing is in flight on it; a receive still
/// armed is ended by shutting the socket down (it then completes without MORE).
fn retire_if_closed(conns: &mut [Option<Conn>], fd: RawFd) {
    let Some(conn) = conns[fd as usize].as_ref() else {
        return;
    };
    if !conn.closed {
        return;
    }
    if !conn.in_flight && !conn.receiving {
        // SAFETY: our descriptor, with nothing in flight on it.
        unsafe { libc::close(fd) };
        conns[fd as usize] = None;
    } else if conn.receiving {
        // SAFETY: shutting down our own socket.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_answered_whole_and_split() {
        let mut store = Store::default();
        let mut conn = Conn::default();
        let all = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        for split in 0..all.len() {
            conn.out.clear();
            assert!(conn.received(&mut store, &all[..split]));
            assert!(conn.received(&mut store, &all[split..]));
            assert_eq!(conn.out, b"+OK\r\n$2\r\nvv\r\n+PONG\r\n");
            assert!(conn.input.is_empty());
        }
        assert!(!conn.received(&mut store, b"GET k\r\n"));
    }
}
