//! The dataset being loaded, at start (the RDB file, or the log's snapshot and records) or by a
//! replica replacing its data with its primary's RDB. Meanwhile the server takes connections
//! and answers them as Redis does while it loads: commands flagged `loading` (INFO, CONFIG,
//! CLIENT, DEBUG, SHUTDOWN, REPLCONF ...) run, every other gets "-LOADING Redis is loading the
//! dataset in memory"; INFO shows `loading:1` and the load's progress (`loading_loaded_bytes`,
//! `loading_eta_seconds` ...). The periodic tick (active expiry, save rules) waits for the end,
//! as Redis's serverCron does not run during a load; SHUTDOWN and SIGTERM stop the server
//! without saving the half-loaded data. A start with no file to read lets no client in before
//! it is ready, as Redis's (whose event loop runs only after the load): it never says -LOADING.
//!
//! Redis serves its clients between pieces of the load (`loading-process-events-interval-bytes`,
//! `processEventsWhileBlocked`); here the workers serve them on their own threads, and the load
//! lets go of the shards' locks as often, so that what runs (INFO reads the key counts) is
//! not held up for the whole load. `key-load-delay` (a test setting) pauses after each key,
//! without the locks: Redis's `debugDelay`, microseconds, or with a negative value a
//! microsecond once in that many keys.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::server_state::{unix_ms, Server, ShardGuard};

/// Redis's refusal while the dataset loads.
pub const REFUSAL: &str = "LOADING Redis is loading the dataset in memory";

#[derive(Default)]
pub struct Loading {
    active: AtomicBool,
    /// Unix seconds when the load started.
    started_unix: AtomicU64,
    /// The RDB's (or the log's) size in bytes, 0 when unknown.
    total_bytes: AtomicU64,
    /// The RDB's `used-mem` field: the memory its writer used.
    rdb_used_mem: AtomicU64,
    loaded_bytes: AtomicU64,
    /// `key-load-delay`, read when the load starts.
    key_delay_us: AtomicI64,
    ended: Notify,
    /// Whether the workers accept connections: from the moment a file is being read (its
    /// clients are answered -LOADING), or once the start's load is over. Before that (no file
    /// found yet, or none at all) connections wait in the listen backlog, as Redis's do until
    /// its event loop runs: a server with nothing to load never answers -LOADING.
    admitting: AtomicBool,
    admitted: Notify,
}

impl Loading {
    /// Whether clients are refused with -LOADING now. One relaxed load: admission reads it
    /// for every request.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Marks a load of `total_bytes` (0: unknown) as running until [`Loading::end`].
    pub fn begin(&self, server: &Server, total_bytes: u64) {
        let delay = server
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_i64("key-load-delay");
        self.key_delay_us.store(delay, Ordering::Relaxed);
        self.started_unix.store(unix_ms() / 1000, Ordering::Relaxed);
        self.total_bytes.store(total_bytes, Ordering::Relaxed);
        self.rdb_used_mem.store(0, Ordering::Relaxed);
        self.loaded_bytes.store(0, Ordering::Relaxed);
        self.active.store(true, Ordering::Release);
    }

    pub fn end(&self) {
        self.active.store(false, Ordering::Release);
        self.ended.notify_waiters();
        self.admit_clients();
    }

    fn admit_clients(&self) {
        self.admitting.store(true, Ordering::Release);
        self.admitted.notify_waiters();
    }

    /// Returns once the workers may accept connections (see the `admitting` field).
    pub async fn wait_until_admitting(&self) {
        loop {
            let admitted = self.admitted.notified();
            tokio::pin!(admitted);
            admitted.as_mut().enable();
            if self.admitting.load(Ordering::Acquire) {
                return;
            }
            admitted.await;
        }
    }

