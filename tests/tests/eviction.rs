//! maxmemory and the eviction policies, end to end: memory stays near the limit, the right
//! kind of key goes, noeviction answers OOM, hot keys survive under LRU, LFU and HORIZON.

use std::time::Duration;

use warpengine_tests::{encode_command, start_warpengine, RawConn, Resp, TempDir};

fn info_field(c: &mut RawConn, section: &str, field: &str) -> u64 {
    let Resp::Bulk(info) = c.call(&["INFO", section]) else {
        panic!("INFO")
    };
    let text = String::from_utf8(info).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Writes `n` keys `prefix{i}` with 200-byte values, pipelined; returns the error replies.
fn fill(c: &mut RawConn, prefix: &str, n: usize, ttl: bool) -> Vec<String> {
    let value = vec![b'v'; 200];
    let mut errors = Vec::new();
    for start in (0..n).step_by(500) {
        let mut batch = Vec::new();
        let end = (start + 500).min(n);
        for i in start..end {
            let key = format!("{prefix}{i}");
            if ttl {
                batch.extend(encode_command(&[
                    b"SET",
                    key.as_bytes(),
                    &value,
                    b"EX",
                    b"100000",
                ]));
            } else {
                batch.extend(encode_command(&[b"SET", key.as_bytes(), &value]));
            }
        }
        c.send(&batch);
        for _ in start..end {
            if let Resp::Error(e) = Resp::parse(&c.read_reply().unwrap()) {
                errors.push(e);
            }
        }
    }
    errors
}

const LIMIT: u64 = 8 << 20;

fn limited(policy: &str) -> warpengine_tests::ServerProcess {
    start_warpengine(&[
        "--threads",
        "2",
        "--set",
        &format!("maxmemory={LIMIT}"),
        "--set",
        &format!("maxmemory-policy={policy}"),
    ])
}

#[test]
fn noeviction_refuses_writes_with_oom_and_keeps_reads_and_deletes() {
    let s = limited("noeviction");
    let mut c = RawConn::connect(s.port);
    let errors = fill(&mut c, "k", 60_000, false);
    assert!(!errors.is_empty(), "8 MB held 60K keys of 200 bytes");
    assert!(errors
        .iter()
        .all(|e| e == "OOM command not allowed when used memory > 'maxmemory'."));
    assert_eq!(info_field(&mut c, "stats", "evicted_keys"), 0);
    assert_eq!(c.call(&["GET", "k0"]), Resp::Bulk(vec![b'v'; 200]));
    let Resp::Int(deleted) = c.call(&["DEL", "k0", "k1", "k2"]) else {
        panic!()
    };
    assert_eq!(deleted, 3);
}

#[test]
fn every_evicting_policy_holds_memory_near_the_limit() {
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "allkeys-horizon",
    ] {
        let s = limited(policy);
        let mut c = RawConn::connect(s.port);
        let errors = fill(&mut c, "k", 100_000, false);
        assert!(
            errors.is_empty(),
            "{policy}: {:?}",
            &errors[..errors.len().min(3)]
        );
        let used = info_field(&mut c, "memory", "used_memory");
        assert!(used <= LIMIT + LIMIT / 10, "{policy}: used_memory {used}");
        let evicted = info_field(&mut c, "stats", "evicted_keys");
        let Resp::Int(keys) = c.call(&["DBSIZE"]) else {
            panic!()
        };
        assert!(
            evicted > 0 && keys > 10_000,
            "{policy}: {keys} keys, {evicted} evicted"
        );
        assert_eq!(keys as u64 + evicted, 100_000, "{policy}");
    }
}

/// As Redis's own maxmemory test: 100 KB over the current use, fill with small keys until INFO
/// shows the limit close, write as many again, and INFO must show at most 4 KB over.
#[test]
fn the_limit_holds_to_4_kb_as_info_reports_it() {
    let s = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(s.port);
    for policy in [
        "allkeys-random",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-horizon",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        c.call(&["FLUSHALL"]);
        c.call(&["CONFIG", "SET", "maxmemory", "0"]);
        let limit = info_field(&mut c, "memory", "used_memory") + 100 * 1024;
        c.call(&["CONFIG", "SET", "maxmemory", &limit.to_string()]);
        c.call(&["CONFIG", "SET", "maxmemory-policy", policy]);
        let mut keys = 0;
        while info_field(&mut c, "memory", "used_memory") + 4096 <= limit {
            c.call(&["SETEX", &format!("fill:{keys}"), "10000", "x"]);
            keys += 1;
        }
        assert!(keys > 10, "{policy}: {keys}");
        for i in 0..keys {
            c.call(&["SETEX", &format!("more:{i}"), "10000", "x"]);
        }
        let used = info_field(&mut c, "memory", "used_memory");
        assert!(used < limit + 4096, "{policy}: {used} against {limit}");
    }
}

