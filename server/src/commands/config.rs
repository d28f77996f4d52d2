//! CONFIG GET | SET | RESETSTAT | REWRITE | HELP.

use std::collections::HashSet;

use bytes::Bytes;
use warpengine_storage::glob_match;

use super::util::{err_echo, help, lower, unknown_subcommand, wrong_arity};
use crate::config_store::SetError;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

pub fn config(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    match sub.as_str() {
        "help" if args.len() == 2 => help(
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        ),
        "get" if args.len() >= 3 => get(s, &args[2..]),
        "set" if args.len() >= 4 && args.len().is_multiple_of(2) => set(s, &args[2..]),
        "set" if args.len() >= 4 => Reply::err(super::util::SYNTAX),
        "resetstat" if args.len() == 2 => {
            for w in &s.server.worker_stats {
                w.reset();
            }
            s.server
                .stats
                .errors
                .lock()
                .expect("errorstats lock")
                .clear();
            for i in 0..s.server.threads() {
                s.server.lock_shard(i).stats = Default::default();
            }
            // The server-wide counters Redis's resetServerStats clears too.
            let zero =
                |n: &std::sync::atomic::AtomicU64| n.store(0, std::sync::atomic::Ordering::Relaxed);
            let stats = &s.server.stats;
            zero(&stats.total_connections_received);
            zero(&stats.rejected_connections);
            zero(&stats.script_reruns);
            zero(&stats.unexpected_error_replies);
            zero(&s.server.clients.evicted);
            crate::lazy_free::reset_stats();
            let replication = &s.server.replication;
            zero(&replication.sync_full);
            zero(&replication.sync_partial_ok);
            zero(&replication.sync_partial_err);
            OK
        }
        "rewrite" if args.len() == 2 => match rewrite(s, false) {
            Ok(()) => OK,
            Err(e) if s.server.config.read().expect("config lock").file.is_none() => {
                Reply::err(format!("ERR {e}"))
            }
            Err(e) => {
                tracing::warn!("CONFIG REWRITE failed: {e}");
                Reply::err(format!("ERR Rewriting config file: {e}"))
            }
        },
        "help" | "get" | "set" | "resetstat" | "rewrite" => wrong_arity(&format!("config|{sub}")),
        _ => unknown_subcommand(&args[1], "CONFIG"),
    }
}

/// CONFIG SET's values of Redis's sensitive parameters (masteruser, masterauth, requirepass)
/// are secrets: the slow log and MONITOR show them redacted, as Redis.
pub fn config_secrets(args: &[Bytes]) -> Vec<usize> {
    if args.len() < 4 || !args[1].eq_ignore_ascii_case(b"set") {
        return Vec::new();
    }
    (2..args.len() - 1)
        .step_by(2)
        .filter(|&i| {
            ["masteruser", "masterauth", "requirepass"]
                .iter()
                .any(|n| args[i].eq_ignore_ascii_case(n.as_bytes()))
        })
        .map(|i| i + 1)
        .collect()
}

fn get(s: &mut Session, patterns: &[Bytes]) -> Reply {
    let cfg = s.server.config.read().expect("config lock");
    let mut pairs = Vec::new();
    let mut seen = HashSet::new();
    for p in patterns {
        let pattern = lower(p);
        // A plain name (no glob characters) is looked up directly and answered with the
        // name as the client spelled it, as Redis does.
        let plain = !p.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        for (name, value) in cfg.iter() {
            if plain {
                if name == pattern && seen.insert(name) {
                    pairs.push((Reply::Bulk(p.clone()), Reply::bulk_str(&value)));
                }
            } else if glob_match(pattern.as_bytes(), name.as_bytes(), true)
                && !crate::config_store::param(name).is_some_and(|p| p.hidden)
                && seen.insert(name)
            {
                pairs.push((Reply::bulk_str(name), Reply::bulk_str(&value)));
            }
        }
    }
    Reply::Map(pairs)
}

/// Parameters CONFIG SET refuses with -LOADING while the dataset loads (at start, or a
/// replica's full sync)
/// (Redis's DENY_LOADING_CONFIG).
const DENIED_WHILE_LOADING: &[&str] = &["appendonly", "repl-diskless-load", "dir"];

