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
    // No limit first, then the count: a worker's tick may still evict between the two
    // otherwise (memory over the limit after the last SET), with its event (seen in CI).
    c.call(&["CONFIG", "SET", "maxmemory", "0"]);
    let evicted: u64 = info_field(&mut c, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 0, "nothing was evicted");
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

#[test]
fn redis_cli_psubscribe_prints_keyspace_events() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let out = with_redis_cli(server.port, &["PSUBSCRIBE", "__keyevent@0__:*"], |ready| {
        if !ready(&mut c) {
            return;
        }
        c.call(&["SET", "from-cli-test", "v"]);
        c.call(&["EXPIRE", "from-cli-test", "100"]);
    });
    assert!(
        out.contains("pmessage\n__keyevent@0__:*\n__keyevent@0__:set\nfrom-cli-test"),
        "{out}"
    );
    assert!(
        out.contains("__keyevent@0__:expire\nfrom-cli-test"),
        "{out}"
    );
}

/// Runs redis-cli with `args` (a subscription) while `act` runs; what it printed. `act` gets a
/// check that waits until the subscription is registered (false: it never was).
fn with_redis_cli(
    port: u16,
    args: &[&str],
    act: impl FnOnce(&dyn Fn(&mut RawConn) -> bool),
) -> String {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut cli = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let ready = |c: &mut RawConn| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let n: u64 = info_field(c, "stats", "pubsub_patterns")
                .parse()
                .unwrap_or(0);
            let m: u64 = info_field(c, "stats", "pubsub_channels")
                .parse()
                .unwrap_or(0);
            if n + m > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    act(&ready);
    std::thread::sleep(Duration::from_millis(200));
    cli.kill().expect("kill redis-cli");
    let mut out = String::new();
    cli.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    cli.wait().expect("redis-cli ended");
    out
}

#[test]
fn the_redis_crate_and_redis_py_receive_keyspace_events() {
    let server = start_warpengine(&["--threads", "2"]);
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "Kl"])
        .query(&mut con)
        .unwrap();
    let mut sub = client.get_connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _: i64 = redis::cmd("RPUSH")
        .arg("rs-list")
        .arg("a")
        .query(&mut con)
        .unwrap();
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "__keyspace@0__:rs-list");
    assert_eq!(msg.get_payload::<String>().unwrap(), "rpush");

    let script = format!(
        r#"
import redis
r = redis.Redis(port={port})
p = r.pubsub()
p.psubscribe("__keyspace@0__:py-*")
p.get_message(timeout=5)
r.lpush("py-list", "x")
m = p.get_message(timeout=5)
assert m is not None and m["channel"] == b"__keyspace@0__:py-list" and m["data"] == b"lpush", m
print("ok")
"#,
        port = server.port
    );
    let (ok, out) = warpengine_tests::run_python(&["-c", &script]);
    assert!(ok, "{out}");
}

/// A maxmemory set below the memory in use evicts at once, as Redis's CONFIG SET does: the
/// evicted event comes before any write (Redis's pubsub unit waits for it).
#[test]
fn config_set_maxmemory_evicts_at_once() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "Ee"]);
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let mut sub = listen(server.port, "__keyevent@0__:evicted");
    c.call(&["SET", "foo", "bar"]);
    c.call(&["CONFIG", "SET", "maxmemory", "1"]);
    assert_eq!(
        next_event(&mut sub),
        ("__keyevent@0__:evicted".to_string(), "foo".to_string())
    );
    c.call(&["CONFIG", "SET", "maxmemory", "0"]);
}
