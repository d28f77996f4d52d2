//! Cluster mode on one WarpEngine node (no cluster bus yet): cluster clients (redis-py's
//! `RedisCluster`, `redis-cli -c`, `redis-cli --cluster check`) against a node owning every slot, and `nodes.conf` keeping
//! the node id and slots across a restart. The replies themselves are compared with Redis by
//! the differential corpus (`tests/corpus/cluster`).

use std::process::Command;
use std::time::{Duration, Instant};

use warpengine_tests::{start_warpengine, try_start_warpengine_on, RawConn, Resp, TempDir};

fn cluster_node(dir: &TempDir) -> warpengine_tests::ServerProcess {
    let dir = dir.0.to_str().expect("utf-8 path");
    start_warpengine(&["--cluster-enabled", "yes", "--dir", dir])
}

fn bulk(reply: Resp) -> String {
    match reply {
        Resp::Bulk(b) => String::from_utf8(b).expect("utf-8"),
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn own_every_slot(conn: &mut RawConn) {
    let added = conn.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    assert_eq!(added, Resp::Simple("OK".into()));
    // As Redis's, a new primary's state stays fail for its first two seconds (and for at
    // least half a second after it had no slot: no majority).
    warpengine_tests::wait_for("cluster_state:ok", || {
        bulk(conn.call(&["CLUSTER", "INFO"])).starts_with("cluster_state:ok\r\n")
    });
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn cluster_clients_work_against_one_node() {
    let dir = TempDir::new("cluster-clients");
    let node = cluster_node(&dir);
    let mut conn = RawConn::connect(node.port);
    // No slot yet: every key is refused.
    assert_eq!(
        conn.call(&["SET", "a", "1"]),
        Resp::Error("CLUSTERDOWN Hash slot not served".into())
    );
    own_every_slot(&mut conn);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/redis_py_cluster.py");
    let out = Command::new("python3")
        .args([script, &node.port.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "redis-py RedisCluster: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 1002");

    assert_eq!(redis_cli(node.port, &["SET", "{u}1", "x"]).trim(), "OK");
    assert_eq!(redis_cli(node.port, &["GET", "{u}1"]).trim(), "x");
    assert_eq!(
        redis_cli(node.port, &["MGET", "a", "b"]).trim(),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // redis-cli's own cluster tooling reads NODES, INFO and SLOTS: a clean check.
    let check = redis_cli(node.port, &["--cluster", "check", &node.addr()]);
    assert!(
        check.contains("[OK] All nodes agree about slots configuration."),
        "{check}"
    );
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    assert!(
        !check.contains("[ERR]") && !check.contains("[WARNING]"),
        "{check}"
    );
    assert_eq!(
        redis_cli(node.port, &["CLUSTER", "COUNTKEYSINSLOT", "12291"]).trim(),
        {
            // key:N keys of redis-py's 1,000 that hash to slot 12291, counted here the same way.
            let n = (0..1000)
                .filter(|i| warpengine::slot::key_slot(format!("key:{i}").as_bytes()) == 12291)
                .count();
            n.to_string()
        }
    );
}

#[test]
fn nodes_conf_keeps_the_id_and_slots_across_a_restart() {
    let dir = TempDir::new("cluster-nodes-conf");
    let (id, nodes) = {
        let node = cluster_node(&dir);
        let mut conn = RawConn::connect(node.port);
        own_every_slot(&mut conn);
        assert_eq!(
            conn.call(&["CLUSTER", "DELSLOTSRANGE", "100", "199"]),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            conn.call(&["CLUSTER", "BUMPEPOCH"]),
            Resp::Simple("BUMPED 1".into())
        );
        let id = bulk(conn.call(&["CLUSTER", "MYID"]));
        let nodes = bulk(conn.call(&["CLUSTER", "NODES"]));
        assert!(nodes.ends_with(" connected 0-99 200-16383\n"), "{nodes}");
        (id, nodes)
    };
    let conf = std::fs::read_to_string(dir.0.join("nodes.conf")).expect("nodes.conf");
    assert!(conf.starts_with(&nodes), "{conf}");
    assert!(
        conf.ends_with("vars currentEpoch 1 lastVoteEpoch 0\n"),
        "{conf}"
    );

    let node = cluster_node(&dir);
    let mut conn = RawConn::connect(node.port);
    assert_eq!(bulk(conn.call(&["CLUSTER", "MYID"])), id);
    let after = bulk(conn.call(&["CLUSTER", "NODES"]));
    // The same line, but for the port (a new free one).
    let strip_port = |s: &str| {
        s.split(' ')
            .filter(|f| !f.starts_with(':'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(strip_port(&after), strip_port(&nodes));
    let info = bulk(conn.call(&["CLUSTER", "INFO"]));
    assert!(info.contains("cluster_slots_assigned:16284\r\n"), "{info}");
    assert!(info.contains("cluster_my_epoch:1\r\n"), "{info}");
}

/// Redis logs "Cluster state changed: ok" (and "fail") when the state flips; tools wait for
/// that line (redis-rs's test cluster reads each node's log for it).
#[test]
fn the_log_says_when_the_cluster_state_changes() {
    let dir = TempDir::new("cluster-state-log");
    let log = dir.0.join("node.log");
    let node = start_warpengine(&[
        "--cluster-enabled",
        "yes",
        "--dir",
        dir.0.to_str().expect("utf-8 path"),
        "--logfile",
        log.to_str().expect("utf-8 path"),
    ]);
    let lines = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(needle)
            .count()
    };
    let wait_for = |needle: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(needle) < count {
            assert!(Instant::now() < deadline, "no {needle:?} in the log");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut conn = RawConn::connect(node.port);
    // Without slots the state is fail from the start: nothing to say.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines("Cluster state changed"), 0);
    own_every_slot(&mut conn);
    wait_for("Cluster state changed: ok", 1);
    assert_eq!(
        conn.call(&["CLUSTER", "DELSLOTS", "7"]),
        Resp::Simple("OK".into())
    );
    wait_for("Cluster state changed: fail", 1);
    assert_eq!(
        conn.call(&["CLUSTER", "ADDSLOTS", "7"]),
        Resp::Simple("OK".into())
    );
    wait_for("Cluster state changed: ok", 2);
    assert_eq!(lines("Cluster state changed: fail"), 1);
}

/// A new primary's state stays fail for its first two seconds whatever its slots say (Redis's
/// `CLUSTER_WRITABLE_DELAY`), then turns ok; a primary that had no slots for longer than that
/// (no majority: a minority partition) stays fail for the rejoin delay, `cluster-node-timeout`
/// (at least 0.5 s), once it has some. The same on redis-server: Redis's own cluster units
/// rely on the first (their SPUBLISH test ran before the primary knew its replicas).
#[test]
fn a_primary_s_state_is_held_at_fail_as_redis_holds_it() {
    let dir = TempDir::new("cluster-state-holds");
    let d = dir.0.to_str().expect("utf-8 path");
    let timeout = ["--cluster-node-timeout", "1500"];
    let warp =
        start_warpengine(&[&["--cluster-enabled", "yes", "--dir", d][..], &timeout].concat());
    let redis =
        warpengine_tests::start_redis(&[&["--cluster-enabled", "yes"][..], &timeout].concat());
    let state = |c: &mut RawConn| bulk(c.call(&["CLUSTER", "INFO"]))[..20].to_string();
    for (name, server) in [("warpengine", &warp), ("redis-server", &redis)] {
        let mut conn = RawConn::connect(server.port);
        let started = Instant::now();
        let added = conn.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        assert_eq!(added, Resp::Simple("OK".into()), "{name}");
        std::thread::sleep(Duration::from_millis(500));
        assert!(state(&mut conn).starts_with("cluster_state:fail"), "{name}");
        warpengine_tests::wait_for("cluster_state:ok", || {
            state(&mut conn).starts_with("cluster_state:ok")
        });
        assert!(started.elapsed() > Duration::from_millis(1000), "{name}");
        // No slots for a while: no majority. Slots again: fail for the rejoin delay (1.5 s).
        assert_eq!(
            conn.call(&["CLUSTER", "FLUSHSLOTS"]),
            Resp::Simple("OK".into())
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(state(&mut conn).starts_with("cluster_state:fail"), "{name}");
        let added = Instant::now();
        conn.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        std::thread::sleep(Duration::from_millis(700));
        assert!(state(&mut conn).starts_with("cluster_state:fail"), "{name}");
        warpengine_tests::wait_for("cluster_state:ok", || {
            state(&mut conn).starts_with("cluster_state:ok")
        });
        assert!(added.elapsed() > Duration::from_millis(1200), "{name}");
    }
}

#[test]
fn a_corrupted_nodes_conf_stops_the_server() {
    let dir = TempDir::new("cluster-corrupt-conf");
    std::fs::write(dir.0.join("nodes.conf"), "not a nodes file\n").expect("write");
    let port = warpengine_tests::free_port();
    let d = dir.0.to_str().expect("utf-8 path");
    let started = Instant::now();
    let err = try_start_warpengine_on(port, &["--cluster-enabled", "yes", "--dir", d])
        .err()
        .expect("the server must refuse to start");
    assert!(err.contains("corrupted cluster config file"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn cluster_commands_are_refused_without_cluster_mode() {
    let node = start_warpengine(&[]);
    let mut conn = RawConn::connect(node.port);
    let disabled = Resp::Error("ERR This instance has cluster support disabled".into());
    assert_eq!(conn.call(&["CLUSTER", "INFO"]), disabled);
    assert_eq!(conn.call(&["ASKING"]), disabled);
    assert_eq!(conn.call(&["SELECT", "1"]), Resp::Simple("OK".into()));
}

/// CONFIG SET cluster-announce-port / -bus-port shows in CLUSTER NODES at once, and 0 brings
/// the node's own ports back (Redis's cluster/announced-endpoints unit).
#[test]
fn announced_ports_change_at_run_time() {
    let dir = TempDir::new("cluster-announce");
    let node = cluster_node(&dir);
    let mut c = RawConn::connect(node.port);
    let myself = |c: &mut RawConn| {
        bulk(c.call(&["CLUSTER", "NODES"]))
            .lines()
            .find(|l| l.contains("myself"))
            .expect("myself")
            .to_string()
    };
    let own = format!(":{}@{} ", node.port, node.port + 10000);
    assert!(myself(&mut c).contains(&own), "{}", myself(&mut c));
    c.call(&["CONFIG", "SET", "cluster-announce-port", "12345"]);
    assert!(myself(&mut c).contains(&format!(":12345@{} ", node.port + 10000)));
    c.call(&["CONFIG", "SET", "cluster-announce-bus-port", "23456"]);
    assert!(
        myself(&mut c).contains(":12345@23456 "),
        "{}",
        myself(&mut c)
    );
    c.call(&["CONFIG", "SET", "cluster-announce-port", "0"]);
    c.call(&["CONFIG", "SET", "cluster-announce-bus-port", "0"]);
    assert!(myself(&mut c).contains(&own), "{}", myself(&mut c));
}
