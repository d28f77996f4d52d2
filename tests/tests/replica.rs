//! WarpEngine as a replica (REPLICAOF), with redis-server 7.0.15 as the primary: a full sync of
//! every type in several databases (the RDB disk-based and diskless), then a write load
//! (MULTI/EXEC, scripts, expiring keys, FLUSHDB, SELECT, big values) applied until the offsets
//! match, every key's value and TTL compared; read-only and stale-data refusals as
//! redis-server's; a live migration ending in REPLICAOF NO ONE with no acknowledged write lost;
//! partial resyncs after the link is cut from either side; masterauth/masteruser; the log
//! after a full sync; REPLICAOF's replies and INFO's fields as a redis-server replica's; and a
//! WarpEngine replica of WarpEngine (full sync), a sub-replica, and Redis Sentinel promoting a
//! WarpEngine replica.

use std::time::{Duration, Instant};

use warpengine_tests::dataset::{assert_same, contents};
use warpengine_tests::wait_for;
use warpengine_tests::{
    info_field, redis_available, start_redis, start_warpengine, RawConn, Resp, ServerProcess,
    TempDir,
};

/// Keys of every type in databases 0, 3 and 15, some with a TTL.
fn fill(c: &mut RawConn) {
    let writes: &[&[&str]] = &[
        &["SET", "str", "hello"],
        &["SET", "int", "12345"],
        &["SET", "ttl", "v", "PX", "500000"],
        &["RPUSH", "list", "a", "b", "c", "1"],
        &["HSET", "hash", "f1", "v1", "f2", "2"],
        &["SADD", "set", "x", "y", "z"],
        &["SADD", "intset", "1", "2", "3"],
        &["ZADD", "zset", "1.5", "m1", "-2", "m2"],
        &["PFADD", "hll", "a", "b", "c"],
        &["GEOADD", "geo", "13.361389", "38.115556", "Palermo"],
        &["XADD", "stream", "1-1", "f", "v"],
        &["XADD", "stream", "2-1", "g", "w"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "grp",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "stream",
            ">",
        ],
        &["EXPIRE", "hash", "9000"],
        &["SELECT", "3"],
        &["SET", "db3", "three"],
        &["LPUSH", "db3list", "q"],
        &["SELECT", "15"],
        &["ZADD", "db15zset", "3", "c"],
        &["SELECT", "0"],
    ];
    for w in writes {
        let reply = c.call(w);
        assert!(!matches!(reply, Resp::Error(_)), "{w:?}: {reply:?}");
    }
    let big: Vec<String> = (0..3000).map(|i| format!("item-{i}")).collect();
    for (kind, key) in [("RPUSH", "biglist"), ("SADD", "bigset")] {
        let mut args = vec![kind, key];
        args.extend(big.iter().map(String::as_str));
        c.call(&args);
    }
    let mut hset = vec!["HSET", "bighash"];
    hset.extend(big.iter().map(String::as_str));
    c.call(&hset[..hset.len() - 1]);
}

/// A redis-server primary that starts a diskless transfer at once (or a disk-based one).
fn redis_primary(diskless: bool) -> ServerProcess {
    let diskless = if diskless { "yes" } else { "no" };
    start_redis(&[
        "--repl-diskless-sync",
        diskless,
        "--repl-diskless-sync-delay",
        "0",
    ])
}

fn link_up(replica: &mut RawConn) -> bool {
    info_field(replica, "replication", "master_link_status") == "up"
}

/// Waits until the replica has applied everything the primary has sent so far.
fn wait_caught_up(primary: &mut RawConn, replica: &mut RawConn) {
    wait_for("the replica to catch up", || {
        let want = info_field(primary, "replication", "master_repl_offset");
        link_up(replica) && info_field(replica, "replication", "slave_repl_offset") == want
    });
}

fn ok(reply: Resp) {
    assert_eq!(reply, Resp::Simple("OK".into()));
}

