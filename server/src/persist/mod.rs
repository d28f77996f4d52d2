//! Durability: every write's effect goes into its shard's log buffer while the shard is locked.
//! A connection sends its replies only once the records of its writes are written (and, with
//! `appendfsync always`, covered by an fdatasync):
//! - the first connection to wait wakes its worker's flusher, which runs after the connections
//!   already queued in the same pass over the event loop and writes everything pending with
//!   one `pwrite` per shard (group commit; a page-cache copy of microseconds), much as Redis
//!   writes its AOF once per event-loop iteration before replying;
//! - fdatasync, the slow part, never runs on the event loop: a syncer task per shard submits
//!   it through io_uring (or the portable thread) and wakes the waiters it covers, one
//!   fdatasync for every write before it (`always`), or once a second (`everysec`).
//!
//! Measured (BENCHMARKS.md): handing each batch's write to a per-shard io_uring writer task
//! cost a scheduling round per pipeline and ~35% of throughput at P=16; the writes themselves
//! were as fast through io_uring as through pwrite.

pub mod background;
pub mod loading;
pub mod log;
pub mod ops;
pub mod rdb;
pub mod rdb_file;
pub mod rdb_stream;
pub mod rdb_value;
pub mod recovery;
pub mod reload;
pub mod snapshot;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use warpengine_wal::{self as wal, Backend, Syncer};

use crate::server_state::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fsync {
    Always = 0,
    Everysec = 1,
    No = 2,
}

/// What a reply waits for: its records written (a process crash loses nothing acknowledged),
/// or written and fdatasync'd (a power cut loses nothing acknowledged either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durable {
    Written,
    Synced,
}

impl Fsync {
    /// The wait `appendfsync` (or a write's own DURABILITY) asks of a reply.
    pub fn durable(self) -> Durable {
        match self {
            Fsync::Always => Durable::Synced,
            Fsync::Everysec | Fsync::No => Durable::Written,
        }
    }

    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

/// Records waiting for their shard's writer, cut where the log moves to a new segment.
struct Chunk {
    segment: u64,
    buf: Vec<u8>,
    last_lsn: u64,
}

struct Pending {
    chunks: VecDeque<Chunk>,
    next_lsn: u64,
    segment: u64,
    spare: Vec<u8>,
}

/// A cross-shard group's part in another shard that must be durable before anything logged
/// after this shard's part is acknowledged (so no acknowledged write depends on a group that
/// recovery would drop as incomplete).
struct Dep {
    lsn_here: u64,
    shard: usize,
    lsn_there: u64,
}

/// The segment file records are being appended to.
struct SegmentFile {
    segment: u64,
    file: std::fs::File,
    /// Where the next record goes: the end of the records written so far.
    offset: u64,
    /// The file's length: records, then zeros written ahead of them (see [`PREALLOCATE`]).
    allocated: u64,
}

/// Zeros written ahead of a segment's records, a step at a time. An fdatasync after an append
/// that grows the file must also commit the new size to ext4's journal; one after overwriting
/// bytes already on disk flushes data only: 105 against 184 µs per fdatasync on this machine
/// class, 174 against 225 µs with two shards syncing at once (BENCHMARKS.md, issue 14). The zeros
/// cost one page-cache write per step and one slower fdatasync after it. Recovery reads a
/// segment's zero tail as its end (`warpengine_wal::record::Reader`), and a segment is cut back
/// to its records when the log moves on from it or closes.
const PREALLOCATE: u64 = 1 << 20;

impl SegmentFile {
    /// Writes `buf` at the end of the records, first extending the zeroed room if it is short.
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = self.offset + buf.len() as u64;
        if end > self.allocated {
            static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
            let target = end.next_multiple_of(PREALLOCATE);
            let mut at = self.allocated.max(end);
            // Only what lies past the records' end needs zeros; the records themselves follow.
            while at < target {
                let n = (target - at).min(ZEROS.len() as u64) as usize;
                self.file.write_all_at(&ZEROS[..n], at)?;
                at += n as u64;
            }
            self.allocated = target;
        }
        self.file.write_all_at(buf, self.offset)?;
        self.offset = end;
        Ok(())
    }

    /// Cuts the zeros off: the file ends with its last record.
    fn trim(&mut self) -> std::io::Result<()> {
        if self.allocated > self.offset {
            self.file.set_len(self.offset)?;
            self.allocated = self.offset;
        }
        Ok(())
    }
}

