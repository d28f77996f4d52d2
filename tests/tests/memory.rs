//! MEMORY USAGE and MEMORY STATS measure what keys cost: sizes follow the value, and the sum over
//! many keys matches what the allocator counted for them.

use warpengine_tests::{encode_command, start_warpengine, RawConn, Resp};

fn usage(c: &mut RawConn, key: &str) -> i64 {
    match c.call(&["MEMORY", "USAGE", key]) {
        Resp::Int(n) => n,
        other => panic!("MEMORY USAGE {key}: {other:?}"),
    }
}

/// A field of the MEMORY STATS map.
fn stat(c: &mut RawConn, name: &str) -> i64 {
    c.call(&["MEMORY", "STATS"]).field(name).int()
}

#[test]
fn usage_follows_the_value() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    c.call(&["SET", "small", "x"]);
    c.call(&["SET", "large", &"x".repeat(10_000)]);
    let (small, large) = (usage(&mut c, "small"), usage(&mut c, "large"));
    assert!(small > 0 && small < 200, "{small}");
    assert!(
        (10_000..10_400).contains(&(large - small)),
        "{small} {large}"
    );
    for i in 0..100 {
        c.call(&["RPUSH", "list100", &format!("element-{i}")]);
        c.call(&["HSET", "hash100", &format!("field-{i}"), "value"]);
        if i < 10 {
            c.call(&["RPUSH", "list10", &format!("element-{i}")]);
        }
    }
    assert!(usage(&mut c, "list100") > 5 * usage(&mut c, "list10"));
    assert!(usage(&mut c, "hash100") > 100 * 10);
    assert_eq!(c.call(&["MEMORY", "USAGE", "missing"]), Resp::Nil);
    c.call(&["DEL", "large"]);
    assert_eq!(c.call(&["MEMORY", "USAGE", "large"]), Resp::Nil);
}

#[test]
fn usage_adds_up_to_what_the_allocator_counted() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let before = stat(&mut c, "dataset.bytes");
    let n = 20_000;
    for start in (0..n).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..start + 1000 {
            let key = format!("key:{i:08}");
            batch.extend(encode_command(&[b"SET", key.as_bytes(), &[b'v'; 64]]));
        }
        c.send(&batch);
        for _ in 0..1000 {
            c.read_reply().expect("SET");
        }
    }
    let grew = stat(&mut c, "dataset.bytes") - before;
    let summed: i64 = (0..n)
        .step_by(100)
        .map(|i| usage(&mut c, &format!("key:{i:08}")))
        .sum::<i64>()
        * 100;
    // The table grows by doubling, so its spare capacity is in `grew` and not in the sum.
    let ratio = summed as f64 / grew as f64;
    assert!((0.6..1.3).contains(&ratio), "sum {summed}, grew {grew}");
    assert_eq!(stat(&mut c, "keys.count"), n as i64);
}

fn rss(pid: u32) -> i64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn used_memory(c: &mut RawConn) -> i64 {
    warpengine_tests::info_field(c, "memory", "used_memory")
        .parse()
        .unwrap()
}

/// Loads `n` keys of one shape, pipelined.
fn load(c: &mut RawConn, shape: &str, n: usize) {
    for start in (0..n).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..(start + 1000).min(n) {
            let key = format!("key:{i:012}");
            let k = key.as_bytes();
            let cmd: Vec<Vec<u8>> = match shape {
                "strings" => vec![b"SET".to_vec(), k.to_vec(), vec![b'v'; 64]],
                "hash10" => [b"HSET".to_vec(), k.to_vec()]
                    .into_iter()
                    .chain(
                        (0..10)
                            .flat_map(|f| [format!("field{f}").into(), format!("value{f}").into()]),
                    )
                    .collect(),
                "zset10" => [b"ZADD".to_vec(), k.to_vec()]
                    .into_iter()
                    .chain(
                        (0..10).flat_map(|f| [f.to_string().into(), format!("member:{f}").into()]),
                    )
                    .collect(),
                "list10" => [b"RPUSH".to_vec(), k.to_vec()]
                    .into_iter()
                    .chain((0..10).map(|f| format!("item:{f}").into()))
                    .collect(),
                "set10" => [b"SADD".to_vec(), k.to_vec()]
                    .into_iter()
                    .chain((0..10).map(|f| format!("member:{f}").into()))
                    .collect(),
                other => panic!("shape {other}"),
            };
            let args: Vec<&[u8]> = cmd.iter().map(|a| &a[..]).collect();
            batch.extend(encode_command(&args));
        }
        c.send(&batch);
        for _ in start..(start + 1000).min(n) {
            let r = Resp::parse(&c.read_reply().expect("reply"));
            assert!(!matches!(r, Resp::Error(_)), "{r:?}");
        }
    }
}

