//! TEMPORAL's configuration (`temporal-default-halflife`, `temporal-max-members`), mirrored
//! out of the config store so that TEMPORAL INCR takes no lock. Updated by CONFIG SET.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config_store::ConfigStore;

pub struct TemporalSettings {
    /// Seconds; the half-life of keys created without HALFLIFE.
    default_halflife_secs: AtomicU64,
    /// Members per key before the lowest are dropped; 0 = no cap.
    max_members: AtomicU64,
}

impl TemporalSettings {
    pub fn from(cfg: &ConfigStore) -> TemporalSettings {
        let s = TemporalSettings {
            default_halflife_secs: AtomicU64::new(3600),
            max_members: AtomicU64::new(10_000),
        };
        s.refresh(cfg);
        s
    }

    pub fn refresh(&self, cfg: &ConfigStore) {
        let r = Ordering::Relaxed;
        self.default_halflife_secs
            .store(cfg.get_i64("temporal-default-halflife").max(1) as u64, r);
        self.max_members
            .store(cfg.get_i64("temporal-max-members").max(0) as u64, r);
    }

    pub fn default_halflife_secs(&self) -> f64 {
        self.default_halflife_secs.load(Ordering::Relaxed) as f64
    }

    pub fn max_members(&self) -> usize {
        self.max_members.load(Ordering::Relaxed) as usize
    }
}
