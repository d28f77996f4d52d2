//! Randomized differential test of ACL rules: seeded sequences of ACL SETUSER with random rules
//! (commands, categories, subcommands, first arguments, key patterns with read/write access,
//! channel patterns, selectors, resets, invalid rules) and ACL DRYRUN of random commands go to
//! a real redis-server and to WarpEngine; every reply must be the same byte for byte. (ACL
//! GETUSER is left out: Redis lists single commands in its hash order, which varies between
//! Redis runs.)

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const COMMAND_RULES: &[&str] = &[
    "+@all",
    "-@all",
    "allcommands",
    "nocommands",
    "+@read",
    "-@read",
    "+@write",
    "-@write",
    "+@string",
    "-@string",
    "+@hash",
    "+@list",
    "-@list",
    "+@set",
    "+@sortedset",
    "+@keyspace",
    "-@keyspace",
    "+@dangerous",
    "-@dangerous",
    "+@admin",
    "-@admin",
    "+@fast",
    "-@slow",
    "+@pubsub",
    "-@pubsub",
    "+@scripting",
    "+@connection",
    "+@transaction",
    "+@bitmap",
    "+@hyperloglog",
    "+@blocking",
    "+get",
    "-get",
    "+set",
    "-set",
    "+mget",
    "+del",
    "-del",
    "+config|get",
    "-config|get",
    "+config",
    "-config",
    "+client|list",
    "+select|0",
    "+select|1",
    "+publish",
    "-publish",
    "+subscribe",
    "+psubscribe",
    "+eval",
    "+copy",
    "+bitfield",
    "+nosuchcommand",
    "+@nosuchcategory",
    "+config|get|x",
];

const KEY_RULES: &[&str] = &[
    "~*",
    "allkeys",
    "resetkeys",
    "~a*",
    "~b*",
    "%R~r*",
    "%W~w*",
    "%RW~x*",
    "~k?",
    "%R~*",
    "%W~*",
    "%X~a",
];

const CHANNEL_RULES: &[&str] = &[
    "&*",
    "allchannels",
    "resetchannels",
    "&news",
    "&n*",
    "&sport?",
];

const SELECTORS: &[&str] = &[
    "(+get ~s*)",
    "(+set %W~t*)",
    "(+@read ~*)",
    "(-@all +publish &x*)",
    "(+@all ~z*)",
    "clearselectors",
];

const REQUESTS: &[&[&str]] = &[
    &["get", "a1"],
    &["get", "b1"],
    &["get", "r1"],
    &["get", "w1"],
    &["get", "x1"],
    &["get", "s1"],
    &["get", "k1"],
    &["get", "z1"],
    &["set", "a1", "v"],
    &["set", "w1", "v"],
    &["set", "r1", "v"],
    &["set", "t1", "v"],
    &["set", "w1", "v", "GET"],
    &["mget", "a1", "r1", "x1"],
    &["del", "a1", "w1"],
    &["hset", "a1", "f", "v"],
    &["lpush", "x1", "v"],
    &["sadd", "b1", "m"],
    &["zadd", "k1", "1", "m"],
    &["copy", "r1", "w1"],
    &["copy", "w1", "r1"],
    &["lmove", "r1", "w1", "left", "right"],
    &["bitfield", "r1", "GET", "u8", "0"],
    &["bitfield", "w1", "SET", "u8", "0", "1"],
    &["publish", "news", "m"],
    &["publish", "sports", "m"],
    &["publish", "x1", "m"],
    &["subscribe", "news", "nope"],
    &["psubscribe", "n*"],
    &["psubscribe", "news"],
    &["config", "get", "maxmemory"],
    &["config", "set", "maxmemory", "0"],
    &["client", "list"],
    &["client", "id"],
    &["select", "0"],
    &["select", "1"],
    &["flushall"],
    &["keys", "*"],
    &["eval", "return 1", "1", "a1"],
    &["ping"],
    &["auth", "x"],
    &["incr", "k1"],
];

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let mut words: Vec<String> = Vec::new();
    if r.below(3) == 0 {
        words.extend(["ACL", "DRYRUN", "fz"].map(String::from));
        let request = REQUESTS[r.below(REQUESTS.len() as u64) as usize];
        words.extend(request.iter().map(|s| s.to_string()));
        return (words, false);
    }
    words.extend(["ACL", "SETUSER", "fz"].map(String::from));
    if r.below(12) == 0 {
        words.push("reset".into());
    }
    for _ in 0..1 + r.below(4) {
        let pool = match r.below(10) {
            0..=4 => COMMAND_RULES,
            5..=6 => KEY_RULES,
            7..=8 => CHANNEL_RULES,
            _ => SELECTORS,
        };
        words.push(r.pick(pool).to_string());
    }
    (words, false)
}

#[test]
fn random_acl_rules_allow_and_refuse_as_redis_does() {
    fuzz_against_redis(1500, command);
}
