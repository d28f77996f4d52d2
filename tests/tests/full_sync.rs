//! A replica's full sync served by a background walk (`replication::full_sync`): service goes
//! on while the RDB is made and sent, the writes made meanwhile reach the replica through the
//! stream, replicas that arrive within `repl-diskless-sync-delay` share one walk, a walk no
//! replica reads any more stops, and a running BGSAVE holds the sync until it ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use warpengine_tests::dataset::contents;
use warpengine_tests::{
    info_field, redis_available, start_redis, start_warpengine, wait_for, RawConn, Resp,
};

fn ok(c: &mut RawConn, args: &[&str]) {
    let reply = c.call(args);
    assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
}

/// `n` strings, and a list every tenth key, in databases 0, 2 and 9.
fn fill(c: &mut RawConn, n: usize) {
    for db in ["0", "2", "9"] {
        ok(c, &["SELECT", db]);
        for i in 0..n {
            let key = format!("k:{i}");
            if i % 10 == 0 {
                ok(c, &["RPUSH", &key, "a", "b", &i.to_string()]);
            } else {
                ok(c, &["SET", &key, &format!("value-{db}-{i}")]);
            }
        }
    }
    ok(c, &["SELECT", "0"]);
}

/// The link states of the primary's replicas, as INFO replication lists them.
fn link_states(c: &mut RawConn) -> Vec<String> {
    let Resp::Bulk(info) = c.call(&["INFO", "replication"]) else {
        panic!("INFO")
    };
    String::from_utf8(info)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("slave"))
        .filter_map(|l| l.split("state=").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn writes_made_during_a_slow_full_sync_reach_the_replica_and_service_goes_on() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "3"]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c, 300);
    // 900 keys at 2 ms each: the walk takes about 2 s.
    ok(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "2000"]);
    let redis = start_redis(&[]);
    let mut r = RawConn::connect(redis.port);
    ok(&mut r, &["REPLICAOF", "127.0.0.1", &warp.port.to_string()]);
    wait_for("the RDB to be on its way", || {
        link_states(&mut c) == ["send_bulk"]
    });
    // Service goes on meanwhile, and what is written now reaches the replica by the stream:
    // keys the walk has yet to reach and keys it has passed, changed, deleted and added.
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_bgsave_in_progress"),
        "1"
    );
    assert_eq!(c.call(&["GET", "k:1"]), Resp::Bulk(b"value-0-1".to_vec()));
    for db in ["0", "2", "9"] {
        ok(&mut c, &["SELECT", db]);
        for i in (0..300).step_by(7) {
            let key = format!("k:{i}");
            match i % 3 {
                0 => ok(&mut c, &["DEL", &key]),
                1 => ok(&mut c, &["SET", &key, "changed", "EX", "1000"]),
                _ => ok(&mut c, &["SET", &format!("new:{i}"), "added"]),
            }
        }
        ok(&mut c, &["RPUSH", "k:10", "pushed"]);
    }
    ok(&mut c, &["SELECT", "0"]);
    assert_eq!(
        link_states(&mut c),
        ["send_bulk"],
        "the RDB still on its way"
    );
    wait_for("the replica to catch up", || {
        info_field(&mut r, "replication", "master_link_status") == "up"
            && info_field(&mut r, "replication", "master_repl_offset")
                == info_field(&mut c, "replication", "master_repl_offset")
    });
    assert_eq!(link_states(&mut c), ["online"]);
    let expected = contents(&mut c);
    assert!(expected.contains_key("9/new:14") && !expected.contains_key("2/k:0"));
    assert_eq!(contents(&mut r), expected);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_bgsave_in_progress"),
        "0"
    );
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "1");
}

/// A replica's connection, raw: the handshake and PSYNC sent.
fn psync(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for cmd in [
        &["REPLCONF", "capa", "eof", "capa", "psync2"][..],
        &["PSYNC", "?", "-1"],
    ] {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        s.write_all(&warpengine_tests::encode_command(&args))
            .unwrap();
    }
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    s
}

