//! The write-ahead log end to end: kill -9 and restart (with the same and other thread counts,
//! both writer back-ends, both fsync policies), torn tails, corruption, ENOSPC, CONFIG SET
//! appendonly at run time, and acknowledged writes under concurrent load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warpengine_tests::{free_port, try_start_warpengine_on, RawConn, Resp, ServerProcess};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("warp-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
    fn log_dir(&self) -> PathBuf {
        self.0.join("appendonlydir")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(port: u16, dir: &TempDir, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--appendonly", "yes", "--dir", dir.path()];
    args.extend_from_slice(extra);
    try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("start failed:\n{log}"))
}

type State = BTreeMap<(usize, Vec<u8>), (String, Resp, Resp)>;

/// Every key of databases 0..6 with its type, value (collections in a canonical order) and
/// absolute expiry time.
fn state(port: u16) -> State {
    let mut c = RawConn::connect(port);
    let mut out = State::new();
    for db in 0..6 {
        c.call(&["SELECT", &db.to_string()]);
        let Resp::Array(keys) = c.call(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for k in keys {
            let Resp::Bulk(key) = k else { panic!("key") };
            let name = String::from_utf8(key.clone()).unwrap();
            let Resp::Simple(ty) = c.call(&["TYPE", &name]) else {
                panic!("TYPE")
            };
            let value = match ty.as_str() {
                "string" => c.call(&["GET", &name]),
                "list" => c.call(&["LRANGE", &name, "0", "-1"]),
                "hash" => sorted(c.call(&["HGETALL", &name]), 2),
                "set" => sorted(c.call(&["SMEMBERS", &name]), 1),
                "zset" => c.call(&["ZRANGE", &name, "0", "-1", "WITHSCORES"]),
                other => panic!("unexpected type {other}"),
            };
            let expiry = c.call(&["PEXPIRETIME", &name]);
            out.insert((db, key), (ty, value, expiry));
        }
    }
    out
}

fn sorted(r: Resp, group: usize) -> Resp {
    let Resp::Array(items) = r else { return r };
    let mut chunks: Vec<Vec<Resp>> = items.chunks(group).map(|c| c.to_vec()).collect();
    chunks.sort();
    Resp::Array(chunks.into_iter().flatten().collect())
}

fn ok(r: Resp) {
    assert!(!matches!(r, Resp::Error(_)), "unexpected error: {r:?}");
}

/// A little of everything: every type, relative and absolute expiry, random pops, blocking
/// pops, commands whose keys span shards, database-wide commands, expiry before re-creation.
fn workload(port: u16) {
    let mut c = RawConn::connect(port);
    for i in 0..40 {
        let k = format!("str:{i}");
        ok(c.call(&["SET", &k, &format!("value-{i}")]));
        if i % 3 == 0 {
            ok(c.call(&["EXPIRE", &k, "1000"]));
        }
        if i % 5 == 0 {
            ok(c.call(&["SET", &format!("ttl:{i}"), "x", "PX", "500000"]));
        }
        ok(c.call(&["INCRBY", &format!("ctr:{}", i % 7), &i.to_string()]));
        ok(c.call(&["RPUSH", &format!("list:{}", i % 4), &i.to_string(), "pad"]));
        ok(c.call(&[
            "HSET",
            &format!("hash:{}", i % 3),
            &format!("f{i}"),
            &i.to_string(),
        ]));
        ok(c.call(&[
            "SADD",
            &format!("set:{}", i % 5),
            &format!("m{i}"),
            &i.to_string(),
        ]));
        ok(c.call(&[
            "ZADD",
            &format!("zset:{}", i % 4),
            &format!("{}.5", i),
            &format!("z{i}"),
        ]));
    }
    ok(c.call(&["PERSIST", "str:3"]));
    ok(c.call(&["INCRBYFLOAT", "float", "1.1"]));
    ok(c.call(&["INCRBYFLOAT", "float", "2.25"]));
    ok(c.call(&["APPEND", "str:1", "-appended"]));
    ok(c.call(&["SETRANGE", "str:2", "3", "XYZ"]));
    ok(c.call(&["GETEX", "str:4", "EX", "7777"]));
    ok(c.call(&["LPOP", "list:0"]));
    ok(c.call(&["LMOVE", "list:1", "list:9", "LEFT", "RIGHT"]));
    ok(c.call(&["HDEL", "hash:0", "f0", "f3"]));
    ok(c.call(&["HINCRBYFLOAT", "hash:1", "f1", "0.5"]));
    ok(c.call(&["SPOP", "set:0", "3"]));
    ok(c.call(&["SPOP", "set:1"]));
    ok(c.call(&["SMOVE", "set:2", "set:3", "m2"]));
    ok(c.call(&["SINTERSTORE", "inter", "set:3", "set:4"]));
    ok(c.call(&["SUNIONSTORE", "union", "set:1", "set:2", "set:3"]));
    ok(c.call(&["ZINCRBY", "zset:0", "10", "z0"]));
    ok(c.call(&["ZPOPMIN", "zset:1", "2"]));
    ok(c.call(&[
        "ZUNIONSTORE",
        "zu",
        "2",
        "zset:2",
        "zset:3",
        "WEIGHTS",
        "2",
        "3",
    ]));
    // GEO sets are sorted sets; the STORE forms write keys that may live on other shards.
    ok(c.call(&[
        "GEOADD", "geo", "13.36", "38.11", "Palermo", "15.08", "37.5", "Catania",
    ]));
    ok(c.call(&[
        "GEOADD", "geo", "NX", "CH", "12.5", "37.8", "Marsala", "1", "1", "Palermo",
    ]));
    ok(c.call(&[
        "GEORADIUS",
        "geo",
        "15",
        "37",
        "200",
        "km",
        "STORE",
        "geo-near",
    ]));
    let stored = [
        "GEORADIUSBYMEMBER",
        "geo",
        "Palermo",
        "300",
        "km",
        "STORE",
        "geo-not",
        "STOREDIST",
        "geo-dist",
    ];
    assert_eq!(c.call(&stored), Resp::Int(3));
    let boxed = [
        "GEOSEARCHSTORE",
        "geo-box",
        "geo",
        "FROMLONLAT",
        "14",
        "37.5",
        "BYBOX",
        "400",
        "400",
        "km",
        "STOREDIST",
    ];
    assert_eq!(c.call(&boxed), Resp::Int(3));
    ok(c.call(&[
        "GEOSEARCHSTORE",
        "geo-emptied",
        "geo",
        "FROMMEMBER",
        "Marsala",
        "BYRADIUS",
        "1",
        "km",
    ]));
    ok(c.call(&[
        "GEORADIUS",
        "geo",
        "0",
        "0",
        "1",
        "m",
        "STORE",
        "geo-emptied",
    ]));
    ok(c.call(&["SETBIT", "bits", "100", "1"]));
    ok(c.call(&["BITOP", "OR", "bits2", "bits", "str:5"]));
    for i in 0..10 {
        ok(c.call(&[
            "MSET",
            &format!("ma{i}"),
            "1",
            &format!("mb{i}"),
            "2",
            &format!("mc{i}"),
            "3",
        ]));
        ok(c.call(&["RENAME", &format!("ma{i}"), &format!("renamed{i}")]));
        ok(c.call(&["COPY", &format!("mb{i}"), &format!("copied{i}")]));
    }
    ok(c.call(&["DEL", "mc0", "mc1", "mc2", "str:10", "str:11"]));
    ok(c.call(&["SORT", "list:2", "ALPHA", "STORE", "sorted"]));
    // Blocking pops, served at once and after waiting.
    ok(c.call(&["BLPOP", "list:3", "0"]));
    let mut waiter = RawConn::connect(port);
    waiter.send_command(&[b"BRPOP", b"later", b"5"]);
    std::thread::sleep(Duration::from_millis(100));
    ok(c.call(&["RPUSH", "later", "a", "b", "c"]));
    assert_eq!(
        Resp::parse(&waiter.read_reply().unwrap()),
        Resp::Array(vec![
            Resp::Bulk(b"later".to_vec()),
            Resp::Bulk(b"c".to_vec())
        ])
    );
    ok(c.call(&["BZPOPMIN", "zset:3", "0"]));
    // A key that expires and is then created again: the log must not depend on the clock.
    ok(c.call(&["SET", "phoenix", "10", "PX", "30"]));
    ok(c.call(&["INCR", "phoenix"]));
    std::thread::sleep(Duration::from_millis(60));
    ok(c.call(&["INCR", "phoenix"]));
    // Other databases, MOVE, SWAPDB, FLUSHDB.
    ok(c.call(&["SELECT", "1"]));
    ok(c.call(&["SET", "in-one", "1"]));
    ok(c.call(&["SELECT", "2"]));
    ok(c.call(&["SET", "in-two", "2"]));
    ok(c.call(&["SELECT", "3"]));
    ok(c.call(&["SET", "in-three", "3"]));
    ok(c.call(&["SWAPDB", "2", "3"]));
    ok(c.call(&["SELECT", "4"]));
    ok(c.call(&["SET", "doomed", "1"]));
    ok(c.call(&["FLUSHDB"]));
    ok(c.call(&["SET", "after-flush", "1"]));
    ok(c.call(&["SELECT", "0"]));
    ok(c.call(&["MOVE", "str:12", "5"]));
}

fn check_recovery(name: &str, extra: &[&str]) {
    let dir = TempDir::new(name);
    let port = free_port();
    let mut server = start(port, &dir, extra);
    workload(port);
    let before = state(port);
    assert!(before.len() > 100, "workload made {} keys", before.len());
    assert_eq!(
        RawConn::connect(port).call(&["GET", "phoenix"]),
        Resp::Bulk(b"1".to_vec())
    );
    server.kill9();
    for threads in ["2", "3", "1", "2"] {
        let mut args: Vec<&str> = extra.to_vec();
        if let Some(i) = args.iter().position(|a| *a == "--threads") {
            args.drain(i..i + 2);
        }
        args.extend_from_slice(&["--threads", threads]);
        let mut server = start(port, &dir, &args);
        let after = state(port);
        let lost: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        assert!(lost.is_empty(), "{name}, threads {threads}: lost {lost:?}");
        for (k, v) in &before {
            assert_eq!(
                after.get(k),
                Some(v),
                "{name}, threads {threads}: key {k:?}"
            );
        }
        assert_eq!(after.len(), before.len(), "{name}, threads {threads}");
        server.kill9();
    }
}

#[test]
fn everysec_log_recovers_everything_after_kill_9_with_any_thread_count() {
    check_recovery("everysec-uring", &["--threads", "2"]);
}

#[test]
fn always_log_through_the_portable_writer_recovers_everything() {
    check_recovery(
        "always-thread",
        &[
            "--appendfsync",
            "always",
            "--wal-thread-writer",
            "--threads",
            "2",
        ],
    );
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log-"))
        })
        .collect();
    v.sort_by_key(|p| records_len(p));
    v
}

