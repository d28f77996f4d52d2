//! Randomized differential test of DUMP: seeded sequences of writes to a string, a list, a hash,
//! an integer set, a sorted set and a stream go to a real redis-server and to WarpEngine, with
//! DUMP of each key among them; every payload must be the same, byte for byte. The values stay
//! in the encodings whose bytes depend only on the content (one list node, listpack hashes and
//! sorted sets, 16-bit intsets); strings cover integers, text and long repetitive values (LZF).
//! Stream values run up to 1.5 KB, so nodes split at `stream-node-max-bytes` (by the listpack
//! size Redis would have) as well as at `stream-node-max-entries`; groups come without
//! consumers, whose times are each server's own.

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const STRING: &str = "{d}s";
const LIST: &str = "{d}l";
const HASH: &str = "{d}h";
const INTSET: &str = "{d}i";
const ZSET: &str = "{d}z";
const STREAM: &str = "{d}x";

fn element(r: &mut SeededRandom) -> String {
    match r.below(6) {
        0 => (r.below(300) as i64 - 150).to_string(),
        1 => (r.below(1 << 40) as i64 * 37 - (1 << 44)).to_string(),
        2 => format!("e{}", r.below(40)),
        3 => String::new(),
        4 => "ab".repeat(r.below(30) as usize),
        _ => format!("0{}", r.below(9)),
    }
}

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let e = element(r);
    let field = format!("f{}", r.below(20));
    let int = (r.below(2000) as i64 - 1000).to_string();
    let score = r
        .pick(&[
            "0", "1.5", "-2", "1e20", "0.1", "-inf", "inf", "7", "3.25e-5",
        ])
        .to_string();
    let long = r
        .pick(&["abc", "hello world ", "x", "0123456789"])
        .repeat(r.below(40) as usize);
    // Entry IDs from a narrow range, so that XADD, XDEL and group IDs meet often.
    let id = format!("{}-{}", r.below(3000), r.below(3));
    let ms_auto = format!("{}-*", r.below(3000));
    let stream_value = match r.below(4) {
        0 => "v".repeat(r.below(1500) as usize),
        _ => r.pick(&["1", "-70", "e12", "", "300000"]).to_string(),
    };
    let maxlen = r.below(150).to_string();
    let words: Vec<&str> = match r.below(34) {
        0 => vec!["SET", STRING, &e],
        1 => vec!["SET", STRING, &long],
        2 => vec!["APPEND", STRING, &e],
        3 => vec!["INCRBY", STRING, &int],
        4 => vec!["SETRANGE", STRING, "3", &e],
        5 | 6 => vec!["RPUSH", LIST, &e],
        7 => vec!["LPUSH", LIST, &e, &int],
        8 => vec!["LPOP", LIST],
        9 => vec!["LSET", LIST, "0", &e],
        10 => vec!["LREM", LIST, "1", &e],
        11 => vec!["LTRIM", LIST, "0", "60"],
        12 | 13 => vec!["HSET", HASH, &field, &e],
        14 => vec!["HDEL", HASH, &field],
        15 => vec!["HINCRBY", HASH, "n", &int],
        16 | 17 => vec!["SADD", INTSET, &int],
        18 => vec!["SREM", INTSET, &int],
        19 | 20 => vec!["ZADD", ZSET, &score, &e],
        21 => vec!["ZINCRBY", ZSET, "1", &e],
        22 => vec!["ZREM", ZSET, &e],
        23 => vec!["DEL", r.pick(&[STRING, LIST, HASH, INTSET, ZSET, STREAM])],
        24 | 25 => vec!["XADD", STREAM, &ms_auto, "f", &stream_value, "g", &int],
        26 => vec!["XADD", STREAM, &id, "other", &stream_value],
        27 => vec!["XDEL", STREAM, &id],
        28 => vec!["XTRIM", STREAM, "MAXLEN", r.pick(&["=", "~"]), &maxlen],
        29 => vec![
            "XGROUP",
            "CREATE",
            STREAM,
            r.pick(&["g1", "g2"]),
            r.pick(&["$", "0", &id]),
        ],
        30 => vec!["XGROUP", "SETID", STREAM, "g1", &id, "ENTRIESREAD", &maxlen],
        31 => vec!["XGROUP", "DESTROY", STREAM, "g2"],
        _ => vec!["DUMP", r.pick(&[STRING, LIST, HASH, INTSET, ZSET, STREAM])],
    };
    (words.into_iter().map(str::to_string).collect(), false)
}

#[test]
fn random_values_dump_as_redis_dumps_them() {
    fuzz_against_redis(3000, command);
}