pub struct ShardLog {
    pending: Mutex<Pending>,
    file: Mutex<Option<SegmentFile>>,
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    /// The highest LSN a waiter needs fdatasync'd whatever `appendfsync` says (a write with
    /// DURABILITY always, WAITAOF); the syncer syncs when it is ahead of `synced`.
    sync_wanted: AtomicU64,
    deps: Mutex<Vec<Dep>>,
    has_deps: AtomicBool,
    kick: Notify,
    progress: Notify,
    /// Set when writes moved to a new segment file: the syncer reopens its handle.
    segment_changed: AtomicBool,
    /// Where the written bytes end, and where the last fdatasync left them durable:
    /// (segment, offset) packed as segment << 40 | offset, for INFO and the power-loss test.
    pub written_at: AtomicU64,
    pub synced_at: AtomicU64,
}

impl ShardLog {
    fn new() -> ShardLog {
        ShardLog {
            pending: Mutex::new(Pending {
                chunks: VecDeque::new(),
                next_lsn: 1,
                segment: 0,
                spare: Vec::new(),
            }),
            file: Mutex::new(None),
            appended: AtomicU64::new(0),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_wanted: AtomicU64::new(0),
            deps: Mutex::new(Vec::new()),
            has_deps: AtomicBool::new(false),
            kick: Notify::new(),
            progress: Notify::new(),
            segment_changed: AtomicBool::new(false),
            written_at: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
        }
    }

    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one record (called with the shard locked, so LSN order is execution order).
    pub fn append(&self, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let mut p = self.pending();
        let lsn = p.next_lsn;
        p.next_lsn += 1;
        let segment = p.segment;
        if p.chunks.back().is_none_or(|c| c.segment != segment) {
            let buf = std::mem::take(&mut p.spare);
            p.chunks.push_back(Chunk {
                segment,
                buf,
                last_lsn: 0,
            });
        }
        let chunk = p.chunks.back_mut().expect("pushed above");
        wal::record::append(&mut chunk.buf, lsn, fill);
        chunk.last_lsn = lsn;
        self.appended.store(lsn, Ordering::Release);
        lsn
    }

    pub fn segment(&self) -> u64 {
        self.pending().segment
    }

    /// From now on records go to `segment` (called with the shard locked).
    pub fn rotate(&self, segment: u64) {
        self.pending().segment = segment;
    }

    /// Wakes the writer (after a configuration change, so it picks up the new policy).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    fn add_dep(&self, dep: Dep) {
        self.deps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dep);
        self.has_deps.store(true, Ordering::Release);
    }
}

/// Where records go besides the log: the replication stream, which turns them into the
/// commands it sends replicas. Called with the record's shard locked, so per shard the
/// records arrive in execution order.
pub trait RecordTap: Send + Sync {
    fn record(&self, shard: usize, payload: &[u8]);
}

pub struct Wal {
    /// Whether writes are being logged (appendonly yes and the log is open).
    pub enabled: AtomicBool,
    /// Whether records are computed at all: the log is on, or the tap takes them. Callers
    /// test this (one relaxed load) before computing a write's record.
    recording: AtomicBool,
    /// Whether the tap takes records (the replication stream is on).
    tapped: AtomicBool,
    tap: std::sync::OnceLock<Arc<dyn RecordTap>>,
    pub fsync: AtomicU8,
    pub backend: Mutex<Backend>,
    pub dir: Mutex<PathBuf>,
    pub logs: Vec<ShardLog>,
    next_txid: AtomicU64,
    /// Set when a write or fdatasync failed: writes are refused with MISCONF until a fresh
    /// snapshot succeeds.
    pub failed: AtomicBool,
    pub failure: Mutex<String>,
    pub last_retry_ms: AtomicU64,
    /// The background snapshot under way, if any (`background_active` is its cheap check).
    pub background: Mutex<Option<Arc<background::Background>>>,
    pub background_active: AtomicBool,
    /// Per worker: wakes its flusher, which writes what that worker's connections wait for.
    flushers: Vec<Notify>,
    /// Test knob (`wal-sync-delay-ms`): the syncer waits this long before each fdatasync, so a
    /// test can see that `always` replies wait for it.
    pub sync_delay_ms: AtomicU64,
    pub stats: WalStats,
}