    /// Returns once no load runs (the link to a primary starts only after the start's load).
    pub async fn wait_until_done(&self) {
        loop {
            // Registered before the flag is read: an `end` after the read is not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.active.load(Ordering::Acquire) {
                return;
            }
            ended.await;
        }
    }

    /// The size of what the running load reads, once known: a file is being read, and
    /// clients are let in (to be answered -LOADING) from now.
    pub fn set_total_bytes(&self, bytes: u64) {
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.admit_clients();
    }

    pub fn set_rdb_used_mem(&self, bytes: u64) {
        self.rdb_used_mem.store(bytes, Ordering::Relaxed);
    }

    /// INFO persistence's lines for a running load, in Redis's words and arithmetic.
    pub fn info_lines(&self) -> String {
        let total = self.total_bytes.load(Ordering::Relaxed);
        let used_mem = self.rdb_used_mem.load(Ordering::Relaxed);
        let loaded = self.loaded_bytes.load(Ordering::Relaxed);
        let started = self.started_unix.load(Ordering::Relaxed);
        let (perc, remaining) = if total > 0 {
            (
                loaded as f64 / total as f64 * 100.0,
                total.saturating_sub(loaded),
            )
        } else if used_mem > 0 {
            (
                (loaded as f64 / used_mem as f64 * 100.0).min(99.99),
                used_mem.saturating_sub(loaded).max(1),
            )
        } else {
            (0.0, 1)
        };
        let elapsed = (unix_ms() / 1000).saturating_sub(started);
        let eta = if elapsed == 0 {
            1 // Redis's "fake 1 second figure"
        } else {
            elapsed.saturating_mul(remaining) / (loaded + 1)
        };
        format!(
            "loading_start_time:{started}\r\nloading_total_bytes:{total}\r\nloading_rdb_used_mem:{used_mem}\r\nloading_loaded_bytes:{loaded}\r\nloading_loaded_perc:{perc:.2}\r\nloading_eta_seconds:{eta}\r\n"
        )
    }
}

/// A load's pace: between keys, [`Pace::step`] records the progress and, while clients are
/// refused as loading, lets go of the shards now and then (see the module's doc). A load that
/// runs while clients are served (DEBUG RELOAD, a replica's async loading) keeps the locks
/// throughout, so that no client sees half of it.
///
/// A load fed from a task of a worker's event loop (a replica loading its primary's RDB as it
/// arrives) must not sleep on that thread, which serves other clients: its pace is
/// [`Pace::deferred`], which only adds up the pauses it owes; the loader stops soon after (see
/// [`Pace::should_yield`]) and the task waits them out asynchronously.
pub struct Pace {
    yields: bool,
    interval: u64,
    next_yield: u64,
    delay_us: i64,
    keys: u64,
    defer: bool,
    owed: Duration,
    /// Keys since the caller last took the pause owed.
    keys_since_yield: u32,
}

/// How many keys a deferred pace lets a loader apply before it hands its thread back.
const KEYS_PER_TURN: u32 = 64;

impl Pace {
    pub fn new(server: &Server) -> Pace {
        let yields = server.loading.active();
        let interval = server
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_i64("loading-process-events-interval-bytes")
            .max(1024) as u64;
        Pace {
            yields,
            interval,
            next_yield: interval,
            delay_us: if yields {
                server.loading.key_delay_us.load(Ordering::Relaxed)
            } else {
                0
            },
            keys: 0,
            defer: false,
            owed: Duration::ZERO,
            keys_since_yield: 0,
        }
    }

    /// A pace whose pauses the caller takes ([`Pace::take_owed`]), on its own terms.
    pub fn deferred(server: &Server) -> Pace {
        Pace {
            defer: true,
            ..Pace::new(server)
        }
    }

    /// After a key, `at` bytes into the data. `guards` are every shard's, taken again if let go.
    #[inline]
    pub fn step<'a>(&mut self, server: &'a Server, guards: &mut Vec<ShardGuard<'a>>, at: u64) {
        self.keys_since_yield += 1;
        if !self.yields {
            return;
        }
        self.keys += 1;
        let pause = match self.delay_us {
            0 => None,
            d if d > 0 => Some(Duration::from_micros(d as u64)),
            // Redis: "statistically sleeping less often", a microsecond once in -d keys.
            d => self
                .keys
                .is_multiple_of(d.unsigned_abs())
                .then_some(Duration::from_micros(1)),
        };
        if self.defer {
            server.loading.loaded_bytes.store(at, Ordering::Relaxed);
            self.owed += pause.unwrap_or_default();
            return;
        }
        if pause.is_none() && at < self.next_yield {
            return;
        }
        server.loading.loaded_bytes.store(at, Ordering::Relaxed);
        self.next_yield = at + self.interval;
        guards.clear();
        match pause {
            Some(pause) => std::thread::sleep(pause),
            None => std::thread::yield_now(),
        }
        *guards = server.lock_all();
    }

    /// A deferred pace: whether the loader should stop here and let its caller wait.
    pub fn should_yield(&self) -> bool {
        self.defer
            && (self.owed >= Duration::from_millis(1) || self.keys_since_yield >= KEYS_PER_TURN)
    }

    /// The pause owed so far (taken: the count starts again).
    pub fn take_owed(&mut self) -> Duration {
        self.keys_since_yield = 0;
        std::mem::take(&mut self.owed)
    }
}
