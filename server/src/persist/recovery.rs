//! Recovery at start: each shard's snapshot, then its log segments in order. A torn tail (the
//! prefix of a write a crash interrupted) is cut off; damage in the middle of a log stops the
//! start unless `wal-repair` is set. Each shard's log is replayed into that shard; a log written
//! with another `--threads` is replayed into the old layout and its keys then move to their
//! owners in the new one. The state is then snapshotted in the new layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use warpengine_storage::Shard;
use warpengine_wal::{self as wal, Damage, Reader};

use super::ops::{self, Op};
use super::snapshot::{self, Logging};
use super::Fsync;
use crate::command_table::{self, Run, TABLE};
use crate::keyctx::{KeyCtx, Shards};
use crate::server_state::{unix_ms, Server};

pub fn log_dir(server: &Server) -> PathBuf {
    let cfg = server.config.read().expect("config lock");
    let base = match cfg.get("dir") {
        "" => PathBuf::from("."),
        d => PathBuf::from(d),
    };
    base.join(cfg.get("appenddirname"))
}

/// Reads the configuration into the log state and, with `appendonly yes`, recovers what the
/// log directory holds and starts logging.
pub fn start(server: &Server) -> Result<(), String> {
    let wal_state = &server.wal;
    let (on, fsync, thread_writer, repair) = {
        let cfg = server.config.read().expect("config lock");
        wal_state.sync_delay_ms.store(
            cfg.get_i64("wal-sync-delay-ms").max(0) as u64,
            Ordering::Relaxed,
        );
        (
            cfg.get_bool("appendonly"),
            Fsync::parse(cfg.get("appendfsync")),
            cfg.get("wal-io") == "thread",
            cfg.get_bool("wal-repair"),
        )
    };
    wal_state.fsync.store(fsync as u8, Ordering::Relaxed);
    *wal_state.backend.lock().expect("backend lock") = if thread_writer {
        wal::Backend::Thread
    } else {
        wal::Backend::Uring
    };
    let dir = log_dir(server);
    *wal_state.dir.lock().expect("dir lock") = dir.clone();
    if !on {
        // As Redis: without the log, the data is the RDB file's.
        return super::rdb_file::load_at_start(server);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    let manifest = wal::read_manifest(&dir).map_err(|e| e.to_string())?;
    let Some(manifest) = manifest else {
        // A first start with the log: the data is the RDB file's, if there is one (a user
        // moving from Redis), which the first snapshot then holds.
        tracing::info!(
            "no log in {}: starting from the RDB file if any",
            dir.display()
        );
        super::rdb_file::load_at_start(server)?;
        snapshot::take(server, Logging::Enable)
            .map_err(|e| format!("cannot start the log: {e}"))?;
        return Ok(());
    };
    replay(server, &dir, manifest, repair)?;
    snapshot::take(server, Logging::Enable)
        .map_err(|e| format!("cannot write the post-recovery snapshot: {e}"))?;
    Ok(())
}

struct LogFile {
    path: PathBuf,
    data: Bytes,
    /// Valid bytes, after torn-tail or repair truncation.
    keep: usize,
}

fn replay(server: &Server, dir: &Path, m: wal::Manifest, repair: bool) -> Result<(), String> {
    let started = Instant::now();
    let read = read_logs(dir, &m, repair, true)?;
    let bytes = read.shards_files.iter().flatten().map(|f| f.keep as u64);
    server.loading.set_total_bytes(bytes.sum());
    let mut guards = server.lock_all();
    apply_logs(server, &mut guards, &m, read, started)?;
    Ok(())
}

/// DEBUG LOADAOF: every log written out and fdatasync'd, the data emptied and the logs
/// replayed, all under every shard's lock (no command runs in between, so nothing is appended
/// meanwhile). The number of records replayed.
pub fn reload_from_logs(server: &Server) -> Result<u64, String> {
    let started = Instant::now();
    let wal_state = &server.wal;
    if wal_state.stats.snapshot_in_progress.load(Ordering::Acquire) {
        return Err("Background save already in progress".into());
    }
    let mut guards = server.lock_all();
    // Server-wide placement metadata (QUANTUM links, ENTROPY slot moves, WORMHOLE pins) is not
    // emptied: replaying it over itself could move pinned data twice. Function libraries are
    // emptied with the data and replayed, as Redis's emptyData does.
    if !server.quantum.meta_records().is_empty()
        || !crate::entropy_state::meta_records(server).is_empty()
        || !server.wormhole.meta_records().is_empty()
    {
        return Err(
            "DEBUG LOADAOF is not supported while QUANTUM links or rules, ENTROPY slot moves or \
             WORMHOLE pins exist"
                .into(),
        );
    }
    // With appendonly off, what BGREWRITEAOF last wrote is loaded, as Redis loads its AOF.
    if wal_state.is_on() {
        for shard in 0..wal_state.logs.len() {
            wal_state
                .sync_shard(shard)
                .map_err(|e| format!("cannot sync the log: {e}"))?;
        }
    }
    let dir = log_dir(server);
    let m = wal::read_manifest(&dir)
        .map_err(|e| e.to_string())?
        .ok_or("the log has no manifest")?;
    // Read and checked in full before anything is emptied; the live segments keep their
    // preallocated room (no truncation).
    let read = read_logs(&dir, &m, false, false)?;
    for g in guards.iter_mut() {
        for db in g.dbs.iter_mut() {
            db.clear();
        }
    }
    server.functions.flush();
    let records = apply_logs(server, &mut guards, &m, read, started)?;
    drop(guards);
    // Re-applying commands raised keyspace events that did not happen.
    let _ = warpengine_storage::notify::take();
    Ok(records)
}

/// A manifest's files read and checked: the valid part of each, and which cross-shard groups
/// are complete.
struct ReadLogs {
    shards_files: Vec<Vec<LogFile>>,
    groups: HashMap<u64, (u32, u32)>,
}

/// Reads every file of the manifest and finds where each log's valid records end. A torn tail
/// is cut (on disk too when `truncate`); damage in the middle is an error unless `repair`.
fn read_logs(
    dir: &Path,
    m: &wal::Manifest,
    repair: bool,
    truncate_files: bool,
) -> Result<ReadLogs, String> {
    let mut shards_files: Vec<Vec<LogFile>> = Vec::new();
    for shard in 0..m.shards {
        let mut files = Vec::new();
        if m.snapshot > 0 {
            let path = wal::snapshot_path(dir, m.snapshot, shard);
            let data = Bytes::from(
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read snapshot {}: {e}", path.display()))?,
            );
            files.push(LogFile {
                path,
                keep: data.len(),
                data,
            });
        }
        let segs = wal::segments(dir, shard, m.snapshot).map_err(|e| e.to_string())?;
        for seg in segs {
            let path = wal::log_path(dir, seg, shard);
            let data = Bytes::from(
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            );
            files.push(LogFile {
                path,
                keep: data.len(),
                data,
            });
        }
        shards_files.push(files);
    }

    // First pass: find where each log's valid records end, and which groups are complete.
    let mut groups: HashMap<u64, (u32, u32)> = HashMap::new();
    for files in shards_files.iter_mut() {
        let count = files.len();
        let mut cut_rest = false;
        for (i, f) in files.iter_mut().enumerate() {
            if cut_rest {
                tracing::warn!(
                    "repair: ignoring {} after a damaged segment",
                    f.path.display()
                );
                f.keep = 0;
                continue;
            }
            let (keep, damage) = scan(&f.data, &mut groups);
            f.keep = keep;
            match damage {
                None => {}
                Some(Damage::TornTail { offset }) if i + 1 == count && !is_snapshot(&f.path) => {
                    tracing::warn!(
                        "{}: torn tail at offset {offset} ({} bytes of an interrupted write); truncating",
                        f.path.display(),
                        f.data.len() as u64 - offset
                    );
                }
                Some(damage) => {
                    let (offset, what) = match damage {
                        Damage::TornTail { offset } => (offset, "ends inside a record".to_string()),
                        Damage::Corrupt { offset, next_valid } => (
                            offset,
                            format!("has a corrupt record (valid records resume at offset {next_valid})"),
                        ),
                    };
                    if !repair {
                        return Err(format!(
                            "{} {what} at offset {offset}; refusing to start. Start with --wal-repair to keep the {offset} valid bytes before it (and drop everything after it in this shard's log)",
                            f.path.display()
                        ));
                    }
                    tracing::warn!(
                        "repair: {} {what} at offset {offset}; keeping the valid prefix",
                        f.path.display()
                    );
                    cut_rest = true;
                }
            }
        }
    }
    if truncate_files {
        for files in &shards_files {
            for f in files {
                if f.keep < f.data.len() {
                    truncate(&f.path, f.keep)?;
                }
            }
        }
    }
    Ok(ReadLogs {
        shards_files,
        groups,
    })
}

/// First pass over one file: where its valid records end (and the damage found there, if
/// any), counting the parts of each cross-shard group it holds into `groups`.
fn scan(data: &[u8], groups: &mut HashMap<u64, (u32, u32)>) -> (usize, Option<Damage>) {
    let mut reader = Reader::new(data);
    while let Some(rec) = reader.next_record() {
        if let Some(g) = ops::group_of(rec.payload) {
            let e = groups.entry(g.txid).or_insert((g.parts, 0));
            e.1 += 1;
        }
    }
    (reader.valid_len() as usize, reader.damage().cloned())
}

/// Recovery's two passes over one log segment held in memory, as if it were the only file of
/// shard 0's log in a log directory written by `written_by` shards: its valid records (up to a
/// torn tail or damage, as `wal-repair` keeps them) are replayed into `server`'s shards. The
/// number of records, or the error that would stop a start. Public for the fuzz target
/// `log_record` (fuzz/fuzz_targets/), which needs recovery without the files around it.
pub fn replay_segment(server: &Server, segment: Bytes, written_by: usize) -> Result<u64, String> {
    let started = Instant::now();
    let mut groups = HashMap::new();
    let (keep, _damage) = scan(&segment, &mut groups);
    let mut shards_files: Vec<Vec<LogFile>> = (0..written_by.max(1)).map(|_| Vec::new()).collect();
    shards_files[0].push(LogFile {
        path: PathBuf::from("log-0-0"),
        data: segment,
        keep,
    });
    let read = ReadLogs {
        shards_files,
        groups,
    };
    let m = wal::Manifest {
        shards: written_by.max(1),
        snapshot: 0,
    };
    let mut guards = server.lock_all();
    apply_logs(server, &mut guards, &m, read, started)
}

/// Second pass: applies what `read_logs` read, into the locked shards, with expiry off (the
/// clock is that of the original run: deletions by expiry are in the log). Each log is
/// replayed into one shard, as its records were written: a shard's log holds exactly what
/// happened to the keys that shard stored (pinned ones included). With another thread count
/// the logs are replayed into shards of the old layout, whose keys then move to their owners
/// in the new one. The number of records.
fn apply_logs(
    server: &Server,
    guards: &mut [crate::server_state::ShardGuard<'_>],
    m: &wal::Manifest,
    read: ReadLogs,
    started: Instant,
) -> Result<u64, String> {
    let ReadLogs {
        shards_files,
        groups,
    } = read;
    let total_bytes: usize = shards_files.iter().flatten().map(|f| f.keep).sum();
    let direct = m.shards == server.threads();
    let databases = guards[0].dbs.len();
    let mut old_layout: Vec<Shard> = if direct {
        Vec::new()
    } else {
        (0..m.shards).map(|i| Shard::new(i, databases)).collect()
    };
    let mut records = 0u64;
    let mut skipped_groups = 0u64;
    let mut failed = 0u64;
    let mut done_bytes = 0usize;
    let mut last_report = Instant::now();
    for (old_shard, files) in shards_files.iter().enumerate() {
        let target: &mut Shard = if direct {
            &mut guards[old_shard]
        } else {
            &mut old_layout[old_shard]
        };
        let mut ctx = KeyCtx::new(Shards::One(target), server, 0, 0);
        ctx.clock = unix_ms() as u32;
        for f in files {
            let mut reader = Reader::checked_before(&f.data[..f.keep]);
            while let Some(rec) = reader.next_record() {
                records += 1;
                let payload = ops::decode_in(rec.payload, &f.data).map_err(|e| {
                    format!(
                        "{}: undecodable record at offset {}: {e}",
                        f.path.display(),
                        rec.offset
                    )
                })?;
                if let Some(g) = payload.group {
                    if groups
                        .get(&g.txid)
                        .is_some_and(|&(parts, seen)| seen < parts)
                    {
                        skipped_groups += 1;
                        continue;
                    }
                }
                if let Some(db) = beyond_databases(&payload, databases) {
                    return Err(format!(
                        "{}: the record at offset {} is for database {db}, beyond `databases` ({databases})",
                        f.path.display(),
                        rec.offset
                    ));
                }
                ctx.db = payload.db;
                for op in payload.ops {
                    if !apply(&mut ctx, op) {
                        failed += 1;
                    }
                }
                if records.is_multiple_of(65536) && last_report.elapsed().as_secs() >= 1 {
                    last_report = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        "recovery: {records} records ({:.0}/s), {:.1}%",
                        records as f64 / secs,
                        100.0 * (done_bytes + rec.offset as usize) as f64
                            / total_bytes.max(1) as f64
                    );
                }
            }
            done_bytes += f.keep;
        }
    }
    for old in &mut old_layout {
        for db in 0..databases {
            let keys: Vec<Bytes> = old.dbs[db]
                .iter_live(0)
                .map(|(k, _, _)| Bytes::copy_from_slice(k))
                .collect();
            for k in keys {
                if let Some((e, at)) = old.dbs[db].take(&k) {
                    guards[server.route(&k)].dbs[db].insert_entry(&k, e, at);
                }
            }
        }
    }
    let keys: usize = guards
        .iter()
        .map(|g| g.dbs.iter().map(|d| d.len()).sum::<usize>())
        .sum();
    let secs = started.elapsed().as_secs_f64();
    server
        .wal
        .stats
        .recovered_records
        .store(records, Ordering::Relaxed);
    if skipped_groups > 0 {
        tracing::warn!(
            "recovery: {skipped_groups} parts of cross-shard writes whose other parts never reached disk were not applied (those writes were never acknowledged)"
        );
    }
    if failed > 0 {
        tracing::warn!("recovery: {failed} logged operations were refused on replay");
    }
    tracing::info!(
        "recovered {keys} keys from {records} records in {secs:.3}s ({:.0} records/s; log written by {} shards)",
        records as f64 / secs.max(1e-9),
        m.shards
    );
    // Redis's wording (test harnesses wait for it).
    tracing::info!("DB loaded from append only file: {secs:.3} seconds");
    Ok(records)
}

/// A database a record names (its own, a flushed or a swapped one) that this server does not
/// have: a log written with a larger `databases`, or damage that kept its CRC. Redis refuses to
/// load such a file too.
fn beyond_databases(payload: &ops::Payload, databases: usize) -> Option<usize> {
    let named = payload.ops.iter().flat_map(|op| match *op {
        Op::Flush(Some(db)) => [Some(db), None],
        Op::SwapDb(a, b) => [Some(a), Some(b)],
        _ => [None, None],
    });
    std::iter::once(payload.db)
        .chain(named.flatten())
        .find(|&db| db >= databases)
}

fn is_snapshot(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("snap-"))
}

