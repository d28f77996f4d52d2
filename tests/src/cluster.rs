//! A local multi-node Redis Cluster for tests, started and stopped by `scripts/cluster-local.sh`
//! (the one home of how such a cluster is made), of real redis-server nodes (the reference,
//! which proves a test right) or of WarpEngine nodes (the same test, the binary switched).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::{warpengine_binary, RawConn, Resp};

/// Which server the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Redis,
    WarpEngine,
    /// redis-server and WarpEngine nodes in turn (one cluster bus protocol, two servers).
    Mixed,
}

/// A cluster made by `cluster-local.sh start`, stopped (nodes ended, files removed) when dropped.
pub struct LocalCluster {
    /// The first node's port; the nodes listen on `base .. base + nodes`.
    pub base: u16,
    pub nodes: u16,
    dir: PathBuf,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/cluster-local.sh");

/// Client ports are drawn from 20000..22760, so that the bus ports (+10000) stay below the
/// kernel's ephemeral range (32768..), where `free_port()` and outgoing connections live.
const PORTS: std::ops::Range<u16> = 20000..22760;

/// Each cluster gets a block of this many ports (so it can grow: `add_node`).
const BLOCK: u16 = 10;

/// The next block of ports this process may try; blocks are never handed out twice, so tests
/// running side by side cannot draw the same ones.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// The first port of a block of `BLOCK` free ports whose bus ports (+10000) are free as well.
fn free_port_block() -> u16 {
    let blocks = (PORTS.end - PORTS.start) / BLOCK;
    // Another test process (another checkout's run) starts elsewhere in the range.
    let offset = (std::process::id() % u32::from(blocks)) as u16;
    for _ in 0..blocks {
        let block = (NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) + offset) % blocks;
        let base = PORTS.start + block * BLOCK;
        let free = (base..base + BLOCK).all(|p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no block of {BLOCK} free ports in {PORTS:?}");
}

impl LocalCluster {
    /// Starts `nodes` nodes of `server` with `replicas` replicas per primary and
    /// `cluster-node-timeout` `node_timeout_ms`; returns when the cluster is ready (see the
    /// script), panics with the script's report if it is not within 60 seconds.
    pub fn start(server: Server, nodes: u16, replicas: u16, node_timeout_ms: u32) -> LocalCluster {
        assert!(nodes <= BLOCK, "at most {BLOCK} nodes");
        let base = free_port_block();
        let dir = std::env::temp_dir().join(format!("warp-cluster-{base}-{}", std::process::id()));
        let warpengine = || warpengine_binary().to_string_lossy().into_owned();
        let servers = match server {
            Server::Redis => "redis-server".to_string(),
            Server::WarpEngine => warpengine(),
            Server::Mixed => format!("redis-server,{}", warpengine()),
        };
        let cluster = LocalCluster { base, nodes, dir };
        cluster.script(
            &[
                "start",
                &nodes.to_string(),
                &base.to_string(),
                "--replicas",
                &replicas.to_string(),
            ],
            &[
                ("CLUSTER_SERVER", &servers),
                ("CLUSTER_NODE_TIMEOUT", &node_timeout_ms.to_string()),
                ("CLUSTER_TIMEOUT", "60"),
            ],
        );
        cluster
    }

    /// `cluster-local.sh add`: one more node, a primary without slots; its port.
    pub fn add_node(&mut self) -> u16 {
        assert!(self.nodes < BLOCK, "at most {BLOCK} nodes");
        let out = self.script(&["add", &self.base.to_string()], &[]);
        let port = out.trim().parse().expect("the new node's port");
        assert_eq!(port, self.base + self.nodes, "the next port");
        self.nodes += 1;
        port
    }

    /// `cluster-local.sh remove`: `redis-cli --cluster del-node` of the last node added (it must
    /// own no slot), which is then stopped.
    pub fn remove_last_node(&mut self) {
        let port = self.base + self.nodes - 1;
        self.script(&["remove", &self.base.to_string(), &port.to_string()], &[]);
        self.nodes -= 1;
    }

    /// Runs `cluster-local.sh args` for this cluster; its stdout, or a panic with its report.
    fn script(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .args(args)
            .env("CLUSTER_DIR", &self.dir)
            .envs(env.iter().copied())
            .output()
            .expect("run scripts/cluster-local.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cluster-local.sh {} ({env:?}) failed:\n{stdout}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.base..self.base + self.nodes
    }

    /// `127.0.0.1:port` of the first node, where clients and `redis-cli --cluster` start.
    pub fn seed(&self) -> String {
        format!("127.0.0.1:{}", self.base)
    }

    /// The cluster as a node that still answers sees it (`CLUSTER NODES`).
    pub fn nodes_seen_from(&self, port: u16) -> Vec<NodeLine> {
        let mut c = RawConn::connect(port);
        let Resp::Bulk(text) = c.call(&["CLUSTER", "NODES"]) else {
            panic!("CLUSTER NODES on {port}")
        };
        String::from_utf8(text)
            .expect("utf-8 CLUSTER NODES")
            .lines()
            .map(NodeLine::parse)
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Not `script`: no panic while dropping (the test may be unwinding already).
        let _ = Command::new("bash")
            .args([SCRIPT, "stop", &self.base.to_string()])
            .env("CLUSTER_DIR", &self.dir)
            .status();
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The primary's id for a replica.
    pub primary: Option<String>,
    /// Slot ranges (`0-5460`, `7000`), open-slot markers left out.
    pub slots: Vec<String>,
}

impl NodeLine {
    fn parse(line: &str) -> NodeLine {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f.len() >= 8, "CLUSTER NODES line {line:?}");
        // ip:port@busport[,hostname]
        let port = f[1]
            .split(['@', ','])
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("address in {line:?}"));
        NodeLine {
            id: f[0].to_string(),
            port,
            flags: f[2].split(',').map(str::to_string).collect(),
            primary: (f[3] != "-").then(|| f[3].to_string()),
            slots: f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| s.to_string())
                .collect(),
        }
    }

    pub fn is_primary(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Polls `done` every 100 ms until it holds or `limit` passes; how long it took, or None.
pub fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
