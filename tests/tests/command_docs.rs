//! COMMAND DOCS / COMMAND INFO answer byte for byte what Redis 7.0.15 answers, in RESP2 and
//! RESP3, for every command WarpEngine has that Redis also knows.
//!
//! One allowance: Redis lists a container command's subcommands (CLIENT LIST, OBJECT ENCODING,
//! ...) in the order of a hash table seeded at random when the process starts, so two Redis
//! processes disagree with each other on that order. Replies that differ are compared again with
//! subcommands sorted by name; everything else must be identical.

use warpengine_tests::{redis_available, reply_len, start_redis, start_warpengine, RawConn};

/// Bulk strings of a flat RESP2 array reply of bulk strings.
fn bulk_strings(reply: &[u8]) -> Vec<String> {
    let text = String::from_utf8(reply.to_vec()).expect("utf-8 reply");
    let mut lines = text.split("\r\n");
    let head = lines.next().expect("header");
    assert!(head.starts_with('*'), "not an array: {text}");
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('$') {
            out.push(lines.next().expect("bulk body").to_string());
        }
    }
    out
}

/// A reply as a tree: the header line (with its type byte) and, for a bulk string, its body;
/// for an aggregate its children (a map's keys and values flattened).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Node {
    head: Vec<u8>,
    body: Vec<u8>,
    children: Vec<Node>,
}

fn parse(buf: &[u8], at: usize) -> (Node, usize) {
    let end = at
        + buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("CRLF");
    let head = buf[at..end].to_vec();
    let after = end + 2;
    let count = || -> i64 { std::str::from_utf8(&head[1..]).unwrap().parse().unwrap() };
    let mut node = Node {
        head: head.clone(),
        body: Vec::new(),
        children: Vec::new(),
    };
    match head[0] {
        b'$' | b'=' if count() >= 0 => {
            node.body = buf[after..after + count() as usize].to_vec();
            (node, after + count() as usize + 2)
        }
        b'*' | b'~' | b'%' if count() >= 0 => {
            let n = if head[0] == b'%' {
                count() * 2
            } else {
                count()
            };
            let mut pos = after;
            for _ in 0..n {
                let (child, next) = parse(buf, pos);
                node.children.push(child);
                pos = next;
            }
            (node, pos)
        }
        _ => (node, after),
    }
}

/// Sorts subcommands: the value after a "subcommands" key (DOCS, a map in RESP3 or a flat
/// array in RESP2) by name, and the tenth field of an INFO entry by entry.
fn sort_subcommands(node: &mut Node) {
    for child in &mut node.children {
        sort_subcommands(child);
    }
    let is_info_entry = node.children.len() == 10
        && node.children[0].head[0] == b'$'
        && node.children[1].head[0] == b':';
    if is_info_entry {
        node.children[9].children.sort();
    }
    let mut i = 0;
    while i + 1 < node.children.len() {
        if node.children[i].body == b"subcommands" {
            let pairs = &mut node.children[i + 1].children;
            let mut chunks: Vec<Vec<Node>> = pairs.chunks(2).map(<[Node]>::to_vec).collect();
            chunks.sort();
            *pairs = chunks.concat();
        }
        i += 2;
    }
}

fn normalized(reply: &[u8]) -> Node {
    assert_eq!(reply_len(reply, 0), Some(reply.len()));
    let (mut node, _) = parse(reply, 0);
    sort_subcommands(&mut node);
    node
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(80);
    let show = |s: &[u8]| {
        String::from_utf8_lossy(&s[from..(at + 80).min(s.len())])
            .escape_debug()
            .to_string()
    };
    format!(
        "at byte {at}:\nwarpengine: ...{}\nredis:      ...{}",
        show(a),
        show(b)
    )
}

struct Pair {
    warp: RawConn,
    redis: RawConn,
}

impl Pair {
    fn both(&mut self, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        (self.warp.command(args), self.redis.command(args))
    }

    fn same(&mut self, args: &[&[u8]]) {
        let (warp, redis) = self.both(args);
        if warp != redis {
            assert!(
                normalized(&warp) == normalized(&redis),
                "{} differs {}",
                String::from_utf8_lossy(&args.join(&b' ')),
                first_difference(&warp, &redis),
            );
        }
    }

    fn hello3(&mut self) {
        self.warp.command(&[b"HELLO", b"3"]);
        self.redis.command(&[b"HELLO", b"3"]);
    }
}

fn connect() -> Option<(
    warpengine_tests::ServerProcess,
    warpengine_tests::ServerProcess,
)> {
    if !redis_available() {
        eprintln!("redis-server not installed; skipping");
        return None;
    }
    Some((start_warpengine(&[]), start_redis(&[])))
}

