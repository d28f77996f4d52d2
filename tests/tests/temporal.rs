//! TEMPORAL end to end: decaying scores (checked at fixed event times with AT), TOP in RESP2
//! and RESP3, errors, the generic keyspace commands on the new type, the member cap, INFO and
//! COMMAND, and the key surviving restarts through the log and through snapshots.

use std::time::{Duration, Instant};

use warpengine_tests::{
    free_port, info_field, start_warpengine, try_start_warpengine_on, RawConn, Resp, TempDir,
};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn assert_close(got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "got {got}, want {want} (±{rel} relative)"
    );
}

fn err(r: Resp) -> String {
    match r {
        Resp::Error(e) => e,
        other => panic!("not an error: {other:?}"),
    }
}

fn bulks(r: Resp) -> Vec<String> {
    match r {
        Resp::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Resp::Bulk(b) => String::from_utf8(b).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// The server's clock in Unix milliseconds.
fn server_now_ms(c: &mut RawConn) -> i64 {
    let Resp::Array(t) = c.call(&["TIME"]) else {
        panic!("TIME")
    };
    t[0].int() * 1000 + t[1].int() / 1000
}

#[test]
fn scores_halve_every_halflife() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    let incr = |c: &mut RawConn, amount: &str, at: &str| {
        c.call(&[
            "TEMPORAL", "INCR", "k", "a", amount, "HALFLIFE", "10", "AT", at,
        ])
        .float()
    };
    assert_eq!(incr(&mut c, "8", "0"), 8.0);
    // A negligible increment reads the score at its event time.
    assert_close(incr(&mut c, "1e-300", "10000"), 4.0, 1e-12);
    assert_close(incr(&mut c, "1e-300", "30000"), 1.0, 1e-12);
    // Increments add on top of the decayed score; HALFLIFE may be left out once the key exists.
    let r = c
        .call(&["TEMPORAL", "INCR", "k", "a", "3", "AT", "30000"])
        .float();
    assert_close(r, 4.0, 1e-12);
    // Backfilling before the last event: 10 s earlier the score was twice as high.
    assert_close(incr(&mut c, "1e-300", "20000"), 8.0, 1e-12);
    // Now is long after: decayed to nothing.
    let Resp::Bulk(now) = c.call(&["TEMPORAL", "SCORE", "k", "a"]) else {
        panic!("SCORE")
    };
    assert_eq!(now, b"0");
}

#[test]
fn simultaneous_increments_sum() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    for (amount, want) in [("1.5", 1.5), ("2.5", 4.0), ("0.25", 4.25)] {
        let r = c.call(&["TEMPORAL", "INCR", "k", "m", amount, "AT", "5000"]);
        assert_eq!(r.float(), want);
    }
}

/// Three members written now with a half-life so long that the test cannot see them decay.
fn three_members(c: &mut RawConn) {
    for (m, amount) in [("a", "3"), ("b", "5"), ("c", "1")] {
        let r = c.call(&["TEMPORAL", "INCR", "t", m, amount, "HALFLIFE", "1e9"]);
        assert_eq!(r.float(), amount.parse::<f64>().unwrap());
    }
}

#[test]
fn top_and_score_in_resp2() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    three_members(&mut c);
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "t", "2"])), ["b", "a"]);
    assert_eq!(
        bulks(c.call(&["TEMPORAL", "TOP", "t", "10"])),
        ["b", "a", "c"]
    );
    assert_eq!(c.call(&["TEMPORAL", "TOP", "t", "0"]), Resp::Array(vec![]));
    let flat = bulks(c.call(&["TEMPORAL", "TOP", "t", "3", "withscores"]));
    assert_eq!(
        (&flat[0], &flat[2], &flat[4]),
        (&"b".into(), &"a".into(), &"c".into())
    );
    for (text, want) in [(&flat[1], 5.0), (&flat[3], 3.0), (&flat[5], 1.0)] {
        assert_close(text.parse().unwrap(), want, 1e-9);
    }
    assert_close(c.call(&["TEMPORAL", "SCORE", "t", "b"]).float(), 5.0, 1e-9);
    assert_eq!(c.call(&["TEMPORAL", "SCORE", "t", "nobody"]), Resp::Nil);
    assert_eq!(c.call(&["TEMPORAL", "SCORE", "missing", "a"]), Resp::Nil);
    assert_eq!(
        c.call(&["TEMPORAL", "TOP", "missing", "5"]),
        Resp::Array(vec![])
    );
    // A later, larger increment overtakes: TOP follows the score, not the insertion order.
    c.call(&["TEMPORAL", "INCR", "t", "c", "10"]);
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "t", "1"])), ["c"]);
}