fn truncate(path: &Path, len: usize) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {} to truncate it: {e}", path.display()))?;
    f.set_len(len as u64)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot truncate {}: {e}", path.display()))
}

/// Applies one logged operation to the shard whose log it came from; false if it was refused
/// (which a consistent log never does).
pub(super) fn apply(ctx: &mut KeyCtx, op: Op) -> bool {
    match op {
        Op::Argv(args) => run_command(ctx, &args),
        // The replication stream's form of the record's group: the other operations are its
        // effect on this shard.
        Op::Propagate(_) => true,
        Op::Del(key) => {
            ctx.db(&key).remove(&key);
            true
        }
        Op::ExpireAt(key, at) => {
            ctx.db(&key).set_expire(&key, at);
            true
        }
        Op::Flush(db) => {
            let dbs: Vec<usize> = match db {
                Some(d) => vec![d],
                None => (0..ctx.databases()).collect(),
            };
            ctx.each_shard(|s| {
                for &d in &dbs {
                    s.dbs[d].clear();
                }
            });
            true
        }
        Op::SwapDb(a, b) => {
            if a != b {
                let (lo, hi) = (a.min(b), a.max(b));
                let now = ctx.now_ms;
                ctx.each_shard(|s| {
                    let (left, right) = s.dbs.split_at_mut(hi);
                    left[lo].swap_with(&mut right[0], now);
                });
            }
            true
        }
    }
}