#[test]
fn volatile_policies_only_evict_keys_with_a_ttl() {
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let s = limited(policy);
        let mut c = RawConn::connect(s.port);
        assert!(fill(&mut c, "keep", 10_000, false).is_empty());
        assert!(fill(&mut c, "ttl", 60_000, true).is_empty(), "{policy}");
        assert!(info_field(&mut c, "stats", "evicted_keys") > 0, "{policy}");
        for i in (0..10_000).step_by(97) {
            assert_eq!(
                c.call(&["EXISTS", &format!("keep{i}")]),
                Resp::Int(1),
                "{policy} evicted keep{i}, a key without TTL"
            );
        }
        // Only keys without a TTL left to evict: writes are refused.
        let errors = fill(&mut c, "more", 60_000, false);
        assert!(
            errors.iter().any(|e| e.starts_with("OOM")),
            "{policy}: no OOM once only persistent keys remain"
        );
    }
}

#[test]
fn hot_keys_survive_under_lru_lfu_and_horizon() {
    for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-horizon"] {
        let s = limited(policy);
        let mut c = RawConn::connect(s.port);
        assert!(fill(&mut c, "hot", 1_000, false).is_empty());
        for round in 0..20 {
            // Touch the hot set, then write a wave of cold keys.
            for chunk in (0..1_000).collect::<Vec<_>>().chunks(250) {
                let keys: Vec<String> = chunk.iter().map(|i| format!("hot{i}")).collect();
                let mut args = vec!["MGET"];
                args.extend(keys.iter().map(String::as_str));
                c.call(&args);
            }
            assert!(fill(&mut c, &format!("cold{round}-"), 5_000, false).is_empty());
        }
        assert!(
            info_field(&mut c, "stats", "evicted_keys") > 50_000,
            "{policy}"
        );
        let survivors = (0..1_000)
            .filter(|i| c.call(&["EXISTS", &format!("hot{i}")]) == Resp::Int(1))
            .count();
        assert!(
            survivors >= 900,
            "{policy}: only {survivors} of 1000 hot keys survived"
        );
    }
}

#[test]
fn object_freq_follows_the_lfu_counter() {
    let s = limited("allkeys-lfu");
    let mut c = RawConn::connect(s.port);
    c.call(&["SET", "k", "v"]);
    assert_eq!(c.call(&["OBJECT", "FREQ", "k"]), Resp::Int(5));
    for _ in 0..200 {
        c.call(&["GET", "k"]);
    }
    let Resp::Int(freq) = c.call(&["OBJECT", "FREQ", "k"]) else {
        panic!()
    };
    assert!(freq > 5, "{freq}");
    let Resp::Error(e) = c.call(&["OBJECT", "IDLETIME", "k"]) else {
        panic!()
    };
    assert!(e.contains("LFU maxmemory policy is selected"), "{e}");
    // Switching policy at run time.
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-horizon"]);
    std::thread::sleep(Duration::from_millis(10));
    assert!(matches!(c.call(&["OBJECT", "IDLETIME", "k"]), Resp::Int(_)));
}

#[test]
fn horizon_stats_show_the_queues_at_work() {
    let s = limited("allkeys-horizon");
    let mut c = RawConn::connect(s.port);
    assert!(fill(&mut c, "k", 60_000, false).is_empty());
    let Resp::Int(resident) = c.call(&["DBSIZE"]) else {
        panic!("DBSIZE")
    };
    // Nothing was read, so the small queue evicted in FIFO order: about the first
    // 60,000 - resident keys are gone. Write again some evicted lately (with a margin for
    // the shards' uneven shares), which the ghost queue still remembers: they go straight
    // to the main queue.
    let evicted = 60_000 - resident;
    assert!(evicted > 5_000, "only {evicted} evicted");
    let value = vec![b'v'; 200];
    for i in evicted - 3_000..evicted - 1_000 {
        let key = format!("k{i}");
        c.command(&[b"SET", key.as_bytes(), &value]);
    }
    let Resp::Array(flat) = c.call(&["HORIZON", "STATS"]) else {
        panic!("HORIZON STATS")
    };
    let mut field = |name: &str| horizon_field(&mut c, name);
    assert_eq!(flat[1], Resp::Bulk(b"allkeys-horizon".to_vec()));
    assert!(field("evictions") > 0);
    assert!(field("small_queue_keys") + field("main_queue_keys") > 10_000);
    assert!(field("ghost_queue_ids") > 0);
    assert!(field("ghost_hits") > 0, "{flat:?}");
    // Keys the small queue let go too soon came back: its share grew from its floor.
    let share = field("small_queue_target_percent");
    assert!(
        (11..=90).contains(&share),
        "small queue's share {share}%: {flat:?}"
    );
    let Resp::Array(help) = c.call(&["HORIZON", "HELP"]) else {
        panic!("HORIZON HELP")
    };
    assert!(help.len() > 3);
    let Resp::Error(e) = c.call(&["HORIZON", "NOPE"]) else {
        panic!()
    };
    assert_eq!(e, "ERR unknown subcommand 'NOPE'. Try HORIZON HELP.");
}

