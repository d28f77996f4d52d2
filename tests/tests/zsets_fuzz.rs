//! Randomized differential test of sorted sets: seeded sequences of ZADD with its flags, range
//! queries by rank, score and lex (REV, LIMIT, WITHSCORES), removals by range, counts, stores
//! and set operations with WEIGHTS and AGGREGATE go to a real redis-server and to WarpEngine;
//! every reply must be the same, byte for byte (score formatting included). Members share
//! scores often, so lex order breaks ties, and sets cross zset-max-listpack-entries. Lex
//! ranges run on a set whose members all score 0: on mixed scores their result is
//! unspecified (Redis's depends on its skiplist's random levels).

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const KEYS: &[&str] = &["{z}a", "{z}b", "{z}c"];
/// Only ever scored 0, for the lex-range commands.
const LEX: &str = "{z}l";

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let k = r.pick(KEYS).to_string();
    let other = r.pick(KEYS).to_string();
    let member = format!("m{:02}", r.below(30));
    let score = r
        .pick(&[
            "0", "1", "1.5", "-2", "3", "10", "-inf", "+inf", "2.25", "1e2",
        ])
        .to_string();
    let min = r.pick(&["-inf", "0", "(1", "1.5", "(3", "-2"]).to_string();
    let max = r.pick(&["+inf", "3", "(10", "1.5", "100"]).to_string();
    let lex_min = r.pick(&["-", "[m05", "(m10", "[m2"]).to_string();
    let lex_max = r.pick(&["+", "[m20", "(m15", "[m29"]).to_string();
    let start = (r.below(9) as i64 - 4).to_string();
    let stop = (r.below(9) as i64 - 4).to_string();
    let many: Vec<String> = (0..r.below(160))
        .flat_map(|i| [format!("{}", i % 5), format!("m{:02}", i % 70)])
        .collect();
    let mut words: Vec<String> = match r.below(31) {
        0 | 1 => vec!["ZADD", &k, &score, &member],
        2 => vec![
            "ZADD",
            &k,
            r.pick(&["NX", "XX", "GT", "LT"]),
            "CH",
            &score,
            &member,
        ],
        3 => vec!["ZADD", &k, "INCR", &score, &member],
        4 => vec!["ZADD", &k],
        5 => vec!["ZINCRBY", &k, &score, &member],
        6 => vec!["ZRANGE", &k, &start, &stop, "WITHSCORES"],
        7 => vec!["ZRANGE", &k, &min, &max, "BYSCORE", "LIMIT", "1", "3"],
        8 => vec!["ZRANGE", &k, &max, &min, "BYSCORE", "REV", "WITHSCORES"],
        9 => vec!["ZRANGE", LEX, &lex_min, &lex_max, "BYLEX"],
        10 => vec!["ZREVRANGEBYLEX", LEX, &lex_max, &lex_min, "LIMIT", "0", "4"],
        11 => vec![
            "ZRANGEBYSCORE",
            &k,
            &min,
            &max,
            "WITHSCORES",
            "LIMIT",
            "2",
            "-1",
        ],
        12 => vec!["ZREVRANGE", &k, &start, &stop],
        13 => vec!["ZCOUNT", &k, &min, &max],
        14 => vec!["ZLEXCOUNT", LEX, &lex_min, &lex_max],
        15 => vec!["ZREMRANGEBYSCORE", &k, &min, &max],
        16 => vec!["ZREMRANGEBYRANK", &k, &start, &stop],
        17 => vec!["ZREMRANGEBYLEX", LEX, &lex_min, &lex_max],
        18 => vec!["ZRANK", &k, &member],
        19 => vec!["ZREVRANK", &k, &member],
        20 => vec!["ZSCORE", &k, &member],
        21 => vec!["ZMSCORE", &k, &member, "m01"],
        22 => vec![
            "ZUNIONSTORE",
            "{z}c",
            "2",
            &k,
            &other,
            "WEIGHTS",
            "2",
            "0.5",
        ],
        23 => vec![
            "ZINTERSTORE",
            "{z}c",
            "2",
            &k,
            &other,
            "AGGREGATE",
            r.pick(&["MIN", "MAX", "SUM"]),
        ],
        24 => vec!["ZRANGESTORE", "{z}c", &k, &start, &stop],
        25 => vec!["ZPOPMAX", &k, "2"],
        26 => vec!["ZREM", &k, &member, "m03"],
        27 => vec!["ZADD", LEX, "0", &member],
        28 => vec!["ZADD", LEX],
        _ => vec!["OBJECT", "ENCODING", &k],
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    if words.len() == 2 {
        let mut pairs = if many.is_empty() {
            vec!["1".into(), "m00".into()]
        } else {
            many
        };
        if words[1] == LEX {
            for score in pairs.iter_mut().step_by(2) {
                *score = "0".into();
            }
        }
        words.extend(pairs);
    }
    (words, false)
}

#[test]
fn random_sorted_set_commands_answer_as_redis_does() {
    fuzz_against_redis(2000, command);
}

/// Double replies (`%.17g`) for scores of every shape, byte for byte against redis-server:
/// integers, short decimals, fractions of every magnitude, exponents, -0 (the reply formatter
/// takes short cuts for integers and for fractions between 1e-6 and 2^53).
#[test]
fn score_replies_print_as_redis_prints_them() {
    if !warpengine_tests::redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let redis = warpengine_tests::start_redis(&[]);
    let warp = warpengine_tests::start_warpengine(&[]);
    let mut r = SeededRandom(17);
    let mut scores: Vec<String> = vec![
        "0".into(),
        "-0".into(),
        "0.1".into(),
        "1e-5".into(),
        "2.5e-6".into(),
        "1e17".into(),
        "99999999999999984".into(),
        "9007199254740993".into(),
        "-1234.5678".into(),
        "1e300".into(),
        "-2.2250738585072014e-308".into(),
        "inf".into(),
        "-inf".into(),
    ];
    for _ in 0..1500 {
        let mantissa = r.below(1_000_000_000) as f64;
        let scale = 10f64.powi(r.below(30) as i32 - 14);
        let sign = if r.below(2) == 0 { "" } else { "-" };
        scores.push(format!("{sign}{:e}", mantissa * scale));
        scores.push(format!("{sign}{}.{}", r.below(100_000), r.below(1000)));
    }
    let replies = |port: u16| {
        let mut c = warpengine_tests::RawConn::connect(port);
        for (i, s) in scores.iter().enumerate() {
            c.call(&["ZADD", "z", s, &format!("m{i}")]);
        }
        let mut out: Vec<warpengine_tests::Resp> = (0..scores.len())
            .map(|i| c.call(&["ZSCORE", "z", &format!("m{i}")]))
            .collect();
        out.push(c.call(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]));
        out.push(c.call(&["ZINCRBY", "z", "0.1", "m1"]));
        out
    };
    let (ours, theirs) = (replies(warp.port), replies(redis.port));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "reply {i} (score {:?})", scores.get(i));
    }
}
