//! ENTROPY REBALANCE and MOVESLOT end to end: a slot's keys move with it and stay readable
//! (values and expiries); REBALANCE spreads a load concentrated on a few slots of one shard
//! until the busiest shard is under 1.2x the mean; slots move under a mixed load (SET, INCR,
//! MULTI/EXEC, MSET across slots) without losing or duplicating an acknowledged write; the
//! layout and every key survive kill -9 with the log on, also after the log was compacted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use warpengine::slot::{key_slot, SLOTS};
use warpengine_tests::{
    encode_command, info_field, start_warpengine, try_start_warpengine_on, wait_for, RawConn, Resp,
    TempDir,
};

/// The shard a slot starts on with `shards` workers.
fn first_owner(slot: u16, shards: usize) -> usize {
    slot as usize * shards / SLOTS
}

/// Hash tags whose slots all start on shard 0 of 2 (slots below 8192), `n` of them.
fn tags_on_first_shard(n: usize) -> Vec<(String, u16)> {
    (0..)
        .map(|i| format!("t{i}"))
        .map(|t| {
            let slot = key_slot(format!("{{{t}}}").as_bytes());
            (t, slot)
        })
        .filter(|(_, slot)| (*slot as usize) < SLOTS / 2)
        .take(n)
        .collect()
}

fn ok(r: Resp) {
    assert_eq!(r, Resp::Simple("OK".into()));
}

fn int(r: Resp) -> i64 {
    match r {
        Resp::Int(i) => i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

#[test]
fn moveslot_moves_a_slots_keys_and_every_key_stays_readable() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    for i in 0..2000 {
        ok(c.call(&["SET", &format!("k:{i}"), &i.to_string()]));
    }
    for i in 0..200 {
        ok(c.call(&["SET", &format!("{{hot}}:{i}"), &format!("h{i}")]));
    }
    c.call(&["PEXPIRE", "{hot}:0", "100000"]);
    c.call(&["SELECT", "3"]);
    ok(c.call(&["SET", "{hot}:db3", "three"]));
    c.call(&["SELECT", "0"]);
    let slot = key_slot(b"{hot}");
    let other = 1 - first_owner(slot, 2);
    let moved = int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), &other.to_string()]));
    assert_eq!(moved, 201, "200 keys in db 0 and one in db 3");
    assert_eq!(
        info_field(&mut c, "physics", "entropy_slots_off_start"),
        "1"
    );
    assert_eq!(int(c.call(&["DBSIZE"])), 2200);
    let ttl = int(c.call(&["PTTL", "{hot}:0"]));
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    // Every key, from connections on both workers, with its value.
    for _ in 0..2 {
        let mut r = RawConn::connect(server.port);
        for i in (0..2000).step_by(7) {
            assert_eq!(
                r.call(&["GET", &format!("k:{i}")]),
                Resp::Bulk(i.to_string().into_bytes())
            );
        }
        for i in 0..200 {
            assert_eq!(
                r.call(&["GET", &format!("{{hot}}:{i}")]),
                Resp::Bulk(format!("h{i}").into_bytes())
            );
        }
        r.call(&["SELECT", "3"]);
        assert_eq!(r.call(&["GET", "{hot}:db3"]), Resp::Bulk(b"three".to_vec()));
    }
    // Writes, multi-key commands and a transaction on the moved slot.
    ok(c.call(&["MSET", "{hot}:a", "1", "{hot}:b", "2"]));
    assert_eq!(int(c.call(&["INCR", "{hot}:a"])), 2);
    c.call(&["MULTI"]);
    c.call(&["INCR", "{hot}:b"]);
    c.call(&["GET", "k:5"]);
    assert_eq!(
        c.call(&["EXEC"]),
        Resp::Array(vec![Resp::Int(3), Resp::Bulk(b"5".to_vec())])
    );
    // And back.
    let home = first_owner(slot, 2).to_string();
    assert_eq!(
        int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), &home])),
        203
    );
    assert_eq!(
        info_field(&mut c, "physics", "entropy_slots_off_start"),
        "0"
    );
    assert_eq!(int(c.call(&["DBSIZE"])), 2202);
    assert_eq!(c.call(&["GET", "{hot}:b"]), Resp::Bulk(b"3".to_vec()));
    // Errors.
    let err = |r: Resp, text: &str| assert_eq!(r, Resp::Error(text.into()));
    err(
        c.call(&["ENTROPY", "MOVESLOT", "16384", "0"]),
        "ERR Invalid or out of range slot",
    );
    err(
        c.call(&["ENTROPY", "MOVESLOT", "5", "2"]),
        "ERR no such shard",
    );
    err(c.call(&["ENTROPY", "REBALANCE", "NOW"]), "ERR syntax error");
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
}