/// A JSON document as an application caches one: field names and words from a vocabulary,
/// numbers, no runs of one byte (so that it compresses only as real documents do).
fn document(i: usize) -> Vec<u8> {
    let words = [
        "account", "basket", "checkout", "delivery", "invoice", "member", "order", "payment",
        "product", "review", "session", "shipping", "status", "ticket", "user", "widget",
    ];
    let mut seed = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = format!("{{\"id\":{i}");
    while out.len() < 380 {
        let r = next();
        let (a, b) = (words[r as usize % 16], words[(r >> 8) as usize % 16]);
        match (r >> 16) % 3 {
            0 => out += &format!(",\"{a}_{b}\":{}", (r >> 24) % 100_000),
            1 => out += &format!(",\"{a}\":\"{b} {} {a}\"", words[(r >> 32) as usize % 16]),
            _ => out += &format!(",\"{b}Id\":{}", (r >> 20) % 1000),
        }
    }
    out.push('}');
    out.into_bytes()
}

fn horizon_field(c: &mut RawConn, name: &str) -> i64 {
    let Resp::Array(flat) = c.call(&["HORIZON", "STATS"]) else {
        panic!("HORIZON STATS")
    };
    let i = flat
        .iter()
        .position(|f| *f == Resp::Bulk(name.as_bytes().to_vec()))
        .unwrap_or_else(|| panic!("no {name} in {flat:?}"));
    match &flat[i + 1] {
        Resp::Int(v) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

/// Sends `cmds` pipelined and reads their replies.
fn pipeline(c: &mut RawConn, cmds: Vec<Vec<Vec<u8>>>) -> Vec<Resp> {
    let mut replies = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(500) {
        let mut batch = Vec::new();
        for cmd in chunk {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            batch.extend(encode_command(&args));
        }
        c.send(&batch);
        for _ in chunk {
            replies.push(Resp::parse(&c.read_reply().unwrap()));
        }
    }
    replies
}

/// Under 6 MB of maxmemory, where zstd's dictionaries and contexts would take more than
/// compressing saves, a load that compresses thousands of strings with the tier allowed at any
/// budget leaves every string plain.
#[test]
fn horizon_leaves_strings_plain_under_a_small_budget() {
    let s = start_warpengine(&[
        "--threads",
        "2",
        "--set",
        &format!("maxmemory={}", 6 << 20),
        "--set",
        "maxmemory-policy=allkeys-horizon",
    ]);
    let mut c = RawConn::connect(s.port);
    let docs = 8_000;
    let key = |i: usize| format!("doc{i}").into_bytes();
    pipeline(
        &mut c,
        (0..docs)
            .map(|i| vec![b"SET".to_vec(), key(i), document(i)])
            .collect(),
    );
    let gets = || (0..docs).map(|i| vec![b"GET".to_vec(), key(i)]).collect();
    pipeline(&mut c, gets());
    pipeline(&mut c, gets());
    for round in 0..6 {
        let fill = (0..4_000)
            .map(|i| {
                let k = format!("f{round}-{i}").into_bytes();
                vec![b"SET".to_vec(), k, document(1_000_000 + round * 10_000 + i)]
            })
            .collect();
        pipeline(&mut c, fill);
        pipeline(&mut c, gets());
    }
    assert!(
        horizon_field(&mut c, "evictions") > 0,
        "the budget was reached"
    );
    assert_eq!(horizon_field(&mut c, "compressed"), 0);
}

#[test]
fn horizon_compresses_cold_strings_and_every_reader_sees_the_original() {
    // The tier runs from 7.4 MB of maxmemory with two workers (zstd's own memory would take
    // more of a smaller budget than compressing saves).
    let limit: u64 = 12 << 20;
    // (DEBUG RELOAD below writes its RDB file in `dir`.)
    let dir = TempDir::new("horizon-reload");
    let s = start_warpengine(&[
        "--dir",
        dir.path(),
        "--threads",
        "2",
        "--set",
        &format!("maxmemory={limit}"),
        "--set",
        "maxmemory-policy=allkeys-horizon",
        "--set",
        "enable-debug-command=yes",
    ]);
    let mut c = RawConn::connect(s.port);
    let docs = 12_000;
    let fillers = 6_000;
    let key = |i: usize| format!("doc{i}").into_bytes();
    let set = |i: usize| vec![b"SET".to_vec(), key(i), document(i)];
    let get = |i: usize| vec![b"GET".to_vec(), key(i)];
    let filler = |round: usize, i: usize| {
        let k = format!("f{round}-{i}").into_bytes();
        vec![b"SET".to_vec(), k, document(1_000_000 + round * 10_000 + i)]
    };
    // Documents hit twice (promoted to main when they leave the small queue), then, once
    // fillers pushed them there, hit once more: the main queue's hand takes that hit and
    // compresses them as cold on its next pass.
    pipeline(&mut c, (0..docs).map(set).collect());
    pipeline(&mut c, (0..docs).chain(0..docs).map(get).collect());
    // Rounds of fillers and reads until documents are held compressed (how many rounds that
    // takes depends on how much of the budget the empty server uses): a compressed key takes
    // less memory than its length.
    let usage = |i: usize| vec![b"MEMORY".to_vec(), b"USAGE".to_vec(), key(i)];
    let mut packed = Vec::new();
    let mut round = 0;
    while round < 12 && packed.len() <= 50 {
        pipeline(&mut c, (0..fillers).map(|i| filler(round, i)).collect());
        pipeline(&mut c, (0..docs).map(get).collect());
        let usages = pipeline(&mut c, (0..docs).map(usage).collect());
        packed = (0..docs)
            .filter(|&i| matches!(usages[i], Resp::Int(u) if (u as usize) < document(i).len()))
            .collect();
        round += 1;
    }
    assert!(
        horizon_field(&mut c, "compressed") > 100,
        "compressed {}",
        horizon_field(&mut c, "compressed")
    );
    assert!(
        packed.len() > 50,
        "{} compressed keys present",
        packed.len()
    );
    for &i in packed.iter().take(200) {
        let doc = document(i);
        let k = String::from_utf8(key(i)).unwrap();
        assert_eq!(
            Resp::parse(&c.command(&[b"GET", &key(i)])),
            Resp::Bulk(doc.clone())
        );
        assert_eq!(c.call(&["STRLEN", &k]), Resp::Int(doc.len() as i64));
        assert_eq!(
            c.call(&["GETRANGE", &k, "5", "40"]),
            Resp::Bulk(doc[5..=40].to_vec())
        );
        assert_eq!(
            c.call(&["OBJECT", "ENCODING", &k]),
            Resp::Bulk(b"raw".to_vec())
        );
        assert_eq!(
            c.call(&["MGET", &k]),
            Resp::Array(vec![Resp::Bulk(doc.clone())])
        );
        // The same bytes stored plain: the same digest and the same DUMP payload.
        c.command(&[b"SET", b"plain", &doc]);
        assert_eq!(
            c.call(&["OBJECT", "ENCODING", "plain"]),
            Resp::Bulk(b"raw".to_vec())
        );
        let digest = c.call(&["DEBUG", "DIGEST-VALUE", &k]);
        assert!(
            matches!(&digest, Resp::Array(d) if d.len() == 1),
            "{digest:?}"
        );
        assert_eq!(digest, c.call(&["DEBUG", "DIGEST-VALUE", "plain"]));
        let dump = c.call(&["DUMP", &k]);
        assert!(matches!(dump, Resp::Bulk(_)), "{dump:?}");
        assert_eq!(dump, c.call(&["DUMP", "plain"]));
    }
    // Writers start from the original bytes.
    let (a, b) = (packed[0], packed[1]);
    let (ka, kb) = (
        String::from_utf8(key(a)).unwrap(),
        String::from_utf8(key(b)).unwrap(),
    );
    let mut appended = document(a);
    appended.extend_from_slice(b"tail");
    assert_eq!(
        c.call(&["APPEND", &ka, "tail"]),
        Resp::Int(appended.len() as i64)
    );
    assert_eq!(c.call(&["GET", &ka]), Resp::Bulk(appended));
    let mut ranged = document(b);
    ranged[3..6].copy_from_slice(b"XYZ");
    c.call(&["SETRANGE", &kb, "3", "XYZ"]);
    assert_eq!(c.call(&["GET", &kb]), Resp::Bulk(ranged));
    // (Reads, and the workers' tick, make room too under maxmemory, as Redis's commands do:
    // the limit is lifted while the dataset is reloaded and read back, so that no key goes
    // before it is compared.)
    let Resp::Array(limit) = c.call(&["CONFIG", "GET", "maxmemory"]) else {
        panic!("CONFIG GET maxmemory")
    };
    let Resp::Bulk(limit) = &limit[1] else {
        panic!("{limit:?}")
    };
    let limit = String::from_utf8(limit.clone()).unwrap();
    c.call(&["CONFIG", "SET", "maxmemory", "0"]);
    // A snapshot written and loaded back (DEBUG RELOAD) holds the original bytes: the
    // digest of the whole dataset is the same after, and so are the keys compressed before.
    let still: Vec<usize> = packed
        .iter()
        .copied()
        .skip(200)
        .filter(|&i| {
            let k = String::from_utf8(key(i)).unwrap();
            matches!(c.call(&["MEMORY", "USAGE", &k]), Resp::Int(u) if (u as usize) < document(i).len())
        })
        .collect();
    assert!(!still.is_empty(), "no compressed key left to reload");
    let digest = c.call(&["DEBUG", "DIGEST"]);
    assert!(!matches!(digest, Resp::Error(_)), "{digest:?}");
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), Resp::Simple("OK".into()));
    assert_eq!(c.call(&["DEBUG", "DIGEST"]), digest);
    for &i in &still {
        assert_eq!(
            Resp::parse(&c.command(&[b"GET", &key(i)])),
            Resp::Bulk(document(i))
        );
    }
    c.call(&["CONFIG", "SET", "maxmemory", &limit]);
    // Switched off, nothing more is compressed.
    c.call(&["CONFIG", "SET", "horizon-compress", "no"]);
    assert_eq!(
        c.call(&["CONFIG", "GET", "horizon-compress"]),
        Resp::Array(vec![
            Resp::Bulk(b"horizon-compress".to_vec()),
            Resp::Bulk(b"no".to_vec())
        ])
    );
    let before = horizon_field(&mut c, "compressed");
    for round in 23..26 {
        pipeline(&mut c, (0..fillers).map(|i| filler(round, i)).collect());
        pipeline(&mut c, (0..docs).map(get).collect());
    }
    assert_eq!(horizon_field(&mut c, "compressed"), before);
}

