//! Pub/Sub against the real binary with several workers: delivery between connections on any
//! workers, one publisher's order kept at every subscriber, patterns, RESP3 pushes beside
//! replies, the output limit that disconnects a subscriber that does not read, and the clients'
//! own Pub/Sub APIs (redis-cli, redis-py).

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use warpengine_tests::{
    info_field, run_python, start_warpengine, start_with_output_limit, RawConn, Resp,
};

fn info_number(c: &mut RawConn, section: &str, field: &str) -> u64 {
    info_field(c, section, field).parse().expect("a number")
}

fn message(reply: Vec<u8>) -> Vec<Vec<u8>> {
    match Resp::parse(&reply) {
        Resp::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Resp::Bulk(b) => b,
                Resp::Int(n) => n.to_string().into_bytes(),
                other => panic!("unexpected {other:?}"),
            })
            .collect(),
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn every_subscriber_gets_each_publishers_messages_in_order() {
    let server = start_warpengine(&["--threads", "4"]);
    const SUBSCRIBERS: usize = 8;
    const MESSAGES: usize = 500;
    let mut subs: Vec<RawConn> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut c = RawConn::connect(server.port);
            if i % 2 == 0 {
                c.send_command(&[b"SUBSCRIBE", b"news"]);
            } else {
                c.send_command(&[b"PSUBSCRIBE", b"ne*"]);
            }
            c.read_reply().expect("confirmation");
            c
        })
        .collect();
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let port = server.port;
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                for n in 0..MESSAGES {
                    let body = format!("{p}:{n}");
                    let receivers = c.call(&["PUBLISH", "news", &body]).int();
                    assert_eq!(receivers, SUBSCRIBERS as i64);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher");
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let mut next = [0usize; 2];
        for _ in 0..2 * MESSAGES {
            let parts = message(sub.read_reply().expect("message"));
            let body = String::from_utf8(parts.last().unwrap().clone()).unwrap();
            if i % 2 == 0 {
                assert_eq!(parts[0], b"message");
            } else {
                assert_eq!(parts[0], b"pmessage");
                assert_eq!(parts[1], b"ne*");
            }
            let (p, n) = body.split_once(':').unwrap();
            let p: usize = p.parse().unwrap();
            assert_eq!(
                n.parse::<usize>().unwrap(),
                next[p],
                "subscriber {i} publisher {p}"
            );
            next[p] += 1;
        }
    }
}