/// GETs on the given keys, in pipelines of 50, from `clients` connections, until `stop`.
fn load(
    port: u16,
    keys: Vec<String>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let (keys, stop) = (keys.clone(), stop.clone());
            thread::spawn(move || {
                let mut conn = RawConn::connect(port);
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = Vec::new();
                    for _ in 0..50 {
                        batch.extend(encode_command(&[b"GET", keys[n % keys.len()].as_bytes()]));
                        n += 1;
                    }
                    conn.send(&batch);
                    for _ in 0..50 {
                        conn.read_reply().unwrap();
                    }
                }
            })
        })
        .collect()
}

fn busiest_to_mean(c: &mut RawConn) -> f64 {
    info_field(c, "physics", "entropy_busiest_to_mean")
        .parse()
        .unwrap()
}

#[test]
fn rebalance_spreads_a_load_on_a_few_slots_of_one_shard() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    // Four slots on shard 0, taking 40%, 25%, 20% and 15% of the requests.
    let tags = tags_on_first_shard(4);
    let mut keys = Vec::new();
    for ((tag, _), share) in tags.iter().zip([8, 5, 4, 3]) {
        for i in 0..share {
            let key = format!("{{{tag}}}:{i}");
            ok(c.call(&["SET", &key, "v"]));
            keys.push(key);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads = load(server.port, keys, 3, stop.clone());
    thread::sleep(Duration::from_millis(2500));
    let before = busiest_to_mean(&mut c);
    assert!(before > 1.9, "the load is not on one shard: {before}");
    let Resp::Array(plan) = c.call(&["ENTROPY", "REBALANCE", "DRYRUN"]) else {
        panic!("DRYRUN")
    };
    assert!(!plan.is_empty());
    assert_eq!(
        info_field(&mut c, "physics", "entropy_slots_off_start"),
        "0"
    );
    let Resp::Array(done) = c.call(&["ENTROPY", "REBALANCE"]) else {
        panic!("REBALANCE")
    };
    assert!(!done.is_empty());
    for row in &done {
        let Resp::Array(f) = row else {
            panic!("{row:?}")
        };
        assert_eq!((&f[1], &f[2]), (&Resp::Int(0), &Resp::Int(1)), "{row:?}");
        assert!(int(f[4].clone()) > 0, "no keys moved: {row:?}");
    }
    // The rates are a mean of the last 1.6 s: wait for them to follow.
    thread::sleep(Duration::from_millis(2500));
    let after = busiest_to_mean(&mut c);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        after < 1.2,
        "busiest/mean {before} before, {after} after: {done:?}"
    );
}

