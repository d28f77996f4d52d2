//! QUANTUM end to end: links, rules, learning, GET's reply and its one batch per shard, errors,
//! persistence across kill -9 and snapshots, and GET never returning a torn value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warpengine_tests::{
    free_port, info_field, start_warpengine, try_start_warpengine_on, RawConn, Resp, TempDir,
};

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

fn err_starts(r: &Resp, prefix: &str) -> bool {
    matches!(r, Resp::Error(e) if e.starts_with(prefix))
}

/// The partner names QUANTUM PARTNERS lists, with their origins.
fn partners(c: &mut RawConn, key: &str) -> Vec<(String, String)> {
    let Resp::Array(items) = c.call(&["QUANTUM", "PARTNERS", key]) else {
        panic!("PARTNERS")
    };
    items
        .into_iter()
        .map(|i| match i {
            Resp::Array(f) => match (&f[0], &f[1]) {
                (Resp::Bulk(k), Resp::Bulk(o)) => (
                    String::from_utf8(k.clone()).unwrap(),
                    String::from_utf8(o.clone()).unwrap(),
                ),
                other => panic!("partner fields {other:?}"),
            },
            other => panic!("partner {other:?}"),
        })
        .collect()
}

fn int_field(c: &mut RawConn, section: &str, field: &str) -> i64 {
    info_field(c, section, field).parse().expect("an integer")
}

#[test]
fn links_rules_and_get() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["SET", "user:42", "alice"]);
    c.call(&["SET", "profile:42", "p42"]);
    c.call(&["LPUSH", "settings:42", "not-a-string"]);
    assert_eq!(
        c.call(&["QUANTUM", "LINK", "user:42", "a", "b", "a"]),
        Resp::Int(2)
    );
    assert_eq!(c.call(&["QUANTUM", "LINK", "user:42", "a"]), Resp::Int(0));
    // Links are symmetric.
    assert_eq!(
        partners(&mut c, "a"),
        vec![("user:42".into(), "link".into())]
    );
    assert_eq!(
        c.call(&["QUANTUM", "UNLINK", "user:42", "b", "zz"]),
        Resp::Int(1)
    );
    assert_eq!(
        c.call(&[
            "QUANTUM",
            "RULE",
            "ADD",
            "user:*",
            "profile:*",
            "settings:*"
        ]),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        c.call(&["QUANTUM", "RULE", "LIST"]),
        Resp::Array(vec![Resp::Array(vec![
            bulk("user:*"),
            Resp::Array(vec![bulk("profile:*"), bulk("settings:*")])
        ])])
    );
    assert_eq!(
        partners(&mut c, "user:42"),
        vec![
            ("a".into(), "link".into()),
            ("profile:42".into(), "rule".into()),
            ("settings:42".into(), "rule".into())
        ]
    );
    // Missing and non-string partners read as nil.
    assert_eq!(
        c.call(&["QUANTUM", "GET", "user:42"]),
        Resp::Array(vec![
            bulk("user:42"),
            bulk("alice"),
            bulk("a"),
            Resp::Nil,
            bulk("profile:42"),
            bulk("p42"),
            bulk("settings:42"),
            Resp::Nil,
        ])
    );
    assert_eq!(
        c.call(&["QUANTUM", "GET", "user:42", "LIMIT", "0"]),
        Resp::Array(vec![bulk("user:42"), bulk("alice")])
    );
    assert_eq!(
        c.call(&["QUANTUM", "GET", "nokey"]),
        Resp::Array(vec![bulk("nokey"), Resp::Nil])
    );
    assert!(err_starts(
        &c.call(&["QUANTUM", "GET", "settings:42"]),
        "WRONGTYPE"
    ));
    assert_eq!(c.call(&["QUANTUM", "RULE", "DEL", "user:*"]), Resp::Int(1));
    assert_eq!(c.call(&["QUANTUM", "RULE", "DEL", "user:*"]), Resp::Int(0));
    assert_eq!(partners(&mut c, "user:42").len(), 1);
    // The connection and the data survive every error.
    for (args, prefix) in [
        (
            vec!["QUANTUM", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try QUANTUM HELP.",
        ),
        (
            vec!["QUANTUM"],
            "ERR wrong number of arguments for 'quantum'",
        ),
        (
            vec!["QUANTUM", "LINK", "k"],
            "ERR wrong number of arguments for 'quantum|link'",
        ),
        (vec!["QUANTUM", "LINK", "k", "k"], "ERR a key cannot"),
        (
            vec!["QUANTUM", "RULE", "ADD", "user:", "p:*"],
            "ERR QUANTUM RULE patterns",
        ),
        (
            vec!["QUANTUM", "RULE", "ADD", "u:*"],
            "ERR wrong number of arguments",
        ),
        (
            vec!["QUANTUM", "RULE", "MOVE", "x"],
            "ERR unknown QUANTUM RULE action",
        ),
        (vec!["QUANTUM", "GET", "k", "LIMIT", "-1"], "ERR LIMIT"),
        (
            vec!["QUANTUM", "GET", "k", "LIMITS", "1"],
            "ERR syntax error",
        ),
        (vec!["QUANTUM", "LEARN", "maybe"], "ERR syntax error"),
        (vec!["QUANTUM", "LEARN", "on", "WINDOW", "0"], "ERR WINDOW"),
    ] {
        let r = c.call(&args);
        assert!(err_starts(&r, prefix), "{args:?} -> {r:?}");
    }
    assert_eq!(c.call(&["GET", "user:42"]), bulk("alice"));
    let Resp::Array(help) = c.call(&["QUANTUM", "HELP"]) else {
        panic!("HELP")
    };
    assert!(help.len() > 10);
    // The subcommands are table rows: COMMAND INFO and GETKEYS know them.
    let Resp::Array(info) = c.call(&["COMMAND", "INFO", "quantum"]) else {
        panic!("COMMAND INFO")
    };
    let Resp::Array(entry) = &info[0] else {
        panic!("entry")
    };
    let Resp::Array(subs) = &entry[9] else {
        panic!("subcommands")
    };
    assert_eq!(subs.len(), 7);
    assert_eq!(
        c.call(&["COMMAND", "GETKEYS", "QUANTUM", "LINK", "a", "b", "c"]),
        Resp::Array(vec![bulk("a"), bulk("b"), bulk("c")])
    );
}

