//! What SLOWLOG, LATENCY and INFO latencystats report: every command is timed where it runs
//! (keyed commands in `dispatch::step::execute`, the others where the session runs them) with
//! the CPU's time-stamp counter, a couple of instructions, and [`account`] files the time:
//!
//! - into the running worker's latency histogram of that command (`latency-tracking`): power-of-
//!   two buckets from 1024 ns up, as Redis's LATENCY HISTOGRAM shows them; percentiles for
//!   INFO latencystats are read off the same buckets (so they are bucket bounds: coarser than
//!   Redis's HDR histograms, which keep two significant digits);
//! - into the slow log, which keeps the last `slowlog-max-len` commands that took at least
//!   `slowlog-log-slower-than` microseconds, with Redis's entry format;
//! - into the latency monitor, which keeps per event (`command`, `fast-command`, and the log's
//!   `aof-fsync-always`) the latest 160 one-second samples of at least
//!   `latency-monitor-threshold` milliseconds.
//!
//! The same call counts the worker's successful writes (INFO's rdb_changes_since_last_save).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::command_table::{CommandSpec, Flags, TABLE};
use crate::config_store::ConfigStore;
use crate::server_state::{bump, Server};

/// Buckets of a command's latency histogram: bucket 0 holds times up to 1024 ns, bucket k
/// those up to 1024 ns << k, the last anything longer.
pub const LATENCY_BUCKETS: usize = 32;

/// The histogram bucket of a duration in nanoseconds.
#[inline(always)]
pub fn bucket(ns: u64) -> usize {
    if ns <= 1024 {
        0
    } else {
        ((64 - ((ns - 1) >> 10).leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
    }
}

/// The upper bound of a bucket in microseconds, as Redis shows it (1024 ns is "1").
pub fn bucket_bound_us(k: usize) -> f64 {
    (1024u64 << k) as f64 / 1000.0
}

/// A command's latency histogram, summed over the workers.
pub fn histogram(server: &Server, index: usize) -> [u64; LATENCY_BUCKETS] {
    let mut sum = [0; LATENCY_BUCKETS];
    for w in &server.worker_stats {
        for (s, c) in sum.iter_mut().zip(&w.commands[index].latency) {
            *s += c.load(Ordering::Relaxed);
        }
    }
    sum
}

/// The bound in microseconds of the bucket that holds the `p`th percentile of `hist`.
pub fn percentile_us(hist: &[u64; LATENCY_BUCKETS], p: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let wanted = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (k, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return bucket_bound_us(k);
        }
    }
    bucket_bound_us(LATENCY_BUCKETS - 1)
}

/// Files the time a command took: into the running worker's total for it (INFO commandstats'
/// usec) and its histogram, and, when it was slow, into the slow log and the latency monitor;
/// `changed`: it was a write that succeeded (INFO's rdb_changes_since_last_save). `client`
/// finds the connection's id, only needed for a slow command.
#[inline(always)]
pub fn account(
    server: &Server,
    index: usize,
    args: &[Bytes],
    spent: u64,
    changed: bool,
    client: impl FnOnce() -> u64,
) {
    let timing = &server.timing;
    if let Some(stats) = server
        .worker_stats
        .get(crate::server_state::current_worker())
    {
        let ns = ((spent as u128 * timing.ns_per_tick_q16 as u128) >> 16) as u64;
        bump(&stats.commands[index].nsec, ns);
        if timing.tracking.load(Ordering::Relaxed) {
            bump(&stats.commands[index].latency[bucket(ns)], 1);
        }
        if changed {
            bump(&stats.changes, 1);
        }
    }
    if timing.is_slow(spent) {
        let id = client();
        timing.observe(&TABLE[index], args, spent, || describe_client(server, id));
    }
}

/// A point in time in CPU ticks (the time-stamp counter on x86_64, nanoseconds elsewhere).
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Ticks per microsecond, measured once against the monotonic clock.
fn ticks_per_us() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, i0) = (ticks(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (t1, elapsed) = (ticks(), i0.elapsed());
        ((t1.wrapping_sub(t0)) as f64 / elapsed.as_secs_f64() / 1e6).max(1e-3)
    })
}

