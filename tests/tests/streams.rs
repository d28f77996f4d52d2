//! Streams against the real binary: blocking XREAD and XREADGROUP woken by XADD from any
//! connection, stream and consumer-group state through kill -9 (the log) and through a
//! snapshot, and many consumers of one group under concurrent XREADGROUP/XACK: every entry
//! delivered once per group, none lost across kill -9.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use warpengine_tests::{
    blocked_clients, free_port, redis_cli, start_warpengine, try_start_warpengine_on,
    wait_for_blocked, RawConn, Resp, ServerProcess, TempDir,
};

fn ok(r: Resp) -> Resp {
    assert!(!matches!(r, Resp::Error(_)), "unexpected error: {r:?}");
    r
}

#[test]
fn xread_block_is_woken_by_xadd_from_another_connection_and_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut admin = RawConn::connect(server.port);
    for key in ["events:a", "events:b", "events:c", "events:d"] {
        admin.call(&["XADD", key, "1-1", "old", "entry"]);
        let mut reader = RawConn::connect(server.port);
        // `$`: only what arrives after the call, even though the stream has an entry.
        reader.send_command(&[
            b"XREAD",
            b"BLOCK",
            b"5000",
            b"STREAMS",
            b"nothing",
            key.as_bytes(),
            b"$",
            b"$",
        ]);
        wait_for_blocked(&mut admin, 1);
        let mut writer = RawConn::connect(server.port);
        ok(writer.call(&["XADD", "nothing-else", "*", "f", "v"]));
        ok(writer.call(&["XADD", key, "2-1", "new", "entry"]));
        let expected = format!(
            "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$3\r\nnew\r\n$5\r\nentry\r\n",
            key.len()
        );
        assert_eq!(
            String::from_utf8(reader.read_reply().unwrap()).unwrap(),
            expected
        );
        wait_for_blocked(&mut admin, 0);
    }
}

#[test]
fn every_blocked_xread_gets_the_entry_and_timeouts_answer_null() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut readers: Vec<RawConn> = (0..3).map(|_| RawConn::connect(server.port)).collect();
    for r in readers.iter_mut() {
        r.send_command(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"fanout", b"0"]);
    }
    wait_for_blocked(&mut admin, 3);
    ok(admin.call(&["XADD", "fanout", "5-0", "f", "v"]));
    for r in readers.iter_mut() {
        let reply = Resp::parse(&r.read_reply().unwrap());
        let Resp::Array(streams) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(streams.len(), 1);
    }
    let start = Instant::now();
    assert_eq!(
        admin.command(&[b"XREAD", b"BLOCK", b"200", b"STREAMS", b"fanout", b"$"]),
        b"*-1\r\n"
    );
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert_eq!(admin.command(&[b"HELLO", b"3"])[..2], b"%7"[..]);
    assert_eq!(
        admin.command(&[b"XREAD", b"BLOCK", b"50", b"STREAMS", b"fanout", b"$"]),
        b"_\r\n"
    );
}

#[test]
fn a_blocked_xread_without_count_is_served_at_most_1000_entries() {
    let server = start_warpengine(&[]);
    let mut admin = RawConn::connect(server.port);
    let mut reader = RawConn::connect(server.port);
    reader.send_command(&[b"XREAD", b"BLOCK", b"5000", b"STREAMS", b"big", b"$"]);
    wait_for_blocked(&mut admin, 1);
    ok(admin.call(&["MULTI"]));
    for i in 1..=1200 {
        admin.call(&["XADD", "big", &format!("{i}-0"), "f", "v"]);
    }
    ok(admin.call(&["EXEC"]));
    let Resp::Array(streams) = Resp::parse(&reader.read_reply().unwrap()) else {
        panic!("XREAD")
    };
    let Resp::Array(pair) = &streams[0] else {
        panic!("stream")
    };
    let Resp::Array(entries) = &pair[1] else {
        panic!("entries")
    };
    assert_eq!(entries.len(), 1000);
}

