//! `client-output-buffer-limit`: how many reply bytes a client may leave unread before it is
//! disconnected, per client class, as Redis 7.0 enforces them.
//!
//! A client is over its class's limit when its unwritten bytes pass the hard limit, or stay
//! above the soft limit for the soft limit's seconds. As in Redis, the check is made when
//! bytes are added for the client (a reply, a Pub/Sub message), and a client found over is
//! closed without what it had not read. Both places that hold unwritten bytes use this one
//! check: a connection's reply buffer (`dispatch`) and its message queue (`pubsub`).
//!
//! The class is Redis's: a client in subscribed mode is `pubsub`, a replica `replica` (kept
//! for replication), every other client (MONITOR included) `normal`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::server_state::unix_ms;

/// Reply bytes the limits leave out: Redis writes replies into a client's fixed 16 KB buffer
/// first and counts only what overflows into its reply list, so a limit of a few bytes never
/// closes a client whose replies are small.
pub const UNCOUNTED_REPLY_BYTES: u64 = 16 * 1024;

/// The client classes of `client-output-buffer-limit`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Normal,
    Replica,
    PubSub,
}

/// One class's `<hard> <soft> <seconds>`; 0 turns a limit off.
#[derive(Default, Debug)]
pub struct ClassLimit {
    pub hard: AtomicU64,
    pub soft: AtomicU64,
    pub soft_seconds: AtomicU64,
}

impl ClassLimit {
    /// The byte count under which no check is needed: the smaller limit in force (u64::MAX
    /// when neither is). Lets the per-reply test be one comparison.
    pub fn threshold(&self) -> u64 {
        let nonzero = |v: u64| if v == 0 { u64::MAX } else { v };
        nonzero(self.hard.load(Ordering::Relaxed)).min(nonzero(self.soft.load(Ordering::Relaxed)))
    }

    /// Whether a client with `used` unwritten bytes is over the limit. `over_soft_since` is the
    /// client's own record of when (Unix ms) it went over the soft limit, 0 while it is not:
    /// it is set, kept or cleared here.
    pub fn exceeded(&self, used: u64, over_soft_since: &AtomicU64) -> bool {
        if used <= self.threshold() && over_soft_since.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let hard = self.hard.load(Ordering::Relaxed);
        if hard > 0 && used > hard {
            return true;
        }
        let soft = self.soft.load(Ordering::Relaxed);
        if soft == 0 || used <= soft {
            if over_soft_since.load(Ordering::Relaxed) != 0 {
                over_soft_since.store(0, Ordering::Release);
            }
            return false;
        }
        let now = unix_ms();
        // Lock-free: publishers on several workers may check one subscriber at once.
        let since =
            match over_soft_since.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => now,
                Err(since) => since,
            };
        now.saturating_sub(since) / 1000 >= self.soft_seconds.load(Ordering::Relaxed)
    }
}

/// The limits of every class, as CONFIG SET last left them.
#[derive(Default)]
pub struct OutputLimits {
    pub normal: ClassLimit,
    pub replica: ClassLimit,
    pub pubsub: ClassLimit,
}

impl OutputLimits {
    pub fn of(&self, class: Class) -> &ClassLimit {
        match class {
            Class::Normal => &self.normal,
            Class::Replica => &self.replica,
            Class::PubSub => &self.pubsub,
        }
    }

    /// Takes the limits out of the config value (`class hard soft seconds ...`, validated by
    /// the config store); classes it does not name keep theirs.
    pub fn refresh(&self, value: &str) {
        let words: Vec<&str> = value.split_whitespace().collect();
        for group in words.chunks(4) {
            let [class, hard, soft, seconds] = group else {
                continue;
            };
            let limit = match class.to_ascii_lowercase().as_str() {
                "normal" => &self.normal,
                "slave" | "replica" => &self.replica,
                "pubsub" => &self.pubsub,
                _ => continue,
            };
            let bytes =
                |s: &str| crate::config_store::parse_memory(s).map_or(0, |v| v.max(0) as u64);
            limit.hard.store(bytes(hard), Ordering::Relaxed);
            limit.soft.store(bytes(soft), Ordering::Relaxed);
            limit
                .soft_seconds
                .store(seconds.parse().unwrap_or(0), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_reads_every_class_and_the_threshold_is_the_smaller_limit() {
        let limits = OutputLimits::default();
        limits.refresh("normal 10mb 5mb 2 slave 256mb 64mb 60 pubsub 32mb 8mb 60");
        assert_eq!(limits.normal.hard.load(Ordering::Relaxed), 10 << 20);
        assert_eq!(limits.normal.threshold(), 5 << 20);
        assert_eq!(
            limits
                .of(Class::Replica)
                .soft_seconds
                .load(Ordering::Relaxed),
            60
        );
        assert_eq!(limits.pubsub.soft.load(Ordering::Relaxed), 8 << 20);
        limits.refresh("normal 0 0 0");
        assert_eq!(limits.normal.threshold(), u64::MAX);
        assert_eq!(limits.pubsub.hard.load(Ordering::Relaxed), 32 << 20);
    }

    #[test]
    fn hard_closes_at_once_soft_after_its_seconds_and_dropping_under_soft_resets() {
        let limits = OutputLimits::default();
        limits.refresh("normal 1000 100 0");
        assert!(
            limits.normal.exceeded(101, &AtomicU64::new(0)),
            "0 seconds: at once"
        );
        limits.refresh("normal 1000 0 0");
        assert!(!limits.normal.exceeded(1000, &AtomicU64::new(0)));
        assert!(limits.normal.exceeded(1001, &AtomicU64::new(0)));
        limits.refresh("normal 1000 100 60");
        let since = AtomicU64::new(0);
        assert!(!limits.normal.exceeded(500, &since));
        assert_ne!(since.load(Ordering::Relaxed), 0);
        assert!(!limits.normal.exceeded(50, &since));
        assert_eq!(since.load(Ordering::Relaxed), 0);
        since.store(unix_ms() - 61_000, Ordering::Relaxed);
        assert!(
            limits.normal.exceeded(500, &since),
            "held over soft for 61 s"
        );
    }
}