#[test]
fn resp3_pushes_arrive_beside_replies() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut sub = RawConn::connect(server.port);
    sub.command(&[b"HELLO", b"3"]);
    assert_eq!(
        sub.command(&[b"SUBSCRIBE", b"c"]),
        b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    );
    // Still a normal client: commands answer as usual.
    assert_eq!(sub.command(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    let mut publisher = RawConn::connect(server.port);
    assert_eq!(publisher.call(&["PUBLISH", "c", "hello"]), Resp::Int(1));
    assert_eq!(
        sub.read_reply().unwrap(),
        b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhello\r\n"
    );
    assert_eq!(sub.command(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // CLIENT REPLY OFF silences replies, not pushes: the confirmations still arrive, as
    // Redis's, and GET's reply does not.
    sub.send_command(&[b"CLIENT", b"REPLY", b"OFF"]);
    sub.send_command(&[b"GET", b"k"]);
    assert_eq!(
        sub.command(&[b"UNSUBSCRIBE", b"c"]),
        b">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"
    );
    assert_eq!(
        sub.command(&[b"PSUBSCRIBE", b"c*"]),
        b">3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:1\r\n"
    );
}

/// In RESP2 too, CLIENT REPLY OFF does not silence (un)subscribe confirmations, as Redis's
/// (its keyspace notification tests subscribe that way).
#[test]
fn resp2_subscribe_confirmations_come_with_replies_off() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut sub = RawConn::connect(server.port);
    sub.send_command(&[b"CLIENT", b"REPLY", b"OFF"]);
    assert_eq!(
        sub.command(&[b"PSUBSCRIBE", b"*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"
    );
    let mut publisher = RawConn::connect(server.port);
    publisher.call(&["PUBLISH", "c", "m"]);
    assert_eq!(
        sub.read_reply().unwrap(),
        b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nm\r\n"
    );
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_its_output_limit() {
    let (server, mut admin) = start_with_output_limit("pubsub 1mb 256kb 60");
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::io::Write::write_all(&mut sub, b"SUBSCRIBE flood\r\n").unwrap();
    let mut confirm = [0u8; 64];
    let _ = sub.read(&mut confirm).unwrap();
    let before = info_number(&mut admin, "memory", "used_memory");
    let payload = "x".repeat(16 * 1024);
    // 64 MB published; the subscriber reads nothing. Its socket buffers take a few MB, then the
    // queue passes 1 MB and the server drops it.
    let mut published = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_number(&mut admin, "clients", "connected_clients") > 1 {
        assert!(
            Instant::now() < deadline,
            "the subscriber was never disconnected"
        );
        for _ in 0..64 {
            admin.call(&["PUBLISH", "flood", &payload]);
            published += payload.len();
        }
        let used = info_number(&mut admin, "memory", "used_memory");
        assert!(
            used < before + 8 * 1024 * 1024,
            "{used} after {published} bytes published"
        );
    }
    // Nobody is subscribed any more.
    assert_eq!(admin.call(&["PUBLISH", "flood", "x"]), Resp::Int(0));
}

#[test]
fn redis_cli_subscribe_prints_messages() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut cli = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "SUBSCRIBE", "cli"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut publisher = RawConn::connect(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut delivered = false;
    while !delivered && Instant::now() < deadline {
        delivered = publisher.call(&["PUBLISH", "cli", "from-the-test"]) == Resp::Int(1);
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    cli.kill().expect("kill redis-cli");
    let mut out = String::new();
    cli.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    cli.wait().expect("redis-cli ended");
    assert!(delivered, "redis-cli never subscribed: {out}");
    assert!(out.contains("subscribe\ncli\n1"), "{out}");
    assert!(out.contains("message\ncli\nfrom-the-test"), "{out}");
}

#[test]
fn redis_py_pubsub_and_run_in_thread() {
    let server = start_warpengine(&["--threads", "2"]);
    let script = r#"
import sys, time, redis
port = int(sys.argv[1])
for protocol in (2, 3):
    r = redis.Redis(port=port, protocol=protocol, decode_responses=True)
    p = r.pubsub()
    p.subscribe("a")
    p.psubscribe("b*")
    assert p.get_message(timeout=2)["type"] == "subscribe"
    assert p.get_message(timeout=2)["type"] == "psubscribe"
    assert r.publish("a", "one") == 1
    assert r.publish("bee", "two") == 1
    m1 = p.get_message(timeout=2)
    m2 = p.get_message(timeout=2)
    assert (m1["type"], m1["channel"], m1["data"]) == ("message", "a", "one"), m1
    assert (m2["type"], m2["pattern"], m2["data"]) == ("pmessage", "b*", "two"), m2
    assert r.pubsub_numsub("a") == [("a", 1)]
    assert r.pubsub_numpat() == 1
    p.close()
    got = []
    q = r.pubsub()
    q.subscribe(**{"t": lambda m: got.append(m["data"])})
    worker = q.run_in_thread(sleep_time=0.01)
    # subscribe() does not wait for the server: publish once it counts the subscriber (the
    # SUBSCRIBE and the PUBLISHes travel on different connections).
    deadline = time.time() + 5
    while r.pubsub_numsub("t") != [("t", 1)] and time.time() < deadline:
        time.sleep(0.01)
    for i in range(5):
        r.publish("t", str(i))
    deadline = time.time() + 5
    while len(got) < 5 and time.time() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert got == ["0", "1", "2", "3", "4"], got
print("redis-py pubsub ok")
"#;
    let (ok, text) = run_python(&["-c", script, &server.port.to_string()]);
    assert!(ok && text.contains("redis-py pubsub ok"), "{text}");
}

/// INFO's Pub/Sub counts; CLIENT LIST's flags and counts for subscribers, a transaction, a
/// blocked client and a monitor (as redis-server 7.0.15 shows them); CLIENT KILL TYPE pubsub.
#[test]
fn client_list_shows_subscribers_transactions_blocked_clients_and_monitors() {
    let server = start_warpengine(&["--threads", "2"]);
    let named = |name: &str| {
        let mut c = RawConn::connect(server.port);
        c.call(&["CLIENT", "SETNAME", name]);
        c
    };
    let mut sub = named("sub");
    sub.send_command(&[b"SUBSCRIBE", b"a", b"b"]);
    sub.send_command(&[b"PSUBSCRIBE", b"p*"]);
    for _ in 0..3 {
        sub.read_reply().unwrap();
    }
    let mut ssub = named("ssub");
    ssub.command(&[b"SSUBSCRIBE", b"s1"]);
    let mut multi = named("multi");
    multi.call(&["MULTI"]);
    multi.call(&["SET", "k", "v"]);
    multi.call(&["GET", "k"]);
    let mut blocked = named("blocked");
    blocked.send_command(&[b"BLPOP", b"nothing", b"0"]);
    let mut monitor = named("monitor");
    monitor.call(&["MONITOR"]);
    let mut admin = RawConn::connect(server.port);
    for (field, count) in [
        ("pubsub_channels", "2"),
        ("pubsub_patterns", "1"),
        ("pubsubshard_channels", "1"),
    ] {
        assert_eq!(info_field(&mut admin, "stats", field), count, "{field}");
    }
    let expected = [
        ("sub", "flags=P db=0 sub=2 psub=1 ssub=0 multi=-1"),
        ("ssub", "flags=P db=0 sub=0 psub=0 ssub=1 multi=-1"),
        ("multi", "flags=x db=0 sub=0 psub=0 ssub=0 multi=2"),
        ("blocked", "flags=b db=0 sub=0 psub=0 ssub=0 multi=-1"),
        ("monitor", "flags=O db=0 sub=0 psub=0 ssub=0 multi=-1"),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Resp::Bulk(list) = admin.call(&["CLIENT", "LIST"]) else {
            panic!("CLIENT LIST")
        };
        let list = String::from_utf8(list).unwrap();
        let all = expected.iter().all(|(name, fields)| {
            list.lines()
                .any(|l| l.contains(&format!(" name={name} ")) && l.contains(fields))
        });
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        admin.call(&["CLIENT", "KILL", "TYPE", "pubsub"]),
        Resp::Int(2)
    );
    assert_eq!(
        admin.call(&["CLIENT", "KILL", "TYPE", "replica"]),
        Resp::Int(0)
    );
}
