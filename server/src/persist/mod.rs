//! Durability: every write's effect goes into its shard's log buffer while the shard is locked;
//! a writer task per shard (on the shard's own worker) writes each accumulated batch with one
//! submission; a connection sends its replies only once the records of its writes are written
//! (and, with `appendfsync always`, covered by an fdatasync).

pub mod background;
pub mod log;
pub mod ops;
pub mod recovery;
pub mod snapshot;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use warpengine_wal::{self as wal, Backend, Writer};

use crate::server::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fsync {
    Always = 0,
    Everysec = 1,
    No = 2,
}

impl Fsync {
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

pub struct ShardLog {
    pending: Mutex<Pending>,
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    deps: Mutex<Vec<Dep>>,
    has_deps: AtomicBool,
    kick: Notify,
    progress: Notify,
    /// Set by the writer once it has written and synced everything at shutdown.
    closed: AtomicBool,
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
            appended: AtomicU64::new(0),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            deps: Mutex::new(Vec::new()),
            has_deps: AtomicBool::new(false),
            kick: Notify::new(),
            progress: Notify::new(),
            closed: AtomicBool::new(false),
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

pub struct Wal {
    /// Whether writes are being logged (appendonly yes and the log is open).
    pub enabled: AtomicBool,
    pub fsync: AtomicU8,
    pub backend: Mutex<Backend>,
    pub dir: Mutex<PathBuf>,
    pub logs: Vec<ShardLog>,
    next_txid: AtomicU64,
    /// Set when a write or fdatasync failed: writes are refused with MISCONF until a fresh
    /// snapshot succeeds.
    pub failed: AtomicBool,
    pub failure: Mutex<String>,
    pub shutting_down: AtomicBool,
    pub last_retry_ms: AtomicU64,
    /// The background snapshot under way, if any (`background_active` is its cheap check).
    pub background: Mutex<Option<Arc<background::Background>>>,
    pub background_active: AtomicBool,
    pub stats: WalStats,
}

#[derive(Default)]
pub struct WalStats {
    pub writes: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub snapshots: AtomicU64,
    pub last_snapshot_ok: AtomicBool,
    pub last_snapshot_secs: AtomicU64,
    pub snapshot_in_progress: AtomicBool,
    pub recovered_records: AtomicU64,
}

impl Wal {
    pub fn new(shards: usize) -> Wal {
        Wal {
            enabled: AtomicBool::new(false),
            fsync: AtomicU8::new(Fsync::Everysec as u8),
            backend: Mutex::new(Backend::Uring),
            dir: Mutex::new(PathBuf::new()),
            logs: (0..shards).map(|_| ShardLog::new()).collect(),
            next_txid: AtomicU64::new(crate::server::unix_ms() * 1000),
            failed: AtomicBool::new(false),
            failure: Mutex::new(String::new()),
            shutting_down: AtomicBool::new(false),
            last_retry_ms: AtomicU64::new(0),
            background: Mutex::new(None),
            background_active: AtomicBool::new(false),
            stats: WalStats::default(),
        }
    }

    #[inline]
    pub fn is_on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
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

    /// Records that a group's parts were appended at these (shard, lsn) places.
    pub fn link_group(&self, parts: &[(usize, u64)]) {
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
        let log = &self.logs[shard];
        match self.fsync() {
            Fsync::Always => log.synced.load(Ordering::Acquire),
            _ => log.written.load(Ordering::Acquire),
        }
    }

    /// Waits until `shard`'s log is durable (per appendfsync) up to `lsn`, and every group part
    /// logged there up to `lsn` is durable in its other shards too. Err: the log failed.
    pub async fn wait(&self, shard: usize, lsn: u64) -> Result<(), String> {
        self.wait_one(shard, lsn).await?;
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
            self.wait_one(other, other_lsn).await?;
        }
        let mut deps = log.deps.lock().unwrap_or_else(|p| p.into_inner());
        deps.retain(|d| self.durable(d.shard) < d.lsn_there);
        if deps.is_empty() {
            log.has_deps.store(false, Ordering::Release);
        }
        Ok(())
    }

    async fn wait_one(&self, shard: usize, lsn: u64) -> Result<(), String> {
        let log = &self.logs[shard];
        loop {
            let notified = log.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.durable(shard) >= lsn {
                return Ok(());
            }
            if let Some(e) = self.refusal() {
                return Err(e);
            }
            if !self.is_on() && log.written.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            log.kick.notify_one();
            notified.await;
        }
    }

