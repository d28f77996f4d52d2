//! Replication between WarpEngines: a WarpEngine replica of a WarpEngine primary under a
//! write load from several clients (every type, MULTI/EXEC, a script over two shards, SPOP,
//! expiring keys, FLUSHDB in another database, TEMPORAL INCR), its link cut from either side
//! in the middle: it resumes with a partial resync and ends with the primary's dataset; with
//! `appendonly yes` a restarted replica resyncs and matches. A chain A → B → C carries A's
//! stream with the same offsets; promoting B lets C continue partially and A follow B.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use warpengine_tests::dataset::{assert_same, contents};
use warpengine_tests::{
    free_port, info_field, start_warpengine, try_start_warpengine_on, wait_for, RawConn, Resp,
    ServerProcess, TempDir,
};

fn ok(c: &mut RawConn, args: &[&str]) -> Resp {
    let reply = c.call(args);
    assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
    reply
}

/// One client's writes, round after round until `stop`: every type, a transaction, a script
/// over keys of two shards, SPOP, keys that expire while the load runs, FLUSHDB of a database
/// of its own, TEMPORAL INCR. Answers the rounds done.
fn writer(port: u16, id: usize, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut c = RawConn::connect(port);
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let n = round.to_string();
            let k = |name: &str| format!("w{id}:{name}");
            let (s, l, h, z) = (k("str"), k("list"), k("hash"), k("zset"));
            let (set, x, hll, ctr) = (k("set"), k("stream"), k("hll"), k("ctr"));
            let short = k(&format!("short:{}", round % 8));
            let writes: Vec<Vec<String>> = vec![
                vec!["SET".into(), s.clone(), n.clone()],
                vec!["APPEND".into(), s.clone(), "+".into()],
                vec!["INCR".into(), ctr.clone()],
                vec!["INCRBYFLOAT".into(), k("float"), "0.5".into()],
                vec!["RPUSH".into(), l.clone(), n.clone()],
                vec!["LTRIM".into(), l.clone(), "-20".into(), "-1".into()],
                vec![
                    "HSET".into(),
                    h.clone(),
                    format!("f{}", round % 10),
                    n.clone(),
                ],
                vec![
                    "SADD".into(),
                    set.clone(),
                    n.clone(),
                    format!("m{}", round % 5),
                ],
                vec!["SPOP".into(), set.clone()],
                vec![
                    "ZADD".into(),
                    z.clone(),
                    n.clone(),
                    format!("z{}", round % 7),
                ],
                vec![
                    "XADD".into(),
                    x.clone(),
                    "MAXLEN".into(),
                    "50".into(),
                    "*".into(),
                    "n".into(),
                    n.clone(),
                ],
                vec!["PFADD".into(), hll.clone(), n.clone()],
                vec!["SET".into(), short, n.clone(), "PX".into(), "60".into()],
                vec!["EXPIRE".into(), h.clone(), "5000".into()],
                vec![
                    "TEMPORAL".into(),
                    "INCR".into(),
                    k("trend"),
                    format!("m{}", round % 3),
                    "1".into(),
                ],
            ];
            for w in &writes {
                let args: Vec<&str> = w.iter().map(String::as_str).collect();
                ok(&mut c, &args);
            }
            ok(&mut c, &["MULTI"]);
            ok(&mut c, &["INCR", &k("tx:a")]);
            ok(&mut c, &["LPUSH", &k("tx:b"), &n]);
            ok(&mut c, &["DEL", &k("tx:gone")]);
            ok(&mut c, &["EXEC"]);
            // Keys of two shards (most likely: their slots differ) in one script.
            ok(
                &mut c,
                &[
                    "EVAL",
                    "redis.call('INCR', KEYS[1]); return redis.call('SET', KEYS[2], ARGV[1])",
                    "2",
                    &k("ev:one"),
                    &k("ev:other"),
                    &n,
                ],
            );
            ok(&mut c, &["MSET", &k("m:a"), &n, &k("m:b"), &n]);
            if round.is_multiple_of(10) {
                // A database of its own, filled and flushed.
                let db = (2 + id).to_string();
                ok(&mut c, &["SELECT", &db]);
                ok(&mut c, &["FLUSHDB"]);
                ok(&mut c, &["SET", "after-flush", &n]);
                ok(&mut c, &["SELECT", "0"]);
            }
            round += 1;
        }
        round
    })
}

