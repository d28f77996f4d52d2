//! Differential test: every corpus file under `tests/corpus/*.txt` runs against a real
//! redis-server and against WarpEngine, and the raw reply bytes of every command must match.
//!
//! Corpus format (also in `tests/corpus/README.md`):
//!
//! * One command per line. Arguments are split with redis-cli's quoting rules: whitespace
//!   separates arguments; `"..."` understands `\n \r \t \b \a \\ \"` and `\xHH`; `'...'`
//!   understands only `\'`. A closing quote must be followed by whitespace or the line end.
//! * Blank lines and lines starting with `#` are ignored.
//! * Directives (lines starting with `!`):
//!   - `!resp3` / `!resp2`: send `HELLO 3` / `HELLO 2` on both connections (the HELLO reply
//!     itself is not compared: it carries the server's id, version and mode).
//!   - `!sleep MS`: sleep MS milliseconds.
//!   - `!sorted`: for the next command, sort the elements of a top-level array/set reply
//!     (or the key-value pairs of a RESP3 map) before comparing, for KEYS and other
//!     unordered replies (CONFIG GET of several parameters comes in hash order in Redis).
//!   - `!skip-compare`: run the next command on both servers but do not compare its replies
//!     (RANDOMKEY on a populated db, TIME, CLIENT ID ...).
//!   - `!raw "..."`: send the bytes (same escapes as a double-quoted argument) instead of a
//!     command, and compare everything that comes back: the replies, and whether the server
//!     then closed the connection (after a protocol error both do). After a close, both
//!     connections are reopened (RESP2, db 0, no name) for the rest of the file.
//!   - `!pad N`: send N bytes of `a`, and compare what comes back as for `!raw` (to drive a
//!     request past a size limit).
//!   - `!reconnect`: reopen both connections (after a request that leaves them waiting).
//!   - `!events resp2|resp3|off`: from here on, a listener connection on each server (in that
//!     protocol) subscribed to `__key*__:*` collects the keyspace notifications each command
//!     raises, and they are compared byte for byte after the command's reply (a PUBLISH on a
//!     sync channel marks where one command's events end).
//! * `CLIENT REPLY OFF|SKIP|ON` are followed: no reply is read while replies are off.
//! * Each file starts with `FLUSHALL` on both servers and fresh connections. CONFIG SET
//!   changes persist across files, so a file that changes a parameter must restore it.
//! * At the end of each file a `PING` is compared, so a server that sent a reply the other
//!   one did not shows up as a mismatch.
//!
//! Allowed differences: commands whose replies legitimately differ are not compared; use
//! `!skip-compare` for them. See [`ALLOWED_DIFFERENCES`].
//!
//! Files under `tests/corpus/requirepass/` run against both servers started with
//! `--requirepass warp-corpus`: their connections start unauthenticated.
//!
//! Files under `tests/corpus/cluster/` run against both servers started with
//! `--cluster-enabled yes` as single-node clusters owning every slot (node ids differ: compare
//! nothing that shows them).
//!
//! Without redis-server installed this test fails, unless `WARP_SKIP_DIFFERENTIAL=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warpengine_tests::{
    encode_command, redis_available, reply_len, start_redis, start_warpengine, RawConn, Resp,
    TempDir,
};

/// Replies that differ between WarpEngine and Redis by design; such commands must be run with
/// `!skip-compare` (or not at all) in the corpus.
#[allow(dead_code)]
const ALLOWED_DIFFERENCES: &[&str] = &[
    "INFO: server-specific fields and sections",
    "CLIENT LIST / CLIENT INFO: ids, addresses, ages, buffer sizes",
    "CLIENT ID: connection ids depend on connection history",
    "HELLO's success reply: server name, version, id, mode",
    "COMMAND INFO / DOCS / COUNT / LIST: Redis has hundreds more commands",
    "run ids, TIME, LASTSAVE, RANDOMKEY on a multi-key db",
    "OBJECT FREQ / IDLETIME: depend on the LFU/LRU clocks",
];

/// Generous: a few cases allocate 512 MB (SETBIT at the largest offset), which can take
/// seconds on a loaded machine; a shorter wait made such a case look like a missing reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// For `!raw`: how long to wait for a reply that may legitimately never come.
const RAW_FIRST_TIMEOUT: Duration = Duration::from_millis(500);
const RAW_MORE_TIMEOUT: Duration = Duration::from_millis(100);