/// The write load after the full sync: transactions, scripts, expiring keys, FLUSHDB in one
/// database, SELECT, a big value.
fn write_load(p: &mut RawConn) {
    for i in 0..200 {
        p.call(&["SET", &format!("k{i}"), &i.to_string()]);
    }
    p.call(&["MULTI"]);
    p.call(&["INCR", "counter"]);
    p.call(&["LPUSH", "list", "tx"]);
    p.call(&["HSET", "hash", "f3", "v3"]);
    p.call(&["EXEC"]);
    p.call(&[
        "EVAL",
        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], 5)",
        "2",
        "scripted",
        "counter",
        "from-lua",
    ]);
    p.call(&["SET", "short", "lived", "PX", "100"]);
    p.call(&["SET", "long", "lived", "EX", "7000"]);
    p.call(&["SELECT", "3"]);
    p.call(&["FLUSHDB"]);
    p.call(&["SET", "after-flush", "3"]);
    p.call(&["SELECT", "7"]);
    p.call(&["SADD", "db7set", "a", "b"]);
    p.call(&["SELECT", "0"]);
    let big = "x".repeat(3 * 1024 * 1024);
    p.call(&["SET", "big", &big]);
    p.call(&["XADD", "stream", "3-1", "h", "z"]);
    p.call(&["XACK", "stream", "grp", "1-1"]);
    p.call(&["ZINCRBY", "zset", "2", "m2"]);
    p.call(&["DEL", "int"]);
    // The primary expires `short` (actively or on this access) and sends its DEL.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(p.call(&["GET", "short"]), Resp::Nil);
}

#[test]
fn full_sync_of_every_type_then_the_stream_from_redis_server() {
    if !redis_available() {
        return;
    }
    for diskless in [false, true] {
        let redis = redis_primary(diskless);
        let mut p = RawConn::connect(redis.port);
        fill(&mut p);
        let rport = redis.port.to_string();
        let warp = start_warpengine(&["--threads", "2", "--replicaof", "127.0.0.1", &rport]);
        let mut r = RawConn::connect(warp.port);
        wait_caught_up(&mut p, &mut r);
        assert_same(&contents(&mut r), &contents(&mut p));
        write_load(&mut p);
        wait_caught_up(&mut p, &mut r);
        assert_same(&contents(&mut r), &contents(&mut p));
        assert_eq!(
            r.call(&["GET", "scripted"]),
            Resp::Bulk(b"from-lua".to_vec())
        );
        // ROLE, with the primary's offset once caught up.
        let offset = info_field(&mut p, "replication", "master_repl_offset");
        let Resp::Array(role) = r.call(&["ROLE"]) else {
            panic!("ROLE")
        };
        assert_eq!(role[0], Resp::Bulk(b"slave".to_vec()));
        assert_eq!(role[2], Resp::Int(redis.port as i64));
        assert_eq!(role[3], Resp::Bulk(b"connected".to_vec()));
        assert_eq!(role[4].int().to_string(), offset);
        // The same replication id: the replica's history is its primary's.
        assert_eq!(
            info_field(&mut r, "replication", "master_replid"),
            info_field(&mut p, "replication", "master_replid")
        );
    }
}

#[test]
fn a_replica_refuses_writes_and_stale_reads_as_redis_server_does() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let rport = redis.port.to_string();
    let warp = start_warpengine(&["--replicaof", "127.0.0.1", &rport]);
    let redis_replica = start_redis(&["--replicaof", "127.0.0.1", &rport]);
    let mut w = RawConn::connect(warp.port);
    let mut rr = RawConn::connect(redis_replica.port);
    for c in [&mut w, &mut rr] {
        wait_for("the link", || link_up(c));
    }
    let same = |w: &mut RawConn, rr: &mut RawConn, args: &[&str]| {
        let ours = w.call(args);
        assert_eq!(ours, rr.call(args), "{args:?}");
        ours
    };
    let readonly = Resp::Error("READONLY You can't write against a read only replica.".into());
    assert_eq!(same(&mut w, &mut rr, &["SET", "a", "b"]), readonly);
    assert_eq!(same(&mut w, &mut rr, &["GET", "a"]), Resp::Nil);
    for c in [&mut w, &mut rr] {
        ok(c.call(&["MULTI"]));
        assert_eq!(c.call(&["SET", "a", "b"]), readonly);
        let Resp::Error(e) = c.call(&["EXEC"]) else {
            panic!("EXEC")
        };
        assert!(e.starts_with("EXECABORT"), "{e}");
    }
    let Resp::Error(e) = w.call(&["EVAL", "return redis.call('SET', 'a', 'b')", "0"]) else {
        panic!("a script's write")
    };
    assert!(
        e.starts_with("READONLY You can't write against a read only replica."),
        "{e}"
    );
    same(
        &mut w,
        &mut rr,
        &["EVAL", "return redis.call('GET', 'a')", "0"],
    );
    // replica-read-only no: clients may write.
    ok(w.call(&["CONFIG", "SET", "replica-read-only", "no"]));
    ok(w.call(&["SET", "local", "1"]));
    ok(w.call(&["CONFIG", "SET", "replica-read-only", "yes"]));
    // With the link down and replica-serve-stale-data no, what is not `stale` is refused.
    drop(redis);
    for c in [&mut w, &mut rr] {
        ok(c.call(&["CONFIG", "SET", "replica-serve-stale-data", "no"]));
        wait_for("the link to drop", || !link_up(c));
    }
    let masterdown = Resp::Error(
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".into(),
    );
    for args in [&["GET", "a"][..], &["PING"], &["DBSIZE"], &["EXISTS", "a"]] {
        assert_eq!(same(&mut w, &mut rr, args), masterdown);
    }
    assert_eq!(same(&mut w, &mut rr, &["SET", "a", "b"]), readonly);
    for args in [&["ECHO", "hi"][..], &["TIME"], &["CONFIG", "GET", "port"]] {
        assert!(!matches!(w.call(args), Resp::Error(_)), "{args:?}");
    }
    assert_eq!(
        info_field(&mut w, "replication", "master_link_status"),
        "down"
    );
}