#[test]
fn top_withscores_in_resp3_is_shaped_like_zrange() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    three_members(&mut c);
    c.command(&[b"HELLO", b"3"]);
    c.call(&["ZADD", "z", "5", "b", "3", "a", "1", "c"]);
    let shape = |raw: Vec<u8>| -> Vec<String> {
        // Numbers vary in their last digits: keep their type byte only.
        String::from_utf8(raw)
            .unwrap()
            .split("\r\n")
            .map(|t| {
                if t.starts_with(',') {
                    ",".into()
                } else {
                    t.to_string()
                }
            })
            .collect()
    };
    let ours = shape(c.command(&[b"TEMPORAL", b"TOP", b"t", b"3", b"WITHSCORES"]));
    let zrange = shape(c.command(&[b"ZRANGE", b"z", b"0", b"-1", b"REV", b"WITHSCORES"]));
    assert_eq!(ours, zrange);
    assert_eq!(&ours[..5], ["*3", "*2", "$1", "b", ","]);
    // INCR and SCORE answer doubles.
    let double = |raw: Vec<u8>| -> f64 {
        let text = String::from_utf8(raw).unwrap();
        let number = text.strip_prefix(',').and_then(|t| t.strip_suffix("\r\n"));
        number
            .unwrap_or_else(|| panic!("not a double: {text:?}"))
            .parse()
            .unwrap()
    };
    assert_close(
        double(c.command(&[b"TEMPORAL", b"INCR", b"t", b"a", b"1"])),
        4.0,
        1e-9,
    );
    assert_close(
        double(c.command(&[b"TEMPORAL", b"SCORE", b"t", b"a"])),
        4.0,
        1e-9,
    );
    assert_eq!(c.command(&[b"TEMPORAL", b"SCORE", b"t", b"zz"]), b"_\r\n");
}

#[test]
fn wrong_arguments_get_redis_style_errors() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    let call = |c: &mut RawConn, args: &str| err(c.call(&args.split(' ').collect::<Vec<_>>()));
    c.call(&["TEMPORAL", "INCR", "k", "a", "1", "HALFLIFE", "60"]);
    let not_positive =
        "ERR TEMPORAL amount must be a positive finite number (decrements are not supported)";
    for (args, want) in [
        ("TEMPORAL INCR k a abc", "ERR value is not a valid float"),
        ("TEMPORAL INCR k a 0", not_positive),
        ("TEMPORAL INCR k a -2", not_positive),
        ("TEMPORAL INCR k a inf", not_positive),
        (
            "TEMPORAL INCR n a 1 HALFLIFE 0",
            "ERR HALFLIFE must be a number of seconds from 0.001 to 1e12",
        ),
        (
            "TEMPORAL INCR n a 1 HALFLIFE -5",
            "ERR HALFLIFE must be a number of seconds from 0.001 to 1e12",
        ),
        (
            "TEMPORAL INCR n a 1 HALFLIFE x",
            "ERR value is not a valid float",
        ),
        (
            "TEMPORAL INCR k a 1 HALFLIFE 61",
            "ERR TEMPORAL key has a different HALFLIFE",
        ),
        (
            "TEMPORAL INCR k a 1 AT 1.5",
            "ERR value is not an integer or out of range",
        ),
        (
            "TEMPORAL INCR k a 1 MAXMEMBERS -1",
            "ERR value is out of range, must be positive",
        ),
        ("TEMPORAL INCR k a 1 AT", "ERR syntax error"),
        ("TEMPORAL INCR k a 1 BOGUS 1", "ERR syntax error"),
        (
            "TEMPORAL TOP k -1",
            "ERR value is out of range, must be positive",
        ),
        (
            "TEMPORAL TOP k x",
            "ERR value is not an integer or out of range",
        ),
        ("TEMPORAL TOP k 1 WITHSCORE", "ERR syntax error"),
        ("TEMPORAL TOP k 1 WITHSCORES x", "ERR syntax error"),
        (
            "TEMPORAL NOPE k",
            "ERR unknown subcommand 'NOPE'. Try TEMPORAL HELP.",
        ),
        (
            "TEMPORAL",
            "ERR wrong number of arguments for 'temporal' command",
        ),
        (
            "TEMPORAL INCR k a",
            "ERR wrong number of arguments for 'temporal|incr' command",
        ),
        (
            "TEMPORAL TOP k",
            "ERR wrong number of arguments for 'temporal|top' command",
        ),
        (
            "TEMPORAL SCORE k a b",
            "ERR wrong number of arguments for 'temporal|score' command",
        ),
        (
            "TEMPORAL HELP me",
            "ERR wrong number of arguments for 'temporal|help' command",
        ),
    ] {
        assert_eq!(call(&mut c, args), want, "{args}");
    }
    // Refused commands change nothing: the key still has one member and its half-life.
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])), ["a"]);
    assert_eq!(c.call(&["EXISTS", "n"]), Resp::Int(0));
}

