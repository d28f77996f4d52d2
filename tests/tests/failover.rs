//! FAILOVER, as Redis 7.0: a primary holds writes, waits for its replica to acknowledge the
//! whole stream, becomes its replica and hands over with `PSYNC ... FAILOVER`; every write
//! acknowledged before is on the new primary, which continues the history (a partial resync).
//! Against a WarpEngine replica and a redis-server 7.0.15 one, and from a redis-server primary to
//! a WarpEngine replica; TIMEOUT, ABORT and the errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warpengine_tests::{
    info_field, redis_available, start_redis, start_warpengine, wait_for, RawConn, Resp,
};

fn ok(c: &mut RawConn, args: &[&str]) {
    assert_eq!(c.call(args), Resp::Simple("OK".into()), "{args:?}");
}

fn err(text: &str) -> Resp {
    Resp::Error(text.into())
}

fn state(c: &mut RawConn) -> String {
    info_field(c, "replication", "master_failover_state")
}

fn caught_up(p: &mut RawConn, r: &mut RawConn) {
    wait_for("the replica to catch up", || {
        let offset = info_field(p, "replication", "master_repl_offset");
        info_field(r, "replication", "master_link_status") == "up"
            && info_field(r, "replication", "slave_repl_offset") == offset
    });
}

/// A writer that SETs `fo:<n>` for n = 0, 1, ... until refused (the old primary, a replica
/// now, answers READONLY) or stopped; the keys whose SET was acknowledged.
fn writer(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut c = RawConn::connect(port);
        let mut acknowledged = Vec::new();
        for n in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let key = format!("fo:{n}");
            match c.call(&["SET", &key, "v"]) {
                Resp::Simple(s) if s == "OK" => acknowledged.push(key),
                Resp::Error(e) if e.starts_with("READONLY") => break,
                other => panic!("SET {key}: {other:?}"),
            }
        }
        acknowledged
    })
}