#[test]
fn the_per_key_link_limit_is_all_or_nothing() {
    let server = start_warpengine(&["--set", "quantum-max-links-per-key=2"]);
    let mut c = RawConn::connect(server.port);
    assert!(err_starts(
        &c.call(&["QUANTUM", "LINK", "k", "a", "b", "c"]),
        "ERR QUANTUM LINK would give a key more than 2 links"
    ));
    assert!(partners(&mut c, "k").is_empty());
    assert_eq!(c.call(&["QUANTUM", "LINK", "k", "a", "b"]), Resp::Int(2));
}

#[test]
fn get_sends_one_batch_per_partner_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    let partners: Vec<String> = (0..24).map(|i| format!("p{i}")).collect();
    let mut link = vec!["QUANTUM", "LINK", "page"];
    link.extend(partners.iter().map(String::as_str));
    assert_eq!(c.call(&link), Resp::Int(24));
    for p in &partners {
        c.call(&["SET", p, p]);
    }
    let batches = |c: &mut RawConn| {
        let Resp::Bulk(text) = c.call(&["INFO", "shards"]) else {
            panic!("INFO")
        };
        let text = String::from_utf8(text).unwrap();
        let mut total = 0;
        for field in ["remote_batches_out=", "remote_batches_run_inline="] {
            for line in text.lines() {
                if let Some(rest) = line.split(field).nth(1) {
                    total += rest
                        .split(',')
                        .next()
                        .unwrap()
                        .trim()
                        .parse::<i64>()
                        .unwrap();
                }
            }
        }
        total
    };
    let before = batches(&mut c);
    let Resp::Array(reply) = c.call(&["QUANTUM", "GET", "page"]) else {
        panic!("GET")
    };
    assert_eq!(reply.len(), 50);
    for pair in reply[2..].chunks(2) {
        assert_eq!(pair[0], pair[1], "each partner's value is its name");
    }
    let sent = batches(&mut c) - before;
    // INFO itself runs locally; 24 keys over 4 shards need at most 3 remote batches.
    assert!((1..=3).contains(&sent), "{sent} batches for 24 partners");
    assert_eq!(int_field(&mut c, "physics", "quantum_partners_fetched"), 24);
}

