//! Lua scripts against the real binary with several workers, shaped like the scripts real
//! libraries run: redis-py's `Lock` (acquire, extend, release), a token-bucket rate limiter, a
//! job queue's move-to-active that touches a lock key it did not declare, on another shard, and
//! a delayed-job push to a sorted set and a list on different shards. Each runs concurrently
//! from several clients and its invariants are checked; transfers by script never show a
//! partial state to readers, and after kill -9 every acknowledged script's writes are there,
//! whole.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;

use warpengine_tests::{
    free_port, redis_cli, start_warpengine, try_start_warpengine_on, RawConn, Resp, SeededRandom,
    TempDir,
};

/// redis-py's Lock scripts (redis/lock.py), unchanged.
const LOCK_RELEASE: &str = r#"
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
redis.call('del', KEYS[1])
return 1
"#;

const LOCK_EXTEND: &str = r#"
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
local expiration = redis.call('pttl', KEYS[1])
if not expiration then
    expiration = 0
end
if expiration < 0 then
    return 0
end
local newttl = ARGV[2]
if ARGV[3] == "0" then
    newttl = ARGV[2] + expiration
end
redis.call('pexpire', KEYS[1], newttl)
return 1
"#;

fn eval(c: &mut RawConn, script: &str, keys: &[&str], args: &[&str]) -> Resp {
    let numkeys = keys.len().to_string();
    let mut argv = vec!["EVAL", script, &numkeys];
    argv.extend_from_slice(keys);
    argv.extend_from_slice(args);
    c.call(&argv)
}

fn evalsha(c: &mut RawConn, sha: &str, keys: &[&str], args: &[&str]) -> Resp {
    let numkeys = keys.len().to_string();
    let mut argv = vec!["EVALSHA", sha, &numkeys];
    argv.extend_from_slice(keys);
    argv.extend_from_slice(args);
    c.call(&argv)
}

fn load(c: &mut RawConn, script: &str) -> String {
    match c.call(&["SCRIPT", "LOAD", script]) {
        Resp::Bulk(sha) => String::from_utf8(sha).expect("hex"),
        other => panic!("SCRIPT LOAD answered {other:?}"),
    }
}

#[test]
fn redis_py_lock_scripts_keep_one_holder_at_a_time() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let holders = Arc::new(AtomicI64::new(0));
    let acquired = Arc::new(AtomicI64::new(0));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let holders = holders.clone();
            let acquired = acquired.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let release = load(&mut c, LOCK_RELEASE);
                let extend = load(&mut c, LOCK_EXTEND);
                let token = format!("token-{w}");
                let mut got = 0;
                while got < 40 {
                    // Acquire as redis-py does: SET NX PX.
                    let r = c.call(&["SET", "resource-lock", &token, "NX", "PX", "10000"]);
                    if r != Resp::Simple("OK".into()) {
                        continue;
                    }
                    assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    assert_eq!(
                        evalsha(&mut c, &extend, &["resource-lock"], &[&token, "5000", "0"]),
                        Resp::Int(1)
                    );
                    // Another worker's token never releases or extends this lock.
                    assert_eq!(
                        evalsha(&mut c, &release, &["resource-lock"], &["not-mine"]),
                        Resp::Int(0)
                    );
                    holders.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(
                        evalsha(&mut c, &release, &["resource-lock"], &[&token]),
                        Resp::Int(1)
                    );
                    got += 1;
                    acquired.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("lock worker");
    }
    assert_eq!(acquired.load(Ordering::Relaxed), 240);
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["EXISTS", "resource-lock"]), Resp::Int(0));
}

/// A token bucket as rate-limiting libraries write it: refill by elapsed time, then take.
const TOKEN_BUCKET: &str = r#"
local tokens_key, stamp_key = KEYS[1], KEYS[2]
local rate, capacity, now, requested = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens = tonumber(redis.call('get', tokens_key)) or capacity
local last = tonumber(redis.call('get', stamp_key)) or now
local filled = math.min(capacity, tokens + math.max(0, now - last) * rate)
local allowed = filled >= requested
if allowed then
    filled = filled - requested
end
redis.call('set', tokens_key, filled)
redis.call('set', stamp_key, now)
if allowed then
    redis.call('incr', 'bucket:granted')
end
return allowed and 1 or 0
"#;

#[test]
fn a_token_bucket_never_grants_more_than_its_capacity() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    let sha = load(&mut c, TOKEN_BUCKET);
    // The clock never moves: no refill, so exactly `capacity` requests may pass.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let sha = sha.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut granted = 0;
                for _ in 0..100 {
                    let r = evalsha(
                        &mut c,
                        &sha,
                        &["bucket:tokens", "bucket:stamp"],
                        &["1", "150", "1000", "1"],
                    );
                    granted += r.int();
                }
                granted
            })
        })
        .collect();
    let granted: i64 = clients.into_iter().map(|t| t.join().expect("client")).sum();
    assert_eq!(granted, 150);
    assert_eq!(c.call(&["GET", "bucket:granted"]).int(), 150);
    assert_eq!(c.call(&["GET", "bucket:tokens"]).int(), 0);
}

/// A job queue's move-to-active, shaped like BullMQ's: pops a job id from the wait list, pushes
/// it on the active list, and takes the job's lock, a key built from the id that the script
/// never declared (it lives on whatever shard its name hashes to).
const MOVE_TO_ACTIVE: &str = r#"
local id = redis.call('rpoplpush', KEYS[1], KEYS[2])
if not id then
    return false
end
local lock = 'queue:job:' .. id .. ':lock'
if redis.call('set', lock, ARGV[1], 'NX', 'PX', 30000) == false then
    return redis.error_reply('job already locked ' .. id)
end
redis.call('hset', 'queue:job:' .. id, 'processedBy', ARGV[1], 'state', 'active')
redis.call('incr', 'queue:moved')
return id
"#;

#[test]
fn a_job_queue_moves_each_job_once_while_taking_undeclared_locks() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    const JOBS: usize = 600;
    for i in 0..JOBS {
        c.call(&["LPUSH", "queue:wait", &i.to_string()]);
    }
    let sha = load(&mut c, MOVE_TO_ACTIVE);
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let sha = sha.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let me = format!("worker-{w}");
                let mut taken = Vec::new();
                loop {
                    match evalsha(&mut c, &sha, &["queue:wait", "queue:active"], &[&me]) {
                        Resp::Bulk(id) => taken.push(String::from_utf8(id).expect("id")),
                        Resp::Nil => break,
                        other => panic!("move-to-active answered {other:?}"),
                    }
                }
                taken
            })
        })
        .collect();
    let mut all: Vec<usize> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .map(|id| id.parse().expect("number"))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..JOBS).collect::<Vec<_>>(), "each job exactly once");
    assert_eq!(c.call(&["LLEN", "queue:active"]).int(), JOBS as i64);
    assert_eq!(c.call(&["GET", "queue:moved"]).int(), JOBS as i64);
    let mut rng = SeededRandom(7);
    for _ in 0..50 {
        let id = rng.below(JOBS as u64).to_string();
        let lock = format!("queue:job:{id}:lock");
        assert!(matches!(c.call(&["GET", &lock]), Resp::Bulk(_)), "{lock}");
        let job = format!("queue:job:{id}");
        assert_eq!(
            c.call(&["HGET", &job, "state"]),
            Resp::Bulk(b"active".to_vec())
        );
    }
}

