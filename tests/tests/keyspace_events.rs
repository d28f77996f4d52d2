//! Keyspace notifications against the real binary with several workers: events raised below
//! any command (active expiry, eviction) and on keys of every shard reach a subscriber. The
//! events each command raises are compared with Redis's in `tests/corpus/notifications.txt`.

use std::time::{Duration, Instant};

use warpengine_tests::{info_field, start_warpengine, RawConn, Resp};

/// The (channel, message) of the next pmessage.
fn next_event(c: &mut RawConn) -> (String, String) {
    match Resp::parse(&c.read_reply().expect("a message")) {
        Resp::Array(items) => match &items[..] {
            [Resp::Bulk(kind), _, Resp::Bulk(channel), Resp::Bulk(message)]
                if kind == b"pmessage" =>
            {
                (
                    String::from_utf8_lossy(channel).into_owned(),
                    String::from_utf8_lossy(message).into_owned(),
                )
            }
            other => panic!("not a pmessage: {other:?}"),
        },
        other => panic!("not a pmessage: {other:?}"),
    }
}

fn listen(port: u16, pattern: &str) -> RawConn {
    let mut c = RawConn::connect(port);
    c.send_command(&[b"PSUBSCRIBE", pattern.as_bytes()]);
    c.read_reply().expect("confirmation");
    c
}

#[test]
fn active_expiry_raises_expired_on_every_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    let mut sub = listen(server.port, "__keyevent@0__:expired");
    const KEYS: usize = 40;
    for i in 0..KEYS {
        c.call(&["SET", &format!("key:{i}"), "v", "PX", "20"]);
    }
    // No command touches them again: only the active expiry cycle can raise these.
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < KEYS {
        assert!(
            Instant::now() < deadline,
            "only {} expired events",
            seen.len()
        );
        let (channel, key) = next_event(&mut sub);
        assert_eq!(channel, "__keyevent@0__:expired");
        seen.insert(key);
    }
    assert_eq!(c.call(&["DBSIZE"]).int(), 0);
}

#[test]
fn eviction_raises_evicted_for_each_evicted_key() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "KEe"]);
    let mut sub = listen(server.port, "__keyevent@*__:evicted");
    let used: u64 = info_field(&mut c, "memory", "used_memory").parse().unwrap();
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
    c.call(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 2_000_000).to_string(),
    ]);
    let value = "x".repeat(1000);
    for i in 0..10_000 {
        c.call(&["SET", &format!("k{i}"), &value]);
    }
    let evicted: u64 = info_field(&mut c, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 0, "nothing was evicted");
    c.call(&["CONFIG", "SET", "maxmemory", "0"]);
    for _ in 0..evicted {
        let (channel, key) = next_event(&mut sub);
        assert_eq!(channel, "__keyevent@0__:evicted");
        assert!(key.starts_with('k'), "{key}");
    }
    // And no more than that: the next thing on the connection is the PING's answer.
    sub.send_command(&[b"PING"]);
    assert_eq!(
        Resp::parse(&sub.read_reply().unwrap()),
        Resp::Array(vec![Resp::Bulk(b"pong".to_vec()), Resp::Bulk(Vec::new())])
    );
}

#[test]
fn events_are_off_by_default_and_cost_nothing_to_subscribers() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let mut sub = listen(server.port, "__key*__:*");
    for i in 0..100 {
        c.call(&["SET", &format!("k{i}"), "v"]);
        c.call(&["DEL", &format!("k{i}")]);
    }
    sub.send_command(&[b"PING"]);
    assert_eq!(
        Resp::parse(&sub.read_reply().unwrap()),
        Resp::Array(vec![Resp::Bulk(b"pong".to_vec()), Resp::Bulk(Vec::new())])
    );
}
