//! Worker threads: one per shard, each a current-thread tokio runtime with its own listening
//! socket (SO_REUSEPORT: the kernel spreads connections), its share of the fabric, and its
//! active-expiry timer.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info};

use crate::connection_loop;
use crate::dispatch;
use crate::server_state::{unix_ms, Server};

/// How long a connection waits for a request before it gives its buffers back (Redis frees
/// an idle client's query buffer after 2 s).
const IDLE_BUFFERS_AFTER: Duration = Duration::from_secs(2);
/// Samples per database per active-expiry tick (Redis's ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP is 20
/// per loop, with effort bounded by time; we bound by count, scaled by active-expire-effort).
const EXPIRE_SAMPLES_PER_TICK: usize = 200;

/// How often (seconds) `entropy-auto` looks at the shards' balance.
const ENTROPY_AUTO_SECS: u64 = 5;

/// The addresses `bind` names, on `port` (none for an empty `bind`). `held`: ports this server
/// listens on already (CONFIG SET bind keeps its port), which need no check that they are free.
pub fn bind_addresses(bind: &str, port: u16, held: &[u16]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for part in bind.split_whitespace() {
        let optional = part.starts_with('-');
        let host = part.trim_start_matches('-');
        let host = match host {
            "*" => "0.0.0.0",
            "::*" => "::",
            h => h,
        };
        let ip: std::net::IpAddr = match host.parse() {
            Ok(ip) => ip,
            Err(_) if optional => continue,
            Err(_) => return Err(format!("invalid bind address '{part}'")),
        };
        let addr = SocketAddr::new(ip, port);
        // The workers' listeners share the port (SO_REUSEPORT), which would also let them
        // share it with another server that has it: a plain bind first finds that out. An
        // optional address (`-::1`) this machine does not have is skipped, as Redis does.
        if !held.contains(&port) {
            match probe_bind(addr) {
                Ok(()) => {}
                Err(e) if optional && e.kind() == std::io::ErrorKind::AddrNotAvailable => continue,
                Err(e) => {
                    return Err(format!(
                        "Could not create server TCP listening socket {addr}: bind: {e}"
                    ))
                }
            }
        }
        out.push(addr);
    }
    if out.is_empty() && !bind.trim().is_empty() {
        return Err("no bind address".into());
    }
    Ok(out)
}

/// Binds `addr` without SO_REUSEPORT, and without listening: it fails if another socket
/// listens there. Not listening matters: a client that connected to a listening probe (a test
/// harness polling the port while the server starts) was reset when the probe closed.
fn probe_bind(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As std's TcpListener::bind: a previous server's connections in TIME_WAIT do not count.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

/// A listening address, and whether it speaks TLS.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    pub tls: bool,
}

/// Where to listen: `port` on every `bind` address (none with port 0), and `tls-port`
/// likewise; empty when `bind` is empty. `held` as for [`bind_addresses`].
pub fn endpoints(
    cfg: &crate::config_store::ConfigStore,
    held: &[u16],
) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for (param, tls) in [("port", false), ("tls-port", true)] {
        let port = cfg.get_i64(param) as u16;
        if port == 0 {
            continue;
        }
        if tls && cfg.get("tls-cert-file").is_empty() {
            return Err("tls-port is set but no tls-cert-file".into());
        }
        // Redis's second line on a port it cannot have; test harnesses (Redis's own) look for
        // it to retry on another port.
        let kind = if tls { "TLS" } else { "TCP" };
        let addrs = bind_addresses(cfg.get("bind"), port, held)
            .map_err(|e| format!("{e}. Failed listening on port {port} ({kind}), aborting."))?;
        for addr in addrs {
            out.push(Endpoint { addr, tls });
        }
    }
    Ok(out)
}

/// One worker's listening sockets, each with whether it speaks TLS.
pub type Sockets = Vec<(std::net::TcpListener, bool)>;

