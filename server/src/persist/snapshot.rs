//! Snapshots: each shard's keys written as records that re-create them, at a new segment
//! number; once every shard's snapshot is on disk, the manifest points recovery at it and the
//! older logs are deleted.
//!
//! The snapshot is taken with every shard locked, so it is exact, and the log moves to the
//! new segment in the same step. Service stops for its duration (about a second per million
//! small keys on the machine BENCHMARKS.md describes).

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use warpengine_storage::Shard;
use warpengine_wal as wal;

use super::log::{flush_expired, put_key};
use super::ops::PayloadWriter;
use crate::server_state::{unix_ms, Server};

/// What changes about logging when the snapshot is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logging {
    Keep,
    /// Start logging from the snapshot on (appendonly turned on, or a start that recovered).
    Enable,
}

/// Takes a snapshot of every shard into the log directory. On success a failed log is cleared:
/// the snapshot holds everything the broken log could not.
pub fn take(server: &Server, logging: Logging) -> io::Result<u64> {
    let wal_state = &server.wal;
    let dir = wal_state.dir();
    std::fs::create_dir_all(&dir)?;
    // Not ours to clear at the end when a background walk (a replica's sync, say) holds it.
    let ours = wal_state
        .stats
        .snapshot_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    let started = Instant::now();
    let changes = server.changes_total();
    let result = (|| {
        let mut guards = server.lock_all();
        let segment = rotate_all(server, &dir, &mut guards)?;
        let meta = meta_records(server);
        let mut keys = 0u64;
        for g in guards.iter_mut() {
            let meta: &[Vec<Vec<u8>>] = if g.id == 0 { &meta } else { &[] };
            match write_shard(&dir, segment, g, meta) {
                Ok(n) => keys += n,
                Err(e) => {
                    for id in 0..guards.len() {
                        let _ = std::fs::remove_file(wal::snapshot_path(&dir, segment, id));
                    }
                    return Err(e);
                }
            }
        }
        wal::write_manifest(
            &dir,
            &wal::Manifest {
                shards: guards.len(),
                snapshot: segment,
            },
        )?;
        if logging == Logging::Enable {
            for g in guards.iter_mut() {
                for db in &mut g.dbs {
                    db.expired_unlogged.get_or_insert_with(Vec::new);
                }
            }
            wal_state.set_enabled(true);
        }
        wal_state.failed.store(false, Ordering::SeqCst);
        drop(guards);
        wal::remove_before(&dir, segment, Some(server.threads()))?;
        tracing::info!(
            segment,
            keys,
            "snapshot written in {:.3}s",
            started.elapsed().as_secs_f64()
        );
        Ok(segment)
    })();
    let stats = &wal_state.stats;
    if ours {
        stats.snapshot_in_progress.store(false, Ordering::Release);
    }
    stats
        .last_snapshot_ok
        .store(result.is_ok(), Ordering::Relaxed);
    if result.is_ok() {
        stats.snapshots.fetch_add(1, Ordering::Relaxed);
        stats
            .last_snapshot_secs
            .store(started.elapsed().as_secs(), Ordering::Relaxed);
        server.lastsave.store(unix_ms() / 1000, Ordering::Relaxed);
        server.mark_saved(changes);
    }
    result
}

/// SAVE (and what saves as it does: a saving shutdown, FLUSHALL with save rules): the log's
/// snapshot, then the RDB file (`rdb_file`).
pub fn save(server: &Server) -> io::Result<u64> {
    let segment = take(server, Logging::Keep)?;
    super::rdb_file::save(server)?;
    // Redis's wording (test harnesses wait for it).
    tracing::info!("DB saved on disk");
    Ok(segment)
}

