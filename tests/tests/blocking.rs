//! Blocking list commands against the real binary: wake-up on push from any connection and
//! shard, timeouts, arrival-order fairness, disconnects while blocked, pipelines.

use std::time::{Duration, Instant};

use warpengine_tests::{start_warpengine, wait_for_blocked, RawConn};

#[test]
fn blpop_is_woken_by_a_push_from_another_connection_and_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut admin = RawConn::connect(server.port);
    // Keys on several shards; the pusher's connection may sit on any worker.
    for key in ["queue:a", "queue:b", "queue:c", "queue:d"] {
        let mut waiter = RawConn::connect(server.port);
        waiter.send_command(&[b"BLPOP", b"nothing", key.as_bytes(), b"5"]);
        wait_for_blocked(&mut admin, 1);
        let mut pusher = RawConn::connect(server.port);
        assert_eq!(
            pusher.command(&[b"RPUSH", key.as_bytes(), b"job"]),
            b":1\r\n"
        );
        let expected = format!("*2\r\n${}\r\n{key}\r\n$3\r\njob\r\n", key.len());
        assert_eq!(waiter.read_reply().unwrap(), expected.into_bytes());
        assert_eq!(pusher.command(&[b"LLEN", key.as_bytes()]), b":0\r\n");
        wait_for_blocked(&mut admin, 0);
    }
}

#[test]
fn timeouts_answer_null_after_the_fractional_timeout() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    let start = Instant::now();
    assert_eq!(c.command(&[b"BLPOP", b"empty", b"0.3"]), b"*-1\r\n");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        c.command(&[b"BLMOVE", b"empty", b"dst", b"LEFT", b"RIGHT", b"0.05"]),
        b"*-1\r\n"
    );
    assert_eq!(
        c.command(&[b"BLPOP", b"empty", b"-1"]),
        b"-ERR timeout is negative\r\n"
    );
    assert_eq!(c.command(&[b"HELLO", b"3"])[..2], b"%7"[..]);
    assert_eq!(c.command(&[b"BRPOP", b"empty", b"0.05"]), b"_\r\n");
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut first = RawConn::connect(server.port);
    let mut second = RawConn::connect(server.port);
    first.send_command(&[b"BLPOP", b"fair", b"5"]);
    wait_for_blocked(&mut admin, 1);
    second.send_command(&[b"BLPOP", b"fair", b"5"]);
    wait_for_blocked(&mut admin, 2);
    // One push carrying two elements serves both, oldest waiter first.
    assert_eq!(
        admin.command(&[b"RPUSH", b"fair", b"one", b"two"]),
        b":2\r\n"
    );
    assert_eq!(
        first.read_reply().unwrap(),
        b"*2\r\n$4\r\nfair\r\n$3\r\none\r\n"
    );
    assert_eq!(
        second.read_reply().unwrap(),
        b"*2\r\n$4\r\nfair\r\n$3\r\ntwo\r\n"
    );
}

#[test]
fn a_client_that_disconnects_while_blocked_takes_nothing() {
    let server = start_warpengine(&[]);
    let mut admin = RawConn::connect(server.port);
    {
        let mut gone = RawConn::connect(server.port);
        gone.send_command(&[b"BLPOP", b"left-behind", b"0"]);
        wait_for_blocked(&mut admin, 1);
    }
    wait_for_blocked(&mut admin, 0);
    assert_eq!(admin.command(&[b"LPUSH", b"left-behind", b"x"]), b":1\r\n");
    assert_eq!(admin.command(&[b"LLEN", b"left-behind"]), b":1\r\n");
}

#[test]
fn blmove_across_shards_and_pipelined_commands_wait_their_turn() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut admin = RawConn::connect(server.port);
    let mut waiter = RawConn::connect(server.port);
    // The PING after the blocking command is answered only once BLMOVE is served.
    waiter.send(b"BLMOVE src{1} dst{2} LEFT RIGHT 5\r\nPING\r\n");
    wait_for_blocked(&mut admin, 1);
    assert_eq!(admin.command(&[b"RPUSH", b"src{1}", b"payload"]), b":1\r\n");
    assert_eq!(waiter.read_reply().unwrap(), b"$7\r\npayload\r\n");
    assert_eq!(waiter.read_reply().unwrap(), b"+PONG\r\n");
    assert_eq!(
        admin.command(&[b"LRANGE", b"dst{2}", b"0", b"-1"]),
        b"*1\r\n$7\r\npayload\r\n"
    );
}

