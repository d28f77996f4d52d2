//! DUMP, RESTORE, RDB files and MIGRATE end to end: every type and encoding made in a real
//! redis-server, DUMPed there, RESTOREd here and compared, then back; restored keys survive a
//! restart; mutated payloads never take the server down; client smoke tests; dump.rdb both
//! ways with redis-server; MIGRATE to Redis and to another WarpEngine.

use warpengine_tests::{
    encode_command, free_port, redis_available, start_redis, start_warpengine,
    try_start_warpengine_on, RawConn, Resp, SeededRandom, ServerProcess, TempDir,
};

/// Values to make in Redis (`{k}` is the key, ` ; ` separates commands): every type in each
/// encoding Redis 7.0 gives it, and streams with deleted entries, consumer groups, consumers
/// and pending entries, or empty but for a group.
const VALUES: &[&str] = &[
    "SET {k} 12345",
    "SET {k} -9999999999",
    "SET {k} hello",
    "SET {k} abcabcabcabcabcabcabcabcabcabcabcabcabcabc",
    "RPUSH {k} a b c 1 2 300 -5 70000 99999999999",
    "HSET {k} f1 v1 f2 2 f3 -300",
    "SADD {k} 1 5 -3 100000 10000000000",
    "SADD {k} a b c 1",
    "ZADD {k} 1 a 2.5 b -3 c inf d 0.1 e -inf f",
    "XADD {k} 1-1 f v g 12 ; XADD {k} 1-2 f w g 13 ; XADD {k} 2-0 other 1 ; XADD {k} 3-0 f x g 99999999999 ; XDEL {k} 1-2 ; XGROUP CREATE {k} grp 0 ; XGROUP CREATE {k} late $ ; XGROUP CREATECONSUMER {k} grp idle ; XREADGROUP GROUP grp alice COUNT 2 STREAMS {k} > ; XREADGROUP GROUP grp bob COUNT 1 STREAMS {k} > ; XACK {k} grp 1-1",
    "XGROUP CREATE {k} g $ MKSTREAM ; XGROUP CREATECONSUMER {k} g c",
    "XADD {k} 5-5 a 1 ; XDEL {k} 5-5",
];

/// The same shapes past the compact encodings' limits (built with many arguments).
fn large_values() -> Vec<String> {
    let items = |f: &dyn Fn(usize) -> String, n: usize| (0..n).map(f).collect::<Vec<_>>().join(" ");
    vec![
        format!("SET {{k}} {}", "x".repeat(5000)),
        format!(
            "RPUSH {{k}} {}",
            items(&|i| format!("element-{i}-{}", "y".repeat(i % 50)), 2000)
        ),
        format!("RPUSH {{k}} a {} b", "z".repeat(20000)),
        format!("HSET {{k}} {}", items(&|i| format!("f{i} {i}"), 300)),
        format!("HSET {{k}} f {}", "v".repeat(100)),
        format!("SADD {{k}} {}", items(&|i| (i * 3).to_string(), 700)),
        format!("SADD {{k}} {}", items(&|i| format!("m{i}"), 300)),
        format!(
            "ZADD {{k}} {}",
            items(&|i| format!("{}.5 m{i}", i as i64 - 100), 300)
        ),
        format!("ZADD {{k}} 1 {} 2 b", "w".repeat(100)),
        // Three nodes, the first trimmed in part, entries deleted here and there.
        format!(
            "{} ; XTRIM {{k}} MAXLEN 230 ; XDEL {{k}} 40-0 150-1 ; XGROUP CREATE {{k}} g 100-0 ; XREADGROUP GROUP g c COUNT 5 STREAMS {{k}} >",
            items(
                &|i| format!(
                    "XADD {{k}} {}-{} f {i} g {}",
                    i / 2 + 1,
                    i % 2,
                    if i % 9 == 0 { "x".repeat(i) } else { "v".into() }
                ),
                260
            )
            .replace(" XADD", " ; XADD")
        ),
    ]
}

/// Runs the commands of `line` (separated by ` ; `) on `key`; the last one's answer.
fn call_line(c: &mut RawConn, line: &str, key: &str) -> Resp {
    let line = line.replace("{k}", key);
    let mut answer = Resp::Nil;
    for command in line.split(" ; ") {
        let args: Vec<&str> = command.split(' ').collect();
        answer = c.call(&args);
    }
    answer
}

