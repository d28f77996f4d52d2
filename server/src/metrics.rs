//! The Prometheus endpoint (`metrics-port`, 0 = off): `GET /metrics` in the Prometheus text
//! format, encoded by the official client library (`prometheus-client`) from the counters the
//! server keeps anyway. Nothing is added to the request path: a scrape reads the per-worker
//! counters, the per-command latency histograms (`command_timing`) and each shard's statistics
//! (taking each shard's lock once), on its own thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::command_table::TABLE;
use crate::command_timing::{bucket_bound_us, histogram, LATENCY_BUCKETS};
use crate::server_state::Server;

/// Starts serving `/metrics` on `addr` from a thread of its own.
pub fn start(server: Arc<Server>, addr: SocketAddr) -> Result<(), String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector(server)));
    std::thread::Builder::new()
        .name("warp-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &registry) {
                    tracing::debug!("metrics request: {e}");
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    tracing::info!("serving Prometheus metrics on http://{addr}/metrics");
    Ok(())
}

/// Answers one HTTP/1.x request: `/metrics` with the text format, anything else 404. The
/// request is read for at most 5 seconds and 16 KB in all, so that a client that trickles
/// bytes or never ends its headers holds the metrics thread no longer than that.
fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut request = Vec::new();
    let mut chunk = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::other("request too slow"));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 => break,
            n => request.extend_from_slice(&chunk[..n]),
        }
    }
    let request_line =
        String::from_utf8_lossy(request.split(|&b| b == b'\n').next().unwrap_or_default())
            .into_owned();
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        let mut body = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
            .map_err(|_| std::io::Error::other("encoding the metrics"))?;
        (
            "200 OK",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body,
        )
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    stream.set_write_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