#[test]
fn an_xadd_wakes_every_reader_of_the_stream_not_only_the_first() {
    // Two consumers of one group wait ahead of a plain reader: the entry goes to one consumer,
    // and the reader behind the one left waiting gets it too.
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    ok(admin.call(&["XGROUP", "CREATE", "mixed", "g", "$", "MKSTREAM"]));
    let mut consumers: Vec<RawConn> = (0..2).map(|_| RawConn::connect(server.port)).collect();
    for (i, c) in consumers.iter_mut().enumerate() {
        let name = format!("c{i}");
        c.send_command(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            name.as_bytes(),
            b"BLOCK",
            b"0",
            b"STREAMS",
            b"mixed",
            b">",
        ]);
        wait_for_blocked(&mut admin, i + 1);
    }
    let mut reader = RawConn::connect(server.port);
    reader.send_command(&[b"XREAD", b"BLOCK", b"3000", b"STREAMS", b"mixed", b"$"]);
    wait_for_blocked(&mut admin, 3);
    ok(admin.call(&["XADD", "mixed", "1-0", "f", "v"]));
    let reply = String::from_utf8(reader.read_reply().unwrap()).unwrap();
    assert!(reply.contains("1-0"), "{reply}");
    wait_for_blocked(&mut admin, 1);
}

#[test]
fn blocked_group_readers_learn_their_stream_or_group_is_gone_and_xread_waits_on() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut reader = RawConn::connect(server.port);
    let group_read: &[&[u8]] = &[
        b"XREADGROUP",
        b"GROUP",
        b"g",
        b"c",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"gone",
        b">",
    ];
    ok(admin.call(&["XGROUP", "CREATE", "gone", "g", "$", "MKSTREAM"]));
    reader.send_command(group_read);
    wait_for_blocked(&mut admin, 1);
    ok(admin.call(&["DEL", "gone"]));
    assert_eq!(
        reader.read_reply().unwrap(),
        b"-UNBLOCKED the stream key no longer exists\r\n"
    );
    // FLUSHALL and FLUSHDB wake it too, as Redis signals every key of the emptied databases.
    for flush in ["FLUSHALL", "FLUSHDB"] {
        ok(admin.call(&["XGROUP", "CREATE", "gone", "g", "$", "MKSTREAM"]));
        reader.send_command(group_read);
        wait_for_blocked(&mut admin, 1);
        ok(admin.call(&[flush]));
        assert_eq!(
            reader.read_reply().unwrap(),
            b"-UNBLOCKED the stream key no longer exists\r\n",
            "{flush}"
        );
    }
    ok(admin.call(&["XGROUP", "CREATE", "gone", "g", "$", "MKSTREAM"]));
    reader.send_command(group_read);
    wait_for_blocked(&mut admin, 1);
    ok(admin.call(&["XGROUP", "DESTROY", "gone", "g"]));
    assert_eq!(
        reader.read_reply().unwrap(),
        b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
    // XREAD keeps waiting through a deletion and another type, for the stream to come back.
    reader.send_command(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"gone", b"$"]);
    wait_for_blocked(&mut admin, 1);
    ok(admin.call(&["DEL", "gone"]));
    ok(admin.call(&["SET", "gone", "x"]));
    ok(admin.call(&["DEL", "gone"]));
    thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked_clients(&mut admin), 1);
    ok(admin.call(&["XADD", "gone", "1-0", "f", "v"]));
    let reply = String::from_utf8(reader.read_reply().unwrap()).unwrap();
    assert!(reply.contains("1-0"), "{reply}");
}