fn bulk(c: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    match Resp::parse(&c.command(args)) {
        Resp::Bulk(b) => b,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn sorted_groups(r: Resp, group: usize) -> Resp {
    let Resp::Array(items) = r else { return r };
    let mut groups: Vec<Vec<Resp>> = items.chunks(group).map(|c| c.to_vec()).collect();
    groups.sort_by_key(|g| format!("{g:?}"));
    Resp::Array(groups.into_iter().flatten().collect())
}

/// A key's type, encoding and whole content in a canonical order.
fn content(c: &mut RawConn, key: &str) -> (Resp, Resp, Resp) {
    let ty = c.call(&["TYPE", key]);
    let encoding = c.call(&["OBJECT", "ENCODING", key]);
    let value = match &ty {
        Resp::Simple(t) if t == "string" => c.call(&["GET", key]),
        Resp::Simple(t) if t == "list" => c.call(&["LRANGE", key, "0", "-1"]),
        Resp::Simple(t) if t == "hash" => sorted_groups(c.call(&["HGETALL", key]), 2),
        Resp::Simple(t) if t == "set" => sorted_groups(c.call(&["SMEMBERS", key]), 1),
        Resp::Simple(t) if t == "zset" => c.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        // Entries, IDs, counters, groups, consumers and pending entries with their times.
        Resp::Simple(t) if t == "stream" => c.call(&["XINFO", "STREAM", key, "FULL"]),
        // WarpEngine's own type, which no payload or RDB file holds.
        Resp::Simple(t) if t == "temporal" => Resp::Nil,
        other => panic!("{key}: type {other:?}"),
    };
    (ty, encoding, value)
}

/// Whether redis-server is missing and WARP_SKIP_DIFFERENTIAL allows going without it (the
/// tests that need it fail otherwise).
fn skip_without_redis() -> bool {
    !redis_available() && std::env::var("WARP_SKIP_DIFFERENTIAL").as_deref() == Ok("1")
}

/// A redis-server and a WarpEngine with a connection to each (None: no redis-server, and
/// WARP_SKIP_DIFFERENTIAL allows going without).
fn both_servers() -> Option<(ServerProcess, ServerProcess, RawConn, RawConn)> {
    if skip_without_redis() {
        return None;
    }
    let (redis, warp) = (start_redis(&[]), start_warpengine(&[]));
    let (r, w) = (RawConn::connect(redis.port), RawConn::connect(warp.port));
    Some((redis, warp, r, w))
}

fn restore(c: &mut RawConn, key: &str, payload: &[u8]) -> Resp {
    Resp::parse(&c.command(&[b"RESTORE", key.as_bytes(), b"0", payload, b"REPLACE"]))
}

#[test]
fn every_type_and_encoding_moves_both_ways_with_redis() {
    let Some((_redis, _warp, mut r, mut w)) = both_servers() else {
        return;
    };
    let large = large_values();
    let lines = VALUES
        .iter()
        .copied()
        .chain(large.iter().map(|s| s.as_str()));
    for (i, line) in lines.enumerate() {
        let key = format!("value:{i}");
        call_line(&mut r, line, &key);
        let from_redis = bulk(&mut r, &[b"DUMP", key.as_bytes()]);
        assert_eq!(
            restore(&mut w, &key, &from_redis),
            Resp::Simple("OK".into())
        );
        let in_redis = content(&mut r, &key);
        assert_eq!(
            content(&mut w, &key),
            in_redis,
            "Redis to WarpEngine: {line:.80}"
        );
        let from_warp = bulk(&mut w, &[b"DUMP", key.as_bytes()]);
        let back = format!("back:{i}");
        assert_eq!(
            restore(&mut r, &back, &from_warp),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            content(&mut r, &back),
            in_redis,
            "WarpEngine to Redis: {line:.80}"
        );
    }
}

/// A WarpEngine logging to a fresh directory, with every value of `VALUES` under
/// `prefix:<i>`: the server, its port and arguments (to restart it), its directory.
fn logged_with_values(prefix: &str) -> (ServerProcess, u16, Vec<String>, TempDir) {
    let dir = TempDir::new(&format!("dump-{prefix}"));
    let port = free_port();
    let args: Vec<String> = ["--appendonly", "yes", "--dir", dir.path()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let server = try_start_warpengine_on(port, &argv).unwrap();
    let mut c = RawConn::connect(port);
    for (i, line) in VALUES.iter().enumerate() {
        call_line(&mut c, line, &format!("{prefix}:{i}"));
    }
    (server, port, args, dir)
}

/// Long lists split into nodes as Redis's RPUSH splits them, for each kind of fill: DUMP's bytes
/// are Redis's.
#[test]
fn long_lists_dump_with_redis_node_boundaries() {
    let Some((_redis, _warp, mut r, mut w)) = both_servers() else {
        return;
    };
    let mut rng = SeededRandom(0x11_57);
    for fill in ["-1", "-2", "-3", "-5", "0", "7", "100"] {
        for c in [&mut r, &mut w] {
            c.call(&["CONFIG", "SET", "list-max-listpack-size", fill]);
            c.call(&["DEL", "long"]);
        }
        for _ in 0..1200 {
            let element = match rng.below(4) {
                0 => "x".repeat(rng.below(300) as usize),
                1 => (rng.below(2_000_000) as i64 - 1_000_000).to_string(),
                2 => "y".repeat(60 + rng.below(10) as usize),
                _ => "z".repeat(250 + rng.below(10) as usize),
            };
            r.call(&["RPUSH", "long", &element]);
            w.call(&["RPUSH", "long", &element]);
        }
        let expected = bulk(&mut r, &[b"DUMP", b"long"]);
        assert!(bulk(&mut w, &[b"DUMP", b"long"]) == expected, "fill {fill}");
    }
}

#[test]
fn restored_keys_survive_a_restart() {
    let (mut server, port, args, _dir) = logged_with_values("src");
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let mut c = RawConn::connect(port);
    let mut expected = Vec::new();
    for i in 0..VALUES.len() {
        let src = format!("src:{i}");
        let payload = bulk(&mut c, &[b"DUMP", src.as_bytes()]);
        let key = format!("restored:{i}");
        c.command(&[b"RESTORE", key.as_bytes(), b"100000", &payload]);
        c.command(&[b"SET", b"replaced", b"old"]);
        c.command(&[b"RESTORE", b"replaced", b"0", &payload, b"REPLACE"]);
        // An absolute expiry in the past deletes what REPLACE named.
        c.command(&[b"SET", b"gone", b"old"]);
        c.command(&[b"RESTORE", b"gone", b"1", &payload, b"REPLACE", b"ABSTTL"]);
        expected.push((key.clone(), content(&mut c, &key)));
    }
    let replaced = content(&mut c, "replaced");
    let expiry = c.call(&["PEXPIRETIME", "restored:0"]);
    server.kill9();
    let _server = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    for (key, before) in expected {
        assert_eq!(content(&mut c, &key), before, "{key}");
    }
    assert_eq!(content(&mut c, "replaced"), replaced);
    assert_eq!(c.call(&["EXISTS", "gone"]), Resp::Int(0));
    assert_eq!(c.call(&["PEXPIRETIME", "restored:0"]), expiry);
}

/// Redis's CRC-64 (Jones, reflected), bit by bit: a payload mutated here gets a valid
/// checksum again, so the mutation reaches the value decoder.
fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &byte in data {
        crc ^= byte as u64;
        for _ in 0..8 {
            let low = crc & 1;
            crc >>= 1;
            if low == 1 {
                crc ^= 0x95ac_9329_ac4b_c9b5;
            }
        }
    }
    crc
}

fn reseal(mut payload: Vec<u8>) -> Vec<u8> {
    if payload.len() < 10 {
        return payload;
    }
    let body_end = payload.len() - 8;
    let crc = crc64(&payload[..body_end]);
    payload[body_end..].copy_from_slice(&crc.to_le_bytes());
    payload
}

#[test]
fn mutated_payloads_are_refused_or_restored_never_crash() {
    let warp = start_warpengine(&[]);
    let mut c = RawConn::connect(warp.port);
    let large = large_values();
    let mut payloads = Vec::new();
    for (i, line) in VALUES
        .iter()
        .copied()
        .chain(large.iter().map(|s| s.as_str()))
        .enumerate()
    {
        let key = format!("seed:{i}");
        call_line(&mut c, line, &key);
        payloads.push(bulk(&mut c, &[b"DUMP", key.as_bytes()]));
    }
    let mut rng = SeededRandom(0x5eed_d00d);
    let (mut restored, mut refused) = (0, 0);
    for round in 0..3000 {
        let mut p = payloads[rng.below(payloads.len() as u64) as usize].clone();
        let body_len = p.len() - 10;
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(body_len as u64) as usize;
            match rng.below(4) {
                0 => p[at] ^= 1 << rng.below(8),
                1 => p[at] = rng.below(256) as u8,
                2 => p[at] = [0, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff][rng.below(7) as usize],
                _ => {
                    // Cut the body short (the footer stays).
                    let cut = at.max(1);
                    p.drain(cut..p.len() - 10);
                    break;
                }
            }
        }
        let p = reseal(p);
        let key = format!("fuzz:{round}");
        match restore(&mut c, &key, &p) {
            Resp::Simple(ok) if ok == "OK" => {
                restored += 1;
                // What was accepted is a whole value: readable, and dumped again.
                content(&mut c, &key);
                bulk(&mut c, &[b"DUMP", key.as_bytes()]);
                c.call(&["DEL", &key]);
            }
            Resp::Error(e) => {
                assert!(
                    e == "ERR Bad data format" || e.starts_with("ERR DUMP payload"),
                    "{e}"
                );
                refused += 1;
            }
            other => panic!("RESTORE answered {other:?}"),
        }
    }
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
    assert!(
        restored > 0 && refused > 0,
        "{restored} restored, {refused} refused"
    );
}

/// The `redis` crate: DUMP as bytes, RESTORE with options.
#[test]
fn redis_crate_dumps_and_restores() {
    let warp = start_warpengine(&[]);
    let client = redis::Client::open(warp.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("SADD")
        .arg("rs:d1")
        .arg(&[1, 2, 3])
        .query(&mut c)
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("rs:d1").query(&mut c).unwrap();
    assert_eq!(payload[0], 11, "an intset");
    let _: () = redis::cmd("RESTORE")
        .arg("rs:d2")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    let members: Vec<i64> = redis::cmd("SMEMBERS").arg("rs:d2").query(&mut c).unwrap();
    assert_eq!(members, vec![1, 2, 3]);
    let busy: redis::RedisResult<()> = redis::cmd("RESTORE")
        .arg("rs:d2")
        .arg(0)
        .arg(&payload)
        .query(&mut c);
    assert_eq!(busy.unwrap_err().code(), Some("BUSYKEY"));
    let _: () = redis::cmd("RESTORE")
        .arg("rs:d2")
        .arg(0)
        .arg(&payload)
        .arg("REPLACE")
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("rs:d2")
        .query(&mut c)
        .unwrap();
    assert!((1000..1010).contains(&idle), "{idle}");

    // A stream with a group and a pending entry: type 19, and the group comes along.
    let _: String = redis::cmd("XADD")
        .arg(&["rs:x1", "1-1", "f", "v"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "rs:x1", "g", "0"])
        .query(&mut c)
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "alice", "STREAMS", "rs:x1", ">"])
        .query(&mut c)
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("rs:x1").query(&mut c).unwrap();
    assert_eq!(payload[0], 19, "STREAM_LISTPACKS_2");
    let _: () = redis::cmd("RESTORE")
        .arg("rs:x2")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    let pending: (i64, String, String, Vec<(String, String)>) = redis::cmd("XPENDING")
        .arg(&["rs:x2", "g"])
        .query(&mut c)
        .unwrap();
    assert_eq!(
        pending,
        (
            1,
            "1-1".into(),
            "1-1".into(),
            vec![("alice".into(), "1".into())]
        )
    );
}

