//! Replication, WarpEngine as the primary (the stream of writes: tests/replication_stream.rs):
//! redis-cli --rdb and --functions-rdb
//! against WarpEngine write files redis-check-rdb accepts and redis-server loads with the same
//! keys (or libraries); a redis-server 7.0.15 replica of WarpEngine syncs every type the RDB
//! writer has and the TTLs, shows in ROLE, INFO (the same fields as redis-server's) and CLIENT
//! LIST, and resyncs partially after CLIENT KILL TYPE replica; the wire form of PSYNC's answer; ACKs
//! and a replica sending garbage; REPLCONF, PSYNC and ROLE replies as redis-server's, also
//! through the redis crate.

use std::process::Command;
use std::time::{Duration, Instant};

use warpengine_tests::dataset::{assert_same, contents};
use warpengine_tests::{
    info_field, redis_available, start_redis, start_warpengine, wait_for, RawConn, Resp,
    ServerProcess, TempDir,
};

/// Keys of every type the RDB writer has (an HLL and a GEO set included; streams have no RDB
/// form in WarpEngine yet), some with a TTL, in db 0 and 3.
fn fill(c: &mut RawConn) {
    let writes: &[&[&str]] = &[
        &["SET", "repl:str", "hello"],
        &["SET", "repl:int", "12345"],
        &["SET", "repl:ttl", "v", "PX", "500000"],
        &["RPUSH", "repl:list", "a", "b", "c", "1"],
        &["HSET", "repl:hash", "f1", "v1", "f2", "2"],
        &["SADD", "repl:set", "x", "y", "z"],
        &["SADD", "repl:intset", "1", "2", "3"],
        &["ZADD", "repl:zset", "1.5", "m1", "-2", "m2"],
        &["PFADD", "repl:hll", "a", "b", "c"],
        &["GEOADD", "repl:geo", "13.361389", "38.115556", "Palermo"],
        &["EXPIRE", "repl:hash", "9000"],
        &["SELECT", "3"],
        &["SET", "repl:db3", "three"],
        &["LPUSH", "repl:db3list", "q"],
        &["SELECT", "0"],
    ];
    for w in writes {
        let reply = c.call(w);
        assert!(!matches!(reply, Resp::Error(_)), "{w:?}: {reply:?}");
    }
    // A big value (LZF and a long list), so the RDB is more than a few bytes.
    let big: Vec<String> = (0..2000).map(|i| format!("item-{i}")).collect();
    let mut rpush = vec!["RPUSH", "repl:biglist"];
    rpush.extend(big.iter().map(String::as_str));
    c.call(&rpush);
}

#[test]
fn redis_cli_rdb_of_warpengine_is_a_valid_file_with_the_same_keys() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c);
    let expected = contents(&mut c);
    let dir = TempDir::new("repl-cli-rdb");
    let file = format!("{}/dump.rdb", dir.path());
    let out = Command::new("redis-cli")
        .args(["-p", &warp.port.to_string(), "--rdb", &file])
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Transfer finished with success"));
    let check = Command::new("redis-check-rdb")
        .arg(&file)
        .output()
        .expect("redis-check-rdb");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");
    assert!(report.contains("RDB looks OK"), "{report}");
    // redis-server loads the file with the same keys, values and expiries.
    let redis = start_redis(&["--dir", dir.path(), "--dbfilename", "dump.rdb"]);
    let mut r = RawConn::connect(redis.port);
    assert_same(&contents(&mut r), &expected);
    // The link was rdb-only: it is gone, and WarpEngine is still a replica-less master.
    wait_for("the rdb-only link to end", || {
        info_field(&mut c, "replication", "connected_slaves") == "0"
    });
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "1");
}

#[test]
fn redis_server_replicates_from_warpengine_and_resyncs_after_a_kill() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&["--threads", "3"]);
    let mut c = RawConn::connect(warp.port);
    fill(&mut c);
    let expected = contents(&mut c);
    let port = warp.port.to_string();
    let redis = start_redis(&["--replicaof", "127.0.0.1", &port]);
    let mut r = RawConn::connect(redis.port);
    wait_for("the replica's link", || {
        info_field(&mut r, "replication", "master_link_status") == "up"
    });
    assert_same(&contents(&mut r), &expected);
    assert_eq!(info_field(&mut c, "replication", "connected_slaves"), "1");
    let slave0 = info_field(&mut c, "replication", "slave0");
    // (lag: seconds since its last ACK, which it sends every second.)
    let expected_slave0 = format!(
        "ip=127.0.0.1,port={},state=online,offset=0,lag=",
        redis.port
    );
    assert!(slave0.starts_with(&expected_slave0), "{slave0}");
    let role = c.call(&["ROLE"]);
    let Resp::Array(role) = role else {
        panic!("ROLE: {role:?}")
    };
    assert_eq!(role[0], Resp::Bulk(b"master".to_vec()));
    assert_eq!(role[1], Resp::Int(0));
    assert_eq!(
        role[2],
        Resp::Array(vec![Resp::Array(vec![
            Resp::Bulk(b"127.0.0.1".to_vec()),
            Resp::Bulk(redis.port.to_string().into_bytes()),
            Resp::Bulk(b"0".to_vec()),
        ])])
    );
    let Resp::Bulk(list) = c.call(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST")
    };
    assert!(String::from_utf8_lossy(&list).contains("flags=S "));
    // The link killed: the replica asks to continue (PSYNC replid offset), which the backlog
    // allows: no second full sync.
    assert_eq!(c.call(&["CLIENT", "KILL", "TYPE", "replica"]), Resp::Int(1));
    wait_for("the partial resync", || {
        info_field(&mut c, "stats", "sync_partial_ok") == "1"
            && info_field(&mut c, "replication", "connected_slaves") == "1"
            && info_field(&mut r, "replication", "master_link_status") == "up"
    });
    assert_eq!(info_field(&mut c, "stats", "sync_full"), "1");
    assert_eq!(info_field(&mut c, "stats", "sync_partial_err"), "0");
    assert_same(&contents(&mut r), &expected);
}

