//! WORMHOLE end to end: routes, pins moving every database's entry with its TTL, multi-key
//! commands on one shard, AUTO, STATS, errors, pins across kill -9 (same and other thread
//! counts, and after a snapshot), and no write lost or duplicated while a key moves under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warpengine_tests::{
    free_port, start_warpengine, try_start_warpengine_on, RawConn, Resp, TempDir,
};

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

fn shard(c: &mut RawConn, key: &str) -> i64 {
    c.call(&["WORMHOLE", "ROUTE", key]).field("shard").int()
}

/// Two keys whose slots live on different shards (of 4).
fn apart(c: &mut RawConn) -> (String, String) {
    let a = "anchor".to_string();
    let home = shard(c, &a);
    let other = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| shard(c, k) != home)
        .expect("a key on another shard");
    (a, other)
}

#[test]
fn pin_moves_every_database_and_keeps_ttl() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    let (anchor, key) = apart(&mut c);
    c.call(&["SET", &anchor, "a"]);
    c.call(&["SET", &key, "v0", "EX", "1000"]);
    c.call(&["SELECT", "2"]);
    c.call(&["RPUSH", &key, "x", "y"]);
    c.call(&["SELECT", "0"]);
    let slot_shard = shard(&mut c, &key);
    assert_eq!(c.call(&["WORMHOLE", "PIN", &key, &anchor]), Resp::Int(1));
    let route = c.call(&["WORMHOLE", "ROUTE", &key]);
    assert_eq!(route.field("shard").int(), shard(&mut c, &anchor));
    assert_eq!(route.field("slot_shard").int(), slot_shard);
    assert_eq!(route.field("pinned"), Resp::Int(1));
    assert_eq!(route.field("anchor"), bulk(&anchor));
    assert_eq!(c.call(&["GET", &key]), bulk("v0"));
    assert!(c.call(&["TTL", &key]).int() > 990);
    c.call(&["SELECT", "2"]);
    assert_eq!(
        c.call(&["LRANGE", &key, "0", "-1"]),
        Resp::Array(vec![bulk("x"), bulk("y")])
    );
    c.call(&["SELECT", "0"]);
    // Exactly one copy: no shard kept the old entry.
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(2));
    // Multi-key commands on the pair now run on one shard.
    let before = c
        .call(&["WORMHOLE", "STATS"])
        .field("multi_key_one_shard")
        .int();
    c.call(&["MSET", &anchor, "1", &key, "2"]);
    assert_eq!(
        c.call(&["MGET", &anchor, &key]),
        Resp::Array(vec![bulk("1"), bulk("2")])
    );
    let stats = c.call(&["WORMHOLE", "STATS"]);
    assert_eq!(stats.field("multi_key_one_shard").int(), before + 2);
    assert_eq!(stats.field("pins"), Resp::Int(1));
    // Pinning to a pinned key pins to its anchor; an anchor cannot be pinned away.
    c.call(&["WORMHOLE", "PIN", "third", &key]);
    assert_eq!(
        c.call(&["WORMHOLE", "ROUTE", "third"]).field("anchor"),
        bulk(&anchor)
    );
    for (args, err) in [
        (
            vec!["WORMHOLE", "PIN", &anchor[..], "elsewhere"],
            "ERR the key is the anchor of pinned keys",
        ),
        (
            vec!["WORMHOLE", "PIN", &anchor[..], &anchor[..]],
            "ERR a key cannot be pinned to itself",
        ),
        (
            vec!["WORMHOLE", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try WORMHOLE HELP.",
        ),
        (
            vec!["WORMHOLE", "PIN", "x"],
            "ERR wrong number of arguments for 'wormhole|pin' command",
        ),
        (vec!["WORMHOLE", "AUTO", "maybe"], "ERR syntax error"),
        (
            vec!["WORMHOLE", "AUTO", "on", "THRESHOLD", "0"],
            "ERR THRESHOLD",
        ),
    ] {
        let r = c.call(&args);
        assert!(
            matches!(&r, Resp::Error(e) if e.starts_with(err)),
            "{args:?} -> {r:?}"
        );
    }
    assert_eq!(c.call(&["WORMHOLE", "UNPIN", &key]), Resp::Int(1));
    assert_eq!(c.call(&["WORMHOLE", "UNPIN", &key]), Resp::Int(0));
    assert_eq!(shard(&mut c, &key), slot_shard);
    assert_eq!(c.call(&["GET", &key]), bulk("2"));
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(2));
}