/// Reads up to the first byte that is not a newline (the primary's keep-alives); None if
/// nothing but newlines came within `wait`.
fn first_byte(s: &mut TcpStream, wait: Duration) -> Option<u8> {
    let deadline = std::time::Instant::now() + wait;
    let mut b = [0u8; 1];
    let got = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => continue,
            Ok(1) => break Some(b[0]),
            _ => break None,
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    got
}

fn line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        s.read_exact(&mut b).unwrap();
        out.push(b[0]);
    }
    String::from_utf8(out[..out.len() - 2].to_vec()).unwrap()
}

/// The `+FULLRESYNC` line (its first byte already read) and the diskless RDB after it.
fn fullresync_and_rdb(s: &mut TcpStream, first: u8) -> (String, Vec<u8>) {
    let fullresync = format!("{}{}", first as char, line(s));
    let header = line(s);
    let mark = header.strip_prefix("$EOF:").expect("the diskless form");
    let mut rdb = Vec::new();
    let mut chunk = [0u8; 65536];
    while !rdb.ends_with(mark.as_bytes()) {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the primary closed the link in the RDB");
        rdb.extend_from_slice(&chunk[..n]);
    }
    rdb.truncate(rdb.len() - mark.len());
    (fullresync, rdb)
}

#[test]
fn replicas_arriving_within_the_delay_share_one_walk() {
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c, 100);
    ok(&mut c, &["CONFIG", "SET", "repl-diskless-sync-delay", "30"]);
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-diskless-sync-max-replicas", "2"],
    );
    let mut first = psync(warp.port);
    // The first waits (30 s, or a second replica), with newlines to keep its link alive.
    assert_eq!(first_byte(&mut first, Duration::from_millis(1500)), None);
    assert_eq!(link_states(&mut c), ["wait_bgsave"]);
    let mut second = psync(warp.port);
    let b = first_byte(&mut second, Duration::from_secs(10)).expect("the second's sync");
    let (line2, rdb2) = fullresync_and_rdb(&mut second, b);
    let b = first_byte(&mut first, Duration::from_secs(10)).expect("the first's sync");
    let (line1, rdb1) = fullresync_and_rdb(&mut first, b);
    assert!(line1.starts_with("+FULLRESYNC "), "{line1}");
    assert_eq!(line1, line2, "one walk: the same offset");
    assert_eq!(rdb1, rdb2, "one walk: the same RDB");
    assert!(rdb1.starts_with(b"REDIS0010"));
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "2");
    // A replica that cannot take a diskless RDB does not wait the delay, as with Redis.
    let mut s = TcpStream::connect(("127.0.0.1", warp.port)).unwrap();
    let psync: &[&[u8]] = &[b"PSYNC", b"?", b"-1"];
    s.write_all(&warpengine_tests::encode_command(psync))
        .unwrap();
    let b = first_byte(&mut s, Duration::from_secs(10)).expect("a sync at once");
    let fullresync = format!("{}{}", b as char, line(&mut s));
    assert!(fullresync.starts_with("+FULLRESYNC "), "{fullresync}");
    assert!(first_byte(&mut s, Duration::from_secs(10)) == Some(b'$'));
    assert!(!line(&mut s).starts_with("EOF:"), "the $<len> form");
}

#[test]
fn a_walk_no_replica_reads_stops_and_a_bgsave_holds_the_next_sync() {
    let dir = warpengine_tests::TempDir::new("full-sync-stop");
    let warp = start_warpengine(&[
        "--threads",
        "2",
        "--dir",
        dir.path(),
        "--repl-backlog-ttl",
        "1",
    ]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c, 200);
    ok(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "20000"]);
    let mut replica = psync(warp.port);
    let b = first_byte(&mut replica, Duration::from_secs(10)).expect("the sync");
    assert_eq!(b, b'+');
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_bgsave_in_progress"),
        "1"
    );
    // A BGSAVE is refused while the sync's walk runs, as while Redis's sync child runs.
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Error("ERR Background save already in progress".into())
    );
    drop(replica);
    wait_for("the walk to stop", || {
        info_field(&mut c, "persistence", "rdb_bgsave_in_progress") == "0"
    });
    assert_eq!(info_field(&mut c, "replication", "connected_slaves"), "0");
    // The replica that left mid-sync was the last: the backlog goes after its TTL.
    wait_for("the backlog freed", || {
        info_field(&mut c, "replication", "repl_backlog_active") == "0"
    });
    // A BGSAVE now, slowed: a replica that comes waits for it to end.
    ok(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "3000"]);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    let mut replica = psync(warp.port);
    assert_eq!(first_byte(&mut replica, Duration::from_millis(500)), None);
    assert_eq!(link_states(&mut c), ["wait_bgsave"]);
    ok(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    let b = first_byte(&mut replica, Duration::from_secs(20)).expect("the sync after it");
    let (line, rdb) = fullresync_and_rdb(&mut replica, b);
    assert!(line.starts_with("+FULLRESYNC "), "{line}");
    assert!(rdb.starts_with(b"REDIS0010"));
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
}