pub fn ticks_to_us(ticks: u64) -> u64 {
    (ticks as f64 / ticks_per_us()) as u64
}

/// A moment read from the time-stamp counter: `Instant` for the request path. Reading it is
/// one `rdtsc` (~12 ns here) where `Instant::now` is a vDSO `clock_gettime` (~20 ns) plus the
/// arithmetic on its `timespec`; a P=1 request read the clock four or five times. Only for
/// times compared with each other on this machine (the counter is invariant across cores
/// where the CPU says `constant_tsc nonstop_tsc`); a later moment read on another core that
/// looks earlier counts as no time at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment(u64);

impl Moment {
    #[inline(always)]
    pub fn now() -> Moment {
        Moment(ticks())
    }

    pub fn duration_since(self, earlier: Moment) -> std::time::Duration {
        let ticks = self.0.saturating_sub(earlier.0);
        std::time::Duration::from_nanos((ticks as f64 * 1000.0 / ticks_per_us()) as u64)
    }

    pub fn elapsed(self) -> std::time::Duration {
        Moment::now().duration_since(self)
    }
}

fn us_to_ticks(us: u64) -> u64 {
    (us as f64 * ticks_per_us()).min(u64::MAX as f64) as u64
}

/// A slow log entry, as SLOWLOG GET shows it.
pub struct Entry {
    pub id: u64,
    pub unix_secs: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub peer: String,
    pub client_name: String,
}

/// The latest samples of one latency event.
#[derive(Default)]
pub struct Event {
    /// (unix seconds, milliseconds), oldest first; one per second at most.
    pub samples: VecDeque<(u64, u64)>,
    pub max_ms: u64,
}

/// How many samples an event keeps, as Redis's latency monitor.
pub const EVENT_SAMPLES: usize = 160;
/// The longest argument list an entry keeps, and the longest argument.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

#[derive(Default)]
pub struct CommandTiming {
    /// `latency-tracking`: whether commands' histograms are kept.
    tracking: AtomicBool,
    /// Nanoseconds per tick, in 48.16 fixed point.
    ns_per_tick_q16: u64,
    /// Commands that take at least this many ticks go to [`CommandTiming::observe`]: the lower
    /// of the two thresholds, u64::MAX when both are off.
    watch_ticks: AtomicU64,
    /// `slowlog-log-slower-than` in ticks (u64::MAX: off).
    slowlog_ticks: AtomicU64,
    slowlog_max_len: AtomicU64,
    /// `latency-monitor-threshold` in ticks (u64::MAX: off).
    latency_ticks: AtomicU64,
    next_id: AtomicU64,
    pub slowlog: Mutex<VecDeque<Entry>>,
    pub events: Mutex<HashMap<&'static str, Event>>,
}

impl CommandTiming {
    pub fn new(cfg: &ConfigStore) -> CommandTiming {
        let t = CommandTiming {
            ns_per_tick_q16: (1000.0 / ticks_per_us() * 65536.0) as u64,
            ..CommandTiming::default()
        };
        t.refresh(cfg);
        t
    }

    pub fn refresh(&self, cfg: &ConfigStore) {
        self.tracking
            .store(cfg.get_bool("latency-tracking"), Ordering::Relaxed);
        let slower_than = cfg.get_i64("slowlog-log-slower-than");
        let slow = if slower_than < 0 {
            u64::MAX
        } else {
            us_to_ticks(slower_than as u64)
        };
        let latency_ms = cfg.get_i64("latency-monitor-threshold");
        let latency = if latency_ms <= 0 {
            u64::MAX
        } else {
            us_to_ticks(latency_ms as u64 * 1000)
        };
        self.slowlog_ticks.store(slow, Ordering::Relaxed);
        self.latency_ticks.store(latency, Ordering::Relaxed);
        self.watch_ticks.store(slow.min(latency), Ordering::Relaxed);
        let max_len = cfg.get_i64("slowlog-max-len").max(0) as u64;
        self.slowlog_max_len.store(max_len, Ordering::Relaxed);
        let mut log = self.slowlog.lock().expect("slowlog lock");
        while log.len() as u64 > max_len {
            log.pop_back();
        }
    }