/// redis-cli: DUMP's raw bytes piped back into RESTORE with -x.
#[test]
fn redis_cli_dump_output_restores() {
    let warp = start_warpengine(&[]);
    let port = warp.port.to_string();
    let cli = |args: &[&str], input: Option<&[u8]>| {
        use std::io::Write;
        let mut child = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-cli");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.unwrap_or_default()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap().stdout
    };
    cli(&["HSET", "cli:d1", "f", "v"], None);
    let mut payload = cli(&["--raw", "DUMP", "cli:d1"], None);
    // --raw ends the bulk with a newline of its own.
    assert_eq!(payload.pop(), Some(b'\n'));
    assert_eq!(
        cli(&["-x", "RESTORE", "cli:d2", "0"], Some(&payload)),
        b"OK\n"
    );
    assert_eq!(cli(&["HGET", "cli:d2", "f"], None), b"v\n");
    // A stream with an empty group.
    cli(&["XADD", "cli:x1", "5-5", "f", "v"], None);
    cli(&["XGROUP", "CREATE", "cli:x1", "g", "$"], None);
    let mut payload = cli(&["--raw", "DUMP", "cli:x1"], None);
    assert_eq!(payload.pop(), Some(b'\n'));
    assert_eq!(
        cli(&["-x", "RESTORE", "cli:x2", "0"], Some(&payload)),
        b"OK\n"
    );
    assert_eq!(cli(&["XRANGE", "cli:x2", "-", "+"], None), b"5-5\nf\nv\n");
    assert_eq!(
        cli(&["XINFO", "GROUPS", "cli:x2"], None),
        b"name\ng\nconsumers\n0\npending\n0\nlast-delivered-id\n5-5\nentries-read\n\nlag\n0\n"
    );
}

