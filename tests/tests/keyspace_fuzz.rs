//! Randomized differential test of the keyspace: the same pseudo-random sequence of commands
//! over a few keys in two databases (writes with and without expiries, TTL changes, renames,
//! copies, moves, SWAPDB, type clashes) goes to a real redis-server and to WarpEngine, and
//! every reply must be byte for byte the same. Expiries are long (hours) so that no key lapses
//! during a run and TTL in seconds reads the same on both.

use warpengine_tests::{fuzz_seeds, SeededRandom, SideBySide};

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5", "{t}a", "{t}b"];

/// One random command, as arguments.
fn command(r: &mut SeededRandom) -> Vec<String> {
    let k = r.pick(KEYS).to_string();
    let other = r.pick(KEYS).to_string();
    let secs = (3600 + r.below(7200)).to_string();
    let value = format!("v{}", r.below(5));
    let words: Vec<&str> = match r.below(30) {
        0..=2 => vec!["SET", &k, &value],
        3 => vec!["SET", &k, &value, "EX", &secs],
        4 => vec!["SET", &k, &value, "KEEPTTL"],
        5 => vec!["SET", &k, &value, "NX", "EX", &secs],
        6 => vec!["SETEX", &k, &secs, &value],
        7 if r.below(2) == 0 => vec!["GETEX", &k, "PERSIST"],
        7 => vec!["GETEX", &k, "EX", &secs],
        8 => vec!["EXPIRE", &k, &secs],
        9 => vec!["EXPIRE", &k, &secs, r.pick(&["NX", "XX", "GT", "LT"])],
        10 => vec!["PERSIST", &k],
        11 => vec!["TTL", &k],
        12 => vec!["DEL", &k],
        13 => vec!["EXISTS", &k, &other],
        14 => vec!["TYPE", &k],
        15 => vec!["RENAME", &k, &other],
        16 => vec!["RENAMENX", &k, &other],
        17 => vec!["COPY", &k, &other],
        18 => vec!["COPY", &k, &other, "DB", "1", "REPLACE"],
        19 => vec!["MOVE", &k, "1"],
        20 => vec!["SELECT", r.pick(&["0", "1"])],
        21 => vec!["SWAPDB", "0", "1"],
        22 => vec!["DBSIZE"],
        23 => vec!["LPUSH", &k, &value],
        24 => vec!["HSET", &k, "f", &value],
        25 => vec!["INCR", &k],
        26 => vec!["APPEND", &k, &value],
        27 => vec!["GET", &k],
        28 => vec!["GETDEL", &k],
        _ => vec!["OBJECT", "ENCODING", &k],
    };
    words.into_iter().map(str::to_string).collect()
}

#[test]
fn random_keyspace_commands_answer_as_redis_does() {
    let Some(mut servers) = SideBySide::start() else {
        return;
    };
    for seed in 1..=fuzz_seeds() {
        servers.replay_random(seed, 1500, |r| (command(r), false));
        // The end state: each key's type, TTL and value in both databases.
        for db in ["0", "1"] {
            servers.both(&["SELECT", db]);
            for k in KEYS {
                for probe in [&["TYPE", k][..], &["TTL", k], &["GETRANGE", k, "0", "-1"]] {
                    let (expected, got) = servers.both(probe);
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&expected),
                        "seed {seed}, db {db}: {probe:?}"
                    );
                }
            }
        }
    }
}