    /// At shutdown: has every shard's writer write and sync what it holds, waiting at most
    /// `limit`. Returns whether all of them finished.
    pub fn close(&self, limit: Duration) -> bool {
        self.shutting_down.store(true, Ordering::SeqCst);
        for log in &self.logs {
            log.kick.notify_one();
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.logs.iter().all(|l| l.closed.load(Ordering::Acquire)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// `appendonly no` at run time: writes stop being logged; what was logged is still written.
pub fn disable(server: &Server) {
    let guards = server.lock_all();
    server.wal.enabled.store(false, Ordering::SeqCst);
    for mut g in guards {
        for db in &mut g.dbs {
            db.expired_unlogged = None;
        }
    }
}

/// One shard's writer: runs on the shard's worker for the life of the server.
pub async fn writer_loop(server: Arc<Server>, me: usize) {
    let wal = &server.wal;
    let log = &wal.logs[me];
    let mut file: Option<(u64, Writer)> = None;
    let mut last_sync = Instant::now();
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let everysec_due = wal.fsync() == Fsync::Everysec
            && log.synced.load(Ordering::Acquire) < log.written.load(Ordering::Acquire);
        if everysec_due {
            let wait = Duration::from_secs(1).saturating_sub(last_sync.elapsed());
            tokio::select! {
                _ = log.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        } else {
            log.kick.notified().await;
        }
        if wal.failed.load(Ordering::Relaxed) {
            // Nothing more is written to a log that has a hole; a snapshot starts a new one.
            drop_pending(log, &mut spare);
            file = None;
            log.progress.notify_waiters();
            if wal.shutting_down.load(Ordering::Relaxed) {
                log.closed.store(true, Ordering::Release);
            }
            continue;
        }
        loop {
            let chunk = {
                let mut p = log.pending();
                let c = p.chunks.pop_front();
                if c.is_some() && p.spare.capacity() == 0 {
                    p.spare = std::mem::take(&mut spare);
                }
                c
            };
            let Some(chunk) = chunk else { break };
            if file.as_ref().is_none_or(|(seg, _)| *seg != chunk.segment) {
                if let Some((_, mut old)) = file.take() {
                    if let Err(e) = old.sync().await {
                        wal.fail(me, "fdatasync", &e);
                        break;
                    }
                }
                match open_segment(wal, me, chunk.segment) {
                    Ok(w) => file = Some((chunk.segment, w)),
                    Err(e) => {
                        wal.fail(me, "open", &e);
                        break;
                    }
                }
            }
            let (_, writer) = file.as_mut().expect("opened above");
            let sync = wal.fsync() == Fsync::Always;
            let len = chunk.buf.len() as u64;
            let (mut buf, res) = writer.append(chunk.buf, sync).await;
            if let Err(e) = res {
                wal.fail(me, "write", &e);
                break;
            }
            wal.stats.writes.fetch_add(1, Ordering::Relaxed);
            wal.stats.bytes.fetch_add(len, Ordering::Relaxed);
            log.written.store(chunk.last_lsn, Ordering::Release);
            if sync {
                wal.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                log.synced.store(chunk.last_lsn, Ordering::Release);
                last_sync = Instant::now();
            }
            log.progress.notify_waiters();
            buf.clear();
            spare = buf;
        }
        let written = log.written.load(Ordering::Acquire);
        let must_sync = wal.shutting_down.load(Ordering::Relaxed)
            || (wal.fsync() == Fsync::Everysec && last_sync.elapsed() >= Duration::from_secs(1));
        if must_sync && log.synced.load(Ordering::Acquire) < written {
            if let Some((_, w)) = file.as_mut() {
                match w.sync().await {
                    Ok(()) => {
                        wal.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                        log.synced.store(written, Ordering::Release);
                    }
                    Err(e) => wal.fail(me, "fdatasync", &e),
                }
            }
            last_sync = Instant::now();
            log.progress.notify_waiters();
        }
        if wal.shutting_down.load(Ordering::Relaxed) && log.pending().chunks.is_empty() {
            log.closed.store(true, Ordering::Release);
        }
    }
}

fn drop_pending(log: &ShardLog, spare: &mut Vec<u8>) {
    let mut p = log.pending();
    while let Some(c) = p.chunks.pop_front() {
        *spare = c.buf;
        spare.clear();
    }
}

fn open_segment(wal: &Wal, shard: usize, segment: u64) -> std::io::Result<Writer> {
    let path = wal::log_path(&wal.dir(), segment, shard);
    let file = wal::open_append(&path)?;
    let backend = *wal.backend.lock().unwrap_or_else(|p| p.into_inner());
    match Writer::new(file, backend) {
        Ok(w) => Ok(w),
        Err(e) if backend == Backend::Uring => {
            tracing::warn!(
                "io_uring is not available ({e}); logging through the portable writer thread"
            );
            *wal.backend.lock().unwrap_or_else(|p| p.into_inner()) = Backend::Thread;
            Writer::new(wal::open_append(&path)?, Backend::Thread)
        }
        Err(e) => Err(e),
    }
}
