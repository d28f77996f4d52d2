//! The replication stream, WarpEngine as the primary and redis-server 7.0.15 as its replica:
//! after a full sync of every type, a write load of every kind (single commands, cross-shard
//! MSET/DEL/RENAME, MULTI/EXEC, scripts, SPOP, INCRBYFLOAT, EXPIRE, keys expiring, FLUSHDB in
//! another database, a served BLPOP, ...) leaves the replica with the same keys (DUMP bytes)
//! and expiries in every database, with `appendonly yes` and `no`; a replica restarted from its
//! RDB continues with a partial resync; WAIT counts replicas; `min-replicas-to-write`; a
//! replica that stops reading is dropped at the replica output limit with the server's memory
//! bounded.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warpengine_tests::{
    free_port, info_field, redis_available, start_warpengine, wait_for, RawConn, Resp,
    ServerProcess, TempDir,
};

/// A redis-server replica of `primary` on `port` with its files in `dir`, killed when dropped
/// (restartable on the same port and files, unlike `start_redis`).
struct Replica {
    child: Child,
    port: u16,
    /// Its own files (removed after it is killed), unless the test keeps them for a restart.
    dir: Option<TempDir>,
}

impl Replica {
    fn start(primary: u16, port: u16, dir: &str) -> Replica {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--dir", dir])
            .args(["--replicaof", "127.0.0.1", &primary.to_string()])
            .args(["--logfile", &format!("{dir}/replica.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Replica {
            child,
            port,
            dir: None,
        }
    }

    /// A replica of `primary` in a directory of its own, and a connection to it once it has
    /// caught up with the primary (`c`).
    fn attach(c: &mut RawConn, primary: u16, name: &str) -> (Replica, RawConn) {
        let dir = TempDir::new(name);
        let mut replica = Replica::start(primary, free_port(), dir.path());
        replica.dir = Some(dir);
        let mut r = RawConn::connect(replica.port);
        caught_up(c, &mut r);
        (replica, r)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(c: &mut RawConn, args: &[&str]) -> Resp {
    let reply = c.call(args);
    assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
    reply
}

/// Keys of every type, some with TTLs, in databases 0, 1 and 5.
fn fill(c: &mut RawConn) {
    let writes: &[&[&str]] = &[
        &["SET", "s:str", "hello"],
        &["SET", "s:int", "12345"],
        &["SET", "s:ttl", "v", "PX", "900000"],
        &["RPUSH", "s:list", "a", "b", "c", "1"],
        &["HSET", "s:hash", "f1", "v1", "f2", "2"],
        &["SADD", "s:set", "x", "y", "z"],
        &["SADD", "s:intset", "1", "2", "3"],
        &["ZADD", "s:zset", "1.5", "m1", "-2", "m2"],
        &["PFADD", "s:hll", "a", "b", "c"],
        &["XADD", "s:stream", "1-1", "f", "v"],
        &["XADD", "s:stream", "2-1", "g", "w"],
        &["XGROUP", "CREATE", "s:stream", "grp", "0"],
        &["EXPIRE", "s:hash", "9000"],
        &["SELECT", "1"],
        &["SET", "s:db1", "one"],
        &["SELECT", "5"],
        &["LPUSH", "s:db5list", "q"],
        &["SET", "s:gone-with-flush", "x"],
        &["SELECT", "0"],
    ];
    for w in writes {
        ok(c, w);
    }
    let big: Vec<String> = (0..600).map(|i| format!("item-{i}")).collect();
    let mut rpush = vec!["RPUSH", "s:biglist"];
    rpush.extend(big.iter().map(String::as_str));
    ok(c, &rpush);
}

/// Writes of every kind the stream carries.
fn load(c: &mut RawConn, port: u16, durable: bool) {
    let writes: &[&[&str]] = &[
        &["SET", "l:a", "1"],
        &["INCR", "l:a"],
        &["APPEND", "s:str", " world"],
        &["MSET", "l:m1", "1", "l:m2", "2", "l:m3", "3", "l:m4", "4"],
        &["DEL", "l:m1", "l:m2", "l:nosuch"],
        &["RENAME", "l:m3", "l:renamed"],
        &["SETEX", "l:setex", "1000", "v"],
        &["SET", "l:keep", "a", "EX", "500"],
        &["SET", "l:keep", "b", "KEEPTTL"],
        &["SET", "l:nx", "first", "NX"],
        &["SET", "l:nx", "second", "NX"],
        &["GETEX", "s:str", "PX", "700000"],
        &["EXPIRE", "s:list", "800"],
        &["EXPIRE", "s:int", "-1"],
        &["PERSIST", "s:hash"],
        &["INCRBYFLOAT", "l:float", "10.5"],
        &["INCRBYFLOAT", "l:float", "0.1"],
        &["HINCRBYFLOAT", "s:hash", "f3", "1.25"],
        &["SADD", "l:pop", "a", "b", "c", "d", "e"],
        &["SPOP", "l:pop"],
        &["SPOP", "l:pop", "2"],
        &["ZINCRBY", "s:zset", "2.5", "m3"],
        &["LMOVE", "s:list", "l:moved", "LEFT", "RIGHT"],
        &["SINTERSTORE", "l:inter", "s:set", "l:pop"],
        &["COPY", "s:set", "l:copy"],
        &["PFADD", "s:hll", "d", "e"],
        &["XADD", "s:stream", "*", "auto", "id"],
        &["XADD", "s:stream", "MAXLEN", "~", "100", "*", "trim", "x"],
        &["XREADGROUP", "GROUP", "grp", "alice", "COUNT", "1", "STREAMS", "s:stream", ">"],
        &["XACK", "s:stream", "grp", "1-1"],
        &["MULTI"],
        &["SET", "l:tx1", "a"],
        &["INCR", "l:tx2"],
        &["RPUSH", "l:txlist", "x", "y"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], ARGV[1]); redis.call('RPUSH', KEYS[2], ARGV[1]); return redis.call('INCR', KEYS[3])",
            "3",
            "l:ev1",
            "l:ev2",
            "l:ev3",
            "x",
        ],
        &["SET", "l:short", "v", "PX", "150"],
        &["SELECT", "1"],
        &["MSET", "l:db1a", "1", "l:db1b", "2"],
        &["SELECT", "5"],
        &["FLUSHDB"],
        &["SET", "l:after-flush", "y"],
        &["SELECT", "6"],
        &["SET", "l:db6", "six"],
        &["SWAPDB", "6", "7"],
        &["SELECT", "0"],
    ];
    for w in writes {
        ok(c, w);
    }
    if durable {
        ok(c, &["SET", "l:durable", "v", "DURABILITY", "always"]);
    }
    // A BLPOP that waits, then is served by a push from another connection.
    let mut blocked = RawConn::connect(port);
    blocked.send_command(&[b"BLPOP", b"l:blocking", b"5"]);
    std::thread::sleep(Duration::from_millis(100));
    ok(c, &["RPUSH", "l:blocking", "p1", "p2"]);
    let served = blocked.read_reply().expect("BLPOP served");
    assert!(String::from_utf8_lossy(&served).contains("p1"));
    // l:short expires (actively or on this access): the replica gets its DEL.
    ok(c, &["PUBLISH", "repl:news", "hello"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.call(&["GET", "l:short"]), Resp::Nil);
}

/// Every key of every database: its DUMP bytes (for sets and hashes, whose hash-table order
/// differs between any two servers, Redis's replicas included: the sorted members and the
/// encoding; for streams, the entries and groups) and absolute expiry.
fn contents(c: &mut RawConn) -> BTreeMap<String, String> {
    warpengine_tests::dataset::each_key(c, |c, key, kind| match kind {
        "set" | "hash" => {
            let read = if kind == "set" { "SMEMBERS" } else { "HGETALL" };
            let Resp::Array(items) = c.call(&[read, key]) else {
                panic!("{read}")
            };
            let mut items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
            if kind == "hash" {
                items = items.chunks(2).map(|p| p.join("=")).collect();
            }
            items.sort();
            let encoding = c.call(&["OBJECT", "ENCODING", key]);
            format!("{encoding:?} {}", items.join(","))
        }
        // A consumer's seen time is the millisecond its command ran, on each side. A group's
        // entries-read (and the lag made from it) is not compared: XREADGROUP goes out as
        // Redis propagates it, XCLAIMs whose LASTID moves the group without its read counter,
        // so a Redis replica's counter stays behind its primary's, as behind a Redis primary.
        "stream" => format!(
            "{:?} {:?}",
            c.call(&["XRANGE", key, "-", "+"]),
            without_read_counters(c.call(&["XINFO", "GROUPS", key]))
        ),
        _ => match c.call(&["DUMP", key]) {
            Resp::Bulk(b) => format!("{b:?}"),
            other => panic!("DUMP {key}: {other:?}"),
        },
    })
}

/// XINFO GROUPS without each group's `entries-read` and `lag` fields.
fn without_read_counters(groups: Resp) -> Resp {
    let Resp::Array(groups) = groups else {
        return groups;
    };
    Resp::Array(
        groups
            .into_iter()
            .map(|g| match g {
                Resp::Array(fields) => Resp::Array(
                    fields
                        .chunks(2)
                        .filter(|pair| {
                            !matches!(&pair[0], Resp::Bulk(n) if n == b"entries-read" || n == b"lag")
                        })
                        .flatten()
                        .cloned()
                        .collect(),
                ),
                other => other,
            })
            .collect(),
    )
}

fn assert_same(got: &BTreeMap<String, String>, expected: &BTreeMap<String, String>) {
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(got), names(expected), "the same keys");
    for (k, v) in expected {
        assert_eq!(&got[k], v, "key {k}");
    }
}

/// Waits until the replica has applied everything the primary fed (equal offsets).
fn caught_up(c: &mut RawConn, r: &mut RawConn) {
    wait_for("the replica's offset to reach the primary's", || {
        let primary = info_field(c, "replication", "master_repl_offset");
        info_field(r, "replication", "master_link_status") == "up"
            && info_field(r, "replication", "master_repl_offset") == primary
    });
}

fn follows_every_write(appendonly: bool) {
    if !redis_available() {
        return;
    }
    let dir = TempDir::new(&format!("repl-stream-{appendonly}"));
    let aof = if appendonly { "yes" } else { "no" };
    let warp = start_warpengine(&["--threads", "3", "--dir", dir.path(), "--appendonly", aof]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c);
    let (replica, mut r) =
        Replica::attach(&mut c, warp.port, &format!("repl-replica-{appendonly}"));
    assert_same(&contents(&mut r), &contents(&mut c));
    // A subscriber of the replica gets what is published on the primary, as with Redis.
    let mut subscriber = RawConn::connect(replica.port);
    subscriber.send_command(&[b"SUBSCRIBE", b"repl:news"]);
    subscriber.read_reply().expect("subscribed");
    load(&mut c, warp.port, appendonly);
    let message = subscriber.read_reply().expect("the message");
    assert!(String::from_utf8_lossy(&message).ends_with("$5\r\nhello\r\n"));
    caught_up(&mut c, &mut r);
    let expected = contents(&mut c);
    assert!(expected.contains_key("0/l:renamed") && expected.contains_key("5/l:after-flush"));
    assert!(expected.contains_key("7/l:db6") && !expected.contains_key("6/l:db6"));
    assert!(!expected.contains_key("5/s:gone-with-flush"));
    assert_same(&contents(&mut r), &expected);
    // DBSIZE counts keys a replica holds but hides once expired: the DEL of l:short arrived.
    for db in ["0", "5", "7"] {
        c.call(&["SELECT", db]);
        r.call(&["SELECT", db]);
        assert_eq!(
            r.call(&["DBSIZE"]),
            c.call(&["DBSIZE"]),
            "DBSIZE of db {db}"
        );
    }
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "1");
    let replica_dir = replica.dir.as_ref().expect("its own directory");
    let log = std::fs::read_to_string(format!("{}/replica.log", replica_dir.path())).unwrap();
    assert!(!log.contains("sending an error to its master"), "{log}");
}

#[test]
fn a_redis_replica_follows_every_write_with_the_log_off() {
    follows_every_write(false);
}

#[test]
fn a_redis_replica_follows_every_write_with_the_log_on() {
    follows_every_write(true);
}

#[test]
fn a_restarted_replica_continues_with_a_partial_resync() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c);
    let replica_dir = TempDir::new("repl-stream-restart");
    let port = free_port();
    let replica = Replica::start(warp.port, port, replica_dir.path());
    let mut r = RawConn::connect(port);
    caught_up(&mut c, &mut r);
    // The replica saves its data and replication id, stops; writes go on meanwhile.
    r.send_command(&[b"SHUTDOWN", b"SAVE"]);
    wait_for("the replica to go", || {
        info_field(&mut c, "replication", "connected_slaves") == "0"
    });
    drop(replica);
    ok(&mut c, &["SET", "while:down", "1"]);
    ok(
        &mut c,
        &["MSET", "while:a", "1", "while:b", "2", "while:c", "3"],
    );
    let _replica = Replica::start(warp.port, port, replica_dir.path());
    let mut r = RawConn::connect(port);
    caught_up(&mut c, &mut r);
    assert_eq!(info_field(&mut c, "stats", "sync_partial_ok"), "1");
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "1");
    assert_same(&contents(&mut r), &contents(&mut c));
    // The disk-based RDB form (`repl-diskless-sync no`) for a replica that must sync in full.
    ok(&mut c, &["CONFIG", "SET", "repl-diskless-sync", "no"]);
    let (_second, mut r2) = Replica::attach(&mut c, warp.port, "repl-stream-second");
    assert_same(&contents(&mut r2), &contents(&mut c));
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "2");
}