/// Where a log segment's records end (the writer keeps zeroed room after them).
fn records_len(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap_or_default();
    let mut reader = warpengine_wal::record::Reader::new(&data);
    while reader.next_record().is_some() {}
    reader.valid_len()
}

#[test]
fn torn_tail_is_cut_and_corruption_in_the_middle_refuses_to_start_unless_repaired() {
    let dir = TempDir::new("damage");
    let port = free_port();
    let mut server = start(port, &dir, &["--threads", "1"]);
    let mut c = RawConn::connect(port);
    for i in 0..200 {
        ok(c.call(&["SET", &format!("k{i}"), &format!("v{i}")]));
    }
    server.kill9();
    // A write cut short: half a record at the end.
    let biggest = log_files(&dir.log_dir()).pop().expect("a log file");
    let mut data = std::fs::read(&biggest).unwrap();
    let tail = data[..30].to_vec();
    // Into the zeroed room after the records, as a write cut short lands there.
    let used = records_len(&biggest) as usize;
    data.resize(data.len().max(used + 100), 0);
    data[used..used + 30].copy_from_slice(&tail);
    std::fs::write(&biggest, &data).unwrap();
    let mut server = start(port, &dir, &["--threads", "1"]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(200));
    for i in 200..400 {
        ok(c.call(&["SET", &format!("k{i}"), &format!("v{i}")]));
    }
    server.kill9();

    // One flipped bit in the middle of the log written since that start.
    let log = log_files(&dir.log_dir()).pop().expect("a log file");
    let mut data = std::fs::read(&log).unwrap();
    let middle = records_len(&log) as usize / 2;
    data[middle] ^= 0x10;
    std::fs::write(&log, &data).unwrap();
    let err = match try_start_warpengine_on(
        port,
        &["--appendonly", "yes", "--dir", dir.path(), "--threads", "1"],
    ) {
        Ok(_) => panic!("started on a corrupt log"),
        Err(log_text) => log_text,
    };
    let name = log.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "error does not name the file: {err}");
    assert!(
        err.contains("offset"),
        "error does not give the offset: {err}"
    );
    assert!(
        err.contains("--wal-repair"),
        "error does not say how to repair: {err}"
    );

    let _server = start(port, &dir, &["--threads", "1", "--wal-repair"]);
    let mut c = RawConn::connect(port);
    let n = c.call(&["DBSIZE"]).int();
    assert!((200..400).contains(&n), "after repair {n} keys");
    // The prefix is intact: keys are present up to the damage, with their values.
    for i in 0..n {
        assert_eq!(
            c.call(&["GET", &format!("k{i}")]),
            Resp::Bulk(format!("v{i}").into_bytes())
        );
    }
}