#[test]
fn replicaof_replies_and_info_fields_as_a_redis_server_replica() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let rport = redis.port.to_string();
    let warp = start_warpengine(&[]);
    let other = start_redis(&[]);
    let mut w = RawConn::connect(warp.port);
    let mut rr = RawConn::connect(other.port);
    let cases: &[&[&str]] = &[
        &["REPLICAOF", "127.0.0.1", "abc"],
        &["REPLICAOF", "127.0.0.1", "99999"],
        &["REPLICAOF", "127.0.0.1", "-1"],
        &["REPLICAOF", "x"],
        &["SLAVEOF", "NO", "ONE"],
        &["REPLICAOF", "no", "one"],
        &["ROLE"],
        &["REPLICAOF", "127.0.0.1", &rport],
        &["REPLICAOF", "127.0.0.1", &rport],
        &["SLAVEOF", "127.0.0.1", &rport],
    ];
    for args in cases {
        let ours = w.call(args);
        let theirs = rr.call(args);
        if args[0] == "ROLE" {
            // Offsets differ; the shape and the role do not.
            let (Resp::Array(a), Resp::Array(b)) = (&ours, &theirs) else {
                panic!("ROLE")
            };
            assert_eq!((a.len(), &a[0]), (b.len(), &b[0]));
            continue;
        }
        assert_eq!(ours, theirs, "{args:?}");
    }
    for c in [&mut w, &mut rr] {
        wait_for("the link", || link_up(c));
    }
    assert_eq!(
        w.call(&["CONFIG", "GET", "replicaof"]),
        rr.call(&["CONFIG", "GET", "replicaof"])
    );
    let fields = |c: &mut RawConn| -> Vec<String> {
        let Resp::Bulk(text) = c.call(&["INFO", "replication"]) else {
            panic!("INFO")
        };
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.to_string()))
            .collect()
    };
    assert_eq!(fields(&mut w), fields(&mut rr));
    let Resp::Array(role) = w.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    let Resp::Array(theirs) = rr.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    assert_eq!(role[..4], theirs[..4]);
    // A primary's link shows in CLIENT LIST with flag M, under no ACL user of this server, and
    // is of TYPE master.
    let mut list = |kind: &str| {
        let Resp::Bulk(list) = w.call(&["CLIENT", "LIST", "TYPE", kind]) else {
            panic!("CLIENT LIST")
        };
        String::from_utf8(list).unwrap()
    };
    let masters = list("master");
    assert_eq!(masters.lines().count(), 1, "{masters}");
    assert!(
        masters.contains(" flags=M ") && masters.contains(" user=(superuser) "),
        "{masters}"
    );
    assert!(!list("normal").contains(" flags=M "));
    // Pointed at nothing: the link cannot connect, and says so, until pointed elsewhere.
    drop(redis);
    for c in [&mut w, &mut rr] {
        wait_for("the link to drop", || !link_up(c));
        assert_ne!(
            info_field(c, "replication", "master_link_down_since_seconds"),
            "-1"
        );
    }
    assert_eq!(fields(&mut w), fields(&mut rr));
}

