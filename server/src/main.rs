use std::sync::Arc;

use tracing::{error, info, warn};

use warpengine::config_store::{CliError, CommandLine, ConfigStore};
use warpengine::server_state::Server;
use warpengine::worker;

/// glibc's per-thread arenas grow and shrink page by page (an mprotect each) under a growing
/// keyspace; mimalloc keeps per-thread free lists without that. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: warpengine::memory_accounting::CountingMimalloc =
    warpengine::memory_accounting::CountingMimalloc;

/// Where the process id is written: `pidfile`, or Redis's default when daemonized.
fn pidfile_path(config: &ConfigStore) -> Option<String> {
    match config.get("pidfile") {
        "" if config.get_bool("daemonize") => Some("/var/run/warpengine.pid".into()),
        "" => None,
        path => Some(path.to_string()),
    }
}

/// Detaches from the terminal as redis-server does with `daemonize yes`: the parent exits,
/// the child leads a new session with its standard streams on /dev/null.
fn daemonize() {
    // SAFETY: called before any other thread exists; the child only continues in Rust.
    unsafe {
        match libc::fork() {
            -1 => {
                eprintln!("*** FATAL *** cannot fork to daemonize");
                std::process::exit(1);
            }
            0 => {}
            _ => std::process::exit(0),
        }
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

fn main() {
    let command_line = match CommandLine::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(CliError::Version) => {
            // Redis's own line, field for field: tools and client test suites read the version
            // the server answers as from `redis-server -v` (redis-rs's test support splits it at
            // " v=" and enables DEBUG from 7 on). WarpEngine's own version is in `build=`.
            println!(
                "WarpEngine server v={} sha=00000000:0 malloc=mimalloc bits=64 build=warpengine-{}",
                warpengine::server_state::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
            );
            return;
        }
        Err(CliError::Help) => {
            println!("{}", warpengine::config_store::USAGE);
            return;
        }
        Err(CliError::Bad(e)) => {
            eprintln!("*** FATAL CONFIG ERROR *** {e}");
            std::process::exit(1);
        }
    };
    let config = match command_line.to_config() {
        Ok(c) => c,
        // A command-line line's error is already Redis's block.
        Err(e) if e.starts_with("\n*** FATAL") => {
            eprintln!("{e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR *** {e}");
            std::process::exit(1);
        }
    };
    // As Redis, which changes into `dir` as it reads it: relative paths (aclfile, logfile,
    // pidfile, unixsocket, TLS files) are inside it.
    let dir = config.get("dir");
    if !dir.is_empty() {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("*** FATAL CONFIG FILE ERROR *** Can't chdir to '{dir}': {e}");
            std::process::exit(1);
        }
    }
    warpengine::memory_accounting::mark_in_use();
    if config.get_bool("disable-thp") {
        warpengine::memory_accounting::disable_transparent_huge_pages();
    }
    // Forking is only safe while this is the only thread: before logging and workers start.
    if config.get_bool("daemonize") {
        daemonize();
    }
    if let Err(e) = warpengine::logging::init(&config) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    warpengine::crash_report::set_enabled(config.get_bool("crash-log-enabled"));
    warpengine::crash_report::install();
    // Redis's start-up lines, in its words where tools read them: Redis's test harness waits
    // for " PID: <pid>" and then "Server initialized", and then "Ready to accept".
    info!(
        "WarpEngine version={}, redis_version=7.0.15, bits=64, pid={}, just started",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let pidfile = pidfile_path(&config);
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            tracing::warn!("cannot write the pidfile {path}: {e}");
        }
    }

    let threads = match config.get_i64("threads") {
        n if n > 0 => n as usize,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut config = config;
    adjust_open_files_limit(&mut config);
    let endpoints = match worker::endpoints(&config, &[]) {
        Ok(e) => e,
        Err(e) => {
            error!("{e}");
            std::process::exit(1);
        }
    };
    if endpoints.is_empty() && config.get("unixsocket").is_empty() {
        error!("Configured to not listen anywhere, exiting.");
        std::process::exit(1);
    }
    let addrs: Vec<std::net::SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
    // The cluster bus and the metrics port listen on the first address (loopback with none).
    let first_ip = addrs
        .first()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |a| a.ip());
    warpengine::commands::install();
    if let Err(e) = warpengine::command_table::rename_commands(&config.renames) {
        error!("*** FATAL CONFIG FILE ERROR *** {e}");
        std::process::exit(1);
    }
    let server = Arc::new(Server::new(config, threads));
    if let Err(e) = server
        .tls
        .reload(&server.config.read().expect("config lock"))
    {
        error!("Failed to configure TLS: {e}");
        std::process::exit(1);
    }
    let (aclfile, users) = {
        let cfg = server.config.read().expect("config lock");
        (cfg.get("aclfile").to_string(), cfg.users.clone())
    };
    if !users.is_empty() && !aclfile.is_empty() {
        error!("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.");
        std::process::exit(1);
    }
    if let Err(e) = server.acl.create_configured(&users) {
        error!("{e}");
        std::process::exit(1);
    }
    server.sync_auth_required();
    if !aclfile.is_empty() {
        if let Err(e) = server.acl.load_file(&aclfile) {
            error!("Aborting Redis startup because of ACL errors: {e}");
            std::process::exit(1);
        }
        server.sync_auth_required();
    }
    let _ = warpengine::oom_score::apply(
        &server.config.read().expect("config lock"),
        server.replication.is_replica(),
    );
    warpengine::memory_accounting::mark_startup();
    // As Redis: the server listens before it loads its data, and answers -LOADING meanwhile
    // (commands flagged `loading`, INFO among them, run); see persist::loading.
    server.loading.begin(&server, 0);
    // The bus port first: a server that cannot have it exits before taking clients.
    if server.cluster.enabled() {
        if let Err(e) = warpengine::cluster::links::start(server.clone(), first_ip) {
            error!("Could not bind the cluster bus port: {e}");
            std::process::exit(1);
        }
    }
    let unix = match worker::listen_unix(&server.config.read().expect("config lock")) {
        Ok(unix) => unix,
        Err(e) => {
            error!("{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = worker::start(server.clone(), endpoints, unix.as_ref()) {
        error!("{e}");
        std::process::exit(1);
    }
    let metrics_port = server
        .config
        .read()
        .expect("config lock")
        .get_i64("metrics-port") as u16;
    if metrics_port != 0 {
        let addr = std::net::SocketAddr::new(first_ip, metrics_port);
        if let Err(e) = warpengine::metrics::start(server.clone(), addr) {
            error!("{e}");
            std::process::exit(1);
        }
    }
    // Logged once the sockets listen, as Redis logs them: a test harness that reads " PID: "
    // connects at once, before "Ready to accept" (which comes once the data is loaded).
    info!(
        "Running mode={}, port={}, PID: {}",
        if server.cluster.enabled() {
            "cluster"
        } else {
            "standalone"
        },
        addrs.first().map_or(0, |a| a.port()),
        std::process::id()
    );
    info!("Server initialized");
    let loader = server.clone();
    let unix_path = unix.as_ref().map(|u| u.path.clone());
    let spawned = std::thread::Builder::new()
        .name("warp-loader".into())
        .spawn(move || load_dataset(&loader, threads, &addrs, unix_path.as_deref()));
    if let Err(e) = spawned {
        error!("cannot start the thread that loads the data: {e}");
        std::process::exit(1);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    runtime.block_on(wait_for_shutdown(&server));
    if server.wal.is_on() && !server.wal.close() {
        error!("the log could not be written and synced completely before exiting");
    }
    if let Some(path) = &pidfile {
        std::fs::remove_file(path).ok();
    }
    if let Some(unix) = &unix {
        std::fs::remove_file(&*unix.path).ok();
    }
    info!("WarpEngine is now ready to exit, bye bye...");
    std::process::exit(0);
}

/// Loads the data (the RDB file, or the log), then lets clients in: "Ready to accept
/// connections", as Redis says once its load is done. A load that fails stops the server, as
/// Redis's start stops.
fn load_dataset(
    server: &Server,
    threads: usize,
    addrs: &[std::net::SocketAddr],
    unix: Option<&str>,
) {
    if let Err(e) = warpengine::persist::recovery::start(server) {
        error!("{e}");
        std::process::exit(1);
    }
    warpengine::keyspace_events::apply(&server.config.read().expect("config lock"));
    server.loading.end();
    info!(threads, "Ready to accept connections on {addrs:?}");
    if let Some(path) = unix {
        info!("The server is now ready to accept connections at {path}");
    }
}

/// Returns once the server is to stop: SHUTDOWN, or SIGTERM/SIGINT as `shutdown-on-sigterm`
/// and `shutdown-on-sigint` say. A signal while the final snapshot is being taken exits at
/// once; a failed snapshot (without FORCE) keeps the server running, as in Redis.
async fn wait_for_shutdown(server: &Arc<Server>) {
    loop {
        // Registered before the flag is read: a SHUTDOWN that came earlier (even before this
        // thread got here, while the server started) is seen by the flag, a later one by the
        // notification (`notify_waiters` keeps nothing for a waiter that comes after it).
        let shutdown = server.shutdown.notified();
        tokio::pin!(shutdown);
        shutdown.as_mut().enable();
        if server
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            info!("Shutting down");
            return;
        }
        let setting = tokio::select! {
            _ = shutdown => {
                info!("Shutting down");
                return;
            }
            _ = tokio::signal::ctrl_c() => {
                info!("Received SIGINT scheduling shutdown...");
                "shutdown-on-sigint"
            }
            _ = sigterm() => {
                info!("Received SIGTERM scheduling shutdown...");
                "shutdown-on-sigterm"
            }
        };
        let options = warpengine::shutdown::Options::for_signal(
            server.config.read().expect("config lock").get(setting),
        );
        let stopping = server.clone();
        // (Finishing takes the final snapshot: off the runtime's thread.)
        let outcome = async move {
            let requested = tokio::task::spawn_blocking(move || {
                warpengine::shutdown::request(&stopping, options)
            })
            .await
            .ok()?;
            match requested {
                warpengine::shutdown::Requested::Done(outcome) => Some(outcome),
                warpengine::shutdown::Requested::Waiting(outcome) => outcome.await.ok(),
            }
        };
        tokio::select! {
            outcome = outcome => match outcome {
                Some(Ok(())) => return,
                _ => error!("errors trying to shut down the server; it keeps running"),
            },
            _ = tokio::signal::ctrl_c() => {
                error!("you insist: exiting now");
                std::process::exit(1);
            }
            _ = sigterm() => {
                error!("you insist: exiting now");
                std::process::exit(1);
            }
        }
    }
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Descriptors kept besides clients' (listeners, logs, snapshot files), as Redis keeps 32.
const RESERVED_FDS: u64 = 32;

/// Raises the open-files limit to what `maxclients` needs, as Redis does at start; where the
/// hard limit does not allow it, maxclients shrinks to fit, with Redis's warning.
fn adjust_open_files_limit(config: &mut ConfigStore) {
    let maxclients = config.get_i64("maxclients").max(1) as u64;
    let wanted = maxclients + RESERVED_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct passed, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= wanted {
        return;
    }
    let reachable = wanted.min(limit.rlim_max);
    let raised = libc::rlimit {
        rlim_cur: reachable,
        rlim_max: limit.rlim_max,
    };
    let current = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        reachable
    } else {
        limit.rlim_cur
    };
    if current >= wanted {
        return;
    }
    let reduced = current.saturating_sub(RESERVED_FDS).max(1);
    warn!(
        "You requested maxclients of {maxclients} requiring at least {wanted} max file descriptors. \
         Current maximum open files is {current}. maxclients has been reduced to {reduced} to \
         compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
    );
    let _ = config.set("maxclients", &reduced.to_string(), true);
}