/// A WarpEngine and a redis-server (None without redis-server), each with a connection.
fn warpengine_and_redis() -> Option<(ServerProcess, ServerProcess, RawConn, RawConn)> {
    if !redis_available() {
        return None;
    }
    let warp = start_warpengine(&[]);
    let redis = start_redis(&[]);
    let (w, r) = (RawConn::connect(warp.port), RawConn::connect(redis.port));
    Some((warp, redis, w, r))
}

#[test]
fn handshake_commands_answer_as_redis() {
    let Some((_warp, _redis, mut w, mut r)) = warpengine_and_redis() else {
        return;
    };
    let cases: &[&[&str]] = &[
        &["REPLCONF"],
        &["REPLCONF", "listening-port"],
        &["REPLCONF", "listening-port", "abc"],
        &["REPLCONF", "listening-port", "6380"],
        &[
            "REPLCONF",
            "ip-address",
            "10.0.0.1",
            "capa",
            "eof",
            "capa",
            "psync2",
        ],
        &["REPLCONF", "capa", "whatever"],
        &["REPLCONF", "nosuch", "x"],
        &["REPLCONF", "listening-port", "1", "nosuch", "x"],
        &["REPLCONF", "rdb-only", "2"],
        &["REPLCONF", "rdb-only", "x"],
        &["REPLCONF", "rdb-only", "0"],
        &["ROLE", "x"],
        &["PSYNC"],
        &["PSYNC", "?"],
        &["PSYNC", "?", "notanumber"],
        &["SYNC", "x"],
        &["MULTI"],
        &["SYNC"],
        &["PSYNC", "?", "-1"],
        &["DISCARD"],
    ];
    for case in cases {
        let args: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(
            String::from_utf8_lossy(&w.command(&args)),
            String::from_utf8_lossy(&r.command(&args)),
            "{case:?}"
        );
    }
    // ROLE of a master without replicas: the same shape (master, offset 0, no replicas).
    assert_eq!(w.call(&["ROLE"]), r.call(&["ROLE"]));
    // An ACK or GETACK from an ordinary client gets no reply at all: the PING after it is
    // answered first.
    for conn in [&mut w, &mut r] {
        conn.send_command(&[b"REPLCONF", b"ACK", b"5"]);
        conn.send_command(&[b"REPLCONF", b"GETACK", b"*"]);
        assert_eq!(conn.call(&["PING"]), Resp::Simple("PONG".into()));
    }
}

#[test]
fn psync_answers_fullresync_then_the_rdb_then_pings() {
    let warp = start_warpengine(&["--repl-ping-replica-period", "1"]);
    let mut c = RawConn::connect(warp.port);
    c.call(&["SET", "repl:k", "v"]);
    let replid = info_field(&mut c, "replication", "master_replid");
    let mut link = RawConn::connect(warp.port);
    assert_eq!(
        link.call(&["REPLCONF", "listening-port", "7899"]),
        Resp::Simple("OK".into())
    );
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    let mut stream = link.into_stream();
    let mut got = Vec::new();
    let header = format!("+FULLRESYNC {replid} 0\r\n$");
    let started = Instant::now();
    // The RDB follows as `$<len>\r\n<bytes>` (no CRLF after it), then a PING within 1 s.
    loop {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut stream, &mut buf).expect("read");
        assert!(n > 0, "link closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"*1\r\n$4\r\nPING\r\n") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(got.starts_with(header.as_bytes()), "{got:?}");
    let rest = &got[header.len()..];
    let crlf = rest.windows(2).position(|w| w == b"\r\n").unwrap();
    let len: usize = std::str::from_utf8(&rest[..crlf]).unwrap().parse().unwrap();
    let rdb = &rest[crlf + 2..crlf + 2 + len];
    assert!(rdb.starts_with(b"REDIS0010"));
    assert_eq!(&rest[crlf + 2 + len..], b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(info_field(&mut c, "replication", "connected_slaves"), "1");
    assert!(info_field(&mut c, "replication", "slave0").starts_with("ip=127.0.0.1,port=7899,"));
}

#[test]
fn redis_cli_functions_rdb_holds_the_libraries_and_no_keys() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&[]);
    let mut c = RawConn::connect(warp.port);
    c.call(&["SET", "repl:k", "v"]);
    let code = "#!lua name=repllib\nredis.register_function('repl_one', function() return 1 end)";
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", code]),
        Resp::Bulk(b"repllib".to_vec())
    );
    let dir = TempDir::new("repl-functions-rdb");
    let file = format!("{}/dump.rdb", dir.path());
    let out = Command::new("redis-cli")
        .args(["-p", &warp.port.to_string(), "--functions-rdb", &file])
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    let redis = start_redis(&["--dir", dir.path(), "--dbfilename", "dump.rdb"]);
    let mut r = RawConn::connect(redis.port);
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(0));
    assert_eq!(r.call(&["FCALL", "repl_one", "0"]), Resp::Int(1));
}

