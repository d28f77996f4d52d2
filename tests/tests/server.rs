//! End-to-end tests: the real binary, spoken to by the `redis` crate, raw sockets and redis-cli.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use redis::{Commands, Connection, RedisResult, Value};
use warpengine_tests::{run_python, start_warpengine, RawConn, ServerProcess};

fn connect(server: &ServerProcess) -> Connection {
    redis::Client::open(server.url())
        .expect("client")
        .get_connection()
        .expect("connection")
}

#[test]
fn redis_crate_strings_keyspace_and_pipelines() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = connect(&server);
    let _: () = c.set("greeting", "hello").unwrap();
    assert_eq!(c.get::<_, String>("greeting").unwrap(), "hello");
    assert_eq!(c.incr::<_, _, i64>("counter", 5).unwrap(), 5);
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", "2", "c", "3", "d", "4"])
        .query(&mut c)
        .unwrap();
    let values: Vec<Option<String>> = c.mget(&["a", "b", "nope", "d"]).unwrap();
    assert_eq!(
        values,
        vec![Some("1".into()), Some("2".into()), None, Some("4".into())]
    );
    let _: () = c.expire("a", 100).unwrap();
    assert_eq!(c.ttl::<_, i64>("a").unwrap(), 100);
    let (x, y): (String, i64) = redis::pipe()
        .cmd("SET")
        .arg("p")
        .arg("q")
        .ignore()
        .cmd("GET")
        .arg("p")
        .cmd("DEL")
        .arg(&["a", "b", "c", "d", "p"])
        .query(&mut c)
        .unwrap();
    assert_eq!((x.as_str(), y), ("q", 5));
    let err: RedisResult<i64> = c.incr("greeting", 1);
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("value is not an integer or out of range"));
}

#[test]
fn redis_crate_resp3_handshake() {
    let server = start_warpengine(&[]);
    let client = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
    let mut c = client.get_connection().expect("RESP3 connection");
    let _: () = c.set("k", "v").unwrap();
    let v: Value = redis::cmd("HELLO").arg(3).query(&mut c).unwrap();
    match v {
        Value::Map(pairs) => assert!(pairs
            .iter()
            .any(|(k, v)| *k == Value::BulkString(b"proto".to_vec()) && *v == Value::Int(3))),
        other => panic!("HELLO 3 should answer a map, got {other:?}"),
    }
    let missing: Value = redis::cmd("GET").arg("missing").query(&mut c).unwrap();
    assert_eq!(missing, Value::Nil);
}

/// Writers MSET the same value into keys spread over every shard while readers MGET them:
/// a reader must never see keys from two different MSETs.
#[test]
fn cross_shard_mset_is_atomic_for_mget_readers() {
    let server = start_warpengine(&["--threads", "4"]);
    let keys: Vec<String> = (0..12).map(|i| format!("atomic:{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for w in 0..3u64 {
        let (url, keys, stop) = (server.url(), keys.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("{w}-{i}");
                let mut cmd = redis::cmd("MSET");
                for k in &keys {
                    cmd.arg(k).arg(&value);
                }
                let _: () = cmd.query(&mut c).unwrap();
                i += 1;
            }
        }));
    }
    for _ in 0..3 {
        let (url, keys, stop, reads) = (server.url(), keys.clone(), stop.clone(), reads.clone());
        handles.push(thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<Option<String>> = c.mget(&keys).unwrap();
                let distinct: HashSet<_> = values.iter().collect();
                assert_eq!(distinct.len(), 1, "MGET saw a torn MSET: {values:?}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("no torn reads");
    }
    assert!(reads.load(Ordering::Relaxed) > 100, "readers made progress");
    // The keys really are spread over shards, so the test exercised the cross-shard path.
    let info: String = redis::cmd("INFO")
        .arg("shards")
        .query(&mut connect(&server))
        .unwrap();
    assert!(info.contains("cross_shard_commands="), "{info}");
}

#[test]
fn msetnx_and_rename_across_shards_are_all_or_nothing() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = connect(&server);
    let _: () = c.set("taken", "1").unwrap();
    let set: i64 = redis::cmd("MSETNX")
        .arg(&["free1", "x", "free2", "y", "taken", "z", "free3", "w"])
        .query(&mut c)
        .unwrap();
    assert_eq!(set, 0);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&["free1", "free2", "free3"])
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "a refused MSETNX must write nothing");
    let _: () = c.set_ex("src", "payload", 1000).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("src")
        .arg("dst-on-another-shard")
        .query(&mut c)
        .unwrap();
    assert_eq!(c.get::<_, Option<String>>("src").unwrap(), None);
    assert_eq!(
        c.get::<_, String>("dst-on-another-shard").unwrap(),
        "payload"
    );
    assert!(
        c.ttl::<_, i64>("dst-on-another-shard").unwrap() > 990,
        "RENAME keeps the TTL"
    );
}