enum Read1 {
    Reply(Vec<u8>),
    Closed,
    Timeout,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(port: u16, what: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("cannot connect to {what} on port {port} (did it crash?): {e}"))?;
        stream.set_nodelay(true).expect("nodelay");
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    fn read(&mut self, timeout: Duration) -> Read1 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(len) = reply_len(&self.buf, 0) {
                return Read1::Reply(self.buf.drain(..len).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Read1::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Read1::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Read1::Timeout
                }
                Err(_) => return Read1::Closed,
            }
        }
    }

    /// One expected reply, rendered for comparison.
    fn reply(&mut self) -> Vec<u8> {
        match self.read(REPLY_TIMEOUT) {
            Read1::Reply(r) => r,
            Read1::Closed => b"<connection closed>".to_vec(),
            Read1::Timeout => b"<no reply>".to_vec(),
        }
    }

    /// Everything that comes back after a raw send, and whether the connection closed.
    fn raw_replies(&mut self) -> (Vec<u8>, bool) {
        self.raw_replies_within(RAW_FIRST_TIMEOUT)
    }

    /// As [`Self::raw_replies`], waiting up to `first` for the first reply.
    fn raw_replies_within(&mut self, first: Duration) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut timeout = first;
        loop {
            match self.read(timeout) {
                Read1::Reply(r) => out.extend_from_slice(&r),
                Read1::Closed => {
                    out.extend_from_slice(b"<connection closed>");
                    return (out, true);
                }
                Read1::Timeout => {
                    if !self.buf.is_empty() {
                        out.extend_from_slice(b"<partial>");
                        out.append(&mut self.buf);
                    }
                    return (out, false);
                }
            }
            timeout = RAW_MORE_TIMEOUT;
        }
    }
}