#[test]
fn the_redis_crate_reads_role_and_replconf() {
    let warp = start_warpengine(&[]);
    let mut c = redis::Client::open(warp.url())
        .and_then(|client| client.get_connection())
        .expect("connect");
    let role: (String, i64, Vec<(String, String, String)>) =
        redis::cmd("ROLE").query(&mut c).expect("ROLE");
    assert_eq!(role, ("master".to_string(), 0, vec![]));
    let ok: String = redis::cmd("REPLCONF")
        .arg("listening-port")
        .arg(6380)
        .arg("capa")
        .arg("eof")
        .query(&mut c)
        .expect("REPLCONF");
    assert_eq!(ok, "OK");
    let err = redis::cmd("REPLCONF")
        .arg("rdb-only")
        .arg(2)
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("value is out of range, value must between 0 and 1"),
        "{err}"
    );
}

/// INFO replication's field names, in order.
fn replication_fields(c: &mut RawConn) -> Vec<String> {
    let Resp::Bulk(info) = c.call(&["INFO", "replication"]) else {
        panic!("INFO replication")
    };
    String::from_utf8(info)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn info_replication_has_redis_fields_with_and_without_a_replica() {
    let Some((warp, redis, mut w, mut r)) = warpengine_and_redis() else {
        return;
    };
    assert_eq!(replication_fields(&mut w), replication_fields(&mut r));
    // Each with a redis-server replica: the same fields, slave0 included.
    let warp_replica = start_redis(&["--replicaof", "127.0.0.1", &warp.port.to_string()]);
    let redis_replica = start_redis(&["--replicaof", "127.0.0.1", &redis.port.to_string()]);
    for port in [warp_replica.port, redis_replica.port] {
        let mut replica = RawConn::connect(port);
        wait_for("the replica's link", || {
            info_field(&mut replica, "replication", "master_link_status") == "up"
        });
    }
    let fields = replication_fields(&mut w);
    assert!(fields.contains(&"slave0".to_string()), "{fields:?}");
    assert_eq!(fields, replication_fields(&mut r));
    // slave0's own fields, in order.
    let names = |v: String| -> Vec<String> {
        v.split(',')
            .map(|kv| kv.split('=').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(info_field(&mut w, "replication", "slave0")),
        names(info_field(&mut r, "replication", "slave0"))
    );
}

#[test]
fn a_replica_link_that_sends_garbage_is_dropped_and_acks_are_noted() {
    use std::io::{Read, Write};
    let warp = start_warpengine(&[]);
    let mut c = RawConn::connect(warp.port);
    let mut link = std::net::TcpStream::connect(("127.0.0.1", warp.port)).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    link.write_all(b"SYNC\r\n").unwrap();
    // `$<len>\r\n` then exactly len bytes of RDB.
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        assert_eq!(link.read(&mut byte).unwrap(), 1);
        got.push(byte[0]);
    }
    let len: usize = std::str::from_utf8(&got[1..got.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let mut rdb = vec![0u8; len];
    link.read_exact(&mut rdb).unwrap();
    assert!(rdb.starts_with(b"REDIS0010"));
    wait_for("the link to be online", || {
        info_field(&mut c, "replication", "slave0").contains("state=online")
    });
    link.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\n")
        .unwrap();
    wait_for("the ACK", || {
        info_field(&mut c, "replication", "slave0").contains("offset=42,")
    });
    link.write_all(b"*1\r\n$zz\r\n").unwrap();
    wait_for("the link to be dropped", || {
        info_field(&mut c, "replication", "connected_slaves") == "0"
    });
    // The primary closed the link: EOF (no PING came first: the period is 10 s).
    assert_eq!(link.read(&mut byte).unwrap_or(0), 0);
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
}