#[test]
fn xreadgroup_block_is_served_once_per_new_entry() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    ok(admin.call(&["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]));
    let mut a = RawConn::connect(server.port);
    let mut b = RawConn::connect(server.port);
    for (c, name) in [(&mut a, "a"), (&mut b, "b")] {
        c.send_command(&[
            b"XREADGROUP",
            b"GROUP",
            b"workers",
            name.as_bytes(),
            b"BLOCK",
            b"3000",
            b"COUNT",
            b"1",
            b"STREAMS",
            b"jobs",
            b">",
        ]);
    }
    wait_for_blocked(&mut admin, 2);
    ok(admin.call(&["XADD", "jobs", "1-0", "job", "1"]));
    ok(admin.call(&["XADD", "jobs", "2-0", "job", "2"]));
    let mut got = BTreeSet::new();
    for c in [&mut a, &mut b] {
        let reply = String::from_utf8(c.read_reply().unwrap()).unwrap();
        assert!(
            reply.starts_with("*1\r\n*2\r\n$4\r\njobs\r\n*1\r\n"),
            "{reply}"
        );
        got.insert(if reply.contains("1-0") { "1-0" } else { "2-0" });
    }
    assert_eq!(got.len(), 2, "each entry went to one consumer");
    let Resp::Array(summary) = admin.call(&["XPENDING", "jobs", "workers"]) else {
        panic!("XPENDING")
    };
    assert_eq!(summary[0], Resp::Int(2));
}

/// Everything about the streams of the workload, with consumers' seen-times (which restart
/// resets, as Redis's loading does) left out.
fn stream_state(c: &mut RawConn, keys: &[&str]) -> Vec<String> {
    fn blank_seen_times(r: Resp) -> Resp {
        match r {
            Resp::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut blank_next = false;
                for item in items {
                    if blank_next {
                        out.push(Resp::Nil);
                        blank_next = false;
                        continue;
                    }
                    blank_next = item == Resp::Bulk(b"seen-time".to_vec());
                    out.push(blank_seen_times(item));
                }
                Resp::Array(out)
            }
            other => other,
        }
    }
    let mut out = Vec::new();
    for key in keys {
        out.push(c.call(&["XRANGE", key, "-", "+"]));
        out.push(blank_seen_times(
            c.call(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"]),
        ));
        out.push(c.call(&["XINFO", "GROUPS", key]));
    }
    out.iter().map(render).collect()
}

/// A reply as one line of text, so that a difference reads as one.
fn render(r: &Resp) -> String {
    match r {
        Resp::Bulk(b) => String::from_utf8_lossy(b).to_string(),
        Resp::Array(items) => {
            let inner: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", inner.join(" "))
        }
        other => format!("{other:?}"),
    }
}

fn start_logged(port: u16, dir: &TempDir) -> ServerProcess {
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path(),
        "--threads",
        "2",
        "--enable-debug-command",
        "yes",
    ];
    try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("start failed:\n{log}"))
}