#[test]
fn live_migration_from_redis_server_loses_no_acknowledged_write() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let mut p = RawConn::connect(redis.port);
    for i in 0..5000 {
        p.send_command(&[b"SET", format!("pre:{i}").as_bytes(), b"v"]);
    }
    for _ in 0..5000 {
        p.read_reply();
    }
    let port = redis.port;
    let writer = std::thread::spawn(move || {
        let mut c = RawConn::connect(port);
        let mut acknowledged = Vec::new();
        for i in 0..3000 {
            let key = format!("live:{i}");
            if c.call(&["SET", &key, &i.to_string()]) == Resp::Simple("OK".into()) {
                acknowledged.push(key);
            }
            if i % 500 == 0 {
                c.call(&["INCR", "live:counter"]);
            }
        }
        acknowledged
    });
    let warp = start_warpengine(&["--threads", "2"]);
    let mut w = RawConn::connect(warp.port);
    ok(w.call(&["REPLICAOF", "127.0.0.1", &redis.port.to_string()]));
    let acknowledged = writer.join().unwrap();
    wait_caught_up(&mut p, &mut w);
    // The switch: the replica stops following and keeps everything.
    ok(w.call(&["REPLICAOF", "NO", "ONE"]));
    let Resp::Array(role) = w.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    assert_eq!(role[0], Resp::Bulk(b"master".to_vec()));
    for key in &acknowledged {
        assert!(w.call(&["EXISTS", key]).int() == 1, "{key} was lost");
    }
    assert_eq!(w.call(&["DBSIZE"]), p.call(&["DBSIZE"]));
    assert_eq!(w.call(&["GET", "live:counter"]), Resp::Bulk(b"6".to_vec()));
    // Now a primary: writes are taken, and the old history stays continuable as replid2.
    ok(w.call(&["SET", "after", "switch"]));
    assert_eq!(
        info_field(&mut w, "replication", "master_replid2"),
        info_field(&mut p, "replication", "master_replid")
    );
    assert_eq!(
        info_field(&mut w, "replication", "second_repl_offset"),
        (info_field(&mut p, "replication", "master_repl_offset")
            .parse::<u64>()
            .unwrap()
            + 1)
        .to_string()
    );
}

#[test]
fn a_cut_link_resumes_with_a_partial_resync() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let mut p = RawConn::connect(redis.port);
    fill(&mut p);
    let warp = start_warpengine(&["--replicaof", "127.0.0.1", &redis.port.to_string()]);
    let mut w = RawConn::connect(warp.port);
    wait_caught_up(&mut p, &mut w);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
    let partial = |p: &mut RawConn| info_field(p, "stats", "sync_partial_ok");
    assert_eq!(partial(&mut p), "0");
    // The stream's last SELECT was of db 5: what continues after the cut (no SELECT again)
    // lands there too.
    ok(p.call(&["SELECT", "5"]));
    ok(p.call(&["SET", "in-db5", "before"]));
    wait_caught_up(&mut p, &mut w);
    // Cut from the replica's side, then write while it reconnects.
    assert_eq!(w.call(&["CLIENT", "KILL", "TYPE", "master"]), Resp::Int(1));
    ok(p.call(&["SET", "in-db5-too", "while-cut"]));
    ok(p.call(&["SELECT", "0"]));
    wait_for("a partial resync", || partial(&mut p) == "1");
    // Cut from the primary's side.
    assert_eq!(p.call(&["CLIENT", "KILL", "TYPE", "replica"]), Resp::Int(1));
    p.call(&["RPUSH", "list", "while-cut-again"]);
    wait_for("a second partial resync", || partial(&mut p) == "2");
    wait_caught_up(&mut p, &mut w);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
    assert_same(&contents(&mut w), &contents(&mut p));
}

#[test]
fn masterauth_and_masteruser_against_a_primary_that_requires_them() {
    if !redis_available() {
        return;
    }
    let redis = start_redis(&["--requirepass", "s3cret", "--repl-diskless-sync-delay", "0"]);
    let mut p = RawConn::connect(redis.port);
    ok(p.call(&["AUTH", "s3cret"]));
    ok(p.call(&["SET", "guarded", "1"]));
    let warp = start_warpengine(&[]);
    let mut w = RawConn::connect(warp.port);
    ok(w.call(&["REPLICAOF", "127.0.0.1", &redis.port.to_string()]));
    // Without the password the link does not come up.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!link_up(&mut w));
    ok(w.call(&["CONFIG", "SET", "masterauth", "s3cret"]));
    wait_caught_up(&mut p, &mut w);
    assert_eq!(w.call(&["GET", "guarded"]), Resp::Bulk(b"1".to_vec()));
    // An ACL user of the primary: masteruser and its password.
    ok(p.call(&["ACL", "SETUSER", "repl", "on", ">r3pl", "+@all", "~*"]));
    ok(p.call(&["CONFIG", "SET", "requirepass", "other"]));
    ok(w.call(&["CONFIG", "SET", "masteruser", "repl"]));
    ok(w.call(&["CONFIG", "SET", "masterauth", "r3pl"]));
    assert_eq!(w.call(&["CLIENT", "KILL", "TYPE", "master"]), Resp::Int(1));
    ok(p.call(&["SET", "guarded", "2"]));
    wait_for("the link as user repl", || {
        w.call(&["GET", "guarded"]) == Resp::Bulk(b"2".to_vec())
    });
}

