//! Helpers for end-to-end tests: start the real `warpengine` binary (and a real `redis-server`
//! for differential tests) on free ports, and stop them when the test ends.

pub mod cluster;
pub mod dataset;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process that is killed (and its files removed) when dropped.
pub struct ServerProcess {
    pub port: u16,
    child: Child,
    dir: Option<PathBuf>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl ServerProcess {
    /// Takes charge of a server a test spawned itself: killed when dropped, a failing test
    /// included.
    pub fn adopt(port: u16, child: Child) -> ServerProcess {
        ServerProcess {
            port,
            child,
            dir: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`) and waits up to `timeout` for the process to exit; its
    /// exit code (None: still running, or killed by a signal).
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -s {signal}");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings every WarpEngine the tests start has unless its `extra` arguments say otherwise, as
/// Redis's own suite sets them (its `tests/assets/default.conf`): a replica's full sync starts
/// at once, without waiting `repl-diskless-sync-delay` (5 s) for more replicas to share it.
const TEST_DEFAULTS: &[&str] = &["--repl-diskless-sync-delay", "0"];

/// Starts WarpEngine on `port` with `extra` arguments; Err(its output: the log, on stdout
/// without a logfile, and stderr) if it exits during start-up.
pub fn try_start_warpengine_on(port: u16, extra: &[&str]) -> Result<ServerProcess, String> {
    let log = std::env::temp_dir().join(format!("warp-start-{port}-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(warpengine_binary())
        .arg("--port")
        .arg(port.to_string())
        .args(TEST_DEFAULTS)
        .args(extra)
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start warpengine");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            return Err(text);
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            if let Err(e) = wait_until_ready(port, &mut child, "warpengine") {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                return Err(format!("{e}: {text}"));
            }
            let _ = std::fs::remove_file(&log);
            return Ok(ServerProcess {
                port,
                child,
                dir: None,
            });
        }
        assert!(
            Instant::now() < deadline,
            "warpengine did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a server on `port` takes connections and is past loading its data: PING gets
/// any reply but -LOADING (a server listens before it loads, as Redis does).
pub fn wait_until_serving(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 64];
            let answered = s.write_all(b"PING\r\n").is_ok()
                && matches!(s.read(&mut buf), Ok(n) if n > 0 && !buf[..n].starts_with(b"-LOADING"));
            if answered {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Path of the warpengine binary built by cargo for this test run.
pub fn warpengine_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WARPENGINE_BIN") {
        return PathBuf::from(p);
    }
    // tests run from target/<profile>/deps; the binary sits in target/<profile>.
    let mut exe = std::env::current_exe().expect("test executable path");
    exe.pop();
    if exe.ends_with("deps") {
        exe.pop();
    }
    let candidate = exe.join("warpengine");
    assert!(
        candidate.exists(),
        "warpengine binary not found at {} (build it with `cargo build` first)",
        candidate.display()
    );
    candidate
}

/// Whether the server answering on `port` is process `pid`: Some(false) when another process
/// holds the port (two tests drew the same free port, and this one's server could not bind),
/// None while nothing answers yet.
fn answers_as(port: u16, pid: u32) -> Option<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    if buf[..n].starts_with(b"-NOAUTH") {
        return Some(true); // cannot ask who it is; the servers tests start have no password
    }
    if !buf[..n].starts_with(b"+PONG") {
        return None;
    }
    s.write_all(b"INFO server\r\n").ok()?;
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        text.extend_from_slice(&chunk[..n]);
        let info = String::from_utf8_lossy(&text);
        if let Some(rest) = info.split("process_id:").nth(1) {
            if let Some((id, _)) = rest.split_once("\r\n") {
                return Some(id.trim() == pid.to_string());
            }
        }
    }
}

/// Waits until `child` itself answers on `port`; an error if it exits first (a server that
/// could not bind the port exits).
fn wait_until_ready(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited during start-up: {status}"));
        }
        if answers_as(port, child.id()) == Some(true) {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `what` on a free port, on another if the one drawn was taken meanwhile.
fn start_on_free_port(what: &str, spawn: impl Fn(u16) -> Child) -> (u16, Child) {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        match wait_until_ready(port, &mut child, what) {
            Ok(()) => return (port, child),
            Err(e) => last_error = e,
        }
    }
    panic!("{last_error}");
}

/// Starts WarpEngine with extra command-line arguments on a free port.
pub fn start_warpengine(extra: &[&str]) -> ServerProcess {
    let (port, child) = start_on_free_port("warpengine", |port| {
        Command::new(warpengine_binary())
            .arg("--port")
            .arg(port.to_string())
            .args(TEST_DEFAULTS)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warpengine")
    });
    ServerProcess {
        port,
        child,
        dir: None,
    }
}

/// WarpEngine on two workers with `client-output-buffer-limit` set to `limit`, and a
/// connection to it.
pub fn start_with_output_limit(limit: &str) -> (ServerProcess, RawConn) {
    let server = start_warpengine(&["--threads", "2"]);
    let mut admin = RawConn::connect(server.port);
    let set = admin.call(&["CONFIG", "SET", "client-output-buffer-limit", limit]);
    assert_eq!(set, Resp::Simple("OK".into()));
    (server, admin)
}

/// Whether a real redis-server is installed (the test command installs it; see .ci/run).
pub fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts a real redis-server with no persistence on a free port, in its own temporary dir.
pub fn start_redis(extra: &[&str]) -> ServerProcess {
    let dir_for =
        |port: u16| std::env::temp_dir().join(format!("warp-redis-{port}-{}", std::process::id()));
    let (port, child) = start_on_free_port("redis-server", |port| {
        let dir = dir_for(port);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", dir.to_str().expect("utf-8 path")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server")
    });
    let dir = dir_for(port);
    ServerProcess {
        port,
        child,
        dir: Some(dir),
    }
}

/// A raw RESP connection: send bytes, read whole replies back as bytes.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// The socket, for a reader of its own (bytes already buffered here are dropped).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// How long a read waits for a reply (10 s unless changed): longer for a request that
    /// is slow by design, so that a loaded machine does not fail it.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// Wraps a socket opened elsewhere.
    pub fn from_stream(stream: TcpStream) -> RawConn {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Like `send`, but a broken connection is an error rather than a panic.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one command as a multibulk request.
    pub fn send_command(&mut self, args: &[&[u8]]) {
        self.send(&encode_command(args));
    }

    /// Reads exactly one complete reply (RESP2 or RESP3), returned as its raw bytes.
    /// None when the server closed the connection first.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(len) = reply_len(&self.buf, 0) {
                return Some(self.buf.drain(..len).collect());
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A signal to the test process (a child's exit) interrupts the read: retry.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Like `read_reply`, but None also when the connection broke (the server was killed).
    pub fn read_reply_opt(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(len) = reply_len(&self.buf, 0) {
                return Some(self.buf.drain(..len).collect());
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn command(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_command(args);
        self.read_reply().expect("a reply")
    }

    /// True when the server has closed the connection (reads return EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Length of the complete reply starting at `at`, or None if more bytes are needed.
pub fn reply_len(buf: &[u8], at: usize) -> Option<usize> {
    if at >= buf.len() {
        return None;
    }
    let end = line_end(buf, at)?;
    let after = end + 2;
    if matches!(buf[at], b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(') {
        // A line's text may be any bytes (a script's error reply): only lengths are parsed.
        return Some(after - at);
    }
    let header = std::str::from_utf8(&buf[at + 1..end]).ok()?;
    match buf[at] {
        b'$' | b'=' | b'!' => {
            let n: i64 = header.parse().ok()?;
            if n < 0 {
                return Some(after - at);
            }
            let total = after + n as usize + 2;
            (buf.len() >= total).then_some(total - at)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n: i64 = header.parse().ok()?;
            if n < 0 {
                return Some(after - at);
            }
            let items = if matches!(buf[at], b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = after;
            for _ in 0..items {
                pos += reply_len(buf, pos)?;
            }
            Some(pos - at)
        }
        _ => None,
    }
}

/// A RESP2 reply parsed into a value, for tests that compare states rather than bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
}

impl Resp {
    pub fn parse(buf: &[u8]) -> Resp {
        Self::parse_at(buf, 0).0
    }

    fn parse_at(buf: &[u8], at: usize) -> (Resp, usize) {
        let end = line_end(buf, at).expect("a complete reply");
        let after = end + 2;
        let line = String::from_utf8_lossy(&buf[at + 1..end]);
        match buf[at] {
            b'+' => return (Resp::Simple(line.into_owned()), after),
            b'-' => return (Resp::Error(line.into_owned()), after),
            _ => {}
        }
        let header = std::str::from_utf8(&buf[at + 1..end]).expect("utf-8 header");
        match buf[at] {
            b':' => (Resp::Int(header.parse().expect("integer")), after),
            b'$' => {
                let n: i64 = header.parse().expect("length");
                if n < 0 {
                    return (Resp::Nil, after);
                }
                let n = n as usize;
                (Resp::Bulk(buf[after..after + n].to_vec()), after + n + 2)
            }
            b'*' => {
                let n: i64 = header.parse().expect("count");
                if n < 0 {
                    return (Resp::Nil, after);
                }
                let mut items = Vec::new();
                let mut pos = after;
                for _ in 0..n {
                    let (item, next) = Self::parse_at(buf, pos);
                    items.push(item);
                    pos = next;
                }
                (Resp::Array(items), pos)
            }
            other => panic!("unexpected reply type {:?}", other as char),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Resp::Int(i) => *i,
            Resp::Bulk(b) => std::str::from_utf8(b).unwrap().parse().unwrap(),
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// A double as RESP2 sends it (a bulk string).
    pub fn float(&self) -> f64 {
        match self {
            Resp::Bulk(b) => std::str::from_utf8(b).unwrap().parse().unwrap(),
            other => panic!("not a float: {other:?}"),
        }
    }

    /// A field of a map reply (RESP2: a flat array of names and values).
    pub fn field(&self, name: &str) -> Resp {
        let Resp::Array(items) = self else {
            panic!("not a map: {self:?}")
        };
        items
            .chunks(2)
            .find(|kv| kv[0] == Resp::Bulk(name.as_bytes().to_vec()))
            .map(|kv| kv[1].clone())
            .unwrap_or_else(|| panic!("{name} not in {self:?}"))
    }
}

impl RawConn {
    /// Sends a command given as strings and parses its reply.
    pub fn call(&mut self, args: &[&str]) -> Resp {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        Resp::parse(&self.command(&args))
    }
}

/// A directory under the system's temp dir, named for the test and the process, emptied when
/// created and removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("warp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One field of an INFO section, as the text after its colon.
pub fn info_field(c: &mut RawConn, section: &str, field: &str) -> String {
    let Resp::Bulk(info) = c.call(&["INFO", section]) else {
        panic!("INFO {section}")
    };
    let text = String::from_utf8(info).expect("utf-8 INFO");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// Deterministic pseudo-random choices for the randomized differential tests (a 64-bit LCG,
/// high bits used).
pub struct SeededRandom(pub u64);

impl SeededRandom {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How many seeds the randomized differential tests replay: 4, or WARP_FUZZ_SEEDS for a
/// longer hunt (WARP_FUZZ_DEEP=1 also compares DBSIZE after every command).
pub fn fuzz_seeds() -> u64 {
    std::env::var("WARP_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Starts both servers and replays `fuzz_seeds()` seeds of `steps` commands drawn by `next`
/// (see [`SideBySide::replay_random`]); does nothing when redis-server is missing and
/// WARP_SKIP_DIFFERENTIAL is set.
pub fn fuzz_against_redis(
    steps: usize,
    mut next: impl FnMut(&mut SeededRandom) -> (Vec<String>, bool),
) {
    let Some(mut servers) = SideBySide::start() else {
        return;
    };
    for seed in 1..=fuzz_seeds() {
        servers.replay_random(seed, steps, &mut next);
    }
}

/// A real redis-server and WarpEngine side by side, one connection to each, for tests that
/// send both the same commands and compare the replies.
pub struct SideBySide {
    pub redis: RawConn,
    pub warp: RawConn,
    _servers: (ServerProcess, ServerProcess),
}

impl SideBySide {
    /// None when redis-server is not installed and WARP_SKIP_DIFFERENTIAL is set (without it,
    /// a missing redis-server fails the test).
    pub fn start() -> Option<SideBySide> {
        if !redis_available() {
            assert!(
                std::env::var("WARP_SKIP_DIFFERENTIAL").is_ok(),
                "redis-server is not installed (WARP_SKIP_DIFFERENTIAL=1 skips this test)"
            );
            return None;
        }
        // Both with the tests' settings (see `TEST_DEFAULTS`).
        let (redis, warp) = (start_redis(TEST_DEFAULTS), start_warpengine(&[]));
        Some(SideBySide {
            redis: RawConn::connect(redis.port),
            warp: RawConn::connect(warp.port),
            _servers: (redis, warp),
        })
    }

    /// From empty databases (db 0 selected; RESP3 for even seeds, RESP2 for odd), sends both
    /// servers `steps` commands drawn by `next` from `SeededRandom(seed)` and asserts the
    /// replies are the same (as sorted elements when `next` says the reply is unordered),
    /// showing the commands before a mismatch.
    pub fn replay_random(
        &mut self,
        seed: u64,
        steps: usize,
        mut next: impl FnMut(&mut SeededRandom) -> (Vec<String>, bool),
    ) {
        let mut r = SeededRandom(seed);
        let mut history: Vec<String> = Vec::new();
        // For hunting a difference that shows late: compare DBSIZE after every command.
        let deep = std::env::var("WARP_FUZZ_DEEP").is_ok();
        // HELLO's reply names the server: not compared.
        self.both(&["HELLO", if seed.is_multiple_of(2) { "3" } else { "2" }]);
        self.both(&["FLUSHALL"]);
        self.both(&["SELECT", "0"]);
        for _ in 0..steps {
            let (args, unordered) = next(&mut r);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            history.push(args.join(" ").chars().take(120).collect());
            let (expected, got) = self.both(&args);
            let same = if unordered {
                sorted_elements(&expected) == sorted_elements(&got)
            } else {
                expected == got
            };
            assert!(
                same,
                "seed {seed}: redis {:?}, warpengine {:?}, after:\n{}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&got),
                history[history.len().saturating_sub(20)..].join("\n")
            );
            if deep {
                let (expected, got) = self.both(&["DBSIZE"]);
                assert_eq!(
                    expected,
                    got,
                    "seed {seed}: DBSIZE after {}",
                    args.join(" ")
                );
            }
        }
    }

    /// Both replies to `args`: (Redis's, WarpEngine's).
    pub fn both(&mut self, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        (self.redis.command(&bytes), self.warp.command(&bytes))
    }
}

/// A top-level array's or RESP3 set's elements (each a complete reply), or a RESP3 map's
/// key-value pairs, sorted, for comparing unordered replies; any other reply as the one
/// element. The header stays first.
pub fn sorted_elements(reply: &[u8]) -> Vec<Vec<u8>> {
    let per_item = match reply.first() {
        Some(b'*' | b'~') => 1,
        Some(b'%') => 2,
        _ => return vec![reply.to_vec()],
    };
    let header_end = reply.iter().position(|&b| b == b'\n').expect("header") + 1;
    let mut at = header_end;
    let mut items = Vec::new();
    while at < reply.len() {
        let start = at;
        for _ in 0..per_item {
            at += reply_len(reply, at).expect("complete element");
        }
        items.push(reply[start..at].to_vec());
    }
    items.sort();
    items.insert(0, reply[..header_end].to_vec());
    items
}

/// Runs python3 with `args`; whether it succeeded, and its stdout then stderr.
pub fn run_python(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// INFO's `blocked_clients`.
pub fn blocked_clients(c: &mut RawConn) -> usize {
    let info = c.command(&[b"INFO", b"clients"]);
    let text = String::from_utf8_lossy(&info).to_string();
    text.split("blocked_clients:")
        .nth(1)
        .and_then(|s| s.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .expect("blocked_clients in INFO")
}

/// Waits (up to 5 s) until `n` clients are blocked.
pub fn wait_for_blocked(c: &mut RawConn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_clients(c) != n {
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What redis-cli prints for `args` against the server on `port` (not a terminal: bare values).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `done` every 50 ms until it holds; fails the test after 20 seconds, naming `what`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