/// Every write of the family, including the ones logged in another form than they were sent
/// (`*` IDs, `~` trims, XREADGROUP, XCLAIM, XAUTOCLAIM).
fn stream_workload(c: &mut RawConn) {
    for i in 0..300 {
        ok(c.call(&[
            "XADD",
            "log:s",
            "MAXLEN",
            "~",
            "120",
            "*",
            "n",
            &i.to_string(),
            "pad",
            "x",
        ]));
    }
    ok(c.call(&["XADD", "log:s", "MINID", "~", "0-1", "*", "last", "one"]));
    for command in [
        "XGROUP CREATE log:s g 0",
        "XGROUP CREATE log:s h $ ENTRIESREAD 3",
        "XREADGROUP GROUP g c1 COUNT 5 STREAMS log:s >",
        "XREADGROUP GROUP g c2 COUNT 5 NOACK STREAMS log:s >",
        "XREADGROUP GROUP g c3 COUNT 5 STREAMS log:s >",
        "XREADGROUP GROUP g c1 STREAMS log:s 0",
    ] {
        ok(c.call(&command.split_whitespace().collect::<Vec<_>>()));
    }
    let Resp::Array(first) = c.call(&["XRANGE", "log:s", "-", "+", "COUNT", "2"]) else {
        panic!("XRANGE")
    };
    let ids = entry_ids(&first);
    let (id0, id1) = (&ids[0], &ids[1]);
    ok(c.call(&["XACK", "log:s", "g", id0]));
    ok(c.call(&["XCLAIM", "log:s", "g", "c4", "0", id1, "RETRYCOUNT", "9"]));
    ok(c.call(&["XAUTOCLAIM", "log:s", "g", "c5", "0", "0", "COUNT", "3"]));
    ok(c.call(&["XGROUP", "CREATECONSUMER", "log:s", "h", "idle"]));
    ok(c.call(&["XGROUP", "DELCONSUMER", "log:s", "g", "c3"]));
    ok(c.call(&["XDEL", "log:s", id1]));
    ok(c.call(&["XTRIM", "log:s", "MAXLEN", "~", "50"]));
    ok(c.call(&["XADD", "log:empty", "5-5", "f", "v"]));
    ok(c.call(&["XDEL", "log:empty", "5-5"]));
    ok(c.call(&[
        "XSETID",
        "log:empty",
        "9-9",
        "ENTRIESADDED",
        "7",
        "MAXDELETEDID",
        "6-0",
    ]));
    ok(c.call(&["XGROUP", "CREATE", "log:fresh", "g", "$", "MKSTREAM"]));
    ok(c.call(&["XADD", "log:fields", "1", "a", "1", "b", "2"]));
    ok(c.call(&["XADD", "log:fields", "2", "a", "3", "b", "4"]));
    ok(c.call(&["XADD", "log:fields", "3", "b", "5", "a", "6"]));
    // Group reads inside a transaction, a script, and across two streams (on two shards).
    ok(c.call(&["XGROUP", "CREATE", "log:fields", "g", "0"]));
    ok(c.call(&["MULTI"]));
    c.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "m",
        "COUNT",
        "1",
        "STREAMS",
        "log:fields",
        ">",
    ]);
    c.call(&["XADD", "log:fields", "*", "in", "multi"]);
    ok(c.call(&["EXEC"]));
    ok(c.call(&[
        "EVAL",
        "redis.call('XADD', KEYS[1], '*', 'in', 'script') \
         return redis.call('XREADGROUP', 'GROUP', 'g', 'lua', 'COUNT', '2', 'STREAMS', KEYS[1], '>')",
        "1",
        "log:fields",
    ]));
    ok(c.call(&["XGROUP", "CREATE", "log:other", "g", "0", "MKSTREAM"]));
    ok(c.call(&["XADD", "log:other", "7-7", "f", "v"]));
    ok(c.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "both",
        "STREAMS",
        "log:fields",
        "log:other",
        ">",
        ">",
    ]));
}

const WORKLOAD_KEYS: &[&str] = &["log:s", "log:empty", "log:fresh", "log:fields", "log:other"];