// ---- RDB files ------------------------------------------------------------------------------

/// Fills a server with every value shape (databases 0 and 2), expiries and a function library.
fn fill(c: &mut RawConn) {
    let large = large_values();
    for (i, line) in VALUES
        .iter()
        .copied()
        .chain(large.iter().map(|s| s.as_str()))
        .enumerate()
    {
        call_line(c, line, &format!("value:{i}"));
    }
    c.call(&["SET", "volatile", "v", "PX", "100000000"]);
    c.call(&["HSET", "volatile-hash", "f", "v"]);
    c.call(&["PEXPIREAT", "volatile-hash", "99999999999999"]);
    c.call(&["SELECT", "2"]);
    c.call(&["RPUSH", "in-db-2", "x", "y"]);
    c.call(&["SELECT", "0"]);
    let lib = "#!lua name=rdblib\nredis.register_function('rdb_f', function() return 42 end)";
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", lib]),
        Resp::Bulk(b"rdblib".to_vec())
    );
}

type Dataset = Vec<((usize, String), (Resp, Resp, Resp), Resp)>;

/// Every key of databases 0..4 with its content and absolute expiry, and what the function
/// answers.
fn dataset(c: &mut RawConn) -> (Dataset, Resp) {
    let mut out = Vec::new();
    for db in 0..4 {
        c.call(&["SELECT", &db.to_string()]);
        let Resp::Array(keys) = c.call(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        let mut names: Vec<String> = keys
            .into_iter()
            .map(|k| match k {
                Resp::Bulk(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        names.sort();
        for name in names {
            let expiry = c.call(&["PEXPIRETIME", &name]);
            out.push(((db, name.clone()), content(c, &name), expiry));
        }
    }
    c.call(&["SELECT", "0"]);
    let f = c.call(&["FCALL", "rdb_f", "0"]);
    (out, f)
}

/// redis-check-rdb (redis-tools) accepts the file.
fn redis_check_rdb(file: &std::path::Path) {
    let check = std::process::Command::new("redis-check-rdb")
        .arg(file)
        .output()
        .expect("redis-check-rdb (redis-tools)");
    let report = String::from_utf8_lossy(&check.stdout);
    let fine = report.contains("RDB looks OK") || report.contains("checksum disabled");
    assert!(check.status.success() && fine, "{report}");
}

/// Waits up to a minute for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn copy_rdb(from: &TempDir, to: &TempDir) {
    std::fs::copy(
        std::path::Path::new(from.path()).join("dump.rdb"),
        std::path::Path::new(to.path()).join("dump.rdb"),
    )
    .expect("dump.rdb copied");
}

#[test]
fn a_dump_rdb_written_by_redis_loads_here() {
    if skip_without_redis() {
        return;
    }
    let redis_dir = TempDir::new("rdb-from-redis");
    let redis = start_redis(&["--dir", redis_dir.path()]);
    let mut r = RawConn::connect(redis.port);
    fill(&mut r);
    assert_eq!(r.call(&["SAVE"]), Resp::Simple("OK".into()));
    let expected = dataset(&mut r);
    assert!(expected.0.len() > VALUES.len());
    // With appendonly no, and with appendonly yes on a first start (no log yet).
    for extra in [&[][..], &["--appendonly", "yes"][..]] {
        let dir = TempDir::new("rdb-load-here");
        copy_rdb(&redis_dir, &dir);
        let mut args = vec!["--dir", dir.path()];
        args.extend_from_slice(extra);
        let port = free_port();
        let mut warp = try_start_warpengine_on(port, &args).unwrap();
        let mut w = RawConn::connect(port);
        assert_eq!(dataset(&mut w), expected, "{extra:?}");
        if !extra.is_empty() {
            // The log's first snapshot holds what the file held.
            std::fs::remove_file(std::path::Path::new(dir.path()).join("dump.rdb")).unwrap();
            warp.kill9();
            let _warp = try_start_warpengine_on(port, &args).unwrap();
            assert_eq!(dataset(&mut RawConn::connect(port)), expected);
        }
    }
}

#[test]
fn our_dump_rdb_passes_redis_check_rdb_and_loads_in_redis() {
    if skip_without_redis() {
        return;
    }
    let dir = TempDir::new("rdb-to-redis");
    let warp = try_start_warpengine_on(free_port(), &["--dir", dir.path()]).unwrap();
    let mut w = RawConn::connect(warp.port);
    fill(&mut w);
    w.call(&["TEMPORAL", "INCR", "trending", "m", "1"]);
    assert_eq!(w.call(&["SAVE"]), Resp::Simple("OK".into()));
    let mut expected = dataset(&mut w);
    // TEMPORAL has no RDB form: the file leaves it out.
    expected.0.retain(|((_, k), _, _)| k != "trending");
    let file = std::path::Path::new(dir.path()).join("dump.rdb");
    redis_check_rdb(&file);
    let redis = start_redis(&["--dir", dir.path()]);
    assert_eq!(dataset(&mut RawConn::connect(redis.port)), expected);
}

#[test]
fn bgsave_and_shutdown_write_dump_rdb_and_a_start_without_the_log_loads_it() {
    let dir = TempDir::new("rdb-restart");
    let port = free_port();
    let args = ["--dir", dir.path()];
    let file = std::path::Path::new(dir.path()).join("dump.rdb");
    let mut warp = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    fill(&mut c);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    wait_for("BGSAVE's dump.rdb", || file.exists());
    let expected = dataset(&mut c);
    warp.kill9();
    let _warp = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    assert_eq!(dataset(&mut c), expected);
    // SHUTDOWN SAVE writes it too: a change, then a restart that sees it.
    c.call(&["SET", "after-restart", "1"]);
    let mut warp = _warp;
    c.send(&encode_command(&[b"SHUTDOWN", b"SAVE"]));
    wait_for("SHUTDOWN SAVE to stop the server", || !warp.alive());
    let _warp = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["GET", "after-restart"]), Resp::Bulk(b"1".to_vec()));
}

/// BGSAVE's file holds the data of the instant it began, though writes change and delete keys
/// while it is written; redis-check-rdb accepts it and redis-server loads it.
#[test]
fn bgsave_file_is_the_data_of_its_start_under_writes() {
    if skip_without_redis() {
        return;
    }
    let dir = TempDir::new("rdb-bgsave-writes");
    let warp =
        try_start_warpengine_on(free_port(), &["--dir", dir.path(), "--threads", "4"]).unwrap();
    let mut c = RawConn::connect(warp.port);
    const N: usize = 60_000;
    let mut batch = Vec::new();
    for i in 0..N {
        batch.extend(encode_command(&[
            b"SET",
            format!("k{i}").as_bytes(),
            b"before",
        ]));
    }
    c.send(&batch);
    for _ in 0..N {
        c.read_reply().unwrap();
    }
    c.call(&["RPUSH", "list", "a", "b"]);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    // Change everything while the walk goes on.
    let mut batch = Vec::new();
    for i in 0..N {
        let key = format!("k{i}");
        if i % 2 == 0 {
            batch.extend(encode_command(&[b"SET", key.as_bytes(), b"after"]));
        } else {
            batch.extend(encode_command(&[b"DEL", key.as_bytes()]));
        }
    }
    batch.extend(encode_command(&[b"RPUSH", b"list", b"c"]));
    batch.extend(encode_command(&[b"SET", b"new-key", b"x"]));
    c.send(&batch);
    for _ in 0..N + 2 {
        c.read_reply().unwrap();
    }
    let file = std::path::Path::new(dir.path()).join("dump.rdb");
    wait_for("BGSAVE's dump.rdb", || file.exists());
    redis_check_rdb(&file);
    let redis = start_redis(&["--dir", dir.path()]);
    let mut r = RawConn::connect(redis.port);
    assert_eq!(r.call(&["DBSIZE"]).int(), N as i64 + 1);
    for i in (0..N).step_by(97) {
        assert_eq!(
            r.call(&["GET", &format!("k{i}")]),
            Resp::Bulk(b"before".to_vec()),
            "k{i}"
        );
    }
    assert_eq!(r.call(&["LLEN", "list"]), Resp::Int(2));
    assert_eq!(r.call(&["EXISTS", "new-key"]), Resp::Int(0));
}

/// `rdbchecksum no`: a zero trailer, which redis-check-rdb and a start take as unchecked.
#[test]
fn rdbchecksum_no_writes_a_zero_trailer() {
    let dir = TempDir::new("rdb-no-checksum");
    let port = free_port();
    let args = ["--dir", dir.path(), "--rdbchecksum", "no"];
    let mut warp = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    c.call(&["SET", "k", "v"]);
    c.call(&["SAVE"]);
    warp.kill9();
    let file = std::path::Path::new(dir.path()).join("dump.rdb");
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data[data.len() - 8..], [0u8; 8]);
    redis_check_rdb(&file);
    let _warp = try_start_warpengine_on(port, &["--dir", dir.path()]).unwrap();
    assert_eq!(
        RawConn::connect(port).call(&["GET", "k"]),
        Resp::Bulk(b"v".to_vec())
    );
}