/// The invalidations an eviction sends to tracking clients grow memory while it evicts; judged
/// by memory read after each key, eviction fed on itself and emptied the database. As Redis,
/// the bytes to free are judged once and each key counts what deleting it freed (Redis's
/// "client tracking don't cause eviction feedback loop", the same figures).
#[test]
fn invalidations_do_not_make_eviction_feed_on_itself() {
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    c.call(&["CONFIG", "SET", "maxmemory-eviction-tenacity", "100"]);
    // The cron also evicts while memory is over the limit: at one tick a second, the trackers'
    // tasks have long sent the invalidations (the debug build is slow to).
    c.call(&["CONFIG", "SET", "hz", "1"]);
    let mut trackers: Vec<RawConn> = (0..10).map(|_| RawConn::connect(warp.port)).collect();
    for t in &mut trackers {
        t.command(&[b"HELLO", b"3"]);
        assert_eq!(t.command(&[b"CLIENT", b"TRACKING", b"on"]), b"+OK\r\n");
    }
    for j in 0..300 {
        let key = format!("{j}{}", "x".repeat(1000));
        c.call(&["SET", &key, "x"]);
        for t in &mut trackers {
            t.command(&[b"GET", key.as_bytes()]);
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let used = info_field(&mut c, "memory", "used_memory");
    c.call(&["CONFIG", "SET", "maxmemory", &(used - 40_000).to_string()]);
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    let keys = c.call(&["DBSIZE"]).int();
    assert!(
        (200..=300).contains(&keys),
        "{keys} keys left, {evicted} evicted"
    );
    assert!((10..=50).contains(&evicted), "{evicted} evicted");
}