/// A delayed job: its id goes to the delayed sorted set and its data to a list, two keys
/// whose names put them on different shards.
const DELAYED_PUSH: &str = r#"
local id = redis.call('incr', KEYS[3])
redis.call('zadd', KEYS[1], ARGV[1] + id, id)
redis.call('rpush', KEYS[2], ARGV[2] .. ':' .. id)
return id
"#;

const SNAPSHOT_COUNTS: &str = r#"
return {redis.call('zcard', KEYS[1]), redis.call('llen', KEYS[2]), tonumber(redis.call('get', KEYS[3]) or '0')}
"#;

#[test]
fn a_delayed_push_to_two_shards_is_seen_whole() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let keys = ["delayed:{a}", "delayed-data:{b}", "delayed:id"];
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads < 20 {
                    let counts = match eval(&mut c, SNAPSHOT_COUNTS, &keys, &[]) {
                        Resp::Array(items) => items.iter().map(Resp::int).collect::<Vec<_>>(),
                        other => panic!("{other:?}"),
                    };
                    assert!(
                        counts[0] == counts[1] && counts[1] == counts[2],
                        "partial push seen: {counts:?}"
                    );
                    reads += 1;
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                for _ in 0..200 {
                    let r = eval(&mut c, DELAYED_PUSH, &keys, &["1000", &format!("w{w}")]);
                    assert!(matches!(r, Resp::Int(_)), "{r:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["ZCARD", keys[0]]).int(), 800);
    assert_eq!(c.call(&["LLEN", keys[1]]).int(), 800);
}

const TRANSFER: &str = r#"
local amount = tonumber(ARGV[1])
redis.call('decrby', KEYS[1], amount)
redis.call('incrby', KEYS[2], amount)
return redis.status_reply('OK')
"#;

#[test]
fn script_transfers_never_show_a_partial_state_and_mix_with_transactions() {
    let server = start_warpengine(&["--threads", "4"]);
    let port = server.port;
    let mut admin = RawConn::connect(port);
    const ACCOUNTS: usize = 12;
    for i in 0..ACCOUNTS {
        admin.call(&["SET", &format!("acct:{i}"), "1000"]);
    }
    let total = 1000 * ACCOUNTS as i64;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut rng = SeededRandom(w + 11);
                for n in 0..200 {
                    let from = format!("acct:{}", rng.below(ACCOUNTS as u64));
                    let to = format!("acct:{}", rng.below(ACCOUNTS as u64));
                    let amount = (1 + rng.below(20)).to_string();
                    if n % 4 == 0 {
                        // A script inside MULTI, with a plain command around it.
                        c.call(&["MULTI"]);
                        eval(&mut c, TRANSFER, &[&from, &to], &[&amount]);
                        c.call(&["INCR", "transfers"]);
                        let exec = c.call(&["EXEC"]);
                        assert!(
                            matches!(exec, Resp::Array(ref r) if r.len() == 2),
                            "{exec:?}"
                        );
                    } else {
                        assert_eq!(
                            eval(&mut c, TRANSFER, &[&from, &to], &[&amount]),
                            Resp::Simple("OK".into())
                        );
                        c.call(&["INCR", "transfers"]);
                    }
                }
            })
        })
        .collect();
    let sum_script = format!(
        "local s = 0 for i = 0, {} do s = s + tonumber(redis.call('get', 'acct:' .. i)) end return s",
        ACCOUNTS - 1
    );
    let mut reader = RawConn::connect(port);
    for _ in 0..200 {
        assert_eq!(eval(&mut reader, &sum_script, &[], &[]).int(), total);
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(eval(&mut reader, &sum_script, &[], &[]).int(), total);
    assert_eq!(admin.call(&["GET", "transfers"]).int(), 800);
}

#[test]
fn every_acknowledged_script_survives_kill_9_whole() {
    let dir = TempDir::new("scripting-kill");
    let port = free_port();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--threads",
        "4",
        "--dir",
        dir.path(),
    ];
    let mut server = try_start_warpengine_on(port, &args).expect("start");
    // Four counters whose names spread over the shards; each script adds one to all of them
    // and appends its number to a list.
    let keys = ["c:alpha", "c:beta", "c:gamma", "c:delta", "c:done"];
    let script = "for i = 1, 4 do redis.call('incr', KEYS[i]) end \
                  redis.call('rpush', KEYS[5], ARGV[1]) return 1";
    let acked = Arc::new(AtomicI64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let acked = acked.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port);
                for n in 0.. {
                    let tag = format!("{w}:{n}");
                    let numkeys = keys.len().to_string();
                    let mut argv: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
                    argv.extend(keys.iter().map(|k| k.as_bytes()));
                    argv.push(tag.as_bytes());
                    c.send_command(&argv);
                    match c.read_reply_opt() {
                        Some(reply) if Resp::parse(&reply) == Resp::Int(1) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "scripts are not acknowledged"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill9();
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.load(Ordering::SeqCst);
    let _server = try_start_warpengine_on(port, &args).expect("restart");
    let mut c = RawConn::connect(port);
    let done = c.call(&["LLEN", "c:done"]).int();
    assert!(
        done >= acked,
        "{done} scripts recovered, {acked} acknowledged"
    );
    for key in &keys[..4] {
        let value = match c.call(&["GET", key]) {
            Resp::Bulk(v) => String::from_utf8(v)
                .expect("utf-8")
                .parse::<i64>()
                .expect("int"),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(value, done, "{key} is not whole with the scripts' list");
    }
}

#[test]
fn the_redis_crate_runs_scripts_by_sha_and_reloads_them() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = redis::Client::open(server.url())
        .expect("client")
        .get_connection()
        .expect("connection");
    let script = redis::Script::new(
        "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', KEYS[2], ARGV[1]) \
         return redis.call('mget', KEYS[1], KEYS[2])",
    );
    let got: Vec<String> = script
        .key("rs:a")
        .key("rs:b")
        .arg("v1")
        .invoke(&mut c)
        .expect("invoke");
    assert_eq!(got, vec!["v1", "v1"]);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut c)
        .expect("flush");
    // After the flush EVALSHA answers NOSCRIPT and the crate loads the script again.
    let got: Vec<String> = script
        .key("rs:a")
        .key("rs:b")
        .arg("v2")
        .invoke(&mut c)
        .expect("invoke after flush");
    assert_eq!(got, vec!["v2", "v2"]);
    let err = redis::cmd("EVAL")
        .arg("return redis.call('nosuch')")
        .arg(0)
        .query::<()>(&mut c)
        .expect_err("unknown command in a script");
    assert!(
        err.to_string()
            .contains("Unknown Redis command called from script"),
        "{err}"
    );
}