#[derive(Default)]
pub struct WalStats {
    pub writes: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    /// How long each fdatasync took, in `command_timing`'s power-of-two buckets, and in all
    /// (microseconds).
    pub fsync_latency: [AtomicU64; crate::command_timing::LATENCY_BUCKETS],
    pub fsync_us: AtomicU64,
    pub snapshots: AtomicU64,
    pub last_snapshot_ok: AtomicBool,
    pub last_snapshot_secs: AtomicU64,
    pub snapshot_in_progress: AtomicBool,
    /// A BGREWRITEAOF asked for while a BGSAVE ran: it starts when that save ends (INFO's
    /// `aof_rewrite_scheduled`).
    pub rewrite_scheduled: AtomicBool,
    pub recovered_records: AtomicU64,
    /// The last RDB load's keys loaded and keys skipped as expired (INFO's
    /// `rdb_last_load_keys_loaded` and `rdb_last_load_keys_expired`).
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
}

impl Wal {
    pub fn new(shards: usize) -> Wal {
        Wal {
            enabled: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            tapped: AtomicBool::new(false),
            tap: std::sync::OnceLock::new(),
            fsync: AtomicU8::new(Fsync::Everysec as u8),
            backend: Mutex::new(Backend::Uring),
            dir: Mutex::new(PathBuf::new()),
            logs: (0..shards).map(|_| ShardLog::new()).collect(),
            next_txid: AtomicU64::new(crate::server_state::unix_ms() * 1000),
            failed: AtomicBool::new(false),
            failure: Mutex::new(String::new()),
            last_retry_ms: AtomicU64::new(0),
            background: Mutex::new(None),
            background_active: AtomicBool::new(false),
            flushers: (0..shards).map(|_| Notify::new()).collect(),
            sync_delay_ms: AtomicU64::new(0),
            stats: WalStats::default(),
        }
    }

    /// Whether the log is on: records are written to disk and replies wait for them.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether writes compute their records: for the log, the tap, or both.
    #[inline]
    pub fn records(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Turns the log on or off (called with every shard locked).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        self.update_recording();
    }

    /// Installs the tap (once, at start); it takes records once `set_tapped(true)`.
    pub fn set_tap(&self, tap: Arc<dyn RecordTap>) {
        let _ = self.tap.set(tap);
    }

    pub fn is_tapped(&self) -> bool {
        self.tapped.load(Ordering::Relaxed)
    }

    /// Starts or stops handing records to the tap (called with every shard locked, so that
    /// the switch falls between two records of every shard).
    pub fn set_tapped(&self, on: bool) {
        self.tapped.store(on, Ordering::SeqCst);
        self.update_recording();
    }

    fn update_recording(&self) {
        let on = self.enabled.load(Ordering::SeqCst) || self.tapped.load(Ordering::SeqCst);
        self.recording.store(on, Ordering::SeqCst);
    }

