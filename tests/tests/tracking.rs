//! Client-side caching (CLIENT TRACKING) against the real binary with several workers.
//!
//! `invalidations_match_redis` plays scenarios over several connections on a real redis-server
//! and on WarpEngine and compares every frame each connection receives, pushes included: after
//! each step every connection is sent a PING and read up to its answer, so a frame a step
//! caused anywhere is seen before the next step. Client ids differ between the servers and are
//! written as `#NAME` on both sides.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use warpengine_tests::{
    info_field, redis_available, start_redis, start_warpengine, RawConn, Resp, ServerProcess,
};

/// Steps: `CONN command args...`, `sleep SECONDS`. `#NAME` in an argument is NAME's client id.
const SCENARIOS: &[&str] = &[
    // Default mode, RESP3 pushes on the tracking connection itself.
    "A hello 3
A client tracking on
A get k1
A mget k2 k3
B set k1 v
B set k1 v2
B mset k2 x k3 y
A get k1
A set k1 mine
A get k1
A client tracking on noloop
A set k1 mine2
A get k1
B del k1
A get k4
B flushall
A get k5
B set k5 1 px 50
sleep 0.3
B get k5
A client tracking off
B set k4 again",
    // OPTIN / OPTOUT.
    "A hello 3
A client tracking on optin
A get o1
A client caching yes
A get o2
B set o1 1
B set o2 1
A client tracking off
A client tracking on optout
A client caching no
A get p1
A get p2
B mset p1 1 p2 2
A client tracking off",
    // A script that calls a read-only command tracks its declared keys (not the keys it read).
    "A hello 3
A client tracking on
A eval redis.call('set','key3','bar') 2 key1 key2
B mset key2 2 key1 2
A eval redis.call('get','key3') 2 key1 key2
B mset key2 2 key1 2
A eval_ro redis.call('ping') 2 key1 key2
B mset key2 2 key1 2
A eval_ro redis.call('get','key1') 2 key1 key2
B mset key2 3 key1 3
A client tracking off",
    // A script's BCAST invalidations: one message per prefix for the whole script.
    "A hello 3
A client tracking on bcast prefix a: prefix b:
B eval redis.call('incr','a:1');redis.call('incr','a:2');redis.call('incr','b:1');redis.call('incr','b:2');redis.call('incr','c:1') 0
A client tracking off",
    // BCAST, prefixes, NOLOOP, keys grouped per prefix.
    "A hello 3
A client tracking on bcast prefix user: prefix obj:
B set user:1 a
B mset user:2 b obj:1 c other d
B del other
A set user:3 mine
A client tracking off
A client tracking on bcast noloop
B set anything 1
A set mine 1
A client tracking off",
    // REDIRECT to a RESP2 subscriber, to a RESP3 client, to a client that has gone.
    "R subscribe __redis__:invalidate
A client tracking on redirect #R
A get k1
B set k1 v
A get k2
A set k2 mine
B flushdb
A client tracking on redirect #R bcast
A client tracking off
A client tracking on redirect #R bcast noloop prefix a
B set a1 1
A set a2 1
A mset a3 1 b1 1
A client tracking off
T hello 3
A client tracking on redirect #T
A get k4
B set k4 v
T quit
A get k5
B set k5 v
A client trackinginfo
A hello 3
A get k6
B set k6 v
A client trackinginfo",
];

struct Side {
    _server: ServerProcess,
    port: u16,
    conns: BTreeMap<String, (RawConn, u64)>,
    /// Every connection's id, gone ones included.
    ids: Vec<(String, u64)>,
}

impl Side {
    fn conn(&mut self, name: &str) -> &mut (RawConn, u64) {
        let port = self.port;
        let ids = &mut self.ids;
        self.conns.entry(name.to_string()).or_insert_with(|| {
            let mut c = RawConn::connect(port);
            let id = c.call(&["CLIENT", "ID"]).int() as u64;
            ids.push((name.to_string(), id));
            (c, id)
        })
    }

