//! Multi-node Redis Cluster (issue 21), made by `scripts/cluster-local.sh` (3 primaries, a replica
//! each) and driven by the tools and clients users have: redis-py `RedisCluster` and `redis-cli -c`
//! write and read 100K keys; `redis-cli --cluster check` is clean; `redis-cli --cluster reshard`
//! moves 1,000 slots while a writer writes, and no acknowledged write is lost; a primary killed
//! with SIGKILL is replaced by its replica and the clients carry on; `add-node`, `rebalance` and
//! `del-node` grow and shrink the cluster; `fix` completes a half-done slot move; `redis-benchmark --cluster` runs clean; the redis
//! crate, ioredis and node-redis cluster clients work.
//!
//! Every scenario runs against redis-server 7.0 nodes (the reference: it proves the test right),
//! against WarpEngine nodes, and against a mixed cluster (redis-server and WarpEngine nodes in
//! turn, which works because WarpEngine speaks Redis's own bus protocol). The whole suite runs
//! the WarpEngine variants (about two minutes); `cargo test -p warpengine-tests --test
//! cluster_multi -- --include-ignored` runs all 21 (about six), as before a change to the cluster.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use warpengine::slot::key_slot;
use warpengine_tests::cluster::{within, LocalCluster, NodeLine, Server};
use warpengine_tests::{info_field, RawConn, Resp, TempDir};

/// Declares a scenario's three tests: against redis-server nodes, against WarpEngine nodes, and
/// against redis-server and WarpEngine nodes in turn. The suite runs the WarpEngine variant; the
/// other two (the reference that proves a scenario right, and the mixed cluster) take twice as long
/// again and run with `--include-ignored`.
macro_rules! on_both_servers {
    ($scenario:ident) => {
        mod $scenario {
            use warpengine_tests::cluster::Server;

            #[test]
            #[ignore = "the reference run, for --include-ignored (the suite's time)"]
            fn redis_server() {
                if warpengine_tests::redis_available() {
                    super::$scenario(Server::Redis);
                }
            }

            #[test]
            fn warpengine() {
                super::$scenario(Server::WarpEngine);
            }

            #[test]
            #[ignore = "for --include-ignored (the suite's time; cluster_bus.rs covers mixed clusters)"]
            fn mixed_with_redis_server() {
                if warpengine_tests::redis_available() {
                    super::$scenario(Server::Mixed);
                }
            }
        }
    };
}

const PY_CLUSTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clients/redis_py_cluster_multi.py"
);