#[test]
fn a_damaged_dump_rdb_stops_the_start() {
    let dir = TempDir::new("rdb-damaged");
    let port = free_port();
    let args = ["--dir", dir.path()];
    let mut warp = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    fill(&mut c);
    c.call(&["SAVE"]);
    warp.kill9();
    let file = std::path::Path::new(dir.path()).join("dump.rdb");
    let mut data = std::fs::read(&file).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    std::fs::write(&file, &data).unwrap();
    let refused = try_start_warpengine_on(port, &args)
        .err()
        .expect("start refused");
    // Redis's words: its test harness looks for "CRC error".
    assert!(refused.contains("Wrong RDB checksum"), "{refused}");
    assert!(refused.contains("RDB CRC error"), "{refused}");
    // Damage behind a valid checksum reaches the reader: a start either loads something whole
    // or stops with a message, never with a panic.
    let mut rng = SeededRandom(0xdb_f11e);
    let (mut loaded, mut stopped) = (0, 0);
    for _ in 0..25 {
        let mut damaged = data.clone();
        for _ in 0..1 + rng.below(3) {
            let at = 9 + rng.below(damaged.len() as u64 - 17) as usize;
            damaged[at] = rng.below(256) as u8;
        }
        std::fs::write(&file, reseal(damaged)).unwrap();
        match try_start_warpengine_on(port, &args) {
            Ok(server) => {
                let mut c = RawConn::connect(server.port);
                assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
                loaded += 1;
            }
            Err(log) => {
                assert!(
                    !log.contains("panicked") && log.contains("dump.rdb"),
                    "{log}"
                );
                stopped += 1;
            }
        }
    }
    assert!(stopped > 0, "{loaded} loaded, {stopped} stopped");
}