#[test]
fn wait_counts_the_replicas_that_acknowledged() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    // No replica: WAIT answers 0 at once with a timeout of 0 asked... after its timeout.
    ok(&mut c, &["SET", "w:a", "1"]);
    assert_eq!(c.call(&["WAIT", "0", "0"]), Resp::Int(0));
    let started = Instant::now();
    assert_eq!(c.call(&["WAIT", "1", "200"]), Resp::Int(0));
    assert!(started.elapsed() >= Duration::from_millis(190));
    // Without replicas nothing enters the stream (no GETACK): its offset stays 0, as Redis's.
    assert_eq!(info_field(&mut c, "replication", "master_repl_offset"), "0");
    let (_replica, _r) = Replica::attach(&mut c, warp.port, "repl-wait");
    ok(&mut c, &["SET", "w:b", "2"]);
    // The replica acknowledges at GETACK's request, well before the timeout.
    let started = Instant::now();
    assert_eq!(c.call(&["WAIT", "1", "5000"]), Resp::Int(1));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(c.call(&["WAIT", "2", "300"]), Resp::Int(1));
    assert_eq!(
        c.call(&["WAIT", "x", "300"]),
        Resp::Error("ERR value is not an integer or out of range".into())
    );
    assert_eq!(
        c.call(&["WAIT", "1", "-1"]),
        Resp::Error("ERR timeout is negative".into())
    );
    // ROLE names the replica with its acknowledged offset; the offset is the stream's.
    let Resp::Array(role) = c.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    let offset = info_field(&mut c, "replication", "master_repl_offset");
    assert_eq!(role[1], Resp::Int(offset.parse().unwrap()));
    let slave0 = info_field(&mut c, "replication", "slave0");
    assert!(slave0.contains(",state=online,offset="), "{slave0}");
    // min-replicas-to-write: one good replica is enough, two are not.
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    ok(&mut c, &["SET", "w:c", "3"]);
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "2"]);
    assert_eq!(
        c.call(&["SET", "w:d", "4"]),
        Resp::Error("NOREPLICAS Not enough good replicas to write.".into())
    );
    assert_eq!(c.call(&["GET", "w:c"]), Resp::Bulk(b"3".to_vec()));
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    ok(&mut c, &["SET", "w:d", "4"]);
}