#[test]
fn a_swapdb_replica_is_loading_from_the_first_byte_and_keeps_its_data_if_the_sync_fails() {
    let primary = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    fill(&mut p, 300);
    // 900 keys at 10 ms each: the RDB takes 9 s to come, time to see the replica loading.
    ok(&mut p, &["CONFIG", "SET", "rdb-key-save-delay", "10000"]);
    let dir = warpengine_tests::TempDir::new("full-sync-swapdb");
    let log = format!("{}/replica.log", dir.path());
    let replica = start_warpengine(&[
        "--threads",
        "2",
        "--repl-diskless-load",
        "swapdb",
        "--logfile",
        &log,
    ]);
    let mut r = RawConn::connect(replica.port);
    ok(&mut r, &["SET", "mykey", "myvalue"]);
    ok(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    wait_for("the replica loading", || {
        info_field(&mut r, "persistence", "loading") == "1"
    });
    let Resp::Error(e) = r.call(&["GET", "mykey"]) else {
        panic!("GET while loading")
    };
    assert!(e.starts_with("LOADING "), "{e}");
    // The primary drops it mid-transfer: the old data is there again, as swapdb keeps it.
    ok(&mut p, &["CONFIG", "SET", "repl-diskless-sync-delay", "5"]);
    ok(&mut p, &["CLIENT", "KILL", "TYPE", "replica"]);
    wait_for("the transfer abandoned", || {
        info_field(&mut r, "persistence", "loading") == "0"
    });
    assert_eq!(r.call(&["GET", "mykey"]), Resp::Bulk(b"myvalue".to_vec()));
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(1));
    // In Redis's words, which its suite waits for: the load began with the RDB's first byte,
    // and the cut transfer is a short read.
    let text = std::fs::read_to_string(&log).unwrap();
    let started = text
        .find("Loading DB in memory")
        .expect("the load's start logged");
    let cut = text
        .find("Internal error in RDB")
        .expect("the short read logged");
    assert!(started < cut, "{text}");
}

