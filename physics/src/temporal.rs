//! TEMPORAL: trending counters whose scores decay exponentially with time, without ever being
//! rescored in the background.
//!
//! A member's score at time `now` is the sum of its increments, each halved for every half-life
//! since it happened: `Σ amount_i · 2^(−(now − t_i)/h)`. Stored directly, every score would have
//! to be rewritten as time passes. Instead each member keeps a log-score relative to a base time
//! `t0` of its key, `l = ln Σ amount_i · e^(λ(t_i − t0))` with `λ = ln 2 / h`; the score at `now`
//! is `e^(l − λ(now − t0))`. The factor `e^(−λ(now − t0))` is the same for every member, so the
//! order by `l` is the order by score at any time: TOP reads an ordered index and nothing is
//! rescored. Working in logs (`logaddexp` to add) keeps huge time spans from overflowing.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// Shortest half-life accepted, in seconds: event times are whole milliseconds, and a shorter
/// half-life would decay a score by more than a factor of two between two representable times.
pub const MIN_HALFLIFE_SECS: f64 = 0.001;
/// Longest half-life accepted, in seconds (about 31,700 years): keeps `l / λ` (see
/// [`DecayingScores::replay_events`]) far inside the range of millisecond timestamps.
pub const MAX_HALFLIFE_SECS: f64 = 1e12;

/// When the newest event is this many e-folds (46 half-lives) past `t0`, the base moves forward
/// to it. Log-scores then stay small, so their absolute rounding error (and so the scores'
/// relative error) stays near 1e-14 however long the key lives; the O(n) rebase is that rare.
const REBASE_AFTER: f64 = 32.0;

/// An f64 with a total order, for the ordered index. Log-scores are never NaN.
#[derive(Clone, Copy, Debug)]
struct LogScore(f64);

impl PartialEq for LogScore {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for LogScore {}
impl PartialOrd for LogScore {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LogScore {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// `ln(e^a + e^b)` without overflow.
fn logaddexp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// Why an increment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// Amounts must be finite and greater than zero (decrements are not supported).
    Amount,
}

/// What an increment did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incremented {
    /// The member's decayed score at the event time.
    pub score: f64,
    /// Members dropped (lowest first) to stay within the member cap.
    pub trimmed: usize,
}

/// One key's trending counters: member → log-score, plus the members ordered by log-score.
#[derive(Clone, Debug)]
pub struct DecayingScores {
    halflife_secs: f64,
    /// Decay rate per millisecond, `ln 2 / half-life`.
    lambda: f64,
    /// The base time (Unix ms) the log-scores are relative to.
    t0_ms: i64,
    scores: HashMap<Box<[u8]>, f64, ahash::RandomState>,
    order: BTreeSet<(LogScore, Box<[u8]>)>,
}

impl DecayingScores {
    /// An empty set of counters whose scores halve every `halflife_secs`, based at `t0_ms`.
    /// The half-life must lie in [`MIN_HALFLIFE_SECS`]..=[`MAX_HALFLIFE_SECS`].
    pub fn new(halflife_secs: f64, t0_ms: i64) -> DecayingScores {
        debug_assert!((MIN_HALFLIFE_SECS..=MAX_HALFLIFE_SECS).contains(&halflife_secs));
        DecayingScores {
            halflife_secs,
            lambda: std::f64::consts::LN_2 / (halflife_secs * 1000.0),
            t0_ms,
            scores: HashMap::default(),
            order: BTreeSet::new(),
        }
    }

    pub fn halflife_secs(&self) -> f64 {
        self.halflife_secs
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// `λ(t − t0)`: how many e-folds `t` lies after the base time.
    fn offset(&self, t_ms: i64) -> f64 {
        self.lambda * (t_ms as f64 - self.t0_ms as f64)
    }

    /// Adds `amount` to `member` at time `at_ms`, then drops the lowest members while there are
    /// more than `max_members` (0: no cap). The member just incremented may be the one dropped.
    pub fn incr(
        &mut self,
        member: &[u8],
        amount: f64,
        at_ms: i64,
        max_members: usize,
    ) -> Result<Incremented, IncrError> {
        if !(amount.is_finite() && amount > 0.0) {
            return Err(IncrError::Amount);
        }
        if self.offset(at_ms) > REBASE_AFTER {
            self.rebase(at_ms);
        }
        let event = amount.ln() + self.offset(at_ms);
        let l = match self.scores.get_mut(member) {
            Some(old) => {
                let new = logaddexp(*old, event);
                // `take` hands back the index's own copy of the name, reused below.
                let (_, name) = self
                    .order
                    .take(&(LogScore(*old), Box::from(member)))
                    .expect("every member is in the index");
                *old = new;
                self.order.insert((LogScore(new), name));
                new
            }
            None => {
                self.scores.insert(Box::from(member), event);
                self.order.insert((LogScore(event), Box::from(member)));
                event
            }
        };
        let trimmed = if max_members > 0 {
            self.trim(max_members)
        } else {
            0
        };
        Ok(Incremented {
            score: (l - self.offset(at_ms)).exp(),
            trimmed,
        })
    }

    /// Moves the base time to `t_ms`. Every log-score shifts by the same amount, so the order
    /// is unchanged (ties may appear where rounding meets; they order by member).
    fn rebase(&mut self, t_ms: i64) {
        let shift = self.offset(t_ms);
        self.t0_ms = t_ms;
        for l in self.scores.values_mut() {
            *l -= shift;
        }
        self.order = self
            .scores
            .iter()
            .map(|(m, &l)| (LogScore(l), m.clone()))
            .collect();
    }

    /// Drops the lowest members until at most `max_members` remain; how many were dropped.
    pub fn trim(&mut self, max_members: usize) -> usize {
        let mut dropped = 0;
        while self.scores.len() > max_members {
            let Some((_, member)) = self.order.pop_first() else {
                break;
            };
            self.scores.remove(&member);
            dropped += 1;
        }
        dropped
    }

    /// The member's decayed score at `now_ms`, or None if it has none.
    pub fn score(&self, member: &[u8], now_ms: i64) -> Option<f64> {
        let l = self.scores.get(member)?;
        Some((l - self.offset(now_ms)).exp())
    }

    /// Members from the highest score down, with their decayed scores at `now_ms`. Members with
    /// equal scores come in reverse byte order, as ZREVRANGE gives them.
    pub fn top(&self, now_ms: i64) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let decay = self.offset(now_ms);
        self.order
            .iter()
            .rev()
            .map(move |(l, m)| (&m[..], (l.0 - decay).exp()))
    }