    /// Runs one step; what every connection received, ids written as `#NAME`.
    fn step(&mut self, name: &str, args: &[&str]) -> Vec<(String, String)> {
        self.conn(name);
        let ids = self.ids.clone();
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix('#') {
                Some(n) => ids
                    .iter()
                    .find(|(m, _)| m == n)
                    .map(|(_, id)| id.to_string())
                    .unwrap_or_else(|| panic!("no connection {n}")),
                None => a.to_string(),
            })
            .collect();
        let (c, _) = self.conn(name);
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        c.send_command(&bytes);
        let mut got = Vec::new();
        let quits = args[0].eq_ignore_ascii_case("quit");
        let reply = c.read_reply().unwrap_or_default();
        got.push((
            name.to_string(),
            String::from_utf8_lossy(&reply).into_owned(),
        ));
        if quits {
            self.conns.remove(name);
            // Let the server see it gone before the next step.
            std::thread::sleep(Duration::from_millis(100));
        }
        for (n, (c, _)) in self.conns.iter_mut() {
            c.send_command(&[b"PING"]);
            loop {
                let frame = c.read_reply().expect("a frame");
                let pong = frame == b"+PONG\r\n" || frame == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
                if pong {
                    break;
                }
                got.push((n.clone(), String::from_utf8_lossy(&frame).into_owned()));
            }
        }
        // Ids as names, on both sides: a reply that is an id, and the ids in HELLO's reply,
        // TRACKINGINFO's redirect and the broken-redirect push.
        for (n, id) in &ids {
            for (_, text) in got.iter_mut() {
                if *text == format!(":{id}\r\n") {
                    *text = format!(":#{n}\r\n");
                }
                for field in ["$2\r\nid", "redirect", "tracking-redir-broken"] {
                    *text = text.replace(
                        &format!("{field}\r\n:{id}\r\n"),
                        &format!("{field}\r\n:#{n}\r\n"),
                    );
                }
            }
        }
        got
    }
}

#[test]
fn invalidations_match_redis() {
    if !redis_available() {
        assert!(
            std::env::var("WARP_SKIP_DIFFERENTIAL").is_ok(),
            "redis-server is not installed (WARP_SKIP_DIFFERENTIAL=1 skips this test)"
        );
        return;
    }
    let mut mismatches = Vec::new();
    for (n, scenario) in SCENARIOS.iter().enumerate() {
        let start = |s: ServerProcess| Side {
            port: s.port,
            _server: s,
            conns: BTreeMap::new(),
            ids: Vec::new(),
        };
        let mut redis = start(start_redis(&[]));
        let mut warp = start(start_warpengine(&["--threads", "4"]));
        for line in scenario.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words[0] == "sleep" {
                std::thread::sleep(Duration::from_secs_f64(words[1].parse().unwrap()));
                continue;
            }
            let expected = redis.step(words[0], &words[1..]);
            let got = warp.step(words[0], &words[1..]);
            if expected != got {
                mismatches.push(format!(
                    "scenario {n}, {line}:\n    redis: {expected:?}\n    warp:  {got:?}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn push_keys(frame: &[u8]) -> Vec<String> {
    match Resp::parse(&frame.replace_first_push()) {
        Resp::Array(items) => match &items[..] {
            [Resp::Bulk(kind), Resp::Array(keys)] if kind == b"invalidate" => keys
                .iter()
                .map(|k| match k {
                    Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("not a key: {other:?}"),
                })
                .collect(),
            other => panic!("not an invalidation: {other:?}"),
        },
        other => panic!("not an invalidation: {other:?}"),
    }
}

/// The test library parses RESP2 types; a push is an array with another first byte.
trait PushAsArray {
    fn replace_first_push(&self) -> Vec<u8>;
}

impl PushAsArray for [u8] {
    fn replace_first_push(&self) -> Vec<u8> {
        let mut v = self.to_vec();
        if v.first() == Some(&b'>') {
            v[0] = b'*';
        }
        v
    }
}

fn tracking_conn(port: u16) -> RawConn {
    let mut c = RawConn::connect(port);
    c.send_command(&[b"HELLO", b"3"]);
    c.read_reply().expect("hello");
    assert_eq!(c.command(&[b"CLIENT", b"TRACKING", b"ON"]), b"+OK\r\n");
    c
}

#[test]
fn expiry_and_eviction_invalidate_on_every_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut writer = RawConn::connect(server.port);
    let mut reader = tracking_conn(server.port);
    const KEYS: usize = 40;
    let mut seen = std::collections::HashSet::new();
    for i in 0..KEYS {
        // Long enough that the GET below finds it (a key read after it expired is
        // remembered but never invalidated, as in Redis).
        writer.call(&["SET", &format!("exp:{i}"), "v", "PX", "300"]);
        reader.send_command(&[b"GET", format!("exp:{i}").as_bytes()]);
        // On a slow machine the first keys expire while later ones are read: their
        // invalidations may come before this GET's reply.
        loop {
            let frame = reader.read_reply().expect("a reply");
            if frame.first() != Some(&b'>') {
                break;
            }
            seen.extend(push_keys(&frame));
        }
    }
    // Nobody touches them again: active expiry alone must tell the reader.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < KEYS {
        assert!(
            Instant::now() < deadline,
            "{} of {KEYS} invalidated",
            seen.len()
        );
        seen.extend(push_keys(&reader.read_reply().expect("a push")));
    }

    // Eviction.
    let used: u64 = info_field(&mut writer, "memory", "used_memory")
        .parse()
        .unwrap();
    for i in 0..200 {
        reader.command(&[b"GET", format!("ev:{i}").as_bytes()]);
    }
    writer.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
    writer.call(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 1_000_000).to_string(),
    ]);
    let value = "x".repeat(1000);
    for i in 0..5_000 {
        writer.call(&["SET", &format!("fill:{i}"), &value]);
    }
    for i in 0..200 {
        // Each read key was created by this SET (an invalidation, not counted below).
        writer.call(&["SET", &format!("ev:{i}"), "v"]);
    }
    writer.call(&["CONFIG", "SET", "maxmemory", "0"]);
    let evicted: u64 = info_field(&mut writer, "stats", "evicted_keys")
        .parse()
        .unwrap();
    assert!(evicted > 0);
    // The SETs invalidated all 200 read keys; the reader received them (and nothing is left
    // over before its PING's answer).
    let mut invalidated = std::collections::HashSet::new();
    reader.send_command(&[b"PING"]);
    loop {
        let frame = reader.read_reply().expect("a frame");
        if frame == b"+PONG\r\n" {
            break;
        }
        invalidated.extend(push_keys(&frame));
    }
    assert_eq!(invalidated.len(), 200);
}