/// Moves every shard's log to a new segment, with all of them locked (`guards`): what came
/// before belongs to the snapshot about to be taken, what comes after to the new segment, and
/// a cross-shard group lands wholly on one side. Returns the new segment's number.
pub fn rotate_all(
    server: &Server,
    dir: &Path,
    guards: &mut [crate::server_state::ShardGuard<'_>],
) -> io::Result<u64> {
    let wal_state = &server.wal;
    let current = wal_state
        .logs
        .iter()
        .map(|l| l.segment())
        .max()
        .unwrap_or(0);
    let segment = wal::last_segment(dir)?.max(current) + 1;
    for g in guards.iter_mut() {
        if wal_state.is_on() {
            flush_expired(server, g);
        }
        wal_state.logs[g.id].rotate(segment);
    }
    Ok(segment)
}

/// After a log failure: tries a fresh snapshot, at most once a second, on a thread of its own.
pub fn retry_after_failure(server: &Arc<Server>) {
    let wal_state = &server.wal;
    let now = unix_ms();
    let last = wal_state.last_retry_ms.load(Ordering::Relaxed);
    if now < last + 1000 {
        return;
    }
    wal_state.last_retry_ms.store(now, Ordering::Relaxed);
    if wal_state
        .stats
        .snapshot_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let server = server.clone();
    let spawned = std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            // (The flag is this retry's, taken above: `take` leaves it set.)
            match take(&server, Logging::Keep) {
                Ok(_) => tracing::warn!("the log is writable again: a fresh snapshot was written"),
                Err(e) => tracing::warn!("snapshot after a log failure failed too: {e}"),
            }
            server
                .wal
                .stats
                .snapshot_in_progress
                .store(false, Ordering::Release);
        });
    if spawned.is_err() {
        wal_state
            .stats
            .snapshot_in_progress
            .store(false, Ordering::Relaxed);
    }
}

/// Writes one shard's keys to `snap-SEGMENT-ID`, durably; returns how many.
fn write_shard(
    dir: &Path,
    segment: u64,
    shard: &mut Shard,
    meta: &[Vec<Vec<u8>>],
) -> io::Result<u64> {
    let path = wal::snapshot_path(dir, segment, shard.id);
    let tmp = path.with_extension("tmp");
    let result = write_shard_to(&tmp, shard, meta).and_then(|keys| {
        std::fs::rename(&tmp, &path)?;
        wal::sync_dir(dir)?;
        Ok(keys)
    });
    if result.is_err() {
        // A failed snapshot must not keep the space it took (the disk may be full).
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_shard_to(tmp: &Path, shard: &mut Shard, meta: &[Vec<Vec<u8>>]) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(tmp)?);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut lsn = 0u64;
    append_meta(&mut buf, &mut lsn, meta);
    let mut keys = 0u64;
    for (db_index, db) in shard.dbs.iter().enumerate() {
        for (key, entry, expire_at) in db.iter_live(0) {
            keys += 1;
            append_key(&mut buf, &mut lsn, db_index, key, entry, expire_at);
            if buf.len() >= 60 << 10 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_data()?;
    Ok(keys)
}

/// Appends the record that re-creates `key` (its value and expiry) in database `db`, as the
/// snapshot's next record.
pub(super) fn append_key(
    buf: &mut Vec<u8>,
    lsn: &mut u64,
    db: usize,
    key: &[u8],
    entry: &warpengine_storage::Entry,
    expire_at: u64,
) {
    *lsn += 1;
    wal::record::append(buf, *lsn, |b| {
        put_key(
            &mut PayloadWriter::begin(b, db, None),
            key,
            Some((entry, expire_at)),
        );
    });
}

/// The commands that re-create server-wide metadata (QUANTUM links and rules, WORMHOLE pins:
/// replayed, a pin only routes, the pinned data being in its shard's snapshot), taken under
/// every shard's lock with the keys; they go first in shard 0's snapshot.
pub fn meta_records(server: &Server) -> Vec<Vec<Vec<u8>>> {
    let mut out = server.quantum.meta_records();
    // Slot moves first: a pin is replayed onto its anchor's shard as the slots stand then.
    out.extend(crate::entropy_state::meta_records(server));
    out.extend(server.wormhole.meta_records());
    out.extend(server.functions.meta_records());
    out
}

pub fn append_meta(buf: &mut Vec<u8>, lsn: &mut u64, meta: &[Vec<Vec<u8>>]) {
    for argv in meta {
        *lsn += 1;
        wal::record::append(buf, *lsn, |b| {
            PayloadWriter::begin(b, 0, None).argv(argv.iter().map(|a| &a[..]));
        });
    }
}