#[test]
fn with_the_log_on_a_restart_after_a_full_sync_has_the_same_data() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(false);
    let mut p = RawConn::connect(redis.port);
    fill(&mut p);
    let dir = TempDir::new("replica-log");
    let args = ["--appendonly", "yes", "--dir", dir.path(), "--threads", "2"];
    let expected = {
        let warp = start_warpengine(&args);
        let mut w = RawConn::connect(warp.port);
        // Data of its own, which the full sync replaces.
        ok(w.call(&["SET", "mine", "gone after the sync"]));
        ok(w.call(&["REPLICAOF", "127.0.0.1", &redis.port.to_string()]));
        wait_caught_up(&mut p, &mut w);
        ok(p.call(&["SET", "streamed", "1"]));
        p.call(&["SELECT", "3"]);
        p.call(&["DEL", "db3"]);
        p.call(&["SELECT", "0"]);
        wait_caught_up(&mut p, &mut w);
        ok(w.call(&["REPLICAOF", "NO", "ONE"]));
        let expected = contents(&mut p);
        assert_same(&contents(&mut w), &expected);
        expected
    };
    let warp = start_warpengine(&args);
    let mut w = RawConn::connect(warp.port);
    assert_same(&contents(&mut w), &expected);
}

#[test]
fn warpengine_replicates_from_warpengine_with_a_full_sync() {
    let primary = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    fill(&mut p);
    let replica = start_warpengine(&["--threads", "3"]);
    let mut w = RawConn::connect(replica.port);
    ok(w.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]));
    wait_for("the link", || link_up(&mut w));
    assert_same(&contents(&mut w), &contents(&mut p));
    // The primary lists it under its listening port, with the offset it acknowledged.
    let offset = info_field(&mut w, "replication", "slave_repl_offset");
    let expected = Resp::Array(vec![Resp::Array(vec![
        Resp::Bulk(b"127.0.0.1".to_vec()),
        Resp::Bulk(replica.port.to_string().into_bytes()),
        Resp::Bulk(offset.into_bytes()),
    ])]);
    wait_for("the primary's ROLE to list the replica", || {
        let Resp::Array(role) = p.call(&["ROLE"]) else {
            panic!("ROLE")
        };
        role[2] == expected
    });
}