    /// Whether a command that took `spent` ticks has to be looked at.
    #[inline(always)]
    pub fn is_slow(&self, spent: u64) -> bool {
        spent >= self.watch_ticks.load(Ordering::Relaxed)
    }

    /// Records a command that [`is_slow`](Self::is_slow) let through. `client` names the
    /// connection (address and name) only when needed.
    #[cold]
    pub fn observe(
        &self,
        spec: &CommandSpec,
        args: &[Bytes],
        spent: u64,
        client: impl FnOnce() -> (String, String),
    ) {
        let now = crate::server_state::unix_ms() / 1000;
        if spent >= self.latency_ticks.load(Ordering::Relaxed) {
            let event = if spec.flags.contains(Flags::FAST) {
                "fast-command"
            } else {
                "command"
            };
            self.add_sample(event, now, ticks_to_us(spent) / 1000);
        }
        if spent < self.slowlog_ticks.load(Ordering::Relaxed)
            || spec.flags.contains(Flags::SKIP_SLOWLOG)
        {
            return;
        }
        let max_len = self.slowlog_max_len.load(Ordering::Relaxed) as usize;
        if max_len == 0 {
            return;
        }
        let (peer, client_name) = client();
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: now,
            micros: ticks_to_us(spent),
            args: shortened(spec, args),
            peer,
            client_name,
        };
        let mut log = self.slowlog.lock().expect("slowlog lock");
        log.push_front(entry);
        log.truncate(max_len);
    }

    /// An event other than a command (an fdatasync, say) that took `took`: a latency sample if
    /// it reached `latency-monitor-threshold`.
    pub fn observe_event(&self, event: &'static str, took: std::time::Duration) {
        let threshold_us = ticks_to_us(self.latency_ticks.load(Ordering::Relaxed));
        let us = took.as_micros() as u64;
        if self.latency_ticks.load(Ordering::Relaxed) != u64::MAX && us >= threshold_us {
            self.add_sample(event, crate::server_state::unix_ms() / 1000, us / 1000);
        }
    }

    /// Adds a latency sample: one per second per event, the highest.
    pub fn add_sample(&self, event: &'static str, unix_secs: u64, ms: u64) {
        let mut events = self.events.lock().expect("latency lock");
        let e = events.entry(event).or_default();
        e.max_ms = e.max_ms.max(ms);
        match e.samples.back_mut() {
            Some((t, latest)) if *t == unix_secs => *latest = (*latest).max(ms),
            _ => {
                e.samples.push_back((unix_secs, ms));
                if e.samples.len() > EVENT_SAMPLES {
                    e.samples.pop_front();
                }
            }
        }
    }

    pub fn slowlog_reset(&self) {
        self.slowlog.lock().expect("slowlog lock").clear();
    }
}

/// A client's address and name, for a slow log entry.
pub fn describe_client(server: &crate::server_state::Server, id: u64) -> (String, String) {
    server.clients.get(id).map_or_else(Default::default, |c| {
        let info = c.info.lock().expect("client info lock");
        (info.addr.to_string(), info.name.clone())
    })
}

/// The arguments as the slow log keeps them: at most 32 (the last saying how many more there
/// were), each at most 128 bytes (saying how many more), secrets redacted.
fn shortened(spec: &CommandSpec, args: &[Bytes]) -> Vec<Bytes> {
    let secret = spec.redacts.map(|f| f(args)).unwrap_or_default();
    let kept = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args[..kept]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if secret.contains(&i) {
                Bytes::from_static(b"(redacted)")
            } else if a.len() > MAX_ARG_BYTES {
                let mut s = a[..MAX_ARG_BYTES].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(s)
            } else {
                a.clone()
            }
        })
        .collect();
    if kept < args.len() {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            args.len() - kept
        )));
    }
    out
}
