//! Randomized differential test of the collection types: seeded sequences of list, hash, set
//! and sorted-set commands over a few keys go to a real redis-server and to WarpEngine, and
//! every reply must be the same, byte for byte (unordered replies compared as sorted
//! elements). Values stay small, and collections cross the small-encoding limits
//! (list-max-listpack-size, hash/set/zset-max-listpack-entries) often, because a few commands
//! push many elements at once.

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const KEYS: &[&str] = &["{x}l", "{x}h", "{x}s", "{x}z", "{x}o"];

/// A random command, and whether its reply is an unordered collection.
fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let k = r.pick(KEYS).to_string();
    let other = r.pick(KEYS).to_string();
    let m = format!("m{}", r.below(40));
    let n = (r.below(9) as i64 - 4).to_string();
    let score = format!("{}", r.below(20) as f64 / 2.0);
    let many: Vec<String> = (0..r.below(150)).map(|i| format!("e{}", i % 60)).collect();
    let (mut words, unordered): (Vec<String>, bool) = match r.below(57) {
        0 => (vec!["LPUSH".into(), k, m], false),
        1 => (vec!["RPUSH".into(), k, m], false),
        2 => (vec!["RPUSH".into(), k], false), // plus many
        3 => (vec!["LPOP".into(), k], false),
        4 => (vec!["RPOP".into(), k, "2".into()], false),
        5 => (vec!["LRANGE".into(), k, n, "-1".into()], false),
        6 => (
            vec![
                "LINSERT".into(),
                k,
                r.pick(&["BEFORE", "AFTER"]).into(),
                m,
                "new".into(),
            ],
            false,
        ),
        7 => (vec!["LREM".into(), k, n, m], false),
        8 => (vec!["LSET".into(), k, n, m], false),
        9 => (vec!["LTRIM".into(), k, n, "-3".into()], false),
        10 => (vec!["LINDEX".into(), k, n], false),
        11 => (vec!["LPOS".into(), k, m], false),
        12 => (vec!["HSET".into(), k, m, n], false),
        13 => (vec!["HSET".into(), k], false), // plus many (as field/value pairs)
        14 => (vec!["HDEL".into(), k, m], false),
        15 => (vec!["HGET".into(), k, m], false),
        16 => (vec!["HGETALL".into(), k], true),
        17 => (vec!["HINCRBY".into(), k, m, n], false),
        18 => (vec!["HLEN".into(), k], false),
        19 => (vec!["SADD".into(), k, m], false),
        20 => (vec!["SADD".into(), k], false), // plus many
        21 => (vec!["SREM".into(), k, m], false),
        22 => (vec!["SMEMBERS".into(), k], true),
        23 => (vec!["SISMEMBER".into(), k, m], false),
        24 => (vec!["SINTER".into(), k, other], true),
        25 => (vec!["SUNIONSTORE".into(), "{x}o".into(), k, other], false),
        26 => (vec!["SCARD".into(), k], false),
        27 => (vec!["ZADD".into(), k, score, m], false),
        28 => (vec!["ZADD".into(), k], false), // plus many (score/member pairs)
        29 => (vec!["ZINCRBY".into(), k, n, m], false),
        30 => (
            vec![
                "ZRANGE".into(),
                k,
                "0".into(),
                "-1".into(),
                "WITHSCORES".into(),
            ],
            false,
        ),
        31 => (
            vec!["ZRANGEBYSCORE".into(), k, "2".into(), "(7".into()],
            false,
        ),
        32 => (vec!["ZREM".into(), k, m], false),
        33 => (vec!["ZRANK".into(), k, m], false),
        34 => (vec!["ZPOPMIN".into(), k], false),
        35 => (vec!["ZREVRANGE".into(), k, "0".into(), n], false),
        36 => (vec!["ZCARD".into(), k], false),
        37 => (vec!["OBJECT".into(), "ENCODING".into(), k], false),
        38 => (vec!["TYPE".into(), k], false),
        40 => (
            vec![
                "LMOVE".into(),
                k,
                other,
                r.pick(&["LEFT", "RIGHT"]).into(),
                r.pick(&["LEFT", "RIGHT"]).into(),
            ],
            false,
        ),
        41 => (
            vec![
                "LMPOP".into(),
                "2".into(),
                k,
                other,
                "RIGHT".into(),
                "COUNT".into(),
                "3".into(),
            ],
            false,
        ),
        42 => (
            vec![
                "LPOS".into(),
                k,
                m,
                "RANK".into(),
                n,
                "COUNT".into(),
                "0".into(),
            ],
            false,
        ),
        43 => (vec!["RPOPLPUSH".into(), k, other], false),
        44 => (
            vec![
                "HINCRBYFLOAT".into(),
                k,
                m,
                r.pick(&["1.5", "-0.1", "1e2", "3"]).into(),
            ],
            false,
        ),
        45 => (vec!["HSETNX".into(), k, m, n], false),
        46 => (
            vec!["HMGET".into(), k, m, "e1".into(), "nope".into()],
            false,
        ),
        47 => (vec!["HSTRLEN".into(), k, m], false),
        48 => (vec!["HEXISTS".into(), k, m], false),
        49 => (vec!["HKEYS".into(), k], true),
        50 => (vec!["SMOVE".into(), k, other, m], false),
        51 => (vec!["SDIFFSTORE".into(), "{x}o".into(), k, other], false),
        52 => (
            vec![
                "SINTERCARD".into(),
                "2".into(),
                k,
                other,
                "LIMIT".into(),
                "3".into(),
            ],
            false,
        ),
        53 => (vec!["SMISMEMBER".into(), k, m, "e2".into()], false),
        54 => (vec!["SUNION".into(), k, other], true),
        55 => (vec!["SDIFF".into(), k, other], true),
        _ => (vec!["DEL".into(), k], false),
    };
    if words.len() == 2 {
        if let "RPUSH" | "SADD" | "HSET" | "ZADD" = words[0].as_str() {
            let paired = words[0] != "RPUSH" && words[0] != "SADD";
            let mut items = many;
            if items.is_empty() {
                items.push("e0".into());
            }
            for (i, item) in items.into_iter().enumerate() {
                if paired {
                    let first = if words[0] == "ZADD" {
                        (i % 7).to_string()
                    } else {
                        item.clone()
                    };
                    words.push(first);
                }
                words.push(item);
            }
        }
    }
    (words, unordered)
}

#[test]
fn random_collection_commands_answer_as_redis_does() {
    fuzz_against_redis(2000, command);
}