// ---- MIGRATE --------------------------------------------------------------------------------

fn migrate(c: &mut RawConn, port: u16, rest: &[&str]) -> Resp {
    let port = port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &port];
    args.extend_from_slice(rest);
    c.call(&args)
}

#[test]
fn migrate_moves_keys_to_redis_and_to_another_warpengine() {
    if skip_without_redis() {
        return;
    }
    let redis = start_redis(&["--requirepass", "secret"]);
    let mut r = RawConn::connect(redis.port);
    r.call(&["AUTH", "secret"]);
    r.call(&["ACL", "SETUSER", "mover", "on", ">pw2", "~*", "+@all"]);
    let (mut warp, port, args, _dir) = logged_with_values("m");
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let mut w = RawConn::connect(port);
    w.call(&["PEXPIRE", "m:0", "500000"]);
    let before: Vec<_> = (0..VALUES.len())
        .map(|i| content(&mut w, &format!("m:{i}")))
        .collect();
    let ok = Resp::Simple("OK".into());

    // One key, AUTH; then the rest with KEYS and AUTH2 into database 3.
    assert_eq!(
        migrate(&mut w, redis.port, &["m:0", "0", "5000", "AUTH", "secret"]),
        ok
    );
    assert_eq!(w.call(&["EXISTS", "m:0"]), Resp::Int(0));
    let ttl = r.call(&["PTTL", "m:0"]).int();
    assert!((400_000..=500_000).contains(&ttl), "{ttl}");
    let mut rest = vec!["", "3", "5000", "AUTH2", "mover", "pw2", "KEYS"];
    let names: Vec<String> = (1..VALUES.len()).map(|i| format!("m:{i}")).collect();
    rest.extend(names.iter().map(|s| s.as_str()));
    rest.push("m:absent");
    assert_eq!(migrate(&mut w, redis.port, &rest), ok);
    assert_eq!(content(&mut r, "m:0"), before[0]);
    r.call(&["SELECT", "3"]);
    for (i, want) in before.iter().enumerate().skip(1) {
        assert_eq!(&content(&mut r, &format!("m:{i}")), want, "m:{i}");
        assert_eq!(w.call(&["EXISTS", &format!("m:{i}")]), Resp::Int(0));
    }

    // Errors: a wrong password, a key already there (nothing is deleted), then COPY and REPLACE.
    w.call(&["SET", "m:1", "again"]);
    let wrong = migrate(&mut w, redis.port, &["m:1", "3", "5000", "AUTH", "nope"]);
    assert!(
        matches!(&wrong, Resp::Error(e) if e.starts_with("ERR Target instance replied with error: WRONGPASS")),
        "{wrong:?}"
    );
    let busy = migrate(&mut w, redis.port, &["m:1", "3", "5000", "AUTH", "secret"]);
    assert_eq!(
        busy,
        Resp::Error(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        )
    );
    assert_eq!(w.call(&["EXISTS", "m:1"]), Resp::Int(1));
    assert_eq!(
        migrate(
            &mut w,
            redis.port,
            &["m:1", "3", "5000", "COPY", "REPLACE", "AUTH", "secret"]
        ),
        ok
    );
    assert_eq!(w.call(&["GET", "m:1"]), Resp::Bulk(b"again".to_vec()));
    assert_eq!(r.call(&["GET", "m:1"]), Resp::Bulk(b"again".to_vec()));

    // Redis to WarpEngine, and WarpEngine to WarpEngine.
    let other = start_warpengine(&[]);
    r.call(&["SELECT", "0"]);
    r.call(&["RPUSH", "from-redis", "a", "b"]);
    assert_eq!(
        r.call(&[
            "MIGRATE",
            "127.0.0.1",
            &port.to_string(),
            "from-redis",
            "0",
            "5000"
        ]),
        ok
    );
    assert_eq!(
        w.call(&["LRANGE", "from-redis", "0", "-1"]),
        Resp::Array(vec![Resp::Bulk(b"a".to_vec()), Resp::Bulk(b"b".to_vec())])
    );
    assert_eq!(
        migrate(&mut w, other.port, &["from-redis", "0", "5000"]),
        ok
    );
    let mut o = RawConn::connect(other.port);
    assert_eq!(o.call(&["LLEN", "from-redis"]), Resp::Int(2));

    // The target refuses the second key: the first, accepted, is gone here all the same.
    w.call(&["SET", "pa", "1"]);
    w.call(&["SET", "pb", "2"]);
    r.call(&["SELECT", "3"]);
    r.call(&["SET", "pb", "there"]);
    let refused = migrate(
        &mut w,
        redis.port,
        &["", "3", "5000", "AUTH", "secret", "KEYS", "pa", "pb"],
    );
    assert!(
        matches!(&refused, Resp::Error(e) if e.contains("BUSYKEY")),
        "{refused:?}"
    );
    assert_eq!(w.call(&["EXISTS", "pa"]), Resp::Int(0));
    assert_eq!(w.call(&["GET", "pb"]), Resp::Bulk(b"2".to_vec()));
    assert_eq!(r.call(&["GET", "pa"]), Resp::Bulk(b"1".to_vec()));

    // The moves are logged: after a restart the moved keys stay gone, the copied one stays.
    warp.kill9();
    let _warp = try_start_warpengine_on(port, &args).unwrap();
    let mut w = RawConn::connect(port);
    assert_eq!(
        w.call(&["EXISTS", "m:0", "m:2", "from-redis"]),
        Resp::Int(0)
    );
    assert_eq!(w.call(&["GET", "m:1"]), Resp::Bulk(b"again".to_vec()));
}

