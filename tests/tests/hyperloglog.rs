//! HyperLogLog end to end: the `redis` crate's PF* calls and redis-cli, restarts through the
//! log and through a snapshot (multi-shard PFMERGE included), and PFCOUNT's cache update
//! seen by another connection's client-side cache as Redis shows it. Replies are compared
//! with the corpus (`tests/corpus/hyperloglog.txt`) and the randomized test
//! (`hyperloglog_fuzz.rs`).

use redis::Commands;
use warpengine_tests::{
    free_port, redis_available, start_redis, start_warpengine, try_start_warpengine_on, RawConn,
    Resp, TempDir,
};

#[test]
fn the_redis_crate_adds_counts_and_merges() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = redis::Client::open(server.url())
        .expect("client")
        .get_connection()
        .expect("connection");
    let added: bool = c.pfadd("rs:h1", &["a", "b", "c"]).expect("pfadd");
    assert!(added);
    let again: bool = c.pfadd("rs:h1", "a").expect("pfadd again");
    assert!(!again);
    let _: bool = c.pfadd("rs:h2", &["c", "d"]).expect("pfadd h2");
    assert_eq!(c.pfcount::<_, u64>("rs:h1").expect("pfcount"), 3);
    assert_eq!(c.pfcount::<_, u64>(&["rs:h1", "rs:h2"]).expect("union"), 4);
    let _: () = c.pfmerge("rs:m", &["rs:h1", "rs:h2"]).expect("pfmerge");
    assert_eq!(c.pfcount::<_, u64>("rs:m").expect("merged"), 4);
    // An HLL is a string: its bytes start with the magic.
    let bytes: Vec<u8> = c.get("rs:m").expect("get");
    assert_eq!(&bytes[..4], b"HYLL");
    let _: () = c.set("rs:plain", "text").expect("set");
    let err = c.pfcount::<_, u64>("rs:plain").expect_err("not an HLL");
    assert!(err.to_string().contains("not a valid HyperLogLog"), "{err}");
}

#[test]
fn redis_cli_adds_counts_and_debugs() {
    let server = start_warpengine(&[]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &server.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["PFADD", "cli:h", "a", "b", "c", "d"]), "1\n");
    assert_eq!(cli(&["PFCOUNT", "cli:h"]), "4\n");
    assert_eq!(cli(&["PFDEBUG", "ENCODING", "cli:h"]), "sparse\n");
    assert_eq!(cli(&["PFDEBUG", "TODENSE", "cli:h"]), "1\n");
    assert_eq!(cli(&["PFDEBUG", "ENCODING", "cli:h"]), "dense\n");
    assert_eq!(cli(&["PFMERGE", "cli:m", "cli:h", "cli:none"]), "OK\n");
    assert_eq!(cli(&["PFCOUNT", "cli:m", "cli:h"]), "4\n");
    assert_eq!(cli(&["STRLEN", "cli:m"]), "12304\n");
    assert_eq!(cli(&["PFSELFTEST"]), "OK\n");
}