struct ServerCollector(Arc<Server>);

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCollector")
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter family with one label.
fn labelled_counters(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ServerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let server = &*self.0;
        let workers = &server.worker_stats;
        let per_command = |f: fn(&crate::server_state::CommandCounter) -> u64| {
            TABLE
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let n: u64 = workers.iter().map(|w| f(&w.commands[i])).sum();
                    (spec.name.to_string(), n)
                })
                .filter(|(_, n)| *n > 0)
                .collect::<Vec<_>>()
        };
        labelled_counters(
            &mut e,
            "warpengine_commands",
            "Commands run, by command.",
            "cmd",
            &per_command(|c| c.calls.load(Relaxed)),
        )?;
        labelled_counters(
            &mut e,
            "warpengine_command_errors",
            "Commands that answered an error, by command.",
            "cmd",
            &per_command(|c| c.failed.load(Relaxed)),
        )?;
        let mut family = e.encode_descriptor(
            "warpengine_command_duration_seconds",
            "How long commands ran, by command (power-of-two buckets from 1.024 microseconds).",
            None,
            MetricType::Histogram,
        )?;
        for (i, spec) in TABLE.iter().enumerate() {
            let hist = histogram(server, i);
            let count: u64 = hist.iter().sum();
            if count == 0 {
                continue;
            }
            // Counts per bucket: the encoder adds them up into Prometheus's cumulative `le`s.
            let buckets: Vec<(f64, u64)> = hist
                .iter()
                .enumerate()
                .take(LATENCY_BUCKETS - 1)
                .map(|(k, n)| (bucket_bound_us(k) / 1e6, *n))
                .collect();
            let nsec: u64 = workers
                .iter()
                .map(|w| w.commands[i].nsec.load(Relaxed))
                .sum();
            let sum = nsec as f64 / 1e9;
            let labels = [("cmd", spec.name)];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        gauge(
            &mut e,
            "warpengine_connected_clients",
            "Client connections open now.",
            server.clients.count() as i64,
        )?;
        counter(
            &mut e,
            "warpengine_connections_received",
            "Client connections accepted since start.",
            server.stats.total_connections_received.load(Relaxed),
        )?;
        let sum = |f: fn(&crate::server_state::WorkerStats) -> u64| workers.iter().map(f).sum();
        counter(
            &mut e,
            "warpengine_net_input_bytes",
            "Bytes read from clients.",
            sum(|w| w.net_input_bytes.load(Relaxed)),
        )?;
        counter(
            &mut e,
            "warpengine_net_output_bytes",
            "Bytes written to clients.",
            sum(|w| w.net_output_bytes.load(Relaxed)),
        )?;
        counter(
            &mut e,
            "warpengine_cross_shard_commands",
            "Commands whose keys spanned shards.",
            sum(|w| w.cross_shard_commands.load(Relaxed)),
        )?;
        counter(
            &mut e,
            "warpengine_remote_batches_sent",
            "Batches of commands sent to another worker's shard (cross-shard hops).",
            sum(|w| w.remote_batches_sent.load(Relaxed)),
        )?;
        gauge(
            &mut e,
            "warpengine_used_memory_bytes",
            "Memory the data and the server use (INFO's used_memory).",
            server.used_memory() as i64,
        )?;
        gauge(
            &mut e,
            "warpengine_rss_bytes",
            "Resident set size of the process.",
            crate::memory_accounting::rss_bytes() as i64,
        )?;

        // Per shard, each shard's lock once.
        let mut shards = Vec::new();
        for i in 0..server.threads() {
            let shard = server.lock_shard(i);
            let keys: usize = shard.dbs.iter().map(|d| d.len()).sum();
            shards.push((i.to_string(), shard.stats.clone(), keys));
        }
        let by_shard = |f: fn(&warpengine_storage::ShardStats) -> u64| {
            shards
                .iter()
                .map(|(i, s, _)| (i.clone(), f(s)))
                .collect::<Vec<_>>()
        };
        labelled_counters(
            &mut e,
            "warpengine_shard_requests",
            "Requests each shard ran: from its own worker's connections and from others'.",
            "shard",
            &by_shard(|s| s.local_requests + s.remote_requests),
        )?;
        labelled_counters(
            &mut e,
            "warpengine_shard_remote_requests",
            "Requests each shard ran for another worker's connections.",
            "shard",
            &by_shard(|s| s.remote_requests),
        )?;
        let mut family = e.encode_descriptor(
            "warpengine_shard_keys",
            "Keys each shard holds (all databases).",
            None,
            MetricType::Gauge,
        )?;
        for (i, _, keys) in &shards {
            let labels = [("shard", i.as_str())];
            ConstGauge::new(*keys as i64).encode(family.encode_family(&labels)?)?;
        }
        let total = |f: fn(&warpengine_storage::ShardStats) -> u64| {
            shards.iter().map(|(_, s, _)| f(s)).sum::<u64>()
        };
        counter(
            &mut e,
            "warpengine_keyspace_hits",
            "Key lookups that found the key.",
            total(|s| s.keyspace_hits) + server.copy_hits(),
        )?;
        counter(
            &mut e,
            "warpengine_keyspace_misses",
            "Key lookups that did not.",
            total(|s| s.keyspace_misses),
        )?;
        counter(
            &mut e,
            "warpengine_expired_keys",
            "Keys removed because they expired (actively; lazily removed ones as of the last INFO or scrape).",
            total(|s| s.expired_keys),
        )?;
        counter(
            &mut e,
            "warpengine_evicted_keys",
            "Keys evicted under maxmemory.",
            total(|s| s.evicted_keys),
        )?;
        counter(
            &mut e,
            "warpengine_temporal_incrs",
            "TEMPORAL INCR calls that changed a key (physics).",
            total(|s| s.temporal_incrs),
        )?;
        let wormhole = &server.wormhole.stats;
        let mut family = e.encode_descriptor(
            "warpengine_wormhole_multi_key_commands",
            "Multi-key commands by whether one shard held all their keys (WORMHOLE).",
            None,
            MetricType::Counter,
        )?;
        for (placement, n) in [
            ("one_shard", &wormhole.multi_key_one_shard),
            ("cross_shard", &wormhole.multi_key_cross_shard),
        ] {
            let labels = [("placement", placement)];
            ConstCounter::new(n.load(Relaxed)).encode(family.encode_family(&labels)?)?;
        }
        counter(
            &mut e,
            "warpengine_wormhole_keys_moved",
            "Keys moved to another shard by WORMHOLE pins.",
            wormhole.keys_moved.load(Relaxed),
        )?;
        // QUANTUM's figures, as INFO physics reports them.
        let mut quantum = String::new();
        server.quantum.info(&mut quantum);
        let mut family = e.encode_descriptor(
            "warpengine_quantum",
            "QUANTUM's figures (links, rules, learning), as INFO physics names them.",
            None,
            MetricType::Gauge,
        )?;
        for line in quantum.lines() {
            let Some((figure, value)) = line.split_once(':') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<i64>() else {
                continue;
            };
            let labels = [("figure", figure)];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }

        let wal = &server.wal;
        gauge(
            &mut e,
            "warpengine_wal_enabled",
            "Whether writes are logged (appendonly).",
            wal.is_on() as i64,
        )?;
        counter(
            &mut e,
            "warpengine_wal_written_bytes",
            "Bytes written to the write-ahead logs.",
            wal.stats.bytes.load(Relaxed),
        )?;
        counter(
            &mut e,
            "warpengine_wal_fsyncs",
            "fdatasync calls on the write-ahead logs.",
            wal.stats.fsyncs.load(Relaxed),
        )?;
        let fsyncs: Vec<(f64, u64)> = wal
            .stats
            .fsync_latency
            .iter()
            .enumerate()
            .take(LATENCY_BUCKETS - 1)
            .map(|(k, n)| (bucket_bound_us(k) / 1e6, n.load(Relaxed)))
            .collect();
        let count: u64 = wal
            .stats
            .fsync_latency
            .iter()
            .map(|n| n.load(Relaxed))
            .sum();
        e.encode_descriptor(
            "warpengine_wal_fsync_duration_seconds",
            "How long the write-ahead logs' fdatasync calls took.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            wal.stats.fsync_us.load(Relaxed) as f64 / 1e6,
            count,
            &fsyncs,
            None,
        )?;
        let mut written = e.encode_descriptor(
            "warpengine_wal_position_bytes",
            "Each shard's log position: written and fdatasync'd bytes of its current segment.",
            None,
            MetricType::Gauge,
        )?;
        for (i, log) in wal.logs.iter().enumerate() {
            let shard = i.to_string();
            let (_, w) = crate::persist::unpack_position(log.written_at.load(Relaxed));
            let (_, s) = crate::persist::unpack_position(log.synced_at.load(Relaxed));
            for (state, v) in [("written", w), ("synced", s)] {
                let labels = [("shard", shard.as_str()), ("state", state)];
                ConstGauge::new(v as i64).encode(written.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