/// The table row that runs `args`, subcommands resolved.
fn row_of(args: &[Bytes]) -> Option<usize> {
    // Clients' commands are logged under the names they used (`rename-command`), the effects
    // the server writes for them under the table's.
    let name = args.first()?;
    let index = command_table::lookup(name).or_else(|| command_table::lookup_original(name))?;
    // A log the server wrote has the right argument counts; a damaged one that still passed
    // its CRCs must not reach a command with too few arguments (commands index them freely).
    if !command_table::arity_ok(TABLE[index].arity, args.len()) {
        return None;
    }
    command_table::resolve(index, args).ok()
}

fn run_command(ctx: &mut KeyCtx, args: &[Bytes]) -> bool {
    match row_of(args).map(|i| TABLE[i].run) {
        Some(Run::Keyed(f)) => !f(ctx, args).is_error(),
        Some(Run::Meta(_)) => run_meta(ctx.server, args),
        _ => false,
    }
}

/// Runs a metadata command as replay does (no shard lent, nothing logged); false if it is not
/// one or it failed.
pub(super) fn run_meta(server: &Server, args: &[Bytes]) -> bool {
    match row_of(args).map(|i| TABLE[i].run) {
        Some(Run::Meta(f)) => !f(server, None, args).0.is_error(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_store::ConfigStore;
    use ops::PayloadWriter;

    fn server() -> Server {
        crate::commands::install();
        Server::new(ConfigStore::default(), 1)
    }

    /// A segment of one record per payload.
    fn segment(payloads: &[Vec<u8>]) -> Bytes {
        let mut buf = Vec::new();
        for (lsn, p) in payloads.iter().enumerate() {
            wal::record::append(&mut buf, lsn as u64 + 1, |b| b.extend_from_slice(p));
        }
        Bytes::from(buf)
    }

    /// The payload of one record in database `db`, written by `fill`.
    fn payload(db: usize, fill: impl FnOnce(&mut PayloadWriter)) -> Vec<u8> {
        let mut buf = Vec::new();
        fill(&mut PayloadWriter::begin(&mut buf, db, None));
        buf
    }

    fn set(db: usize, key: &[u8]) -> Vec<u8> {
        payload(db, |w| w.argv([&b"SET"[..], key, b"v"].into_iter()))
    }

    #[test]
    fn a_segment_replays_into_the_shard() {
        let server = server();
        let replayed = replay_segment(&server, segment(&[set(0, b"a"), set(3, b"b")]), 1);
        assert_eq!(replayed, Ok(2));
        let shard = server.lock_shard(0);
        assert!(shard.dbs[0].holds(b"a") && shard.dbs[3].holds(b"b"));
    }

    /// Found by the fuzz target `log_record`: a record for a database beyond `databases` (a log
    /// written with more of them) indexed past the shard's databases and panicked; so did a
    /// FLUSH or SWAPDB of one. Now the start stops with an error, as Redis's does.
    #[test]
    fn a_record_beyond_databases_is_an_error_not_a_panic() {
        for (record, db) in [
            (set(16, b"k"), 16),
            (payload(0, |w| w.flush(Some(99))), 99),
            (payload(0, |w| w.swapdb(0, 16)), 16),
        ] {
            let err = replay_segment(&server(), segment(&[set(0, b"a"), record]), 1)
                .expect_err("a database the server lacks");
            assert!(err.contains(&format!("database {db}, beyond")), "{err}");
        }
    }

    /// Checked since the fuzz target `log_record` came: a command with too few arguments
    /// (damage that kept its CRC) reached the command, which indexes its arguments freely
    /// (SET's value: a panic). It is refused, as a refused replay is counted.
    #[test]
    fn a_command_with_the_wrong_arity_is_refused() {
        let short = payload(0, |w| w.argv([&b"SET"[..], b"k"].into_iter()));
        let server = server();
        assert_eq!(replay_segment(&server, segment(&[short]), 1), Ok(1));
        assert!(!server.lock_shard(0).dbs[0].holds(b"k"));
    }
}
