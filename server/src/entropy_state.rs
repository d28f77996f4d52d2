//! ENTROPY's measure of balance between the shards (docs/physics.md, ENTROPY): each shard's
//! request rate, sampled off the request path from the counters its batches already keep
//! (`ShardStats::local_requests` and `remote_requests`: keyed commands run on the shard, from
//! any worker's connections), and the normalized Shannon entropy of those rates.
//!
//! Each worker samples its own shard's total at its expiry tick (`hz` times a second, skipping a
//! tick when a script holds the shard); a rate is the mean over the last 16 samples, as INFO's
//! `instantaneous_ops_per_sec` (`stats_sampler`).

use warpengine_storage::Shard;

use crate::stats_sampler::Sampler;

pub struct Entropy {
    shards: Vec<Sampler>,
}

impl Entropy {
    pub fn new(threads: usize) -> Entropy {
        Entropy {
            shards: (0..threads).map(|_| Sampler::default()).collect(),
        }
    }

    /// Samples `shard`'s request total (called by its worker, with the shard locked).
    pub fn sample(&self, shard: &Shard) {
        let requests = shard.stats.local_requests + shard.stats.remote_requests;
        self.shards[shard.id].sample([requests, 0, 0]);
    }

    /// Shard `id`'s requests per second, lately.
    pub fn ops_per_sec(&self, id: usize) -> f64 {
        self.shards[id].rate(0)
    }
}

/// How evenly `loads` spread: Shannon entropy of their shares over its maximum, ln(n), so 1.0
/// when every share is equal and 0.0 when one holds everything. No load at all, or a single
/// shard, is even (1.0).
pub fn normalized_entropy(loads: &[f64]) -> f64 {
    let total: f64 = loads.iter().sum();
    if loads.len() < 2 || total <= 0.0 {
        return 1.0;
    }
    let h: f64 = loads
        .iter()
        .filter(|&&l| l > 0.0)
        // p * ln(1/p) rather than -p * ln(p): the latter is -0.0 for p = 1, which a client
        // would read as "-0".
        .map(|&l| l / total * (total / l).ln())
        .sum();
    (h / (loads.len() as f64).ln()).clamp(0.0, 1.0)
}

/// The busiest of `loads` (its index) and its load over the mean: 1.0 when even, n when one
/// shard of n holds everything; 1.0 with no load.
pub fn busiest(loads: &[f64]) -> (usize, f64) {
    let (at, most) = loads
        .iter()
        .copied()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    let mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
    if mean <= 0.0 {
        return (at, 1.0);
    }
    (at, most / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_one_when_even_and_zero_when_concentrated() {
        assert_eq!(normalized_entropy(&[5.0, 5.0, 5.0, 5.0]), 1.0);
        let one = normalized_entropy(&[0.0, 9.0, 0.0, 0.0]);
        assert!(one == 0.0 && one.is_sign_positive(), "{one}");
        assert_eq!(normalized_entropy(&[0.0, 0.0]), 1.0);
        assert_eq!(normalized_entropy(&[3.0]), 1.0);
        let skewed = normalized_entropy(&[90.0, 10.0]);
        assert!((skewed - 0.469).abs() < 1e-3, "{skewed}");
    }

    #[test]
    fn busiest_over_mean() {
        assert_eq!(busiest(&[1.0, 1.0]), (0, 1.0));
        assert_eq!(busiest(&[0.0, 0.0, 8.0, 0.0]), (2, 4.0));
        assert_eq!(busiest(&[0.0, 0.0]), (0, 1.0));
    }
}
