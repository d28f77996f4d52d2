//! Background snapshots (BGSAVE, BGREWRITEAOF) that neither stop service nor copy the data.
//!
//! At the start every shard is locked for an instant: its log moves to a new segment and its
//! snapshot epoch advances. Then a thread walks each shard in small steps, each under the
//! shard's lock for a fraction of a millisecond, writing every entry of an older epoch. A write
//! command about to change an entry the walk has not reached writes that entry out first (its
//! state when the snapshot began), so the snapshot is exactly the data at the start, and the
//! new segment holds everything after it. Entries created meanwhile already carry the new
//! epoch and are left to the log.
//!
//! A replica's full sync walks the same way (`start_replica_sync`), with no log segment: the
//! RDB goes out in pieces as the walk makes them, and the replication stream opens at the
//! walk's start, under the same locks.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warpengine_storage::{Entry, Shard};
use warpengine_wal as wal;

use super::log::put_key;
use super::ops::PayloadWriter;
use super::rdb_file::RdbSink;
use crate::server_state::{unix_ms, Server, ShardGuard};

/// Positions visited per step under one shard lock.
const STEP: usize = 256;

struct ShardWalk {
    /// The log snapshot's records (none for a replica's sync).
    buf: Vec<u8>,
    log: bool,
    /// BGSAVE, a replica's sync: the same keys for the RDB.
    rdb: Option<super::rdb_file::ShardParts>,
    lsn: u64,
    db: usize,
    cursor: usize,
    done: bool,
    keys: u64,
}

pub struct Background {
    shards: Vec<Mutex<ShardWalk>>,
    kind: Kind,
    /// Set by [`abort_rdb_save`]: the walk stops and nothing it wrote is kept.
    aborted: std::sync::atomic::AtomicBool,
}

/// What a background walk writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// BGREWRITEAOF: the log's snapshot.
    LogRewrite,
    /// BGSAVE: the log's snapshot and the RDB file.
    RdbFile,
    /// A replica's full sync: the RDB, streamed; no file.
    ReplicaSync,
}

/// Where a walk's RDB records go.
enum RdbOut {
    File(super::rdb_file::BackgroundSave),
    Stream(super::rdb_file::StreamedRdb),
}

impl RdbOut {
    fn take(
        &mut self,
        shard: usize,
        drained: (Vec<(usize, super::rdb_file::DbPart)>, u64),
    ) -> io::Result<()> {
        match self {
            RdbOut::File(save) => save.take(shard, drained),
            RdbOut::Stream(stream) => stream.take(drained),
        }
    }

    /// A replica's sync that no replica reads any more.
    fn abandoned(&self) -> bool {
        matches!(self, RdbOut::Stream(stream) if stream.abandoned())
    }
}

impl ShardWalk {
    fn write(&mut self, db: usize, key: &[u8], entry: &Entry, expire_at: u64) {
        if let Some(parts) = &mut self.rdb {
            parts.add(db, key, entry, expire_at);
        }
        self.keys += 1;
        if !self.log {
            return;
        }
        self.lsn += 1;
        wal::record::append(&mut self.buf, self.lsn, |b| {
            put_key(
                &mut PayloadWriter::begin(b, db, None),
                key,
                Some((entry, expire_at)),
            );
        });
    }
}

fn walk(bg: &Background, shard: usize) -> std::sync::MutexGuard<'_, ShardWalk> {
    bg.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
}

