//! Request streams to measure eviction policies with, and the GET-then-SET-on-miss replay that
//! counts misses at a given cache size.

use std::sync::Arc;

pub use crate::lfu::Rng;
use crate::Policy;

/// Ids 0..n drawn with probability proportional to 1 / (rank + 1)^alpha, by binary search in
/// the cumulative distribution. Ranks are scattered over ids so that popularity does not
/// follow insertion order. The distribution (8 bytes per id) is built once and shared by the
/// generators [`Zipf::fork`] makes, one per thread of a load generator.
pub struct Zipf {
    cdf: Arc<[f64]>,
    rng: Rng,
}

impl Zipf {
    pub fn new(n: usize, alpha: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(alpha);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf {
            cdf: cdf.into(),
            rng: Rng::new(seed),
        }
    }

    /// A generator of the same distribution (sharing its table) with its own random stream.
    pub fn fork(&self, seed: u64) -> Zipf {
        Zipf {
            cdf: Arc::clone(&self.cdf),
            rng: Rng::new(seed),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let u = self.rng.next_f64();
        let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        scatter(rank as u64)
    }
}

/// A fixed permutation-like mixing of ranks into ids (the id of the rank-th most popular): the
/// ids `Zipf::new(n, ..)` draws are `scatter(0..n)`, which a load generator fills beforehand.
pub fn scatter(rank: u64) -> u64 {
    rank.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

/// Zipf requests interrupted by scans: every `period` requests, `scan_len` ids that are each
/// requested once (a batch job reading through cold data).
pub struct ScanMix {
    zipf: Zipf,
    period: u64,
    scan_len: u64,
    count: u64,
    next_scan_id: u64,
    in_scan: u64,
}

impl ScanMix {
    pub fn new(n: usize, alpha: f64, period: u64, scan_len: u64, seed: u64) -> ScanMix {
        ScanMix {
            zipf: Zipf::new(n, alpha, seed),
            period,
            scan_len,
            count: 0,
            next_scan_id: 1 << 62,
            in_scan: 0,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.count += 1;
        if self.in_scan > 0 {
            self.in_scan -= 1;
            self.next_scan_id += 1;
            return self.next_scan_id;
        }
        if self.count.is_multiple_of(self.period) {
            self.in_scan = self.scan_len;
        }
        self.zipf.next_id()
    }
}

/// Replays `requests` against a cache of `capacity` objects run by `policy`: a hit is a hit;
/// a miss inserts the object and evicts down to the capacity. Returns the misses.
pub fn misses(
    policy: &mut dyn Policy,
    capacity: usize,
    requests: impl Iterator<Item = u64>,
) -> u64 {
    let mut resident = std::collections::HashSet::<u64, ahash::RandomState>::default();
    let mut misses = 0;
    for id in requests {
        if resident.contains(&id) {
            policy.hit(id);
            continue;
        }
        misses += 1;
        policy.insert(id, 1);
        resident.insert(id);
        while resident.len() > capacity {
            let victim = policy.evict().expect("a full cache has a victim");
            resident.remove(&victim);
        }
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{Lru, SampledLfu, SampledLru};
    use crate::s3fifo::S3Fifo;
    use crate::sieve::Sieve;

    fn zipf_stream(alpha: f64) -> impl Iterator<Item = u64> {
        let mut z = Zipf::new(100_000, alpha, 7);
        (0..400_000).map(move |_| z.next_id())
    }

    #[test]
    fn zipf_is_skewed_as_asked() {
        let mut z = Zipf::new(1000, 1.0, 3);
        let top = scatter(0);
        let hits = (0..100_000).filter(|_| z.next_id() == top).count();
        // P(rank 0) = 1 / H(1000) ~ 0.1336.
        assert!((12_000..15_000).contains(&hits), "{hits}");
    }

    #[test]
    fn a_fork_shares_the_distribution_not_the_stream() {
        let base = Zipf::new(1000, 1.0, 3);
        let (mut a, mut b) = (base.fork(5), base.fork(6));
        assert!(Arc::ptr_eq(&a.cdf, &b.cdf));
        let top = scatter(0);
        let hits = (0..100_000).filter(|_| a.next_id() == top).count();
        assert!((12_000..15_000).contains(&hits), "{hits}");
        assert!((0..100).any(|_| a.next_id() != b.next_id()));
    }

    #[test]
    fn modern_policies_beat_lru_on_zipf() {
        for alpha in [0.8, 0.99, 1.2] {
            let cap = 1_000;
            let lru = misses(&mut Lru::default(), cap, zipf_stream(alpha));
            let sieve = misses(&mut Sieve::new(), cap, zipf_stream(alpha));
            let s3 = misses(&mut S3Fifo::new(), cap, zipf_stream(alpha));
            assert!(sieve < lru, "alpha {alpha}: sieve {sieve} lru {lru}");
            assert!(s3 < lru, "alpha {alpha}: s3fifo {s3} lru {lru}");
        }
    }

    #[test]
    fn s3fifo_resists_scans_better_than_sampled_lru_and_lfu() {
        let cap = 2_000;
        let stream = || {
            let mut m = ScanMix::new(50_000, 0.99, 20_000, 5_000, 11);
            (0..300_000).map(move |_| m.next_id())
        };
        let lru = misses(&mut SampledLru::new(5, 1), cap, stream());
        let lfu = misses(&mut SampledLfu::new(5, 10, 1), cap, stream());
        let s3 = misses(&mut S3Fifo::new(), cap, stream());
        assert!(s3 < lru, "s3fifo {s3} sampled lru {lru}");
        assert!(s3 < lfu, "s3fifo {s3} sampled lfu {lfu}");
    }
}