fn set(s: &mut Session, pairs: &[Bytes]) -> Reply {
    let mut cfg = s.server.config.write().expect("config lock");
    // All or nothing, as in Redis 7: validate every pair on a copy, then commit.
    let mut next = cfg.clone();
    let mut seen = HashSet::new();
    for pair in pairs.chunks(2) {
        let name = lower(&pair[0]);
        let value = String::from_utf8_lossy(&pair[1]);
        // A parameter and its alias are the same parameter.
        let canonical = crate::config_store::param(&name).map_or(name.as_str(), |p| p.name);
        if !seen.insert(canonical.to_string()) {
            return err_echo(
                "ERR CONFIG SET failed (possibly related to argument '",
                &pair[0],
                "') - duplicate parameter",
            );
        }
        // Errors name the parameter as the client spelled it (lowercased for a bad value), as
        // Redis's do.
        let refused = |why: &str| {
            err_echo(
                "ERR CONFIG SET failed (possibly related to argument '",
                &pair[0],
                &format!("') - {why}"),
            )
        };
        let mut result = next.set(&name, &value, false);
        // `enable-protected-configs local`: protected parameters from this machine only.
        if result == Err(SetError::Protected(canonical.to_string()))
            && next.get("enable-protected-configs") == "local"
            && s.conn.addr.is_local()
        {
            result = next.set(&name, &value, true);
        }
        let upstream = &s.server.replication.upstream;
        if result.is_ok()
            && DENIED_WHILE_LOADING.contains(&canonical)
            && (s.server.loading.active() || upstream.async_loading())
        {
            return Reply::err(crate::persist::loading::REFUSAL);
        }
        match result {
            Ok(()) => {}
            Err(SetError::Unknown(_)) => {
                return err_echo(
                    "ERR Unknown option or number of arguments for CONFIG SET - '",
                    &pair[0],
                    "'",
                )
            }
            Err(SetError::Immutable(_)) => return refused("can't set immutable config"),
            Err(SetError::Protected(_)) => return refused("can't set protected config"),
            Err(SetError::Invalid { why, .. }) => {
                return Reply::err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
                ))
            }
        }
    }
    if crate::tls::changed(&cfg, &next) {
        // New certificate files (or any TLS setting) serve the next TLS connection; one that
        // does not load leaves the configuration as it was.
        if let Err(e) = s.server.tls.reload(&next) {
            tracing::warn!("Failed applying new TLS configuration: {e}");
            let name = crate::tls::PARAMETERS
                .iter()
                .find(|p| cfg.get(p) != next.get(p))
                .expect("one changed");
            return Reply::err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - Unable to update TLS configuration. Check server logs."
            ));
        }
    }
    // As Redis: the server changes into its new `dir` (relative paths are then inside it), and
    // a directory it cannot change into is refused.
    if next.get("dir") != cfg.get("dir") {
        if let Err(e) = std::env::set_current_dir(next.get("dir")) {
            roll_back_applied(s.server, &cfg, &next);
            let why = e.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why);
            return Reply::err(format!(
                "ERR CONFIG SET failed (possibly related to argument 'dir') - {why}"
            ));
        }
    }
    // The process's OOM score follows at once; one the kernel refuses leaves both as they were.
    if let Some(name) = ["oom-score-adj", "oom-score-adj-values"]
        .into_iter()
        .find(|p| cfg.get(p) != next.get(p))
    {
        let replica = s.server.replication.is_replica();
        if crate::oom_score::apply(&next, replica).is_err() {
            roll_back_applied(s.server, &cfg, &next);
            return Reply::err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - Failed to set current oom_score_adj. Check server logs."
            ));
        }
    }
    // New listening sockets last of what can fail, as Redis's changeListenPort/changeBindAddr:
    // one that cannot be had leaves the old ones and the configuration as they were.
    if let Some(name) = ["port", "bind", "tls-port"]
        .into_iter()
        .find(|p| cfg.get(p) != next.get(p))
    {
        if let Err(e) = crate::worker::rebind(s.server, &cfg, &next) {
            tracing::warn!("Failed to listen as {name} now says: {e}");
            roll_back_applied(s.server, &cfg, &next);
            let why = if name == "bind" {
                "Failed to bind to specified addresses."
            } else {
                "Unable to listen on this port"
            };
            return Reply::err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
            ));
        }
    }
    let old_policy = cfg.get("maxmemory-policy").to_string();
    let new_policy = next.get("maxmemory-policy").to_string();
    let new_maxmemory = next.get("maxmemory") != cfg.get("maxmemory");
    s.server.limits.refresh(&next);
    s.server.quantum.refresh(&next);
    s.server.wormhole.refresh(&next);
    s.server.gravity.refresh(&next);
    s.server.temporal.refresh(&next);
    s.server.timing.refresh(&next);
    s.server
        .scripts
        .busy
        .set_threshold_ms(next.get_i64("busy-reply-threshold").max(0) as u64);
    crate::crash_report::set_enabled(next.get_bool("crash-log-enabled"));
    if next.get("loglevel") != cfg.get("loglevel") {
        crate::logging::set_level(next.get("loglevel"));
    }
    s.server
        .pubsub
        .limits
        .refresh(next.get("client-output-buffer-limit"));
    s.server.replication.refresh(&next);
    let was_on = cfg.get_bool("appendonly");
    let on = next.get_bool("appendonly");
    let fsync = crate::persist::Fsync::parse(next.get("appendfsync"));
    let new_requirepass = (next.get("requirepass") != cfg.get("requirepass"))
        .then(|| next.get("requirepass").to_string());
    *cfg = next;
    s.server.hot.refresh(&cfg);
    s.server.cluster.refresh(&cfg);
    if let Some(password) = new_requirepass {
        s.server.apply_requirepass(&password);
    }
    s.server
        .apply_acl_pubsub_default(cfg.get("acl-pubsub-default"));
    crate::keyspace_events::apply(&cfg);
    drop(cfg);
    s.server.replication.resize_backlog();
    if old_policy != new_policy {
        crate::eviction::apply_policy(s.server);
    }
    // (Inside EXEC the keys go at the next command: Redis 7.0's CONFIG SET starts its
    // eviction timer, which runs once the transaction is over.)
    if new_maxmemory && !s.conn.in_exec {
        crate::eviction::evict_now(s.server);
    }
    let wal = &s.server.wal;
    wal.fsync
        .store(fsync as u8, std::sync::atomic::Ordering::Relaxed);
    if on != was_on {
        if on {
            if s.conn.in_exec {
                tracing::warn!("AOF was enabled during a transaction. An AOF background was scheduled to start when possible.");
            }
            // As Redis does on `appendonly yes`: the log starts from a snapshot of the data.
            if let Err(e) =
                crate::persist::snapshot::take(s.server, crate::persist::snapshot::Logging::Enable)
            {
                tracing::error!("cannot start the log: {e}");
                s.server
                    .config
                    .write()
                    .expect("config lock")
                    .set("appendonly", "no", true)
                    .ok();
                return Reply::err(format!("ERR cannot start the append only file: {e}"));
            }
        } else {
            crate::persist::background::abort_rewrite(s.server);
            crate::persist::disable(s.server);
        }
    }
    for log in &wal.logs {
        log.kick();
    }
    OK
}