#[test]
fn auto_pins_keys_used_together_across_shards() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    let (anchor, key) = apart(&mut c);
    c.call(&["SET", &key, "v"]);
    assert_eq!(
        c.call(&["WORMHOLE", "AUTO", "ON", "THRESHOLD", "3"]),
        Resp::Simple("OK".into())
    );
    for _ in 0..3 {
        c.call(&["MGET", &anchor, &key]);
    }
    assert_eq!(shard(&mut c, &key), shard(&mut c, &anchor));
    let stats = c.call(&["WORMHOLE", "STATS"]);
    assert_eq!(stats.field("auto_pins"), Resp::Int(1));
    assert_eq!(c.call(&["GET", &key]), bulk("v"));
    let cross = stats.field("multi_key_cross_shard").int();
    c.call(&["MGET", &anchor, &key]);
    let stats = c.call(&["WORMHOLE", "STATS"]);
    assert_eq!(stats.field("multi_key_cross_shard").int(), cross);
    // STATS shows the traffic of the fabric per shard pair.
    let Resp::Array(pairs) = stats.field("pairs") else {
        panic!("pairs")
    };
    assert!(!pairs.is_empty());
    let first = &pairs[1];
    assert!(first.field("batches").int() > 0);
    assert!(first.field("hop_p99_us").int() >= first.field("hop_p50_us").int());
}

#[test]
fn no_write_is_lost_or_duplicated_while_a_key_moves() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    let (anchor, key) = apart(&mut c);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (key, stop) = (key.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut acked = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    // A pipeline of 8 INCRs: batches queued before a move runs after it.
                    let mut req = Vec::new();
                    for _ in 0..8 {
                        req.extend(warpengine_tests::encode_command(&[b"INCR", key.as_bytes()]));
                    }
                    c.send(&req);
                    for _ in 0..8 {
                        let r = Resp::parse(&c.read_reply().expect("reply"));
                        assert!(matches!(r, Resp::Int(_)), "{r:?}");
                        acked += 1;
                    }
                }
                acked
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut moves = 0;
    while Instant::now() < deadline {
        c.call(&["WORMHOLE", "PIN", &key, &anchor]);
        c.call(&["WORMHOLE", "UNPIN", &key]);
        moves += 2;
    }
    stop.store(true, Ordering::Relaxed);
    let acked: i64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(c.call(&["GET", &key]).int(), acked, "after {moves} moves");
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(1));
    assert!(moves > 10);
}

#[test]
fn pins_survive_kill_snapshots_and_thread_changes() {
    let dir = TempDir::new("wormhole");
    let port = free_port();
    let start = |threads: &str| {
        try_start_warpengine_on(
            port,
            &[
                "--appendonly",
                "yes",
                "--dir",
                dir.path(),
                "--threads",
                threads,
            ],
        )
        .expect("start")
    };
    let mut server = start("4");
    let mut c = RawConn::connect(port);
    let (anchor, key) = apart(&mut c);
    c.call(&["SET", &key, "v1"]);
    c.call(&["WORMHOLE", "PIN", &key, &anchor]);
    c.call(&["SET", &key, "v2"]);
    server.kill9();
    let check = |c: &mut RawConn, value: &str| {
        assert_eq!(shard(c, &key), shard(c, &anchor));
        assert_eq!(c.call(&["GET", &key]), bulk(value));
        assert_eq!(c.call(&["DBSIZE"]), Resp::Int(1));
    };
    let mut server = start("4");
    let mut c = RawConn::connect(port);
    check(&mut c, "v2");
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    std::thread::sleep(Duration::from_millis(500));
    c.call(&["SET", &key, "v3"]);
    server.kill9();
    let mut server = start("3");
    let mut c = RawConn::connect(port);
    check(&mut c, "v3");
    c.call(&["WORMHOLE", "UNPIN", &key]);
    c.call(&["SET", &key, "v4"]);
    server.kill9();
    let _server = start("4");
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["WORMHOLE", "ROUTE", &key]).field("pinned"),
        Resp::Int(0)
    );
    assert_eq!(c.call(&["GET", &key]), bulk("v4"));
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(1));
}
