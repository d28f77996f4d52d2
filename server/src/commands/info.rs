//! INFO: server, clients, memory, persistence, stats, replication, cpu, commandstats,
//! keyspace, and WarpEngine's own shards section.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::TABLE;
use crate::protocol::Reply;
use crate::server_state::{Server, REDIS_VERSION};
use crate::session::Session;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
    "shards",
    "physics",
];
const ALL_EXTRA: &[&str] = &["commandstats", "latencystats"];

pub fn info(s: &mut Session, args: &[Bytes]) -> Reply {
    let mut wanted: Vec<String> = Vec::new();
    for a in &args[1..] {
        let name = String::from_utf8_lossy(a).to_ascii_lowercase();
        match name.as_str() {
            "default" => wanted.extend(DEFAULT.iter().map(|s| s.to_string())),
            "all" | "everything" => {
                wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
                wanted.extend(ALL_EXTRA.iter().map(|s| s.to_string()));
            }
            _ => wanted.push(name),
        }
    }
    if wanted.is_empty() {
        wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for section in wanted {
        if seen.contains(&section) {
            continue;
        }
        let before = out.len();
        if !out.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        if !write_section(s, &section, &mut out) {
            out.truncate(before);
        }
        seen.push(section);
    }
    Reply::Verbatim(Bytes::from(out))
}

fn rusage(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_stime), secs(ru.ru_utime))
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n}B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", n / 1024.0 / 1024.0 / 1024.0)
    }
}

fn sum(server: &Server, f: impl Fn(&crate::server_state::WorkerStats) -> u64) -> u64 {
    server.worker_stats.iter().map(f).sum()
}

/// INFO replication's lines for a replica, in Redis 7.0's order, up to `connected_slaves`.
fn replica_fields(
    server: &Server,
    out: &mut Vec<u8>,
    primary: crate::replication::replica::PrimaryAddr,
    cfg: impl Fn(&str) -> String,
) {
    let upstream = &server.replication.upstream;
    let status = upstream.status();
    let up = upstream.link_up();
    let secs = |at: Option<std::time::Instant>| at.map_or(-1, |t| t.elapsed().as_secs() as i64);
    let offset = server.replication.history().offset();
    let syncing = status.state == crate::replication::replica::LinkState::Sync;
    let _ = write!(
        out,
        "# Replication\r\nrole:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{offset}\r\n",
        primary.host,
        primary.port,
        if up { "up" } else { "down" },
        if up { secs(status.last_io) } else { -1 },
        syncing as u8,
        offset + status.unapplied,
    );
    if syncing {
        let (size, read) = (status.sync_size, status.sync_read as i64);
        let perc = if size != 0 {
            read as f64 / size as f64 * 100.0
        } else {
            0.0
        };
        let _ = write!(
            out,
            "master_sync_total_bytes:{size}\r\nmaster_sync_read_bytes:{read}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
            size - read,
            secs(status.last_io),
        );
    }
    if !up {
        let _ = write!(
            out,
            "master_link_down_since_seconds:{}\r\n",
            secs(status.down_since)
        );
    }
    let flag = |name: &str| (cfg(name) == "yes") as u8;
    let _ = write!(
        out,
        "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
        cfg("replica-priority"),
        flag("replica-read-only"),
        flag("replica-announced"),
    );
}