#[test]
fn redis_cli_runs_a_script_file_with_keys_and_arguments() {
    let server = start_warpengine(&["--threads", "2"]);
    let dir = TempDir::new("scripting-cli");
    let file = format!("{}/incr-both.lua", dir.path());
    std::fs::write(
        &file,
        "redis.call('incrby', KEYS[1], ARGV[1])\nreturn redis.call('incrby', KEYS[2], ARGV[1])\n",
    )
    .expect("script file");
    let cli = |args: &[&str]| redis_cli(server.port, args);
    // (Not a terminal: redis-cli prints bare values.)
    assert_eq!(cli(&["--eval", &file, "cli:a", "cli:b", ",", "3"]), "3\n");
    assert_eq!(cli(&["--eval", &file, "cli:a", "cli:b", ",", "3"]), "6\n");
    assert_eq!(cli(&["GET", "cli:a"]), "6\n");
    assert_eq!(cli(&["EVAL", "return {1,'two',{3}}", "0"]), "1\ntwo\n3\n");
}

const LIBRARY: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

#[test]
fn function_libraries_survive_restarts_through_the_log_and_snapshots() {
    let dir = TempDir::new("functions-persist");
    let port = free_port();
    let args = ["--appendonly", "yes", "--threads", "2", "--dir", dir.path()];
    let mut server = try_start_warpengine_on(port, &args).expect("start");
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", LIBRARY]),
        Resp::Bulk(b"counters".to_vec())
    );
    assert_eq!(c.call(&["FCALL", "bump", "1", "n", "5"]), Resp::Int(5));
    server.kill9();
    // Replayed from the log: the library, then the call's effect (not the call).
    let mut server = try_start_warpengine_on(port, &args).expect("restart");
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["FCALL_RO", "peek", "1", "n"]),
        Resp::Bulk(b"5".to_vec())
    );
    assert_eq!(c.call(&["FCALL", "bump", "1", "n", "2"]), Resp::Int(7));
    // From a snapshot: SAVE compacts the log, the library is kept with the data.
    assert_eq!(c.call(&["SAVE"]), Resp::Simple("OK".into()));
    server.kill9();
    let mut server = try_start_warpengine_on(port, &args).expect("restart after SAVE");
    let mut c = RawConn::connect(port);
    assert_eq!(c.call(&["FCALL", "bump", "1", "n", "1"]), Resp::Int(8));
    // A deleted library stays deleted.
    assert_eq!(
        c.call(&["FUNCTION", "DELETE", "counters"]),
        Resp::Simple("OK".into())
    );
    server.kill9();
    let _server = try_start_warpengine_on(port, &args).expect("restart after DELETE");
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["FCALL", "bump", "1", "n", "1"]),
        Resp::Error("ERR Function not found".into())
    );
    assert_eq!(c.call(&["GET", "n"]), Resp::Bulk(b"8".to_vec()));
}

#[test]
fn function_dump_payloads_restore_both_ways_with_redis() {
    if !warpengine_tests::redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let warp = start_warpengine(&["--threads", "2"]);
    let redis = warpengine_tests::start_redis(&[]);
    let mut w = RawConn::connect(warp.port);
    let mut r = RawConn::connect(redis.port);
    // Redis's payload (its strings LZF-compressed) restores here.
    assert_eq!(
        r.call(&["FUNCTION", "LOAD", LIBRARY]),
        Resp::Bulk(b"counters".to_vec())
    );
    let Resp::Bulk(from_redis) = r.call(&["FUNCTION", "DUMP"]) else {
        panic!("DUMP")
    };
    let restore = |c: &mut RawConn, payload: &[u8], policy: &[u8]| {
        let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", payload];
        if !policy.is_empty() {
            args.push(policy);
        }
        Resp::parse(&c.command(&args))
    };
    assert_eq!(restore(&mut w, &from_redis, b""), Resp::Simple("OK".into()));
    assert_eq!(w.call(&["FCALL", "bump", "1", "x", "3"]), Resp::Int(3));
    assert_eq!(
        restore(&mut w, &from_redis, b"APPEND"),
        Resp::Error("ERR Library counters already exists".into())
    );
    assert_eq!(
        restore(&mut w, &from_redis, b"REPLACE"),
        Resp::Simple("OK".into())
    );
    // Ours restores in Redis.
    let Resp::Bulk(from_warp) = w.call(&["FUNCTION", "DUMP"]) else {
        panic!("DUMP")
    };
    assert_eq!(
        restore(&mut r, &from_warp, b"FLUSH"),
        Resp::Simple("OK".into())
    );
    assert_eq!(r.call(&["FCALL", "bump", "1", "x", "4"]), Resp::Int(4));
    // A damaged payload is refused, and nothing changes.
    let mut damaged = from_warp.clone();
    damaged[3] ^= 0x20;
    assert_eq!(
        restore(&mut w, &damaged, b"FLUSH"),
        Resp::Error("ERR DUMP payload version or checksum are wrong".into())
    );
    assert_eq!(
        w.call(&["FCALL_RO", "peek", "1", "x"]),
        Resp::Bulk(b"3".to_vec())
    );
}