    /// Increments that re-create these counters from empty (for snapshots): per member an
    /// `(amount, at_ms)` with the same result. Each member's event time is the moment its score
    /// is about 1, so the amount neither overflows nor underflows however large or old the score.
    pub fn replay_events(&self) -> impl Iterator<Item = (&[u8], f64, i64)> + '_ {
        self.scores.iter().map(move |(m, &l)| {
            let at = (self.t0_ms as f64 + l / self.lambda).round() as i64;
            (&m[..], (l - self.offset(at)).exp(), at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    }

    #[test]
    fn a_score_halves_after_one_halflife() {
        let mut d = DecayingScores::new(3600.0, 0);
        let r = d.incr(b"a", 8.0, 0, 0).unwrap();
        assert!(close(r.score, 8.0));
        assert!(close(d.score(b"a", HOUR_MS).unwrap(), 4.0));
        assert!(close(d.score(b"a", 3 * HOUR_MS).unwrap(), 1.0));
        // Read before the event: the score grows back the other way.
        assert!(close(d.score(b"a", -HOUR_MS).unwrap(), 16.0));
    }

    #[test]
    fn simultaneous_increments_add_up() {
        let mut d = DecayingScores::new(10.0, 1_000);
        d.incr(b"a", 1.5, 5_000, 0).unwrap();
        let r = d.incr(b"a", 2.5, 5_000, 0).unwrap();
        assert!(close(r.score, 4.0), "{}", r.score);
        // An older increment counts half after one half-life.
        let r = d.incr(b"b", 2.0, 5_000, 0).unwrap();
        assert!(close(r.score, 2.0));
        let r = d.incr(b"b", 3.0, 15_000, 0).unwrap();
        assert!(close(r.score, 4.0), "{}", r.score);
    }

    #[test]
    fn the_order_of_increments_does_not_matter() {
        let events = [
            (b"x", 3.0, 0),
            (b"y", 1.0, 7_000),
            (b"x", 0.5, 20_000),
            (b"y", 9.0, 2_500),
        ];
        let mut forward = DecayingScores::new(5.0, 0);
        for (m, a, t) in events {
            forward.incr(m, a, t, 0).unwrap();
        }
        let mut backward = DecayingScores::new(5.0, 0);
        for (m, a, t) in events.iter().rev() {
            backward.incr(*m, *a, *t, 0).unwrap();
        }
        for m in [&b"x"[..], b"y"] {
            let (f, b) = (
                forward.score(m, 30_000).unwrap(),
                backward.score(m, 30_000).unwrap(),
            );
            assert!(close(f, b), "{f} vs {b}");
        }
    }

    #[test]
    fn top_orders_by_decayed_score_at_any_time() {
        let mut d = DecayingScores::new(1.0, 0);
        d.incr(b"old-big", 100.0, 0, 0).unwrap();
        // 5 half-lives later 100 has decayed to 3.125: 4 is ahead, 2 behind.
        d.incr(b"new-mid", 4.0, 5_000, 0).unwrap();
        d.incr(b"new-small", 2.0, 5_000, 0).unwrap();
        for now in [5_000, 60_000] {
            let names: Vec<&[u8]> = d.top(now).map(|(m, _)| m).collect();
            assert_eq!(names, vec![&b"new-mid"[..], b"old-big", b"new-small"]);
        }
        let scores: Vec<f64> = d.top(5_000).map(|(_, s)| s).collect();
        assert!(close(scores[0], 4.0) && close(scores[1], 3.125) && close(scores[2], 2.0));
    }

    #[test]
    fn equal_scores_come_in_reverse_member_order() {
        let mut d = DecayingScores::new(1.0, 0);
        for m in [&b"b"[..], b"a", b"c"] {
            d.incr(m, 1.0, 0, 0).unwrap();
        }
        let names: Vec<&[u8]> = d.top(0).map(|(m, _)| m).collect();
        assert_eq!(names, vec![&b"c"[..], b"b", b"a"]);
    }

    #[test]
    fn the_cap_drops_the_lowest_members() {
        let mut d = DecayingScores::new(60.0, 0);
        d.incr(b"a", 5.0, 0, 2).unwrap();
        d.incr(b"b", 1.0, 0, 2).unwrap();
        let r = d.incr(b"c", 3.0, 0, 2).unwrap();
        assert_eq!(r.trimmed, 1);
        assert_eq!(d.len(), 2);
        assert!(d.score(b"b", 0).is_none());
        // A newcomer below everyone is dropped at once, its score still answered.
        let r = d.incr(b"d", 0.5, 0, 2).unwrap();
        assert_eq!((r.trimmed, r.score), (1, 0.5));
        assert!(d.score(b"d", 0).is_none());
        // 0 means no cap; lowering the cap later trims on demand.
        d.incr(b"e", 0.1, 0, 0).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.trim(1), 2);
        assert_eq!(
            d.top(0).map(|(m, _)| m).collect::<Vec<_>>(),
            vec![&b"a"[..]]
        );
    }

    #[test]
    fn amounts_must_be_positive_and_finite() {
        let mut d = DecayingScores::new(1.0, 0);
        for bad in [0.0, -1.0, f64::INFINITY, f64::NAN, -0.0] {
            assert_eq!(d.incr(b"a", bad, 0, 0), Err(IncrError::Amount));
        }
        assert!(d.is_empty());
    }

    #[test]
    fn a_thousand_halflives_neither_overflow_nor_lose_the_order() {
        let h_ms = 1_000;
        let mut d = DecayingScores::new(1.0, 0);
        d.incr(b"ancient", 1e300, 0, 0).unwrap();
        let later = 1000 * h_ms;
        // 1e300 · 2^-1000 ≈ 9.33e-2: a fresh 1 beats it, a fresh 0.01 does not.
        d.incr(b"fresh", 1.0, later, 0).unwrap();
        d.incr(b"faint", 0.01, later, 0).unwrap();
        let expected = 1e300 * 2f64.powi(-1000);
        let got = d.score(b"ancient", later).unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected,
            "{got} vs {expected}"
        );
        let names: Vec<&[u8]> = d.top(later).map(|(m, _)| m).collect();
        assert_eq!(names, vec![&b"fresh"[..], b"ancient", b"faint"]);
        // 2000 half-lives more: everything old has decayed to 0 but nothing is NaN or inf.
        let r = d.incr(b"fresh", 2.0, 3 * later, 0).unwrap();
        assert!(close(r.score, 2.0), "{}", r.score);
        for (_, s) in d.top(3 * later) {
            assert!(s.is_finite() && s >= 0.0);
        }
        assert_eq!(d.score(b"ancient", 3 * later), Some(0.0));
    }

