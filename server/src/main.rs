use std::sync::Arc;

use clap::Parser;
use tracing::{error, info};

use warpengine::config_store::Cli;
use warpengine::server_state::Server;
use warpengine::worker;

/// glibc's per-thread arenas grow and shrink page by page (an mprotect each) under a growing
/// keyspace; mimalloc keeps per-thread free lists without that. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: warpengine::memory_accounting::CountingMimalloc =
    warpengine::memory_accounting::CountingMimalloc;

fn log_filter(level: &str) -> &'static str {
    match level {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        _ => "error",
    }
}

fn main() {
    warpengine::memory_accounting::disable_transparent_huge_pages();
    let cli = Cli::parse();
    let config = match cli.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR *** {e}");
            std::process::exit(1);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| log_filter(config.get("loglevel")).into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let threads = match config.get_i64("threads") {
        n if n > 0 => n as usize,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let port = config.get_i64("port") as u16;
    let addrs = match worker::bind_addresses(config.get("bind"), port) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            std::process::exit(1);
        }
    };
    warpengine::commands::install();
    let server = Arc::new(Server::new(config, threads));
    warpengine::memory_accounting::mark_startup();
    if let Err(e) = warpengine::persist::recovery::start(&server) {
        error!("{e}");
        std::process::exit(1);
    }
    warpengine::keyspace_events::apply(&server.config.read().expect("config lock"));
    if let Err(e) = worker::start(server.clone(), addrs.clone()) {
        error!("{e}");
        std::process::exit(1);
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        threads, "WarpEngine ready to accept connections on {addrs:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    runtime.block_on(async {
        let shutdown = server.shutdown.notified();
        tokio::select! {
            _ = shutdown => info!("shutdown requested by a client"),
            _ = tokio::signal::ctrl_c() => info!("received SIGINT, shutting down"),
            _ = sigterm() => info!("received SIGTERM, shutting down"),
        }
    });
    if server.wal.is_on() && !server.wal.close() {
        error!("the log could not be written and synced completely before exiting");
    }
    info!("WarpEngine is now ready to exit, bye bye...");
    std::process::exit(0);
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
