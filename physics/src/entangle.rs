//! QUANTUM's entanglement: which keys are fetched together. Explicit links (symmetric, kept
//! until unlinked), learned links (pair counts reinforced when one client reads two keys close
//! together, decaying exponentially when idle, at most `max_learned` per key, kept with the
//! Space-Saving algorithm so that frequent pairs push out chance ones), and rules that derive
//! partners from a key's name (`user:*` -> `profile:*`).
//!
//! A [`Graph`] holds the links of some keys (the server keeps one per shard, for the keys that
//! shard owns); it stores one direction, and callers record both.

use std::collections::HashMap;

/// A key already has as many explicit links as it may.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyLinks;

/// Where a partner comes from, as QUANTUM PARTNERS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Link,
    Rule,
    Learned,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Link => "link",
            Origin::Rule => "rule",
            Origin::Learned => "learned",
        }
    }
}

#[derive(Clone, Debug)]
struct Learned {
    partner: Box<[u8]>,
    /// Weight as of `at_ms`; it halves every `halflife_ms` after that.
    weight: f64,
    /// The part of `weight` inherited from the pair this one replaced (Space-Saving): the
    /// pair's own co-reads are at least `weight - error`.
    error: f64,
    at_ms: u64,
}

#[derive(Clone, Debug, Default)]
struct Links {
    explicit: Vec<Box<[u8]>>,
    learned: Vec<Learned>,
}

/// Limits and decay of a graph's learned links.
#[derive(Clone, Copy, Debug)]
pub struct LearnParams {
    /// Learned links kept per key; a new pair replaces the weakest.
    pub max_learned: usize,
    /// Keys with learned links this graph may hold; beyond it, new keys are not learned.
    pub max_keys: usize,
    pub halflife_ms: u64,
}

#[derive(Debug, Default)]
pub struct Graph {
    links: HashMap<Box<[u8]>, Links, ahash::RandomState>,
    explicit_count: usize,
    learned_count: usize,
    keys_learning: usize,
    /// Reinforcements refused because the key limit was reached.
    pub learn_refused: u64,
}

fn decayed(weight: f64, at_ms: u64, now_ms: u64, halflife_ms: u64) -> f64 {
    if now_ms <= at_ms || halflife_ms == 0 {
        return weight;
    }
    weight * (-((now_ms - at_ms) as f64) / halflife_ms as f64).exp2()
}

impl Graph {
    /// Links `key` to `partner` (one direction). False if it already was, or if `key` has
    /// `max_explicit` links already (then nothing changes).
    pub fn link(
        &mut self,
        key: &[u8],
        partner: &[u8],
        max_explicit: usize,
    ) -> Result<bool, TooManyLinks> {
        let entry = self.links.entry(key.into()).or_default();
        if entry.explicit.iter().any(|p| &p[..] == partner) {
            return Ok(false);
        }
        if entry.explicit.len() >= max_explicit {
            return Err(TooManyLinks);
        }
        entry.explicit.push(partner.into());
        self.explicit_count += 1;
        Ok(true)
    }

    /// Removes the explicit link `key` -> `partner`; true if there was one.
    pub fn unlink(&mut self, key: &[u8], partner: &[u8]) -> bool {
        let Some(entry) = self.links.get_mut(key) else {
            return false;
        };
        let before = entry.explicit.len();
        entry.explicit.retain(|p| &p[..] != partner);
        let removed = before != entry.explicit.len();
        if removed {
            self.explicit_count -= 1;
        }
        self.drop_if_empty(key);
        removed
    }

    /// Whether `key` may take one more explicit link.
    pub fn explicit_room(&self, key: &[u8], max_explicit: usize) -> bool {
        self.links
            .get(key)
            .is_none_or(|l| l.explicit.len() < max_explicit)
    }

    fn drop_if_empty(&mut self, key: &[u8]) {
        if self
            .links
            .get(key)
            .is_some_and(|l| l.explicit.is_empty() && l.learned.is_empty())
        {
            self.links.remove(key);
        }
    }