#[test]
fn learning_pairs_keys_read_together_and_stops_when_off() {
    let server = start_warpengine(&["--set", "quantum-learn-min-weight=3"]);
    let mut c = RawConn::connect(server.port);
    for k in ["a", "b", "c", "noise"] {
        c.call(&["SET", k, k]);
    }
    assert_eq!(
        c.call(&["QUANTUM", "LEARN", "ON", "WINDOW", "5000"]),
        Resp::Simple("OK".into())
    );
    for _ in 0..3 {
        c.call(&["GET", "a"]);
        c.call(&["GET", "b"]);
        c.call(&["GET", "c"]);
    }
    let learned = partners(&mut c, "a");
    assert!(
        learned.contains(&("b".into(), "learned".into())),
        "{learned:?}"
    );
    assert!(learned.contains(&("c".into(), "learned".into())));
    assert!(!learned.iter().any(|(k, _)| k == "noise"));
    let Resp::Array(got) = c.call(&["QUANTUM", "GET", "a"]) else {
        panic!("GET")
    };
    assert_eq!(got.len(), 6, "a, b and c: {got:?}");
    assert_eq!(
        c.call(&["QUANTUM", "LEARN", "OFF"]),
        Resp::Simple("OK".into())
    );
    c.call(&["GET", "a"]);
    c.call(&["GET", "noise"]);
    assert!(!partners(&mut c, "a").iter().any(|(k, _)| k == "noise"));
    assert!(int_field(&mut c, "physics", "quantum_pairs_reinforced") > 0);
}

#[test]
fn links_and_rules_survive_kill_and_snapshots() {
    let dir = TempDir::new("quantum");
    let port = free_port();
    let args = ["--appendonly", "yes", "--dir", dir.path(), "--threads", "2"];
    let start = || try_start_warpengine_on(port, &args).expect("start");
    let mut server = start();
    let mut c = RawConn::connect(port);
    c.call(&["QUANTUM", "LINK", "k", "x", "y"]);
    c.call(&["QUANTUM", "RULE", "ADD", "user:*", "profile:*"]);
    server.kill9();
    let mut server = start();
    let mut c = RawConn::connect(port);
    assert_eq!(
        partners(&mut c, "k"),
        vec![("x".into(), "link".into()), ("y".into(), "link".into())]
    );
    assert_eq!(
        partners(&mut c, "user:1"),
        vec![("profile:1".into(), "rule".into())]
    );
    // After a snapshot the older log is gone: the snapshot carries links and rules.
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while int_field(&mut c, "persistence", "aof_rewrite_in_progress") != 0 {
        assert!(Instant::now() < deadline, "rewrite never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.call(&["QUANTUM", "UNLINK", "k", "y"]);
    c.call(&["QUANTUM", "LINK", "k", "z"]);
    server.kill9();
    let mut server = start();
    let mut c = RawConn::connect(port);
    assert_eq!(
        partners(&mut c, "k"),
        vec![("x".into(), "link".into()), ("z".into(), "link".into())]
    );
    assert_eq!(partners(&mut c, "y"), vec![]);
    c.call(&["SAVE"]);
    server.kill9();
    let _server = start();
    let mut c = RawConn::connect(port);
    assert_eq!(partners(&mut c, "z"), vec![("k".into(), "link".into())]);
    assert_eq!(partners(&mut c, "user:7").len(), 1);
}

#[test]
fn get_never_returns_a_torn_value() {
    let server = start_warpengine(&["--threads", "2"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    let keys: Vec<String> = (0..6).map(|i| format!("torn:{i}")).collect();
    let mut link = vec!["QUANTUM", "LINK", "torn:0"];
    link.extend(keys[1..].iter().map(String::as_str));
    c.call(&link);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let keys = keys.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let fill = [b'A', b'B', b'C'][(round as usize + w) % 3];
                    let len = 20_000 + (round as usize % 7) * 3_000;
                    let value = vec![fill; len];
                    for k in &keys {
                        c.command(&[b"SET", k.as_bytes(), &value]);
                    }
                    round += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut reads = 0;
    while Instant::now() < deadline {
        let Resp::Array(reply) = c.call(&["QUANTUM", "GET", "torn:0"]) else {
            panic!("GET")
        };
        assert_eq!(reply.len(), 12);
        for pair in reply.chunks(2) {
            if let Resp::Bulk(v) = &pair[1] {
                assert!(v.iter().all(|&b| b == v[0]), "a value mixes two writes");
                let fill_len = 20_000 + ((v.len() - 20_000) / 3_000) * 3_000;
                assert_eq!(v.len(), fill_len, "a value has a length no write gave it");
            }
        }
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(reads > 10, "only {reads} reads");
}