#[test]
fn streams_and_groups_survive_kill_9_and_a_snapshot() {
    let dir = TempDir::new("streams-restart");
    let port = free_port();
    let mut server = start_logged(port, &dir);
    let mut c = RawConn::connect(port);
    stream_workload(&mut c);
    let before = stream_state(&mut c, WORKLOAD_KEYS);
    let digest = c.call(&["DEBUG", "DIGEST"]);
    server.kill9();

    // From the log.
    let restarted = |label: &str| {
        let server = start_logged(port, &dir);
        let mut c = RawConn::connect(port);
        assert_eq!(stream_state(&mut c, WORKLOAD_KEYS), before, "{label}");
        (server, c)
    };
    let (mut server, mut c) = restarted("after replaying the log");
    assert_eq!(c.call(&["DEBUG", "DIGEST"]), digest);

    // From a snapshot that re-creates the streams (then the log's tail is empty): exactly,
    // consumers' seen times included.
    let seen_times = |c: &mut RawConn| -> Vec<Resp> {
        let full = |key: &&str| c.call(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
        WORKLOAD_KEYS.iter().map(full).collect()
    };
    let before_snapshot = seen_times(&mut c);
    ok(c.call(&["BGREWRITEAOF"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while warpengine_tests::info_field(&mut c, "persistence", "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite never ended");
        thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    let (mut server, mut c) = restarted("after the snapshot");
    assert_eq!(seen_times(&mut c), before_snapshot);
    // The stream keeps working from where it was.
    ok(c.call(&["XADD", "log:empty", "9-*", "f", "v"]));
    assert_eq!(c.call(&["XLEN", "log:empty"]), Resp::Int(1));
    server.kill9();
}

/// Entry IDs and (when `acks`) acknowledgements from one consumer's loop.
fn consume(
    port: u16,
    group: &str,
    name: &str,
    acks: bool,
    stop_after_idle: Duration,
) -> Vec<String> {
    let mut c = RawConn::connect(port);
    let mut seen = Vec::new();
    let mut idle_since = Instant::now();
    loop {
        c.send_command(&[
            b"XREADGROUP",
            b"GROUP",
            group.as_bytes(),
            name.as_bytes(),
            b"COUNT",
            b"7",
            b"BLOCK",
            b"50",
            b"STREAMS",
            b"work",
            b">",
        ]);
        let reply = c.read_reply().expect("XREADGROUP");
        assert!(!reply.starts_with(b"-"), "XREADGROUP: {reply:?}");
        let ids = delivered_ids(&reply);
        if ids.is_empty() {
            if idle_since.elapsed() > stop_after_idle {
                return seen;
            }
            continue;
        }
        idle_since = Instant::now();
        if acks {
            let mut args = vec!["XACK", "work", group];
            args.extend(ids.iter().map(String::as_str));
            assert_eq!(c.call(&args), Resp::Int(ids.len() as i64));
        }
        seen.extend(ids);
    }
}

#[test]
fn many_consumers_get_every_entry_once_per_group_and_none_is_lost_across_kill_9() {
    let dir = TempDir::new("streams-consumers");
    let port = free_port();
    let mut server = start_logged(port, &dir);
    let mut admin = RawConn::connect(port);
    for group in ["g1", "g2"] {
        ok(admin.call(&["XGROUP", "CREATE", "work", group, "$", "MKSTREAM"]));
    }
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 150;
    let consumers: Vec<_> = ["g1", "g2"]
        .iter()
        .flat_map(|g| (0..4).map(move |i| (g.to_string(), format!("c{i}"))))
        .map(|(g, name)| {
            thread::spawn(move || {
                let ids = consume(port, &g, &name, true, Duration::from_millis(1500));
                (g, ids)
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                (0..PER_PRODUCER)
                    .map(|i| {
                        match c.call(&[
                            "XADD",
                            "work",
                            "*",
                            "p",
                            &p.to_string(),
                            "i",
                            &i.to_string(),
                        ]) {
                            Resp::Bulk(id) => String::from_utf8(id).unwrap(),
                            other => panic!("XADD: {other:?}"),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let added: BTreeSet<String> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    assert_eq!(added.len(), PRODUCERS * PER_PRODUCER);
    let mut per_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in consumers {
        let (g, ids) = c.join().unwrap();
        per_group.entry(g).or_default().extend(ids);
    }
    for (g, ids) in &per_group {
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{g}: an entry was delivered twice");
        assert_eq!(unique.len(), added.len(), "{g}: entries never delivered");
        let Resp::Array(summary) = admin.call(&["XPENDING", "work", g]) else {
            panic!("XPENDING")
        };
        assert_eq!(
            summary[0],
            Resp::Int(0),
            "{g}: acknowledged entries still pending"
        );
    }

    // Half delivered and not acknowledged, then kill -9: the group's position and pending
    // entries come back, so nothing is delivered twice as new, nor lost.
    for i in 0..20 {
        ok(admin.call(&["XADD", "work", "*", "late", &i.to_string()]));
    }
    ok(admin.call(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "crash",
        "COUNT",
        "10",
        "STREAMS",
        "work",
        ">",
    ]));
    server.kill9();
    let mut server = start_logged(port, &dir);
    let mut admin = RawConn::connect(port);
    let Resp::Array(summary) = admin.call(&["XPENDING", "work", "g1"]) else {
        panic!("XPENDING")
    };
    assert_eq!(summary[0], Resp::Int(10), "pending entries after restart");
    let rest = consume(port, "g1", "after", true, Duration::from_millis(300));
    assert_eq!(rest.len(), 10, "the undelivered entries, once each");
    assert_eq!(
        admin.call(&["XLEN", "work"]),
        Resp::Int(added.len() as i64 + 20)
    );
    server.kill9();
}

#[test]
fn the_redis_crate_and_redis_cli_use_streams() {
    let server = start_warpengine(&["--threads", "2"]);
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client.get_connection().expect("connection");
    let id: String = redis::cmd("XADD")
        .arg("rs:st")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query(&mut c)
        .expect("XADD");
    assert_eq!(id, "1-1");
    let range: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("rs:st")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .expect("XRANGE");
    assert_eq!(
        range,
        vec![("1-1".to_string(), vec!["f".to_string(), "v".to_string()])]
    );
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "rs:st", "grp", "0"])
        .query(&mut c)
        .expect("XGROUP CREATE");
    type Read = Vec<(String, Vec<(String, Vec<String>)>)>;
    let read: Read = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "grp", "alice", "STREAMS", "rs:st", ">"])
        .query(&mut c)
        .expect("XREADGROUP");
    assert_eq!(read[0].0, "rs:st");
    assert_eq!(read[0].1[0].0, "1-1");
    let acked: i64 = redis::cmd("XACK")
        .arg(&["rs:st", "grp", "1-1"])
        .query(&mut c)
        .expect("XACK");
    assert_eq!(acked, 1);
    let nothing: Option<Read> = redis::cmd("XREAD")
        .arg(&["BLOCK", "20", "STREAMS", "rs:st", "$"])
        .query(&mut c)
        .expect("XREAD timeout");
    assert_eq!(nothing, None);

    let cli = |args: &[&str]| redis_cli(server.port, args);
    // (Not a terminal: redis-cli prints bare values.)
    assert_eq!(cli(&["XADD", "cli:st", "5-1", "a", "1", "b", "2"]), "5-1\n");
    assert_eq!(cli(&["XRANGE", "cli:st", "-", "+"]), "5-1\na\n1\nb\n2\n");
    assert_eq!(
        cli(&["XREAD", "STREAMS", "cli:st", "0"]),
        "cli:st\n5-1\na\n1\nb\n2\n"
    );
    // RESP3: a map, which redis-cli prints as `key value` on one line, as with Redis.
    assert_eq!(
        cli(&["-3", "XREAD", "STREAMS", "cli:st", "0"]),
        "cli:st 5-1\na\n1\nb\n2\n"
    );
    assert_eq!(cli(&["XLEN", "cli:st"]), "1\n");
    assert_eq!(
        cli(&["XINFO", "STREAM", "cli:st"]).lines().nth(1),
        Some("1")
    );
}

/// `ms-seq` as a pair that orders as stream IDs do.
fn parse_id(text: &str) -> (u64, u64) {
    let (ms, seq) = text.split_once('-').expect("ms-seq");
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// The IDs of the entries in an XREADGROUP reply of one stream (none for a null reply).
fn delivered_ids(reply: &[u8]) -> Vec<String> {
    let Resp::Array(streams) = Resp::parse(reply) else {
        return Vec::new();
    };
    let Some(Resp::Array(pair)) = streams.first() else {
        return Vec::new();
    };
    let Resp::Array(entries) = &pair[1] else {
        return Vec::new();
    };
    entry_ids(entries)
}

/// The IDs of entries (`[id, fields]`) or pending records (`[id, consumer, ...]`).
fn entry_ids(items: &[Resp]) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            Resp::Array(parts) => match &parts[0] {
                Resp::Bulk(id) => String::from_utf8(id.clone()).unwrap(),
                other => panic!("an ID: {other:?}"),
            },
            other => panic!("an entry: {other:?}"),
        })
        .collect()
}

#[test]
fn kill_9_while_consumers_read_and_acknowledge_loses_no_entry() {
    use std::sync::{Arc, Mutex};
    let dir = TempDir::new("streams-kill-mid-consume");
    let port = free_port();
    let mut server = start_logged(port, &dir);
    let mut admin = RawConn::connect(port);
    ok(admin.call(&["XGROUP", "CREATE", "jobs", "g", "$", "MKSTREAM"]));
    const ENTRIES: usize = 2000;
    for i in 0..ENTRIES {
        admin.send_command(&[b"XADD", b"jobs", b"*", b"n", i.to_string().as_bytes()]);
    }
    for _ in 0..ENTRIES {
        assert!(matches!(admin.read_reply().unwrap()[0], b'$'));
    }
    // What each consumer saw: delivered (reply read), XACK sent, XACK answered.
    #[derive(Default)]
    struct Seen {
        delivered: BTreeSet<String>,
        ack_sent: BTreeSet<String>,
        acked: BTreeSet<String>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumers: Vec<_> = (0..4)
        .map(|i| {
            let seen = seen.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let name = format!("c{i}");
                loop {
                    c.send_command(&[
                        b"XREADGROUP",
                        b"GROUP",
                        b"g",
                        name.as_bytes(),
                        b"COUNT",
                        b"3",
                        b"STREAMS",
                        b"jobs",
                        b">",
                    ]);
                    let Some(reply) = c.read_reply_opt() else {
                        return;
                    };
                    let ids = delivered_ids(&reply);
                    if ids.is_empty() {
                        return;
                    }
                    seen.lock().unwrap().delivered.extend(ids.iter().cloned());
                    if i == 0 {
                        // This one never acknowledges: its entries stay pending.
                        continue;
                    }
                    let mut args: Vec<&[u8]> = vec![b"XACK", b"jobs", b"g"];
                    args.extend(ids.iter().map(|id| id.as_bytes()));
                    seen.lock().unwrap().ack_sent.extend(ids.iter().cloned());
                    c.send_command(&args);
                    if c.read_reply_opt().is_none() {
                        return;
                    }
                    seen.lock().unwrap().acked.extend(ids);
                }
            })
        })
        .collect();
    // Kill the server while they work.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().acked.len() < ENTRIES / 4 {
        assert!(Instant::now() < deadline, "consumers made no progress");
        thread::sleep(Duration::from_millis(2));
    }
    server.kill9();
    for c in consumers {
        // A consumer may fail on its next write to the dead server: what it saw is recorded.
        let _ = c.join();
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.acked.len() < ENTRIES,
        "the kill came after all the work"
    );

    let mut server = start_logged(port, &dir);
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["XLEN", "jobs"]),
        Resp::Int(ENTRIES as i64),
        "entries lost"
    );
    let Resp::Array(pending) = c.call(&["XPENDING", "jobs", "g", "-", "+", "100000"]) else {
        panic!("XPENDING")
    };
    let pending: BTreeSet<String> = entry_ids(&pending).into_iter().collect();
    let Resp::Array(groups) = c.call(&["XINFO", "GROUPS", "jobs"]) else {
        panic!("XINFO GROUPS")
    };
    let Resp::Array(fields) = &groups[0] else {
        panic!("group")
    };
    let Resp::Bulk(last) = &fields[7] else {
        panic!("last-delivered-id")
    };
    let last = parse_id(std::str::from_utf8(last).unwrap());
    let Resp::Array(entries) = c.call(&["XRANGE", "jobs", "-", "+"]) else {
        panic!("XRANGE")
    };
    for id in entry_ids(&entries) {
        if parse_id(&id) > last {
            // Still to be delivered: nobody may have had it.
            assert!(
                !seen.delivered.contains(&id),
                "{id} delivered, yet after the group's position"
            );
        } else if seen.acked.contains(&id) {
            assert!(
                !pending.contains(&id),
                "{id} acknowledged, yet pending again"
            );
        } else {
            // Delivered before the kill: pending still, unless its XACK ran unanswered.
            assert!(
                pending.contains(&id) || seen.ack_sent.contains(&id),
                "{id} was delivered to a consumer and then lost"
            );
        }
    }
    // Delivered and never acknowledged: pending.
    for id in seen.delivered.difference(&seen.ack_sent) {
        assert!(
            pending.contains(id),
            "{id} delivered but not pending after the restart"
        );
    }
    server.kill9();
}