/// A server (two workers) whose replicas may leave `limit` unsent
/// (`client-output-buffer-limit replica`), a client, and a replica's handshake on its own
/// connection once it is online: the stream from its first bytes read (the FULLRESYNC line and
/// what came with it); it reads nothing more unless the test does.
fn with_stalled_replica(limit: &str) -> (ServerProcess, RawConn, std::net::TcpStream, Vec<u8>) {
    let warp: ServerProcess = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    ok(
        &mut c,
        &["CONFIG", "SET", "client-output-buffer-limit", limit],
    );
    let mut link = RawConn::connect(warp.port);
    ok(&mut link, &["REPLCONF", "listening-port", "7999"]);
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    let mut stream = link.into_stream();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("the FULLRESYNC line");
    assert!(first[..n].starts_with(b"+FULLRESYNC"));
    wait_for("the replica online", || {
        info_field(&mut c, "replication", "slave0").contains("state=online")
    });
    (warp, c, stream, first[..n].to_vec())
}

/// A write reaches the replicas before its client's reply, as in Redis (which writes its
/// replicas' buffers before the clients' replies in one loop iteration): when the client has
/// the reply, the write is already in the replica's socket (loopback delivers a send at
/// once), so a client reading a replica right after its write finds it there. Clients on both
/// workers; the link's task runs on one of them.
#[test]
fn a_write_reaches_the_replica_before_its_reply() {
    let (warp, _c, mut stream, first) = with_stalled_replica("replica 0 0 0");
    let mut seen = first;
    let read_available = |stream: &mut std::net::TcpStream, seen: &mut Vec<u8>| {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => panic!("the primary closed the replica's link"),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("{e}"),
            }
        }
    };
    let has =
        |seen: &[u8], needle: &str| seen.windows(needle.len()).any(|w| w == needle.as_bytes());
    let mut clients: Vec<RawConn> = (0..4).map(|_| RawConn::connect(warp.port)).collect();
    // Past the RDB: the stream is live once a first write shows up in it.
    ok(&mut clients[0], &["SET", "rw:start", "v"]);
    stream.set_nonblocking(true).expect("nonblocking");
    wait_for("the first write in the stream", || {
        read_available(&mut stream, &mut seen);
        has(&seen, "rw:start")
    });
    seen.clear();
    for i in 0..400 {
        let key = format!("rw:{i:05}");
        ok(&mut clients[i % 4], &["SET", &key, "v"]);
        read_available(&mut stream, &mut seen);
        assert!(
            has(&seen, &key),
            "write {i} was not in the replica's socket at its reply"
        );
        seen.clear();
    }
}