/// The replica's side of the wire, against a primary scripted here: the handshake, newline
/// keep-alives before a diskless RDB, the stream right after the EOF mark in the same write,
/// GETACK answered with the offset before it, a transaction held until its EXEC (so a cut in
/// the middle resumes before its MULTI), and PSYNC with the history after the cut.
#[test]
fn the_link_speaks_the_protocol_to_a_scripted_primary() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    fn read_command(r: &mut BufReader<TcpStream>) -> Vec<String> {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let n: usize = line
            .trim_end()
            .strip_prefix('*')
            .expect("an array")
            .parse()
            .unwrap();
        (0..n)
            .map(|_| {
                line.clear();
                r.read_line(&mut line).unwrap();
                let len: usize = line.trim_end()[1..].parse().unwrap();
                let mut arg = vec![0; len + 2];
                std::io::Read::read_exact(r, &mut arg).unwrap();
                String::from_utf8(arg[..len].to_vec()).unwrap()
            })
            .collect()
    }
    fn command(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }
    /// Answers the handshake up to PSYNC; its arguments.
    fn handshake(listener: &TcpListener, replica_port: u16) -> (TcpStream, Vec<String>) {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut w = stream.try_clone().unwrap();
        assert_eq!(read_command(&mut r), ["PING"]);
        w.write_all(b"+PONG\r\n").unwrap();
        let port = replica_port.to_string();
        assert_eq!(read_command(&mut r), ["REPLCONF", "listening-port", &port]);
        w.write_all(b"+OK\r\n").unwrap();
        assert_eq!(
            read_command(&mut r),
            ["REPLCONF", "capa", "eof", "capa", "psync2"]
        );
        w.write_all(b"+OK\r\n").unwrap();
        let psync = read_command(&mut r);
        (stream, psync)
    }
    /// Reads the replica's commands until an ACK, which must carry `offset`.
    fn expect_ack(r: &mut BufReader<TcpStream>, offset: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ack = read_command(r);
            assert_eq!(ack[..2], ["REPLCONF", "ACK"], "{ack:?}");
            let got: usize = ack[2].parse().unwrap();
            if got == offset {
                return;
            }
            assert!(
                got < offset && Instant::now() < deadline,
                "ACK {got}, expected {offset}"
            );
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary_port = listener.local_addr().unwrap().port();
    let warp = start_warpengine(&[]);
    let mut w = RawConn::connect(warp.port);
    let own = info_field(&mut w, "replication", "master_replid");
    ok(w.call(&["REPLICAOF", "127.0.0.1", &primary_port.to_string()]));
    // A primary turned replica asks to continue its own history, as redis-server does.
    let (mut stream, psync) = handshake(&listener, warp.port);
    assert_eq!(psync, ["PSYNC", &own, "1"]);
    let replid = "a".repeat(40);
    let mark = "m".repeat(40);
    let set_a = command(&["SET", "a", "1"]);
    let getack = command(&["REPLCONF", "GETACK", "*"]);
    // Keep-alive newlines before the PSYNC's answer, and before the RDB.
    let mut out = format!("\n\n+FULLRESYNC {replid} 100\r\n\n\n$EOF:{mark}\r\n").into_bytes();
    // An empty RDB (no checksum), the mark, then the stream at once.
    out.extend_from_slice(b"REDIS0010\xff\0\0\0\0\0\0\0\0");
    out.extend_from_slice(mark.as_bytes());
    out.extend_from_slice(&set_a);
    out.extend_from_slice(&getack);
    stream.write_all(&out).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    expect_ack(&mut r, 100 + set_a.len());
    assert_eq!(w.call(&["GET", "a"]), Resp::Bulk(b"1".to_vec()));
    let applied = 100 + set_a.len() + getack.len();
    // Half a transaction: held, not applied, not counted.
    let multi = command(&["MULTI"]);
    let set_b = command(&["SET", "b", "2"]);
    stream
        .write_all(&[multi.clone(), set_b.clone()].concat())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.call(&["GET", "b"]), Resp::Nil);
    let offset = info_field(&mut w, "replication", "slave_repl_offset");
    assert_eq!(offset, applied.to_string());
    assert_eq!(
        info_field(&mut w, "replication", "slave_read_repl_offset"),
        (applied + multi.len() + set_b.len()).to_string()
    );
    // The cut: the replica asks to continue after what it applied, and gets the whole
    // transaction again.
    drop(r);
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    let (mut stream, psync) = handshake(&listener, warp.port);
    assert_eq!(psync, ["PSYNC", &replid, &(applied + 1).to_string()]);
    let exec = command(&["EXEC"]);
    let mut out = b"+CONTINUE\r\n".to_vec();
    out.extend_from_slice(&[multi.clone(), set_b.clone(), exec.clone()].concat());
    stream.write_all(&out).unwrap();
    wait_for("the transaction", || {
        w.call(&["GET", "b"]) == Resp::Bulk(b"2".to_vec())
    });
    let total = applied + multi.len() + set_b.len() + exec.len();
    wait_for("the offset", || {
        info_field(&mut w, "replication", "slave_repl_offset") == total.to_string()
    });
    assert_eq!(info_field(&mut w, "replication", "master_replid"), replid);
    // Another cut, and a full resync in the disk form, half sent: INFO shows its progress.
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    let (mut stream, psync) = handshake(&listener, warp.port);
    assert_eq!(psync, ["PSYNC", &replid, &(total + 1).to_string()]);
    let rdb = b"REDIS0010\xff\0\0\0\0\0\0\0\0";
    let header = format!("+FULLRESYNC {} 500\r\n${}\r\n", "b".repeat(40), rdb.len());
    stream
        .write_all(&[header.as_bytes(), &rdb[..4]].concat())
        .unwrap();
    wait_for("the transfer", || {
        let Resp::Bulk(info) = w.call(&["INFO", "replication"]) else {
            panic!("INFO")
        };
        String::from_utf8_lossy(&info).contains("\r\nmaster_sync_read_bytes:4\r\n")
    });
    let field = |w: &mut RawConn, name: &str| info_field(w, "replication", name);
    assert_eq!(field(&mut w, "master_sync_in_progress"), "1");
    assert_eq!(
        field(&mut w, "master_sync_total_bytes"),
        rdb.len().to_string()
    );
    assert_eq!(
        field(&mut w, "master_sync_left_bytes"),
        (rdb.len() - 4).to_string()
    );
    assert_eq!(field(&mut w, "master_link_status"), "down");
    let Resp::Array(role) = w.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    assert_eq!(role[3], Resp::Bulk(b"sync".to_vec()));
    stream.write_all(&rdb[4..]).unwrap();
    wait_for("the full resync", || link_up(&mut w));
    // The full resync emptied the databases.
    assert_eq!(w.call(&["DBSIZE"]), Resp::Int(0));
    assert_eq!(field(&mut w, "slave_repl_offset"), "500");
}

