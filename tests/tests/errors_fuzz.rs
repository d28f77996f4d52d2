//! Randomized differential test of argument handling: commands get 0 to 5 arguments drawn from
//! tricky tokens (empty, negative, fractional, overflowing, NaN, infinities, option words, key
//! names), against a few keys of every type, and each reply (an error's text above all) must
//! be byte for byte what redis-server answers. Commands that block, answer with randomness or
//! server-specific data, or change the server's configuration are left out, and so are
//! relative expiries (EXPIRE, SETEX, SET ... EX, ...): a key that lapses a millisecond apart on
//! the two servers would make the test flaky. Absolute ones in the past are deterministic.

use warpengine_tests::{fuzz_seeds, SeededRandom, SideBySide};

const COMMANDS: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "GETDEL",
    "GETSET",
    "MGET",
    "MSET",
    "MSETNX",
    "APPEND",
    "STRLEN",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "GETRANGE",
    "SETRANGE",
    "SUBSTR",
    "LCS",
    "SETBIT",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "BITOP",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TOUCH",
    "TYPE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PERSIST",
    "RENAME",
    "RENAMENX",
    "COPY",
    "MOVE",
    "DBSIZE",
    "LPUSH",
    "RPUSH",
    "LPUSHX",
    "RPUSHX",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LINDEX",
    "LSET",
    "LINSERT",
    "LREM",
    "LTRIM",
    "LLEN",
    "LPOS",
    "LMOVE",
    "LMPOP",
    "RPOPLPUSH",
    "HSET",
    "HSETNX",
    "HGET",
    "HMGET",
    "HDEL",
    "HLEN",
    "HEXISTS",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HSTRLEN",
    "HMSET",
    "SADD",
    "SREM",
    "SCARD",
    "SISMEMBER",
    "SMISMEMBER",
    "SMOVE",
    "SINTERCARD",
    "SINTERSTORE",
    "SUNIONSTORE",
    "SDIFFSTORE",
    "ZADD",
    "ZINCRBY",
    "ZREM",
    "ZCARD",
    "ZSCORE",
    "ZMSCORE",
    "ZRANK",
    "ZREVRANK",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE",
    "ZPOPMIN",
    "ZPOPMAX",
    "ZMPOP",
    "ZUNIONSTORE",
    "ZINTERSTORE",
    "ZRANGESTORE",
    "ZINTERCARD",
    "SORT",
    "OBJECT",
    "ECHO",
    "PING",
];

const TOKENS: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "2",
    "10",
    "-5",
    "1.5",
    "-0.5",
    "abc",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "nan",
    "inf",
    "-inf",
    "+inf",
    "(1",
    "[a",
    "-",
    "+",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "KEEPTTL",
    "WITHSCORES",
    "LIMIT",
    "COUNT",
    "RANK",
    "MAXLEN",
    "BYSCORE",
    "BYLEX",
    "REV",
    "WEIGHTS",
    "AGGREGATE",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "AND",
    "NOT",
    "ENCODING",
    "MIN",
    "MAX",
    "ks",
    "kl",
    "kh",
    "kset",
    "kz",
    "nokey",
];

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let mut words = vec![r.pick(COMMANDS).to_string()];
    for _ in 0..r.below(6) {
        words.push(r.pick(TOKENS).to_string());
    }
    (words, false)
}

#[test]
fn random_arguments_get_the_replies_redis_gives() {
    let Some(mut servers) = SideBySide::start() else {
        return;
    };
    for seed in 1..=fuzz_seeds() {
        servers.replay_random(seed, 3000, |r| {
            // Keys of every type, so that type errors and real work both happen.
            if r.below(20) == 0 {
                let setup = [
                    &["SET", "ks", "10"][..],
                    &["RPUSH", "kl", "a", "b", "1"],
                    &["HSET", "kh", "f", "1"],
                    &["SADD", "kset", "a", "1"],
                    &["ZADD", "kz", "1", "a", "2", "b"],
                ];
                let words = setup[r.below(setup.len() as u64) as usize];
                return (words.iter().map(|w| w.to_string()).collect(), false);
            }
            command(r)
        });
    }
}
