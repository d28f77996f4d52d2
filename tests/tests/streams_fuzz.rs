//! Randomized differential test of streams: seeded sequences of XADD (explicit, `ms-*` and
//! too-small IDs, MAXLEN/MINID trims exact and `~` with LIMIT, NOMKSTREAM), XDEL, XTRIM, XSETID,
//! ranges (exclusive bounds, COUNT), XREAD, and consumer groups (XGROUP's subcommands,
//! XREADGROUP new and history with NOACK, XACK, XCLAIM and XAUTOCLAIM with min-idle 0, XPENDING's
//! summary, XINFO GROUPS, XINFO STREAM) go to a real redis-server and to WarpEngine; every reply
//! must be the same, byte for byte. Nodes hold 3 to 6 entries (`stream-node-max-entries`), so
//! `~` trims and deletions cross node boundaries (and XINFO STREAM's radix-tree-nodes follows
//! them). Left out: replies that carry times (idle, delivery times).

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const KEYS: &[&str] = &["{s}a", "{s}b", "{s}c"];
const GROUPS: &[&str] = &["g1", "g2"];
const CONSUMERS: &[&str] = &["alice", "bob", "carol"];

/// The milliseconds new entries get around: it moves on with every command, so that most XADDs
/// succeed and streams keep growing (and trimming, deleting and reading find entries).
struct Clock(u64);

impl Clock {
    fn tick(&mut self) -> u64 {
        self.0 += 1;
        self.0 / 2
    }
}

/// An ID somewhere among the entries added so far.
fn id(r: &mut SeededRandom, now: u64) -> String {
    format!("{}-{}", r.below(now + 3), r.below(3))
}

fn bound(r: &mut SeededRandom, now: u64) -> String {
    match r.below(6) {
        0 => "-".to_string(),
        1 => "+".to_string(),
        2 => format!("({}", id(r, now)),
        3 => r.below(now + 3).to_string(),
        _ => id(r, now),
    }
}