/// used_memory's growth is the process's RSS growth over shapes and key counts. Issue 5 asks for
/// 10%; it is measured within 3% here, and the test allows 6%: counting the key tables' untouched
/// room as used (8-10% too much at these sizes) must fail it.
#[test]
fn used_memory_follows_the_resident_size() {
    let mut report = Vec::new();
    for shape in ["strings", "hash10", "zset10", "list10", "set10"] {
        for n in [50_000, 200_000] {
            let server = start_warpengine(&["--threads", "2"]);
            let mut c = RawConn::connect(server.port);
            // Let the start settle (the workers' first ticks return what start-up freed).
            std::thread::sleep(std::time::Duration::from_millis(300));
            let (used0, rss0) = (used_memory(&mut c), rss(server.pid()));
            load(&mut c, shape, n);
            std::thread::sleep(std::time::Duration::from_millis(500));
            let (used1, rss1) = (used_memory(&mut c), rss(server.pid()));
            let ratio = (used1 - used0) as f64 / (rss1 - rss0) as f64;
            report.push(format!("{shape} {n}: {ratio:.3}"));
            eprintln!("{shape} {n}: used/RSS growth {ratio:.3}");
            assert!(
                (0.94..=1.06).contains(&ratio),
                "used_memory grew {} and RSS {} ({ratio:.3}); so far: {report:?}",
                used1 - used0,
                rss1 - rss0
            );
        }
    }
}

/// A long pipeline leaves little behind: a connection's room for its batches and reply lists
/// shrinks back after the read (memory `maxmemory` counts; before, a connection kept ~80 bytes per
/// command of its largest pipeline, per worker, for good: 350 KB after this one).
#[test]
fn a_long_pipeline_leaves_little_behind() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let mut c = RawConn::connect(server.port);
    c.call(&["PING"]);
    let before = used_memory(&mut admin);
    let n = 10_000;
    let mut pipeline = Vec::new();
    for i in 0..n {
        pipeline.extend(encode_command(&[b"GET", format!("k:{i:04}").as_bytes()]));
    }
    c.send(&pipeline);
    for _ in 0..n {
        c.read_reply().expect("a reply");
    }
    let grown = used_memory(&mut admin) - before;
    assert!(
        grown < 200_000,
        "{grown} bytes kept after a {n}-command pipeline"
    );
}

/// What an empty server counts in `used_memory` (Redis 7.0: 0.87 MB) leaves maxmemory for the
/// data: Redis's maxmemory tests give a few megabytes above their keys. The embedded command
/// docs are kept unparsed until COMMAND DOCS asks (parsed, they were 1.1 MB of it).
#[test]
fn an_empty_server_uses_little_memory() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let empty = used_memory(&mut c);
    assert!(empty < 2_500_000, "used_memory {empty}");
    let Resp::Array(docs) = c.call(&["COMMAND", "DOCS"]) else {
        panic!("COMMAND DOCS")
    };
    assert!(docs.len() > 400, "{} entries", docs.len());
}

/// UNLINK frees a large value in the background, as Redis's lazyfree: INFO counts it in
/// `lazyfreed_objects` once freed (and `lazyfree_pending_objects` until then), a value of few
/// allocations is freed at once and not counted, CONFIG RESETSTAT clears the count, and the
/// memory comes back (Redis's unit/lazyfree).
#[test]
fn unlink_frees_large_values_in_the_background() {
    let server = start_warpengine(&["--stream-node-max-entries", "5"]);
    let mut c = RawConn::connect(server.port);
    let field = |c: &mut RawConn, name: &str| -> u64 {
        warpengine_tests::info_field(c, "memory", name)
            .parse()
            .unwrap()
    };
    let settled = |c: &mut RawConn| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while field(c, "lazyfree_pending_objects") != 0 {
            assert!(std::time::Instant::now() < deadline, "lazy free never done");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    for j in 0..1000 {
        c.call(&["XADD", "stream", "*", "foo", &j.to_string()]);
    }
    c.call(&["XGROUP", "CREATE", "stream", "group", "0"]);
    c.call(&[
        "XREADGROUP",
        "GROUP",
        "group",
        "alice",
        "COUNT",
        "2",
        "STREAMS",
        "stream",
        ">",
    ]);
    assert_eq!(c.call(&["UNLINK", "stream"]), Resp::Int(1));
    settled(&mut c);
    assert_eq!(field(&mut c, "lazyfreed_objects"), 1);
    // One node: freed at once.
    c.call(&["XADD", "small", "*", "a", "b"]);
    assert_eq!(c.call(&["UNLINK", "small", "missing"]), Resp::Int(1));
    settled(&mut c);
    assert_eq!(field(&mut c, "lazyfreed_objects"), 1);
    c.call(&["CONFIG", "RESETSTAT"]);
    assert_eq!(field(&mut c, "lazyfreed_objects"), 0);
    // A set of 100,000 members: the memory comes back.
    let before = used_memory(&mut c);
    let members: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let mut sadd = vec!["SADD", "myset"];
    sadd.extend(members.iter().map(String::as_str));
    assert_eq!(c.call(&sadd), Resp::Int(100_000));
    let peak = used_memory(&mut c);
    assert!(peak > before + 1_000_000, "{before} -> {peak}");
    assert_eq!(c.call(&["UNLINK", "myset"]), Resp::Int(1));
    settled(&mut c);
    assert_eq!(field(&mut c, "lazyfreed_objects"), 1);
    let after = used_memory(&mut c);
    // (Most of it: the connection keeps the room the 700 KB request took, as Redis keeps its
    // query buffer's until the client is idle.)
    assert!(
        after < before + (peak - before) / 2,
        "{before} -> {peak} -> {after}"
    );
}
