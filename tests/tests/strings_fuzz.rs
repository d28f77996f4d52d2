//! Randomized differential test of strings and bitmaps: seeded sequences of writes that grow,
//! overwrite and count strings (APPEND, SETRANGE, INCR*, INCRBYFLOAT, SETBIT, BITOP, ...) over
//! a few keys go to a real redis-server and to WarpEngine; every reply must be the same, byte
//! for byte (number formatting, encodings and errors included).

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const KEYS: &[&str] = &["{s}a", "{s}b", "{s}c", "{s}n"];

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let k = r.pick(KEYS).to_string();
    let other = r.pick(KEYS).to_string();
    let small = r.below(40).to_string();
    let signed = (r.below(21) as i64 - 10).to_string();
    let text = r.pick(&[
        "x",
        "hello",
        "12",
        "-7",
        "3.5",
        "",
        "0",
        "99999999999999999999",
    ]);
    let float = r.pick(&["1.5", "-0.25", "10", "1e3", "0.1", "-3", "5.0e-1"]);
    let words: Vec<&str> = match r.below(26) {
        0 | 1 => vec!["SET", &k, text],
        2 => vec!["APPEND", &k, text],
        3 => vec!["SETRANGE", &k, &small, text],
        4 => vec!["GETRANGE", &k, &signed, "-1"],
        5 => vec!["STRLEN", &k],
        6 => vec!["INCR", &k],
        7 => vec!["INCRBY", &k, &signed],
        8 => vec!["DECRBY", &k, &signed],
        9 => vec!["INCRBYFLOAT", &k, float],
        10 => vec!["SETBIT", &k, &small, r.pick(&["0", "1"])],
        11 => vec!["GETBIT", &k, &small],
        12 => vec!["BITCOUNT", &k],
        13 => vec!["BITCOUNT", &k, &signed, "-1"],
        14 => vec!["BITPOS", &k, r.pick(&["0", "1"])],
        15 => vec!["BITOP", r.pick(&["AND", "OR", "XOR"]), &k, &other, "{s}c"],
        16 => vec!["BITOP", "NOT", &k, &other],
        17 => vec!["GETSET", &k, text],
        18 => vec!["MSET", &k, text, &other, "v"],
        19 => vec!["MGET", &k, &other],
        20 => vec!["MSETNX", &k, text, &other, "w"],
        21 => vec!["SETNX", &k, text],
        22 => vec!["GETDEL", &k],
        23 => vec!["OBJECT", "ENCODING", &k],
        24 => vec!["LCS", &k, &other],
        _ => vec!["GET", &k],
    };
    (words.into_iter().map(str::to_string).collect(), false)
}

#[test]
fn random_string_commands_answer_as_redis_does() {
    fuzz_against_redis(2000, command);
}