/// A replica's unsent stream is left out of what maxmemory counts by what its buffers take
/// in used_memory, as Redis 7.0's unit/maxmemory checks ("slave buffer are counted
/// correctly"): at tens of MB the allocator rounds a buffer up by megabytes past its
/// capacity, which counting capacities left counted (3 MB at a 53 MB stream).
#[test]
fn a_stalled_replicas_stream_is_left_out_of_maxmemory_whole() {
    let (_warp, mut c, _stream, _) = with_stalled_replica("replica 0 0 0");
    let counted = |c: &mut RawConn| -> i64 {
        let field = |c: &mut RawConn, name| info_field(c, "memory", name).parse::<i64>().unwrap();
        field(c, "used_memory")
            - field(c, "mem_not_counted_for_evict")
            - field(c, "mem_clients_normal")
    };
    // Counted, as in Redis: the key, and the backlog (1 MB) once full.
    let value = "v".repeat(64 * 1024);
    for _ in 0..32 {
        ok(&mut c, &["SET", "big", &value]);
    }
    let before = counted(&mut c);
    let mut worst = 0i64;
    for i in 0..900 {
        ok(&mut c, &["SET", "big", &value]);
        if i % 50 == 49 {
            worst = worst.max((counted(&mut c) - before).abs());
        }
    }
    let unsent: u64 = info_field(&mut c, "memory", "mem_clients_slaves")
        .parse()
        .unwrap();
    assert!(unsent > 40 * 1024 * 1024, "{unsent}");
    assert!(worst < 512 * 1024, "counted memory moved by {worst}");
}

