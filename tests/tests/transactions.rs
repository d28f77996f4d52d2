//! Transactions against the real binary with several workers: MULTI/EXEC is atomic across
//! shards (transfers between accounts on every shard never show a partial state to readers, and
//! the total never changes), WATCH loses no optimistic increment, a watch sees another
//! connection's write on another shard, and the clients' own transaction APIs work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use warpengine_tests::{start_warpengine, RawConn, Resp, SeededRandom};

const ACCOUNTS: usize = 16;
const START: i64 = 1000;

fn account(i: usize) -> String {
    format!("account:{i}")
}

fn exec_ints(reply: Resp) -> Vec<i64> {
    match reply {
        Resp::Array(items) => items.iter().map(Resp::int).collect(),
        other => panic!("EXEC answered {other:?}"),
    }
}

#[test]
fn transfers_across_shards_never_show_a_partial_state() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let mut admin = RawConn::connect(port);
    for i in 0..ACCOUNTS {
        admin.call(&["SET", &account(i), &START.to_string()]);
    }
    let total = START * ACCOUNTS as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads < 50 {
                    c.call(&["MULTI"]);
                    for i in 0..ACCOUNTS {
                        assert_eq!(c.call(&["GET", &account(i)]), Resp::Simple("QUEUED".into()));
                    }
                    let balances = exec_ints(c.call(&["EXEC"]));
                    assert_eq!(balances.iter().sum::<i64>(), total, "{balances:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut rng = SeededRandom(w + 1);
                for _ in 0..300 {
                    let from = account(rng.below(ACCOUNTS as u64) as usize);
                    let to = account(rng.below(ACCOUNTS as u64) as usize);
                    let amount = (1 + rng.below(50)).to_string();
                    // One pipelined write: the transaction arrives in one read.
                    c.send_command(&[b"MULTI"]);
                    c.send_command(&[b"DECRBY", from.as_bytes(), amount.as_bytes()]);
                    c.send_command(&[b"INCRBY", to.as_bytes(), amount.as_bytes()]);
                    c.send_command(&[b"EXEC"]);
                    for _ in 0..3 {
                        c.read_reply().expect("reply");
                    }
                    let exec = Resp::parse(&c.read_reply().expect("EXEC reply"));
                    assert!(
                        matches!(exec, Resp::Array(ref r) if r.len() == 2),
                        "{exec:?}"
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") >= 50);
    }
    let sum: i64 = (0..ACCOUNTS)
        .map(|i| admin.call(&["GET", &account(i)]).int())
        .sum();
    assert_eq!(sum, total);
}

#[test]
fn optimistic_increments_with_watch_lose_no_update() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    RawConn::connect(port).call(&["SET", "counter", "0"]);
    const CLIENTS: usize = 6;
    const EACH: i64 = 60;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut retries = 0;
                for _ in 0..EACH {
                    loop {
                        c.call(&["WATCH", "counter"]);
                        let v = c.call(&["GET", "counter"]).int();
                        c.call(&["MULTI"]);
                        c.call(&["SET", "counter", &(v + 1).to_string()]);
                        match c.call(&["EXEC"]) {
                            Resp::Array(_) => break,
                            Resp::Nil => retries += 1,
                            other => panic!("EXEC answered {other:?}"),
                        }
                    }
                }
                retries
            })
        })
        .collect();
    let retries: i32 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["GET", "counter"]).int(), CLIENTS as i64 * EACH);
    // Six clients racing: some EXECs must have failed, or the watch did nothing.
    assert!(retries > 0, "no EXEC ever failed");
}

#[test]
fn a_watch_sees_writes_from_other_connections_on_any_shard_and_expiry() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut a = RawConn::connect(server.port);
    let mut b = RawConn::connect(server.port);
    for i in 0..16 {
        let key = format!("k{i}");
        a.call(&["SET", &key, "1"]);
        a.call(&["WATCH", &key]);
        // Another connection (whose worker may be any) changes it in place.
        b.call(&["INCR", &key]);
        a.call(&["MULTI"]);
        a.call(&["GET", &key]);
        assert_eq!(a.call(&["EXEC"]), Resp::Nil, "{key}");
        // Unchanged: the transaction runs.
        a.call(&["WATCH", &key]);
        b.call(&["GET", &key]);
        a.call(&["MULTI"]);
        a.call(&["GET", &key]);
        assert_eq!(
            a.call(&["EXEC"]),
            Resp::Array(vec![Resp::Bulk(b"2".to_vec())])
        );
    }
    // Deleted by active expiry (not by a command) while watched.
    a.call(&["SET", "ttl", "1", "PX", "50"]);
    a.call(&["WATCH", "ttl"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.call(&["DBSIZE"]).int() != 16 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        thread::sleep(std::time::Duration::from_millis(20));
    }
    a.call(&["MULTI"]);
    a.call(&["PING"]);
    assert_eq!(a.call(&["EXEC"]), Resp::Nil);
    // A closed connection's watches are forgotten (the server keeps no registrations).
    for _ in 0..50 {
        let mut c = RawConn::connect(server.port);
        c.call(&["WATCH", "k1", "k2", "k3"]);
    }
    a.call(&["WATCH", "k1"]);
    a.call(&["MULTI"]);
    a.call(&["PING"]);
    assert_eq!(
        a.call(&["EXEC"]),
        Resp::Array(vec![Resp::Simple("PONG".into())])
    );
}