/// Writers (each owning its keys: SET of increasing numbers, INCR, a MULTI/EXEC of two keys,
/// MSET of keys in two slots) check each reply and their own reads, while another connection
/// moves the writers' slots back and forth; at the end every key holds its last acknowledged
/// value.
#[test]
fn slot_moves_under_a_mixed_load_lose_nothing() {
    let server = start_warpengine(&["--threads", "3"]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let tags: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let mut writers = Vec::new();
    for (w, tag) in tags.iter().enumerate() {
        let (tag, stop) = (tag.clone(), stop.clone());
        writers.push(thread::spawn(move || {
            let mut c = RawConn::connect(port);
            let (a, b) = (format!("{{{tag}}}:a"), format!("{{{tag}}}:b"));
            let (n_key, far) = (format!("{{{tag}}}:n"), format!("far:{tag}"));
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let v = n.to_string();
                match w % 4 {
                    0 => ok(c.call(&["SET", &a, &v])),
                    1 => assert_eq!(int(c.call(&["INCR", &n_key])), n),
                    2 => {
                        c.call(&["MULTI"]);
                        c.call(&["SET", &a, &v]);
                        c.call(&["SET", &b, &v]);
                        assert!(matches!(c.call(&["EXEC"]), Resp::Array(_)));
                    }
                    _ => ok(c.call(&["MSET", &a, &v, &far, &v])),
                }
                let read = if w % 4 == 1 { &n_key } else { &a };
                assert_eq!(c.call(&["GET", read]), Resp::Bulk(v.into_bytes()), "{read}");
            }
            (w, n)
        }));
    }
    let mover = {
        let stop = stop.clone();
        let slots: Vec<u16> = tags
            .iter()
            .map(|t| key_slot(format!("{{{t}}}").as_bytes()))
            .collect();
        thread::spawn(move || {
            let mut c = RawConn::connect(port);
            let mut moves = 0;
            while !stop.load(Ordering::Relaxed) {
                let slot = slots[moves % slots.len()];
                let to = (moves / slots.len() + 1) % 3;
                int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), &to.to_string()]));
                moves += 1;
                thread::sleep(Duration::from_millis(5));
            }
            moves
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let moves = mover.join().unwrap();
    assert!(moves > 20, "only {moves} moves");
    let mut c = RawConn::connect(port);
    for t in writers {
        let (w, n) = t.join().unwrap();
        assert!(n > 20, "writer {w} wrote {n} times");
        let tag = &tags[w];
        let v = Resp::Bulk(n.to_string().into_bytes());
        match w % 4 {
            1 => assert_eq!(c.call(&["GET", &format!("{{{tag}}}:n")]), v),
            2 => {
                assert_eq!(c.call(&["GET", &format!("{{{tag}}}:a")]), v);
                assert_eq!(c.call(&["GET", &format!("{{{tag}}}:b")]), v);
            }
            3 => {
                assert_eq!(c.call(&["GET", &format!("{{{tag}}}:a")]), v);
                assert_eq!(c.call(&["GET", &format!("far:{tag}")]), v);
            }
            _ => assert_eq!(c.call(&["GET", &format!("{{{tag}}}:a")]), v),
        }
    }
    // Nothing duplicated: the writers' keys, each once.
    // (w0, w4: a; w1, w5: n; w2, w6: a, b; w3, w7: a and far.)
    assert_eq!(int(c.call(&["DBSIZE"])), 12);
}

#[test]
fn the_layout_and_every_key_survive_kill9_with_the_log_on() {
    let dir = TempDir::new("entropy-kill9");
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path(),
        "--threads",
        "2",
    ];
    let mut server = start_warpengine(&args);
    let port = server.port;
    let mut c = RawConn::connect(port);
    let tags = tags_on_first_shard(3);
    for (tag, _) in &tags {
        for i in 0..50 {
            ok(c.call(&["SET", &format!("{{{tag}}}:{i}"), "before"]));
        }
    }
    for (tag, slot) in &tags[..2] {
        assert_eq!(
            int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), "1"])),
            50,
            "{tag}"
        );
    }
    // Written after the moves, on the slots' new shard.
    for (tag, _) in &tags {
        ok(c.call(&["SET", &format!("{{{tag}}}:0"), "after"]));
        c.call(&["DEL", &format!("{{{tag}}}:1")]);
    }
    let check = |c: &mut RawConn| {
        assert_eq!(info_field(c, "physics", "entropy_slots_off_start"), "2");
        assert_eq!(int(c.call(&["DBSIZE"])), 3 * 49);
        for (tag, _) in &tags {
            assert_eq!(
                c.call(&["GET", &format!("{{{tag}}}:0")]),
                Resp::Bulk(b"after".to_vec())
            );
            assert_eq!(c.call(&["GET", &format!("{{{tag}}}:1")]), Resp::Nil);
            assert_eq!(
                c.call(&["GET", &format!("{{{tag}}}:2")]),
                Resp::Bulk(b"before".to_vec())
            );
        }
    };
    server.kill9();
    let server = try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("{log}"));
    let mut c = RawConn::connect(server.port);
    check(&mut c);
    // The log compacted (a snapshot and new logs): the layout comes from the snapshot's records.
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    wait_for("the rewrite to end", || {
        info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
    });
    ok(c.call(&["SET", &format!("{{{}}}:0", tags[0].0), "after-rewrite"]));
    let mut server = server;
    server.kill9();
    let server = try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("{log}"));
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        info_field(&mut c, "physics", "entropy_slots_off_start"),
        "2"
    );
    assert_eq!(int(c.call(&["DBSIZE"])), 3 * 49);
    assert_eq!(
        c.call(&["GET", &format!("{{{}}}:0", tags[0].0)]),
        Resp::Bulk(b"after-rewrite".to_vec())
    );
    assert_eq!(
        c.call(&["GET", &format!("{{{}}}:2", tags[1].0)]),
        Resp::Bulk(b"before".to_vec())
    );
}