/// Splits a line into arguments with redis-cli's (sdssplitargs) rules.
fn split_args(line: &str) -> Result<Vec<Vec<u8>>, String> {
    // The server's own inline-command splitter: the same rules as redis-cli's sdssplitargs.
    warpengine::protocol::parse::split_args(line.as_bytes())
        .map(|args| args.into_iter().map(|a| a.to_vec()).collect())
        .ok_or_else(|| "unbalanced quotes".to_string())
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &c in bytes {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Sorts the elements of a top-level array or set reply, or the key-value pairs of a map;
/// other replies are returned as-is.
fn sort_reply(reply: &[u8]) -> Vec<u8> {
    if reply.is_empty() || !matches!(reply[0], b'*' | b'~' | b'%') {
        return reply.to_vec();
    }
    let per_item = if reply[0] == b'%' { 2 } else { 1 };
    let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return reply.to_vec();
    };
    let mut pos = end + 2;
    let mut items = Vec::new();
    while pos < reply.len() {
        let start = pos;
        for _ in 0..per_item {
            let Some(len) = reply_len(reply, pos) else {
                return reply.to_vec();
            };
            pos += len;
        }
        items.push(&reply[start..pos]);
    }
    items.sort();
    let mut out = reply[..end + 2].to_vec();
    for i in items {
        out.extend_from_slice(i);
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum ReplyMode {
    On,
    Off,
    Skip,
}

/// Both connections of one file, with the client-side model of CLIENT REPLY.
struct Pair {
    ports: (u16, u16),
    redis: Conn,
    warp: Conn,
    mode: ReplyMode,
    /// Under `!events`: the listeners (Redis's, WarpEngine's) and the next sync number.
    listeners: Option<(Conn, Conn, u64)>,
}

/// The channel whose messages mark the end of one command's keyspace events.
const SYNC_CHANNEL: &[u8] = b"corpus-events-sync";

/// A listener for `!events`: subscribed to every keyspace and keyevent channel and to the
/// sync channel, in RESP3 when asked.
fn listener(port: u16, what: &str, resp3: bool) -> Result<Conn, String> {
    let mut c = Conn::connect(port, what)?;
    if resp3 {
        c.send(&encode_command(&[b"HELLO", b"3"]));
        c.reply();
    }
    c.send(&encode_command(&[b"PSUBSCRIBE", b"__key*__:*"]));
    c.reply();
    c.send(&encode_command(&[b"SUBSCRIBE", SYNC_CHANNEL]));
    c.reply();
    Ok(c)
}

/// What a listener received up to the sync message `n` (which is left out).
fn events_until_sync(c: &mut Conn, n: u64) -> Vec<u8> {
    let marker = format!("${}\r\n{}\r\n", n.to_string().len(), n);
    let mut out = Vec::new();
    loop {
        let frame = c.reply();
        let is_sync = frame.windows(SYNC_CHANNEL.len()).any(|w| w == SYNC_CHANNEL)
            && frame.ends_with(marker.as_bytes());
        if is_sync {
            return out;
        }
        if frame.starts_with(b"<") {
            out.extend_from_slice(&frame);
            return out;
        }
        out.extend_from_slice(&frame);
    }
}

impl Pair {
    fn open(ports: (u16, u16)) -> Result<Pair, String> {
        Ok(Pair {
            ports,
            redis: Conn::connect(ports.0, "redis-server")?,
            warp: Conn::connect(ports.1, "warpengine")?,
            mode: ReplyMode::On,
            listeners: None,
        })
    }

    fn reopen(&mut self) -> Result<(), String> {
        let listeners = self.listeners.take();
        *self = Pair::open(self.ports)?;
        self.listeners = listeners;
        Ok(())
    }

    /// Under `!events`: marks the end of the last command's events on both servers and
    /// returns what each listener received (Redis's, WarpEngine's).
    fn events(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let (redis_listener, warp_listener, next) = self.listeners.as_mut()?;
        *next += 1;
        let n = next.to_string();
        let publish = encode_command(&[b"PUBLISH", SYNC_CHANNEL, n.as_bytes()]);
        let sync = |c: &mut Conn| {
            c.send(&publish);
            c.reply();
        };
        // On a connection of its own: the file's connection may be subscribed or replying off.
        let mut redis = Conn::connect(self.ports.0, "redis-server").ok()?;
        let mut warp = Conn::connect(self.ports.1, "warpengine").ok()?;
        sync(&mut redis);
        sync(&mut warp);
        Some((
            events_until_sync(redis_listener, *next),
            events_until_sync(warp_listener, *next),
        ))
    }

    fn both(&mut self, bytes: &[u8]) -> (bool, bool) {
        (self.redis.send(bytes), self.warp.send(bytes))
    }

    /// Whether this command gets a reply, updating the CLIENT REPLY model.
    fn expects_reply(&mut self, args: &[Vec<u8>]) -> bool {
        let before = self.mode;
        if args.len() == 3
            && args[0].eq_ignore_ascii_case(b"client")
            && args[1].eq_ignore_ascii_case(b"reply")
        {
            let arg = &args[2];
            if arg.eq_ignore_ascii_case(b"on") {
                self.mode = ReplyMode::On;
                return true;
            } else if arg.eq_ignore_ascii_case(b"off") {
                self.mode = ReplyMode::Off;
                return false;
            } else if arg.eq_ignore_ascii_case(b"skip") {
                if self.mode == ReplyMode::On {
                    self.mode = ReplyMode::Skip;
                }
                return false;
            }
        }
        match before {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::Skip => {
                self.mode = ReplyMode::On;
                false
            }
        }
    }
}

struct Mismatches(Vec<String>);

impl Mismatches {
    fn check(&mut self, file: &str, line: usize, what: &str, redis: &[u8], warp: &[u8]) {
        if redis != warp {
            self.0.push(format!(
                "{file}:{line}: {what}\n    redis: \"{}\"\n    warp:  \"{}\"",
                escape(redis),
                escape(warp)
            ));
        }
    }
}

/// Runs one corpus file; `Err` when a server stopped accepting connections.
/// `password`: the servers' requirepass; the FLUSHALL before the file authenticates with it, the
/// file's own connections start unauthenticated.
fn run_file(
    path: &Path,
    ports: (u16, u16),
    password: Option<&str>,
    mismatches: &mut Mismatches,
) -> Result<usize, String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut pair = Pair::open(ports)?;
    for conn in [&mut pair.redis, &mut pair.warp] {
        if let Some(password) = password {
            conn.send(&encode_command(&[b"AUTH", password.as_bytes()]));
            assert!(
                matches!(conn.read(REPLY_TIMEOUT), Read1::Reply(r) if r == b"+OK\r\n"),
                "{name}: AUTH failed"
            );
        }
        conn.send(&encode_command(&[b"FLUSHALL"]));
        assert!(
            matches!(conn.read(REPLY_TIMEOUT), Read1::Reply(r) if r == b"+OK\r\n"),
            "{name}: FLUSHALL failed"
        );
    }
    if password.is_some() {
        pair.reopen()?;
    }
    let (mut sorted, mut skip) = (false, false);
    let mut cases = 0;
    for (n, raw_line) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(directive) = line.strip_prefix('!') {
            let (word, rest) = directive
                .split_once(char::is_whitespace)
                .map_or((directive, ""), |(w, r)| (w, r.trim()));
            match word {
                "resp3" | "resp2" => {
                    let version: &[u8] = if word == "resp3" { b"3" } else { b"2" };
                    pair.both(&encode_command(&[b"HELLO", version]));
                    pair.redis.reply();
                    pair.warp.reply();
                }
                "sleep" => {
                    let ms: u64 = rest.parse().expect("!sleep MS");
                    std::thread::sleep(Duration::from_millis(ms));
                }
                "sorted" => sorted = true,
                "skip-compare" => skip = true,
                "raw" | "pad" => {
                    let bytes = if word == "pad" {
                        let n: usize = rest.parse().expect("!pad N");
                        vec![b'a'; n]
                    } else {
                        split_args(rest)
                            .ok()
                            .filter(|a| a.len() == 1)
                            .unwrap_or_else(|| panic!("{name}:{lineno}: !raw needs one argument"))
                            .remove(0)
                    };
                    pair.both(&bytes);
                    let (mut r, mut r_closed) = pair.redis.raw_replies();
                    let (mut w, mut w_closed) = pair.warp.raw_replies();
                    // One side answered more: the other may only be slow (a loaded machine),
                    // so it gets a longer wait before the two are compared.
                    if r != w && w.starts_with(&r) && !r_closed {
                        let (more, closed) = pair.redis.raw_replies_within(REPLY_TIMEOUT);
                        r.extend_from_slice(&more);
                        r_closed = closed;
                    } else if r != w && r.starts_with(&w) && !w_closed {
                        let (more, closed) = pair.warp.raw_replies_within(REPLY_TIMEOUT);
                        w.extend_from_slice(&more);
                        w_closed = closed;
                    }
                    cases += 1;
                    mismatches.check(&name, lineno, line, &r, &w);
                    if r_closed || w_closed {
                        pair.reopen()?;
                    }
                }
                "reconnect" => pair.reopen()?,
                "events" => {
                    pair.listeners = match rest {
                        "off" => None,
                        "resp2" | "resp3" => Some((
                            listener(ports.0, "redis-server", rest == "resp3")?,
                            listener(ports.1, "warpengine", rest == "resp3")?,
                            0,
                        )),
                        _ => panic!("{name}:{lineno}: !events resp2|resp3|off"),
                    }
                }
                _ => panic!("{name}:{lineno}: unknown directive {line}"),
            }
            continue;
        }
        let args = split_args(line).unwrap_or_else(|e| panic!("{name}:{lineno}: {e}"));
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        pair.both(&encode_command(&refs));
        cases += 1;
        if pair.expects_reply(&args) {
            let (mut r, mut w) = (pair.redis.reply(), pair.warp.reply());
            if sorted {
                r = sort_reply(&r);
                w = sort_reply(&w);
            }
            if !skip {
                mismatches.check(&name, lineno, line, &r, &w);
            }
        }
        if let Some((r, w)) = pair.events() {
            mismatches.check(&name, lineno, &format!("{line} (events)"), &r, &w);
        }
        sorted = false;
        skip = false;
    }
    // Any stray reply shows up here.
    if pair.mode != ReplyMode::On {
        pair.both(&encode_command(&[b"CLIENT", b"REPLY", b"ON"]));
        let (r, w) = (pair.redis.reply(), pair.warp.reply());
        mismatches.check(&name, 0, "(end of file) CLIENT REPLY ON", &r, &w);
    }
    pair.both(&encode_command(&[b"PING"]));
    let (r, w) = (pair.redis.reply(), pair.warp.reply());
    mismatches.check(&name, 0, "(end of file) PING", &r, &w);
    Ok(cases)
}

fn corpus_files(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .filter(|p| selected(p))
        .collect();
    files.sort();
    files
}

/// `WARP_CORPUS=hashes,sets` runs only those files (by name without `.txt`); unset runs all.
fn selected(path: &Path) -> bool {
    match std::env::var("WARP_CORPUS") {
        Ok(list) if !list.is_empty() => {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            list.split(',').any(|name| name.trim() == stem)
        }
        _ => true,
    }
}

/// How the servers of a corpus folder start.
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    /// `--requirepass`: connections start unauthenticated.
    Password(&'static str),
    /// `--cluster-enabled yes`, every slot added.
    Cluster,
}

/// Makes the server on `port` a one-node cluster owning every slot, and waits until it says
/// `cluster_state:ok` (Redis holds a new primary down for its first two seconds).
fn own_every_slot(port: u16) {
    let mut conn = RawConn::connect(port);
    let added = conn.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    assert_eq!(added, Resp::Simple("OK".into()), "port {port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match conn.call(&["CLUSTER", "INFO"]) {
            Resp::Bulk(text) if text.starts_with(b"cluster_state:ok") => return,
            other => assert!(Instant::now() < deadline, "port {port}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs every file of `folder` against a redis-server and a WarpEngine, both started as `mode`
/// says.
fn run_corpus(folder: &str, mode: Mode) {
    let password = match mode {
        Mode::Password(p) => Some(p),
        _ => None,
    };
    if !redis_available() {
        if std::env::var("WARP_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!(
                "redis-server not installed; differential test skipped (WARP_SKIP_DIFFERENTIAL=1)"
            );
            return;
        }
        panic!(
            "redis-server is not installed: the differential test needs it \
             (install redis-server, or set WARP_SKIP_DIFFERENTIAL=1 to skip this test)"
        );
    }
    let files = corpus_files(folder);
    if files.is_empty() && std::env::var("WARP_CORPUS").is_ok() {
        return; // WARP_CORPUS selected files of another folder
    }
    assert!(!files.is_empty(), "no corpus files found in {folder}");
    // WarpEngine's nodes.conf goes to a directory of its own (Redis's start_redis has one).
    let warp_dir = TempDir::new("differential-cluster");
    let dir = warp_dir.0.to_str().expect("utf-8 path");
    let (args, warp_args): (Vec<&str>, Vec<&str>) = match mode {
        Mode::Plain => (vec![], vec![]),
        Mode::Password(p) => (vec!["--requirepass", p], vec!["--requirepass", p]),
        Mode::Cluster => (
            vec!["--cluster-enabled", "yes"],
            vec!["--cluster-enabled", "yes", "--dir", dir],
        ),
    };
    let redis = start_redis(&args);
    let warp = start_warpengine(&warp_args);
    if let Mode::Cluster = mode {
        own_every_slot(redis.port);
        own_every_slot(warp.port);
    }
    let mut mismatches = Mismatches(Vec::new());
    let mut total = 0;
    for file in &files {
        match run_file(file, (redis.port, warp.port), password, &mut mismatches) {
            Ok(cases) => {
                eprintln!("{}: {cases} cases", file.display());
                total += cases;
            }
            Err(e) => {
                mismatches
                    .0
                    .push(format!("{}: {e}; stopping", file.display()));
                break;
            }
        }
    }
    assert!(
        mismatches.0.is_empty(),
        "{} of {total} cases differ from redis-server:\n{}",
        mismatches.0.len(),
        mismatches.0.join("\n")
    );
}

#[test]
fn corpus_matches_real_redis() {
    run_corpus("corpus", Mode::Plain);
}

/// Redirects, CROSSSLOT, CLUSTER subcommands and SELECT on one-node clusters.
#[test]
fn corpus_in_cluster_mode_matches_real_redis() {
    run_corpus("corpus/cluster", Mode::Cluster);
}

/// The same with a password set: connections start unauthenticated, so the stricter request
/// limits and the order of checks before AUTH are compared too.
#[test]
fn corpus_with_requirepass_matches_real_redis() {
    run_corpus("corpus/requirepass", Mode::Password("warp-corpus"));
}

#[test]
fn split_args_follows_redis_cli() {
    let a = split_args(r#"SET "a b" 'c d' "\x41\n" '\'q' plain"#).unwrap();
    let expected: Vec<Vec<u8>> = vec![
        b"SET".to_vec(),
        b"a b".to_vec(),
        b"c d".to_vec(),
        b"A\n".to_vec(),
        b"'q".to_vec(),
        b"plain".to_vec(),
    ];
    assert_eq!(a, expected);
    assert!(split_args(r#"GET "unbalanced"#).is_err());
    assert!(split_args(r#"GET "a"b"#).is_err());
    assert_eq!(split_args("  ").unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn sort_reply_sorts_top_level_elements() {
    assert_eq!(
        sort_reply(b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n"),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n".to_vec()
    );
    assert_eq!(sort_reply(b"+OK\r\n"), b"+OK\r\n".to_vec());
    assert_eq!(
        sort_reply(b"%2\r\n$1\r\nb\r\n:1\r\n$1\r\na\r\n:2\r\n"),
        b"%2\r\n$1\r\na\r\n:2\r\n$1\r\nb\r\n:1\r\n".to_vec()
    );
}