#[test]
fn the_redis_crate_runs_an_atomic_pipeline() {
    let server = start_warpengine(&["--threads", "2"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = redis::Client::open(server.url()).expect("client");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let (a, b, n): (String, String, i64) = redis::pipe()
            .atomic()
            .set("pa", "1")
            .ignore()
            .set("pb", "2")
            .ignore()
            .get("pa")
            .get("pb")
            .incr("pn", 5)
            .query_async(&mut con)
            .await
            .expect("atomic pipeline");
        assert_eq!((a.as_str(), b.as_str(), n), ("1", "2", 5));
        // A failed watch: the crate reports it as a nil result.
        redis::cmd("WATCH")
            .arg("pa")
            .query_async::<()>(&mut con)
            .await
            .expect("watch");
        redis::cmd("SET")
            .arg("pa")
            .arg("changed")
            .query_async::<()>(&mut con)
            .await
            .expect("set");
        let r: Option<(String,)> = redis::pipe()
            .atomic()
            .get("pa")
            .query_async(&mut con)
            .await
            .expect("exec");
        assert_eq!(r, None);
    });
}

/// Over maxmemory with `noeviction`, a command queued in MULTI is refused at once (a rejected
/// call) and EXEC aborts, as Redis's; DISCARD still works. An error inside EXEC counts in the
/// command's failed_calls and in errorstats.
#[test]
fn oom_refuses_while_queuing_and_errors_inside_exec_are_counted() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let mut admin = RawConn::connect(server.port);
    assert_eq!(c.call(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(c.call(&["SET", "a", "1"]), Resp::Simple("QUEUED".into()));
    admin.call(&["CONFIG", "SET", "maxmemory", "1"]);
    let refused = c.call(&["LPUSH", "l", "x"]);
    assert!(
        matches!(&refused, Resp::Error(e) if e.starts_with("OOM")),
        "{refused:?}"
    );
    admin.call(&["CONFIG", "SET", "maxmemory", "0"]);
    let aborted = c.call(&["EXEC"]);
    assert!(
        matches!(&aborted, Resp::Error(e) if e.starts_with("EXECABORT")),
        "{aborted:?}"
    );
    assert_eq!(c.call(&["EXISTS", "a"]), Resp::Int(0));

    admin.call(&["CONFIG", "SET", "maxmemory", "1"]);
    let refused = c.call(&["SET", "x", "1"]);
    assert!(
        matches!(&refused, Resp::Error(e) if e.starts_with("OOM")),
        "{refused:?}"
    );
    let stats = warpengine_tests::info_field(&mut admin, "commandstats", "cmdstat_set");
    assert!(stats.contains("rejected_calls=1,failed_calls=0"), "{stats}");
    assert_eq!(c.call(&["MULTI"]), Resp::Simple("OK".into()));
    assert!(matches!(c.call(&["SET", "x", "1"]), Resp::Error(_)));
    assert_eq!(c.call(&["DISCARD"]), Resp::Simple("OK".into()));
    admin.call(&["CONFIG", "SET", "maxmemory", "0"]);

    admin.call(&["CONFIG", "RESETSTAT"]);
    c.call(&["MULTI"]);
    c.call(&["SET", "a", "b"]);
    c.call(&["INCR", "a"]);
    let Resp::Array(replies) = c.call(&["EXEC"]) else {
        panic!("EXEC answers an array")
    };
    assert!(matches!(&replies[1], Resp::Error(e) if e.starts_with("ERR")));
    let incr = warpengine_tests::info_field(&mut admin, "commandstats", "cmdstat_incr");
    assert!(incr.contains("failed_calls=1"), "{incr}");
    let errors = warpengine_tests::info_field(&mut admin, "errorstats", "errorstat_ERR");
    assert_eq!(errors, "count=1");
}

/// Memory is judged once, for EXEC: a transaction that lowers maxmemory runs whole (Redis's
/// unit/maxmemory "propagation with eviction in MULTI"), and the keys go at the next command.
#[test]
fn a_transaction_runs_whole_after_it_lowers_maxmemory() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let ok = Resp::Simple("OK".into());
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        ok
    );
    c.call(&["MULTI"]);
    c.call(&["INCR", "x"]);
    c.call(&["CONFIG", "SET", "maxmemory", "1"]);
    c.call(&["INCR", "x"]);
    assert_eq!(
        c.call(&["EXEC"]),
        Resp::Array(vec![Resp::Int(1), ok.clone(), Resp::Int(2)])
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.call(&["DBSIZE"]) != Resp::Int(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(c.call(&["DBSIZE"]), Resp::Int(0), "evicted after EXEC");
    assert_eq!(c.call(&["CONFIG", "SET", "maxmemory", "0"]), ok);
}

/// EXEC is judged by the commands it runs, as Redis judges it when it comes: a transaction
/// with a write is refused (EXECABORT ... NOREPLICAS) when `min-replicas-to-write` is not met
/// by then; on a replica whose link is down under `replica-serve-stale-data no`, one with a
/// command not flagged `stale` is refused MASTERDOWN. And on a read-only replica a function
/// (or a script with a shebang) that may write does not run at all (Redis's multi and
/// functions units).
#[test]
fn exec_and_scripts_are_refused_as_what_they_run_would_be() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let mut other = RawConn::connect(server.port);
    let ok = Resp::Simple("OK".into());
    let exec_refused = |c: &mut RawConn, why: &str| match c.call(&["EXEC"]) {
        Resp::Error(e) => assert!(e.starts_with("EXECABORT") && e.contains(why), "{e}"),
        other => panic!("{other:?}"),
    };
    assert_eq!(c.call(&["SET", "xx", "1"]), ok);
    c.call(&["MULTI"]);
    c.call(&["INCR", "xx"]);
    assert_eq!(
        other.call(&["CONFIG", "SET", "min-replicas-to-write", "2"]),
        ok
    );
    exec_refused(&mut c, "NOREPLICAS");
    assert_eq!(c.call(&["GET", "xx"]), Resp::Bulk(b"1".to_vec()));
    other.call(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    // Likewise OOM under noeviction for a transaction with a command that may grow memory;
    // one that only reads still runs.
    c.call(&["MULTI"]);
    c.call(&["SET", "x", "1"]);
    c.call(&["GET", "x"]);
    assert_eq!(other.call(&["CONFIG", "SET", "maxmemory", "1"]), ok);
    exec_refused(&mut c, "OOM");
    assert_eq!(other.call(&["CONFIG", "SET", "maxmemory", "0"]), ok);
    c.call(&["MULTI"]);
    c.call(&["GET", "x"]);
    c.call(&["PING"]);
    assert_eq!(other.call(&["CONFIG", "SET", "maxmemory", "1"]), ok);
    assert_eq!(
        c.call(&["EXEC"]),
        Resp::Array(vec![Resp::Nil, Resp::Simple("PONG".into())])
    );
    assert_eq!(other.call(&["CONFIG", "SET", "maxmemory", "0"]), ok);
    // A read-only transaction still runs.
    c.call(&["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    for queued in ["GET", "PING"] {
        c.call(&["MULTI"]);
        if queued == "GET" {
            c.call(&["GET", "xx"]);
        } else {
            c.call(&["PING"]);
        }
        assert_eq!(other.call(&["REPLICAOF", "localhsot", "0"]), ok);
        exec_refused(&mut c, "MASTERDOWN");
        assert_eq!(other.call(&["REPLICAOF", "NO", "ONE"]), ok);
    }
    c.call(&["CONFIG", "SET", "replica-serve-stale-data", "yes"]);
    let code = "#!lua name=rw\n\
                redis.register_function('w', function() return redis.call('set', 'a', 1) end)\n\
                redis.register_function{function_name='r', callback=function() return 1 end, flags={'no-writes'}}";
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", code]),
        Resp::Bulk(b"rw".to_vec())
    );
    assert_eq!(other.call(&["REPLICAOF", "127.0.0.1", "1"]), ok);
    let readonly = Resp::Error("READONLY You can't write against a read only replica.".into());
    assert_eq!(c.call(&["FCALL", "w", "0"]), readonly);
    assert_eq!(c.call(&["FCALL", "r", "0"]), Resp::Int(1));
    assert_eq!(c.call(&["EVAL", "#!lua\nreturn 1", "0"]), readonly);
    assert_eq!(
        c.call(&["EVAL", "#!lua flags=no-writes\nreturn 1", "0"]),
        Resp::Int(1)
    );
    assert_eq!(c.call(&["EVAL", "return 1", "0"]), Resp::Int(1));
    other.call(&["REPLICAOF", "NO", "ONE"]);
}

/// BGREWRITEAOF inside EXEC answers that the rewrite is scheduled, as Redis (which cannot fork
/// there) answers; the rewrite then runs.
#[test]
fn bgrewriteaof_in_a_transaction_is_scheduled() {
    let dir = warpengine_tests::TempDir::new("tx-bgrewriteaof");
    let server = start_warpengine(&["--dir", dir.path(), "--appendonly", "yes"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["MULTI"]);
    c.call(&["SET", "foo", "bar"]);
    c.call(&["BGREWRITEAOF"]);
    assert_eq!(
        c.call(&["EXEC"]),
        Resp::Array(vec![
            Resp::Simple("OK".into()),
            Resp::Simple("Background append only file rewriting scheduled".into()),
        ])
    );
    warpengine_tests::wait_for("the rewrite to end", || {
        warpengine_tests::info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
    });
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
}