/// Writers on `port` until `during` returns, then a little more; their rounds.
fn under_load(port: u16, during: impl FnOnce()) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3).map(|id| writer(port, id, stop.clone())).collect();
    std::thread::sleep(Duration::from_millis(300));
    during();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writers
        .into_iter()
        .map(|w| w.join().expect("a writer"))
        .sum()
}

/// Waits until the replica's link is up and its offset equals the primary's.
fn caught_up(p: &mut RawConn, r: &mut RawConn) {
    wait_for("the replica's offset to reach the primary's", || {
        let primary = info_field(p, "replication", "master_repl_offset");
        info_field(r, "replication", "master_link_status") == "up"
            && info_field(r, "replication", "slave_repl_offset") == primary
    });
}

fn stat(c: &mut RawConn, field: &str) -> u64 {
    info_field(c, "stats", field).parse().unwrap()
}

fn assert_same_everything(r: &mut RawConn, p: &mut RawConn) {
    assert_same(&contents(r), &contents(p));
}

/// The two datasets match but for TEMPORAL keys (they have no RDB form).
fn assert_same_but_temporal(r: &mut RawConn, p: &mut RawConn) {
    let without_temporal = |c: &mut RawConn| -> BTreeMap<String, String> {
        let all = contents(c).into_iter();
        all.filter(|(_, v)| v.split(' ').nth(1) != Some("temporal"))
            .collect()
    };
    assert_same(&without_temporal(r), &without_temporal(p));
}

fn replicaof(c: &mut RawConn, port: u16) {
    ok(c, &["REPLICAOF", "127.0.0.1", &port.to_string()]);
}

#[test]
fn a_cut_link_resumes_partially_and_a_restarted_replica_resyncs() {
    let pdir = TempDir::new("warp-repl-primary");
    let rdir = TempDir::new("warp-repl-replica");
    let durable = ["--appendonly", "yes", "--save", ""];
    let primary =
        start_warpengine(&[&["--threads", "3", "--dir", pdir.path()][..], &durable].concat());
    let mut p = RawConn::connect(primary.port);
    let rport = free_port();
    let pport = primary.port.to_string();
    let replica_args = [
        &[
            "--threads",
            "2",
            "--dir",
            rdir.path(),
            "--replicaof",
            "127.0.0.1",
            &pport,
        ][..],
        &durable,
    ]
    .concat();
    let replica = try_start_warpengine_on(rport, &replica_args).expect("the replica");
    let mut r = RawConn::connect(rport);
    caught_up(&mut p, &mut r);
    assert_eq!(stat(&mut p, "sync_full"), 1);

    // The replica cuts its link in the middle of the load.
    let rounds = under_load(primary.port, || {
        let mut r = RawConn::connect(rport);
        assert_eq!(
            ok(&mut r, &["CLIENT", "KILL", "TYPE", "master"]),
            Resp::Int(1)
        );
    });
    assert!(rounds > 10, "the load ran ({rounds} rounds)");
    caught_up(&mut p, &mut r);
    assert_eq!(stat(&mut p, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut p, "sync_full"), 1);
    assert_same_everything(&mut r, &mut p);

    // The primary cuts it.
    under_load(primary.port, || {
        let mut p = RawConn::connect(primary.port);
        assert_eq!(
            ok(&mut p, &["CLIENT", "KILL", "TYPE", "replica"]),
            Resp::Int(1)
        );
    });
    caught_up(&mut p, &mut r);
    assert_eq!(stat(&mut p, "sync_partial_ok"), 2);
    assert_eq!(stat(&mut p, "sync_full"), 1);
    assert_same_everything(&mut r, &mut p);

    // The replica stops and starts again from its log; writes go on meanwhile.
    r.send_command(&[b"SHUTDOWN"]);
    wait_for("the replica to go", || {
        info_field(&mut p, "replication", "connected_slaves") == "0"
    });
    drop(replica);
    under_load(primary.port, || {});
    let _replica = try_start_warpengine_on(rport, &replica_args).expect("the replica again");
    let mut r = RawConn::connect(rport);
    caught_up(&mut p, &mut r);
    assert_eq!(
        stat(&mut p, "sync_full") + stat(&mut p, "sync_partial_ok"),
        4,
        "one more resync"
    );
    // (TEMPORAL keys have no RDB form: a full resync cannot carry them.)
    assert_same_but_temporal(&mut r, &mut p);
}