#[test]
fn a_replica_that_stops_reading_is_dropped_at_its_output_limit() {
    let (_warp, mut c, mut stream, first) = with_stalled_replica("replica 4mb 2mb 60");
    // WAIT asks the replica for an ACK through the stream; once it acknowledges the offset,
    // WAIT counts it.
    ok(&mut c, &["SET", "small", "1"]);
    assert_eq!(c.call(&["WAIT", "1", "100"]), Resp::Int(0));
    let getack = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
    let mut seen = first;
    while !seen.windows(getack.len()).any(|w| w == getack) {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("the stream");
        assert!(n > 0, "link closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let offset = info_field(&mut c, "replication", "master_repl_offset");
    let ack = format!(
        "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{offset}\r\n",
        offset.len()
    );
    std::io::Write::write_all(&mut stream, ack.as_bytes()).unwrap();
    wait_for("the ACK", || {
        info_field(&mut c, "replication", "slave0").contains(&format!(",offset={offset},"))
    });
    assert_eq!(c.call(&["WAIT", "1", "100"]), Resp::Int(1));
    let before: u64 = info_field(&mut c, "memory", "used_memory").parse().unwrap();
    // 64 MB of writes to one key: the stream carries all of it, the replica reads none.
    let value = "v".repeat(64 * 1024);
    let mut peak = before;
    let mut unsent_seen = 0u64;
    let mut counted_peak = before;
    for _ in 0..1024 {
        ok(&mut c, &["SET", "big", &value]);
        if info_field(&mut c, "replication", "connected_slaves") == "0" {
            break;
        }
        let used: u64 = info_field(&mut c, "memory", "used_memory").parse().unwrap();
        peak = peak.max(used);
        let unsent = info_field(&mut c, "memory", "mem_clients_slaves")
            .parse()
            .unwrap();
        unsent_seen = unsent_seen.max(unsent);
        let not_counted: u64 = info_field(&mut c, "memory", "mem_not_counted_for_evict")
            .parse()
            .unwrap();
        counted_peak = counted_peak.max(used.saturating_sub(not_counted));
    }
    // What maxmemory counts does not grow with the stream: the outbox's buffers are left out
    // whole, their room included (counting only the bytes in them left up to as much again
    // counted, and keys evicted for it).
    assert!(
        counted_peak < before + 2 * 1024 * 1024,
        "{counted_peak} against {before}"
    );
    assert_eq!(info_field(&mut c, "replication", "connected_slaves"), "0");
    // The unsent stream was counted (and left out of what maxmemory counts), then released.
    assert!(unsent_seen > 1024 * 1024, "{unsent_seen}");
    assert_eq!(info_field(&mut c, "memory", "mem_clients_slaves"), "0");
    assert_eq!(
        info_field(&mut c, "memory", "mem_not_counted_for_evict"),
        "0"
    );
    // The outbox never held more than the hard limit (and a backlog of 1 MB).
    assert!(
        peak < before + 16 * 1024 * 1024,
        "used_memory went from {before} to {peak}"
    );
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
}

#[test]
fn the_backlog_resizes_and_is_freed_after_its_ttl_without_replicas() {
    let warp = start_warpengine(&["--repl-backlog-ttl", "1"]);
    let mut c = RawConn::connect(warp.port);
    assert_eq!(
        info_field(&mut c, "replication", "repl_backlog_active"),
        "0"
    );
    let mut link = RawConn::connect(warp.port);
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    // (The backlog starts with the replica's full sync, just after its PSYNC.)
    wait_for("the replica online", || {
        info_field(&mut c, "replication", "connected_slaves") == "1"
            && info_field(&mut c, "replication", "repl_backlog_active") == "1"
    });
    ok(&mut c, &["CONFIG", "SET", "repl-backlog-size", "2mb"]);
    assert_eq!(
        info_field(&mut c, "replication", "repl_backlog_size"),
        "2097152"
    );
    ok(&mut c, &["SET", "k", "v"]);
    assert_ne!(info_field(&mut c, "replication", "master_repl_offset"), "0");
    // The replica goes; a second later the backlog is freed and writes stop feeding it.
    drop(link);
    wait_for("the backlog freed", || {
        info_field(&mut c, "replication", "repl_backlog_active") == "0"
    });
    let offset = info_field(&mut c, "replication", "master_repl_offset");
    ok(&mut c, &["SET", "k", "w"]);
    assert_eq!(
        info_field(&mut c, "replication", "master_repl_offset"),
        offset
    );
}

#[test]
fn a_replica_link_is_not_an_idle_client() {
    let warp = start_warpengine(&["--timeout", "1"]);
    let mut c = RawConn::connect(warp.port);
    let mut link = RawConn::connect(warp.port);
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    wait_for("the replica online", || {
        info_field(&mut c, "replication", "connected_slaves") == "1"
    });
    // `timeout` closes idle clients, not replicas (whose links carry nothing for a while).
    std::thread::sleep(Duration::from_millis(2500));
    let mut c = RawConn::connect(warp.port);
    assert_eq!(info_field(&mut c, "replication", "connected_slaves"), "1");
    drop(link);
}

#[test]
fn keys_evicted_by_maxmemory_leave_the_replica_too() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    let (_replica, mut r) = Replica::attach(&mut c, warp.port, "repl-evict");
    let used: u64 = info_field(&mut c, "memory", "used_memory").parse().unwrap();
    let limit = (used + 2 * 1024 * 1024).to_string();
    ok(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    ok(&mut c, &["CONFIG", "SET", "maxmemory", &limit]);
    let value = "e".repeat(1000);
    for i in 0..6000 {
        ok(&mut c, &["SET", &format!("evict:{i}"), &value]);
    }
    let evicted: u64 = info_field(&mut c, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 0, "nothing was evicted");
    // Reads and the workers' tick make room too (as Redis's commands do): the limit goes
    // before the two sides are read, so that nothing more is evicted meanwhile.
    ok(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
    caught_up(&mut c, &mut r);
    assert_eq!(r.call(&["DBSIZE"]), c.call(&["DBSIZE"]));
    assert_same(&contents(&mut r), &contents(&mut c));
}

/// WAIT counts the replicas that acknowledged this client's own last write (Redis's
/// `c->woff`), not the whole stream: a client that wrote nothing gets every online replica at
/// once while others write. The replica here acknowledges only the offset of its full sync.
#[test]
fn wait_counts_acknowledgements_of_the_clients_own_writes() {
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    ok(&mut c, &["SET", "before", "1"]);
    let mut link = RawConn::connect(warp.port);
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    let mut stream = link.into_stream();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("the FULLRESYNC line");
    let line = String::from_utf8_lossy(&first[..n]).into_owned();
    let offset = line
        .strip_prefix("+FULLRESYNC ")
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("+FULLRESYNC <id> <offset>")
        .to_string();
    let ack = format!(
        "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{offset}\r\n",
        offset.len()
    );
    std::io::Write::write_all(&mut stream, ack.as_bytes()).unwrap();
    wait_for("the ACK", || {
        info_field(&mut c, "replication", "connected_slaves") == "1"
            && info_field(&mut c, "replication", "slave0").contains(&format!(",offset={offset},"))
    });
    // `c` wrote before the replica synced: its write is acknowledged.
    assert_eq!(c.call(&["WAIT", "1", "100"]), Resp::Int(1));
    // Another client writes: its write is not acknowledged, and does not hold up `c`'s WAIT
    // nor that of a client that wrote nothing.
    let mut writer = RawConn::connect(warp.port);
    ok(&mut writer, &["SET", "later", "2"]);
    assert_eq!(writer.call(&["WAIT", "1", "100"]), Resp::Int(0));
    let mut reader = RawConn::connect(warp.port);
    assert_eq!(reader.call(&["GET", "later"]), Resp::Bulk(b"2".to_vec()));
    let started = Instant::now();
    assert_eq!(reader.call(&["WAIT", "1", "5000"]), Resp::Int(1));
    assert_eq!(c.call(&["WAIT", "1", "5000"]), Resp::Int(1));
    assert!(started.elapsed() < Duration::from_secs(1));
    // Inside a transaction, too (WAIT answers at once there).
    ok(&mut writer, &["MULTI"]);
    writer.call(&["WAIT", "1", "0"]);
    assert_eq!(writer.call(&["EXEC"]), Resp::Array(vec![Resp::Int(0)]));
    ok(&mut c, &["MULTI"]);
    c.call(&["WAIT", "1", "0"]);
    assert_eq!(c.call(&["EXEC"]), Resp::Array(vec![Resp::Int(1)]));
    drop(stream);
}

#[test]
fn wait_is_refused_on_a_replica_as_by_redis() {
    if !redis_available() {
        return;
    }
    let primary = start_warpengine(&[]);
    let port = primary.port.to_string();
    let warp = start_warpengine(&["--replicaof", "127.0.0.1", &port]);
    let redis = warpengine_tests::start_redis(&["--replicaof", "127.0.0.1", &port]);
    let (mut w, mut r) = (RawConn::connect(warp.port), RawConn::connect(redis.port));
    let reply = w.call(&["WAIT", "0", "0"]);
    assert!(
        matches!(&reply, Resp::Error(e) if e.starts_with("ERR WAIT cannot")),
        "{reply:?}"
    );
    assert_eq!(reply, r.call(&["WAIT", "0", "0"]));
}

/// A connection that asked for SYNC: the RDB skipped, then the stream's commands as text.
struct StreamTap {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    /// `until_mark` keeps the SELECTs too.
    keep_selects: bool,
}

impl StreamTap {
    fn attach(port: u16) -> StreamTap {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"REPLCONF listening-port 1\r\n").unwrap();
        let mut tap = StreamTap {
            stream,
            buf: Vec::new(),
            keep_selects: false,
        };
        // Redis refuses SYNC while a reply is still to be sent: +OK first.
        assert_eq!(tap.line(), "+OK");
        tap.stream.write_all(b"SYNC\r\n").unwrap();
        // The RDB's `$<len>` line after any keep-alive newlines, then its bytes.
        let len = loop {
            let line = tap.line();
            if let Some(len) = line.strip_prefix('$') {
                break len.parse::<usize>().unwrap();
            }
        };
        while tap.buf.len() < len {
            tap.fill();
        }
        tap.buf.drain(..len);
        tap
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("the stream");
        assert!(n > 0, "the stream ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return line;
            }
            self.fill();
        }
    }

    /// The commands up to the marker `SET __mark__ <n>`, as lower-cased names and arguments,
    /// with millisecond times as `<ms>`, SELECTs and PINGs left out.
    fn until_mark(&mut self, n: usize) -> Vec<String> {
        let mark = format!("set __mark__ {n}");
        let mut out = Vec::new();
        loop {
            let Some(len) = warpengine_tests::reply_len(&self.buf, 0) else {
                self.fill();
                continue;
            };
            let Resp::Array(items) = Resp::parse(&self.buf[..len]) else {
                panic!(
                    "not a command: {:?}",
                    String::from_utf8_lossy(&self.buf[..len])
                )
            };
            self.buf.drain(..len);
            let words: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let Resp::Bulk(b) = item else {
                        panic!("{item:?}")
                    };
                    let word = String::from_utf8_lossy(b).into_owned();
                    let ms = word.len() == 13 && word.bytes().all(|c| c.is_ascii_digit());
                    match (i, ms) {
                        (0, _) => word.to_ascii_lowercase(),
                        (_, true) => "<ms>".into(),
                        _ => word,
                    }
                })
                .collect();
            let command = words.join(" ");
            if command == mark {
                return out;
            }
            if words[0] != "ping" && (self.keep_selects || words[0] != "select") {
                out.push(command);
            }
        }
    }
}