#[test]
fn a_swapdb_replica_of_the_same_history_serves_its_old_data_while_loading() {
    let primary = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    fill(&mut p, 300);
    let replica = start_warpengine(&["--threads", "2", "--repl-diskless-load", "swapdb"]);
    let mut r = RawConn::connect(replica.port);
    ok(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    wait_for("the first sync", || {
        info_field(&mut r, "replication", "master_link_status") == "up"
    });
    // The link cut, then more writes than the backlog holds: the replica's PSYNC cannot
    // continue, and its full sync is one of the history it follows (Redis's test's way).
    ok(&mut p, &["CONFIG", "SET", "rdb-key-save-delay", "10000"]);
    let big = "A".repeat(16384);
    ok(&mut p, &["MULTI"]);
    ok(&mut p, &["CLIENT", "KILL", "TYPE", "replica"]);
    ok(&mut p, &["CONFIG", "SET", "repl-backlog-size", "16384"]);
    for i in 0..10 {
        ok(&mut p, &["SET", &format!("big:{i}"), &big]);
    }
    ok(&mut p, &["SET", "k:1", "new"]);
    ok(&mut p, &["EXEC"]);
    wait_for("the replica async loading", || {
        info_field(&mut r, "persistence", "async_loading") == "1"
    });
    assert_eq!(info_field(&mut r, "persistence", "loading"), "0");
    // The old data is served meanwhile; what would change the replica's role or data source
    // is refused as by Redis.
    assert_eq!(r.call(&["GET", "k:1"]), Resp::Bulk(b"value-0-1".to_vec()));
    for refused in [
        &["REPLICAOF", "NO", "ONE"][..],
        &["CONFIG", "SET", "appendonly", "no"],
    ] {
        let Resp::Error(e) = r.call(refused) else {
            panic!("{refused:?} while async loading")
        };
        assert!(e.starts_with("LOADING "), "{refused:?}: {e}");
    }
    ok(&mut p, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    wait_for("the new data", || {
        info_field(&mut r, "persistence", "async_loading") == "0"
            && r.call(&["GET", "k:1"]) == Resp::Bulk(b"new".to_vec())
    });
    assert_eq!(
        info_field(&mut r, "replication", "master_link_status"),
        "up"
    );
}

/// A replica with nothing to keep (no keys, no libraries) and a diskless load loads its
/// primary's RDB as it arrives, as Redis's parses it from the socket: it never reads far ahead
/// of what it has loaded, so a slow load (`key-load-delay`) slows the transfer and holds the
/// primary's walk back. A transfer cut in the middle leaves it empty, in Redis's words, and the
/// next sync loads everything (libraries too).
#[test]
fn an_empty_replica_loads_the_rdb_as_it_arrives() {
    let primary = start_warpengine(&["--threads", "2", "--enable-debug-command", "yes"]);
    let mut p = RawConn::connect(primary.port);
    // 4,000 keys of 10 KB: 40 MB of RDB, more than the walk runs ahead of its slowest reader
    // (16 MB) and the sockets hold.
    ok(&mut p, &["DEBUG", "POPULATE", "4000", "big", "10000"]);
    ok(&mut p, &["CONFIG", "SET", "rdbcompression", "no"]);
    ok(
        &mut p,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
        ],
    );
    let dir = warpengine_tests::TempDir::new("full-sync-streamed");
    let log = format!("{}/replica.log", dir.path());
    let replica = start_warpengine(&[
        "--threads",
        "2",
        "--repl-diskless-load",
        "swapdb",
        "--key-load-delay",
        "1000",
        "--enable-debug-command",
        "yes",
        "--logfile",
        &log,
    ]);
    let mut r = RawConn::connect(replica.port);
    ok(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    // 0 while INFO does not show the field (the loading_* lines only show during a load).
    let number = |r: &mut RawConn, section: &str, field: &str| -> i64 {
        let Resp::Bulk(info) = r.call(&["INFO", section]) else {
            panic!("INFO")
        };
        let prefix = format!("{field}:");
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| {
                l.strip_prefix(&prefix)
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0)
    };
    wait_for("the load under way", || {
        number(&mut r, "persistence", "loading_loaded_bytes") > 1_000_000
    });
    let read = number(&mut r, "replication", "master_sync_read_bytes");
    let loaded = number(&mut r, "persistence", "loading_loaded_bytes");
    assert!(
        read < loaded + 24_000_000,
        "read {read} bytes of the RDB with {loaded} loaded"
    );
    // Cut: the replica is empty again, and says why as Redis does.
    ok(&mut r, &["CONFIG", "SET", "key-load-delay", "0"]);
    ok(&mut p, &["CLIENT", "KILL", "TYPE", "replica"]);
    wait_for("the short read logged", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Internal error in RDB reading"))
    });
    wait_for("the next sync to finish", || {
        info_field(&mut r, "replication", "master_link_status") == "up"
    });
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(4000));
    assert_eq!(r.call(&["DEBUG", "DIGEST"]), p.call(&["DEBUG", "DIGEST"]));
    let libraries = format!("{:?}", r.call(&["FUNCTION", "LIST"]));
    let lib = format!("{:?}", Resp::Bulk(b"lib".to_vec()));
    assert!(libraries.contains(&lib), "{libraries}");
}