#[test]
fn requirepass_gates_commands_until_auth() {
    let server = start_warpengine(&["--requirepass", "s3cret"]);
    let mut raw = RawConn::connect(server.port);
    assert_eq!(
        raw.command(&[b"GET", b"k"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw.command(&[b"AUTH", b"wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(raw.command(&[b"AUTH", b"s3cret"]), b"+OK\r\n");
    assert_eq!(raw.command(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    // HELLO with AUTH authenticates and switches protocol in one step.
    let mut raw = RawConn::connect(server.port);
    let reply = raw.command(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret"]);
    assert!(
        reply.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(raw.command(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // The redis crate's own handshake with a password in the URL.
    let url = format!("redis://:s3cret@127.0.0.1:{}/", server.port);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
}

#[test]
fn protocol_errors_reply_then_close_and_the_server_survives() {
    let server = start_warpengine(&[]);
    let mut raw = RawConn::connect(server.port);
    raw.send(b"*1\r\n:5\r\n");
    assert_eq!(
        raw.read_reply().unwrap(),
        b"-ERR Protocol error: expected '$', got ':'\r\n"
    );
    assert!(raw.is_closed());
    let mut raw = RawConn::connect(server.port);
    raw.send(b"*1\r\n$999999999999\r\n");
    assert_eq!(
        raw.read_reply().unwrap(),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(raw.is_closed());
    let mut raw = RawConn::connect(server.port);
    raw.send(b"SET inline \"quoted value\"\r\nGET inline\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"$12\r\nquoted value\r\n");
}

#[test]
fn pipelined_replies_come_back_in_order_across_shards() {
    let server = start_warpengine(&["--threads", "3"]);
    let mut raw = RawConn::connect(server.port);
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend(warpengine_tests::encode_command(&[
            b"SET",
            format!("key{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(warpengine_tests::encode_command(&[
            b"GET",
            format!("key{i}").as_bytes(),
        ]));
        batch.extend(warpengine_tests::encode_command(&[b"PING"]));
    }
    raw.send(&batch);
    for i in 0..500 {
        assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
        let v = format!("{i}");
        assert_eq!(
            raw.read_reply().unwrap(),
            format!("${}\r\n{v}\r\n", v.len()).into_bytes()
        );
        assert_eq!(raw.read_reply().unwrap(), b"+PONG\r\n");
    }
    let info = raw.command(&[b"INFO", b"shards"]);
    let text = String::from_utf8_lossy(&info);
    let remote: u64 = text
        .split("remote_requests_in=")
        .skip(1)
        .filter_map(|s| s.split(',').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        remote > 0,
        "some keys were served by another shard's worker: {text}"
    );
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = connect(&server);
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PX")
            .arg(50)
            .query(&mut c)
            .unwrap();
    }
    let _: () = c.set("long", "v").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if size == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "active expiry left {size} keys");
        thread::sleep(Duration::from_millis(50));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(info.contains("expired_keys:200"), "{info}");
}

#[test]
fn maxclients_refuses_extra_connections() {
    let server = start_warpengine(&["--maxclients", "2"]);
    let mut a = RawConn::connect(server.port);
    // Wait until the start-up probe's connection is gone and `a` is the only client.
    let deadline = Instant::now() + Duration::from_secs(5);
    while String::from_utf8_lossy(&a.command(&[b"CLIENT", b"LIST"]))
        .matches("id=")
        .count()
        > 1
    {
        assert!(
            Instant::now() < deadline,
            "probe connection never went away"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut b = RawConn::connect(server.port);
    assert_eq!(b.command(&[b"PING"]), b"+PONG\r\n");
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        c.read_reply().unwrap(),
        b"-ERR max number of clients reached\r\n"
    );
}

#[test]
fn client_kill_closes_the_other_connection() {
    let server = start_warpengine(&[]);
    let mut victim = RawConn::connect(server.port);
    let id_reply = victim.command(&[b"CLIENT", b"ID"]);
    let id = String::from_utf8_lossy(&id_reply[1..id_reply.len() - 2]).to_string();
    let mut killer = RawConn::connect(server.port);
    assert_eq!(
        killer.command(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()]),
        b":1\r\n"
    );
    assert!(victim.is_closed());
    // The victim's task unregisters as soon as it sees its socket shut down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = killer.command(&[b"CLIENT", b"LIST"]);
        if !String::from_utf8_lossy(&list).contains(&format!("id={id} ")) {
            break;
        }
        assert!(Instant::now() < deadline, "killed client still listed");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_file_and_config_set() {
    let dir = std::env::temp_dir().join(format!("warp-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warp.conf");
    std::fs::write(&file, "# test\nmaxmemory 10mb\ndatabases 4\nhz 20\n").unwrap();
    let server = start_warpengine(&["--config", file.to_str().unwrap()]);
    let mut c = connect(&server);
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["maxmemory", "10485760"]);
    let err: RedisResult<()> = redis::cmd("SELECT").arg(4).query(&mut c);
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("DB index is out of range"));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1gb")
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxm*")
        .query(&mut c)
        .unwrap();
    assert!(
        got.windows(2).any(|w| w == ["maxmemory", "1073741824"]),
        "{got:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shutdown_stops_the_process() {
    let mut server = start_warpengine(&[]);
    let mut raw = RawConn::connect(server.port);
    raw.send_command(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(
        raw.read_reply().is_none(),
        "SHUTDOWN closes without a reply"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.alive() {
        assert!(
            Instant::now() < deadline,
            "server still running after SHUTDOWN"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli is installed (scripts/test.sh installs it)");
    assert!(out.status.success(), "redis-cli {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_scan_info_and_stat() {
    let server = start_warpengine(&["--threads", "2"]);
    for i in 0..50 {
        redis_cli(server.port, &["SET", &format!("cli:{i}"), "x"]);
    }
    let scanned: HashSet<String> = redis_cli(server.port, &["--scan", "--pattern", "cli:*"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(scanned.len(), 50);
    let keyspace = redis_cli(server.port, &["INFO", "keyspace"]);
    assert!(keyspace.contains("db0:keys=50,expires=0"), "{keyspace}");
    // --stat polls INFO forever; read its first samples and stop it (line-buffered, or the
    // kill would lose what it printed).
    let mut stat = Command::new("stdbuf")
        .args([
            "-oL",
            "redis-cli",
            "-p",
            &server.port.to_string(),
            "--stat",
            "-i",
            "0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    stat.kill().unwrap();
    let out = stat.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keys") && text.contains("50"), "{text}");
}

#[test]
fn redis_benchmark_runs_without_errors() {
    let server = start_warpengine(&["--threads", "2"]);
    let out = Command::new("redis-benchmark")
        .args(["-p", &server.port.to_string()])
        .args([
            "-t",
            "ping,set,get,incr,mset",
            "-P",
            "16",
            "-q",
            "-n",
            "20000",
            "-c",
            "20",
        ])
        .args(["-r", "100000", "-d", "64"])
        .output()
        .expect("redis-benchmark is installed (scripts/test.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for test in [
        "PING_INLINE:",
        "PING_MBULK:",
        "SET:",
        "GET:",
        "INCR:",
        "MSET (10 keys):",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(test) && l.contains("requests per second")),
            "no result for {test}: {text}"
        );
    }
    assert!(!text.contains("ERR") && !text.contains("rror"), "{text}");
}

#[test]
fn nothing_after_quit_in_the_same_read_runs() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut raw = RawConn::connect(server.port);
    raw.send(b"SET q 1\r\nQUIT\r\nDEL q\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
    assert!(
        raw.read_reply().is_none(),
        "connection closes after QUIT's reply"
    );
    let mut raw = RawConn::connect(server.port);
    assert_eq!(raw.command(&[b"GET", b"q"]), b"$1\r\n1\r\n");
}

#[test]
fn each_reply_uses_the_protocol_in_force_when_its_command_ran() {
    let server = start_warpengine(&[]);
    let mut raw = RawConn::connect(server.port);
    let hello = raw.command(&[b"HELLO", b"3"]);
    assert!(hello.starts_with(b"%7"));
    // GET (RESP3 null) then RESET (back to RESP2) in one read.
    raw.send(b"GET missing\r\nRESET\r\nGET missing\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"_\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+RESET\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"$-1\r\n");
}

#[test]
fn client_reply_skip_and_off_silence_replies() {
    let server = start_warpengine(&[]);
    let mut raw = RawConn::connect(server.port);
    raw.send(b"CLIENT REPLY SKIP\r\nSET a 1\r\nGET a\r\nCLIENT REPLY OFF\r\nGET a\r\nCLIENT REPLY ON\r\nPING\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"$1\r\n1\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+PONG\r\n");
}

/// redis-py's own handshake and commands, RESP2 and RESP3 (scripts/test.sh installs redis-py).
#[test]
fn redis_py_client_works_in_both_protocols() {
    let server = start_warpengine(&["--threads", "2"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/redis_py_smoke.py");
    let (ok, text) = run_python(&[script, &server.port.to_string()]);
    assert!(ok, "{text}");
    // Every check of the script ran and passed (it counts them; adding one must not break this).
    assert!(
        text.contains(" passed, 0 failed") && !text.contains("redis-py: 0 passed"),
        "{text}"
    );
}

/// Every test of a default redis-benchmark run, plain and pipelined, with no error replies.
#[test]
fn full_default_redis_benchmark_runs_without_errors() {
    let server = start_warpengine(&["--threads", "2"]);
    for pipeline in ["1", "16"] {
        let out = Command::new("redis-benchmark")
            .args([
                "-p",
                &server.port.to_string(),
                "-q",
                "-n",
                "2000",
                "-c",
                "10",
            ])
            .args(["-P", pipeline])
            .output()
            .expect("redis-benchmark is installed (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        for test in [
            "PING_INLINE:",
            "PING_MBULK:",
            "SET:",
            "GET:",
            "INCR:",
            "LPUSH:",
            "RPUSH:",
            "LPOP:",
            "RPOP:",
            "SADD:",
            "HSET:",
            "SPOP:",
            "ZADD:",
            "ZPOPMIN:",
            "LPUSH (needed to benchmark LRANGE):",
            "LRANGE_100 (first 100 elements):",
            "LRANGE_300 (first 300 elements):",
            "LRANGE_500 (first 500 elements):",
            "LRANGE_600 (first 600 elements):",
            "MSET (10 keys):",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.contains(test) && l.contains("requests per second")),
                "-P {pipeline}: no result for {test}: {text}"
            );
        }
        assert!(!text.contains("ERR") && !text.contains("rror"), "{text}");
    }
}

/// Cross-shard commands in a pipeline wait to run together under one set of locks: mixed with
/// single-shard commands in one write, every reply is still Redis's, in order.
#[test]
fn a_pipeline_mixing_cross_shard_and_single_shard_commands_answers_as_redis() {
    if !warpengine_tests::redis_available() {
        assert!(
            std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
            "no redis-server"
        );
        return;
    }
    let warp = start_warpengine(&["--threads", "4"]);
    let redis = warpengine_tests::start_redis(&[]);
    let script: &[&[&str]] = &[
        &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"],
        &["MSET", "a", "10", "e", "5"],
        &["GET", "a"],
        &["INCR", "b"],
        &["MGET", "a", "b", "c", "d", "e"],
        &["DEL", "a", "c"],
        &["MSETNX", "a", "7", "z", "8"],
        &["EXISTS", "a", "b", "c", "z"],
        &["RENAME", "b", "c"],
        &["MGET", "a", "b", "c", "z"],
        &["GET", "c"],
        &["MSET", "k1", "x", "k2", "y", "k3", "z"],
        &["LPUSH", "k1", "v"],
        &["MGET", "k1", "k2", "k3"],
        &["DEL", "k1", "k2", "k3", "a", "z", "c", "d", "e"],
        &["DBSIZE"],
    ];
    let mut bytes = Vec::new();
    for cmd in script {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(warpengine_tests::encode_command(&args));
    }
    let mut replies = Vec::new();
    for port in [redis.port, warp.port] {
        let mut c = RawConn::connect(port);
        c.send(&bytes);
        let all: Vec<Vec<u8>> = script.iter().map(|_| c.read_reply().unwrap()).collect();
        replies.push(all);
    }
    for (i, cmd) in script.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&replies[1][i]),
            String::from_utf8_lossy(&replies[0][i]),
            "{cmd:?}"
        );
    }
}

/// `unixsocket`: clients connect through the socket file (a file left at the path is replaced,
/// `unixsocketperm` gives its mode), CLIENT LIST shows them as Redis does (`addr=<path>:0`,
/// flag `U`), TCP keeps working beside it, and the file is removed when the server exits.
#[test]
fn clients_connect_through_the_unix_socket() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let dir = warpengine_tests::TempDir::new("unixsocket");
    let path = format!("{}/warp.sock", dir.path());
    std::fs::write(&path, b"left by an earlier run").unwrap();
    let mut server = start_warpengine(&[
        "--unixsocket",
        &path,
        "--unixsocketperm",
        "700",
        "--protected-mode",
        "yes",
    ]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "socket mode {mode:o}");

    // Raw: a pipeline, then CLIENT INFO/LIST about this connection.
    let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nunix\r\nCLIENT INFO\r\n")
        .unwrap();
    // +PONG, +OK, then CLIENT INFO's bulk string: read until all of it is here.
    let complete = |got: &[u8]| {
        let Some(bulk) = got.strip_prefix(b"+PONG\r\n+OK\r\n$".as_slice()) else {
            return false;
        };
        let Some(end) = bulk.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let len: usize = String::from_utf8_lossy(&bulk[..end]).parse().unwrap();
        bulk.len() >= end + 2 + len + 2
    };
    let mut got = Vec::new();
    while !complete(&got) {
        let mut buf = [0u8; 4096];
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("+PONG\r\n+OK\r\n$"), "{text}");
    assert!(
        text.contains(&format!(" addr={path}:0 laddr={path}:0 ")),
        "{text}"
    );
    assert!(text.contains(" flags=U "), "{text}");

    // The redis crate, redis-cli and redis-py over the socket; TCP beside it.
    let mut c = redis::Client::open(format!("unix://{path}"))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "unix");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    assert_eq!(list.matches(" flags=U ").count(), 2, "{list}");
    let out = Command::new("redis-cli")
        .args(["-s", &path, "GET", "k"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unix");
    let (ok, out) = run_python(&[
        "-c",
        &format!(
            "import redis; r = redis.Redis(unix_socket_path='{path}'); r.incr('n'); print(r.get('k').decode(), r.get('n').decode())"
        ),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "unix 1");
    let mut tcp = connect(&server);
    assert_eq!(tcp.get::<_, i64>("n").unwrap(), 1);
    let tcp_list: String = redis::cmd("CLIENT").arg("LIST").query(&mut tcp).unwrap();
    let tcp_line = tcp_list
        .lines()
        .find(|l| l.contains(" addr=127.0.0.1:"))
        .unwrap();
    assert!(!tcp_line.contains(" flags=U "), "{tcp_line}");

    assert_eq!(
        server.signal_and_wait("TERM", Duration::from_secs(10)),
        Some(0)
    );
    assert!(
        !std::path::Path::new(&path).exists(),
        "the socket file outlived the server"
    );
}