#[test]
fn the_table_stays_within_tracking_table_max_keys() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    admin.call(&["CONFIG", "SET", "tracking-table-max-keys", "100"]);
    let mut reader = tracking_conn(server.port);
    for i in 0..1_000 {
        reader.send_command(&[b"GET", format!("key:{i}").as_bytes()]);
    }
    // Keys forgotten to stay within the limit are invalidated: the reader hears of them.
    reader.send_command(&[b"PING"]);
    let mut replies = 0;
    let mut invalidated = 0;
    loop {
        let frame = reader.read_reply().expect("a frame");
        if frame.first() == Some(&b'>') {
            invalidated += push_keys(&frame).len();
        } else if frame == b"+PONG\r\n" {
            break;
        } else {
            replies += 1;
        }
    }
    assert_eq!(replies, 1_000);
    // Invalidations a read causes follow the replies of its pipeline.
    reader.send_command(&[b"PING"]);
    loop {
        let frame = reader.read_reply().expect("a frame");
        if frame == b"+PONG\r\n" {
            break;
        }
        invalidated += push_keys(&frame).len();
    }
    let keys: u64 = info_field(&mut admin, "stats", "tracking_total_keys")
        .parse()
        .unwrap();
    assert!(keys <= 100, "{keys} keys tracked");
    assert_eq!(invalidated, 900);
    assert_eq!(info_field(&mut admin, "clients", "tracking_clients"), "1");
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut admin, "clients", "tracking_clients") != "0" {
        assert!(Instant::now() < deadline, "tracking client not forgotten");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A limit lowered below the keys already tracked is enforced by the cron, with no new key
/// tracked: the clients hear of the keys forgotten (Redis's tracking unit, 'Tracking gets
/// notification on tracking table key eviction').
#[test]
fn a_lowered_tracking_table_limit_applies_without_new_reads() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut reader = tracking_conn(server.port);
    assert_eq!(
        reader.command(&[b"MGET", b"key1{t}", b"key2{t}", b"key3{t}"]),
        b"*3\r\n_\r\n_\r\n_\r\n"
    );
    admin.call(&["CONFIG", "SET", "tracking-table-max-keys", "1"]);
    let mut invalidated = Vec::new();
    while invalidated.len() < 2 {
        invalidated.extend(push_keys(&reader.read_reply().expect("an invalidation")));
    }
    assert_eq!(invalidated.len(), 2, "{invalidated:?}");
    assert_eq!(info_field(&mut admin, "stats", "tracking_total_keys"), "1");
}