#[test]
fn config_set_appendonly_starts_logging_from_a_snapshot() {
    let dir = TempDir::new("config-set");
    let port = free_port();
    let mut server = try_start_warpengine_on(port, &["--dir", dir.path()]).unwrap();
    let mut c = RawConn::connect(port);
    ok(c.call(&["SET", "before", "1"]));
    ok(c.call(&[
        "CONFIG",
        "SET",
        "appendonly",
        "yes",
        "appendfsync",
        "always",
    ]));
    ok(c.call(&["SET", "after", "2"]));
    ok(c.call(&["RPUSH", "list", "a", "b"]));
    let info = c.call(&["INFO", "persistence"]);
    let Resp::Bulk(info) = info else { panic!() };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("aof_enabled:1"), "{info}");
    assert!(info.contains("aof_fsync:always"), "{info}");
    server.kill9();
    let _server = start(port, &dir, &[]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["GET", "before"]), Resp::Bulk(b"1".to_vec()));
    assert_eq!(c.call(&["GET", "after"]), Resp::Bulk(b"2".to_vec()));
    assert_eq!(c.call(&["LLEN", "list"]), Resp::Int(2));
}

#[test]
fn save_bgsave_and_bgrewriteaof_compact_the_log() {
    let dir = TempDir::new("save");
    let port = free_port();
    let mut server = start(port, &dir, &[]);
    let mut c = RawConn::connect(port);
    for i in 0..100 {
        ok(c.call(&["INCR", "counter"]));
        ok(c.call(&["SET", &format!("k{i}"), "v"]));
    }
    let before = c.call(&["LASTSAVE"]).int();
    assert_eq!(c.call(&["SAVE"]), Resp::Simple("OK".into()));
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Resp::Bulk(info) = c.call(&["INFO", "persistence"]) else {
            panic!()
        };
        if String::from_utf8(info)
            .unwrap()
            .contains("aof_rewrite_in_progress:0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.call(&["LASTSAVE"]).int() >= before);
    ok(c.call(&["INCR", "counter"]));
    let logs: u64 = log_files(&dir.log_dir())
        .iter()
        .map(|p| records_len(p))
        .sum();
    assert!(
        logs < 200,
        "{logs} bytes of log after a snapshot and one INCR"
    );
    server.kill9();
    let _server = start(port, &dir, &[]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["GET", "counter"]), Resp::Bulk(b"101".to_vec()));
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(101));
}