/// Runs `program` with `args` for at most `limit`, stdin from `input` if given.
fn run(program: &str, args: &[&str], input: Option<&Path>, limit: Duration) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(limit.as_secs().to_string()).arg(program).args(args);
    if let Some(input) = input {
        cmd.stdin(File::open(input).expect("input file"));
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// `run`, which must succeed; its stdout.
fn run_ok(program: &str, args: &[&str], input: Option<&Path>, limit: Duration) -> String {
    let out = run(program, args, input, limit);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis_py(cluster: &LocalCluster, args: &[&str]) -> String {
    let port = cluster.base.to_string();
    let mut all = vec![PY_CLUSTER, &port];
    all.extend_from_slice(args);
    run_ok("python3", &all, None, Duration::from_secs(120))
}

/// What `redis-cli --cluster check` says (it exits non-zero when it complains).
fn cluster_check(cluster: &LocalCluster) -> String {
    let seed = cluster.seed();
    let out = run(
        "redis-cli",
        &["--cluster", "check", &seed],
        None,
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `redis-cli --cluster check` must find nothing to complain about, once the change just made
/// has reached every node: redis-cli tells the primaries of a slot's new owner itself, the
/// replicas learn it by gossip (their primaries ping them at least every half node timeout, in
/// Redis as here), so a check right after a reshard may see a replica that has not heard yet.
fn assert_check_clean(cluster: &LocalCluster) {
    let clean = |check: &str| {
        check.contains("[OK] All nodes agree about slots configuration.")
            && check.contains("[OK] All 16384 slots covered.")
            && !check.contains("[ERR]")
            && !check.contains("[WARNING]")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let check = cluster_check(cluster);
        if clean(&check) {
            return;
        }
        assert!(Instant::now() < deadline, "{check}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The primaries as `port` sees them, by first slot.
fn primaries(cluster: &LocalCluster, port: u16) -> Vec<NodeLine> {
    let mut primaries: Vec<NodeLine> = cluster
        .nodes_seen_from(port)
        .into_iter()
        .filter(|n| n.is_primary() && !n.has_flag("fail"))
        .collect();
    primaries.sort_by_key(first_slot);
    primaries
}

fn first_slot(node: &NodeLine) -> u16 {
    node.slots
        .first()
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(u16::MAX)
}

fn owns(node: &NodeLine, slot: u16) -> bool {
    node.slots.iter().any(|r| {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot)
    })
}

fn slot_count(node: &NodeLine) -> usize {
    node.slots
        .iter()
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// Writes `commands` (one per line, keys ordered by slot so that `redis-cli -c` follows a
/// redirect only where the owner changes, not at two keys in three) to a file and runs them
/// through `redis-cli -c`; its output, redirect notices left out.
fn redis_cli_c(
    cluster: &LocalCluster,
    dir: &TempDir,
    keys: &[String],
    command: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut ordered: Vec<&String> = keys.iter().collect();
    ordered.sort_by_key(|k| key_slot(k.as_bytes()));
    let text: String = ordered.iter().map(|k| command(k) + "\n").collect();
    let file = dir.0.join("commands.txt");
    std::fs::write(&file, text).expect("commands file");
    let port = cluster.base.to_string();
    let out = run_ok(
        "redis-cli",
        &["-c", "-p", &port],
        Some(&file),
        Duration::from_secs(60),
    );
    out.lines()
        .filter(|l| !l.starts_with("-> Redirected"))
        .map(str::to_string)
        .collect()
}

fn clients_write_and_read_100k_keys(server: Server) {
    let cluster = LocalCluster::start(server, 6, 1, 5000);
    let dir = TempDir::new(&format!("cluster-100k-{}", cluster.base));
    assert_check_clean(&cluster);
    const N: usize = 100_000;
    let n = N.to_string();
    // redis-py writes, redis-cli -c reads back.
    assert_eq!(
        redis_py(&cluster, &["write", "py:", &n]).trim(),
        "ok wrote 100000"
    );
    let keys: Vec<String> = (0..N).map(|i| format!("py:{i}")).collect();
    let got = redis_cli_c(&cluster, &dir, &keys, |k| format!("GET {k}"));
    let mut ordered: Vec<&String> = keys.iter().collect();
    ordered.sort_by_key(|k| key_slot(k.as_bytes()));
    assert_eq!(got.len(), N);
    for (key, value) in ordered.iter().zip(&got) {
        assert_eq!(value, &format!("v{}", &key[3..]), "redis-cli -c GET {key}");
    }
    // redis-cli -c writes, redis-py reads back.
    let keys: Vec<String> = (0..N).map(|i| format!("cli:{i}")).collect();
    let got = redis_cli_c(&cluster, &dir, &keys, |k| format!("SET {k} v{}", &k[4..]));
    assert_eq!(got.len(), N);
    assert!(got.iter().all(|l| l == "OK"), "{:?}", &got[..5]);
    assert_eq!(
        redis_py(&cluster, &["read", "cli:", &n]).trim(),
        "ok read 100000"
    );
    // Every primary holds its share, and only those keys.
    let primaries = primaries(&cluster, cluster.base);
    assert_eq!(primaries.len(), 3);
    let total: i64 = primaries
        .iter()
        .map(|p| {
            let size = RawConn::connect(p.port).call(&["DBSIZE"]).int();
            assert!(size > 0, "primary {} holds no key", p.port);
            size
        })
        .sum();
    assert_eq!(total, 2 * N as i64);
    assert_check_clean(&cluster);
}
on_both_servers!(clients_write_and_read_100k_keys);

/// redis-py's `writer` mode in the background (see redis_py_cluster_multi.py).
struct Writer {
    child: Child,
    lines: Receiver<String>,
    stopfile: std::path::PathBuf,
}

impl Writer {
    /// Starts the writer over `keys` keys (in the slots `slots`, both ends included); returns
    /// once it has had a write acknowledged.
    fn start(cluster: &LocalCluster, dir: &TempDir, keys: usize, slots: (u16, u16)) -> Writer {
        let stopfile = dir.0.join("stop");
        let mut child = Command::new("python3")
            .args([PY_CLUSTER, &cluster.base.to_string(), "writer"])
            .arg(&stopfile)
            .arg(keys.to_string())
            .args([slots.0.to_string(), slots.1.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let writer = Writer {
            child,
            lines,
            stopfile,
        };
        let first = writer.lines.recv_timeout(Duration::from_secs(30));
        assert_eq!(
            first.as_deref(),
            Ok("started"),
            "the writer never had a write acknowledged"
        );
        writer
    }

    /// Stops the writer; its report (`name value` pairs) and the lines after it.
    fn finish(mut self) -> (HashMap<String, f64>, String) {
        File::create(&self.stopfile).expect("stop file");
        let report = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer's report");
        let rest: Vec<String> = self.lines.iter().collect();
        let _ = self.child.wait();
        let figures = report
            .strip_prefix("report ")
            .unwrap_or_else(|| panic!("not a report: {report}"))
            .split(' ')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
            .collect();
        (figures, rest.join("\n"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reshard_under_writes_loses_no_key(server: Server) {
    let cluster = LocalCluster::start(server, 6, 1, 5000);
    let dir = TempDir::new(&format!("cluster-reshard-{}", cluster.base));
    // Keys in every slot, so that the move has keys to MIGRATE besides the writer's.
    redis_py(&cluster, &["write", "pre:", "20000"]);
    let before = primaries(&cluster, cluster.base);
    let (from, to) = (&before[0], &before[1]);
    // redis-cli moves the source's first slots: the writer's keys are all in them, so it
    // writes to slots before, during and after their move (ASK redirects included).
    let moving = (first_slot(from), first_slot(from) + 999);
    let writer = Writer::start(&cluster, &dir, 2000, moving);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let seed = cluster.seed();
    let out = run_ok(
        "redis-cli",
        &[
            "--cluster",
            "reshard",
            &seed,
            "--cluster-from",
            &from.id,
            "--cluster-to",
            &to.id,
            "--cluster-slots",
            "1000",
            "--cluster-yes",
        ],
        None,
        Duration::from_secs(90),
    );
    let took = started.elapsed();
    assert!(out.contains("Moving slot"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let (report, rest) = writer.finish();
    eprintln!("reshard of 1000 slots: {took:?}; writer: {report:?}");
    assert!(report["acked"] > 100.0, "{report:?}");
    assert_eq!(report["lost_count"], 0.0, "{report:?}\n{rest}");
    // A single-key write is never refused during a migration (ASK sends it on).
    assert_eq!(report["failed"], 0.0, "{report:?}\n{rest}");
    let after = primaries(&cluster, cluster.base);
    let count = |id: &str, nodes: &[NodeLine]| {
        slot_count(nodes.iter().find(|n| n.id == id).expect("the node"))
    };
    assert_eq!(count(&from.id, &after), count(&from.id, &before) - 1000);
    assert_eq!(count(&to.id, &after), count(&to.id, &before) + 1000);
    let to_now = after.iter().find(|n| n.id == to.id).expect("the target");
    assert!((moving.0..=moving.1).all(|slot| owns(to_now, slot)));
    assert_eq!(
        redis_py(&cluster, &["read", "pre:", "20000"]).trim(),
        "ok read 20000"
    );
    assert_check_clean(&cluster);
}
on_both_servers!(reshard_under_writes_loses_no_key);

fn failover_promotes_the_replica_and_clients_carry_on(server: Server) {
    let cluster = LocalCluster::start(server, 6, 1, 2000);
    let dir = TempDir::new(&format!("cluster-failover-{}", cluster.base));
    let nodes = cluster.nodes_seen_from(cluster.base);
    let victim = primaries(&cluster, cluster.base).remove(0);
    let replica = nodes
        .iter()
        .find(|n| n.primary.as_deref() == Some(&victim.id))
        .expect("the victim's replica")
        .clone();
    let witness = primaries(&cluster, cluster.base)[1].port;
    let writer = Writer::start(&cluster, &dir, 500, (0, 16383));
    std::thread::sleep(Duration::from_millis(500));

    let pid: i32 = info_field(&mut RawConn::connect(victim.port), "server", "process_id")
        .parse()
        .expect("process_id");
    // SAFETY: kill(2) on a process this test's script started (its pid, as the node reports it).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let promoted = within(Duration::from_secs(30), || {
        let seen = cluster.nodes_seen_from(witness);
        let flags = |id: &str| seen.iter().find(|n| n.id == id).map(|n| n.flags.clone());
        let victim_failed = flags(&victim.id).is_some_and(|f| f.iter().any(|x| x == "fail"));
        let replica_promoted = flags(&replica.id).is_some_and(|f| f.iter().any(|x| x == "master"));
        victim_failed && replica_promoted
    });
    let promoted = promoted.unwrap_or_else(|| {
        panic!(
            "the replica was not promoted within 30 s:\n{:?}",
            cluster.nodes_seen_from(witness)
        )
    });
    let new_primary = primaries(&cluster, witness)
        .into_iter()
        .find(|n| n.id == replica.id)
        .expect("the promoted replica");
    assert_eq!(slot_count(&new_primary), slot_count(&victim));
    // redis-cli -c, sent to another node, follows the redirect to the new primary.
    let key = (0..)
        .map(|i| format!("after-failover:{i}"))
        .find(|k| owns(&victim, key_slot(k.as_bytes())))
        .expect("a key in the victim's slots");
    let witness_port = witness.to_string();
    let set = run_ok(
        "redis-cli",
        &["-c", "-p", &witness_port, "SET", &key, "x"],
        None,
        Duration::from_secs(10),
    );
    assert!(set.trim().ends_with("OK"), "{set}");
    assert_eq!(
        RawConn::connect(new_primary.port).call(&["GET", &key]),
        Resp::Bulk(b"x".to_vec())
    );
    // The writer (one redis-py RedisCluster since before the kill) carries on: it writes every
    // one of its keys, over every slot, after its last error and in its last 2 seconds.
    std::thread::sleep(Duration::from_secs(3));
    let (report, rest) = writer.finish();
    eprintln!("failover: replica promoted {promoted:?} after the kill; writer: {report:?}");
    assert_eq!(
        report["keys_acked_after_last_error"], report["keys"],
        "{report:?}\n{rest}"
    );
    assert_eq!(
        report["keys_acked_in_last_2s"], report["keys"],
        "{report:?}\n{rest}"
    );
    // Writes stopped from the kill until the client learned of the promotion, no longer.
    assert!(
        report["longest_stall_s"] < promoted.as_secs_f64() + 5.0,
        "the writer stalled {} s, the promotion took {promoted:?}",
        report["longest_stall_s"]
    );
    let last_error = report["last_error_s"];
    assert!(
        last_error.is_nan() || report["elapsed_s"] - last_error > 1.0,
        "the writer still failed at the end: {report:?}\n{rest}"
    );
    // Replication is asynchronous: a write the killed primary acknowledged but had not yet sent
    // to its replica is gone. The writer has one write in flight, so at most a few.
    assert!(report["lost_count"] <= 3.0, "{report:?}\n{rest}");
    eprintln!("failover total {:?}", killed.elapsed());
}
on_both_servers!(failover_promotes_the_replica_and_clients_carry_on);

fn redis_benchmark_runs_clean(server: Server) {
    let cluster = LocalCluster::start(server, 6, 1, 5000);
    let port = cluster.base.to_string();
    let out = run(
        "redis-benchmark",
        &[
            "--cluster",
            "-p",
            &port,
            "-t",
            "set,get",
            "-n",
            "20000",
            "-P",
            "16",
            "-q",
        ],
        None,
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
        + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for test in ["SET: ", "GET: "] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(test) && l.contains("requests per second")),
            "{text}"
        );
    }
    assert!(!text.contains("rror"), "{text}");
    // The load went to every primary.
    for p in primaries(&cluster, cluster.base) {
        let stats = info_field(&mut RawConn::connect(p.port), "commandstats", "cmdstat_set");
        let calls: u64 = stats
            .strip_prefix("calls=")
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cmdstat_set {stats}"));
        assert!(calls > 0, "primary {} got no SET", p.port);
    }
}
on_both_servers!(redis_benchmark_runs_clean);

fn add_rebalance_and_remove_a_node(server: Server) {
    let mut cluster = LocalCluster::start(server, 3, 0, 5000);
    redis_py(&cluster, &["write", "pre:", "10000"]);
    let port = cluster.add_node();
    let Resp::Bulk(id) = RawConn::connect(port).call(&["CLUSTER", "MYID"]) else {
        panic!("CLUSTER MYID")
    };
    let id = String::from_utf8(id).expect("utf-8 id");
    let seed = cluster.seed();
    let rebalance = |extra: &[&str]| {
        let mut args = vec!["--cluster", "rebalance", &seed];
        args.extend_from_slice(extra);
        run_ok("redis-cli", &args, None, Duration::from_secs(120))
    };
    // The new primary takes its share: 16384 / 4 slots each, give or take rebalance's 2%.
    rebalance(&["--cluster-use-empty-masters"]);
    let shares: Vec<usize> = primaries(&cluster, cluster.base)
        .iter()
        .map(slot_count)
        .collect();
    assert_eq!(shares.len(), 4, "{shares:?}");
    assert!(shares.iter().all(|s| s.abs_diff(4096) < 100), "{shares:?}");
    assert!(RawConn::connect(port).call(&["DBSIZE"]).int() > 0);
    assert_check_clean(&cluster);
    assert_eq!(
        redis_py(&cluster, &["read", "pre:", "10000"]).trim(),
        "ok read 10000"
    );
    // Weight 0 empties it; del-node then takes it out of every node's table.
    rebalance(&["--cluster-weight", &format!("{id}=0")]);
    let emptied = cluster
        .nodes_seen_from(cluster.base)
        .into_iter()
        .find(|n| n.id == id)
        .expect("the added node");
    assert_eq!(slot_count(&emptied), 0);
    cluster.remove_last_node();
    let nodes = cluster.nodes_seen_from(cluster.base);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(|n| n.id != id));
    assert_check_clean(&cluster);
    assert_eq!(
        redis_py(&cluster, &["read", "pre:", "10000"]).trim(),
        "ok read 10000"
    );
}
on_both_servers!(add_rebalance_and_remove_a_node);

fn fix_closes_a_half_migrated_slot(server: Server) {
    let cluster = LocalCluster::start(server, 3, 0, 5000);
    redis_py(&cluster, &["write", "pre:", "10000"]);
    // 100 keys {fix}0 .. {fix}99 in one slot, left half moved: IMPORTING on the target,
    // MIGRATING on its owner.
    redis_py(&cluster, &["write", "{fix}", "100"]);
    let slot = key_slot(b"fix");
    let primaries = primaries(&cluster, cluster.base);
    let owner = primaries.iter().find(|p| owns(p, slot)).expect("owner");
    let target = primaries.iter().find(|p| p.id != owner.id).expect("target");
    let (mut from, mut to) = (RawConn::connect(owner.port), RawConn::connect(target.port));
    let slot_text = slot.to_string();
    let ok = Resp::Simple("OK".into());
    let setslot = |c: &mut RawConn, state: &str, id: &str| {
        c.call(&["CLUSTER", "SETSLOT", &slot_text, state, id])
    };
    assert_eq!(setslot(&mut to, "IMPORTING", &owner.id), ok);
    assert_eq!(setslot(&mut from, "MIGRATING", &target.id), ok);
    let keys_in_slot = from.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot_text]).int();
    assert!(keys_in_slot >= 100);
    let Resp::Array(half) = from.call(&[
        "CLUSTER",
        "GETKEYSINSLOT",
        &slot_text,
        &(keys_in_slot / 2).to_string(),
    ]) else {
        panic!("GETKEYSINSLOT")
    };
    let port = target.port.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    let half: Vec<String> = half
        .into_iter()
        .map(|k| match k {
            Resp::Bulk(k) => String::from_utf8(k).expect("utf-8 key"),
            other => panic!("key {other:?}"),
        })
        .collect();
    migrate.extend(half.iter().map(String::as_str));
    assert_eq!(from.call(&migrate), ok);
    let check = cluster_check(&cluster);
    assert!(
        check.contains(&format!("The following slots are open: {slot}")),
        "{check}"
    );
    run_ok(
        "redis-cli",
        &["--cluster", "fix", &cluster.seed()],
        None,
        Duration::from_secs(60),
    );
    assert_check_clean(&cluster);
    let now = cluster
        .nodes_seen_from(cluster.base)
        .into_iter()
        .find(|n| n.id == target.id)
        .expect("target");
    assert!(owns(&now, slot), "{now:?}");
    assert_eq!(
        to.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot_text]).int(),
        keys_in_slot
    );
    assert_eq!(
        redis_py(&cluster, &["read", "pre:", "10000"]).trim(),
        "ok read 10000"
    );
    assert_eq!(
        redis_py(&cluster, &["read", "{fix}", "100"]).trim(),
        "ok read 100"
    );
}
on_both_servers!(fix_closes_a_half_migrated_slot);

/// The redis crate's cluster client (its `cluster` feature): topology from one seed, keys over
/// every primary, a pipeline across nodes, MGET split by slot, a read from a replica.
fn redis_crate_cluster_client(cluster: &LocalCluster) {
    use redis::cluster::{cluster_pipe, ClusterClientBuilder};
    use redis::Commands;

    let seed = format!("redis://{}/", cluster.seed());
    let builder = || {
        ClusterClientBuilder::new(vec![seed.clone()])
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
    };
    let client = builder().build().expect("cluster client");
    let mut conn = client.get_connection().expect("cluster connection");
    for i in 0..1000 {
        let () = conn.set(format!("crate:{i}"), i).expect("SET");
    }
    let mut pipe = cluster_pipe();
    for i in 0..1000 {
        pipe.get(format!("crate:{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut conn).expect("pipeline");
    assert_eq!(values, (0..1000).collect::<Vec<i64>>());
    let keys: Vec<String> = (0..20).map(|i| format!("crate:{i}")).collect();
    let values: Vec<i64> = conn.mget(&keys).expect("MGET over slots");
    assert_eq!(values, (0..20).collect::<Vec<i64>>());
    let () = conn.set("{crate}r", "replicated").expect("SET");
    let replicas = builder()
        .read_from_replicas()
        .build()
        .expect("cluster client");
    let mut reader = replicas.get_connection().expect("cluster connection");
    let seen = within(Duration::from_secs(5), || {
        reader.get::<_, Option<String>>("{crate}r").expect("GET") == Some("replicated".into())
    });
    assert!(seen.is_some(), "a replica never showed the write");
}

fn client_libraries_work(server: Server) {
    let cluster = LocalCluster::start(server, 6, 1, 5000);
    let smoke = redis_py(&cluster, &["smoke"]);
    assert_eq!(smoke.trim(), "ok smoke 3 primaries 3 replicas");
    redis_crate_cluster_client(&cluster);
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/node");
    if Path::new(node_dir).join("node_modules").exists() {
        let port = cluster.base.to_string();
        let out = run(
            "node",
            &[&format!("{node_dir}/cluster_smoke.mjs"), &port],
            None,
            Duration::from_secs(60),
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("node cluster: 7 passed, 0 failed"), "{text}");
    } else {
        // scripts/test.sh installs them and requires this part to run.
        assert!(
            std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
            "no {node_dir}/node_modules: run `npm ci` there (scripts/test.sh does)"
        );
        eprintln!("node clients skipped: no {node_dir}/node_modules");
    }
}
on_both_servers!(client_libraries_work);