fn command(r: &mut SeededRandom, clock: &mut Clock) -> (Vec<String>, bool) {
    let now = clock.tick();
    let k = r.pick(KEYS).to_string();
    let g = r.pick(GROUPS).to_string();
    let c = r.pick(CONSUMERS).to_string();
    let (a, b) = (id(r, now), id(r, now));
    let (lo, hi) = (bound(r, now), bound(r, now));
    let count = r.below(5).to_string();
    let field = r.pick(&["f", "g", "temp"]).to_string();
    let value = r.below(100).to_string();
    let mut words: Vec<String> = match r.below(31) {
        0..=4 => {
            // Mostly above the stream's last ID, sometimes not.
            let ms = (now + r.below(3)).saturating_sub(1);
            let id = match r.below(4) {
                0 => format!("{ms}-*"),
                1 => ms.to_string(),
                _ => format!("{ms}-{}", r.below(3)),
            };
            vec!["XADD", &k, &id, &field, &value, "f", "x"]
                .into_iter()
                .map(String::from)
                .collect()
        }
        5 => {
            let (kind, threshold) = if r.below(2) == 0 {
                ("MAXLEN", r.below(12).to_string())
            } else {
                ("MINID", id(r, now))
            };
            let mut w = vec!["XADD".to_string(), k.clone(), kind.to_string()];
            match r.below(3) {
                0 => w.push("~".into()),
                1 => w.push("=".into()),
                _ => {}
            }
            w.push(threshold);
            if r.below(3) == 0 {
                w.extend(["LIMIT".to_string(), r.below(8).to_string()]);
            }
            w.extend([format!("{now}-*"), field, value]);
            w
        }
        6 => vec!["XADD", &k, "NOMKSTREAM", &a, "f", "v"]
            .into_iter()
            .map(String::from)
            .collect(),
        7 => vec!["XDEL".to_string(), k.clone(), a, b],
        8 => {
            let mut w = vec!["XTRIM".to_string(), k.clone()];
            if r.below(2) == 0 {
                w.extend(["MAXLEN".to_string(), r.pick(&["~", "="]).to_string()]);
                w.push(r.below(10).to_string());
            } else {
                w.extend(["MINID".to_string(), r.pick(&["~", "="]).to_string(), a]);
            }
            if r.below(3) == 0 {
                w.extend(["LIMIT".to_string(), r.below(6).to_string()]);
            }
            w
        }
        9 => vec![
            "XSETID".to_string(),
            k.clone(),
            format!("{}-5", 40 + r.below(20)),
        ],
        10 | 11 => vec![
            "XRANGE".to_string(),
            k.clone(),
            lo,
            hi,
            "COUNT".into(),
            count,
        ],
        12 => vec!["XREVRANGE".to_string(), k.clone(), hi, lo],
        13 => vec!["XLEN".to_string(), k.clone()],
        14 => {
            let other = r.pick(KEYS).to_string();
            vec![
                "XREAD".into(),
                "COUNT".into(),
                (1 + r.below(4)).to_string(),
                "STREAMS".into(),
                k.clone(),
                other,
                a,
                r.pick(&["$", "0", "10-0", "+"]).to_string(),
            ]
        }
        15 => vec![
            "XGROUP".into(),
            "CREATE".into(),
            k.clone(),
            g,
            r.pick(&["0", "$", "5-0", "20"]).to_string(),
            "ENTRIESREAD".into(),
            r.pick(&["-1", "0", "3"]).to_string(),
            "MKSTREAM".into(),
        ],
        16 => vec![
            "XGROUP".into(),
            "SETID".into(),
            k.clone(),
            g,
            r.pick(&["0", "$", "10-1"]).to_string(),
        ],
        17 => vec!["XGROUP".into(), "DESTROY".into(), k.clone(), g],
        18 => vec!["XGROUP".into(), "CREATECONSUMER".into(), k.clone(), g, c],
        19 => vec!["XGROUP".into(), "DELCONSUMER".into(), k.clone(), g, c],
        20..=22 => {
            let mut w = vec!["XREADGROUP".to_string(), "GROUP".into(), g, c];
            if r.below(3) == 0 {
                w.push("NOACK".into());
            }
            w.extend([
                "COUNT".to_string(),
                (1 + r.below(3)).to_string(),
                "STREAMS".into(),
                k.clone(),
                r.pick(&[">", ">", "0", "15"]).to_string(),
            ]);
            w
        }
        23 => vec!["XACK".to_string(), k.clone(), g, a, b],
        24 => vec!["XPENDING".to_string(), k.clone(), g],
        25 => vec![
            "XCLAIM".to_string(),
            k.clone(),
            g,
            c,
            "0".into(),
            a,
            b,
            "JUSTID".into(),
        ],
        26 => vec!["XCLAIM".to_string(), k.clone(), g, c, "0".into(), a],
        27 => vec![
            "XAUTOCLAIM".to_string(),
            k.clone(),
            g,
            c,
            "0".into(),
            lo.replace('+', "0").replace("-", "0-0"),
            "COUNT".into(),
            (1 + r.below(3)).to_string(),
        ],
        28 => vec!["XINFO".to_string(), "GROUPS".into(), k.clone()],
        29 => vec!["XINFO".to_string(), "STREAM".into(), k.clone()],
        _ => vec!["DEL".to_string(), k.clone()],
    };
    if words.is_empty() {
        words.push("PING".into());
    }
    (words, false)
}

#[test]
fn streams_match_redis_on_random_command_sequences() {
    let mut first = true;
    let mut clock = Clock(0);
    fuzz_against_redis(1500, |r| {
        if std::mem::take(&mut first) || r.below(200) == 0 {
            let size = (3 + r.below(4)).to_string();
            return (
                vec![
                    "CONFIG".into(),
                    "SET".into(),
                    "stream-node-max-entries".into(),
                    size,
                ],
                false,
            );
        }
        command(r, &mut clock)
    });
}