/// A redis-server replica of a WarpEngine replica (a chain): its full sync carries the top
/// primary's history (id and offset) and data.
#[test]
fn a_sub_replica_syncs_the_top_primary_s_history() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let mut p = RawConn::connect(redis.port);
    fill(&mut p);
    let warp = start_warpengine(&["--replicaof", "127.0.0.1", &redis.port.to_string()]);
    let mut w = RawConn::connect(warp.port);
    wait_caught_up(&mut p, &mut w);
    let sub = start_redis(&["--replicaof", "127.0.0.1", &warp.port.to_string()]);
    let mut s = RawConn::connect(sub.port);
    wait_for("the sub-replica's link", || link_up(&mut s));
    assert_same(&contents(&mut s), &contents(&mut p));
    assert_eq!(
        info_field(&mut s, "replication", "master_replid"),
        info_field(&mut p, "replication", "master_replid")
    );
    assert_eq!(
        info_field(&mut s, "replication", "slave_repl_offset"),
        info_field(&mut p, "replication", "master_repl_offset")
    );
}

/// Redis Sentinel (7.0.15) watching a WarpEngine primary with a WarpEngine replica finds the
/// replica through the primary's INFO, and promotes it when the primary dies: it reads the
/// replica's INFO replication and sends `MULTI, SLAVEOF NO ONE, CONFIG REWRITE, CLIENT KILL
/// TYPE normal, EXEC`.
#[test]
fn sentinel_promotes_a_warpengine_replica_when_its_primary_dies() {
    use std::process::{Child, Command, Stdio};
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let sentinel_available = Command::new("redis-sentinel")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !sentinel_available {
        return;
    }
    let mut primary = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    fill(&mut p);
    let replica = start_warpengine(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut w = RawConn::connect(replica.port);
    wait_for("the link", || link_up(&mut w));
    let expected = contents(&mut p);
    let dir = TempDir::new("sentinel");
    let config = format!("{}/sentinel.conf", dir.path());
    let sentinel_port = warpengine_tests::free_port();
    std::fs::write(
        &config,
        format!(
            "port {sentinel_port}\ndir {}\nsentinel monitor top 127.0.0.1 {} 1\nsentinel down-after-milliseconds top 1000\nsentinel failover-timeout top 5000\n",
            dir.path(),
            primary.port
        ),
    )
    .unwrap();
    let _sentinel = Killed(
        Command::new("redis-sentinel")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel"),
    );
    wait_for("the sentinel", || {
        std::net::TcpStream::connect(("127.0.0.1", sentinel_port)).is_ok()
    });
    let mut s = RawConn::connect(sentinel_port);
    wait_for(
        "the sentinel to see the replica",
        || matches!(s.call(&["SENTINEL", "REPLICAS", "top"]), Resp::Array(r) if r.len() == 1),
    );
    primary.kill9();
    let promoted = Resp::Array(vec![
        Resp::Bulk(b"127.0.0.1".to_vec()),
        Resp::Bulk(replica.port.to_string().into_bytes()),
    ]);
    wait_for("the failover", || {
        s.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "top"]) == promoted
    });
    // (Sentinel's CLIENT KILL TYPE normal closed the connection.)
    let mut w = RawConn::connect(replica.port);
    let Resp::Array(role) = w.call(&["ROLE"]) else {
        panic!("ROLE")
    };
    assert_eq!(role[0], Resp::Bulk(b"master".to_vec()));
    assert_same(&contents(&mut w), &expected);
    ok(w.call(&["SET", "after", "failover"]));
}

/// `replica-announce-ip` and `replica-announce-port` are what the primary reports.
#[test]
fn the_primary_reports_the_announced_address() {
    if !redis_available() {
        return;
    }
    let redis = redis_primary(true);
    let mut p = RawConn::connect(redis.port);
    let rport = redis.port.to_string();
    let announced = [
        "--replica-announce-ip",
        "10.9.8.7",
        "--replica-announce-port",
        "4321",
    ];
    let warp = start_warpengine(&[&["--replicaof", "127.0.0.1", &rport][..], &announced].concat());
    let mut w = RawConn::connect(warp.port);
    wait_caught_up(&mut p, &mut w);
    let slave = info_field(&mut p, "replication", "slave0");
    assert!(slave.starts_with("ip=10.9.8.7,port=4321,"), "{slave}");
}