#[test]
fn a_chain_carries_the_stream_and_survives_promoting_its_middle() {
    let a = start_warpengine(&["--threads", "2"]);
    let b = start_warpengine(&["--threads", "2"]);
    let c = start_warpengine(&["--threads", "3"]);
    let (mut pa, mut pb, mut pc) = (
        RawConn::connect(a.port),
        RawConn::connect(b.port),
        RawConn::connect(c.port),
    );
    ok(&mut pa, &["SET", "before", "1"]);
    replicaof(&mut pb, a.port);
    caught_up(&mut pa, &mut pb);
    replicaof(&mut pc, b.port);
    caught_up(&mut pb, &mut pc);
    // C gets A's writes through B, at A's offsets and under A's id.
    under_load(a.port, || {});
    // (Once the load's short-lived keys are gone, A's stream stays still: their DELs would
    // take A's offset past where B's promotion leaves it.)
    wait_for("the short-lived keys to expire", || {
        info_field(&mut pa, "keyspace", "db0").contains(",expires=3,")
    });
    caught_up(&mut pa, &mut pb);
    caught_up(&mut pb, &mut pc);
    let a_offset = info_field(&mut pa, "replication", "master_repl_offset");
    assert_eq!(
        info_field(&mut pc, "replication", "master_repl_offset"),
        a_offset
    );
    let a_id = info_field(&mut pa, "replication", "master_replid");
    assert_eq!(info_field(&mut pc, "replication", "master_replid"), a_id);
    assert_same_everything(&mut pc, &mut pa);

    // B is promoted: C continues partially under B's new id and gets B's writes, with no
    // full sync. (A link cut on a loaded machine is resumed partially, which is right too: in
    // one CI run of 2026-12-05 B had served two partial syncs here; so partial syncs are
    // counted from before the promotion, at least one more, and full syncs not at all.)
    let fulls_before = stat(&mut pb, "sync_full");
    let partials_before = stat(&mut pb, "sync_partial_ok");
    assert_eq!(fulls_before, 1);
    ok(&mut pb, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(info_field(&mut pb, "replication", "master_replid2"), a_id);
    under_load(b.port, || {});
    caught_up(&mut pb, &mut pc);
    let partials_after_promotion = stat(&mut pb, "sync_partial_ok");
    assert!(partials_after_promotion > partials_before);
    assert_eq!(stat(&mut pb, "sync_full"), fulls_before);
    let b_id = info_field(&mut pb, "replication", "master_replid");
    assert_eq!(info_field(&mut pc, "replication", "master_replid"), b_id);
    assert_same_everything(&mut pc, &mut pb);

    // A, which wrote nothing after B's promotion, follows B: its offset is within B's
    // second history, so it continues partially (as redis-server's PSYNC2 does).
    replicaof(&mut pa, b.port);
    caught_up(&mut pb, &mut pa);
    assert!(stat(&mut pb, "sync_partial_ok") > partials_after_promotion);
    assert_eq!(stat(&mut pb, "sync_full"), fulls_before);
    assert_same_everything(&mut pa, &mut pb);
    ok(&mut pb, &["SET", "after", "all"]);
    caught_up(&mut pb, &mut pa);
    caught_up(&mut pb, &mut pc);
    assert_eq!(pa.call(&["GET", "after"]), Resp::Bulk(b"all".to_vec()));
    assert_eq!(pc.call(&["GET", "after"]), Resp::Bulk(b"all".to_vec()));
}

/// The link's steps are logged in Redis's words on both sides: test harnesses (Redis's own)
/// wait for these lines.
#[test]
fn the_link_s_steps_are_logged_in_redis_s_words() {
    let dir = TempDir::new("warp-repl-log-lines");
    let plog = format!("{}/primary.log", dir.path());
    let rlog = format!("{}/replica.log", dir.path());
    let primary = start_warpengine(&["--threads", "2", "--logfile", &plog]);
    let replica = start_warpengine(&["--threads", "2", "--logfile", &rlog]);
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    ok(&mut p, &["SET", "k", "v"]);
    replicaof(&mut r, primary.port);
    caught_up(&mut p, &mut r);
    let logged = |path: &str, line: String| {
        wait_for(&format!("{line:?} in {path}"), || {
            std::fs::read_to_string(path).is_ok_and(|text| text.contains(&line))
        })
    };
    let name = format!("127.0.0.1:{}", replica.port);
    logged(
        &rlog,
        format!("Connecting to MASTER 127.0.0.1:{}", primary.port),
    );
    logged(&rlog, "MASTER <-> REPLICA sync started".into());
    logged(
        &rlog,
        "Done loading RDB, keys loaded: 1, keys expired: 0, empty keys skipped: 0.".into(),
    );
    logged(
        &rlog,
        "MASTER <-> REPLICA sync: Finished with success".into(),
    );
    logged(&plog, format!("Replica {name} asks for synchronization"));
    logged(
        &plog,
        format!("Synchronization with replica {name} succeeded"),
    );
    ok(&mut r, &["CLIENT", "KILL", "TYPE", "master"]);
    ok(&mut p, &["SET", "k2", "v"]);
    caught_up(&mut p, &mut r);
    logged(
        &rlog,
        "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.".into(),
    );
    logged(
        &plog,
        format!("Partial resynchronization request from {name} accepted."),
    );
}

/// A primary restarted from the RDB file its SHUTDOWN saved goes on with the stream that file
/// recorded (`repl-id`, `repl-offset`): its replica resumes with a partial resync and so does
/// that replica's own replica (told of the new id), and keys past their time that the file
/// held (active expiry off) go out as DELs once the load drops them (Redis's
/// psync2-master-restart unit).
#[test]
fn a_restarted_primary_continues_its_stream_from_its_rdb_file() {
    let dir = TempDir::new("warp-restart-primary");
    let port = free_port();
    let args = [
        "--dir",
        dir.path(),
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "yes",
        "--repl-ping-replica-period",
        "3600",
    ];
    let start = || try_start_warpengine_on(port, &args).unwrap_or_else(|log| panic!("{log}"));
    let mut primary = start();
    let (replica, sub) = (start_warpengine(&[]), start_warpengine(&[]));
    let (mut p, mut r) = (RawConn::connect(port), RawConn::connect(replica.port));
    let mut s = RawConn::connect(sub.port);
    replicaof(&mut r, port);
    replicaof(&mut s, replica.port);
    ok(&mut p, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    for i in 0..50 {
        let n = i.to_string();
        ok(&mut p, &["SET", &format!("k{n}"), &n]);
        ok(&mut p, &["SET", &format!("e{n}"), &n, "PX", "10"]);
    }
    caught_up(&mut p, &mut r);
    caught_up(&mut p, &mut s);
    // SHUTDOWN sends GETACK (37 bytes of stream) to a replica whose last ack is behind, so
    // the offset the file records is only known once the primary has seen the replica's ack;
    // the once-an-hour PING keeps the period's PING out of the window too.
    wait_for("the primary to see the replica's ack", || {
        let offset = info_field(&mut p, "replication", "master_repl_offset");
        info_field(&mut p, "replication", "slave0").contains(&format!(",offset={offset},"))
    });
    let replid = info_field(&mut p, "replication", "master_replid");
    let offset: u64 = info_field(&mut p, "replication", "master_repl_offset")
        .parse()
        .unwrap();
    // The expiring keys' time passes; nothing deletes them before the save.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(100));
    p.send_command(&[b"SHUTDOWN"]);
    assert!(p.read_reply().is_none());
    wait_for("the primary to exit", || !primary.alive());
    let _primary = start();
    let mut p = RawConn::connect(port);
    assert_eq!(info_field(&mut p, "replication", "master_replid2"), replid);
    assert_ne!(info_field(&mut p, "replication", "master_replid"), replid);
    assert_eq!(
        info_field(&mut p, "replication", "second_repl_offset"),
        (offset + 1).to_string()
    );
    assert_eq!(
        info_field(&mut p, "persistence", "rdb_last_load_keys_expired"),
        "50"
    );
    ok(&mut p, &["SET", "after", "1"]);
    caught_up(&mut p, &mut r);
    caught_up(&mut p, &mut s);
    assert_eq!(stat(&mut p, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut p, "sync_full"), 0);
    assert_eq!(
        stat(&mut r, "sync_full"),
        1,
        "the sub-replica's first sync only"
    );
    assert_eq!(stat(&mut r, "sync_partial_ok"), 1);
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(51));
    assert_eq!(s.call(&["DBSIZE"]), Resp::Int(51));
    assert_same_everything(&mut r, &mut p);
    assert_same_everything(&mut s, &mut p);
}

/// A full sync hands a replica the keys whose time has passed but that the primary still holds
/// (active expiry off): the replica keeps them, as Redis's replica loads them, and its primary's
/// DELs remove them later. A replica that dropped them at load counted fewer keys than its
/// primary (the restart test above failed on it when its sync overlapped the expiring SETs).
#[test]
fn a_full_sync_keeps_the_expired_keys_the_primary_still_holds() {
    let (primary, replica) = (
        start_warpengine(&["--enable-debug-command", "yes"]),
        start_warpengine(&[]),
    );
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    ok(&mut p, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    for i in 0..20 {
        ok(&mut p, &["SET", &format!("e{i}"), "v", "PX", "1"]);
        ok(&mut p, &["SET", &format!("k{i}"), "v"]);
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(p.call(&["DBSIZE"]), Resp::Int(40));
    replicaof(&mut r, primary.port);
    caught_up(&mut p, &mut r);
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(40));
    // Reads on the replica still see them as gone; the primary's expiry deletes them there too.
    assert_eq!(r.call(&["GET", "e3"]), Resp::Nil);
    assert_eq!(p.call(&["GET", "e3"]), Resp::Nil);
    caught_up(&mut p, &mut r);
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(39));
}

/// A replica restarted from the RDB file its SHUTDOWN saved continues its primary's stream with
/// a partial resync, from the file's `repl-id` and `repl-offset` (as Redis 7.0's replica does),
/// while writes of every kind flow: the file is saved between two chunks of the stream, so the
/// data the replica restarts with is the stream up to that offset, neither more nor less (the
/// writers' INCRs, APPENDs and pushes would show either).
#[test]
fn a_restarted_replica_continues_its_primary_s_stream_from_its_rdb_file() {
    let primary = start_warpengine(&["--threads", "2", "--repl-backlog-size", "64mb"]);
    let mut p = RawConn::connect(primary.port);
    let dir = TempDir::new("warp-restart-replica");
    let rport = free_port();
    let pport = primary.port.to_string();
    let args = [
        "--threads",
        "2",
        "--dir",
        dir.path(),
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--replicaof",
        "127.0.0.1",
        &pport,
    ];
    let mut replica = try_start_warpengine_on(rport, &args).expect("the replica");
    let mut r = RawConn::connect(rport);
    caught_up(&mut p, &mut r);
    let rounds = under_load(primary.port, || {
        r.send_command(&[b"SHUTDOWN"]);
        assert!(r.read_reply().is_none(), "SHUTDOWN closes the connection");
        wait_for("the replica to exit", || !replica.alive());
        replica = try_start_warpengine_on(rport, &args).expect("the replica again");
    });
    assert!(rounds > 10, "the load ran ({rounds} rounds)");
    let mut r = RawConn::connect(rport);
    caught_up(&mut p, &mut r);
    assert_eq!(
        stat(&mut p, "sync_full"),
        1,
        "the replica's first sync only"
    );
    assert_eq!(stat(&mut p, "sync_partial_ok"), 1);
    // The writers' last 60 ms keys expire, their DELs reach the replica: none expires
    // between the comparison's KEYS and its reads.
    std::thread::sleep(Duration::from_millis(150));
    caught_up(&mut p, &mut r);
    // (TEMPORAL keys have no RDB form: the file cannot carry them.)
    assert_same_but_temporal(&mut r, &mut p);
}

/// A command of the primary's stream that fails on the replica is logged in Redis's words (its
/// replication-4 unit counts these lines) and counted in `unexpected_error_replies`: DEBUG
/// REPLICATE sends a command the replica lacks, and a writable replica's own value makes the
/// primary's INCRBY fail there. With `propagation-error-behavior panic` a read-only replica
/// stops at the next such error instead of running on diverged.
#[test]
fn a_stream_command_failing_on_the_replica_is_logged_and_can_stop_it() {
    let dir = TempDir::new("warp-repl-divergence");
    let rlog = format!("{}/replica.log", dir.path());
    let debug = ["--enable-debug-command", "yes"];
    let primary = start_warpengine(&debug);
    let mut replica = start_warpengine(&[&debug[..], &["--logfile", &rlog]].concat());
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    replicaof(&mut r, primary.port);
    caught_up(&mut p, &mut r);
    ok(&mut p, &["DEBUG", "REPLICATE", "fake-command-1"]);
    ok(&mut p, &["SET", "foo", "bar2"]);
    caught_up(&mut p, &mut r);
    ok(&mut r, &["CONFIG", "SET", "replica-read-only", "no"]);
    ok(&mut r, &["SET", "number2", "foo"]);
    ok(&mut p, &["INCRBY", "number2", "1"]);
    caught_up(&mut p, &mut r);
    assert_eq!(r.call(&["GET", "number2"]), Resp::Bulk(b"foo".to_vec()));
    assert_eq!(r.call(&["GET", "foo"]), Resp::Bulk(b"bar2".to_vec()));
    let text = std::fs::read_to_string(&rlog).unwrap();
    let critical: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("== CRITICAL =="))
        .collect();
    assert_eq!(critical.len(), 2, "{text}");
    assert!(
        critical[0].contains(
            "This replica is sending an error to its master: 'ERR unknown command 'fake-command-1'"
        ),
        "{text}"
    );
    assert!(
        critical[0].contains("after processing the command '<unknown>'"),
        "{text}"
    );
    assert!(
        critical[1].contains(
            "'ERR value is not an integer or out of range' after processing the command 'incrby'"
        ),
        "{text}"
    );
    assert_eq!(stat(&mut r, "unexpected_error_replies"), 2);

    ok(&mut r, &["CONFIG", "SET", "replica-read-only", "yes"]);
    ok(
        &mut r,
        &["CONFIG", "SET", "propagation-error-behavior", "panic"],
    );
    ok(&mut p, &["DEBUG", "REPLICATE", "fake-command-2"]);
    wait_for("the replica to stop", || !replica.alive());
    let text = std::fs::read_to_string(&rlog).unwrap();
    assert!(text.contains("This replica panicked sending an error to its master after processing the command '<unknown>'"), "{text}");
}