#[test]
fn entropy_auto_rebalances_on_its_own() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let mut keys = Vec::new();
    for (tag, _) in tags_on_first_shard(4) {
        for i in 0..4 {
            let key = format!("{{{tag}}}:{i}");
            ok(c.call(&["SET", &key, "v"]));
            keys.push(key);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads = load(server.port, keys, 3, stop.clone());
    ok(c.call(&["CONFIG", "SET", "entropy-auto", "yes"]));
    wait_for("entropy-auto to move a slot", || {
        info_field(&mut c, "physics", "entropy_slots_moved") != "0"
    });
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_ne!(info_field(&mut c, "physics", "entropy_keys_moved"), "0");
}

/// Once a move is asked for, each worker builds a slot index over the keys it already holds,
/// a chunk per tick, while keys come and go (SETs and DELs all over the table, so its
/// swap-removes move keys the build has not reached yet); from then on a move finds a slot's
/// keys in the index. Each later move must move exactly the slot's keys: counted here from
/// what the writer left, and each key still readable.
#[test]
fn moves_find_a_slots_keys_in_an_index_built_while_keys_come_and_go() {
    let server = start_warpengine(&["--threads", "2"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    const BULK: usize = 60_000;
    for chunk in (0..BULK).collect::<Vec<_>>().chunks(1000) {
        let mut batch = Vec::new();
        for i in chunk {
            batch.extend(encode_command(&[b"SET", format!("k:{i}").as_bytes(), b"v"]));
        }
        c.send(&batch);
        for _ in chunk {
            c.read_reply().unwrap();
        }
    }
    c.call(&["SELECT", "2"]);
    for i in 0..5 {
        ok(c.call(&["SET", &format!("{{b}}:db2:{i}"), "v"]));
    }
    c.call(&["SELECT", "0"]);
    assert_eq!(info_field(&mut c, "physics", "entropy_slot_index"), "off");
    // The writer: new keys, and deletions of bulk keys (swap-removes all over the table).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut w = RawConn::connect(port);
            let mut deleted = std::collections::HashSet::new();
            let mut written = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let gone = (written * 7919) % BULK;
                w.call(&["DEL", &format!("k:{gone}")]);
                deleted.insert(gone);
                ok(w.call(&["SET", &format!("w:{written}"), "v"]));
                written += 1;
            }
            (deleted, written)
        })
    };
    let first = key_slot(b"{b}");
    let away = |slot: u16| (1 - first_owner(slot, 2)).to_string();
    int(c.call(&["ENTROPY", "MOVESLOT", &first.to_string(), &away(first)]));
    assert_ne!(info_field(&mut c, "physics", "entropy_slot_index"), "off");
    wait_for("the slot indexes", || {
        info_field(&mut c, "physics", "entropy_slot_index") == "ready"
    });
    // Keys keep coming and going after the build as well.
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (deleted, written) = writer.join().unwrap();
    assert!(written > 100, "the writer wrote {written} keys");
    let mut keys: Vec<String> = (0..BULK)
        .filter(|i| !deleted.contains(i))
        .map(|i| format!("k:{i}"))
        .collect();
    keys.extend((0..written).map(|i| format!("w:{i}")));
    assert_eq!(int(c.call(&["DBSIZE"])), keys.len() as i64);
    // Moves of slots holding bulk and written keys, each count exact, there and back.
    let mut slots: Vec<u16> = keys
        .iter()
        .step_by(997)
        .map(|k| key_slot(k.as_bytes()))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    for slot in slots.iter().take(30) {
        let expected = keys
            .iter()
            .filter(|k| key_slot(k.as_bytes()) == *slot)
            .count();
        let there = int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), &away(*slot)]));
        assert_eq!(there as usize, expected, "slot {slot}");
        let home = first_owner(*slot, 2).to_string();
        let back = int(c.call(&["ENTROPY", "MOVESLOT", &slot.to_string(), &home]));
        assert_eq!(back as usize, expected, "slot {slot}, back");
    }
    // The {b} slot back home: its keys in both databases.
    let home = first_owner(first, 2).to_string();
    let in_db0 = keys
        .iter()
        .filter(|k| key_slot(k.as_bytes()) == first)
        .count();
    assert_eq!(
        int(c.call(&["ENTROPY", "MOVESLOT", &first.to_string(), &home])) as usize,
        in_db0 + 5
    );
    assert_eq!(int(c.call(&["DBSIZE"])), keys.len() as i64);
    for k in keys.iter().step_by(101) {
        assert_eq!(c.call(&["GET", k]), Resp::Bulk(b"v".to_vec()), "{k}");
    }
}