/// WarpEngine's commands that Redis also knows.
fn shared_commands(pair: &mut Pair) -> Vec<String> {
    let names = bulk_strings(&pair.warp.command(&[b"COMMAND", b"LIST"]));
    assert!(names.len() > 50, "COMMAND LIST: {names:?}");
    names
        .into_iter()
        .filter(|n| pair.redis.command(&[b"COMMAND", b"INFO", n.as_bytes()]) != b"*1\r\n$-1\r\n")
        .collect()
}

#[test]
fn docs_and_info_match_redis_for_every_command() {
    let Some((warp, redis)) = connect() else {
        return;
    };
    for resp3 in [false, true] {
        let mut pair = Pair {
            warp: RawConn::connect(warp.port),
            redis: RawConn::connect(redis.port),
        };
        let names = shared_commands(&mut pair);
        if resp3 {
            pair.hello3();
        }
        for name in &names {
            pair.same(&[b"COMMAND", b"DOCS", name.as_bytes()]);
            pair.same(&[b"COMMAND", b"INFO", name.as_bytes()]);
        }
    }
}

#[test]
fn named_lookups_match_redis_in_resp2_and_resp3() {
    let Some((warp, redis)) = connect() else {
        return;
    };
    let cases: &[&[&[u8]]] = &[
        &[b"COMMAND", b"DOCS", b"get"],
        &[b"COMMAND", b"DOCS", b"set"],
        &[b"COMMAND", b"INFO", b"get", b"mset"],
        &[b"COMMAND", b"DOCS", b"GET", b"nosuch", b"get"],
        &[b"COMMAND", b"INFO", b"nosuch", b"Set"],
        &[
            b"COMMAND",
            b"DOCS",
            b"client|list",
            b"CLIENT|ID",
            b"client|nosuch",
        ],
        &[
            b"COMMAND",
            b"INFO",
            b"client|list",
            b"object|encoding",
            b"get|x",
        ],
        &[b"COMMAND", b"DOCS", b"object", b"client", b"command"],
        &[
            b"COMMAND", b"INFO", b"object", b"client", b"command", b"echo",
        ],
        &[b"COMMAND", b"GETKEYS", b"mset", b"a", b"1", b"b", b"2"],
        &[b"COMMAND", b"GETKEYS", b"get", b"k"],
        &[b"COMMAND", b"GETKEYS", b"object", b"encoding", b"k"],
        &[b"COMMAND", b"GETKEYS", b"ping"],
        &[b"COMMAND", b"GETKEYS", b"ping", b"x"],
        &[b"COMMAND", b"GETKEYS", b"echo", b"a", b"b"],
        &[b"COMMAND", b"GETKEYS", b"get", b"k", b"x"],
        &[b"COMMAND", b"GETKEYS", b"nosuch", b"k"],
        &[b"COMMAND", b"GETKEYS", b"object", b"encoding"],
        &[b"COMMAND", b"GETKEYS", b"object", b"help"],
        &[b"COMMAND", b"GETKEYS", b"object", b"nosuch", b"k"],
        &[b"COMMAND", b"GETKEYS", b"client", b"list"],
        &[b"COMMAND", b"GETKEYS", b"rename", b"a", b"b"],
    ];
    for resp3 in [false, true] {
        let mut pair = Pair {
            warp: RawConn::connect(warp.port),
            redis: RawConn::connect(redis.port),
        };
        if resp3 {
            pair.hello3();
        }
        for args in cases {
            pair.same(args);
        }
    }
}

#[test]
fn list_filterby_aclcat_is_redis_list_restricted_to_our_commands() {
    let Some((warp, redis)) = connect() else {
        return;
    };
    let mut pair = Pair {
        warp: RawConn::connect(warp.port),
        redis: RawConn::connect(redis.port),
    };
    let ours = bulk_strings(&pair.warp.command(&[b"COMMAND", b"LIST"]));
    // WarpEngine's own commands (HORIZON) are not in Redis's lists.
    let shared = shared_commands(&mut pair);
    for cat in [
        "string",
        "keyspace",
        "read",
        "write",
        "fast",
        "slow",
        "connection",
        "admin",
    ] {
        let (warp, redis) =
            pair.both(&[b"COMMAND", b"LIST", b"FILTERBY", b"ACLCAT", cat.as_bytes()]);
        let mut warp: Vec<String> = bulk_strings(&warp)
            .into_iter()
            .filter(|n| shared.contains(n))
            .collect();
        let mut redis: Vec<String> = bulk_strings(&redis)
            .into_iter()
            .filter(|n| ours.contains(n))
            .collect();
        assert!(!warp.is_empty(), "@{cat} is empty");
        warp.sort();
        redis.sort();
        assert_eq!(warp, redis, "@{cat}");
    }
}