#[test]
fn redis_py_and_the_redis_crate_see_invalidations() {
    let server = start_warpengine(&["--threads", "2"]);
    // The redis crate: REDIRECT to a RESP2 connection subscribed to __redis__:invalidate.
    let client = redis::Client::open(server.url()).unwrap();
    let mut sub = client.get_connection().unwrap();
    let sub_id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut sub).unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("__redis__:invalidate").unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg(&["TRACKING", "ON", "REDIRECT", &sub_id.to_string()])
        .query(&mut con)
        .unwrap();
    let _: Option<String> = redis::cmd("GET").arg("cached").query(&mut con).unwrap();
    let mut other = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("cached")
        .arg("new")
        .query(&mut other)
        .unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "__redis__:invalidate");
    let keys: Vec<String> = msg.get_payload().unwrap();
    assert_eq!(keys, vec!["cached".to_string()]);

    // redis-py: a RESP3 connection with tracking on, its invalidation push handler called.
    let script = format!(
        r#"
import redis
got = []
conn = redis.Connection(port={port}, protocol=3)
conn.connect()
conn._parser.set_invalidation_push_handler(lambda m: got.append(m))
conn.send_command("CLIENT", "TRACKING", "ON")
assert conn.read_response() == b"OK"
conn.send_command("GET", "pykey")
conn.read_response()
redis.Redis(port={port}).set("pykey", "1")
conn.send_command("PING")
assert conn.read_response() == b"PONG"
assert got == [[b"invalidate", [b"pykey"]]], got
print("ok")
"#,
        port = server.port
    );
    let (ok, out) = warpengine_tests::run_python(&["-c", &script]);
    assert!(ok, "{out}");
}