#[test]
fn wrong_type_both_ways() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    c.call(&["SET", "s", "1"]);
    c.call(&["ZADD", "z", "1", "a"]);
    c.call(&["TEMPORAL", "INCR", "t", "a", "1"]);
    for key in ["s", "z"] {
        assert_eq!(err(c.call(&["TEMPORAL", "INCR", key, "a", "1"])), WRONGTYPE);
        assert_eq!(err(c.call(&["TEMPORAL", "TOP", key, "1"])), WRONGTYPE);
        assert_eq!(err(c.call(&["TEMPORAL", "SCORE", key, "a"])), WRONGTYPE);
    }
    for cmd in [
        &["GET", "t"][..],
        &["APPEND", "t", "x"],
        &["LPUSH", "t", "x"],
        &["ZSCORE", "t", "a"],
        &["ZINCRBY", "t", "1", "a"],
        &["HGET", "t", "a"],
        &["SORT", "t"],
    ] {
        assert_eq!(err(c.call(cmd)), WRONGTYPE, "{cmd:?}");
    }
}

#[test]
fn generic_keyspace_commands_handle_the_type() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["TEMPORAL", "INCR", "t", "a", "2", "HALFLIFE", "1e9"]);
    assert_eq!(c.call(&["TYPE", "t"]), Resp::Simple("temporal".into()));
    assert_eq!(
        c.call(&["OBJECT", "ENCODING", "t"]),
        Resp::Bulk(b"temporal".to_vec())
    );
    assert_eq!(c.call(&["EXISTS", "t"]), Resp::Int(1));
    c.call(&["SET", "plain", "v"]);
    let mut cursor = "0".to_string();
    let mut found = Vec::new();
    loop {
        let Resp::Array(scan) = c.call(&["SCAN", &cursor, "TYPE", "temporal"]) else {
            panic!("SCAN")
        };
        found.extend(bulks(scan[1].clone()));
        cursor = String::from_utf8(match &scan[0] {
            Resp::Bulk(b) => b.clone(),
            other => panic!("{other:?}"),
        })
        .unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(found, ["t"]);
    assert_eq!(c.call(&["EXPIRE", "t", "100"]), Resp::Int(1));
    assert!((1..=100).contains(&c.call(&["TTL", "t"]).int()));
    // Renamed and copied across shards (with two threads some of these names live elsewhere).
    for i in 0..8 {
        let to = format!("renamed{i}");
        let from = if i == 0 {
            "t".to_string()
        } else {
            format!("renamed{}", i - 1)
        };
        assert_eq!(c.call(&["RENAME", &from, &to]), Resp::Simple("OK".into()));
    }
    assert_eq!(c.call(&["EXISTS", "t"]), Resp::Int(0));
    assert!(c.call(&["TTL", "renamed7"]).int() > 0);
    assert_eq!(c.call(&["COPY", "renamed7", "copy"]), Resp::Int(1));
    c.call(&["TEMPORAL", "INCR", "copy", "b", "1"]);
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "renamed7", "10"])), ["a"]);
    assert_eq!(
        bulks(c.call(&["TEMPORAL", "TOP", "copy", "10"])),
        ["a", "b"]
    );
    assert_eq!(c.call(&["MOVE", "copy", "3"]), Resp::Int(1));
    c.call(&["SELECT", "3"]);
    assert_eq!(c.call(&["TYPE", "copy"]), Resp::Simple("temporal".into()));
    c.call(&["SELECT", "0"]);
    assert_eq!(c.call(&["DEL", "renamed7"]), Resp::Int(1));
    assert_eq!(
        c.call(&["TEMPORAL", "TOP", "renamed7", "10"]),
        Resp::Array(vec![])
    );
    c.call(&["TEMPORAL", "INCR", "gone", "a", "1"]);
    assert_eq!(c.call(&["PEXPIRE", "gone", "1"]), Resp::Int(1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(c.call(&["TEMPORAL", "SCORE", "gone", "a"]), Resp::Nil);
    assert_eq!(c.call(&["UNLINK", "plain"]), Resp::Int(1));
}

#[test]
fn the_member_cap_drops_the_lowest_and_is_counted() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        info_field(&mut c, "physics", "temporal_max_members"),
        "10000"
    );
    c.call(&["CONFIG", "SET", "temporal-max-members", "2"]);
    assert_eq!(info_field(&mut c, "physics", "temporal_max_members"), "2");
    for (m, amount) in [("a", "5"), ("b", "1"), ("c", "3")] {
        c.call(&["TEMPORAL", "INCR", "k", m, amount, "AT", "0"]);
    }
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])), ["a", "c"]);
    assert_eq!(
        info_field(&mut c, "physics", "temporal_members_trimmed"),
        "1"
    );
    assert_eq!(info_field(&mut c, "physics", "temporal_incr_calls"), "3");
    // MAXMEMBERS overrides the setting for one call; 0 means no cap.
    c.call(&[
        "TEMPORAL",
        "INCR",
        "k",
        "d",
        "0.5",
        "AT",
        "0",
        "MAXMEMBERS",
        "0",
    ]);
    assert_eq!(
        bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])),
        ["a", "c", "d"]
    );
    c.call(&[
        "TEMPORAL",
        "INCR",
        "k",
        "a",
        "1",
        "AT",
        "0",
        "MAXMEMBERS",
        "1",
    ]);
    assert_eq!(bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])), ["a"]);
    assert_eq!(
        info_field(&mut c, "physics", "temporal_members_trimmed"),
        "3"
    );
}