/// Each write reaches the stream in the form redis-server 7.0 propagates it (compared with
/// one, command by command): relative expiries as absolute ones, GETSET/SET GET/INCRBYFLOAT/
/// GETDEL/HINCRBYFLOAT/GEOADD rewritten into their effect, and writes that changed nothing
/// (DEL of a missing key, SETNX of a present one, LPOP of a missing list ...) left out. One
/// worker, so no command's keys span shards (those go as the resulting state of each key).
#[test]
fn writes_are_propagated_in_the_form_redis_propagates_them() {
    if !redis_available() {
        return;
    }
    let redis = warpengine_tests::start_redis(&["--repl-diskless-sync", "no"]);
    let warp = start_warpengine(&["--threads", "1"]);
    let script: &[&str] = &[
        "set k v",
        "setnx k v2",
        "setnx k3 v",
        "getset k v3",
        "set k v4 get",
        "set k v5 nx",
        "set k v6 xx get",
        "set k7 v ex 100",
        "set k7 v2 keepttl",
        "set k7 v3 xx keepttl get",
        "set k8 v nx px 100000",
        "set k8 v xx exat 99999999999 get",
        "set k9 v keepttl",
        "eval redis.call('set',KEYS[1],'1','KEEPTTL') 1 k9",
        "eval redis.call('incrbyfloat',KEYS[1],1) 1 k9",
        "setrange k 1 xx",
        "append k yy",
        "incr n",
        "incrbyfloat f 1.5",
        "set f2 1.5 ex 100",
        "incrbyfloat f2 2",
        "getdel k3",
        "getdel nonexist",
        "getex k ex 100",
        "getex k persist",
        "getex k",
        "getex nonexist ex 5",
        "del nonexist",
        "unlink nonexist",
        "del k",
        "expire n 100",
        "expire nonexist 10",
        "pexpire n 0",
        "persist nonexist",
        "rpush l a b c d",
        "lpushx nol a",
        "lpop nol",
        "rpop nol 2",
        "lpop l",
        "linsert l before zz x",
        "linsert nol before b x",
        "lrem l 0 zz",
        "lmove nol l left right",
        "lmove l l2 left right",
        "sadd s a b c",
        "sadd s a",
        "srem s zz",
        "smove s s2 zz",
        "spop nos",
        "spop nos 2",
        "hset h a 1 b 2",
        "hsetnx h a 3",
        "hdel h zz",
        "hincrbyfloat h b 1.5",
        "zadd z 1 a 2 b",
        "zrem z zz",
        "zpopmin noz",
        "zremrangebyscore z 10 20",
        "pfadd hl a b",
        "pfadd hl a",
        "renamenx nonexist x",
        "geoadd g 13.361389 38.115556 Palermo",
        "geoadd g ch 15.087269 37.502669 Catania",
        "xadd x 1-1 a 1",
        "xadd x 2-1 b 2",
        "xgroup create x g 0",
        "xreadgroup group g c1 count 1 streams x >",
        "xreadgroup group g c1 count 1 streams x >",
        "xreadgroup group g c2 noack streams x 0",
        "xdel x 9-9",
        "xtrim x maxlen 5",
        "msetnx k7 a m b",
        "copy nonexist c",
    ];
    let streams: Vec<Vec<Vec<String>>> = [redis.port, warp.port]
        .into_iter()
        .map(|port| {
            let mut tap = StreamTap::attach(port);
            let mut c = RawConn::connect(port);
            script
                .iter()
                .enumerate()
                .map(|(n, command)| {
                    let args: Vec<&str> = command.split(' ').collect();
                    c.call(&args);
                    ok(&mut c, &["SET", "__mark__", &n.to_string()]);
                    tap.until_mark(n)
                })
                .collect()
        })
        .collect();
    let mismatches: Vec<String> = script
        .iter()
        .zip(streams[0].iter().zip(&streams[1]))
        .filter(|(_, (redis, warp))| redis != warp)
        .map(|(command, (redis, warp))| format!("{command}: redis {redis:?}, warp {warp:?}"))
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// SELECTs and the deletion of a key found expired by a blocked client woken on it come as
/// Redis sends them (Redis's list unit, 'SWAPDB wants to wake blocked client, but the key
/// already expired'), and a PUBLISH goes out in its client's database.
#[test]
fn an_expired_key_a_woken_client_finds_is_deleted_on_the_stream_at_once() {
    if !redis_available() {
        return;
    }
    let redis = warpengine_tests::start_redis(&["--enable-debug-command", "yes"]);
    let warp = start_warpengine(&["--threads", "2", "--enable-debug-command", "yes"]);
    let streams: Vec<Vec<String>> = [redis.port, warp.port]
        .into_iter()
        .map(|port| {
            let mut tap = StreamTap::attach(port);
            tap.keep_selects = true;
            let mut c = RawConn::connect(port);
            ok(&mut c, &["FLUSHALL"]);
            ok(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
            ok(&mut c, &["SELECT", "1"]);
            ok(&mut c, &["RPUSH", "k", "hello"]);
            ok(&mut c, &["PEXPIRE", "k", "100"]);
            let mut rd = RawConn::connect(port);
            ok(&mut rd, &["SELECT", "9"]);
            let id = rd.call(&["CLIENT", "ID"]).int().to_string();
            rd.send_command(&[b"BRPOP", b"k", b"1"]);
            warpengine_tests::wait_for_blocked(&mut c, 1);
            std::thread::sleep(Duration::from_millis(110));
            ok(&mut c, &["SWAPDB", "1", "9"]);
            assert_eq!(c.call(&["CLIENT", "UNBLOCK", &id]), Resp::Int(1));
            assert_eq!(rd.read_reply().unwrap(), b"*-1\r\n");
            ok(&mut c, &["PUBLISH", "news", "hi"]);
            ok(&mut c, &["SET", "__mark__", "0"]);
            ok(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
            tap.until_mark(0)
        })
        .collect();
    assert_eq!(streams[1], streams[0], "warp, then redis");
}

/// A move between keys on two shards (LMOVE, RPOPLPUSH, SMOVE, a served BRPOPLPUSH) goes out
/// as the command itself, as Redis propagates it (compared with redis-server), so a replica
/// runs and counts `rpoplpush` (Redis's replication unit checks its commandstats); its log
/// holds each shard's own pop and push, not both keys' whole state (a move off a list of
/// 20,000 items once wrote the whole list to the log and the stream).
#[test]
fn moves_between_shards_are_propagated_as_the_command_itself() {
    if !redis_available() {
        return;
    }
    let redis = warpengine_tests::start_redis(&[]);
    // "a"/"b" (slots 15495, 3300) and "s1"/"s2" (15224, 2843) are on different workers.
    let warp = start_warpengine(&["--threads", "2"]);
    let streams: Vec<Vec<String>> = [redis.port, warp.port]
        .into_iter()
        .map(|port| {
            let mut tap = StreamTap::attach(port);
            let mut c = RawConn::connect(port);
            let items: Vec<String> = (0..20_000).map(|i| format!("item{i}")).collect();
            let mut rpush: Vec<&str> = vec!["RPUSH", "a"];
            rpush.extend(items.iter().map(String::as_str));
            ok(&mut c, &rpush);
            ok(&mut c, &["SET", "__mark__", "0"]);
            tap.until_mark(0);
            assert_eq!(
                c.call(&["RPOPLPUSH", "a", "b"]),
                Resp::Bulk(b"item19999".to_vec())
            );
            ok(&mut c, &["LMOVE", "b", "a", "LEFT", "RIGHT"]);
            ok(&mut c, &["LMOVE", "a", "b", "LEFT", "LEFT"]);
            ok(&mut c, &["SADD", "s1", "m", "n"]);
            assert_eq!(c.call(&["SMOVE", "s1", "s2", "m"]), Resp::Int(1));
            assert_eq!(c.call(&["SMOVE", "s1", "s2", "absent"]), Resp::Int(0));
            let mut rd = RawConn::connect(port);
            rd.send_command(&[b"BRPOPLPUSH", b"empty", b"b", b"5"]);
            warpengine_tests::wait_for_blocked(&mut c, 1);
            ok(&mut c, &["LPUSH", "empty", "woken"]);
            assert_eq!(rd.read_reply().unwrap(), b"$5\r\nwoken\r\n");
            ok(&mut c, &["SET", "__mark__", "1"]);
            tap.until_mark(1)
        })
        .collect();
    assert_eq!(streams[1], streams[0], "warp, then redis");
    assert!(
        streams[1].contains(&"rpoplpush a b".to_string()),
        "{:?}",
        streams[1]
    );
}

/// The primary PINGs its replicas every `repl-ping-replica-period` whatever the traffic, as
/// Redis's replicationCron does (timed from each link's last bytes, no PING came while writes
/// kept coming, and one came a period after each burst, in step with clients acting once a
/// period).
#[test]
fn pings_come_every_period_while_writes_flow() {
    let (_warp, mut c, mut stream, _) = with_stalled_replica("replica 0 0 0");
    ok(&mut c, &["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let ping = b"*1\r\n$4\r\nPING\r\n";
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        ok(&mut c, &["INCR", "n"]);
        let mut buf = [0u8; 4096];
        if let Ok(n) = stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pings = seen.windows(ping.len()).filter(|w| w == ping).count();
    assert!(pings >= 2, "{pings} PINGs in 3.5 s of writes every 100 ms");
}
