//! GRAVITY's server-wide state (docs/physics.md, GRAVITY): one hot-key sketch per worker
//! (`warpengine_physics::hotkeys`), fed by a sample of the keyed requests that worker's
//! connections send, and merged when GRAVITY HOTKEYS reads them.
//!
//! The request path pays one thread-local countdown per keyed command ([`observe`]): when it
//! reaches zero, the out-of-line [`sample`] records the command's keys in the worker's sketch
//! (behind its own mutex, which only HOTKEYS and INFO ever contend for) and draws the next gap
//! at random between 1 and `2 * SAMPLE_EVERY - 1`, so that requests that repeat with a period
//! cannot hide a key from the sample. Each sample counts for the gap it closed.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use bytes::Bytes;
use warpengine_physics::hotkeys::HotSketch;
use warpengine_physics::lfu::Rng;

use crate::command_timing::Moment;
use crate::config_store::ConfigStore;
use crate::server_state::Server;

/// One keyed request in this many (on average) reaches the sketch.
pub const SAMPLE_EVERY: u32 = 16;

thread_local! {
    /// Keyed requests this thread lets pass before its next sample.
    static COUNTDOWN: Cell<u32> = const { Cell::new(SAMPLE_EVERY) };
}

/// A worker's sketch, the gap its next sample stands for, and its generator of gaps.
struct WorkerSketch {
    sketch: HotSketch,
    gap: u32,
    rng: Rng,
    samples: u64,
}

pub struct Gravity {
    /// `gravity-sketch`: whether samples are recorded.
    enabled: AtomicBool,
    /// `gravity-halflife` (seconds) and `gravity-max-keys` (candidates per worker) as the
    /// sketches were built with; a change rebuilds them.
    halflife_secs: AtomicU64,
    max_keys: AtomicU64,
    workers: Vec<Mutex<WorkerSketch>>,
    /// The clock samples are timed by (seconds since this started).
    epoch: Moment,
}

/// A key GRAVITY HOTKEYS names: its name and its estimated requests per second, summed over
/// the workers.
pub struct HotKey {
    pub key: Bytes,
    pub rate: f64,
}

impl Gravity {
    pub fn new(threads: usize, cfg: &ConfigStore) -> Gravity {
        let g = Gravity {
            enabled: AtomicBool::new(true),
            halflife_secs: AtomicU64::new(0),
            max_keys: AtomicU64::new(0),
            workers: (0..threads)
                .map(|w| {
                    Mutex::new(WorkerSketch {
                        sketch: HotSketch::new(0, 1.0, 0.0),
                        gap: SAMPLE_EVERY,
                        rng: Rng::new(0x9e37_79b9 ^ w as u64),
                        samples: 0,
                    })
                })
                .collect(),
            epoch: Moment::now(),
        };
        g.refresh(cfg);
        g
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Takes `gravity-*` from the configuration. A new half-life or bound, or switching the
    /// sketch on, starts every worker's sketch afresh.
    pub fn refresh(&self, cfg: &ConfigStore) {
        let enabled = cfg.get_bool("gravity-sketch");
        let halflife = cfg.get_i64("gravity-halflife").max(1) as u64;
        let max_keys = cfg.get_i64("gravity-max-keys").max(1) as u64;
        let was_enabled = self.enabled.swap(enabled, Relaxed);
        let old_halflife = self.halflife_secs.swap(halflife, Relaxed);
        let old_max = self.max_keys.swap(max_keys, Relaxed);
        if old_halflife != halflife || old_max != max_keys || (enabled && !was_enabled) {
            let now = self.now();
            for w in &self.workers {
                let mut w = w.lock().expect("gravity sketch lock");
                w.sketch = HotSketch::new(max_keys as usize, halflife as f64, now);
                w.samples = 0;
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// The keys of database `db` with the highest estimated rates, highest first, at most
    /// `count`.
    pub fn hottest(&self, db: usize, count: usize) -> Vec<HotKey> {
        let mut hot: Vec<HotKey> = self
            .rated()
            .into_iter()
            .filter(|(d, _)| *d == db)
            .map(|(_, h)| h)
            .collect();
        hot.truncate(count);
        hot
    }

    /// Every worker's candidates in every database, each rated by the sum of every worker's
    /// estimate (a key's requests arrive on the workers of the connections that send them),
    /// highest first.
    pub fn rated(&self) -> Vec<(usize, HotKey)> {
        let now = self.now();
        let sketches: Vec<_> = self
            .workers
            .iter()
            .map(|w| w.lock().expect("gravity sketch lock"))
            .collect();
        let mut named: Vec<(u32, u64, &[u8])> = Vec::new();
        for w in &sketches {
            for c in w.sketch.candidates() {
                if !named
                    .iter()
                    .any(|(d, h, k)| *d == c.db && *h == c.hash && *k == c.key)
                {
                    named.push((c.db, c.hash, &c.key));
                }
            }
        }
        let mut hot: Vec<(usize, HotKey)> = named
            .into_iter()
            .map(|(db, hash, key)| {
                let rate = sketches.iter().map(|w| w.sketch.rate(hash, now)).sum();
                let key = Bytes::copy_from_slice(key);
                (db as usize, HotKey { key, rate })
            })
            .filter(|(_, h)| h.rate > 0.0)
            .collect();
        hot.sort_by(|(_, a), (_, b)| b.rate.total_cmp(&a.rate).then_with(|| a.key.cmp(&b.key)));
        hot
    }

    /// Samples recorded since the sketches started, and the bytes the sketches hold.
    pub fn footprint(&self) -> (u64, usize) {
        self.workers.iter().fold((0, 0), |(n, bytes), w| {
            let w = w.lock().expect("gravity sketch lock");
            (n + w.samples, bytes + w.sketch.bytes())
        })
    }

    pub fn halflife_secs(&self) -> u64 {
        self.halflife_secs.load(Relaxed)
    }

    pub fn max_keys(&self) -> u64 {
        self.max_keys.load(Relaxed)
    }
}

/// Counts a keyed request towards the next sample: the whole cost on the request path.
/// `positions`: the command's key positions in `args` (None: its one key, at 1), only read
/// when this request is sampled.
#[inline(always)]
pub fn observe(server: &Server, db: usize, args: &[Bytes], positions: Option<&[usize]>) {
    let left = COUNTDOWN.with(|c| {
        let left = c.get().wrapping_sub(1);
        c.set(left);
        left
    });
    if left == 0 {
        sample(server, db, args, positions);
    }
}

/// Records a sampled request's keys in the calling worker's sketch and sets the next gap.
#[cold]
#[inline(never)]
fn sample(server: &Server, db: usize, args: &[Bytes], positions: Option<&[usize]>) {
    let g = &server.gravity;
    let Some(worker) = g.workers.get(crate::server_state::current_worker()) else {
        COUNTDOWN.with(|c| c.set(SAMPLE_EVERY));
        return;
    };
    let mut w = worker.lock().expect("gravity sketch lock");
    let weight = w.gap as f64;
    // ENTROPY's per-slot loads come from this sample too (REBALANCE's plan).
    for &p in positions.unwrap_or(&[1]) {
        server.entropy.note_key(&args[p], w.gap);
    }
    w.gap = 1 + w.rng.below(2 * SAMPLE_EVERY as u64 - 1) as u32;
    COUNTDOWN.with(|c| c.set(w.gap));
    if !g.enabled() {
        return;
    }
    let now = g.now();
    for &p in positions.unwrap_or(&[1]) {
        w.sketch.record(db as u32, &args[p], weight, now);
    }
    w.samples += 1;
}