#[test]
fn freq_under_lfu_temporal_refused_and_blocked_pop_served() {
    let warp = start_warpengine(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lfu"]);
    let mut c = RawConn::connect(warp.port);
    c.call(&["RPUSH", "src", "a"]);
    let payload = bulk(&mut c, &[b"DUMP", b"src"]);
    let ok = Resp::Simple("OK".into());
    assert_eq!(
        Resp::parse(&c.command(&[b"RESTORE", b"f", b"0", &payload, b"FREQ", b"100"])),
        ok
    );
    assert_eq!(c.call(&["OBJECT", "FREQ", "f"]), Resp::Int(100));
    // IDLETIME is taken and ignored under LFU, as in Redis.
    let idle = c.command(&[b"RESTORE", b"g", b"0", &payload, b"IDLETIME", b"5"]);
    assert_eq!(Resp::parse(&idle), ok);
    c.call(&["TEMPORAL", "INCR", "trend", "m", "1"]);
    assert_eq!(
        c.call(&["DUMP", "trend"]),
        Resp::Error(
            "ERR DUMP is not supported for temporal values: the RDB format has no such type".into()
        )
    );
    // A RESTOREd list serves a client blocked on its key.
    let mut waiter = RawConn::connect(warp.port);
    waiter.send(&encode_command(&[b"BLPOP", b"wake", b"5"]));
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.command(&[b"RESTORE", b"wake", b"0", &payload]);
    let served = Resp::parse(&waiter.read_reply().expect("BLPOP reply"));
    assert_eq!(
        served,
        Resp::Array(vec![
            Resp::Bulk(b"wake".to_vec()),
            Resp::Bulk(b"a".to_vec())
        ])
    );
}

/// MIGRATE of several keys to a target that refuses some (BUSYKEY, no REPLACE): the keys it
/// took are deleted here and the refused ones stay, as Redis's, with the first error told.
#[test]
fn migrate_deletes_exactly_the_keys_the_target_took() {
    let source = start_warpengine(&["--threads", "2"]);
    let target = start_warpengine(&["--threads", "2"]);
    let (mut s, mut t) = (RawConn::connect(source.port), RawConn::connect(target.port));
    let keys = ["a", "b", "c", "d", "e", "f"];
    for k in keys {
        s.call(&["SET", k, "1"]);
    }
    t.call(&["MSET", "c", "_", "d", "_"]);
    let port = target.port.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys);
    let reply = s.call(&migrate);
    assert!(
        matches!(&reply, Resp::Error(e) if e.contains("BUSYKEY")),
        "{reply:?}"
    );
    assert_eq!(s.call(&["DBSIZE"]), Resp::Int(2));
    assert_eq!(s.call(&["EXISTS", "c", "d"]), Resp::Int(2));
    assert_eq!(t.call(&["DBSIZE"]), Resp::Int(6));
}

/// A BGSAVE keeps the data of the instant it began across a FLUSHDB, and FLUSHALL stops it (as
/// Redis kills its saving child): the file on disk stays the last good one, the change counter
/// stays up, the save status stays ok. Run on redis-server and here alike, compared.
#[test]
fn a_bgsave_across_flushdb_and_flushall_as_redis() {
    if skip_without_redis() {
        return;
    }
    let run = |warp: bool| -> Vec<String> {
        let dir = TempDir::new(if warp {
            "bgsave-flush-w"
        } else {
            "bgsave-flush-r"
        });
        let args = ["--dir", dir.path(), "--enable-debug-command", "yes"];
        let server = if warp {
            start_warpengine(&args)
        } else {
            start_redis(&args)
        };
        let mut c = RawConn::connect(server.port);
        let info = |c: &mut RawConn, field: &str| {
            let Resp::Bulk(text) = c.call(&["INFO", "persistence"]) else {
                panic!("INFO")
            };
            let text = String::from_utf8_lossy(&text).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .expect("field")
                .to_string()
        };
        let mut seen = Vec::new();
        let fill = |c: &mut RawConn, prefix: &str| {
            for i in 0..600 {
                c.call(&["SET", &format!("{prefix}:{i}"), "v"]);
            }
        };
        // FLUSHDB while the save walks: the file still has the 600 keys.
        fill(&mut c, "a");
        c.call(&["CONFIG", "SET", "rdb-key-save-delay", "2000"]);
        assert_eq!(
            c.call(&["BGSAVE"]),
            Resp::Simple("Background saving started".into())
        );
        c.call(&["FLUSHDB"]);
        wait_for("the save's end", || {
            info(&mut c, "rdb_bgsave_in_progress") == "0"
        });
        seen.push(format!(
            "after flushdb: {}",
            info(&mut c, "rdb_last_bgsave_status")
        ));
        seen.push(format!(
            "changes: {}",
            info(&mut c, "rdb_changes_since_last_save")
        ));
        c.call(&["DEBUG", "RELOAD", "NOSAVE"]);
        seen.push(format!("{:?}", c.call(&["DBSIZE"])));
        // FLUSHALL while the save walks: stopped, dump.rdb is still the one above.
        fill(&mut c, "b");
        assert_eq!(
            c.call(&["BGSAVE"]),
            Resp::Simple("Background saving started".into())
        );
        c.call(&["FLUSHALL"]);
        wait_for("the aborted save's end", || {
            info(&mut c, "rdb_bgsave_in_progress") == "0"
        });
        seen.push(format!(
            "after flushall: {}",
            info(&mut c, "rdb_last_bgsave_status")
        ));
        let changes: u64 = info(&mut c, "rdb_changes_since_last_save").parse().unwrap();
        seen.push(format!("changes over 1200: {}", changes > 1200));
        c.call(&["DEBUG", "RELOAD", "NOSAVE"]);
        seen.push(format!("{:?}", c.call(&["DBSIZE"])));
        seen
    };
    let (redis, warp) = (run(false), run(true));
    assert_eq!(warp, redis);
    // Both reloads find the 600 keys of the first save: the second never wrote its file.
    assert_eq!(redis[2], "Int(600)");
    assert_eq!(redis[5], "Int(600)");
}