/// A listening socket of a worker: SO_REUSEPORT, so that every worker has its own on the same
/// address and the kernel spreads connections among them.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Every worker's sockets for `endpoints`, all made before any is used.
fn open_sockets(
    server: &Server,
    cfg: &crate::config_store::ConfigStore,
    endpoints: &[Endpoint],
) -> Result<Vec<Sockets>, String> {
    let backlog = cfg.get_i64("tcp-backlog").clamp(0, u32::MAX as i64) as u32;
    (0..server.threads())
        .map(|_| {
            endpoints
                .iter()
                .map(|e| {
                    listen(e.addr, backlog)
                        .map(|l| (l, e.tls))
                        .map_err(|err| format!("cannot listen on {}: {err}", e.addr))
                })
                .collect()
        })
        .collect()
}

/// Sockets CONFIG SET port/bind/tls-port made, handed to the workers: each takes its own and
/// closes those it had.
pub struct Rebinding {
    handover: Mutex<Vec<Option<Sockets>>>,
    changed: tokio::sync::watch::Sender<u64>,
    /// The TCP listening sockets accepted on now (every worker's): a rebind shuts them at once,
    /// before its reply, and an accepting task whose socket is no longer here ends.
    live: Mutex<Vec<RawFd>>,
}

impl Rebinding {
    pub fn new(workers: usize) -> Rebinding {
        Rebinding {
            handover: Mutex::new((0..workers).map(|_| None).collect()),
            changed: tokio::sync::watch::Sender::new(0),
            live: Mutex::new(Vec::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Vec<RawFd>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, me: usize) -> Option<Sockets> {
        self.handover.lock().unwrap_or_else(|p| p.into_inner())[me].take()
    }
}

/// CONFIG SET port, bind or tls-port, from `current` to `next` (its caller holds the
/// configuration's lock, so this reads neither from the server): every worker's new sockets are
/// listening before this returns (a client may connect at once), and the workers then close
/// their old ones, as Redis's changeListenPort/changeBindAddr. Err leaves the old in place.
pub fn rebind(
    server: &Server,
    current: &crate::config_store::ConfigStore,
    next: &crate::config_store::ConfigStore,
) -> Result<(), String> {
    let held: Vec<u16> = ["port", "tls-port"]
        .iter()
        .map(|p| current.get_i64(p) as u16)
        .filter(|&p| p != 0)
        .collect();
    let endpoints = endpoints(next, &held)?;
    let sockets = open_sockets(server, next, &endpoints)?;
    {
        let mut handover = server
            .rebinding
            .handover
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (slot, sockets) in handover.iter_mut().zip(sockets) {
            *slot = Some(sockets);
        }
    }
    // The old sockets stop taking connections now, as Redis closes them before its reply;
    // their workers drop them when they take the new ones. (A descriptor stays in `live` only
    // while its socket is open: the worker forgets it before closing it.)
    for fd in std::mem::take(&mut *server.rebinding.live()) {
        // SAFETY: a listening socket a worker still holds open (see above).
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
    server.rebinding.changed.send_modify(|n| *n += 1);
    info!(
        "Listening on {:?}",
        endpoints.iter().map(|e| e.addr).collect::<Vec<_>>()
    );
    Ok(())
}

/// `unixsocket`: the Unix socket clients may connect through (none when not set), made as
/// Redis makes it: a file left at the path is removed first, and `unixsocketperm` (unless 0)
/// sets its mode. Every worker accepts on it.
pub struct UnixEndpoint {
    pub listener: std::os::unix::net::UnixListener,
    /// As configured: CLIENT LIST shows it, the server removes it when it exits.
    pub path: Arc<str>,
}

pub fn listen_unix(cfg: &crate::config_store::ConfigStore) -> Result<Option<UnixEndpoint>, String> {
    let path = cfg.get("unixsocket");
    if path.is_empty() {
        return Ok(None);
    }
    let _ = std::fs::remove_file(path);
    let failed = |e: std::io::Error| format!("Failed opening Unix socket: {e}");
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(failed)?;
    let perm = i64::from_str_radix(cfg.get("unixsocketperm"), 8).unwrap_or(0);
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm as u32))
            .map_err(failed)?;
    }
    Ok(Some(UnixEndpoint {
        listener,
        path: path.into(),
    }))
}