/// `bind-source-addr`: the replica's link to its primary leaves from that address, which the
/// primary then shows for it (Redis's networking unit).
#[test]
fn the_replica_link_leaves_from_bind_source_addr() {
    let primary = start_warpengine(&["--threads", "2"]);
    let replica = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    let mut r = RawConn::connect(replica.port);
    ok(r.call(&["CONFIG", "SET", "bind-source-addr", "127.0.0.2"]));
    ok(r.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]));
    wait_for("the link", || link_up(&mut r));
    let slave0 = info_field(&mut p, "replication", "slave0");
    assert!(slave0.starts_with("ip=127.0.0.2,"), "{slave0}");
}

/// CLIENT PAUSE WRITE on a replica holds its primary's stream: what arrives is read (INFO's
/// slave_read_repl_offset reaches the primary's offset) but not applied (slave_repl_offset
/// stays) until the pause ends, as Redis's (its pause unit).
#[test]
fn a_paused_replica_reads_its_stream_but_applies_it_after() {
    let primary = start_warpengine(&["--threads", "2"]);
    let replica = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    let mut r = RawConn::connect(replica.port);
    ok(p.call(&["CONFIG", "SET", "repl-ping-replica-period", "3600"]));
    ok(r.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]));
    ok(p.call(&["SET", "foo", "bar"]));
    wait_caught_up(&mut p, &mut r);
    let applied = info_field(&mut r, "replication", "slave_repl_offset");
    ok(r.call(&["CLIENT", "PAUSE", "100000", "WRITE"]));
    ok(p.call(&["SET", "foo2", "bar2"]));
    let target = info_field(&mut p, "replication", "master_repl_offset");
    wait_for("the stream read", || {
        info_field(&mut r, "replication", "slave_read_repl_offset") == target
    });
    assert_eq!(
        info_field(&mut r, "replication", "slave_repl_offset"),
        applied
    );
    ok(r.call(&["CLIENT", "UNPAUSE"]));
    wait_caught_up(&mut p, &mut r);
    assert_eq!(r.call(&["GET", "foo2"]), Resp::Bulk(b"bar2".to_vec()));
}

/// A client blocked on a key when its server becomes a replica is unblocked with Redis's
/// error and disconnected, so the primary's writes reach the replica's keys whole (Redis's
/// replication unit, 'BLPOP followed by role change, issue #2473').
#[test]
fn a_server_turned_replica_unblocks_its_blocked_clients() {
    let primary = start_warpengine(&[]);
    let replica = start_warpengine(&[]);
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    let mut blocked = RawConn::connect(replica.port);
    blocked.send_command(&[b"BLPOP", b"foo", b"0"]);
    warpengine_tests::wait_for_blocked(&mut r, 1);
    ok(r.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]));
    assert_eq!(
        Resp::parse(&blocked.read_reply().expect("the error")),
        Resp::Error(
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"
                .into()
        )
    );
    assert!(blocked.read_reply().is_none(), "the connection closes");
    wait_for("the link", || link_up(&mut r));
    assert_eq!(p.call(&["RPUSH", "foo", "a", "b", "c"]), Resp::Int(3));
    wait_caught_up(&mut p, &mut r);
    let all = ["LRANGE", "foo", "0", "-1"];
    assert_eq!(r.call(&all), p.call(&all));
    assert_eq!(info_field(&mut r, "clients", "blocked_clients"), "0");
}

/// A primary that stops answering during the handshake is given up after `repl-timeout` with
/// Redis's words (Redis's replication unit looks for them in the log).
#[test]
fn a_silent_primary_times_out_in_redis_s_words() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = TempDir::new("silent-primary");
    let log = format!("{}/log", dir.path());
    let replica = start_warpengine(&["--repl-timeout", "1", "--logfile", &log]);
    let mut r = RawConn::connect(replica.port);
    ok(r.call(&["REPLICAOF", "127.0.0.1", &port.to_string()]));
    // Accept and read the PING; answer nothing.
    let (mut held, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let _ = std::io::Read::read(&mut held, &mut buf);
    wait_for("the timeout in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Timeout connecting to the MASTER...")
    });
}