/// A script that writes its declared key and then reaches a key it did not declare (some of
/// the other keys are bound to live on other shards) starts again with every shard locked:
/// its first try's writes are undone, so each key is written once per call, also when the
/// script catches the failed call with pcall.
#[test]
fn a_script_reaching_beyond_its_declared_shards_writes_once() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    let others: Vec<String> = (0..12).map(|i| format!("{{tag{i}}}other")).collect();
    let script = "redis.call('incr', KEYS[1]) \
                  for i = 1, #ARGV do pcall(redis.call, 'incr', ARGV[i]) end \
                  return redis.call('get', KEYS[1])";
    let other_refs: Vec<&str> = others.iter().map(String::as_str).collect();
    for round in 1..=3 {
        assert_eq!(
            eval(&mut c, script, &["{home}declared"], &other_refs),
            Resp::Bulk(round.to_string().into_bytes())
        );
        for key in &others {
            assert_eq!(c.call(&["GET", key]).int(), round, "{key}");
        }
    }
    // The first call started again once; the later ones ran with every shard from the start.
    let reruns = |c: &mut RawConn| {
        warpengine_tests::info_field(c, "stats", "script_reruns")
            .parse::<u64>()
            .expect("script_reruns")
    };
    assert_eq!(reruns(&mut c), 1);
    // A server command that needs every shard (KEYS) starts the script again too.
    let keys_script = "redis.call('set', KEYS[1], 'x') return #redis.call('keys', '*')";
    let counted = eval(&mut c, keys_script, &["{home}set-by-keys"], &[]).int();
    assert_eq!(counted, c.call(&["DBSIZE"]).int());
    // Pipelined after a script its shard's worker sends back, a read of its key still sees
    // the script's write (the rest of that shard's batch runs after the script, in order).
    for round in 4..=6 {
        // A new script each round: not yet known to need every shard, so it goes to its
        // shard's worker first.
        let sha = load(&mut c, &format!("{script} -- round {round}"));
        let mut argv: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), b"1", b"{home}declared"];
        argv.extend(other_refs.iter().map(|k| k.as_bytes()));
        c.send_command(&argv);
        c.send_command(&[b"GET", b"{home}declared"]);
        c.send_command(&[b"INCR", b"{home}declared"]);
        let want = round * 2 - 4;
        assert_eq!(
            Resp::parse(&c.read_reply().expect("EVALSHA")),
            Resp::Bulk(want.to_string().into_bytes())
        );
        assert_eq!(
            Resp::parse(&c.read_reply().expect("GET")),
            Resp::Bulk(want.to_string().into_bytes())
        );
        assert_eq!(
            Resp::parse(&c.read_reply().expect("INCR")),
            Resp::Int(want + 1)
        );
    }
    // A script whose keys are all declared keeps running on its own shard.
    let declared = "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[1])";
    assert_eq!(
        eval(&mut c, declared, &["{home}counter"], &[]),
        Resp::Int(2)
    );
    assert_eq!(
        eval(&mut c, declared, &["{home}counter"], &[]),
        Resp::Int(4)
    );
    assert_eq!(
        reruns(&mut c),
        5,
        "a script within its shards never starts again"
    );
    // A server command (TIME) needs the connection: the script is sent back once, then runs
    // on the connection's worker, still with only its own shard locked.
    let timed = load(
        &mut c,
        "redis.call('set', KEYS[1], redis.call('time')[1]) return 1",
    );
    for _ in 0..3 {
        assert_eq!(evalsha(&mut c, &timed, &["{home}stamp"], &[]), Resp::Int(1));
    }
    assert_eq!(reruns(&mut c), 6);
}

const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// A new connection while a script is busy: its PING answers -BUSY (whichever worker it is
/// on: the busy script's hook serves that worker's clients).
fn busy_conn(port: u16) -> RawConn {
    let mut c = RawConn::connect(port);
    c.set_read_timeout(std::time::Duration::from_secs(10));
    assert_eq!(
        c.call(&["PING"]),
        Resp::Error(BUSY.into()),
        "PING while busy"
    );
    c
}