    #[test]
    fn rebasing_keeps_scores_and_order() {
        let mut d = DecayingScores::new(0.001, 0);
        d.incr(b"a", 3.0, 0, 0).unwrap();
        d.incr(b"b", 2.0, 0, 0).unwrap();
        // 1 ms half-life: 400 ms is far past REBASE_AFTER e-folds.
        d.incr(b"c", 1.0, 400, 0).unwrap();
        assert_eq!(d.t0_ms, 400);
        let max_l = d.scores.values().fold(f64::MIN, |a, &b| a.max(b));
        assert!(
            max_l < 1.0,
            "log-scores are relative to the new base: {max_l}"
        );
        assert!(close(d.score(b"a", 0).unwrap(), 3.0));
        let r = d.incr(b"a", 1.0, 400, 0).unwrap();
        assert!(close(r.score, 1.0 + 3.0 * 2f64.powi(-400)));
        let names: Vec<&[u8]> = d.top(400).map(|(m, _)| m).collect();
        assert_eq!(names, vec![&b"a"[..], b"c", b"b"]);
    }

    #[test]
    fn replayed_events_recreate_the_scores() {
        let mut d = DecayingScores::new(2.5, 10_000);
        d.incr(b"huge", 1e308, 10_000, 0).unwrap();
        d.incr(b"huge", 1e308, 10_000, 0).unwrap();
        d.incr(b"tiny", 1e-300, 12_345, 0).unwrap();
        d.incr(b"plain", 42.0, 99_999, 0).unwrap();
        let mut copy = DecayingScores::new(2.5, 0);
        for (m, amount, at) in d.replay_events() {
            assert!(amount.is_finite() && amount > 0.0, "{amount}");
            copy.incr(m, amount, at, 0).unwrap();
        }
        // Read where every score is a normal double.
        for now in [12_345, 99_999] {
            for m in [&b"huge"[..], b"tiny", b"plain"] {
                let (a, b) = (d.score(m, now).unwrap(), copy.score(m, now).unwrap());
                assert!((a - b).abs() <= 1e-12 * a, "{m:?}: {a} vs {b}");
            }
        }
    }
}