#[test]
fn redis_cli_subscriber_receives_redirected_invalidations() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let server = start_warpengine(&["--threads", "2"]);
    let mut cli = Command::new("redis-cli")
        .args([
            "-p",
            &server.port.to_string(),
            "SUBSCRIBE",
            "__redis__:invalidate",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut admin = RawConn::connect(server.port);
    // redis-cli's connection: the one subscribed to a channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cli_id = loop {
        let list = match admin.call(&["CLIENT", "LIST"]) {
            Resp::Bulk(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        if let Some(line) = list.lines().find(|l| l.contains(" sub=1 ")) {
            break line
                .split(' ')
                .next()
                .unwrap()
                .trim_start_matches("id=")
                .to_string();
        }
        assert!(Instant::now() < deadline, "redis-cli never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut tracked = RawConn::connect(server.port);
    tracked.call(&["CLIENT", "TRACKING", "ON", "REDIRECT", &cli_id]);
    tracked.call(&["GET", "cli-cached"]);
    admin.call(&["SET", "cli-cached", "v"]);
    std::thread::sleep(Duration::from_millis(200));
    cli.kill().expect("kill redis-cli");
    let mut out = String::new();
    cli.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    cli.wait().expect("redis-cli ended");
    assert!(
        out.contains("message\n__redis__:invalidate\ncli-cached"),
        "{out}"
    );
}

/// A transaction's BCAST invalidations go out when EXEC ends, one message per prefix with
/// its keys, as Redis sends them (its tracking unit reads exactly two messages here).
#[test]
fn a_transaction_s_bcast_invalidations_come_one_per_prefix() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut a = RawConn::connect(server.port);
    a.command(&[b"HELLO", b"3"]);
    a.command(&[
        b"CLIENT",
        b"TRACKING",
        b"on",
        b"BCAST",
        b"PREFIX",
        b"a:",
        b"PREFIX",
        b"b:",
    ]);
    let mut b = RawConn::connect(server.port);
    b.call(&["MULTI"]);
    for key in ["a:1", "a:2", "b:1", "b:2", "c:1"] {
        b.call(&["INCR", key]);
    }
    b.call(&["EXEC"]);
    let first = push_keys(&a.read_reply().unwrap());
    let second = push_keys(&a.read_reply().unwrap());
    assert_eq!(
        (first, second),
        (
            vec!["a:1".into(), "a:2".into()],
            vec!["b:1".into(), "b:2".into()]
        )
    );
    assert_eq!(a.command(&[b"PING"]), b"+PONG\r\n");
}

/// What a tracking client receives from a transaction that reads: the frames after each of
/// its commands (up to a PING's answer, pushes included).
fn transaction_frames(port: u16) -> Vec<String> {
    let mut a = RawConn::connect(port);
    let mut b = RawConn::connect(port);
    let mut frames = Vec::new();
    let run = |c: &mut RawConn, args: &[&str], frames: &mut Vec<String>| {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        c.send_command(&args);
        frames.push(String::from_utf8_lossy(&c.read_reply().expect("reply")).into_owned());
    };
    run(&mut a, &["HELLO", "3"], &mut Vec::new());
    let mut in_multi = false;
    for step in [
        "A client tracking on",
        "A multi",
        "A mset x{t} 1 y{t} 2",
        "A get y{t}",
        "A exec",
        "A multi",
        "A get z",
        "A set z 1",
        "A exec",
        "A multi",
        "A get w",
        "B set w 1",
        "A exec",
        "B set y{t} 3",
        "B set w 2",
    ] {
        let words: Vec<&str> = step.split_whitespace().collect();
        let conn = if words[0] == "A" { &mut a } else { &mut b };
        run(conn, &words[1..], &mut frames);
        if words[0] == "A" {
            in_multi = (in_multi || words[1] == "multi") && words[1] != "exec";
        }
        // Pushes the step caused for A, then A's PING answer (outside MULTI).
        if !in_multi {
            a.send_command(&[b"PING"]);
            loop {
                let frame = a.read_reply().expect("frame");
                if frame == b"+PONG\r\n" {
                    break;
                }
                frames.push(String::from_utf8_lossy(&frame).into_owned());
            }
        }
    }
    frames
}

/// Reads queued in MULTI are tracked when EXEC runs them, as Redis tracks them: a write
/// before the read in the transaction, or another client's before EXEC, invalidates
/// nothing; a write after the read in the transaction does (after EXEC's reply).
#[test]
fn reads_in_a_transaction_are_tracked_when_exec_runs_them() {
    if !redis_available() {
        assert!(std::env::var("WARP_SKIP_DIFFERENTIAL").is_ok());
        return;
    }
    let redis = start_redis(&[]);
    let warp = start_warpengine(&["--threads", "4"]);
    assert_eq!(
        transaction_frames(warp.port),
        transaction_frames(redis.port)
    );
}

/// Over maxmemory a read evicts too (Redis evicts before every command), and a tracking
/// client's invalidation of the evicted key comes before the read's reply, on redis-server and
/// here (Redis's tracking unit, 'invalidation message of eviction keys should be before
/// response').
#[test]
fn an_eviction_before_a_read_is_announced_before_its_reply() {
    assert!(redis_available(), "redis-server is needed (see .ci/run)");
    let redis = start_redis(&[]);
    let warp = start_warpengine(&["--threads", "2"]);
    for port in [redis.port, warp.port] {
        let mut admin = RawConn::connect(port);
        let mut c = tracking_conn(port);
        let used: u64 = info_field(&mut admin, "memory", "used_memory")
            .parse()
            .unwrap();
        let limit = (used + 100 * 1024).to_string();
        c.command(&[b"CONFIG", b"SET", b"maxmemory-policy", b"volatile-random"]);
        c.command(&[b"CONFIG", b"SET", b"maxmemory", limit.as_bytes()]);
        c.command(&[b"SETEX", b"volatile-key", b"10000", b"x"]);
        c.command(&[b"GET", b"volatile-key"]);
        // About 200 KB: over the limit from the next command on.
        assert_eq!(
            c.command(&[b"SETBIT", b"big-key", b"1600000", b"0"]),
            b":0\r\n"
        );
        c.send_command(&[b"GETBIT", b"big-key", b"0"]);
        let first = c.read_reply().expect("a frame");
        assert_eq!(push_keys(&first), ["volatile-key"], "port {port}");
        assert_eq!(c.read_reply().expect("the reply"), b":0\r\n", "port {port}");
        assert_eq!(c.command(&[b"EXISTS", b"volatile-key"]), b":0\r\n");
    }
}

/// FLUSHALL empties the tracking table even when no client tracks any more (the keys of one
/// that turned tracking off stay until then), as Redis's (its tracking unit's 'Tracking info
/// is correct'). Compared with redis-server.
#[test]
fn flushall_empties_the_table_after_tracking_is_off() {
    let count = |server: &ServerProcess| -> Vec<String> {
        let mut c = RawConn::connect(server.port);
        let mut seen = Vec::new();
        c.call(&["CLIENT", "TRACKING", "on"]);
        for k in ["a", "b", "c"] {
            c.call(&["SET", k, "1"]);
            c.call(&["GET", k]);
        }
        c.call(&["CLIENT", "TRACKING", "off"]);
        for step in ["off", "flushall"] {
            if step == "flushall" {
                c.call(&["FLUSHALL"]);
            }
            for (section, field) in [
                ("stats", "tracking_total_keys"),
                ("stats", "tracking_total_items"),
                ("clients", "tracking_clients"),
            ] {
                seen.push(format!(
                    "{step} {field}:{}",
                    info_field(&mut c, section, field)
                ));
            }
        }
        seen
    };
    let ours = count(&start_warpengine(&["--threads", "2"]));
    assert!(
        ours.contains(&"flushall tracking_total_keys:0".to_string()),
        "{ours:?}"
    );
    if redis_available() {
        assert_eq!(ours, count(&start_redis(&[])));
    }
}

/// A lowered tracking-table-max-keys applies at the next command, whoever sends it: a tracking
/// client's own next command (even one queued in MULTI) gets the trim's invalidation before its
/// reply, as Redis's processCommand trims first (its tracking unit's #11715). Compared with
/// redis-server.
#[test]
fn a_lowered_table_limit_applies_at_the_next_command() {
    let run = |server: &ServerProcess| -> Vec<Vec<u8>> {
        let mut admin = RawConn::connect(server.port);
        admin.call(&["CONFIG", "SET", "tracking-table-max-keys", "2"]);
        admin.call(&["DEBUG", "PAUSE-CRON", "1"]);
        let mut c = RawConn::connect(server.port);
        c.command(&[b"HELLO", b"3"]);
        let mut seen = vec![c.command(&[b"CLIENT", b"TRACKING", b"on"])];
        seen.push(c.command(&[b"MGET", b"1{tag}", b"2{tag}"]));
        seen.push(c.command(&[b"MULTI"]));
        admin.call(&["CONFIG", "SET", "tracking-table-max-keys", "1"]);
        c.send_command(&[b"PING"]);
        seen.push(c.read_reply().unwrap());
        seen.push(c.read_reply().unwrap());
        seen.push(c.command(&[b"EXEC"]));
        admin.call(&["DEBUG", "PAUSE-CRON", "0"]);
        // Which of the two keys goes is the table's choice: only the shape is compared.
        seen.iter()
            .map(|r| {
                let text = String::from_utf8_lossy(r)
                    .replace("1{tag}", "K")
                    .replace("2{tag}", "K");
                text.into_bytes()
            })
            .collect()
    };
    let ours = run(&start_warpengine(&[
        "--threads",
        "2",
        "--enable-debug-command",
        "yes",
    ]));
    assert!(
        String::from_utf8_lossy(&ours[3]).contains("invalidate"),
        "{:?}",
        String::from_utf8_lossy(&ours[3])
    );
    if redis_available() {
        assert_eq!(ours, run(&start_redis(&["--enable-debug-command", "yes"])));
    }
}
