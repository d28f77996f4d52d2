//! CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT, read from each worker's per-slot key index,
//! against a brute-force count (SCAN + CLUSTER KEYSLOT) and against a real redis-server
//! cluster node given the same writes: sets, deletes, expiries, renames, copies, lists emptied,
//! FLUSHALL, and restarts from the write-ahead log and from an RDB file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use warpengine_tests::{
    redis_available, start_redis, start_warpengine, RawConn, Resp, SeededRandom, ServerProcess,
    TempDir,
};

fn warp_node(dir: &TempDir, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--dir",
        dir.path(),
        "--threads",
        "2",
        "--enable-debug-command",
        "yes",
    ];
    args.extend_from_slice(extra);
    start_warpengine(&args)
}

/// Takes every slot and waits for `cluster_state:ok`.
fn own_every_slot(conn: &mut RawConn) {
    assert_eq!(
        conn.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        Resp::Simple("OK".into())
    );
    wait_until_ok(conn);
}

/// Waits for `cluster_state:ok`: a primary's state is fail for its first two seconds, at a
/// restart too (Redis's `CLUSTER_WRITABLE_DELAY`).
fn wait_until_ok(conn: &mut RawConn) {
    warpengine_tests::wait_for("cluster_state:ok", || {
        matches!(conn.call(&["CLUSTER", "INFO"]),
            Resp::Bulk(b) if b.starts_with(b"cluster_state:ok"))
    });
}

fn keys_of(reply: Resp) -> Vec<Vec<u8>> {
    match reply {
        Resp::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Resp::Bulk(b) => b,
                other => panic!("a key, got {other:?}"),
            })
            .collect(),
        other => panic!("an array, got {other:?}"),
    }
}

fn slot_of(conn: &mut RawConn, key: &str) -> i64 {
    conn.call(&["CLUSTER", "KEYSLOT", key]).int()
}

/// The keys of every slot as SCAN and CLUSTER KEYSLOT see them.
fn brute_force(conn: &mut RawConn) -> BTreeMap<i64, BTreeSet<Vec<u8>>> {
    let mut by_slot: BTreeMap<i64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut cursor = "0".to_string();
    loop {
        let Resp::Array(step) = conn.call(&["SCAN", &cursor, "COUNT", "1000"]) else {
            panic!("SCAN")
        };
        let Resp::Bulk(next) = &step[0] else {
            panic!("SCAN cursor")
        };
        cursor = String::from_utf8(next.clone()).expect("cursor");
        for key in keys_of(step[1].clone()) {
            let slot = slot_of(conn, std::str::from_utf8(&key).expect("utf-8 key"));
            by_slot.entry(slot).or_default().insert(key);
        }
        if cursor == "0" {
            return by_slot;
        }
    }
}

/// The index's view of `slots` on `conn` equals the brute-force one: counts, and the keys
/// GETKEYSINSLOT lists (each once).
fn assert_index_matches_a_scan(conn: &mut RawConn, slots: &BTreeSet<i64>, when: &str) {
    let scanned = brute_force(conn);
    let empty = BTreeSet::new();
    for &slot in slots {
        let expected = scanned.get(&slot).unwrap_or(&empty);
        let s = slot.to_string();
        let count = conn.call(&["CLUSTER", "COUNTKEYSINSLOT", &s]).int();
        assert_eq!(count as usize, expected.len(), "slot {slot} {when}");
        let listed = keys_of(conn.call(&["CLUSTER", "GETKEYSINSLOT", &s, "100000"]));
        let unique: BTreeSet<Vec<u8>> = listed.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "slot {slot} {when}: a key twice"
        );
        assert_eq!(&unique, expected, "slot {slot} {when}");
    }
}

/// What both servers answer about `slots`: counts and keys, in order when `ordered`.
fn assert_same_as_redis(
    warp: &mut RawConn,
    redis: &mut RawConn,
    slots: &BTreeSet<i64>,
    ordered: bool,
    when: &str,
) {
    for &slot in slots {
        let s = slot.to_string();
        let count = ["CLUSTER", "COUNTKEYSINSLOT", &s];
        assert_eq!(warp.call(&count), redis.call(&count), "slot {slot} {when}");
        let get = ["CLUSTER", "GETKEYSINSLOT", &s, "100000"];
        let (mut w, mut r) = (keys_of(warp.call(&get)), keys_of(redis.call(&get)));
        if !ordered {
            w.sort();
            r.sort();
        }
        assert_eq!(w, r, "slot {slot} {when}");
        // A limit below the count: the first keys of the same list.
        let two = ["CLUSTER", "GETKEYSINSLOT", &s, "2"];
        if ordered {
            assert_eq!(warp.call(&two), redis.call(&two), "slot {slot} {when}");
        }
    }
}

