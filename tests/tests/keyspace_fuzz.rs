//! Randomized differential test of the keyspace: the same pseudo-random sequence of commands
//! over a few keys in two databases (writes with and without expiries, TTL changes, renames,
//! copies, moves, SWAPDB, type clashes) goes to a real redis-server and to WarpEngine, and
//! every reply must be byte for byte the same. Expiries are long (hours) so that no key lapses
//! during a run and TTL in seconds reads the same on both.

use warpengine_tests::{redis_available, start_redis, start_warpengine, RawConn};

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5", "{t}a", "{t}b"];

/// One random command, as arguments.
fn command(r: &mut Random) -> Vec<String> {
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
    if !redis_available() {
        assert!(
            std::env::var("WARP_SKIP_DIFFERENTIAL").is_ok(),
            "redis-server is not installed (WARP_SKIP_DIFFERENTIAL=1 skips this test)"
        );
        return;
    }
    let redis = start_redis(&[]);
    let warp = start_warpengine(&[]);
    let mut r_conn = RawConn::connect(redis.port);
    let mut w_conn = RawConn::connect(warp.port);
    for seed in 1..=4u64 {
        let mut r = Random(seed);
        let mut history: Vec<String> = Vec::new();
        for conn in [&mut r_conn, &mut w_conn] {
            conn.command(&[b"FLUSHALL"]);
            conn.command(&[b"SELECT", b"0"]);
        }
        for _ in 0..1500 {
            let args = command(&mut r);
            let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            history.push(args.join(" "));
            let expected = r_conn.command(&bytes);
            let got = w_conn.command(&bytes);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "seed {seed}, after:\n{}",
                history[history.len().saturating_sub(25)..].join("\n")
            );
        }
        // The end state: each key's type, TTL and value in both databases.
        for db in ["0", "1"] {
            for conn in [&mut r_conn, &mut w_conn] {
                conn.command(&[b"SELECT", db.as_bytes()]);
            }
            for k in KEYS {
                for probe in [&["TYPE", k][..], &["TTL", k], &["GETRANGE", k, "0", "-1"]] {
                    let bytes: Vec<&[u8]> = probe.iter().map(|a| a.as_bytes()).collect();
                    assert_eq!(
                        String::from_utf8_lossy(&w_conn.command(&bytes)),
                        String::from_utf8_lossy(&r_conn.command(&bytes)),
                        "seed {seed}, db {db}: {probe:?}"
                    );
                }
            }
        }
    }
}