/// A primary and its replica (DEBUG allowed on both), the primary's active expiry off (its keys
/// stay past their time until read), and a connection to each.
fn replica_of_a_primary_that_keeps_expired_keys() -> (ServerProcess, ServerProcess, RawConn, RawConn)
{
    let debug = ["--enable-debug-command", "yes"];
    let primary = start_warpengine(&debug);
    let replica = start_warpengine(&debug);
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    replicaof(&mut r, primary.port);
    ok(&mut p, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    (primary, replica, p, r)
}

/// As Redis 7.0's replica: a key past its TTL reads as absent but stays until its primary's
/// DEL (the primary decides when a key goes), and that DEL removes it; a writable replica's own
/// keys with a TTL are expired by the replica itself, since no primary will delete them (Redis's
/// replication-3 unit).
#[test]
fn a_replica_keeps_expired_keys_for_its_primary_and_expires_its_own() {
    let (_primary, _replica, mut p, mut r) = replica_of_a_primary_that_keeps_expired_keys();
    ok(&mut p, &["SET", "key1", "5", "PX", "10"]);
    ok(&mut p, &["SET", "key2", "5", "PX", "10"]);
    caught_up(&mut p, &mut r);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(r.call(&["EXISTS", "key1", "key2"]), Resp::Int(0));
    assert_eq!(r.call(&["GET", "key2"]), Resp::Nil);
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(2));
    ok(&mut r, &["CONFIG", "SET", "replica-read-only", "no"]);
    // A write of the replica's own client replaces the expired key.
    assert_eq!(r.call(&["INCR", "key1"]), Resp::Int(1));
    assert_eq!(r.call(&["TTL", "key1"]), Resp::Int(-1));
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(2));

    ok(&mut r, &["SELECT", "5"]);
    for key in ["own1", "own2", "own3"] {
        ok(&mut r, &["SET", key, "v", "PX", "200"]);
    }
    ok(&mut r, &["SET", "kept", "v"]);
    // Noted as they are written (key1's INCR too), forgotten once they have no TTL.
    assert_eq!(stat(&mut r, "slave_expires_tracked_keys"), 5);
    wait_for("the replica to expire its own keys", || {
        r.call(&["DBSIZE"]) == Resp::Int(1)
    });
    assert_eq!(r.call(&["GET", "kept"]), Resp::Bulk(b"v".to_vec()));
    wait_for("the tracked keys to be forgotten", || {
        stat(&mut r, "slave_expires_tracked_keys") == 0
    });

    // The primary's active expiry sends DELs: the replica's copies go, expired or not.
    ok(&mut r, &["SELECT", "0"]);
    ok(&mut p, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    wait_for("the primary's DELs to empty database 0", || {
        r.call(&["DBSIZE"]) == Resp::Int(0)
    });
}