#[test]
fn blmpop_serves_the_first_non_empty_key() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut waiter = RawConn::connect(server.port);
    waiter.send_command(&[b"BLMPOP", b"5", b"2", b"m1", b"m2", b"LEFT", b"COUNT", b"2"]);
    wait_for_blocked(&mut admin, 1);
    assert_eq!(
        admin.command(&[b"RPUSH", b"m2", b"a", b"b", b"c"]),
        b":3\r\n"
    );
    assert_eq!(
        waiter.read_reply().unwrap(),
        b"*2\r\n$2\r\nm2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}

#[test]
fn bzpopmin_is_woken_by_zadd() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut waiter = RawConn::connect(server.port);
    waiter.send_command(&[b"BZPOPMIN", b"board", b"5"]);
    wait_for_blocked(&mut admin, 1);
    assert_eq!(
        admin.command(&[b"ZADD", b"board", b"2", b"two", b"1", b"one"]),
        b":2\r\n"
    );
    assert_eq!(
        waiter.read_reply().unwrap(),
        b"*3\r\n$5\r\nboard\r\n$3\r\none\r\n$1\r\n1\r\n"
    );
    assert_eq!(admin.command(&[b"ZCARD", b"board"]), b":1\r\n");
}

#[test]
fn client_unblock_ends_a_blocked_command_as_a_timeout_or_an_error() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut blocked = RawConn::connect(server.port);
    let id = String::from_utf8(blocked.command(&[b"CLIENT", b"ID"])).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    for (how, reply) in [
        ("TIMEOUT", b"*-1\r\n".to_vec()),
        (
            "ERROR",
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n".to_vec(),
        ),
    ] {
        blocked.send_command(&[b"BLPOP", b"never", b"0"]);
        wait_for_blocked(&mut admin, 1);
        assert_eq!(
            admin.command(&[b"CLIENT", b"UNBLOCK", id.as_bytes(), how.as_bytes()]),
            b":1\r\n"
        );
        assert_eq!(blocked.read_reply().unwrap(), reply, "{how}");
        wait_for_blocked(&mut admin, 0);
        // Not blocked any more: nothing to unblock.
        assert_eq!(
            admin.command(&[b"CLIENT", b"UNBLOCK", id.as_bytes()]),
            b":0\r\n"
        );
    }
    // The connection serves on, and a push is not lost to the unblocked command.
    admin.command(&[b"RPUSH", b"never", b"x"]);
    assert_eq!(blocked.command(&[b"LPOP", b"never"]), b"$1\r\nx\r\n");
}

/// Woken to find its key of another type (a transaction pushed, deleted and SET it), a
/// blocked pop waits on, as Redis 7.0's, and takes the next push; only a first try fails
/// with WRONGTYPE.
#[test]
fn a_woken_pop_passes_over_a_key_of_another_type() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    for (pop, push, served) in [
        ("BLPOP", "LPUSH list a", "*2\r\n$4\r\nlist\r\n$1\r\nb\r\n"),
        (
            "BLMPOP",
            "LPUSH list a",
            "*2\r\n$4\r\nlist\r\n*1\r\n$1\r\nb\r\n",
        ),
        (
            "BZPOPMIN",
            "ZADD list 1 a",
            "*3\r\n$4\r\nlist\r\n$1\r\nb\r\n$1\r\n1\r\n",
        ),
    ] {
        let mut blocked = RawConn::connect(server.port);
        let args: Vec<&[u8]> = match pop {
            "BLMPOP" => vec![b"BLMPOP", b"0", b"1", b"list", b"LEFT"],
            _ => vec![pop.as_bytes(), b"list", b"0"],
        };
        blocked.send_command(&args);
        wait_for_blocked(&mut admin, 1);
        admin.command(&[b"MULTI"]);
        let push: Vec<&[u8]> = push.split(' ').map(str::as_bytes).collect();
        admin.command(&push);
        admin.command(&[b"DEL", b"list"]);
        admin.command(&[b"SET", b"list", b"foo"]);
        admin.command(&[b"EXEC"]);
        std::thread::sleep(Duration::from_millis(50));
        wait_for_blocked(&mut admin, 1);
        admin.command(&[b"DEL", b"list"]);
        let mut push_b = push.clone();
        *push_b.last_mut().unwrap() = b"b";
        admin.command(&push_b);
        assert_eq!(blocked.read_reply().unwrap(), served.as_bytes(), "{pop}");
        wait_for_blocked(&mut admin, 0);
    }
}