/// With one worker every client shares the busy script's thread: they are still answered
/// while it runs, as Redis answers them (-BUSY, or the few commands it allows then), new
/// clients included; a transaction touched meanwhile is discarded; a client whose request
/// needs the shards the script holds (one that watches keys) is answered after the script.
#[test]
fn clients_of_the_busy_scripts_worker_are_served_while_it_runs() {
    let server = start_warpengine(&["--threads", "1", "--busy-reply-threshold", "50"]);
    let port = server.port;
    let mut before = RawConn::connect(port);
    before.set_read_timeout(std::time::Duration::from_secs(10));
    assert_eq!(before.call(&["SET", "xx", "1"]), Resp::Simple("OK".into()));
    let mut in_multi = RawConn::connect(port);
    in_multi.set_read_timeout(std::time::Duration::from_secs(10));
    assert_eq!(in_multi.call(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(
        in_multi.call(&["INCR", "xx"]),
        Resp::Simple("QUEUED".into())
    );
    let mut watcher = RawConn::connect(port);
    assert_eq!(watcher.call(&["WATCH", "xx"]), Resp::Simple("OK".into()));
    let runner = thread::spawn(move || {
        let mut c = RawConn::connect(port);
        c.set_read_timeout(std::time::Duration::from_secs(30));
        let reply = eval(&mut c, "while true do end", &[], &[]);
        (reply, c.call(&["PING"]))
    });
    // Past the threshold: a client connected before, and a new one, are refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match before.call(&["PING"]) {
            Resp::Error(e) if e == BUSY => break,
            Resp::Simple(p) if p == "PONG" => {}
            other => panic!("{other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never busy");
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut new = busy_conn(port);
    // The watcher's request waits for the script: sent now, read after.
    watcher.send_command(&[b"PING"]);
    // A pipeline: what a busy server allows runs (HELLO, with its effect on the connection),
    // the rest is refused, in order.
    new.send_command(&[b"HELLO", b"2", b"SETNAME", b"served"]);
    new.send_command(&[b"GET", b"xx"]);
    let hello = Resp::parse(&new.read_reply().expect("HELLO"));
    assert_eq!(hello.field("proto"), Resp::Int(2), "HELLO while busy");
    assert_eq!(
        Resp::parse(&new.read_reply().expect("GET")),
        Resp::Error(BUSY.into())
    );
    // A command queued in MULTI meanwhile fails the transaction; EXEC says why.
    assert_eq!(in_multi.call(&["INCR", "xx"]), Resp::Error(BUSY.into()));
    match in_multi.call(&["EXEC"]) {
        Resp::Error(e) => assert!(
            e.starts_with("EXECABORT Transaction discarded because of: BUSY"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    // FUNCTION KILL does not stop a script.
    assert_eq!(before.call(&["FUNCTION", "KILL"]), Resp::Error(BUSY.into()));
    assert_eq!(new.call(&["SCRIPT", "KILL"]), Resp::Simple("OK".into()));
    let (reply, after) = runner.join().expect("runner");
    match reply {
        Resp::Error(e) => assert!(e.starts_with("ERR Script killed by user"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(after, Resp::Simple("PONG".into()));
    assert_eq!(
        Resp::parse(&watcher.read_reply().expect("the watcher's PING")),
        Resp::Simple("PONG".into())
    );
    assert_eq!(before.call(&["GET", "xx"]), Resp::Bulk(b"1".to_vec()));
    assert_eq!(in_multi.call(&["PING"]), Resp::Simple("PONG".into()));
    // The name HELLO set while the script ran stayed with the connection.
    match new.call(&["CLIENT", "GETNAME"]) {
        Resp::Bulk(name) => assert_eq!(name, b"served"),
        other => panic!("{other:?}"),
    }
}

/// FUNCTION STATS names the busy function's whole command, as Redis does.
#[test]
fn function_stats_shows_the_busy_functions_command() {
    let server = start_warpengine(&["--threads", "1", "--busy-reply-threshold", "50"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    let code = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", code]),
        Resp::Bulk(b"spin".to_vec())
    );
    let runner = thread::spawn(move || {
        let mut c = RawConn::connect(port);
        c.set_read_timeout(std::time::Duration::from_secs(30));
        c.call(&["FCALL", "spin", "1", "k", "arg"])
    });
    c.set_read_timeout(std::time::Duration::from_secs(10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.call(&["PING"]) == Resp::Simple("PONG".into()) {
        assert!(std::time::Instant::now() < deadline, "never busy");
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let running = c.call(&["FUNCTION", "STATS"]).field("running_script");
    assert_eq!(running.field("name"), Resp::Bulk(b"spin".to_vec()));
    let command: Vec<Resp> = ["FCALL", "spin", "1", "k", "arg"]
        .iter()
        .map(|a| Resp::Bulk(a.as_bytes().to_vec()))
        .collect();
    assert_eq!(running.field("command"), Resp::Array(command));
    assert_eq!(c.call(&["FUNCTION", "KILL"]), Resp::Simple("OK".into()));
    match runner.join().expect("runner") {
        Resp::Error(e) => assert!(e.contains("killed by user"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_busy_script_is_killed_unless_it_wrote() {
    let server = start_warpengine(&["--threads", "4", "--busy-reply-threshold", "100"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    assert_eq!(
        c.call(&["SCRIPT", "KILL"]),
        Resp::Error("NOTBUSY No scripts in execution right now.".into())
    );
    // A script that only reads, forever (pcall cannot keep it alive after the kill).
    let runner = thread::spawn(move || {
        let mut c = RawConn::connect(port);
        eval(
            &mut c,
            "while true do pcall(redis.call, 'get', 'x') end",
            &[],
            &[],
        )
    });
    thread::sleep(std::time::Duration::from_millis(300));
    let mut other = busy_conn(port);
    assert_eq!(
        other.call(&["FUNCTION", "KILL"]),
        Resp::Error(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                .into()
        )
    );
    assert_eq!(other.call(&["SCRIPT", "KILL"]), Resp::Simple("OK".into()));
    match runner.join().expect("runner") {
        Resp::Error(e) => assert!(
            e.starts_with("ERR Script killed by user with SCRIPT KILL... script:"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(other.call(&["PING"]), Resp::Simple("PONG".into()));
    // A script that wrote cannot be killed: it runs to its end.
    let runner = thread::spawn(move || {
        let mut c = RawConn::connect(port);
        eval(
            &mut c,
            "redis.call('set', KEYS[1], 'v') local t = redis.call('time')[1] + 1 \
             while tonumber(redis.call('time')[1]) <= t do end return 'done'",
            &["written"],
            &[],
        )
    });
    thread::sleep(std::time::Duration::from_millis(300));
    let mut other = busy_conn(port);
    match other.call(&["SCRIPT", "KILL"]) {
        Resp::Error(e) => assert!(e.starts_with("UNKILLABLE"), "{e}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(runner.join().expect("runner"), Resp::Bulk(b"done".to_vec()));
    assert_eq!(c.call(&["GET", "written"]), Resp::Bulk(b"v".to_vec()));
}

/// A script cannot take the server's memory: one string.rep past 512 MB fails at once, and a
/// script that keeps allocating fails past the interpreter's bound; the server goes on.
#[test]
fn a_script_memory_is_bounded() {
    let server = start_warpengine(&["--threads", "1"]);
    let mut c = RawConn::connect(server.port);
    match eval(&mut c, "return #string.rep('x', 2^30)", &[], &[]) {
        Resp::Error(e) => assert!(e.contains("resulting string too large"), "{e}"),
        other => panic!("{other:?}"),
    }
    let hog = "local t = {} local s = string.rep('x', 2^20) \
               for i = 1, 4000 do t[i] = s .. i end return #t";
    // A gigabyte of 1 MB strings built before the limit stops it: seconds in a debug build,
    // more on a busy machine.
    c.set_read_timeout(std::time::Duration::from_secs(60));
    match eval(&mut c, hog, &[], &[]) {
        Resp::Error(e) => assert!(e.contains("exceeded the memory limit"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(eval(&mut c, "return 1", &[], &[]), Resp::Int(1));
    assert_eq!(c.call(&["PING"]), Resp::Simple("PONG".into()));
}

/// SHUTDOWN NOSAVE stops a busy script and the server, from a client on another worker and
/// from one on the script's own worker (served by the script's hook, as Redis's unit/scripting
/// "SHUTDOWN NOSAVE can kill a timedout script anyway").
#[test]
fn shutdown_nosave_stops_a_busy_script() {
    for threads in ["4", "1"] {
        shutdown_nosave_stops_a_busy_script_with(threads);
    }
}

fn shutdown_nosave_stops_a_busy_script_with(threads: &str) {
    let mut server = start_warpengine(&["--threads", threads, "--busy-reply-threshold", "100"]);
    let port = server.port;
    let runner = thread::spawn(move || {
        let mut c = RawConn::connect(port);
        c.send_command(&[
            b"EVAL",
            b"redis.call('set', 'k', 'v') while true do end",
            b"0",
        ]);
        c.read_reply_opt()
    });
    thread::sleep(std::time::Duration::from_millis(300));
    let mut other = busy_conn(port);
    // Saving needs the shards the script holds: refused while it runs.
    assert_eq!(
        other.call(&["SHUTDOWN"]),
        Resp::Error(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                .into()
        )
    );
    other.send_command(&[b"SHUTDOWN", b"NOSAVE"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SHUTDOWN NOSAVE"
        );
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = runner.join();
}

#[test]
fn monitor_shows_a_script_and_its_commands_as_redis_does() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut monitor = RawConn::connect(server.port);
    assert_eq!(monitor.call(&["MONITOR"]), Resp::Simple("OK".into()));
    let mut c = RawConn::connect(server.port);
    eval(
        &mut c,
        "redis.call('set', KEYS[1], 'v') return redis.call('get', KEYS[1])",
        &["mk"],
        &[],
    );
    let mut lines = Vec::new();
    for _ in 0..3 {
        match Resp::parse(&monitor.read_reply().expect("monitor line")) {
            Resp::Simple(line) => lines.push(line),
            other => panic!("{other:?}"),
        }
    }
    assert!(lines[0].contains("\"EVAL\""), "{lines:?}");
    assert!(
        lines[1].ends_with("[0 lua] \"set\" \"mk\" \"v\""),
        "{lines:?}"
    );
    assert!(lines[2].ends_with("[0 lua] \"get\" \"mk\""), "{lines:?}");
}

/// Pipelined scripts that run where the connection is (EVAL; EVALSHA of two shards' keys) wait
/// for the ones after them and run together under one set of locks. In one pipeline, mixed
/// with plain commands, scripts on two shards and scripts that reach a key they did not declare
/// (which start again with every shard locked, and so do the scripts after them), every reply
/// is what running the commands one by one gives, while another client's pipelines of the same
/// kind run on the same keys' shards.
#[test]
fn pipelined_scripts_run_in_order_as_one_group() {
    let server = start_warpengine(&["--threads", "2"]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    // The other client: its own counters on the same two shards, in pipelines of scripts.
    let noise = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut c = RawConn::connect(port);
            let script = "return redis.call('incr', KEYS[1]) + redis.call('incr', KEYS[2])";
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..32 {
                    c.send_command(&[b"EVAL", script.as_bytes(), b"2", b"{a}noise", b"{b}noise"]);
                }
                for _ in 0..32 {
                    assert!(matches!(
                        Resp::parse(&c.read_reply().expect("reply")),
                        Resp::Int(_)
                    ));
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut c = RawConn::connect(port);
    let incr = "return redis.call('incr', KEYS[1])";
    let both = "return redis.call('incr', KEYS[1]) * 1000 + redis.call('incr', KEYS[2])";
    let undeclared = "return redis.call('incr', '{b}undeclared:' .. ARGV[1])";
    let sha_both = load(&mut c, both);
    let mut model = std::collections::HashMap::<String, i64>::new();
    let bump = |model: &mut std::collections::HashMap<String, i64>, key: &str| {
        let v = model.entry(key.to_string()).or_insert(0);
        *v += 1;
        *v
    };
    for round in 0..5 {
        let mut expected = Vec::new();
        for i in 0..150 {
            // Groups of scripts between plain commands: [EVAL {a}, EVAL reaching {b}
            // undeclared, EVAL {a}], then GET, then [EVALSHA of {a} and {b}], then INCR.
            match i % 6 {
                0 | 2 => {
                    c.send_command(&[b"EVAL", incr.as_bytes(), b"1", b"{a}count"]);
                    expected.push(Resp::Int(bump(&mut model, "{a}count")));
                }
                1 => {
                    let n = (round * 150 + i).to_string();
                    c.send_command(&[b"EVAL", undeclared.as_bytes(), b"0", n.as_bytes()]);
                    let key = format!("{{b}}undeclared:{n}");
                    expected.push(Resp::Int(bump(&mut model, &key)));
                }
                3 => {
                    c.send_command(&[b"GET", b"{a}count"]);
                    let now = model["{a}count"];
                    expected.push(Resp::Bulk(now.to_string().into_bytes()));
                }
                4 => {
                    c.send_command(&[
                        b"EVALSHA",
                        sha_both.as_bytes(),
                        b"2",
                        b"{a}count",
                        b"{b}count",
                    ]);
                    let a = bump(&mut model, "{a}count");
                    expected.push(Resp::Int(a * 1000 + bump(&mut model, "{b}count")));
                }
                _ => {
                    c.send_command(&[b"INCR", b"{b}count"]);
                    expected.push(Resp::Int(bump(&mut model, "{b}count")));
                }
            }
        }
        for (i, want) in expected.iter().enumerate() {
            let got = Resp::parse(&c.read_reply().expect("reply"));
            assert_eq!(&got, want, "round {round}, command {i}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(noise.join().expect("noise client") > 0);
    // ({a} and {b} live on different shards of two: the undeclared key was beyond its group.)
    let reruns = warpengine_tests::info_field(&mut c, "stats", "script_reruns");
    assert_eq!(
        reruns, "1",
        "the undeclared-key script started again once, then ran broad"
    );
    let noise_a = c.call(&["GET", "{a}noise"]).int();
    assert_eq!(noise_a, c.call(&["GET", "{b}noise"]).int());
}

/// The value of `field` in an INFO section's text.
fn info_value(c: &mut RawConn, section: &str, field: &str) -> Option<String> {
    let Resp::Bulk(text) = c.call(&["INFO", section]) else {
        panic!("INFO {section}")
    };
    String::from_utf8(text)
        .expect("utf-8")
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_string)
        })
}

/// Commands a script calls count in INFO commandstats, and their errors (a pcall's caught
/// ones too) in errorstats, as Redis counts them (its introspection-2 and info units).
#[test]
fn a_scripts_commands_count_in_commandstats_and_errorstats() {
    let server = start_warpengine(&["--threads", "2", "--enable-debug-command", "yes"]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), Resp::Simple("OK".into()));
    c.call(&["SET", "mykey", "myval"]);
    eval(
        &mut c,
        "redis.call('set', KEYS[1], 0) redis.call('expire', KEYS[1], 0) \
         redis.call('geoadd', KEYS[1], 0, 0, 'bar')",
        &["mykey"],
        &[],
    );
    let calls = |c: &mut RawConn, cmd: &str| {
        let stat = info_value(c, "commandstats", &format!("cmdstat_{cmd}")).expect(cmd);
        stat.split(',').next().expect("calls").to_string()
    };
    assert_eq!(calls(&mut c, "eval"), "calls=1");
    assert_eq!(calls(&mut c, "set"), "calls=2");
    assert_eq!(calls(&mut c, "expire"), "calls=1");
    assert_eq!(calls(&mut c, "geoadd"), "calls=1");
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), Resp::Simple("OK".into()));
    eval(
        &mut c,
        "redis.pcall('XGROUP', 'CREATECONSUMER', 's1', 'mygroup', 'consumer') return",
        &[],
        &[],
    );
    assert_eq!(
        info_value(&mut c, "errorstats", "errorstat_ERR").as_deref(),
        Some("count=1")
    );
    let stat = info_value(&mut c, "commandstats", "cmdstat_xgroup|createconsumer").expect("xgroup");
    assert!(stat.ends_with("rejected_calls=0,failed_calls=1"), "{stat}");
    let stat = info_value(&mut c, "commandstats", "cmdstat_eval").expect("eval");
    assert!(stat.ends_with("rejected_calls=0,failed_calls=0"), "{stat}");
    // DEBUG SET-DISABLE-DENY-SCRIPTS lets a script call `noscript` commands (Redis's tests
    // use it for CLIENT LIST).
    let list = "return redis.call('client', 'list')";
    match eval(&mut c, list, &[], &[]) {
        Resp::Error(e) => assert!(e.contains("not allowed from script"), "{e}"),
        other => panic!("{other:?}"),
    }
    c.call(&["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1"]);
    match eval(&mut c, list, &[], &[]) {
        Resp::Bulk(text) => assert!(String::from_utf8_lossy(&text).starts_with("id=")),
        other => panic!("{other:?}"),
    }
    c.call(&["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0"]);
}

/// An error reply that starts with bytes that are not UTF-8 counts in errorstats under those
/// very bytes, as Redis shows it (redis-py's `test_info_with_non_utf8_errorstat`).
#[test]
fn errorstats_keep_an_error_codes_bytes_as_they_came() {
    let server = start_warpengine(&["--threads", "1"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "RESETSTAT"]);
    // Lua's decimal escapes: the bytes 0xff 0xfe.
    match eval(
        &mut c,
        "return redis.error_reply('\\255\\254BAD oops')",
        &[],
        &[],
    ) {
        Resp::Error(e) => assert!(e.ends_with("BAD oops"), "{e}"),
        other => panic!("{other:?}"),
    }
    let Resp::Bulk(text) = c.call(&["INFO", "errorstats"]) else {
        panic!("INFO errorstats")
    };
    assert_eq!(
        text,
        b"# Errorstats\r\nerrorstat_\xff\xfeBAD:count=1\r\n".to_vec()
    );
}

/// A fresh interpreter stays small: the libraries written in Lua load when a script first
/// uses them (Redis's scripting unit holds used_memory_lua under 100 KB after 10,000 EVALs).
#[test]
fn the_interpreter_stays_small_until_a_script_needs_its_libraries() {
    let server = start_warpengine(&["--threads", "1"]);
    let mut c = RawConn::connect(server.port);
    let lua_bytes = |c: &mut RawConn| -> u64 {
        info_value(c, "memory", "used_memory_lua")
            .expect("used_memory_lua")
            .parse()
            .expect("number")
    };
    // What setting the interpreter up leaves as garbage is collected at once, and INFO counts
    // what it holds (reported to within 4 KB).
    eval(&mut c, "return 1", &[], &[]);
    let fresh = lua_bytes(&mut c);
    assert!(
        (16 * 1024..64 * 1024).contains(&fresh),
        "used_memory_lua {fresh}"
    );
    for _ in 0..200 {
        eval(&mut c, "return redis.call('incr', KEYS[1])", &["x"], &[]);
    }
    let used = lua_bytes(&mut c);
    assert!(used < 100 * 1024, "used_memory_lua {used}");
    assert_eq!(
        eval(&mut c, "return cjson.encode({1, 2})", &[], &[]),
        Resp::Bulk(b"[1,2]".to_vec())
    );
    assert_eq!(
        eval(
            &mut c,
            "return struct.unpack('>I2', struct.pack('>I2', 258))",
            &[],
            &[]
        ),
        Resp::Int(258)
    );
    match eval(&mut c, "cmsgpack.pack = nil", &[], &[]) {
        Resp::Error(e) => assert!(e.contains("Attempt to modify a readonly table"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A script in RESP3 reads a big number and drops an attribute, and its reply goes to the
/// client in the client's protocol (Redis's scripting unit, DEBUG PROTOCOL from a script).
#[test]
fn scripts_read_big_numbers_and_attributes() {
    let server = start_warpengine(&["--enable-debug-command", "yes"]);
    let mut c = RawConn::connect(server.port);
    // (DEBUG is `noscript`: Redis's test lifts that first.)
    c.call(&["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1"]);
    let run = |c: &mut RawConn, kind: &str| {
        let script = format!("redis.setresp(3) return redis.call('debug', 'protocol', '{kind}')");
        c.send_command(&[b"EVAL", script.as_bytes(), b"0"]);
        c.read_reply().expect("reply")
    };
    let bignum = "1234567999999999999999999999999999999";
    let attrib = "Some real reply following the attribute";
    assert_eq!(
        run(&mut c, "bignum"),
        format!("$37\r\n{bignum}\r\n").into_bytes()
    );
    assert_eq!(
        run(&mut c, "attrib"),
        format!("$39\r\n{attrib}\r\n").into_bytes()
    );
    c.send_command(&[b"HELLO", b"3"]);
    c.read_reply().expect("HELLO");
    assert_eq!(run(&mut c, "bignum"), format!("({bignum}\r\n").into_bytes());
    assert_eq!(
        run(&mut c, "attrib"),
        format!("$39\r\n{attrib}\r\n").into_bytes()
    );
}

/// One debugging session (SCRIPT DEBUG SYNC) played on redis-server and here: every frame the
/// client receives, in order, until the connection closes after the EVAL's reply.
fn debugging_session(port: u16, steps: &[&[&[u8]]]) -> Vec<String> {
    let mut c = RawConn::connect(port);
    let mut frames = Vec::new();
    let read = |c: &mut RawConn, frames: &mut Vec<String>| match c.read_reply() {
        Some(f) => frames.push(String::from_utf8_lossy(&f).into_owned()),
        None => frames.push("<closed>".into()),
    };
    c.send_command(&[b"SCRIPT", b"DEBUG", b"SYNC"]);
    read(&mut c, &mut frames);
    c.send_command(&[
        b"EVALSHA",
        b"0000000000000000000000000000000000000000",
        b"0",
    ]);
    read(&mut c, &mut frames);
    let script = b"local a = 1\nredis.call('set', KEYS[1], 'x')\nlocal t = {1, 'two'}\nreturn redis.call('get', KEYS[1])";
    c.send_command(&[b"EVAL", script, b"1", b"debugged"]);
    read(&mut c, &mut frames);
    for step in steps {
        c.send_command(step);
        read(&mut c, &mut frames);
    }
    // The session's end mark, the EVAL's reply, then the connection closes.
    read(&mut c, &mut frames);
    read(&mut c, &mut frames);
    read(&mut c, &mut frames);
    frames
}

#[test]
fn the_lua_debugger_speaks_as_redis_does() {
    if !warpengine_tests::redis_available() {
        return;
    }
    let redis = warpengine_tests::start_redis(&[]);
    let warp = start_warpengine(&["--threads", "2"]);
    let sessions: [&[&[&[u8]]]; 2] = [
        &[
            &[b"hello\0world"],
            &[b"help"],
            &[b"whole"],
            &[b"list", b"3", b"1"],
            &[b"step"],
            &[b"print"],
            &[b"print", b"a"],
            &[b"print", b"KEYS"],
            &[b"print", b"nosuch"],
            &[b"trace"],
            &[b"break", b"3"],
            &[b"break", b"4"],
            &[b"break", b"9"],
            &[b"break"],
            &[b"redis", b"set", b"other", b"y"],
            &[b"redis", b"nosuchcommand"],
            &[b"eval", b"1", b"+", b"1"],
            &[b"eval", b"{1,", b"'a'}"],
            &[b"eval", b"redis.call('ping')"],
            &[b"eval", b"nosuch("],
            &[b"maxlen", b"10"],
            &[b"redis", b"get", b"debugged"],
            &[b"next"],
            &[b"print"],
            // To the breakpoint at line 4, then to the end.
            &[b"continue"],
            &[b"continue"],
        ],
        &[&[b"abort"]],
    ];
    for steps in sessions {
        let expected = debugging_session(redis.port, steps);
        let got = debugging_session(warp.port, steps);
        assert_eq!(got, expected);
        // The session's writes stay, as in Redis's sync mode.
        let mut c = RawConn::connect(warp.port);
        assert_eq!(c.call(&["GET", "debugged"]), Resp::Bulk(b"x".to_vec()));
    }
}

/// A function, or a script with a shebang, is judged by the flags it declares before it runs,
/// as Redis judges it (scripting and functions units): on a read-only replica one that may
/// write is refused, in a transaction too (EXECABORT at EXEC); with the link to the primary down
/// and replica-serve-stale-data off, one without allow-stale is refused (MASTERDOWN).
#[test]
fn declared_script_flags_judge_it_on_a_replica() {
    let warp = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(warp.port);
    let library = "#!lua name=stalelib\nredis.register_function{function_name='fresh', callback=function() return 1 end, flags={'no-writes'}}\nredis.register_function{function_name='stale_ok', callback=function() return 2 end, flags={'no-writes', 'allow-stale'}}";
    assert_eq!(
        c.call(&["FUNCTION", "LOAD", library]),
        Resp::Bulk(b"stalelib".to_vec())
    );
    // Queued while a primary, judged at EXEC once a replica.
    let mut queued = RawConn::connect(warp.port);
    queued.call(&["MULTI"]);
    assert_eq!(
        queued.call(&["EVAL", "#!lua\nreturn 1", "0"]),
        Resp::Simple("QUEUED".into())
    );
    let nobody = free_port().to_string();
    c.call(&["REPLICAOF", "127.0.0.1", &nobody]);
    match queued.call(&["EXEC"]) {
        Resp::Error(e) => assert!(
            e.starts_with("EXECABORT Transaction discarded because of: READONLY"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    match c.call(&["EVAL", "#!lua\nreturn 1", "0"]) {
        Resp::Error(e) => assert!(e.starts_with("READONLY"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.call(&["EVAL", "#!lua flags=no-writes\nreturn 1", "0"]),
        Resp::Int(1)
    );
    c.call(&["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    match c.call(&["FCALL", "fresh", "0"]) {
        Resp::Error(e) => assert!(e.starts_with("MASTERDOWN"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.call(&["FCALL", "stale_ok", "0"]), Resp::Int(2));
    // A script without a shebang does not run at all.
    assert_eq!(
        c.call(&["EVAL", "return 1", "0"]),
        Resp::Error(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into()
        )
    );
    // Inside it, only commands flagged stale run (INFO, not GET).
    let stale_read = "#!lua flags=no-writes,allow-stale\nreturn redis.call('get','x')";
    match c.call(&["EVAL", stale_read, "0"]) {
        Resp::Error(e) => assert!(
            e.starts_with("ERR Can not execute the command on a stale replica"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    let stale_info = "#!lua flags=no-writes,allow-stale\nreturn redis.call('info','server')";
    assert!(matches!(c.call(&["EVAL", stale_info, "0"]), Resp::Bulk(_)));
    c.call(&["REPLICAOF", "NO", "ONE"]);
}

/// A script's error raised by a command it called is counted once, where the command failed
/// or was refused (OOM, a write in EVAL_RO: the command's rejected_calls), not again by the
/// script's reply (which still counts as the script's failed call); an error a pcall caught
/// and returned likewise; the script's own errors count at its reply. Compared with
/// redis-server field by field (its scripting unit's 'Consistent eval error reporting').
#[test]
fn script_errors_are_counted_once_as_redis_counts_them() {
    if !warpengine_tests::redis_available() {
        return;
    }
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "return redis.call('set','x','y')", "1", "x"],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &[
                "EVAL",
                "local t = redis.pcall('set','x','y') return t['err']",
                "1",
                "x",
            ],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "return redis.pcall('set','x','y')", "1", "x"],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &["EVAL", "return redis.call('select',99)", "0"],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &[
                "EVAL",
                "local t = redis.pcall('select',99) return t['err']",
                "0",
            ],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &["EVAL_RO", "return redis.call('set','x','y')", "1", "x"],
        ),
        (
            &["SET", "Sicily", "1"],
            &[
                "EVAL",
                "return redis.call('GEOADD', 'Sicily', '13.36', '38.11', 'Palermo')",
                "1",
                "x",
            ],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &[
                "EVAL",
                "return redis.error_reply('MY_ERR_CODE custom msg')",
                "0",
            ],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &["EVAL", "return redis.call('nosuchcommand')", "0"],
        ),
    ];
    let stats = |port: u16| -> Vec<String> {
        let mut c = RawConn::connect(port);
        let mut seen = Vec::new();
        for (setup, script) in cases {
            c.call(setup);
            c.call(&["CONFIG", "RESETSTAT"]);
            let reply = match c.call(script) {
                Resp::Error(e) => format!("error {}", e.split(" script:").next().unwrap()),
                other => format!("{other:?}"),
            };
            c.call(&["CONFIG", "SET", "maxmemory", "0"]);
            let mut line = vec![reply];
            for section in ["errorstats", "commandstats"] {
                let Resp::Bulk(text) = c.call(&["INFO", section]) else {
                    panic!("INFO")
                };
                for l in String::from_utf8(text).unwrap().lines() {
                    // Calls and their outcomes (times differ), CONFIG's and INFO's own aside.
                    if l.starts_with("errorstat_")
                        || (l.starts_with("cmdstat_")
                            && !l.starts_with("cmdstat_config")
                            && !l.starts_with("cmdstat_info"))
                    {
                        let (name, rest) = l.split_once(':').unwrap();
                        let kept: Vec<&str> =
                            rest.split(',').filter(|f| !f.starts_with("usec")).collect();
                        line.push(format!("{name}:{}", kept.join(",")));
                    }
                }
            }
            // (Redis lists them in its tables' order.)
            line[1..].sort();
            line.push(format!(
                "total_error_replies:{}",
                warpengine_tests::info_field(&mut c, "stats", "total_error_replies")
            ));
            seen.push(line.join(" "));
        }
        seen
    };
    let redis = warpengine_tests::start_redis(&[]);
    let warp = start_warpengine(&["--threads", "2"]);
    let (theirs, ours) = (stats(redis.port), stats(warp.port));
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(o, t);
    }
}

/// A busy script's worker still notices a replica that hung up (INFO connected_slaves drops),
/// as Redis's event loop does between a busy script's hook calls: a script waiting for that
/// ends (Redis's scripting unit 'not enough good replicas state change during long script').
#[test]
fn a_busy_script_sees_its_replica_hang_up() {
    let primary = start_warpengine(&["--threads", "1", "--busy-reply-threshold", "10"]);
    let replica = start_warpengine(&["--threads", "1"]);
    let mut p = RawConn::connect(primary.port);
    let mut r = RawConn::connect(replica.port);
    r.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while warpengine_tests::info_field(&mut p, "replication", "connected_slaves") != "1"
        || !warpengine_tests::info_field(&mut p, "replication", "slave0").contains("online")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never came"
        );
        thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut waiting = RawConn::connect(primary.port);
    waiting.send_command(&[
        b"EVAL",
        b"while true do if string.match(redis.call('info','replication'), 'connected_slaves:0') then return 1 end end",
        b"0",
    ]);
    // Busy: other clients get BUSY.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Resp::Error(e) = RawConn::connect(primary.port).call(&["PING"]) {
            assert!(e.starts_with("BUSY"), "{e}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the script never got busy"
        );
        thread::sleep(std::time::Duration::from_millis(20));
    }
    r.call(&["REPLICAOF", "NO", "ONE"]);
    waiting.set_read_timeout(std::time::Duration::from_secs(10));
    assert_eq!(
        Resp::parse(&waiting.read_reply().expect("the script's reply")),
        Resp::Int(1)
    );
}