/// Starts every worker thread; returns once all of them are listening (or one failed).
pub fn start(
    server: Arc<Server>,
    addrs: Vec<Endpoint>,
    unix: Option<&UnixEndpoint>,
) -> Result<(), String> {
    crate::replication::replica::follow_configured(&server);
    let mut sockets = {
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        open_sockets(&server, &cfg, &addrs)?.into_iter()
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for me in 0..server.threads() {
        let server = server.clone();
        let sockets = sockets.next().expect("a set per worker");
        let unix = match unix {
            Some(u) => Some((
                u.listener
                    .try_clone()
                    .map_err(|e| format!("Failed opening Unix socket: {e}"))?,
                u.path.clone(),
            )),
            None => None,
        };
        let ready = ready_tx.clone();
        std::thread::Builder::new()
            .name(format!("warp-worker-{me}"))
            .spawn(move || run_worker(server, me, sockets, unix, ready))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
    }
    drop(ready_tx);
    for _ in 0..server.threads() {
        ready_rx
            .recv()
            .map_err(|_| "a worker died while starting".to_string())??;
    }
    Ok(())
}

fn run_worker(
    server: Arc<Server>,
    me: usize,
    sockets: Sockets,
    unix: Option<(std::os::unix::net::UnixListener, Arc<str>)>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    crate::server_state::set_current_worker(me);
    let park_server = server.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || {
            // Answer what is waiting, announce sleep, then look once more: a sender that
            // queued after our first look either sees the flag and wakes us, or is seen here.
            dispatch::drain(&park_server, me);
            park_server.replication.before_sleep(me);
            park_server.fabric.announce_sleep(me);
            dispatch::drain(&park_server, me);
        })
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let unix = match unix.map(|(listener, path)| {
            listener.set_nonblocking(true)?;
            Ok::<_, std::io::Error>((tokio::net::UnixListener::from_std(listener)?, path))
        }) {
            Some(Ok(unix)) => Some(unix),
            Some(Err(e)) => {
                let _ = ready.send(Err(format!("Failed opening Unix socket: {e}")));
                return;
            }
            None => None,
        };
        let _ = ready.send(Ok(()));
        if let Some((listener, path)) = unix {
            tokio::spawn(accept_unix_loop(server.clone(), me, listener, path));
        }
        tokio::spawn(serve_listeners(server.clone(), me, sockets));
        tokio::spawn(inbox_loop(server.clone(), me));
        tokio::spawn(crate::replication::run_local_sender(server.clone(), me));
        if me == 0 {
            tokio::spawn(crate::replication::replica::run(server.clone(), me));
        }
        tokio::spawn(crate::persist::syncer_loop(server.clone(), me));
        tokio::spawn(crate::persist::flusher_loop(server.clone(), me));
        expiry_loop(server, me).await;
    });
}

/// Accepts on this worker's sockets, and moves to new ones when CONFIG SET hands them over
/// (see [`rebind`]), closing the old.
async fn serve_listeners(server: Arc<Server>, me: usize, sockets: Sockets) {
    let mut changed = server.rebinding.changed.subscribe();
    let mut accepting = start_accepting(&server, me, sockets);
    while changed.changed().await.is_ok() {
        let Some(sockets) = server.rebinding.take(me) else {
            continue;
        };
        for (task, fd) in accepting.drain(..) {
            // Forgotten before the task (and its socket) goes: the descriptor's number may be
            // a client's next.
            server.rebinding.live().retain(|&l| l != fd);
            server
                .listening
                .lock()
                .expect("listening lock")
                .retain(|&l| l != fd);
            crate::busy_clients::unregister_listener(fd);
            task.abort();
        }
        accepting = start_accepting(&server, me, sockets);
    }
}

