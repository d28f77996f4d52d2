//! Per-write durability: SET ... DURABILITY always|everysec|no and WAITAOF. The promise is
//! checked as a power cut would test it: the log is cut back to what the last fdatasync
//! covered, and every write acknowledged as synced must survive the restart.

use warpengine_tests::{
    free_port, start_warpengine, try_start_warpengine_on, RawConn, Resp, TempDir,
};

/// (segment, written bytes, synced bytes) of shard 0's current log segment.
fn positions(c: &mut RawConn) -> (u64, u64, u64) {
    let Resp::Bulk(info) = c.call(&["INFO", "persistence"]) else {
        panic!("INFO")
    };
    let info = String::from_utf8(info).unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("wal_shard0:"))
        .expect("wal_shard0 line");
    let field = |name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    // Before its first fdatasync a segment reads as synced up to byte 0.
    let synced = if field("synced_segment") == field("segment") {
        field("synced_bytes")
    } else {
        0
    };
    (field("segment"), field("written_bytes"), synced)
}

/// Arguments for a server logging to `dir` with that appendfsync and thread count.
fn logged<'a>(fsync: &'a str, threads: &'a str, dir: &'a TempDir) -> [&'a str; 8] {
    [
        "--appendonly",
        "yes",
        "--appendfsync",
        fsync,
        "--threads",
        threads,
        "--dir",
        dir.path(),
    ]
}

fn ok(r: Resp) {
    assert_eq!(r, Resp::Simple("OK".into()));
}

#[test]
fn durability_always_and_waitaof_survive_a_power_cut_under_appendfsync_no() {
    let dir = TempDir::new("durability-no");
    let port = free_port();
    let args = logged("no", "1", &dir);
    let mut server = try_start_warpengine_on(port, &args).expect("start");
    let mut c = RawConn::connect(port);
    ok(c.call(&["SET", "plain1", "v"]));
    let (_, written, synced) = positions(&mut c);
    assert!(written > synced, "appendfsync no synced a plain write");
    ok(c.call(&["SET", "durable1", "v", "DURABILITY", "always"]));
    let (_, written, synced) = positions(&mut c);
    assert_eq!(
        written, synced,
        "DURABILITY always answered before its fdatasync"
    );
    ok(c.call(&["SET", "plain2", "v", "durability", "no"]));
    assert_eq!(
        c.call(&["WAITAOF", "0", "0", "0"]),
        Resp::Array(vec![Resp::Int(0), Resp::Int(0)])
    );
    assert_eq!(
        c.call(&["WAITAOF", "1", "0", "0"]),
        Resp::Array(vec![Resp::Int(1), Resp::Int(0)])
    );
    let (_, written, synced) = positions(&mut c);
    assert_eq!(written, synced, "WAITAOF answered before the fdatasync");
    ok(c.call(&["SET", "plain3", "v"]));
    let (segment, written, synced) = positions(&mut c);
    assert!(written > synced);
    // The power cut: what was not fdatasync'd is gone.
    server.kill9();
    let log = dir.0.join("appendonlydir").join(format!("log-{segment}-0"));
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(synced).unwrap();
    drop(f);
    let _server = try_start_warpengine_on(port, &args).expect("restart");
    let mut c = RawConn::connect(port);
    for key in ["plain1", "durable1", "plain2"] {
        assert_eq!(c.call(&["EXISTS", key]), Resp::Int(1), "{key} was lost");
    }
    assert_eq!(c.call(&["EXISTS", "plain3"]), Resp::Int(0));
}

#[test]
fn durability_no_does_not_wait_for_the_fdatasync_under_always() {
    let dir = TempDir::new("durability-always");
    let port = free_port();
    let args = logged("always", "1", &dir);
    let _server = try_start_warpengine_on(port, &args).expect("start");
    let mut c = RawConn::connect(port);
    ok(c.call(&["SET", "a", "1"]));
    let (_, written, synced) = positions(&mut c);
    assert_eq!(written, synced);
    // Nothing asks for an fdatasync of this one: it is written, not synced.
    ok(c.call(&["SET", "b", "1", "DURABILITY", "no"]));
    let (_, written_after, synced_after) = positions(&mut c);
    assert!(written_after > written);
    assert_eq!(
        synced_after, synced,
        "DURABILITY no waited for an fdatasync"
    );
    ok(c.call(&["SET", "b", "2", "DURABILITY", "everysec"]));
    ok(c.call(&["SET", "c", "1"]));
    let (_, written, synced) = positions(&mut c);
    assert_eq!(written, synced);
}

#[test]
fn every_class_survives_kill_9() {
    // A process crash keeps what was written: every acknowledged write, whatever its class.
    let dir = TempDir::new("durability-kill");
    let port = free_port();
    let args = logged("always", "2", &dir);
    let mut server = try_start_warpengine_on(port, &args).expect("start");
    let mut c = RawConn::connect(port);
    for i in 0..200 {
        let class = ["no", "everysec", "always"][i % 3];
        let key = format!("k{i}");
        ok(c.call(&["SET", &key, class, "DURABILITY", class]));
    }
    server.kill9();
    let _server = try_start_warpengine_on(port, &args).expect("restart");
    let mut c = RawConn::connect(port);
    for i in 0..200 {
        let key = format!("k{i}");
        assert_eq!(
            c.call(&["GET", &key]),
            Resp::Bulk(["no", "everysec", "always"][i % 3].as_bytes().to_vec()),
            "{key}"
        );
    }
}

#[test]
fn bad_durability_is_refused_and_nothing_is_written() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        c.call(&["SET", "k", "v", "DURABILITY", "sometimes"]),
        Resp::Error("ERR syntax error".into())
    );
    assert_eq!(
        c.call(&["SET", "k", "v", "DURABILITY"]),
        Resp::Error("ERR syntax error".into())
    );
    // Without the log there is nothing to make a write durable with.
    assert!(matches!(
        c.call(&["SET", "k", "v", "DURABILITY", "always"]),
        Resp::Error(e) if e.starts_with("ERR DURABILITY")
    ));
    assert_eq!(c.call(&["EXISTS", "k"]), Resp::Int(0));
    ok(c.call(&["SET", "k", "v", "DURABILITY", "no"]));
    assert_eq!(
        c.call(&["WAITAOF", "1", "0", "0"]),
        Resp::Error(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.".into()
        )
    );
    assert_eq!(
        c.call(&["WAITAOF", "0", "0", "0"]),
        Resp::Array(vec![Resp::Int(0), Resp::Int(0)])
    );
    for (args, err) in [
        (
            ["WAITAOF", "2", "0", "0"],
            "ERR value is out of range, value must between 0 and 1",
        ),
        (
            ["WAITAOF", "0", "-1", "0"],
            "ERR value is out of range, must be positive",
        ),
        (["WAITAOF", "0", "0", "-1"], "ERR timeout is negative"),
        (
            ["WAITAOF", "x", "0", "0"],
            "ERR value is not an integer or out of range",
        ),
        (
            ["WAITAOF", "0", "0", "x"],
            "ERR timeout is not an integer or out of range",
        ),
    ] {
        assert_eq!(c.call(&args), Resp::Error(err.into()), "{args:?}");
    }
    // No replica ever acknowledges: the timeout ends the wait.
    assert_eq!(
        c.call(&["WAITAOF", "0", "1", "50"]),
        Resp::Array(vec![Resp::Int(0), Resp::Int(0)])
    );
}
