//! INFO's instantaneous figures (`instantaneous_ops_per_sec`, `instantaneous_input_kbps`,
//! `instantaneous_output_kbps`), as Redis computes them: every 100 ms or so worker 0 samples the
//! running totals, and a figure is the mean rate over the last 16 samples.

use std::sync::Mutex;
use std::time::Instant;

/// How many samples a figure averages, as Redis's STATS_METRIC_SAMPLES.
const SAMPLES: usize = 16;

/// The totals sampled: commands, bytes read, bytes written.
pub type Totals = [u64; 3];

#[derive(Default)]
pub struct Sampler {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: Option<(Instant, Totals)>,
    /// Per-second rates of each total, the latest SAMPLES.
    rates: Vec<[f64; 3]>,
    next: usize,
}

impl Sampler {
    /// Takes a sample of the totals now.
    pub fn sample(&self, totals: Totals) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("sampler lock");
        if let Some((at, before)) = inner.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs < 0.05 {
                return;
            }
            let mut rate = [0.0; 3];
            for (r, (now, then)) in rate.iter_mut().zip(totals.iter().zip(before)) {
                *r = now.saturating_sub(then) as f64 / secs;
            }
            if inner.rates.len() < SAMPLES {
                inner.rates.push(rate);
            } else {
                let at = inner.next;
                inner.rates[at] = rate;
            }
            inner.next = (inner.next + 1) % SAMPLES;
        }
        inner.last = Some((now, totals));
    }

    /// Commands per second, and KB/s read and written.
    pub fn rates(&self) -> (u64, f64, f64) {
        (
            self.rate(0) as u64,
            self.rate(1) / 1024.0,
            self.rate(2) / 1024.0,
        )
    }

    /// The mean per-second rate of total `i` over the latest samples.
    pub fn rate(&self, i: usize) -> f64 {
        let inner = self.inner.lock().expect("sampler lock");
        let n = inner.rates.len().max(1) as f64;
        inner.rates.iter().map(|r| r[i]).sum::<f64>() / n
    }
}