/// An accepting task per socket, each with its socket's descriptor.
fn start_accepting(
    server: &Arc<Server>,
    me: usize,
    sockets: Sockets,
) -> Vec<(tokio::task::JoinHandle<()>, RawFd)> {
    let mut out = Vec::new();
    for (listener, tls) in sockets {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                error!(worker = me, "cannot accept on a listening socket: {e}");
                continue;
            }
        };
        let fd = listener.as_raw_fd();
        server.listening.lock().expect("listening lock").push(fd);
        server.rebinding.live().push(fd);
        if !tls {
            // A busy script's hook accepts on it too (see busy_clients).
            crate::busy_clients::register_listener(server, fd, None);
        }
        out.push((
            tokio::spawn(accept_loop(server.clone(), me, listener, tls)),
            fd,
        ));
    }
    out
}

async fn accept_loop(server: Arc<Server>, me: usize, listener: TcpListener, tls: bool) {
    server.loading.wait_until_admitting().await;
    loop {
        let accepted = listener.accept().await;
        if server.shutting_down.load(Ordering::Relaxed) {
            return; // stopping: the listener is shut, new clients are refused
        }
        match accepted {
            Ok((stream, peer)) => {
                connection_loop::accept(&server, me, stream, peer, tls);
            }
            Err(_) if !server.rebinding.live().contains(&listener.as_raw_fd()) => {
                // Shut by a rebind: the socket stays open (its descriptor unused by anything
                // else) until this worker, moving to the new ones, forgets it and ends this.
                std::future::pending::<()>().await;
            }
            Err(e) => {
                error!(worker = me, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Accepts clients of the Unix socket. Every worker waits on the same socket; the kernel
/// gives each connection to one of them.
async fn accept_unix_loop(
    server: Arc<Server>,
    me: usize,
    listener: tokio::net::UnixListener,
    path: Arc<str>,
) {
    server
        .listening
        .lock()
        .expect("listening lock")
        .push(listener.as_raw_fd());
    crate::busy_clients::register_listener(&server, listener.as_raw_fd(), Some(path.clone()));
    server.loading.wait_until_admitting().await;
    loop {
        let accepted = listener.accept().await;
        if server.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                connection_loop::accept_unix(&server, me, stream, path.clone());
            }
            Err(e) => {
                error!(worker = me, "accept failed on the Unix socket: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs when another worker woke us because we were asleep with messages waiting.
async fn inbox_loop(server: Arc<Server>, me: usize) {
    let link = server.fabric.link(me);
    loop {
        link.notify.notified().await;
        dispatch::drain(&server, me);
    }
}

async fn expiry_loop(server: Arc<Server>, me: usize) {
    let mut last_idle_check = std::time::Instant::now();
    let mut last_auto_step = std::time::Instant::now();
    let mut ticks_of_seconds = 0u64;
    let mut last_save_try = 0u64;
    loop {
        let hz = server.hot.hz.load(Ordering::Relaxed).max(1);
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        if server.shutting_down.load(Ordering::Relaxed) {
            info!(worker = me, "worker stopping");
            return;
        }
        // Nor while the data loads: Redis's serverCron does not run then.
        if server.hot.cron_paused.load(Ordering::Relaxed) || server.loading.active() {
            continue;
        }
        if me == 0 {
            // A shutdown waiting for lagging replicas (Redis's serverCron checks it too).
            crate::shutdown::poll(&server);
            crate::replication::primary::ping_replicas(&server);
        }
        if me == 0 && server.wal.failed.load(Ordering::Relaxed) {
            crate::persist::snapshot::retry_after_failure(&server);
        }
        server.quantum.prune(me, unix_ms());
        crate::memory_accounting::release_freed();
        crate::busy_clients::ask_to_trim(&server, me, IDLE_BUFFERS_AFTER);
        if let Some(mut shard) = server.try_lock_shard(me) {
            server.entropy.sample(&shard);
            server.entropy.keep_slot_indexes(&mut shard);
            if server.hot_copies.active() {
                crate::hot_copies::tick(&server, &mut shard);
            }
        }
        if me == 0 {
            server.sampler.sample(server.rate_totals());
            if server.tracking.active() {
                server.tracking.limit_keys(&server);
            }
            if last_auto_step.elapsed() >= Duration::from_secs(1) {
                last_auto_step = std::time::Instant::now();
                crate::hot_copies::auto_step(&server);
                crate::persist::background::save_if_rules_due(&server, &mut last_save_try);
                server.clients.recheck_soft_limits(&server.pubsub.limits);
                server.migrate_sockets.close_idle();
                ticks_of_seconds += 1;
                if ticks_of_seconds.is_multiple_of(crate::entropy_state::SLOT_DECAY_SECS) {
                    server.entropy.decay_slots();
                }
                if ticks_of_seconds.is_multiple_of(ENTROPY_AUTO_SECS)
                    && server
                        .config
                        .read()
                        .expect("config lock")
                        .get_bool("entropy-auto")
                {
                    crate::entropy_state::auto_step(&server);
                }
            }
            let timeout = server.hot.timeout_secs.load(Ordering::Relaxed);
            if timeout > 0 && last_idle_check.elapsed() >= Duration::from_secs(1) {
                // As Redis's client cron: reaches clients that were already waiting when
                // `timeout` was set (a connection's own wait uses the value it started with).
                last_idle_check = std::time::Instant::now();
                server.clients.close_idle(Duration::from_secs(timeout));
            }
        }
        // Over maxmemory with no command to make room (memory grew under clients' unread
        // replies, say, while their workers wait to write): the tick evicts, as a command
        // would (a replica leaves it to its primary).
        if crate::eviction::over_limit(&server) && !server.replication.is_replica() {
            if let Some(mut shard) = server.try_lock_shard(me) {
                crate::eviction::make_room(&server, &mut shard, unix_ms());
                server.publish_spare(&shard);
                if server.wal.records() {
                    crate::persist::log::flush_expired(&server, &mut shard);
                }
                drop(shard);
                crate::keyspace_events::publish_raised(&server);
            }
        }
        if !server.hot.active_expire.load(Ordering::Relaxed) || server.pause.in_force() {
            continue;
        }
        // A replica's keys expire when its primary deletes them (reads skip them meanwhile),
        // but for those its own clients wrote with a TTL (`replica-read-only no`).
        if server.replication.is_replica() {
            if me == 0 {
                server.replication.local_keys.expire_due(&server);
            }
            continue;
        }
        let effort = server
            .config
            .read()
            .expect("config lock")
            .get_i64("active-expire-effort")
            .max(1) as usize;
        // A script that holds this shard (past busy-reply-threshold, maybe) must not stop
        // this worker from serving its clients (SCRIPT KILL among them): the cycle waits for
        // the next tick instead.
        let Some(mut shard) = server.try_lock_shard(me) else {
            continue;
        };
        let cycle = std::time::Instant::now();
        shard.active_expire(unix_ms(), EXPIRE_SAMPLES_PER_TICK * effort);
        crate::server_state::bump(
            &server.worker_stats[me].expire_cycle_us,
            cycle.elapsed().as_micros() as u64,
        );
        // As Redis's latency monitor: a cycle past latency-monitor-threshold is an event.
        server.timing.observe_event("expire-cycle", cycle.elapsed());
        crate::keyspace_events::publish_raised(&server);
        server.publish_spare(&shard);
        if server.wal.records() {
            crate::persist::log::flush_expired(&server, &mut shard);
        }
    }
}
