//! CLIENT PAUSE against the real binary: WRITE holds writes (queued in MULTI too), PUBLISH and
//! the EXEC of a writing transaction while reads run; ALL holds everything; held requests run,
//! in order, at CLIENT UNPAUSE or when the timeout ends; held clients count in INFO's
//! blocked_clients.

use std::time::{Duration, Instant};

use warpengine_tests::{info_field, start_warpengine, RawConn, Resp};

fn blocked(c: &mut RawConn) -> u64 {
    info_field(c, "clients", "blocked_clients").parse().unwrap()
}

fn wait_for_blocked(c: &mut RawConn, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked(c) != n {
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn write_pause_holds_writes_until_unpause_and_lets_reads_run() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut writer = RawConn::connect(server.port);
    let mut tx = RawConn::connect(server.port);
    let mut reader = RawConn::connect(server.port);
    admin.call(&["SET", "k", "before"]);
    assert_eq!(
        admin.call(&["CLIENT", "PAUSE", "60000", "WRITE"]),
        Resp::Simple("OK".into())
    );
    writer.send_command(&[b"SET", b"k", b"during"]);
    writer.send_command(&[b"GET", b"k"]);
    // As in Redis, a write is held even while it is being queued in a transaction.
    tx.call(&["MULTI"]);
    tx.send_command(&[b"INCR", b"n"]);
    tx.send_command(&[b"EXEC"]);
    wait_for_blocked(&mut admin, 2);
    // Reads are not held, and see nothing of the held writes.
    assert_eq!(reader.call(&["GET", "k"]), Resp::Bulk(b"before".to_vec()));
    assert_eq!(reader.call(&["GET", "n"]), Resp::Nil);
    assert_eq!(
        admin.call(&["CLIENT", "UNPAUSE"]),
        Resp::Simple("OK".into())
    );
    // The held requests run, in order.
    assert_eq!(
        Resp::parse(&writer.read_reply().unwrap()),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        Resp::parse(&writer.read_reply().unwrap()),
        Resp::Bulk(b"during".to_vec())
    );
    assert_eq!(
        Resp::parse(&tx.read_reply().unwrap()),
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(
        Resp::parse(&tx.read_reply().unwrap()),
        Resp::Array(vec![Resp::Int(1)])
    );
    wait_for_blocked(&mut admin, 0);
}

#[test]
fn all_pause_holds_every_command_until_its_timeout() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut reader = RawConn::connect(server.port);
    admin.call(&["SET", "k", "v"]);
    let started = Instant::now();
    admin.call(&["CLIENT", "PAUSE", "300"]);
    assert_eq!(reader.call(&["GET", "k"]), Resp::Bulk(b"v".to_vec()));
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(250), "GET ran after {held:?}");
    // Over: nothing is held any more.
    let started = Instant::now();
    assert_eq!(reader.call(&["PING"]), Resp::Simple("PONG".into()));
    assert!(started.elapsed() < Duration::from_millis(250));
}

#[test]
fn active_expiry_waits_while_paused() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    admin.call(&["SET", "short", "1", "PX", "50"]);
    admin.call(&["CLIENT", "PAUSE", "100000", "WRITE"]);
    std::thread::sleep(Duration::from_millis(400));
    // DBSIZE expires nothing itself: the key is still stored.
    assert_eq!(admin.call(&["DBSIZE"]), Resp::Int(1));
    admin.call(&["CLIENT", "UNPAUSE"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.call(&["DBSIZE"]) != Resp::Int(0) {
        assert!(Instant::now() < deadline, "never expired after the pause");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pause_leaves_expired_keys_in_place_until_it_ends() {
    let server = start_warpengine(&["--threads", "2", "--set", "hz=1"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["SET", "pk", "v", "PX", "50"]);
    c.call(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    std::thread::sleep(Duration::from_millis(150));
    // Expired: reads find nothing, but the key is not deleted while clients are paused.
    assert_eq!(c.call(&["GET", "pk"]), Resp::Nil);
    assert_eq!(c.call(&["EXISTS", "pk"]), Resp::Int(0));
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(1));
    c.call(&["CLIENT", "UNPAUSE"]);
    assert_eq!(c.call(&["GET", "pk"]), Resp::Nil);
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(0));
}

/// A WRITE pause holds scripts that may write (no shebang, or one without `no-writes`) and an
/// EXEC that queued one, and lets `no-writes` scripts and EVAL_RO run, as Redis (its pause
/// unit).
#[test]
fn write_pause_holds_scripts_that_may_write() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut in_multi = RawConn::connect(server.port);
    in_multi.call(&["MULTI"]);
    in_multi.call(&["EVAL", "#!lua\nreturn 12", "0"]);
    assert_eq!(
        admin.call(&["CLIENT", "PAUSE", "60000", "WRITE"]),
        Resp::Simple("OK".into())
    );
    let mut plain = RawConn::connect(server.port);
    plain.send_command(&[b"EVAL", b"return 1", b"0"]);
    let mut shebang = RawConn::connect(server.port);
    shebang.send_command(&[b"EVAL", b"#!lua\nreturn 2", b"0"]);
    in_multi.send_command(&[b"EXEC"]);
    wait_for_blocked(&mut admin, 3);
    let mut reader = RawConn::connect(server.port);
    let ro = "#!lua flags=no-writes\nreturn 3";
    assert_eq!(reader.call(&["EVAL", ro, "0"]), Resp::Int(3));
    assert_eq!(reader.call(&["EVAL_RO", "return 4", "0"]), Resp::Int(4));
    assert_eq!(blocked(&mut admin), 3);
    admin.call(&["CLIENT", "UNPAUSE"]);
    assert_eq!(plain.read_reply().unwrap(), b":1\r\n");
    assert_eq!(shebang.read_reply().unwrap(), b":2\r\n");
    assert_eq!(in_multi.read_reply().unwrap(), b"*1\r\n:12\r\n");
}