/// One random write over a small pool of keys: six hash tags (long slot lists) and untagged
/// keys (slots of their own).
fn random_write(r: &mut SeededRandom) -> Vec<String> {
    let key = |r: &mut SeededRandom| {
        let n = r.below(60);
        if n < 42 {
            format!("{{t{}}}k{}", n % 6, n)
        } else {
            format!("u:{n}")
        }
    };
    let a = key(r);
    // A second key, mostly in the first one's slot (a different slot is CROSSSLOT on both).
    let b = if r.below(4) > 0 && a.starts_with('{') {
        format!("{}k{}", &a[..4], r.below(42))
    } else {
        key(r)
    };
    let words: Vec<&str> = match r.below(20) {
        0..=5 => vec!["SET", &a, "v"],
        6 => vec!["SET", &a, "v", "EX", "1000"],
        7 => vec!["DEL", &a],
        8 => vec!["UNLINK", &a, &b],
        9 => vec!["EXPIRE", &a, "1000"],
        // An expiry in the past deletes the key at once, on both.
        10 => vec!["PEXPIREAT", &a, "1"],
        11 => vec!["PERSIST", &a],
        12 | 13 => vec!["RENAME", &a, &b],
        14 => vec!["COPY", &a, &b],
        15 => vec!["GETDEL", &a],
        16 => vec!["RPUSH", &a, "x"],
        17 => vec!["LPOP", &a],
        18 => vec!["MSET", &a, "1", &b, "2"],
        _ if r.below(15) == 0 => vec!["FLUSHALL"],
        _ => vec!["SET", &a, "w"],
    };
    words.into_iter().map(String::from).collect()
}

#[test]
fn slot_queries_match_a_scan_and_redis_through_random_writes_and_restarts() {
    if !redis_available() {
        assert!(
            std::env::var("WARP_SKIP_DIFFERENTIAL").is_ok(),
            "redis-server is not installed (WARP_SKIP_DIFFERENTIAL=1 skips this test)"
        );
        return;
    }
    let dir = TempDir::new("cluster-slots");
    let redis_server = start_redis(&["--cluster-enabled", "yes", "--enable-debug-command", "yes"]);
    let mut redis = RawConn::connect(redis_server.port);
    own_every_slot(&mut redis);
    let mut warp_server = warp_node(&dir, &["--appendonly", "yes"]);
    let mut warp = RawConn::connect(warp_server.port);
    own_every_slot(&mut warp);

    // Every slot a key of the pool hashes to.
    let mut slots = BTreeSet::new();
    for n in 0..60 {
        let name = if n < 42 {
            format!("{{t{}}}k{n}", n % 6)
        } else {
            format!("u:{n}")
        };
        slots.insert(slot_of(&mut warp, &name));
    }
    let mut r = SeededRandom(21);
    let mut history: Vec<String> = Vec::new();
    for step in 0..1500 {
        let args = random_write(&mut r);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        history.push(args.join(" "));
        let (expected, got) = (redis.call(&args), warp.call(&args));
        assert_eq!(got, expected, "{}", history.join("\n"));
        if step % 100 == 99 {
            let when = format!("after step {step}");
            assert_index_matches_a_scan(&mut warp, &slots, &when);
            assert_same_as_redis(&mut warp, &mut redis, &slots, true, &when);
        }
    }
    assert!(
        brute_force(&mut warp)
            .values()
            .map(BTreeSet::len)
            .sum::<usize>()
            > 20,
        "the run ends with keys to compare"
    );

    // Restarted from its write-ahead log: the index is rebuilt by the replay.
    drop(warp_server);
    warp_server = warp_node(&dir, &["--appendonly", "yes"]);
    warp = RawConn::connect(warp_server.port);
    assert_index_matches_a_scan(&mut warp, &slots, "after a restart from the log");
    assert_same_as_redis(&mut warp, &mut redis, &slots, false, "after a restart");

    // Restarted from an RDB file.
    assert_eq!(warp.call(&["SAVE"]), Resp::Simple("OK".into()));
    drop(warp_server);
    std::fs::remove_dir_all(dir.0.join("appendonlydir")).expect("the log's directory");
    warp_server = warp_node(&dir, &[]);
    warp = RawConn::connect(warp_server.port);
    wait_until_ok(&mut warp);
    assert_index_matches_a_scan(&mut warp, &slots, "after a restart from an RDB file");
    assert_same_as_redis(&mut warp, &mut redis, &slots, false, "after an RDB load");

    // A key past its expiry but not yet deleted counts, and is listed, as in Redis, until an
    // access deletes it.
    for conn in [&mut warp, &mut redis] {
        assert_eq!(
            conn.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]),
            Resp::Simple("OK".into())
        );
        conn.call(&["SET", "{t0}lazy", "v", "PX", "20"]);
    }
    std::thread::sleep(Duration::from_millis(100));
    let tag = BTreeSet::from([slot_of(&mut warp, "{t0}")]);
    assert_same_as_redis(&mut warp, &mut redis, &tag, false, "with an expired key");
    let listed = keys_of(warp.call(&[
        "CLUSTER",
        "GETKEYSINSLOT",
        &tag.first().unwrap().to_string(),
        "1000",
    ]));
    assert!(listed.contains(&b"{t0}lazy".to_vec()), "{listed:?}");
    for conn in [&mut warp, &mut redis] {
        assert_eq!(conn.call(&["GET", "{t0}lazy"]), Resp::Nil);
    }
    assert_same_as_redis(
        &mut warp,
        &mut redis,
        &tag,
        false,
        "once the access deleted it",
    );
    assert_index_matches_a_scan(&mut warp, &tag, "once the access deleted it");
}
