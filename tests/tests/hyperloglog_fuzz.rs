//! Randomized differential test of HyperLogLog: seeded sequences of PFADD (few to a thousand
//! elements, so values go from sparse to dense), PFCOUNT of one and several keys, PFMERGE,
//! PFDEBUG and CONFIG SET hll-sparse-max-bytes go to a real redis-server and to WarpEngine,
//! and every reply must be the same byte for byte, GET of the HLL bytes included.
//!
//! Corrupt values: "bad" keys are copies of HLLs overwritten in places (SETRANGE, APPEND) and
//! are then read (PFCOUNT, PFMERGE as a source, PFDEBUG, GET), never added to: where a sparse
//! value ends in the middle of an XZERO opcode, Redis writes over the string's terminator on
//! an add (see README's known differences).

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const GOOD: &[&str] = &["{h}a", "{h}b", "{h}c", "{h}d"];
const BAD: &[&str] = &["{h}x", "{h}y"];
/// Bytes written over a value: zero runs, XZERO first bytes, VAL opcodes (UTF-8 sequences
/// give bytes from 0x80 up), the magic and encoding bytes.
const PATCHES: &[&str] = &[
    "\u{0}",
    "\u{3}",
    "?",
    "@",
    "\u{7f}",
    "A",
    "é",
    "ÿ",
    "\u{80}",
    "€",
    "ab",
    "HYLL",
    "\u{1}",
    "\u{0}\u{0}",
    "xyz",
];

fn elements(r: &mut SeededRandom) -> Vec<String> {
    let n = match r.below(10) {
        0 => 0,
        1..=5 => r.below(10),
        6..=8 => r.below(200),
        _ => 1000 + r.below(1000),
    };
    let range = *[50u64, 5_000, 1_000_000_000]
        .get(r.below(3) as usize)
        .unwrap_or(&50);
    (0..n).map(|_| r.below(range).to_string()).collect()
}

fn keys(r: &mut SeededRandom, pool: &[&str], at_least: u64) -> Vec<String> {
    let n = at_least + r.below(4);
    (0..n).map(|_| r.pick(pool).to_string()).collect()
}

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let good = r.pick(GOOD).to_string();
    let bad = r.pick(BAD).to_string();
    let all: Vec<&str> = GOOD.iter().chain(BAD).copied().collect();
    let any = r.pick(&all).to_string();
    let mut words: Vec<String> = match r.below(24) {
        0..=6 => vec!["PFADD".into(), good],
        7..=9 => vec!["PFCOUNT".into(), any],
        10 | 11 => vec!["PFCOUNT".into()],
        12 | 13 => vec!["PFMERGE".into(), good],
        14 => [
            "PFDEBUG",
            r.pick(&["GETREG", "TODENSE", "ENCODING", "DECODE"]),
            &any,
        ]
        .map(String::from)
        .to_vec(),
        15 => [
            "CONFIG",
            "SET",
            "hll-sparse-max-bytes",
            r.pick(&["0", "20", "100", "500", "3000", "20000"]),
        ]
        .map(String::from)
        .to_vec(),
        16 => ["COPY", &good, &bad, "REPLACE"].map(String::from).to_vec(),
        17 | 18 => {
            let offset = r.below(60).to_string();
            ["SETRANGE", &bad, &offset, r.pick(PATCHES)]
                .map(String::from)
                .to_vec()
        }
        19 => ["APPEND", &bad, r.pick(PATCHES)].map(String::from).to_vec(),
        20 => vec!["DEL".into(), any],
        21 => vec!["SET".into(), good, r.pick(&["plain", "HYLL"]).into()],
        _ => vec!["GET".into(), any],
    };
    match words[0].as_str() {
        "PFADD" => words.extend(elements(r)),
        "PFCOUNT" if words.len() == 1 => words.extend(keys(r, &all, 2)),
        "PFMERGE" => words.extend(keys(r, &all, 0)),
        _ => {}
    }
    (words, false)
}

#[test]
fn random_hyperloglog_commands_answer_as_redis_does() {
    fuzz_against_redis(1500, command);
}