/// CONFIG REWRITE, and with `force_all` DEBUG CONFIG-REWRITE-FORCE-ALL (every parameter
/// written, defaults too). Users go to the file as `user` lines, unless an ACL file keeps them
/// (then the file's `user` lines are dropped), as Redis rewrites them.
/// A CONFIG SET whose apply step failed: every setting it changed that takes effect outside the
/// store (TLS files, `dir`, the OOM score) goes back to `cfg`'s, as Redis rolls back every
/// applied setting when a later one fails. (Those not applied yet are set to what they are.)
fn roll_back_applied(
    server: &crate::server_state::Server,
    cfg: &crate::config_store::ConfigStore,
    next: &crate::config_store::ConfigStore,
) {
    if crate::tls::changed(cfg, next) {
        let _ = server.tls.reload(cfg);
    }
    if next.get("dir") != cfg.get("dir") {
        let _ = std::env::set_current_dir(cfg.get("dir"));
    }
    if ["oom-score-adj", "oom-score-adj-values"]
        .iter()
        .any(|p| cfg.get(p) != next.get(p))
    {
        let _ = crate::oom_score::apply(cfg, server.replication.is_replica());
    }
}

pub fn rewrite(s: &Session, force_all: bool) -> Result<(), String> {
    let cfg = s.server.config.read().expect("config lock");
    let users: Vec<String> = if cfg.get("aclfile").is_empty() {
        s.server
            .acl
            .all()
            .iter()
            .map(|u| format!("user {} {}", u.name, u.read(|st| st.describe())))
            .collect()
    } else {
        Vec::new()
    };
    cfg.rewrite_with_users(Some(&users), force_all)
}