/// A write of the primary that reaches a replica after the key's time there (the replica was
/// stopped meanwhile) acts on the key as the primary had it: INCR keeps the key and its TTL, so
/// it reads as expired but stays until the primary's DEL (Redis's replication-4 unit; Redis's
/// master client sees every key it sent).
#[test]
fn the_primary_s_writes_see_keys_the_replica_holds_expired() {
    let (_primary, replica, mut p, mut r) = replica_of_a_primary_that_keeps_expired_keys();
    ok(&mut p, &["SET", "k", "1", "PX", "300"]);
    caught_up(&mut p, &mut r);
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &replica.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    signal("-STOP");
    ok(&mut p, &["INCR", "k"]);
    std::thread::sleep(Duration::from_millis(400));
    signal("-CONT");
    caught_up(&mut p, &mut r);
    assert_eq!(r.call(&["EXISTS", "k"]), Resp::Int(0));
    assert!(matches!(r.call(&["DEBUG", "OBJECT", "k"]), Resp::Simple(_)));
    assert_eq!(r.call(&["DBSIZE"]), Resp::Int(1));
}

/// While a script of the replica is busy (past busy-reply-threshold), its primary's commands
/// wait for it to end, as Redis's replica leaves its master's stream unprocessed meanwhile:
/// before, they were refused with -BUSY and the primary's writes lost (Redis's replication
/// unit, "Master stream is correctly processed while the replica has a script in -BUSY
/// state"). Several rounds, each script on a new connection, so that some run on a worker other
/// than the one applying the stream.
#[test]
fn the_primary_s_stream_waits_for_a_busy_script_of_the_replica() {
    let primary = start_warpengine(&["--threads", "2"]);
    let dir = TempDir::new("warp-repl-busy-script");
    let rlog = format!("{}/replica.log", dir.path());
    let replica = start_warpengine(&[
        "--threads",
        "2",
        "--busy-reply-threshold",
        "50",
        "--logfile",
        &rlog,
    ]);
    let (mut p, mut r) = (
        RawConn::connect(primary.port),
        RawConn::connect(replica.port),
    );
    replicaof(&mut r, primary.port);
    caught_up(&mut p, &mut r);
    let busy = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
                while true do local n = redis.call('TIME') \
                if n[1] * 1000000 + n[2] - s > 400000 then return 1 end end";
    for round in 0..4 {
        let port = replica.port;
        let script = std::thread::spawn(move || RawConn::connect(port).call(&["EVAL", busy, "0"]));
        std::thread::sleep(Duration::from_millis(150));
        for i in 0..20 {
            ok(&mut p, &["SET", &format!("k:{round}:{i}"), "v"]);
        }
        assert_eq!(script.join().unwrap(), Resp::Int(1));
        caught_up(&mut p, &mut r);
        assert_eq!(
            r.call(&["DBSIZE"]),
            Resp::Int(20 * (round + 1)),
            "round {round}"
        );
    }
    assert_eq!(stat(&mut r, "unexpected_error_replies"), 0);
    let text = std::fs::read_to_string(&rlog).unwrap();
    assert!(!text.contains("== CRITICAL =="), "{text}");
}