fn current(server: &Server) -> Option<Arc<Background>> {
    server
        .wal
        .background
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Before a write changes `key` in database `db` of `shard`: writes the key's pre-snapshot
/// state out if the walk has not reached it.
pub fn preserve(server: &Server, shard: &mut Shard, db: usize, key: &[u8]) {
    if !server.wal.background_active.load(Ordering::Acquire) {
        return;
    }
    let Some(bg) = current(server) else { return };
    if let Some((entry, at)) = shard.dbs[db].take_for_snapshot(key) {
        walk(&bg, shard.id).write(db, key, entry, at);
    }
}

/// Before a write that moves whole databases (SWAPDB): finishes the walk of those databases
/// on every shard at once.
pub fn preserve_databases(server: &Server, shards: &mut [&mut Shard], dbs: &[usize]) {
    if !server.wal.background_active.load(Ordering::Acquire) {
        return;
    }
    let Some(bg) = current(server) else { return };
    for s in shards.iter_mut() {
        let mut w = walk(&bg, s.id);
        for &db in dbs {
            let mut cursor = usize::MAX;
            s.dbs[db].snapshot_step(&mut cursor, usize::MAX, |k, e, at| w.write(db, k, e, at));
        }
    }
}

/// Whether the walk that runs serves replicas' full syncs (INFO: it is no log rewrite).
pub fn serving_replicas(server: &Server) -> bool {
    current(server).is_some_and(|bg| bg.kind == Kind::ReplicaSync)
}

/// Before the whole dataset is thrown away (FLUSHALL, a reload, a replica's full sync), with
/// every shard locked: a running BGSAVE stops and its files are dropped, as Redis kills its
/// saving child then. Its walk has not reached everything, and what it has not reached is
/// gone, so it could only write a file of part of the data. A replica's sync stops too (its
/// replicas are dropped and sync again), as Redis kills that child as well. A log-only
/// snapshot (BGREWRITEAOF) goes on: its new segment holds the flush, so the log replays to
/// the same data.
pub fn abort_rdb_save(server: &Server) {
    if !server.wal.background_active.load(Ordering::Acquire) {
        return;
    }
    if let Some(bg) = current(server).filter(|bg| bg.kind != Kind::LogRewrite) {
        bg.aborted.store(true, Ordering::Release);
    }
}

/// What BGREWRITEAOF did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    Started,
    /// A BGSAVE runs: the rewrite starts when it ends, as Redis schedules it.
    Scheduled,
    /// A rewrite runs already.
    Busy,
}

/// BGREWRITEAOF: a log-only background snapshot, now or after the BGSAVE that runs.
pub fn rewrite(server: &Arc<Server>) -> Rewrite {
    if start(server, false) {
        return Rewrite::Started;
    }
    if current(server).is_some_and(|bg| bg.kind == Kind::LogRewrite) {
        return Rewrite::Busy;
    }
    let stats = &server.wal.stats;
    stats.rewrite_scheduled.store(true, Ordering::Release);
    // The save may have ended meanwhile, before it could see the request: whichever side
    // takes the flag starts the rewrite.
    if !stats.snapshot_in_progress.load(Ordering::Acquire)
        && stats.rewrite_scheduled.swap(false, Ordering::AcqRel)
    {
        return if start(server, false) {
            Rewrite::Started
        } else {
            Rewrite::Busy
        };
    }
    Rewrite::Scheduled
}

/// `appendonly no` during a BGREWRITEAOF: the rewrite stops, as Redis kills its rewrite child
/// then (the log's files stay as they were before it).
pub fn abort_rewrite(server: &Server) {
    if !server.wal.background_active.load(Ordering::Acquire) {
        return;
    }
    if let Some(bg) = current(server).filter(|bg| bg.kind == Kind::LogRewrite) {
        // Redis's wording (its aofrw unit looks for it); the "child" is the rewrite thread.
        tracing::info!("Killing running AOF rewrite child (the rewrite thread)");
        bg.aborted.store(true, Ordering::Release);
    }
}

/// Starts a background snapshot on a thread of its own, followed (BGSAVE) by the RDB file
/// when `with_rdb_file`. False if one is already running.
pub fn start(server: &Arc<Server>, with_rdb_file: bool) -> bool {
    let kind = if with_rdb_file {
        Kind::RdbFile
    } else {
        Kind::LogRewrite
    };
    start_walk(server, kind, |_| {}, None)
}