fn bulk(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    match c.call(args) {
        Resp::Bulk(b) => b,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn hyperloglogs_survive_restarts_through_the_log_and_snapshots() {
    let dir = TempDir::new("hll-persist");
    let port = free_port();
    // The log replays PFADD as sent, so promotion depends on the limit at replay (as with
    // Redis's AOF): the limit is part of the server's configuration here.
    let args = [
        "--appendonly",
        "yes",
        "--threads",
        "2",
        "--hll-sparse-max-bytes",
        "40",
        "--dir",
        dir.path(),
    ];
    let mut server = try_start_warpengine_on(port, &args).expect("start");
    let mut c = RawConn::connect(port);
    // Keys on different shards, sparse and dense (promoted by size), merged across shards.
    let many: Vec<String> = (0..3000).map(|i| format!("e{i}")).collect();
    let mut pfadd = vec!["PFADD", "hll:big"];
    pfadd.extend(many.iter().map(String::as_str));
    let ok = Resp::Simple("OK".into());
    let one = Resp::Int(1);
    let writes: [(&[&str], &Resp); 8] = [
        (&pfadd, &one),
        (&["PFADD", "hll:small", "a", "b", "c"], &one),
        (
            &["PFADD", "hll:tiny", "1", "2", "3", "4", "5", "6", "7", "8"],
            &one,
        ),
        (&["PFMERGE", "hll:merged", "hll:small", "hll:tiny"], &ok),
        (&["PFMERGE", "hll:msparse", "hll:small", "hll:none"], &ok),
        (&["PFADD", "hll:todense", "x"], &one),
        (&["PFDEBUG", "TODENSE", "hll:todense"], &one),
        (&["EXPIRE", "hll:small", "1000"], &one),
    ];
    for (command, reply) in writes {
        assert_eq!(&c.call(command), reply, "{command:?}");
    }
    assert_eq!(
        c.call(&["PFDEBUG", "ENCODING", "hll:tiny"]),
        Resp::Simple("dense".into())
    );
    assert_eq!(
        c.call(&["PFDEBUG", "ENCODING", "hll:msparse"]),
        Resp::Simple("sparse".into())
    );
    assert_eq!(c.call(&["PFMERGE", "hll:merged", "hll:big"]), ok);
    let keys = [
        "hll:big",
        "hll:small",
        "hll:tiny",
        "hll:merged",
        "hll:msparse",
        "hll:todense",
    ];
    let before = values(&mut c, &keys);
    server.kill9();

    // Replayed from the log: the same bytes (no PFCOUNT ran, so no cached count differs).
    let mut server = try_start_warpengine_on(port, &args).expect("restart");
    let mut c = RawConn::connect(port);
    assert_same_values(&keys, &before, &values(&mut c, &keys));
    assert!(matches!(c.call(&["TTL", "hll:small"]), Resp::Int(t) if t > 990));
    let counts: Vec<Resp> = keys.iter().map(|k| c.call(&["PFCOUNT", k])).collect();
    assert!(matches!(counts[0], Resp::Int(n) if (2900..3100).contains(&n)));

    // From a snapshot: the cached counts PFCOUNT wrote are kept too.
    let cached = values(&mut c, &keys);
    assert_eq!(c.call(&["SAVE"]), ok);
    server.kill9();
    let _server = try_start_warpengine_on(port, &args).expect("restart after SAVE");
    let mut c = RawConn::connect(port);
    assert_same_values(&keys, &cached, &values(&mut c, &keys));
    let recounted: Vec<Resp> = keys.iter().map(|k| c.call(&["PFCOUNT", k])).collect();
    assert_eq!(counts, recounted);
}

fn values(c: &mut RawConn, keys: &[&str]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| bulk(c, &["GET", k])).collect()
}

/// Compares values key by key, naming the key instead of printing 12 KB of bytes.
fn assert_same_values(keys: &[&str], before: &[Vec<u8>], after: &[Vec<u8>]) {
    for ((key, b), a) in keys.iter().zip(before).zip(after) {
        assert!(
            b == a,
            "{key}: {} bytes before, {} after, not the same",
            b.len(),
            a.len()
        );
    }
}

/// What a RESP3 connection tracking keys receives by the time its PING is answered: any
/// invalidation pushes, then the PONG.
fn pushes_before_pong(c: &mut RawConn) -> Vec<Vec<u8>> {
    c.send_command(&[b"PING"]);
    let mut got = Vec::new();
    loop {
        let reply = c.read_reply().expect("reply");
        if reply == b"+PONG\r\n" {
            return got;
        }
        got.push(reply);
    }
}

/// PFCOUNT is a read, but when it caches the count it changes the value: Redis signals the
/// key as modified, so a client caching it is told; a cached count changes nothing.
fn pfcount_tracking_scenario(port: u16) -> Vec<Vec<Vec<u8>>> {
    let mut tracker = RawConn::connect(port);
    tracker.send_command(&[b"HELLO", b"3"]);
    tracker.read_reply().expect("hello");
    assert_eq!(
        tracker.command(&[b"CLIENT", b"TRACKING", b"ON"]),
        b"+OK\r\n"
    );
    let mut writer = RawConn::connect(port);
    assert_eq!(writer.call(&["PFADD", "trk:h", "a", "b"]), Resp::Int(1));
    let mut seen = Vec::new();
    for _ in 0..2 {
        tracker.command(&[b"GET", b"trk:h"]);
        assert_eq!(writer.call(&["PFCOUNT", "trk:h"]), Resp::Int(2));
        seen.push(pushes_before_pong(&mut tracker));
    }
    seen
}

#[test]
fn pfcount_updating_its_cache_invalidates_client_caches_as_in_redis() {
    let warp = start_warpengine(&["--threads", "2"]);
    let got = pfcount_tracking_scenario(warp.port);
    let invalidation = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\ntrk:h\r\n".to_vec();
    assert_eq!(got, vec![vec![invalidation], vec![]]);
    if redis_available() {
        let redis = start_redis(&[]);
        assert_eq!(pfcount_tracking_scenario(redis.port), got);
    }
}