/// Whether INFO server shows a shutdown waiting for replicas.
fn shutdown_waits(c: &mut RawConn) -> bool {
    let Resp::Bulk(info) = c.call(&["INFO", "server"]) else {
        panic!("INFO server")
    };
    String::from_utf8_lossy(&info).contains("shutdown_in_milliseconds:")
}

/// Stops or resumes a process (SIGSTOP, SIGCONT).
fn signal(pid: u32, signal: i32) {
    // SAFETY: a signal to a child process the test started.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// SHUTDOWN waits for a lagging replica before stopping, as Redis 7.0 does
/// (`shutdown-timeout`): the SHUTDOWN client waits (a blocked client), writes are held, INFO
/// shows shutdown_in_milliseconds, and the replica has the last write when the primary is
/// gone. SHUTDOWN ABORT cancels a wait: the waiting SHUTDOWN answers an error and writes go on
/// (Redis's integration/shutdown).
#[test]
fn shutdown_waits_for_a_lagging_replica_and_abort_cancels_the_wait() {
    let mut primary = start_warpengine(&["--threads", "2"]);
    let replica = start_warpengine(&["--threads", "2"]);
    let mut p = RawConn::connect(primary.port);
    let mut r = RawConn::connect(replica.port);
    replicaof(&mut r, primary.port);
    ok(&mut p, &["SET", "k", "1"]);
    caught_up(&mut p, &mut r);
    signal(replica.pid(), libc::SIGSTOP);
    ok(&mut p, &["INCR", "k"]);

    let mut stopper = RawConn::connect(primary.port);
    stopper.send_command(&[b"SHUTDOWN"]);
    wait_for("the shutdown to wait for the replica", || {
        shutdown_waits(&mut p)
    });
    assert_eq!(info_field(&mut p, "clients", "blocked_clients"), "1");
    // (The replica's link is no connected client, as in Redis.)
    assert_eq!(info_field(&mut p, "clients", "connected_clients"), "2");
    let mut writer = RawConn::connect(primary.port);
    writer.send_command(&[b"INCR", b"k"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        p.call(&["GET", "k"]),
        Resp::Bulk(b"2".to_vec()),
        "writes are held"
    );
    assert_eq!(p.call(&["SHUTDOWN", "ABORT"]), Resp::Simple("OK".into()));
    let reply = |c: &mut RawConn| Resp::parse(&c.read_reply().expect("a reply"));
    assert_eq!(
        reply(&mut stopper),
        Resp::Error("ERR Errors trying to SHUTDOWN. Check logs.".into())
    );
    assert_eq!(reply(&mut writer), Resp::Int(3), "the held write ran");
    assert!(!shutdown_waits(&mut p));
    assert_eq!(
        p.call(&["SHUTDOWN", "ABORT"]),
        Resp::Error("ERR No shutdown in progress.".into())
    );

    stopper.send_command(&[b"SHUTDOWN", b"NOSAVE"]);
    wait_for("the shutdown to wait again", || shutdown_waits(&mut p));
    signal(replica.pid(), libc::SIGCONT);
    wait_for("the primary to stop", || !primary.alive());
    assert_eq!(r.call(&["GET", "k"]), Resp::Bulk(b"3".to_vec()));
}
