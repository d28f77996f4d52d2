//! QUANTUM's server-wide state: one entanglement graph per shard (the links of the keys that
//! shard owns, behind their own small mutex so that learning never waits for a shard), the
//! rules, the limits read from the config, and the counters INFO physics shows.
//!
//! Links and rules are metadata of key names (in every database), not data: FLUSHALL leaves
//! them. Their changes are logged in shard 0's log (see `Run::Meta`) and snapshotted by
//! [`Quantum::meta_records`]; learned links live in memory only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use warpengine_physics::entangle::{Graph, LearnParams, Origin, RecentReads, Rule};

use crate::config_store::ConfigStore;
use crate::slot::SlotTable;

#[derive(Default)]
pub struct Limits {
    pub learn: AtomicBool,
    pub window_ms: AtomicU64,
    pub halflife_ms: AtomicU64,
    pub min_weight: AtomicU64,
    pub max_learned_per_key: AtomicU64,
    pub max_learned_keys: AtomicU64,
    pub max_links_per_key: AtomicU64,
    pub max_partners: AtomicU64,
    pub max_rules: AtomicU64,
}

#[derive(Default)]
pub struct Stats {
    pub get_calls: AtomicU64,
    pub partners_fetched: AtomicU64,
    pub partner_shard_batches: AtomicU64,
    pub reads_observed: AtomicU64,
    pub pairs_reinforced: AtomicU64,
    pub learned_pruned: AtomicU64,
}

pub struct Quantum {
    graphs: Vec<Mutex<Graph>>,
    rules: RwLock<Vec<Rule>>,
    pub limits: Limits,
    pub stats: Stats,
}

/// A partner as QUANTUM PARTNERS shows it.
pub struct Partner {
    pub key: Bytes,
    pub origin: Origin,
    pub weight: f64,
}

impl Quantum {
    pub fn new(shards: usize, cfg: &ConfigStore) -> Quantum {
        let q = Quantum {
            graphs: (0..shards).map(|_| Mutex::new(Graph::default())).collect(),
            rules: RwLock::new(Vec::new()),
            limits: Limits::default(),
            stats: Stats::default(),
        };
        q.refresh(cfg);
        q
    }

    pub fn refresh(&self, cfg: &ConfigStore) {
        let l = &self.limits;
        let n = |name: &str| cfg.get_i64(name).max(0) as u64;
        l.learn.store(cfg.get_bool("quantum-learn"), Relaxed);
        l.window_ms.store(n("quantum-learn-window-ms"), Relaxed);
        l.halflife_ms
            .store(n("quantum-learn-halflife").saturating_mul(1000), Relaxed);
        l.min_weight.store(n("quantum-learn-min-weight"), Relaxed);
        l.max_learned_per_key
            .store(n("quantum-max-learned-per-key"), Relaxed);
        l.max_learned_keys
            .store(n("quantum-max-learned-keys"), Relaxed);
        l.max_links_per_key
            .store(n("quantum-max-links-per-key"), Relaxed);
        l.max_partners.store(n("quantum-max-partners"), Relaxed);
        l.max_rules.store(n("quantum-max-rules"), Relaxed);
    }