    /// Appends one record for `shard` (called with the shard locked): into the log when it is
    /// on, and to the tap when it is on. Returns the record's LSN in the log (0: the log is
    /// off, nothing to wait for).
    pub fn append(&self, shard: usize, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let tap = if self.tapped.load(Ordering::Relaxed) {
            self.tap.get()
        } else {
            None
        };
        if self.is_on() {
            return self.logs[shard].append(|buf| {
                let start = buf.len();
                fill(buf);
                if let Some(tap) = tap {
                    tap.record(shard, &buf[start..]);
                }
            });
        }
        if let Some(tap) = tap {
            thread_local! {
                static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            SCRATCH.with_borrow_mut(|buf| {
                buf.clear();
                fill(buf);
                tap.record(shard, buf);
            });
        }
        0
    }

    pub fn fsync(&self) -> Fsync {
        match self.fsync.load(Ordering::Relaxed) {
            0 => Fsync::Always,
            1 => Fsync::Everysec,
            _ => Fsync::No,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn next_txid(&self) -> u64 {
        self.next_txid.fetch_add(1, Ordering::Relaxed)
    }

    /// The MISCONF error for writes while the log is failing, if it is.
    pub fn refusal(&self) -> Option<String> {
        if !self.failed.load(Ordering::Relaxed) {
            return None;
        }
        let why = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        Some(format!("MISCONF Errors writing to the AOF file: {why}"))
    }

    fn fail(&self, shard: usize, what: &str, e: &std::io::Error) {
        tracing::error!(
            shard,
            "log {what} failed: {e}; refusing writes until a snapshot succeeds"
        );
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
        self.failed.store(true, Ordering::SeqCst);
        for log in &self.logs {
            log.progress.notify_waiters();
        }
    }

    /// Records that a group's parts were appended at these (shard, lsn) places (nothing to
    /// link while the log is off).
    pub fn link_group(&self, parts: &[(usize, u64)]) {
        if !self.is_on() {
            return;
        }
        for &(here, lsn_here) in parts {
            for &(there, lsn_there) in parts {
                if here != there {
                    self.logs[here].add_dep(Dep {
                        lsn_here,
                        shard: there,
                        lsn_there,
                    });
                }
            }
        }
    }

    fn durable(&self, shard: usize) -> u64 {
        self.durable_as(shard, self.fsync().durable())
    }

    fn durable_as(&self, shard: usize, class: Durable) -> u64 {
        let log = &self.logs[shard];
        match class {
            Durable::Synced => log.synced.load(Ordering::Acquire),
            Durable::Written => log.written.load(Ordering::Acquire),
        }
    }

    /// Waits until `shard`'s log is durable (per appendfsync) up to `lsn`, and every group part
    /// logged there up to `lsn` is durable in its other shards too. Err: the log failed.
    pub async fn wait(&self, me: usize, shard: usize, lsn: u64) -> Result<(), String> {
        self.wait_as(me, shard, lsn, self.fsync().durable()).await
    }

    /// Whether every record appended so far is fdatasync'd.
    pub fn all_synced(&self) -> bool {
        self.logs
            .iter()
            .all(|l| l.synced.load(Ordering::Acquire) >= l.appended())
    }

    /// Waits until every record appended so far, on every shard, is fdatasync'd.
    pub async fn sync_all(&self, me: usize) -> Result<(), String> {
        let targets: Vec<u64> = self.logs.iter().map(|l| l.appended()).collect();
        for shard in 0..targets.len() {
            self.start_durability(me, shard, Durable::Synced);
        }
        for (shard, lsn) in targets.into_iter().enumerate() {
            self.wait_as(me, shard, lsn, Durable::Synced).await?;
        }
        Ok(())
    }

    /// [`Wal::wait`] for the given durability instead of appendfsync's.
    pub async fn wait_as(
        &self,
        me: usize,
        shard: usize,
        lsn: u64,
        class: Durable,
    ) -> Result<(), String> {
        self.wait_one(me, shard, lsn, class).await?;
        let log = &self.logs[shard];
        if !log.has_deps.load(Ordering::Acquire) {
            return Ok(());
        }
        let needed: Vec<(usize, u64)> = {
            let deps = log.deps.lock().unwrap_or_else(|p| p.into_inner());
            deps.iter()
                .filter(|d| d.lsn_here <= lsn)
                .map(|d| (d.shard, d.lsn_there))
                .collect()
        };
        for (other, other_lsn) in needed {
            self.wait_one(me, other, other_lsn, class).await?;
        }
        let mut deps = log.deps.lock().unwrap_or_else(|p| p.into_inner());
        deps.retain(|d| self.durable(d.shard) < d.lsn_there);
        if deps.is_empty() {
            log.has_deps.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Sets off what makes `shard`'s records durable, without waiting: under `always` its
    /// syncer (which writes what is pending, then fdatasyncs), otherwise worker `me`'s flusher.
    pub fn start_durability(&self, me: usize, shard: usize, class: Durable) {
        let log = &self.logs[shard];
        if log.appended() <= self.durable_as(shard, class) {
            return;
        }
        if class == Durable::Synced && self.fsync() == Fsync::Always {
            log.kick.notify_one();
        } else {
            self.flushers[me].notify_one();
        }
    }

    /// Waits, on worker `me`, until `shard`'s log is durable up to `lsn`.
    async fn wait_one(
        &self,
        me: usize,
        shard: usize,
        lsn: u64,
        class: Durable,
    ) -> Result<(), String> {
        let log = &self.logs[shard];
        let always = self.fsync() == Fsync::Always;
        loop {
            let notified = log.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.refusal() {
                return Err(e);
            }
            if self.durable_as(shard, class) >= lsn {
                return Ok(());
            }
            if log.written.load(Ordering::Acquire) < lsn && !(always && class == Durable::Synced) {
                // This worker's flusher runs after the connections already queued in this
                // pass over the event loop: one write then covers all their records. (Under
                // `always` the syncer writes and syncs in one go.)
                self.flushers[me].notify_one();
                notified.await;
                continue;
            }
            if class == Durable::Written {
                // Written, or the log was switched off meanwhile.
                if !self.is_on() {
                    return Ok(());
                }
                notified.await;
                continue;
            }
            if !always {
                log.sync_wanted.fetch_max(lsn, Ordering::AcqRel);
            }
            log.kick.notify_one();
            notified.await;
        }
    }

    /// Writes every record pending for `shard` (group commit: whoever gets here first writes
    /// for everyone). Returns once they are written or the log has failed.
    pub fn write_pending(&self, shard: usize) {
        let file = self.logs[shard]
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.write_pending_locked(shard, file);
    }

    fn write_pending_locked(
        &self,
        shard: usize,
        mut file: std::sync::MutexGuard<'_, Option<SegmentFile>>,
    ) {
        let log = &self.logs[shard];
        loop {
            let chunk = log.pending().chunks.pop_front();
            let Some(mut chunk) = chunk else { return };
            if self.failed.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = self.write_chunk(shard, &mut file, &chunk) {
                self.fail(shard, "write", &e);
                continue;
            }
            self.stats.writes.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes
                .fetch_add(chunk.buf.len() as u64, Ordering::Relaxed);
            log.written.store(chunk.last_lsn, Ordering::Release);
            log.progress.notify_waiters();
            chunk.buf.clear();
            let mut p = log.pending();
            if p.spare.capacity() < chunk.buf.capacity() {
                p.spare = chunk.buf;
            }
        }
    }

    fn write_chunk(
        &self,
        shard: usize,
        file: &mut Option<SegmentFile>,
        chunk: &Chunk,
    ) -> std::io::Result<()> {
        if file.as_ref().is_none_or(|f| f.segment != chunk.segment) {
            if let Some(mut old) = file.take() {
                // The older segment is complete: it must be durable before anything after it
                // is acknowledged under `always` (the syncer only syncs the current one).
                old.trim()?;
                old.file.sync_data()?;
            }
            let path = wal::log_path(&self.dir(), chunk.segment, shard);
            let f = wal::open_append(&path)?;
            // Recovery cut any zeros off the segment it reopens: its length is its records'.
            let offset = f.metadata()?.len();
            *file = Some(SegmentFile {
                segment: chunk.segment,
                file: f,
                offset,
                allocated: offset,
            });
            self.logs[shard]
                .segment_changed
                .store(true, Ordering::Release);
        }
        let seg = file.as_mut().expect("opened above");
        seg.append(&chunk.buf)?;
        self.logs[shard]
            .written_at
            .store(pack_position(seg.segment, seg.offset), Ordering::Release);
        Ok(())
    }

    /// Writes shard `shard`'s pending records and fdatasyncs its segment (DEBUG LOADAOF).
    pub fn sync_shard(&self, shard: usize) -> std::io::Result<()> {
        self.write_pending(shard);
        let file = self.logs[shard]
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match file.as_ref() {
            Some(f) => f.file.sync_data(),
            None => Ok(()),
        }
    }

    /// At shutdown: writes and syncs every shard's pending records. Returns whether all of
    /// them made it to disk.
    pub fn close(&self) -> bool {
        let mut ok = true;
        for (shard, log) in self.logs.iter().enumerate() {
            self.write_pending(shard);
            let mut file = log.file.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = file.as_mut() {
                ok &= f.trim().is_ok() && f.file.sync_data().is_ok();
            }
        }
        ok && !self.failed.load(Ordering::SeqCst)
    }
}

/// A position in a shard's log chain, ordered: segment above, byte offset below.
pub fn pack_position(segment: u64, offset: u64) -> u64 {
    segment << 40 | offset
}

pub fn unpack_position(p: u64) -> (u64, u64) {
    (p >> 40, p & ((1 << 40) - 1))
}

/// Worker `me`'s flusher: when a connection of this worker waits for records to be written,
/// writes every shard's pending records (one `pwrite` per shard), after the connections
/// already queued in this pass have appended theirs.
pub async fn flusher_loop(server: Arc<Server>, me: usize) {
    let wal = &server.wal;
    loop {
        wal.flushers[me].notified().await;
        for (shard, log) in wal.logs.iter().enumerate() {
            if log.appended() > log.written.load(Ordering::Acquire) {
                wal.write_pending(shard);
            }
        }
    }
}

/// One shard's syncer, on the shard's worker: fdatasyncs what has been written, through
/// io_uring (or the portable thread), when a waiter under `always` asks or once a second
/// under `everysec`; never on the request path.
pub async fn syncer_loop(server: Arc<Server>, me: usize) {
    let wal = &server.wal;
    let log = &wal.logs[me];
    let mut syncer: Option<Syncer> = None;
    let mut last_sync = Instant::now();
    loop {
        if wal.fsync() == Fsync::Everysec {
            let wait = Duration::from_secs(1).saturating_sub(last_sync.elapsed());
            tokio::select! {
                _ = log.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        } else {
            log.kick.notified().await;
        }
        // Waiters under `always` may have records no connection has written yet.
        if wal.fsync() == Fsync::Always {
            wal.write_pending(me);
        }
        let target = log.written.load(Ordering::Acquire);
        let wanted = log.sync_wanted.load(Ordering::Acquire) > log.synced.load(Ordering::Acquire);
        let due = wanted
            || match wal.fsync() {
                Fsync::Always => true,
                Fsync::Everysec => last_sync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
        if !due
            || log.synced.load(Ordering::Acquire) >= target
            || wal.failed.load(Ordering::Relaxed)
        {
            if due {
                // Nothing to sync (or the log has failed) is a sync for the everysec clock:
                // without this the wait above stays at zero and an idle worker spins on its
                // timer, a wake-up every millisecond.
                last_sync = Instant::now();
            }
            log.progress.notify_waiters();
            continue;
        }
        if log.segment_changed.swap(false, Ordering::AcqRel) {
            syncer = None;
        }
        if syncer.is_none() {
            syncer = match open_syncer(wal, me) {
                Ok(s) => s,
                Err(e) => {
                    wal.fail(me, "open", &e);
                    continue;
                }
            };
        }
        let Some(s) = syncer.as_mut() else { continue };
        let position = log.written_at.load(Ordering::Acquire);
        let delay = wal.sync_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let started = Instant::now();
        let synced = s.sync().await;
        note_fsync(&server, started.elapsed());
        match synced {
            Ok(()) => {
                wal.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                log.synced.fetch_max(target, Ordering::AcqRel);
                log.synced_at.fetch_max(position, Ordering::AcqRel);
            }
            Err(e) => wal.fail(me, "fdatasync", &e),
        }
        last_sync = Instant::now();
        log.progress.notify_waiters();
    }
}

/// Files an fdatasync's duration: its histogram, and the latency monitor's `aof-fsync-always`
/// event when it reached `latency-monitor-threshold`, as Redis names it.
fn note_fsync(server: &Server, took: Duration) {
    let stats = &server.wal.stats;
    let ns = took.as_nanos().min(u64::MAX as u128) as u64;
    stats.fsync_latency[crate::command_timing::bucket(ns)].fetch_add(1, Ordering::Relaxed);
    stats
        .fsync_us
        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    server.timing.observe_event("aof-fsync-always", took);
}

/// A handle on the shard's current segment for fdatasync (None before its first write).
fn open_syncer(wal: &Wal, shard: usize) -> std::io::Result<Option<Syncer>> {
    let file = {
        let guard = wal.logs[shard]
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(f) => f.file.try_clone()?,
            None => return Ok(None),
        }
    };
    let backend = *wal.backend.lock().unwrap_or_else(|p| p.into_inner());
    match Syncer::new(file.try_clone()?, backend) {
        Ok(w) => Ok(Some(w)),
        Err(e) if backend == Backend::Uring => {
            tracing::warn!(
                "io_uring is not available ({e}); syncing the log through the portable writer thread"
            );
            *wal.backend.lock().unwrap_or_else(|p| p.into_inner()) = Backend::Thread;
            Syncer::new(file, Backend::Thread).map(Some)
        }
        Err(e) => Err(e),
    }
}

/// `appendonly no` at run time: writes stop being logged; what was logged is still written.
pub fn disable(server: &Server) {
    let mut guards = server.lock_all();
    server.wal.set_enabled(false);
    // (The replication stream, when on, still takes expired keys' deletions.)
    if !server.wal.records() {
        for g in guards.iter_mut() {
            for db in &mut g.dbs {
                db.expired_unlogged = None;
            }
        }
    }
    drop(guards);
    drop(server.lock_all());
    for shard in 0..server.threads() {
        server.wal.write_pending(shard);
    }
}