    /// One co-read of `key` with `partner` at `now_ms`: adds 1 to the pair's decayed weight.
    pub fn reinforce(&mut self, key: &[u8], partner: &[u8], now_ms: u64, p: &LearnParams) {
        if p.max_learned == 0 {
            return;
        }
        let known = self.links.get(key).is_some_and(|l| !l.learned.is_empty());
        if !known && self.keys_learning >= p.max_keys {
            self.learn_refused += 1;
            return;
        }
        let entry = self.links.entry(key.into()).or_default();
        if entry.learned.is_empty() {
            self.keys_learning += 1;
        }
        if let Some(l) = entry.learned.iter_mut().find(|l| &l.partner[..] == partner) {
            l.weight = decayed(l.weight, l.at_ms, now_ms, p.halflife_ms) + 1.0;
            l.error = decayed(l.error, l.at_ms, now_ms, p.halflife_ms);
            l.at_ms = now_ms;
            return;
        }
        if entry.learned.len() < p.max_learned {
            entry.learned.push(Learned {
                partner: partner.into(),
                weight: 1.0,
                error: 0.0,
                at_ms: now_ms,
            });
            self.learned_count += 1;
            return;
        }
        // Full: Space-Saving. The new pair takes the weakest one's place and weight (+1),
        // remembering that weight as its possible overcount.
        let (weakest, weight) = entry
            .learned
            .iter()
            .enumerate()
            .map(|(i, l)| (i, decayed(l.weight, l.at_ms, now_ms, p.halflife_ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("full means non-empty");
        entry.learned[weakest] = Learned {
            partner: partner.into(),
            weight: weight + 1.0,
            error: weight,
            at_ms: now_ms,
        };
    }

    /// Forgets learned links whose weight decayed below `floor`; returns how many went.
    pub fn prune(&mut self, now_ms: u64, halflife_ms: u64, floor: f64) -> usize {
        let mut gone = 0;
        let mut emptied = 0;
        self.links.retain(|_, l| {
            if l.learned.is_empty() {
                return true;
            }
            let before = l.learned.len();
            l.learned
                .retain(|x| decayed(x.weight, x.at_ms, now_ms, halflife_ms) >= floor);
            gone += before - l.learned.len();
            if l.learned.is_empty() {
                emptied += 1;
            }
            !(l.learned.is_empty() && l.explicit.is_empty())
        });
        self.learned_count -= gone;
        self.keys_learning -= emptied;
        gone
    }

    /// Explicit partners of `key`, in the order they were linked.
    pub fn explicit(&self, key: &[u8]) -> impl Iterator<Item = &[u8]> {
        self.links
            .get(key)
            .into_iter()
            .flat_map(|l| l.explicit.iter().map(|p| &p[..]))
    }

    /// Learned partners of `key` with their decayed weights at `now_ms` (the co-reads a pair
    /// surely had: inherited weight not counted), strongest first.
    pub fn learned(&self, key: &[u8], now_ms: u64, halflife_ms: u64) -> Vec<(&[u8], f64)> {
        let mut out: Vec<(&[u8], f64)> = self
            .links
            .get(key)
            .into_iter()
            .flat_map(|l| l.learned.iter())
            .map(|l| {
                (
                    &l.partner[..],
                    decayed(l.weight - l.error, l.at_ms, now_ms, halflife_ms),
                )
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// Every key with explicit links, and its partners (for snapshots).
    pub fn each_explicit(&self) -> impl Iterator<Item = (&[u8], Vec<&[u8]>)> {
        self.links
            .iter()
            .filter(|(_, l)| !l.explicit.is_empty())
            .map(|(k, l)| (&k[..], l.explicit.iter().map(|p| &p[..]).collect()))
    }

    pub fn explicit_count(&self) -> usize {
        self.explicit_count
    }

    pub fn learned_count(&self) -> usize {
        self.learned_count
    }
}

/// A rule: keys matching `pattern` (one `*`) are entangled with each partner pattern, the text
/// the `*` matched carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub pattern: Vec<u8>,
    pub partners: Vec<Vec<u8>>,
}

/// Why a rule was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RuleError {
    /// A pattern without exactly one `*`.
    Wildcards,
}

impl Rule {
    pub fn new(pattern: &[u8], partners: &[&[u8]]) -> Result<Rule, RuleError> {
        let one_star = |p: &[u8]| p.iter().filter(|&&c| c == b'*').count() == 1;
        if !one_star(pattern) || !partners.iter().all(|p| one_star(p)) {
            return Err(RuleError::Wildcards);
        }
        Ok(Rule {
            pattern: pattern.to_vec(),
            partners: partners.iter().map(|p| p.to_vec()).collect(),
        })
    }

    /// The text `key` gives the `*`, if it matches.
    fn capture<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let star = self.pattern.iter().position(|&c| c == b'*')?;
        let (prefix, suffix) = (&self.pattern[..star], &self.pattern[star + 1..]);
        if key.len() < prefix.len() + suffix.len()
            || !key.starts_with(prefix)
            || !key.ends_with(suffix)
        {
            return None;
        }
        Some(&key[prefix.len()..key.len() - suffix.len()])
    }

    /// The partners this rule gives `key` (none if it does not match).
    pub fn partners_of(&self, key: &[u8]) -> Vec<Vec<u8>> {
        let Some(captured) = self.capture(key) else {
            return Vec::new();
        };
        self.partners
            .iter()
            .map(|p| {
                let star = p.iter().position(|&c| c == b'*').expect("checked in new");
                let mut out = Vec::with_capacity(p.len() + captured.len());
                out.extend_from_slice(&p[..star]);
                out.extend_from_slice(captured);
                out.extend_from_slice(&p[star + 1..]);
                out
            })
            .filter(|p| p[..] != *key)
            .collect()
    }
}

/// The keys one client read recently, to learn pairs from: a read of `key` pairs it with every
/// other key read less than `window_ms` before it.
#[derive(Debug, Default)]
pub struct RecentReads {
    reads: std::collections::VecDeque<(Box<[u8]>, u64)>,
}

impl RecentReads {
    /// Most earlier reads a new read is paired with (bounds the work per read).
    pub const DEPTH: usize = 8;

    /// Records a read and returns the keys it pairs with.
    pub fn observe(&mut self, key: &[u8], now_ms: u64, window_ms: u64) -> Vec<Box<[u8]>> {
        while self
            .reads
            .front()
            .is_some_and(|(_, at)| now_ms.saturating_sub(*at) > window_ms)
        {
            self.reads.pop_front();
        }
        let mut pairs: Vec<Box<[u8]>> = Vec::new();
        for (k, _) in self.reads.iter() {
            if &k[..] != key && !pairs.iter().any(|p| p == k) {
                pairs.push(k.clone());
            }
        }
        self.reads.retain(|(k, _)| &k[..] != key);
        if self.reads.len() == Self::DEPTH {
            self.reads.pop_front();
        }
        self.reads.push_back((key.into(), now_ms));
        pairs
    }

    pub fn clear(&mut self) {
        self.reads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: LearnParams = LearnParams {
        max_learned: 2,
        max_keys: 2,
        halflife_ms: 1000,
    };

    #[test]
    fn explicit_links_are_kept_in_order_and_bounded() {
        let mut g = Graph::default();
        assert_eq!(g.link(b"a", b"b", 2), Ok(true));
        assert_eq!(g.link(b"a", b"c", 2), Ok(true));
        assert_eq!(g.link(b"a", b"b", 2), Ok(false));
        assert_eq!(g.link(b"a", b"d", 2), Err(TooManyLinks));
        assert_eq!(g.explicit(b"a").collect::<Vec<_>>(), vec![b"b", b"c"]);
        assert!(g.unlink(b"a", b"b"));
        assert!(!g.unlink(b"a", b"b"));
        assert_eq!(g.explicit_count(), 1);
        assert!(g.unlink(b"a", b"c"));
        assert!(g.links.is_empty(), "a key without links takes no memory");
    }

    #[test]
    fn learned_weights_add_up_and_halve_per_halflife() {
        let mut g = Graph::default();
        g.reinforce(b"a", b"b", 0, &P);
        g.reinforce(b"a", b"b", 0, &P);
        assert_eq!(g.learned(b"a", 0, 1000), vec![(&b"b"[..], 2.0)]);
        let later = g.learned(b"a", 1000, 1000);
        assert!((later[0].1 - 1.0).abs() < 1e-12);
        g.reinforce(b"a", b"b", 2000, &P);
        assert!((g.learned(b"a", 2000, 1000)[0].1 - 1.5).abs() < 1e-12);
    }

    #[test]
    fn a_full_key_keeps_the_frequent_pairs() {
        let mut g = Graph::default();
        // "b" is read with "a" more often than all chance pairs together: Space-Saving keeps
        // it whatever the order (its share is over 1/max_learned).
        for round in 0..50u32 {
            let chance = format!("x{round}");
            g.reinforce(b"a", chance.as_bytes(), 0, &P);
            for _ in 0..3 {
                g.reinforce(b"a", b"b", 0, &P);
            }
        }
        let kept = g.learned(b"a", 0, 1000);
        assert_eq!(kept[0].0, b"b", "{kept:?}");
        assert!(kept[0].1 >= 140.0, "its own co-reads: {kept:?}");
        // A chance pair's own co-reads are one: its inherited weight is not counted.
        let mut g = Graph::default();
        for _ in 0..4 {
            g.reinforce(b"a", b"b", 0, &P);
            g.reinforce(b"a", b"c", 0, &P);
        }
        g.reinforce(b"a", b"d", 0, &P);
        let d = g.learned(b"a", 0, 1000);
        assert!(
            d.iter().any(|(p, w)| *p == b"d" && (*w - 1.0).abs() < 1e-9),
            "{d:?}"
        );
        assert_eq!(g.learned_count(), 2);
    }

    #[test]
    fn the_key_limit_refuses_new_keys_and_prune_frees_room() {
        let mut g = Graph::default();
        g.reinforce(b"a", b"x", 0, &P);
        g.reinforce(b"b", b"x", 0, &P);
        g.reinforce(b"c", b"x", 0, &P);
        assert_eq!(g.learn_refused, 1);
        assert!(g.learned(b"c", 0, 1000).is_empty());
        assert_eq!(g.prune(10_000, 1000, 0.5), 2);
        assert_eq!(g.learned_count(), 0);
        g.reinforce(b"c", b"x", 10_000, &P);
        assert_eq!(g.learned(b"c", 10_000, 1000).len(), 1);
    }

    #[test]
    fn rules_carry_the_wildcard_over() {
        let r = Rule::new(b"user:*", &[b"profile:*", b"settings:*:v2"]).unwrap();
        assert_eq!(
            r.partners_of(b"user:42"),
            vec![b"profile:42".to_vec(), b"settings:42:v2".to_vec()]
        );
        assert!(r.partners_of(b"profile:42").is_empty());
        let mid = Rule::new(b"a*z", &[b"*"]).unwrap();
        assert_eq!(mid.partners_of(b"abcz"), vec![b"bc".to_vec()]);
        assert!(mid.partners_of(b"az").iter().all(|p| p.is_empty()));
        assert_eq!(Rule::new(b"user:", &[b"p:*"]), Err(RuleError::Wildcards));
        assert_eq!(Rule::new(b"u:*", &[b"p:**"]), Err(RuleError::Wildcards));
    }

    #[test]
    fn recent_reads_pair_within_the_window() {
        let mut r = RecentReads::default();
        assert!(r.observe(b"a", 0, 100).is_empty());
        assert_eq!(r.observe(b"b", 50, 100), vec![Box::from(&b"a"[..])]);
        // "a" is older than the window at t=120; "b" is not.
        assert_eq!(r.observe(b"c", 120, 100), vec![Box::from(&b"b"[..])]);
        assert_eq!(r.observe(b"c", 121, 100), vec![Box::from(&b"b"[..])]);
    }
}