/// Several clients write while the server is killed at a random moment: every acknowledged
/// INCR is in the recovered value, and no MSET spanning shards is half applied.
fn acknowledged_writes_survive(fsync: &str, backend: &[&str]) {
    let dir = TempDir::new(&format!("crash-{fsync}"));
    let port = free_port();
    for round in 0..3 {
        let mut args = vec!["--appendfsync", fsync, "--threads", "2"];
        args.extend_from_slice(backend);
        let mut server = start(port, &dir, &args);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for t in 0..4 {
            let stop = stop.clone();
            clients.push(std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let (mut acked_incr, mut acked_mset) = (None, None);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    c.send_command(&[b"INCR", format!("counter:{t}").as_bytes()]);
                    match c.read_reply_opt() {
                        Some(r) => acked_incr = Some(Resp::parse(&r).int()),
                        None => break,
                    }
                    let v = i.to_string();
                    c.send_command(&[
                        b"MSET",
                        format!("pair:{t}:a").as_bytes(),
                        v.as_bytes(),
                        format!("pair:{t}:b").as_bytes(),
                        v.as_bytes(),
                        format!("pair:{t}:c").as_bytes(),
                        v.as_bytes(),
                    ]);
                    match c.read_reply_opt() {
                        Some(_) => acked_mset = Some(i),
                        None => break,
                    }
                }
                (acked_incr, acked_mset)
            }));
        }
        let pause = 200 + (std::process::id() as u64 * 7919 + round * 104_729) % 600;
        std::thread::sleep(Duration::from_millis(pause));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<_> = clients.into_iter().map(|h| h.join().unwrap()).collect();
        let _server = start(port, &dir, &args);
        let mut c = RawConn::connect(port);
        for (t, (incr, mset)) in acked.into_iter().enumerate() {
            let got = match c.call(&["GET", &format!("counter:{t}")]) {
                Resp::Nil => 0,
                r => r.int(),
            };
            let incr = incr.unwrap_or(0);
            assert!(
                got >= incr,
                "{fsync} round {round}: counter {t} acknowledged {incr}, recovered {got}"
            );
            let pair: Vec<Resp> = ["a", "b", "c"]
                .iter()
                .map(|s| c.call(&["GET", &format!("pair:{t}:{s}")]))
                .collect();
            assert!(
                pair[0] == pair[1] && pair[1] == pair[2],
                "{fsync} round {round}: MSET half applied: {pair:?}"
            );
            if let Some(m) = mset {
                assert!(
                    pair[0].int() >= m as i64,
                    "{fsync}: MSET {m} acknowledged, lost"
                );
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_under_load_everysec() {
    acknowledged_writes_survive("everysec", &[]);
}

#[test]
fn acknowledged_writes_survive_kill_9_under_load_always_both_writers() {
    acknowledged_writes_survive("always", &[]);
    acknowledged_writes_survive("always", &["--wal-thread-writer"]);
}

/// A full disk: the write that cannot be logged is answered MISCONF, reads keep working, and
/// once space is back a snapshot clears the condition; nothing acknowledged is lost.
#[test]
fn full_disk_gives_misconf_and_recovers_when_space_returns() {
    let dir = TempDir::new("enospc");
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=6m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    // Something else on the disk, that the operator can delete later.
    let filler = mnt.join("filler");
    // Bigger than what the log fills, so a snapshot fits once it is gone.
    std::fs::write(&filler, vec![0u8; 3584 << 10]).unwrap();
    let port = free_port();
    let args = [
        "--appendonly",
        "yes",
        "--dir",
        mnt.to_str().unwrap(),
        "--threads",
        "1",
    ];
    let mut server = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    let value = "x".repeat(16 * 1024);
    let mut acked = 0;
    let mut refused = None;
    for i in 0..400 {
        match c.call(&["SET", &format!("big{i}"), &value]) {
            Resp::Simple(_) => acked = i + 1,
            Resp::Error(e) => {
                refused = Some(e);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let refused = refused.expect("a 6 MB disk took 6.4 MB of writes");
    assert!(refused.starts_with("MISCONF"), "{refused}");
    assert!(acked > 10);
    // Reads work; writes are refused, and keep being refused while the disk is full.
    assert_eq!(c.call(&["STRLEN", "big0"]), Resp::Int(value.len() as i64));
    std::thread::sleep(Duration::from_millis(1500));
    let Resp::Error(e) = c.call(&["SET", "small", "1"]) else {
        panic!("write accepted on a failed log")
    };
    assert!(e.starts_with("MISCONF"), "{e}");
    // Space comes back: a fresh snapshot clears the condition.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(c.call(&["SET", "small", "1"]), Resp::Simple(_)) {
        assert!(
            Instant::now() < deadline,
            "writes still refused 10 s after space returned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill9();
    let _server = try_start_warpengine_on(port, &args).unwrap();
    let mut c = RawConn::connect(port);
    for i in 0..acked {
        assert_eq!(
            c.call(&["STRLEN", &format!("big{i}")]),
            Resp::Int(value.len() as i64),
            "acknowledged key big{i} lost"
        );
    }
    assert_eq!(c.call(&["GET", "small"]), Resp::Bulk(b"1".to_vec()));
}

fn mget_all(c: &mut RawConn, n: usize) -> Vec<Resp> {
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(1000) {
        let keys: Vec<String> = (start..(start + 1000).min(n))
            .map(|i| format!("k{i}"))
            .collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let Resp::Array(v) = c.call(&args) else {
            panic!("MGET")
        };
        out.extend(v);
    }
    out
}

fn wait_snapshot_done(c: &mut RawConn) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let Resp::Bulk(info) = c.call(&["INFO", "persistence"]) else {
            panic!()
        };
        if String::from_utf8(info)
            .unwrap()
            .contains("rdb_bgsave_in_progress:0")
        {
            return;
        }
        assert!(Instant::now() < deadline, "snapshot did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// BGSAVE while clients keep writing: the snapshot plus the log after it give back exactly
/// the data, and the log before it is gone.
#[test]
fn background_snapshot_under_writes_is_exact() {
    let dir = TempDir::new("bgsave");
    let port = free_port();
    let mut server = start(port, &dir, &["--threads", "2"]);
    const N: usize = 100_000;
    let mut loader = RawConn::connect(port);
    for start in (0..N).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..start + 1000 {
            let (k, v) = (format!("k{i}"), format!("v{i}"));
            batch.extend(warpengine_tests::encode_command(&[
                b"SET",
                k.as_bytes(),
                v.as_bytes(),
            ]));
        }
        loader.send(&batch);
        for _ in 0..1000 {
            loader.read_reply().unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = RawConn::connect(port);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("k{}", (i * 7919) % N);
                match i % 4 {
                    0 => ok(c.call(&["APPEND", &k, "+"])),
                    1 => ok(c.call(&["DEL", &k])),
                    2 => ok(c.call(&["SET", &k, &format!("new{i}")])),
                    _ => ok(c.call(&["INCR", "counter"])),
                }
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    wait_snapshot_done(&mut c);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 100, "only {writes} writes ran");
    let before = mget_all(&mut c, N);
    let counter = c.call(&["GET", "counter"]);
    let size = c.call(&["DBSIZE"]);
    // The snapshot replaced the log written before it.
    let oldest = std::fs::read_dir(dir.log_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("log-1-"))
        .count();
    assert_eq!(oldest, 0, "the log before the snapshot is still there");
    server.kill9();
    let _server = start(port, &dir, &["--threads", "2"]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["DBSIZE"]), size);
    assert_eq!(c.call(&["GET", "counter"]), counter);
    let after = mget_all(&mut c, N);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b, a, "k{i}");
    }
}

/// Power loss under `appendfsync always`: cut every log back to what the last fdatasync covered
/// (as a power cut would) and check that every write acknowledged before that point survives.
/// A delay before each fdatasync leaves written-but-unsynced records at the cut.
#[test]
fn always_acknowledges_only_what_an_fdatasync_covered() {
    let dir = TempDir::new("power-loss");
    let port = free_port();
    let args = [
        "--appendfsync",
        "always",
        "--threads",
        "2",
        "--set",
        "wal-sync-delay-ms=100",
    ];
    let mut server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    let t = Instant::now();
    ok(c.call(&["SET", "solo", "1"]));
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "an `always` write was acknowledged before its fdatasync"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut acks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    c.send_command(&[b"INCR", format!("n:{t}").as_bytes()]);
                    match c.read_reply_opt() {
                        Some(r) => acks.push((Instant::now(), Resp::parse(&r).int())),
                        None => break,
                    }
                }
                acks
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(450));
    // Acknowledgements received before INFO was asked for were sent before the positions.
    let cut_at = Instant::now();
    let Resp::Bulk(info) = c.call(&["INFO", "persistence"]) else {
        panic!()
    };
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acks: Vec<Vec<(Instant, i64)>> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    let info = String::from_utf8(info).unwrap();
    let mut lost_bytes = 0;
    for shard in 0..2 {
        let line = info
            .lines()
            .find(|l| l.starts_with(&format!("wal_shard{shard}:")))
            .unwrap_or_else(|| panic!("no wal_shard{shard} in {info}"));
        let field = |name: &str| -> u64 {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        let (seg, written) = (field("segment"), field("written_bytes"));
        let (synced_seg, synced) = (field("synced_segment"), field("synced_bytes"));
        assert_eq!(seg, synced_seg, "{line}");
        lost_bytes += written - synced;
        let log = dir.log_dir().join(format!("log-{seg}-{shard}"));
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(synced).unwrap();
    }
    assert!(
        lost_bytes > 0,
        "nothing was unsynced at the cut: the test proves nothing"
    );
    let _server = start(port, &dir, &["--threads", "2"]);
    let mut c = RawConn::connect(port);
    for (t, acks) in acks.iter().enumerate() {
        let acked = acks
            .iter()
            .filter(|(at, _)| *at < cut_at)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        let got = match c.call(&["GET", &format!("n:{t}")]) {
            Resp::Nil => 0,
            r => r.int(),
        };
        assert!(
            got >= acked,
            "client {t}: acknowledged {acked}, recovered {got}"
        );
    }
}

/// A transaction is logged as one group: after a crash it is there whole, across shards; and
/// when its last record was cut short, none of it is applied (its reply was never sent).
#[test]
fn a_transaction_is_recovered_whole_or_not_at_all() {
    let dir = TempDir::new("tx-recovery");
    let port = free_port();
    let mut server = start(port, &dir, &["--threads", "4"]);
    let mut c = RawConn::connect(port);
    for i in 0..20 {
        c.call(&["MULTI"]);
        c.call(&["SET", &format!("a{i}"), "1"]);
        c.call(&["INCRBY", &format!("b{i}"), "2"]);
        c.call(&["RPUSH", &format!("c{i}"), "x", "y"]);
        assert!(matches!(c.call(&["EXEC"]), Resp::Array(r) if r.len() == 3));
    }
    server.kill9();
    let mut server = start(port, &dir, &["--threads", "4"]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(60));
    assert_eq!(c.call(&["GET", "b19"]), Resp::Bulk(b"2".to_vec()));
    server.kill9();

    // One shard: the transaction's three records end the log; cut into the last one.
    let dir = TempDir::new("tx-torn");
    let port = free_port();
    let mut server = start(port, &dir, &["--threads", "1"]);
    let mut c = RawConn::connect(port);
    ok(c.call(&["SET", "before", "1"]));
    c.call(&["MULTI"]);
    c.call(&["SET", "t1", "1"]);
    c.call(&["SET", "t2", "2"]);
    c.call(&["SET", "t3", "3"]);
    assert!(matches!(c.call(&["EXEC"]), Resp::Array(r) if r.len() == 3));
    server.kill9();
    let log = log_files(&dir.log_dir()).pop().expect("a log file");
    let end = records_len(&log) as usize;
    let mut data = std::fs::read(&log).unwrap();
    data.truncate(end - 5);
    std::fs::write(&log, &data).unwrap();
    let _server = start(port, &dir, &["--threads", "1"]);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["GET", "before"]), Resp::Bulk(b"1".to_vec()));
    for k in ["t1", "t2", "t3"] {
        assert_eq!(c.call(&["EXISTS", k]), Resp::Int(0), "{k}");
    }
}

/// Waits up to 10 s for `line` in the log file at `path`; the log's text.
fn wait_for_log(path: &Path, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(line) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {line:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `save` rules save in the background as Redis's cron does, and saves, loads and shutdowns
/// log Redis's own lines, which test harnesses (Redis's among them) wait for.
#[test]
fn save_rules_save_in_the_background_and_the_log_says_so_in_redis_s_words() {
    let dir = TempDir::new("save-rules");
    let log = dir.0.join("log");
    let log_arg = log.to_str().unwrap();
    let port = free_port();
    let args = ["--appendonly", "no", "--save", "1 2", "--logfile", log_arg];
    let server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    ok(c.call(&["SET", "a", "1"]));
    // One change of the two the rule asks for: no save, however long it waits.
    std::thread::sleep(Duration::from_millis(2200));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Saving..."), "{text}");
    assert!(!dir.0.join("dump.rdb").exists());
    ok(c.call(&["SET", "b", "2"]));
    wait_for_log(&log, "2 changes in 1 seconds. Saving...");
    wait_for_log(&log, "Background saving terminated with success");
    assert!(dir.0.join("dump.rdb").exists());
    let unsaved =
        warpengine_tests::info_field(&mut c, "persistence", "rdb_changes_since_last_save");
    assert_eq!(unsaved, "0");
    ok(c.call(&["SAVE"]));
    assert!(
        wait_for_log(&log, "DB saved on disk")
            .matches("DB saved on disk")
            .count()
            >= 2
    );
    c.send_command(&[b"SHUTDOWN"]);
    let text = wait_for_log(&log, "ready to exit, bye bye");
    let said = |line: &str| text.find(line).unwrap_or_else(|| panic!("{line}:\n{text}"));
    assert!(said("User requested shutdown...") < said("Saving the final RDB snapshot"));
    drop(server);
    let _server = start(port, &dir, &args);
    let text = wait_for_log(
        &log,
        "Done loading RDB, keys loaded: 2, keys expired: 0, empty keys skipped: 0.",
    );
    assert!(text.contains("DB loaded from disk: "), "{text}");
}

/// An RDB file as Redis 7.0 would load it: `REDIS0010`, database 0, then `objects` (type byte,
/// key, value), EOF and a zero checksum (written without one).
fn rdb_file_with(objects: &[&[u8]]) -> Vec<u8> {
    let mut file = b"REDIS0010\xfe\x00".to_vec();
    for object in objects {
        file.extend_from_slice(object);
    }
    file.push(0xff);
    file.extend_from_slice(&[0; 8]);
    file
}

/// Empty collections in an RDB file (an old Redis bug's leftovers) are skipped, as Redis 7.0
/// skips them, in its words; a corrupt value stops the start with Redis's reason and its
/// "Terminating server after rdb file reading failure." (Redis's corrupt-dump unit).
#[test]
fn an_rdb_file_s_empty_keys_are_skipped_and_a_corrupt_one_stops_the_start() {
    let dir = TempDir::new("rdb-empty-keys");
    let rdb = dir.0.join("dump.rdb");
    let empty_set: &[u8] = b"\x02\x03set\x00";
    let empty_hash: &[u8] = b"\x04\x04hash\x00";
    let string: &[u8] = b"\x00\x01k\x01v";
    std::fs::write(&rdb, rdb_file_with(&[empty_set, string, empty_hash])).unwrap();
    let log = dir.0.join("log");
    let args = ["--appendonly", "no", "--logfile", log.to_str().unwrap()];
    let port = free_port();
    let server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(1));
    let text = wait_for_log(&log, "empty keys skipped: 2.");
    assert!(
        text.contains("rdbLoadObject skipping empty key: set"),
        "{text}"
    );
    assert!(
        text.contains("rdbLoadObject skipping empty key: hash"),
        "{text}"
    );
    drop(server);

    let corrupt: &[u8] = b"\x0a\x01l\x05\x01\x02\x03\x04\x05";
    std::fs::write(&rdb, rdb_file_with(&[string, corrupt])).unwrap();
    let port = free_port();
    let mut args = vec!["--appendonly", "no", "--dir", dir.path()];
    args.extend_from_slice(&["--loglevel", "notice"]);
    let Err(text) = try_start_warpengine_on(port, &args) else {
        panic!("started with a corrupt RDB file")
    };
    assert_eq!(
        text.matches("Terminating server after rdb file reading failure.")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.matches("List ziplist integrity check failed.").count() >= 2,
        "{text}"
    );
}

/// `appendonly no` stops a running BGREWRITEAOF at once, in Redis's words (its aofrw unit);
/// the next rewrite starts afresh and DEBUG LOADAOF loads what it wrote.
#[test]
fn turning_the_log_off_stops_a_running_rewrite() {
    let dir = TempDir::new("rewrite-stop");
    let log = dir.0.join("log");
    let port = free_port();
    let args = [
        "--logfile",
        log.to_str().unwrap(),
        "--enable-debug-command",
        "yes",
    ];
    let _server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    let in_progress =
        |c: &mut RawConn| warpengine_tests::info_field(c, "persistence", "aof_rewrite_in_progress");
    assert_eq!(c.call(&["SET", "k", "v"]), Resp::Simple("OK".into()));
    // Ten seconds a key: the rewrite would run for ever.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "10000000"]);
    c.call(&["BGREWRITEAOF"]);
    assert_eq!(in_progress(&mut c), "1");
    c.call(&["CONFIG", "SET", "appendonly", "no"]);
    let deadline = Instant::now() + Duration::from_secs(2);
    while in_progress(&mut c) != "0" {
        assert!(Instant::now() < deadline, "the rewrite still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_log(&log, "Killing running AOF rewrite child");
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    c.call(&["RPUSH", "list", "a", "b"]);
    let Resp::Simple(started) = c.call(&["BGREWRITEAOF"]) else {
        panic!("BGREWRITEAOF refused")
    };
    assert_eq!(started, "Background append only file rewriting started");
    warpengine_tests::wait_for("the rewrite to finish", || in_progress(&mut c) == "0");
    let digest = c.call(&["DEBUG", "DIGEST"]);
    assert_eq!(c.call(&["DEBUG", "LOADAOF"]), Resp::Simple("OK".into()));
    assert_eq!(c.call(&["DEBUG", "DIGEST"]), digest);
    assert_eq!(c.call(&["LLEN", "list"]), Resp::Int(2));
}

/// BGREWRITEAOF during a BGSAVE is scheduled and runs when the save ends; during a rewrite it
/// is refused (Redis's aofrw unit).
#[test]
fn a_rewrite_asked_for_during_a_save_runs_after_it() {
    let dir = TempDir::new("rewrite-scheduled");
    let port = free_port();
    let _server = start(port, &dir, &[]);
    let mut c = RawConn::connect(port);
    let field = |c: &mut RawConn, name: &str| warpengine_tests::info_field(c, "persistence", name);
    assert_eq!(c.call(&["SET", "k", "v"]), Resp::Simple("OK".into()));
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "10000000"]);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting scheduled".into())
    );
    assert_eq!(field(&mut c, "aof_rewrite_scheduled"), "1");
    let rewrites: u64 = field(&mut c, "aof_rewrites").parse().unwrap();
    // The save's wait ends once the delay is back to 0; the rewrite follows it.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    warpengine_tests::wait_for("the scheduled rewrite to run", || {
        field(&mut c, "aof_rewrite_scheduled") == "0"
            && field(&mut c, "aof_rewrite_in_progress") == "0"
            && field(&mut c, "aof_rewrites").parse::<u64>().unwrap() >= rewrites + 2
    });
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "10000000"]);
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Error("ERR Background append only file rewriting already in progress".into())
    );
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
}