    pub fn graph(&self, slots: &SlotTable, key: &[u8]) -> MutexGuard<'_, Graph> {
        self.graphs[slots.shard_of(key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn learn_params(&self) -> LearnParams {
        let l = &self.limits;
        let shards = self.graphs.len() as u64;
        LearnParams {
            max_learned: l.max_learned_per_key.load(Relaxed) as usize,
            max_keys: l.max_learned_keys.load(Relaxed).div_ceil(shards) as usize,
            halflife_ms: l.halflife_ms.load(Relaxed),
        }
    }

    /// Links `key` with each partner, both ways. All or nothing: an error if a key would go
    /// over `quantum-max-links-per-key`. Returns how many links are new.
    pub fn link(&self, slots: &SlotTable, key: &[u8], partners: &[Bytes]) -> Result<i64, String> {
        let max = self.limits.max_links_per_key.load(Relaxed) as usize;
        let mut fresh: Vec<&Bytes> = Vec::new();
        {
            let g = self.graph(slots, key);
            for p in partners {
                if !g.explicit(key).any(|e| e == &p[..]) && !fresh.contains(&p) {
                    fresh.push(p);
                }
            }
            let have = g.explicit(key).count();
            if have + fresh.len() > max {
                return Err(over_limit(max));
            }
        }
        for p in &fresh {
            if !self.graph(slots, p).explicit_room(p, max) {
                return Err(over_limit(max));
            }
        }
        for p in &fresh {
            // Room was checked above; the shard-0 lock every change holds keeps it so.
            let _ = self.graph(slots, key).link(key, p, max);
            let _ = self.graph(slots, p).link(p, key, max);
        }
        Ok(fresh.len() as i64)
    }

    /// Removes the links between `key` and each partner; how many there were.
    pub fn unlink(&self, slots: &SlotTable, key: &[u8], partners: &[Bytes]) -> i64 {
        let mut removed = 0;
        for p in partners {
            if self.graph(slots, key).unlink(key, p) {
                removed += 1;
            }
            self.graph(slots, p).unlink(p, key);
        }
        removed
    }

    /// Adds a rule (replacing one with the same pattern); false if that would exceed
    /// `quantum-max-rules`.
    pub fn add_rule(&self, rule: Rule) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = rules.iter_mut().find(|r| r.pattern == rule.pattern) {
            *old = rule;
            return true;
        }
        if rules.len() as u64 >= self.limits.max_rules.load(Relaxed) {
            return false;
        }
        rules.push(rule);
        true
    }

    pub fn del_rule(&self, pattern: &[u8]) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        let before = rules.len();
        rules.retain(|r| r.pattern != pattern);
        rules.len() != before
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every partner of `key`: explicit links first, then rules, then learned links (strongest
    /// first, those below `quantum-learn-min-weight` included only if `all`).
    pub fn partners(&self, slots: &SlotTable, key: &[u8], now_ms: u64, all: bool) -> Vec<Partner> {
        let mut out: Vec<Partner> = Vec::new();
        let push = |out: &mut Vec<Partner>, k: &[u8], origin, weight| {
            if k != key && !out.iter().any(|p| p.key == k) {
                out.push(Partner {
                    key: Bytes::copy_from_slice(k),
                    origin,
                    weight,
                });
            }
        };
        let halflife = self.limits.halflife_ms.load(Relaxed);
        let min_weight = self.limits.min_weight.load(Relaxed) as f64;
        let learned: Vec<(Vec<u8>, f64)> = {
            let g = self.graph(slots, key);
            for p in g.explicit(key) {
                push(&mut out, p, Origin::Link, 1.0);
            }
            g.learned(key, now_ms, halflife)
                .into_iter()
                .map(|(p, w)| (p.to_vec(), w))
                .collect()
        };
        for rule in self.rules.read().unwrap_or_else(|p| p.into_inner()).iter() {
            for p in rule.partners_of(key) {
                push(&mut out, &p, Origin::Rule, 1.0);
            }
        }
        for (p, w) in learned {
            if all || w >= min_weight {
                push(&mut out, &p, Origin::Learned, w);
            }
        }
        out
    }

    /// A read of `key` by the client whose recent reads are `recent`: pairs it with the keys
    /// that client read within the window, in both directions.
    pub fn observe(&self, slots: &SlotTable, recent: &mut RecentReads, key: &[u8], now_ms: u64) {
        self.stats.reads_observed.fetch_add(1, Relaxed);
        let window = self.limits.window_ms.load(Relaxed);
        let pairs = recent.observe(key, now_ms, window);
        if pairs.is_empty() {
            return;
        }
        let params = self.learn_params();
        for p in &pairs {
            self.graph(slots, key).reinforce(key, p, now_ms, &params);
            self.graph(slots, p).reinforce(p, key, now_ms, &params);
        }
        self.stats
            .pairs_reinforced
            .fetch_add(pairs.len() as u64, Relaxed);
    }

    /// Forgets learned links of shard `shard` that decayed below a tenth of a read.
    pub fn prune(&self, shard: usize, now_ms: u64) {
        let halflife = self.limits.halflife_ms.load(Relaxed);
        let gone = self.graphs[shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prune(now_ms, halflife, 0.1);
        self.stats.learned_pruned.fetch_add(gone as u64, Relaxed);
    }

    /// The commands that re-create every link and rule (for snapshots).
    pub fn meta_records(&self) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for g in &self.graphs {
            let g = g.lock().unwrap_or_else(|p| p.into_inner());
            for (key, partners) in g.each_explicit() {
                let mut argv = vec![b"QUANTUM".to_vec(), b"LINK".to_vec(), key.to_vec()];
                argv.extend(partners.into_iter().map(<[u8]>::to_vec));
                out.push(argv);
            }
        }
        for rule in self.rules() {
            let mut argv = vec![b"QUANTUM".to_vec(), b"RULE".to_vec(), b"ADD".to_vec()];
            argv.push(rule.pattern.clone());
            argv.extend(rule.partners.iter().cloned());
            out.push(argv);
        }
        out
    }

    /// INFO physics lines.
    pub fn info(&self, out: &mut String) {
        use std::fmt::Write;
        let (mut links, mut learned, mut refused) = (0, 0, 0);
        for g in &self.graphs {
            let g = g.lock().unwrap_or_else(|p| p.into_inner());
            links += g.explicit_count();
            learned += g.learned_count();
            refused += g.learn_refused;
        }
        let s = &self.stats;
        let _ = write!(
            out,
            "quantum_links:{links}\r\nquantum_learned_links:{learned}\r\nquantum_rules:{}\r\n\
             quantum_learn:{}\r\nquantum_get_calls:{}\r\nquantum_partners_fetched:{}\r\n\
             quantum_partner_shard_batches:{}\r\nquantum_reads_observed:{}\r\n\
             quantum_pairs_reinforced:{}\r\nquantum_learned_pruned:{}\r\n\
             quantum_learn_refused_at_key_limit:{refused}\r\n",
            self.rules.read().unwrap_or_else(|p| p.into_inner()).len(),
            self.limits.learn.load(Relaxed) as u8,
            s.get_calls.load(Relaxed),
            s.partners_fetched.load(Relaxed),
            s.partner_shard_batches.load(Relaxed),
            s.reads_observed.load(Relaxed),
            s.pairs_reinforced.load(Relaxed),
            s.learned_pruned.load(Relaxed),
        );
    }
}

fn over_limit(max: usize) -> String {
    format!("ERR QUANTUM LINK would give a key more than {max} links (quantum-max-links-per-key)")
}