#[test]
fn the_default_halflife_is_a_setting() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        bulks(c.call(&["CONFIG", "GET", "temporal-default-halflife"])),
        ["temporal-default-halflife", "3600"]
    );
    c.call(&["CONFIG", "SET", "temporal-default-halflife", "10"]);
    c.call(&["TEMPORAL", "INCR", "k", "a", "8", "AT", "0"]);
    let r = c.call(&["TEMPORAL", "INCR", "k", "a", "1e-300", "AT", "20000"]);
    assert_close(r.float(), 2.0, 1e-12);
    // The key keeps its half-life when the default changes.
    c.call(&["CONFIG", "SET", "temporal-default-halflife", "3600"]);
    let r = c.call(&["TEMPORAL", "INCR", "k", "a", "1e-300", "AT", "30000"]);
    assert_close(r.float(), 1.0, 1e-12);
    assert_eq!(
        info_field(&mut c, "physics", "temporal_default_halflife"),
        "3600"
    );
}

#[test]
fn command_info_and_help_list_the_subcommands() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    let Resp::Array(info) = c.call(&["COMMAND", "INFO", "temporal"]) else {
        panic!("COMMAND INFO")
    };
    let Resp::Array(entry) = &info[0] else {
        panic!("no entry: {info:?}")
    };
    assert_eq!(entry[0], Resp::Bulk(b"temporal".to_vec()));
    let Resp::Array(subs) = &entry[9] else {
        panic!("subcommands: {entry:?}")
    };
    let names: Vec<&Resp> = subs
        .iter()
        .map(|s| match s {
            Resp::Array(f) => &f[0],
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<Resp> = [
        "temporal|incr",
        "temporal|top",
        "temporal|score",
        "temporal|help",
    ]
    .iter()
    .map(|n| Resp::Bulk(n.as_bytes().to_vec()))
    .collect();
    assert_eq!(names, want.iter().collect::<Vec<_>>());
    // INCR: arity -5, a write, key at position 2.
    let Resp::Array(incr) = &subs[0] else {
        panic!()
    };
    assert_eq!(incr[1], Resp::Int(-5));
    assert!(matches!(&incr[2], Resp::Array(f) if f.contains(&Resp::Simple("write".into()))));
    assert_eq!(&incr[3..6], &[Resp::Int(2), Resp::Int(2), Resp::Int(1)]);
    assert_eq!(
        bulks(c.call(&["COMMAND", "GETKEYS", "TEMPORAL", "INCR", "mykey", "m", "1"])),
        ["mykey"]
    );
    let Resp::Array(help) = c.call(&["TEMPORAL", "HELP"]) else {
        panic!("HELP")
    };
    let text: Vec<String> = help
        .iter()
        .map(|l| match l {
            Resp::Simple(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    for sub in [
        "INCR <key>",
        "TOP <key>",
        "SCORE <key>",
        "HELP",
        "decrements are not supported",
    ] {
        assert!(
            text.iter().any(|l| l.contains(sub)),
            "{sub} not in {text:?}"
        );
    }
}

/// Each member's score at one fixed time, read with a negligible increment at that time.
fn scores_at(c: &mut RawConn, key: &str, members: &[&str], at_ms: i64) -> Vec<f64> {
    let at = at_ms.to_string();
    members
        .iter()
        .map(|m| {
            c.call(&["TEMPORAL", "INCR", key, m, "1e-300", "AT", &at])
                .float()
        })
        .collect()
}

fn wait_rewrite_done(c: &mut RawConn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Resp::Bulk(info) = c.call(&["INFO", "persistence"]) else {
            panic!("INFO persistence")
        };
        if String::from_utf8(info)
            .unwrap()
            .contains("aof_rewrite_in_progress:0")
        {
            return;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn counters_survive_restarts_through_the_log_and_snapshots() {
    let dir = TempDir::new("temporal-restart");
    let port = free_port();
    let args = ["--appendonly", "yes", "--dir", dir.path(), "--threads", "2"];
    let start = || try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("{log}"));
    let mut server = start();
    let mut c = RawConn::connect(server.port);
    // Settings the restarted server will not have: the log must carry their effect.
    c.call(&["CONFIG", "SET", "temporal-default-halflife", "60"]);
    c.call(&["CONFIG", "SET", "temporal-max-members", "3"]);
    let now = server_now_ms(&mut c);
    let members = ["a", "b", "c"];
    // Events at "now" (no AT), backfilled, and enough members for the cap to drop one. The
    // backfilled 100 has decayed to 100·2^-1.5 ≈ 35 and puts `a` ahead of `b`.
    for (m, amount) in [("a", "4"), ("b", "9"), ("c", "2.5"), ("dropped", "0.1")] {
        c.call(&["TEMPORAL", "INCR", "k", m, amount]);
    }
    let past = (now - 90_000).to_string();
    c.call(&["TEMPORAL", "INCR", "k", "a", "100", "AT", &past]);
    // A key moved to other shards is logged as its state (put_key), not as the RENAME.
    c.call(&[
        "TEMPORAL", "INCR", "src", "x", "7", "HALFLIFE", "0.5", "AT", "1000",
    ]);
    for i in 0..6 {
        let from = if i == 0 {
            "src".to_string()
        } else {
            format!("moved{}", i - 1)
        };
        c.call(&["RENAME", &from, &format!("moved{i}")]);
    }
    let probe = now + 120_000;
    let before = scores_at(&mut c, "k", &members, probe);
    let moved_before = scores_at(&mut c, "moved5", &["x"], 2000);
    assert_close(moved_before[0], 7.0 / 4.0, 1e-12);
    assert_eq!(
        bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])),
        ["a", "b", "c"]
    );

    server.kill9();
    server = start();
    let mut c = RawConn::connect(server.port);
    assert_eq!(c.call(&["TYPE", "k"]), Resp::Simple("temporal".into()));
    assert_eq!(
        bulks(c.call(&["TEMPORAL", "TOP", "k", "10"])),
        ["a", "b", "c"]
    );
    let after_log = scores_at(&mut c, "k", &members, probe);
    for (a, b) in after_log.iter().zip(&before) {
        assert_close(*a, *b, 1e-12);
    }
    assert_close(
        scores_at(&mut c, "moved5", &["x"], 2000)[0],
        moved_before[0],
        1e-12,
    );
    // The key kept its 60 s half-life though the default is back to 3600.
    assert_eq!(
        err(c.call(&["TEMPORAL", "INCR", "k", "a", "1", "HALFLIFE", "3600"])),
        "ERR TEMPORAL key has a different HALFLIFE"
    );

    // Snapshots re-create the key from its state.
    assert_eq!(c.call(&["SAVE"]), Resp::Simple("OK".into()));
    server.kill9();
    server = start();
    let mut c = RawConn::connect(server.port);
    let after_save = scores_at(&mut c, "k", &members, probe);
    for (a, b) in after_save.iter().zip(&before) {
        assert_close(*a, *b, 1e-12);
    }
    assert_close(
        scores_at(&mut c, "moved5", &["x"], 2000)[0],
        moved_before[0],
        1e-12,
    );
    c.call(&[
        "TEMPORAL",
        "INCR",
        "k",
        "d",
        "1",
        "HALFLIFE",
        "60",
        "AT",
        &probe.to_string(),
    ]);
    c.call(&["BGREWRITEAOF"]);
    wait_rewrite_done(&mut c);
    server.kill9();
    let _server = start();
    let mut c = RawConn::connect(port);
    let after_rewrite = scores_at(&mut c, "k", &["a", "b", "c", "d"], probe);
    for (a, b) in after_rewrite.iter().zip(&before) {
        assert_close(*a, *b, 1e-12);
    }
    assert_close(after_rewrite[3], 1.0, 1e-12);
    assert_eq!(c.call(&["TEMPORAL", "SCORE", "k", "dropped"]), Resp::Nil);
}