fn write_section(s: &Session, section: &str, out: &mut Vec<u8>) -> bool {
    let server = s.server;
    // One setting at a time: a copy of the whole config (~4 KB) would count in the
    // used_memory this very section reports, and holding the config lock while sections lock
    // shards could deadlock with a keyed command that reads the config under its shard lock
    // while a CONFIG SET waits to write.
    let cfg = |name: &str| {
        let guard = server.config.read().unwrap_or_else(|p| p.into_inner());
        guard.get(name).to_string()
    };
    match section {
        "server" => {
            let uptime = server.started.elapsed().as_secs();
            let _ = write!(
                out,
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nserver_name:warpengine\r\nwarpengine_version:{}\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nthreads:{}\r\n",
                std::env::consts::OS,
                std::env::consts::ARCH,
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                server.run_id,
                cfg("port"),
                crate::server_state::unix_ms() * 1000,
                uptime / 86400,
                cfg("hz"),
                cfg("hz"),
                (crate::server_state::unix_ms() / 1000) & ((1 << 24) - 1),
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                server
                    .config
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
                server.threads(),
            );
            if let Some(left) = crate::shutdown::remaining_ms(server) {
                let _ = write!(out, "shutdown_in_milliseconds:{left}\r\n");
            }
        }
        "clients" => {
            let _ = write!(
                out,
                "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:0\r\n",
                // Replicas' links are not counted, as Redis leaves out its `slaves` list.
                server
                    .clients
                    .count()
                    .saturating_sub(server.replication.replicas().len()),
                cfg("maxclients"),
                server.blocking.blocked_clients.load(Relaxed),
                server.tracking.info().0,
            );
        }
        "memory" => {
            let rss = crate::memory_accounting::rss_bytes();
            let used = server.used_memory();
            let peak = crate::memory_accounting::note_peak(used);
            let startup = crate::memory_accounting::startup();
            let allocated = crate::memory_accounting::allocated();
            let clients: usize = server.clients.snapshot().iter().map(|c| c.memory(0)).sum();
            let overhead = startup + clients as u64;
            let dataset = used.saturating_sub(overhead);
            let maxmemory: u64 = cfg("maxmemory").parse().unwrap_or(0);
            let system = crate::memory_accounting::total_system_memory();
            let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            // The interpreters' memory (each worker's, functions' included), the scripts' and
            // libraries' code.
            let lua = server.scripts.interpreter_bytes();
            let backlog = server.replication.history().backlog_histlen();
            let replica_buffers = server.replication.outbox_bytes();
            let replication_buffers = backlog + replica_buffers;
            let lua_human = human_bytes(lua);
            let eval_bytes = server.scripts.body_bytes();
            let cached = server.scripts.len();
            let libraries = server.functions.libraries();
            let functions = server.functions.function_count();
            let function_bytes: usize = libraries.iter().map(|l| l.code.len()).sum();
            let libraries = libraries.len();
            let scripts_bytes = eval_bytes + function_bytes as u64;
            let scripts_human = human_bytes(scripts_bytes);
            let (lazy_pending, lazy_freed) =
                (crate::lazy_free::pending(), crate::lazy_free::freed());
            let _ = write!(
                out,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{allocated}\r\nallocator_active:{allocated}\r\nallocator_resident:{rss}\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:{lua}\r\nused_memory_vm_eval:{lua}\r\nused_memory_lua_human:{lua_human}\r\nused_memory_scripts_eval:{eval_bytes}\r\nnumber_of_cached_scripts:{cached}\r\nnumber_of_functions:{functions}\r\nnumber_of_libraries:{libraries}\r\nused_memory_vm_functions:0\r\nused_memory_vm_total:{lua}\r\nused_memory_vm_total_human:{lua_human}\r\nused_memory_functions:{function_bytes}\r\nused_memory_scripts:{scripts_bytes}\r\nused_memory_scripts_human:{scripts_human}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:1.00\r\nallocator_frag_bytes:0\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:1.00\r\nrss_overhead_bytes:0\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:{replica_buffers}\r\nmem_replication_backlog:{backlog}\r\nmem_total_replication_buffers:{replication_buffers}\r\nmem_clients_slaves:{replica_buffers}\r\nmem_clients_normal:{clients}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:mimalloc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{lazy_pending}\r\nlazyfreed_objects:{lazy_freed}\r\n",
                human_bytes(used),
                human_bytes(rss),
                human_bytes(peak),
                ratio(used, peak) * 100.0,
                ratio(dataset, used.saturating_sub(startup)) * 100.0,
                human_bytes(system),
                human_bytes(maxmemory),
                cfg("maxmemory-policy"),
                ratio(rss, allocated),
                rss as i64 - allocated as i64,
                ratio(rss, used),
                rss as i64 - used as i64,
            );
        }
        "persistence" => {
            let wal = &server.wal;
            let cfg_fsync = server
                .config
                .read()
                .expect("config lock")
                .get("appendfsync")
                .to_string();
            let ok_err = |ok: bool| if ok { "ok" } else { "err" };
            let snapshots = wal.stats.snapshots.load(Relaxed);
            let in_progress = wal.stats.snapshot_in_progress.load(Relaxed) as u8;
            // A replica's sync walks as BGSAVE does but rewrites no log.
            let rewriting =
                in_progress & !crate::persist::background::serving_replicas(server) as u8;
            let loading = server.loading.active() as u8;
            let async_loading = server.replication.upstream.async_loading() as u8;
            let last_ok = wal.stats.last_snapshot_ok.load(Relaxed) || snapshots == 0;
            // A snapshot is both the RDB save and the log rewrite here; none forks, so there is
            // no copy-on-write to report.
            let last_secs = if snapshots > 0 {
                wal.stats.last_snapshot_secs.load(Relaxed) as i64
            } else {
                -1
            };
            let _ = write!(
                out,
                "# Persistence\r\nloading:{loading}\r\nasync_loading:{async_loading}\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{in_progress}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{last_secs}\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:{snapshots}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{rewriting}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{last_secs}\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{snapshots}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
                server.changes_since_save(),
                server.lastsave.load(Relaxed),
                ok_err(last_ok),
                wal.stats.last_load_keys_expired.load(Relaxed),
                wal.stats.last_load_keys_loaded.load(Relaxed),
                wal.is_on() as u8,
                wal.stats.rewrite_scheduled.load(Relaxed) as u8,
                ok_err(last_ok),
                u8::from(!last_ok),
                ok_err(!wal.failed.load(Relaxed)),
            );
            if wal.is_on() {
                let appended: u64 = wal.logs.iter().map(|l| l.appended()).sum();
                let _ = write!(
                    out,
                    "aof_fsync:{}\r\nwal_backend:{}\r\nwal_records_appended:{}\r\nwal_writes:{}\r\nwal_bytes_written:{}\r\nwal_fsyncs:{}\r\nwal_recovered_records:{}\r\n",
                    cfg_fsync,
                    wal.backend.lock().map(|b| b.name()).unwrap_or("?"),
                    appended,
                    wal.stats.writes.load(Relaxed),
                    wal.stats.bytes.load(Relaxed),
                    wal.stats.fsyncs.load(Relaxed),
                    wal.stats.recovered_records.load(Relaxed),
                );
                for (i, log) in wal.logs.iter().enumerate() {
                    let (seg, written) =
                        crate::persist::unpack_position(log.written_at.load(Relaxed));
                    let (sseg, synced) =
                        crate::persist::unpack_position(log.synced_at.load(Relaxed));
                    let _ = write!(
                        out,
                        "wal_shard{i}:segment={seg},written_bytes={written},synced_segment={sseg},synced_bytes={synced}\r\n"
                    );
                }
            }
            // After the log's lines, as Redis prints them after the AOF's.
            if loading == 1 {
                out.extend_from_slice(server.loading.info_lines().as_bytes());
            }
        }
        "stats" => {
            let (mut hits, mut misses, mut expired, mut evicted) = (server.copy_hits(), 0, 0, 0);
            for i in 0..server.threads() {
                let mut shard = server.lock_shard(i);
                let lazily: u64 = shard.dbs.iter_mut().map(|d| d.take_expired_count()).sum();
                shard.stats.expired_keys += lazily;
                hits += shard.stats.keyspace_hits;
                misses += shard.stats.keyspace_misses;
                expired += shard.stats.expired_keys;
                evicted += shard.stats.evicted_keys;
            }
            let commands: u64 = server
                .worker_stats
                .iter()
                .flat_map(|w| w.commands.iter())
                .map(|c| c.calls.load(Relaxed))
                .sum();
            let (_, tracked_keys, tracked_items, tracked_prefixes) = server.tracking.info();
            let (ops, in_kbps, out_kbps) = server.sampler.rates();
            // WarpEngine's own: scripts and functions started again with every shard locked.
            let script_reruns = server.stats.script_reruns.load(Relaxed);
            let unexpected_errors = server.stats.unexpected_error_replies.load(Relaxed);
            let replica_tracked_keys = server.replication.local_keys.len();
            let evicted_clients = server.clients.evicted.load(Relaxed);
            let _ = write!(
                out,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{commands}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:{in_kbps:.2}\r\ninstantaneous_output_kbps:{out_kbps:.2}\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{expired}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:{}\r\nevicted_keys:{evicted}\r\nevicted_clients:{evicted_clients}\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:{}\r\nslave_expires_tracked_keys:{replica_tracked_keys}\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:{unexpected_errors}\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:{}\r\nreply_buffer_expands:{}\r\nscript_reruns:{script_reruns}\r\n",
                server.stats.total_connections_received.load(Relaxed),
                sum(server, |w| w.net_input_bytes.load(Relaxed)),
                sum(server, |w| w.net_output_bytes.load(Relaxed)),
                server.stats.rejected_connections.load(Relaxed),
                server.replication.sync_full.load(Relaxed),
                server.replication.sync_partial_ok.load(Relaxed),
                server.replication.sync_partial_err.load(Relaxed),
                sum(server, |w| w.expire_cycle_us.load(Relaxed)) / 1000,
                server.pubsub.channel_count(false),
                server.pubsub.patterns(),
                server.pubsub.channel_count(true),
                server.migrate_sockets.count(),
                tracked_keys,
                tracked_items,
                tracked_prefixes,
                sum(server, |w| w.error_replies.load(Relaxed)),
                sum(server, |w| w.socket_reads.load(Relaxed)),
                sum(server, |w| w.socket_writes.load(Relaxed)),
                sum(server, |w| w.reply_buffer_shrinks.load(Relaxed)),
                sum(server, |w| w.reply_buffer_expands.load(Relaxed)),
            );
        }
        "replication" => {
            let replicas = server.replication.replicas();
            match server.replication.upstream.target() {
                None => out.extend_from_slice(b"# Replication\r\nrole:master\r\n"),
                Some(primary) => replica_fields(server, out, primary, cfg),
            }
            let _ = write!(out, "connected_slaves:{}\r\n", replicas.len());
            for (i, r) in replicas.iter().enumerate() {
                let _ = write!(
                    out,
                    "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
                    r.ip,
                    r.port,
                    r.state.name(),
                    r.ack_offset,
                    r.last_ack.elapsed().as_secs()
                );
            }
            let failover = server.replication.failover.state_name();
            let history = server.replication.history();
            let backlog_size = if history.backlog_active() {
                history.backlog_size()
            } else {
                server.replication.backlog_size()
            };
            let _ = write!(
                out,
                "master_failover_state:{failover}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{backlog_size}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
                history.replid(),
                history.replid2(),
                history.offset(),
                history.second_offset(),
                history.backlog_active() as u8,
                history.backlog_first_byte_offset(),
                history.backlog_histlen(),
            );
        }
        "cpu" => {
            let (sys, user) = rusage(libc::RUSAGE_SELF);
            // Redis's main thread: here, the worker answering.
            let (thread_sys, thread_user) = rusage(libc::RUSAGE_THREAD);
            let _ = write!(
                out,
                "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{thread_sys:.6}\r\nused_cpu_user_main_thread:{thread_user:.6}\r\n"
            );
        }
        "modules" => out.extend_from_slice(b"# Modules\r\n"),
        "errorstats" => {
            out.extend_from_slice(b"# Errorstats\r\n");
            for (kind, count) in server.stats.errors.lock().expect("errorstats lock").iter() {
                out.extend_from_slice(b"errorstat_");
                out.extend_from_slice(kind);
                let _ = write!(out, ":count={count}\r\n");
            }
        }
        "latencystats" => {
            out.extend_from_slice(b"# Latencystats\r\n");
            let percentiles: Vec<String> = cfg("latency-tracking-info-percentiles")
                .split_whitespace()
                .map(String::from)
                .collect();
            for (i, spec) in TABLE.iter().enumerate() {
                let hist = crate::command_timing::histogram(server, i);
                if hist.iter().all(|n| *n == 0) {
                    continue;
                }
                let fields: Vec<String> = percentiles
                    .iter()
                    .map(|p| {
                        let us =
                            crate::command_timing::percentile_us(&hist, p.parse().unwrap_or(50.0));
                        format!("p{p}={us:.3}")
                    })
                    .collect();
                let _ = write!(
                    out,
                    "latency_percentiles_usec_{}:{}\r\n",
                    spec.name,
                    fields.join(",")
                );
            }
        }
        "cluster" => out.extend_from_slice(if server.cluster.enabled() {
            b"# Cluster\r\ncluster_enabled:1\r\n"
        } else {
            b"# Cluster\r\ncluster_enabled:0\r\n"
        }),
        "commandstats" => {
            out.extend_from_slice(b"# Commandstats\r\n");
            for (i, spec) in TABLE.iter().enumerate() {
                let get = |f: fn(&crate::server_state::CommandCounter) -> u64| {
                    server
                        .worker_stats
                        .iter()
                        .map(|w| f(&w.commands[i]))
                        .sum::<u64>()
                };
                let calls = get(|c| c.calls.load(Relaxed));
                let rejected = get(|c| c.rejected.load(Relaxed));
                if calls == 0 && rejected == 0 {
                    continue;
                }
                let usec = get(|c| c.nsec.load(Relaxed)) / 1000;
                let failed = get(|c| c.failed.load(Relaxed));
                let per_call = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                    spec.name
                );
            }
        }
        "keyspace" => {
            out.extend_from_slice(b"# Keyspace\r\n");
            let dbs = server.databases();
            let mut keys = vec![0usize; dbs];
            let mut expires = vec![0usize; dbs];
            for i in 0..server.threads() {
                let shard = server.lock_shard(i);
                for (d, db) in shard.dbs.iter().enumerate() {
                    keys[d] += db.len();
                    expires[d] += db.volatile_len();
                }
            }
            for d in 0..dbs {
                if keys[d] > 0 {
                    let _ = write!(
                        out,
                        "db{d}:keys={},expires={},avg_ttl=0\r\n",
                        keys[d], expires[d]
                    );
                }
            }
        }
        "shards" => {
            out.extend_from_slice(b"# Shards\r\n");
            for i in 0..server.threads() {
                let st = server.lock_shard(i).stats.clone();
                let w = &server.worker_stats[i];
                let _ = write!(
                    out,
                    "shard{i}:local_requests={},remote_requests_in={},remote_batches_in={},remote_requests_out={},remote_batches_out={},remote_batches_run_inline={},cross_shard_commands={}\r\n",
                    st.local_requests,
                    st.remote_requests,
                    st.remote_batches,
                    w.remote_commands_sent.load(Relaxed),
                    w.remote_batches_sent.load(Relaxed),
                    w.remote_batches_inline.load(Relaxed),
                    w.cross_shard_commands.load(Relaxed),
                );
            }
        }
        "physics" => {
            let mut text = String::new();
            super::physics_info::write(server, &mut text);
            out.extend_from_slice(text.as_bytes());
        }
        _ => return false,
    }
    true
}