/// A replica's full sync: a walk on a thread of its own that sends the RDB of this instant to
/// `sink` in pieces (see `rdb_file::StreamedRdb`), service going on meanwhile. `at_lock` runs
/// with every shard locked at the walk's start, before any key is read: the replication
/// stream opened there begins exactly where the RDB ends. False, and `at_lock` not run, while
/// another walk runs (BGSAVE, BGREWRITEAOF, another sync): the replicas wait for its end, as
/// Redis's replicas wait for the next BGSAVE.
pub fn start_replica_sync(
    server: &Arc<Server>,
    at_lock: impl FnOnce(&mut [ShardGuard<'_>]),
    sink: Box<dyn RdbSink>,
) -> bool {
    start_walk(server, Kind::ReplicaSync, at_lock, Some(sink))
}

fn start_walk(
    server: &Arc<Server>,
    kind: Kind,
    at_lock: impl FnOnce(&mut [ShardGuard<'_>]),
    sink: Option<Box<dyn RdbSink>>,
) -> bool {
    let with_rdb_file = kind == Kind::RdbFile;
    let wal_state = &server.wal;
    if wal_state
        .stats
        .snapshot_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    match kind {
        Kind::RdbFile => tracing::info!("Background saving started"),
        Kind::LogRewrite => tracing::info!("Background append only file rewriting started"),
        Kind::ReplicaSync => {}
    }
    // The snapshot's instant is now, before the caller's reply, as Redis's fork is: a write
    // acknowledged after "Background saving started" is not in it, one before it is.
    let started = Instant::now();
    let changes = server.changes_total();
    let begun = begin(server, kind, at_lock, sink);
    let this_walk = begun.as_ref().ok().map(|b| b.bg.clone());
    let server = server.clone();
    let spawned = std::thread::Builder::new()
        .name("bg-snapshot".into())
        .spawn(move || {
            let result = begun.and_then(|begun| walk_and_finish(&server, begun));
            let stats = &server.wal.stats;
            *server
                .wal
                .background
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            server.wal.background_active.store(false, Ordering::Release);
            // An aborted save leaves the last status as it was, as Redis's killed child does.
            let aborted =
                result.is_err() && this_walk.is_some_and(|bg| bg.aborted.load(Ordering::Acquire));
            if kind == Kind::ReplicaSync {
                // No file: the save's figures (LASTSAVE, rdb_last_bgsave_status) stay as they
                // were, as Redis's transfer to replicas' sockets leaves them.
                match &result {
                    Ok((_, keys)) => tracing::info!(
                        keys,
                        "Background RDB transfer terminated with success ({:.3}s)",
                        started.elapsed().as_secs_f64()
                    ),
                    Err(e) if aborted => tracing::warn!("Background transfer terminated: {e}"),
                    Err(e) => tracing::warn!("Background transfer error: {e}"),
                }
            } else if !aborted {
                stats
                    .last_snapshot_ok
                    .store(result.is_ok(), Ordering::Relaxed);
            }
            match result {
                _ if kind == Kind::ReplicaSync => {}
                Ok((segment, keys)) => {
                    stats.snapshots.fetch_add(1, Ordering::Relaxed);
                    stats
                        .last_snapshot_secs
                        .store(started.elapsed().as_secs(), Ordering::Relaxed);
                    server.lastsave.store(unix_ms() / 1000, Ordering::Relaxed);
                    server.mark_saved(changes);
                    tracing::info!(
                        segment,
                        keys,
                        "background snapshot written in {:.3}s",
                        started.elapsed().as_secs_f64()
                    );
                    // Redis's wording, logged before INFO stops saying in progress: test
                    // harnesses wait for these lines.
                    if with_rdb_file {
                        tracing::info!("DB saved on disk");
                        tracing::info!("Background saving terminated with success");
                    } else {
                        tracing::info!("Background AOF rewrite terminated with success");
                        tracing::info!("Background AOF rewrite finished successfully");
                    }
                }
                Err(e) if aborted && with_rdb_file => {
                    tracing::warn!("Background saving terminated: {e}")
                }
                Err(e) if aborted => tracing::warn!("Background AOF rewrite terminated: {e}"),
                Err(e) if with_rdb_file => tracing::error!("Background saving error: {e}"),
                Err(e) => tracing::error!("Background AOF rewrite error: {e}"),
            }
            stats.snapshot_in_progress.store(false, Ordering::Release);
            if stats.rewrite_scheduled.swap(false, Ordering::AcqRel) {
                start(&server, false);
            }
        });
    if spawned.is_err() {
        *wal_state
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        wal_state.background_active.store(false, Ordering::Release);
        wal_state
            .stats
            .snapshot_in_progress
            .store(false, Ordering::Release);
        return false;
    }
    true
}

/// Redis's `save` rules ("<seconds> <changes> ..."), checked once a second as Redis's cron
/// does: a background save (as BGSAVE) starts when some rule has at least `changes` changes
/// since the last save and more than `seconds` since it; after a failed save, not again
/// before 5 seconds (Redis's CONFIG_BGSAVE_RETRY_DELAY). `last_try` is the caller's record
/// of the last attempt (unix seconds).
pub fn save_if_rules_due(server: &Arc<Server>, last_try: &mut u64) {
    const RETRY_DELAY_SECS: u64 = 5;
    let rules = server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get("save")
        .to_string();
    if rules.is_empty()
        || server
            .wal
            .stats
            .snapshot_in_progress
            .load(Ordering::Relaxed)
    {
        return;
    }
    let now = unix_ms() / 1000;
    let changes = server.changes_since_save();
    let since_save = now.saturating_sub(server.lastsave.load(Ordering::Relaxed));
    let may_try = server.wal.stats.last_snapshot_ok.load(Ordering::Relaxed)
        || now.saturating_sub(*last_try) > RETRY_DELAY_SECS;
    let numbers: Vec<u64> = rules
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let due = numbers
        .chunks_exact(2)
        .find(|rule| changes >= rule[1] && since_save > rule[0]);
    if let (Some(rule), true) = (due, may_try) {
        tracing::info!("{} changes in {} seconds. Saving...", rule[1], rule[0]);
        *last_try = now;
        start(server, true);
    }
}

/// A background walk begun: its walk, the log's new segment (none for a replica's sync), where
/// its RDB goes.
struct Begun {
    bg: Arc<Background>,
    segment: Option<u64>,
    rdb: Option<RdbOut>,
}

/// Begins the background walk: with every shard locked for a moment, the logs move to a new
/// segment (but for a replica's sync), `at_lock` runs, the RDB (BGSAVE, a sync) begins, and
/// the shards' snapshot epoch advances.
fn begin(
    server: &Server,
    kind: Kind,
    at_lock: impl FnOnce(&mut [ShardGuard<'_>]),
    sink: Option<Box<dyn RdbSink>>,
) -> io::Result<Begun> {
    let wal_state = &server.wal;
    let dir = wal_state.dir();
    let logged = kind != Kind::ReplicaSync;
    if logged {
        std::fs::create_dir_all(&dir)?;
    }
    let n = server.threads();
    let databases = server.databases();
    let enc = super::rdb_value::encodings(server);
    let bg = Arc::new(Background {
        shards: (0..n)
            .map(|_| {
                Mutex::new(ShardWalk {
                    buf: Vec::new(),
                    log: logged,
                    rdb: (kind != Kind::LogRewrite)
                        .then(|| super::rdb_file::ShardParts::new(enc, databases)),
                    lsn: 0,
                    db: 0,
                    cursor: usize::MAX,
                    done: false,
                    keys: 0,
                })
            })
            .collect(),
        kind,
        aborted: Default::default(),
    });
    let (segment, rdb) = {
        let mut guards = server.lock_all();
        let segment = if logged {
            Some(super::snapshot::rotate_all(server, &dir, &mut guards)?)
        } else {
            None
        };
        at_lock(&mut guards);
        let rdb = match (kind, sink) {
            (Kind::RdbFile, _) => Some(RdbOut::File(super::rdb_file::BackgroundSave::begin(
                server, n, databases,
            ))),
            (Kind::ReplicaSync, Some(sink)) => Some(RdbOut::Stream(
                super::rdb_file::StreamedRdb::begin(server, &guards, sink),
            )),
            _ => None,
        };
        if logged {
            let mut w = walk(&bg, 0);
            let w = &mut *w;
            let meta = super::snapshot::meta_records(server);
            super::snapshot::append_meta(&mut w.buf, &mut w.lsn, &meta);
        }
        for g in guards.iter_mut() {
            for db in &mut g.dbs {
                db.next_snap_epoch();
            }
        }
        *wal_state
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(bg.clone());
        wal_state.background_active.store(true, Ordering::Release);
        (segment, rdb)
    };
    Ok(Begun { bg, segment, rdb })
}

/// Walks the shards (on the snapshot's thread) and puts the files in place (a replica's
/// sync: ends its RDB). Answers the log's new segment and the keys walked.
fn walk_and_finish(server: &Server, begun: Begun) -> io::Result<(Option<u64>, u64)> {
    let Begun {
        bg,
        segment,
        mut rdb,
    } = begun;
    let Some(segment) = segment else {
        let keys = write_all(server, &bg, &[], rdb.as_mut())?;
        if let Some(RdbOut::Stream(stream)) = rdb {
            stream.finish()?;
        }
        return Ok((None, keys));
    };
    let dir = server.wal.dir();
    let n = server.threads();
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| wal::snapshot_path(&dir, segment, i).with_extension("tmp"))
        .collect();
    let result = write_all(server, &bg, &paths, rdb.as_mut());
    let finish = result.and_then(|keys| {
        for (i, tmp) in paths.iter().enumerate() {
            std::fs::rename(tmp, wal::snapshot_path(&dir, segment, i))?;
        }
        wal::sync_dir(&dir)?;
        wal::write_manifest(
            &dir,
            &wal::Manifest {
                shards: n,
                snapshot: segment,
            },
        )?;
        wal::remove_before(&dir, segment, Some(n))?;
        if let Some(RdbOut::File(rdb)) = rdb {
            rdb.finish(server)?;
        }
        Ok(keys)
    });
    if finish.is_err() {
        for p in &paths {
            let _ = std::fs::remove_file(p);
        }
    }
    finish.map(|keys| (Some(segment), keys))
}

/// Walks every shard step by step, appending what each step produced to its file (none for a
/// replica's sync) and to the RDB.
fn write_all(
    server: &Server,
    bg: &Background,
    paths: &[PathBuf],
    mut rdb: Option<&mut RdbOut>,
) -> io::Result<u64> {
    let mut files = paths
        .iter()
        .map(|p| std::fs::File::create(p).map(io::BufWriter::new))
        .collect::<io::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    loop {
        let mut all_done = true;
        let mut stepped_keys = 0;
        for i in 0..server.threads() {
            let rdb_parts = {
                let mut shard = server.lock_shard(i);
                if bg.aborted.load(Ordering::Acquire) {
                    return Err(stopped());
                }
                if rdb.as_deref().is_some_and(RdbOut::abandoned) {
                    return Err(abandoned());
                }
                let mut w = walk(bg, i);
                let before = w.keys;
                if !w.done {
                    step(&mut shard, &mut w);
                }
                stepped_keys += w.keys - before;
                all_done &= w.done;
                std::mem::swap(&mut out, &mut w.buf);
                w.rdb.as_mut().map(|p| p.drain())
            };
            if let Some(file) = files.get_mut(i) {
                file.write_all(&out)?;
            }
            out.clear();
            if let (Some(save), Some(parts)) = (rdb.as_deref_mut(), rdb_parts) {
                save.take(i, parts)?;
            }
        }
        // In slices, so that a stopped save ends at once, and a delay set back to 0 too.
        let waiting = Instant::now();
        loop {
            let delay = key_save_delay(server, stepped_keys);
            let Some(left) = delay
                .checked_sub(waiting.elapsed())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            if bg.aborted.load(Ordering::Acquire) {
                return Err(stopped());
            }
            if rdb.as_deref().is_some_and(RdbOut::abandoned) {
                return Err(abandoned());
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
        if all_done {
            break;
        }
        // Leave the cores to the workers between steps.
        std::thread::sleep(Duration::from_micros(50));
    }
    // The walks are over, so no write finds an entry to preserve any more; what the last
    // writes preserved is collected under each shard's lock.
    server.wal.background_active.store(false, Ordering::Release);
    let mut keys = 0;
    for i in 0..server.threads() {
        let (rest, count, rdb_parts) = {
            let _shard = server.lock_shard(i);
            let mut w = walk(bg, i);
            let parts = w.rdb.as_mut().map(|p| p.drain());
            (std::mem::take(&mut w.buf), w.keys, parts)
        };
        if let (Some(save), Some(parts)) = (rdb.as_deref_mut(), rdb_parts) {
            save.take(i, parts)?;
        }
        keys += count;
        if let Some(file) = files.get_mut(i) {
            file.write_all(&rest)?;
            file.flush()?;
            file.get_ref().sync_data()?;
        }
    }
    Ok(keys)
}

/// Why an aborted save ended (FLUSHALL, a full sync, `appendonly no`).
fn stopped() -> io::Error {
    io::Error::other("the save was stopped (the data it was saving was flushed or replaced, or the log turned off)")
}

/// Why a replica's sync ended early.
fn abandoned() -> io::Error {
    // Redis's words when its last diskless replica goes.
    tracing::warn!("Diskless rdb transfer, last replica dropped, killing fork child.");
    io::Error::other("no replica reads the RDB any more")
}

/// `rdb-key-save-delay`, the test setting Redis's suite uses to keep a save running: that many
/// microseconds per key written (negative: a 1-in-N chance of one microsecond), waited between
/// steps with no shard locked.
fn key_save_delay(server: &Server, keys: u64) -> Duration {
    let delay = server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get_i64("rdb-key-save-delay");
    match delay {
        0 => Duration::ZERO,
        d if d > 0 => Duration::from_micros((d as u64).saturating_mul(keys)),
        d => Duration::from_micros(keys / d.unsigned_abs()),
    }
}

fn step(shard: &mut Shard, w: &mut ShardWalk) {
    let mut budget = STEP;
    while budget > 0 && w.db < shard.dbs.len() {
        let db = w.db;
        let before = w.cursor.min(shard.dbs[db].len());
        let mut cursor = w.cursor;
        let finished =
            shard.dbs[db].snapshot_step(&mut cursor, budget, |k, e, at| w.write(db, k, e, at));
        budget = budget.saturating_sub(before - cursor);
        w.cursor = cursor;
        if finished {
            w.db += 1;
            w.cursor = usize::MAX;
        }
    }
    if w.db >= shard.dbs.len() {
        w.done = true;
    }
}