/// As Redis: a start listens before it loads. Until the load ends, commands not flagged `loading`
/// get -LOADING, INFO shows `loading:1` and the load's progress, CONFIG SET of `dir` is refused
/// and of `loglevel` allowed; a SHUTDOWN then stops without saving over the file it loads
/// (the `save` rules would save otherwise). Redis's integration/rdb and unit/introspection
/// "during loading" tests, with `key-load-delay` slowing the load as there.
#[test]
fn a_start_takes_clients_while_it_loads_and_never_saves_half_its_data() {
    let dir = TempDir::new("loading");
    let port = free_port();
    let debug = [
        "--enable-debug-command",
        "yes",
        "--enable-protected-configs",
        "yes",
    ];
    let mut args = vec!["--appendonly", "no", "--save", "3600 1"];
    args.extend_from_slice(&debug);
    let server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    ok(c.call(&["DEBUG", "POPULATE", "20000", "key", "100"]));
    ok(c.call(&["SAVE"]));
    c.send_command(&[b"SHUTDOWN", b"NOSAVE"]);
    drop(server);
    let rdb = std::fs::read(dir.0.join("dump.rdb")).unwrap();

    // 20,000 keys at 200 us each: four seconds of loading at least.
    let log = dir.0.join("log");
    let port = free_port();
    let mut child = std::process::Command::new(warpengine_tests::warpengine_binary())
        .args(["--port", &port.to_string(), "--dir", dir.path()])
        .args([
            "--logfile",
            log.to_str().unwrap(),
            "--key-load-delay",
            "200",
        ])
        .args(&args)
        .spawn()
        .unwrap();
    let mut c = connect_once_listening(port);
    let loading = Resp::Error("LOADING Redis is loading the dataset in memory".into());
    assert_eq!(c.call(&["PING"]), loading);
    assert_eq!(c.call(&["GET", "key:1"]), loading);
    let field = |c: &mut RawConn, name: &str| warpengine_tests::info_field(c, "persistence", name);
    assert_eq!(field(&mut c, "loading"), "1");
    assert_eq!(field(&mut c, "loading_total_bytes"), rdb.len().to_string());
    let wait_until = Instant::now() + Duration::from_secs(10);
    while field(&mut c, "loading_loaded_bytes") == "0" {
        assert!(Instant::now() < wait_until, "no progress shown");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(c.call(&["CONFIG", "SET", "loglevel", "debug"]));
    assert_eq!(c.call(&["CONFIG", "SET", "dir", "/tmp"]), loading);
    assert_eq!(field(&mut c, "loading"), "1");
    c.send_command(&[b"SHUTDOWN"]);
    let exited = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < exited,
            "SHUTDOWN during the load did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(dir.0.join("dump.rdb")).unwrap(), rdb);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Saving the final RDB snapshot"), "{text}");
    assert!(!text.contains("Ready to accept"), "{text}");

    // Loaded whole, the server says so only then, and serves everything.
    args.extend_from_slice(&["--logfile", log.to_str().unwrap()]);
    let _server = start(port, &dir, &args);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(20000));
    assert_eq!(field(&mut c, "loading"), "0");
    let text = std::fs::read_to_string(&log).unwrap();
    let done = text
        .rfind("Done loading RDB, keys loaded: 20000")
        .expect(&text);
    assert!(text.rfind("Ready to accept").expect(&text) > done, "{text}");
}

/// A connection made the moment a starting server listens (not once it answers).
fn connect_once_listening(port: u16) -> RawConn {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            drop(s);
            return RawConn::connect(port);
        }
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A start with no file to load never answers -LOADING (Redis's clients wait in the listen
/// backlog until it serves): a client that connects from the first moment, here while a first
/// start with the log writes its first snapshot, gets PONG first. A harness that PINGs a
/// password-protected server and reads -NOAUTH as "up" then finds it serving.
#[test]
fn a_start_with_nothing_to_load_never_answers_loading() {
    let dir = TempDir::new("nothing-to-load");
    let port = free_port();
    let child = std::process::Command::new(warpengine_tests::warpengine_binary())
        .args(["--port", &port.to_string(), "--dir", dir.path()])
        .args(["--appendonly", "yes", "--requirepass", "pw"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = ServerProcess::adopt(port, child);
    let mut c = connect_once_listening(port);
    assert_eq!(c.call(&["AUTH", "pw"]), Resp::Simple("OK".into()));
    assert_eq!(c.call(&["FLUSHALL"]), Resp::Simple("OK".into()));
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
}