/// FAILOVER on `primary` (with `args`) under a write load: afterwards `replica` is the primary,
/// `primary` follows it, every acknowledged write is on both, and the new primary's writes
/// reach the old one. The new primary's `sync_partial_ok` is 1: the old primary continued.
fn hand_over(primary: u16, replica: u16, args: &[&str]) {
    let (mut p, mut r) = (RawConn::connect(primary), RawConn::connect(replica));
    ok(&mut r, &["REPLICAOF", "127.0.0.1", &primary.to_string()]);
    caught_up(&mut p, &mut r);
    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(primary, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let mut failover = vec!["FAILOVER"];
    failover.extend_from_slice(args);
    ok(&mut p, &failover);
    wait_for("the roles to switch", || {
        state(&mut p) == "no-failover" && info_field(&mut p, "replication", "role") == "slave"
    });
    stop.store(true, Ordering::Relaxed);
    let acknowledged = load.join().expect("the writer");
    assert!(acknowledged.len() > 10, "{} writes", acknowledged.len());
    assert_eq!(info_field(&mut r, "replication", "role"), "master");
    assert_eq!(
        info_field(&mut p, "replication", "master_port"),
        replica.to_string()
    );
    for key in &acknowledged {
        assert_eq!(r.call(&["GET", key]), Resp::Bulk(b"v".to_vec()), "{key}");
    }
    assert_eq!(info_field(&mut r, "stats", "sync_partial_ok"), "1");
    // The old primary is a replica now: it refuses writes and follows the new one.
    assert!(matches!(p.call(&["SET", "x", "1"]), Resp::Error(e) if e.starts_with("READONLY")));
    ok(&mut r, &["SET", "after", "failover"]);
    caught_up(&mut r, &mut p);
    assert_eq!(p.call(&["GET", "after"]), Resp::Bulk(b"failover".to_vec()));
    assert_eq!(p.call(&["DBSIZE"]), r.call(&["DBSIZE"]));
}

#[test]
fn failover_to_a_warpengine_replica() {
    let primary = start_warpengine(&["--threads", "2"]);
    let replica = start_warpengine(&["--threads", "2"]);
    // Another replica of the old primary stays with it: it continues through it, partially.
    let other = start_warpengine(&["--threads", "2"]);
    let (mut p, mut o) = (RawConn::connect(primary.port), RawConn::connect(other.port));
    ok(
        &mut o,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    caught_up(&mut p, &mut o);
    let to = ["TO", "127.0.0.1", &replica.port.to_string()];
    hand_over(primary.port, replica.port, &to);
    caught_up(&mut p, &mut o);
    assert_eq!(o.call(&["GET", "after"]), Resp::Bulk(b"failover".to_vec()));
    assert_eq!(o.call(&["DBSIZE"]), p.call(&["DBSIZE"]));
    // (The two first syncs, the other replica's and the target's; none after.)
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "2");
    assert_ne!(info_field(&mut p, "stats", "sync_partial_ok"), "0");
}

#[test]
fn failover_to_any_replica_with_a_redis_server_replica() {
    if !redis_available() {
        return;
    }
    let primary = start_warpengine(&["--threads", "2"]);
    let replica = start_redis(&[]);
    hand_over(primary.port, replica.port, &[]);
}

/// redis-server's FAILOVER hands over to a WarpEngine replica (its `PSYNC ... FAILOVER`).
#[test]
fn a_redis_server_primary_fails_over_to_warpengine() {
    if !redis_available() {
        return;
    }
    let primary = start_redis(&[]);
    let replica = start_warpengine(&["--threads", "2"]);
    let to = ["TO", "127.0.0.1", &replica.port.to_string()];
    hand_over(primary.port, replica.port, &to);
}

#[test]
fn a_failover_that_times_out_or_is_aborted_releases_the_writes() {
    let primary = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    // A replica that never acknowledges anything.
    let mut link = RawConn::connect(primary.port);
    ok(&mut link, &["REPLCONF", "listening-port", "7999"]);
    link.send_command(&[b"PSYNC", b"?", b"-1"]);
    wait_for("the replica online", || {
        info_field(&mut p, "replication", "connected_slaves") == "1"
            && info_field(&mut p, "replication", "slave0").contains("state=online")
    });
    ok(&mut p, &["SET", "k", "1"]);
    ok(&mut p, &["FAILOVER", "TIMEOUT", "500"]);
    assert_eq!(state(&mut p), "waiting-for-sync");
    assert_eq!(
        p.call(&["FAILOVER"]),
        err("ERR FAILOVER already in progress.")
    );
    // A write waits (reads do not) until the timeout aborts the failover.
    let started = Instant::now();
    let mut w = RawConn::connect(primary.port);
    assert_eq!(w.call(&["GET", "k"]), Resp::Bulk(b"1".to_vec()));
    ok(&mut w, &["SET", "k", "2"]);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(state(&mut p), "no-failover");
    assert_eq!(info_field(&mut p, "replication", "role"), "master");
    // CLIENT UNPAUSE does not lift FAILOVER's hold; FAILOVER ABORT does.
    ok(&mut p, &["FAILOVER"]);
    ok(&mut p, &["CLIENT", "UNPAUSE"]);
    w.send_command(&[b"SET", b"k", b"3"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(p.call(&["GET", "k"]), Resp::Bulk(b"2".to_vec()));
    ok(&mut p, &["FAILOVER", "ABORT"]);
    assert_eq!(w.read_reply().expect("the SET's reply"), b"+OK\r\n");
    assert_eq!(state(&mut p), "no-failover");
    assert_eq!(
        p.call(&["FAILOVER", "ABORT"]),
        err("ERR No failover in progress.")
    );
    assert_eq!(
        p.call(&["FAILOVER", "TO", "127.0.0.1", "1"]),
        err("ERR FAILOVER target HOST and PORT is not a replica.")
    );
    // FORCE hands over at the timeout to a replica that did not catch up; nothing listens at
    // its port, so the link fails and the failover aborts: a primary again, under a new id.
    let replid = info_field(&mut p, "replication", "master_replid");
    let force = [
        "FAILOVER",
        "TO",
        "127.0.0.1",
        "7999",
        "TIMEOUT",
        "200",
        "FORCE",
    ];
    ok(&mut p, &force);
    wait_for("the failover to end", || {
        state(&mut p) == "no-failover"
            && info_field(&mut p, "replication", "master_replid") != replid
    });
    assert_eq!(info_field(&mut p, "replication", "role"), "master");
    assert_eq!(info_field(&mut p, "replication", "master_replid2"), replid);
    ok(&mut p, &["SET", "k", "4"]);
    drop(link);
}

/// The errors, byte for byte as redis-server 7.0.15 gives them.
#[test]
fn failover_errors_are_redis_servers() {
    if !redis_available() {
        return;
    }
    let warp = start_warpengine(&[]);
    let redis = start_redis(&[]);
    let (mut w, mut r) = (RawConn::connect(warp.port), RawConn::connect(redis.port));
    let cases: &[&[&str]] = &[
        &["FAILOVER"],
        &["FAILOVER", "ABORT"],
        &["FAILOVER", "ABORT", "TIMEOUT", "5"],
        &["FAILOVER", "TIMEOUT", "0"],
        &["FAILOVER", "TIMEOUT", "x"],
        &["FAILOVER", "TIMEOUT", "5", "TIMEOUT", "6"],
        &["FAILOVER", "TO", "127.0.0.1"],
        &["FAILOVER", "TO", "127.0.0.1", "x"],
        &["FAILOVER", "FORCE"],
        &["FAILOVER", "FORCE", "FORCE"],
        &["FAILOVER", "TO", "127.0.0.1", "1", "FORCE"],
        &["FAILOVER", "BOGUS"],
        &[
            "PSYNC",
            "0123456789012345678901234567890123456789",
            "1",
            "FAILOVER",
        ],
    ];
    for args in cases {
        assert_eq!(w.call(args), r.call(args), "{args:?}");
    }
    // On a replica.
    let port = redis.port.to_string();
    ok(&mut w, &["REPLICAOF", "127.0.0.1", &port]);
    let redis_replica = start_redis(&["--replicaof", "127.0.0.1", &port]);
    let mut rr = RawConn::connect(redis_replica.port);
    assert_eq!(w.call(&["FAILOVER"]), rr.call(&["FAILOVER"]));
    assert_eq!(
        w.call(&["FAILOVER"]),
        err("ERR FAILOVER is not valid when server is a replica.")
    );
}