/// MIGRATE keeps its connection to a target for the next MIGRATE (INFO's
/// migrate_cached_sockets; the target sees one connection for many MIGRATEs, SELECTed once),
/// tries once more on a new connection when the cached one went stale (the target
/// restarted), and closes it after 10 idle seconds, as Redis's (its dump unit). A target busy
/// in DEBUG SLEEP (the whole server sleeps, as Redis's) makes MIGRATE time out.
#[test]
fn migrate_caches_its_connection_and_times_out_on_a_sleeping_target() {
    let source = start_warpengine(&["--threads", "2"]);
    let port = free_port();
    let args = ["--threads", "2", "--enable-debug-command", "yes"];
    let mut target = try_start_warpengine_on(port, &args).unwrap();
    let mut s = RawConn::connect(source.port);
    let mut t = RawConn::connect(port);
    let cached =
        |s: &mut RawConn| warpengine_tests::info_field(s, "stats", "migrate_cached_sockets");
    let received = |t: &mut RawConn| -> u64 {
        warpengine_tests::info_field(t, "stats", "total_connections_received")
            .parse()
            .unwrap()
    };
    assert_eq!(cached(&mut s), "0");
    let before = received(&mut t);
    for i in 0..5 {
        let key = format!("k{i}");
        s.call(&["SET", &key, "v"]);
        assert_eq!(
            migrate(&mut s, port, &[&key, "0", "5000"]),
            Resp::Simple("OK".into())
        );
    }
    assert_eq!(cached(&mut s), "1");
    assert_eq!(
        received(&mut t),
        before + 1,
        "one connection for five MIGRATEs"
    );
    assert_eq!(t.call(&["DBSIZE"]), Resp::Int(5));
    // The target restarts: the cached connection is stale, the next MIGRATE connects anew.
    drop(t);
    target.kill9();
    target = try_start_warpengine_on(port, &args).unwrap();
    let mut t = RawConn::connect(port);
    s.call(&["SET", "after", "v"]);
    assert_eq!(
        migrate(&mut s, port, &["after", "0", "5000"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(t.call(&["EXISTS", "after"]), Resp::Int(1));
    assert_eq!(cached(&mut s), "1");
    // Idle connections close after 10 seconds.
    wait_for("the cached connection's close", || cached(&mut s) == "0");
    // A sleeping target: no answer within the timeout.
    s.call(&["SET", "slow", "v"]);
    let mut sleeper = RawConn::connect(port);
    sleeper.send_command(&[b"DEBUG", b"SLEEP", b"1.5"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let timed_out = migrate(&mut s, port, &["slow", "0", "500"]);
    assert!(
        matches!(&timed_out, Resp::Error(e) if e.starts_with("IOERR")),
        "{timed_out:?}"
    );
    sleeper.read_reply();
    assert_eq!(cached(&mut s), "0", "a connection that failed is not kept");
    drop(target);
}

/// Payloads Redis 7.0 refuses are refused here with its "Bad data format", and the reason Redis
/// logs at `loglevel verbose` is logged too (its corrupt-dump unit looks for these lines).
#[test]
fn corrupt_payloads_are_refused_with_redis_s_reasons_in_the_log() {
    let dir = TempDir::new("corrupt-restore");
    let log = format!("{}/log", dir.path());
    let warp = start_warpengine(&["--loglevel", "verbose", "--logfile", &log]);
    let mut c = RawConn::connect(warp.port);
    // Object bodies: RDB type byte, then the encoded value.
    let cases: [(&[u8], Option<&str>); 7] = [
        // An empty set: refused, as Redis refuses an empty key (nothing to log).
        (b"\x02\x00", None),
        // An empty zipmap, which Redis's check calls corrupt.
        (b"\x09\x02\x00\xff", Some("Zipmap integrity check failed.")),
        // A list ziplist of five meaningless bytes.
        (
            b"\x0a\x05\x01\x02\x03\x04\x05",
            Some("List ziplist integrity check failed."),
        ),
        // An intset blob too short for its header.
        (b"\x0b\x02\x01\x02", Some("Intset integrity check failed.")),
        // A quicklist node in container 3 (only 1, plain, and 2, packed, exist).
        (
            b"\x12\x01\x03\x01a",
            Some("Quicklist integrity check failed."),
        ),
        // A plain set listing a member twice, and a plain sorted set likewise.
        (
            b"\x02\x02\x01a\x01a",
            Some("Duplicate set members detected"),
        ),
        (
            b"\x05\x02\x01a\x00\x00\x00\x00\x00\x00\xf0\x3f\x01a\x00\x00\x00\x00\x00\x00\xf0\x3f",
            Some("Duplicate zset fields detected"),
        ),
    ];
    for (body, _) in &cases {
        let mut payload = body.to_vec();
        payload.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let reply = restore(&mut c, "k", &reseal(payload));
        assert_eq!(reply, Resp::Error("ERR Bad data format".into()), "{body:?}");
    }
    assert_eq!(c.call(&["EXISTS", "k"]), Resp::Int(0));
    let text = std::fs::read_to_string(&log).unwrap();
    for (_, logged) in cases {
        if let Some(reason) = logged {
            assert!(text.contains(reason), "no {reason:?} in:\n{text}");
        }
    }
}
