//! physics-load: the workloads of docs/physics.md's measured benefits that redis-benchmark
//! cannot express. Each client is a thread with one connection doing one operation at a time;
//! the tool prints one line of `name=value` figures (ops/s, p50/p99 in microseconds).
//!
//!   physics-load page  --port P --mode seq|pipeline|mget|quantum [--pages N] [--clients C] [--seconds S] [--setup]
//!   physics-load learn --port P [--pages N] [--clients C] [--rounds R] [--noise F] [--window MS] [--think-ms T]
//!   physics-load multikey --port P --cmd mget|mset|sinterstore [--groups N] [--clients C] [--seconds S] [--pin]
//!   physics-load durability --port P --class default|always|everysec|no [--clients C] [--seconds S]
//!   physics-load transaction --port P --keys one-shard|spread [--clients C] [--seconds S]
//!   physics-load publish --port P [--subscribers N] [--clients C] [--seconds S]
//!   physics-load zipf --port P [--keys N] [--exponent A] [--get-share F] [--pipeline P] [--clients C]
//!                     [--seconds S] [--value-size B] [--setup] [--slots N [--slots-below M]]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use warpengine_physics::workload::{scatter, Rng, Zipf};
use warpengine_storage::slot::{key_slot, SLOTS};
use warpengine_tests::{encode_command, RawConn, Resp};

/// The keys of page `i`: the user key first (QUANTUM's rule key), then its partners.
const PAGE_PARTS: [&str; 4] = ["user", "profile", "settings", "prefs"];

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> (String, Args) {
        let mut it = std::env::args().skip(1);
        let what = it.next().unwrap_or_default();
        let mut map = HashMap::new();
        let rest: Vec<String> = it.collect();
        let mut i = 0;
        while i < rest.len() {
            let name = rest[i].trim_start_matches("--").to_string();
            if i + 1 < rest.len() && !rest[i + 1].starts_with("--") {
                map.insert(name, rest[i + 1].clone());
                i += 2;
            } else {
                map.insert(name, "yes".into());
                i += 1;
            }
        }
        (what, Args(map))
    }

    fn num(&self, name: &str, default: u64) -> u64 {
        self.0
            .get(name)
            .map_or(default, |v| v.parse().expect("a number"))
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.0.get(name).cloned().unwrap_or_else(|| default.into())
    }

    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn call(c: &mut RawConn, args: &[&[u8]]) -> Resp {
    Resp::parse(&c.command(args))
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Runs `op` on `clients` threads for `seconds`; prints ops/s and latency percentiles.
fn drive<F>(label: &str, clients: u64, seconds: u64, port: u16, make: impl Fn(u64) -> F)
where
    F: FnMut(&mut RawConn) + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let mut op = make(t);
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    op(&mut c);
                    lat.push(t0.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    all.sort_unstable();
    println!(
        "{label} ops={} ops_per_s={:.0} p50_us={} p99_us={}",
        all.len(),
        all.len() as f64 / seconds as f64,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
}

fn page_keys(i: u64) -> Vec<String> {
    PAGE_PARTS.iter().map(|p| format!("{p}:{i}")).collect()
}

fn page(a: &Args, port: u16) {
    let pages = a.num("pages", 10_000);
    if a.flag("setup") {
        let mut c = RawConn::connect(port);
        for i in 0..pages {
            let keys = page_keys(i);
            let mut req = Vec::new();
            for k in &keys {
                req.extend(encode_command(&[b"SET", k.as_bytes(), &[b'x'; 100]]));
            }
            c.send(&req);
            for _ in &keys {
                c.read_reply().expect("SET");
            }
        }
        let rule: Vec<String> = PAGE_PARTS.iter().map(|p| format!("{p}:*")).collect();
        let mut args: Vec<&[u8]> = vec![b"QUANTUM", b"RULE", b"ADD"];
        args.extend(rule.iter().map(|r| r.as_bytes()));
        // Real Redis has no QUANTUM: its error is fine there, the other modes need no rule.
        call(&mut c, &args);
    }
    let mode = a.text("mode", "seq");
    let label = format!("page mode={mode}");
    drive(
        &label,
        a.num("clients", 8),
        a.num("seconds", 5),
        port,
        |t| {
            let mode = mode.clone();
            let mut rng = Rng::new(t + 1);
            move |c: &mut RawConn| {
                let keys = page_keys(rng.next_u64() % pages);
                match mode.as_str() {
                    "seq" => {
                        for k in &keys {
                            c.command(&[b"GET", k.as_bytes()]);
                        }
                    }
                    "pipeline" => {
                        let mut req = Vec::new();
                        for k in &keys {
                            req.extend(encode_command(&[b"GET", k.as_bytes()]));
                        }
                        c.send(&req);
                        for _ in &keys {
                            c.read_reply().expect("GET");
                        }
                    }
                    "mget" => {
                        let mut args: Vec<&[u8]> = vec![b"MGET"];
                        args.extend(keys.iter().map(|k| k.as_bytes()));
                        c.command(&args);
                    }
                    "quantum" => {
                        let r = c.command(&[b"QUANTUM", b"GET", keys[0].as_bytes()]);
                        assert!(r.starts_with(b"*8"), "QUANTUM GET: {:?}", Resp::parse(&r));
                    }
                    other => panic!("unknown mode {other}"),
                }
            }
        },
    );
}

/// Clients read pages (their 4 keys in order, with random other keys mixed in), pausing
/// `think-ms` between pages as a user would; then the learned partners of sampled pages are
/// compared with the true ones.
fn learn(a: &Args, port: u16) {
    let pages = a.num("pages", 2_000);
    let clients = a.num("clients", 4);
    let rounds = a.num("rounds", 20_000);
    let noise = a.text("noise", "0.3").parse::<f64>().expect("noise");
    let window = a.num("window", 2);
    let think = Duration::from_millis(a.num("think-ms", 5));
    let mut c = RawConn::connect(port);
    call(
        &mut c,
        &[
            b"QUANTUM",
            b"LEARN",
            b"ON",
            b"WINDOW",
            window.to_string().as_bytes(),
        ],
    );
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut rng = Rng::new(t + 7);
                for _ in 0..rounds / clients {
                    std::thread::sleep(think);
                    for k in page_keys(rng.next_u64() % pages) {
                        if rng.next_f64() < noise {
                            let other = format!("noise:{}", rng.next_u64() % 100_000);
                            c.command(&[b"GET", other.as_bytes()]);
                        }
                        c.command(&[b"GET", k.as_bytes()]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    call(&mut c, &[b"QUANTUM", b"LEARN", b"OFF"]);
    let (mut returned, mut right, mut wanted) = (0u64, 0u64, 0u64);
    for i in 0..pages.min(500) {
        let keys = page_keys(i);
        let Resp::Array(got) = call(&mut c, &[b"QUANTUM", b"GET", keys[0].as_bytes()]) else {
            panic!("QUANTUM GET")
        };
        wanted += keys.len() as u64 - 1;
        for pair in got[2..].chunks(2) {
            returned += 1;
            if let Resp::Bulk(k) = &pair[0] {
                if keys[1..].iter().any(|t| t.as_bytes() == &k[..]) {
                    right += 1;
                }
            }
        }
    }
    println!(
        "learn noise={noise} window_ms={window} think_ms={} reads={} partners_returned={returned} precision={:.3} recall={:.3}",
        think.as_millis(),
        rounds * 4,
        right as f64 / returned.max(1) as f64,
        right as f64 / wanted.max(1) as f64
    );
}

fn multikey(a: &Args, port: u16) {
    let groups = a.num("groups", 1_000);
    let cmd = a.text("cmd", "mget");
    let group_keys = |g: u64| -> Vec<String> { (0..4).map(|i| format!("g{g}:{i}")).collect() };
    let mut c = RawConn::connect(port);
    for g in 0..groups {
        let keys = group_keys(g);
        for k in &keys {
            if cmd == "sinterstore" {
                call(&mut c, &[b"SADD", k.as_bytes(), b"a", b"b", b"c", b"d"]);
            } else {
                call(&mut c, &[b"SET", k.as_bytes(), b"v"]);
            }
            if a.flag("pin") && k != &keys[0] {
                call(
                    &mut c,
                    &[b"WORMHOLE", b"PIN", k.as_bytes(), keys[0].as_bytes()],
                );
            }
        }
    }
    let label = format!("multikey cmd={cmd} pinned={}", a.flag("pin"));
    drive(
        &label,
        a.num("clients", 8),
        a.num("seconds", 5),
        port,
        |t| {
            let cmd = cmd.clone();
            let mut rng = Rng::new(t + 3);
            move |c: &mut RawConn| {
                let keys = group_keys(rng.next_u64() % groups);
                let k: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                let r = match cmd.as_str() {
                    "mget" => c.command(&[b"MGET", k[0], k[1], k[2], k[3]]),
                    "mset" => c.command(&[b"MSET", k[0], b"1", k[1], b"2", k[2], b"3", k[3], b"4"]),
                    // The destination is the group's first key's partner set, the sources the rest.
                    "sinterstore" => c.command(&[b"SINTERSTORE", k[0], k[1], k[2], k[3]]),
                    other => panic!("unknown command {other}"),
                };
                assert!(!r.starts_with(b"-"), "{:?}", Resp::parse(&r));
            }
        },
    );
}

fn durability(a: &Args, port: u16) {
    let class = a.text("class", "default");
    let label = format!("durability class={class}");
    drive(
        &label,
        a.num("clients", 8),
        a.num("seconds", 5),
        port,
        |t| {
            let class = class.clone();
            let mut n = 0u64;
            move |c: &mut RawConn| {
                n += 1;
                let key = format!("d{t}:{}", n % 10_000);
                let r = if class == "default" {
                    c.command(&[b"SET", key.as_bytes(), b"value"])
                } else {
                    c.command(&[
                        b"SET",
                        key.as_bytes(),
                        b"value",
                        b"DURABILITY",
                        class.as_bytes(),
                    ])
                };
                assert!(r.starts_with(b"+OK"), "{:?}", Resp::parse(&r));
            }
        },
    );
}

/// MULTI, three SETs, EXEC, sent as one write (as a client's transactional pipeline sends it).
/// `one-shard`: the three keys share a hash tag, so they live on one shard; `spread`: three
/// independent keys, on different shards as often as not.
fn transaction(a: &Args, port: u16) {
    let spread = match a.text("keys", "one-shard").as_str() {
        "one-shard" => false,
        "spread" => true,
        other => panic!("--keys one-shard|spread, not {other}"),
    };
    let label = format!("transaction keys={}", a.text("keys", "one-shard"));
    drive(
        &label,
        a.num("clients", 8),
        a.num("seconds", 5),
        port,
        |t| {
            let mut n = 0u64;
            move |c: &mut RawConn| {
                n += 1;
                let id = n % 10_000;
                let keys: Vec<String> = (0..3)
                    .map(|i| {
                        if spread {
                            format!("tx{t}:{id}:{i}")
                        } else {
                            format!("{{tx{t}:{id}}}:{i}")
                        }
                    })
                    .collect();
                let mut out = encode_command(&[b"MULTI"]);
                for k in &keys {
                    out.extend(encode_command(&[b"SET", k.as_bytes(), b"value"]));
                }
                out.extend(encode_command(&[b"EXEC"]));
                c.send(&out);
                for _ in 0..4 {
                    c.read_reply().expect("queued");
                }
                let exec = Resp::parse(&c.read_reply().expect("EXEC reply"));
                assert!(
                    matches!(exec, Resp::Array(ref r) if r.len() == 3),
                    "{exec:?}"
                );
            }
        },
    );
}

/// PUBLISH of 16-byte messages to one channel with `--subscribers` subscribed connections;
/// prints publishes per second (`ops_per_s`) and messages delivered per second, counted from
/// the bytes each subscriber received (every message's frame has the same length).
fn publish(a: &Args, port: u16) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const MESSAGE: &[u8] = b"0123456789abcdef";
    let frame_len = encode_command(&[b"message", b"bench", MESSAGE]).len() as u64;
    let subscribers = a.num("subscribers", 100);
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let mut c = RawConn::connect(port);
        call(&mut c, &[b"SUBSCRIBE", b"bench"]);
        let mut stream = c.into_stream();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let (received, stop) = (received.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    let seconds = a.num("seconds", 5);
    let start_bytes = received.load(Ordering::Relaxed);
    drive("publish", a.num("clients", 2), seconds, port, |_| {
        move |c: &mut RawConn| {
            let r = c.command(&[b"PUBLISH", b"bench", MESSAGE]);
            assert!(r.starts_with(b":"), "{:?}", Resp::parse(&r));
        }
    });
    let delivered = (received.load(Ordering::Relaxed) - start_bytes) / frame_len;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("subscriber");
    }
    println!(
        "publish subscribers={subscribers} delivered={delivered} delivered_per_s={:.0}",
        delivered as f64 / seconds as f64
    );
}

/// The hash tags `{tK}` of `n` distinct hash slots below `below` (the first such K from 0 up),
/// with their slots. `below` 8192 puts them all on the first of two workers (slots are dealt out
/// to the workers in contiguous ranges): a load for rebalancing to spread.
fn slot_tags(n: u64, below: u64) -> Vec<(String, u16)> {
    assert!(
        n <= below && below as usize <= SLOTS,
        "--slots N --slots-below M: N <= M <= {SLOTS}"
    );
    let mut tags: Vec<(String, u16)> = Vec::new();
    for k in 0.. {
        if tags.len() as u64 == n {
            break;
        }
        let tag = format!("t{k}");
        let slot = key_slot(tag.as_bytes());
        if u64::from(slot) < below && tags.iter().all(|(_, s)| *s != slot) {
            tags.push((tag, slot));
        }
    }
    tags
}

/// The name of key `id`: `key:<id>`, or with `tags`, `{tag}:<id>` for the tag `id % tags`, so
/// that every key falls into one of the tags' slots.
fn zipf_key(tags: &[(String, u16)], id: u64) -> String {
    if tags.is_empty() {
        format!("key:{id}")
    } else {
        format!("{{{}}}:{id}", tags[(id % tags.len() as u64) as usize].0)
    }
}

/// `--setup`: SETs every key the load can draw (the ids of ranks 0..keys), in pipelines of
/// 1,000 from 4 connections, so that the load's GETs hit.
fn zipf_fill(port: u16, keys: u64, tags: &std::sync::Arc<Vec<(String, u16)>>, value: &[u8]) {
    const FILLERS: u64 = 4;
    const BATCH: u64 = 1_000;
    let start = Instant::now();
    let threads: Vec<_> = (0..FILLERS)
        .map(|f| {
            let (tags, value) = (tags.clone(), value.to_vec());
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut req = Vec::new();
                let mut rank = f * BATCH;
                while rank < keys {
                    let end = (rank + BATCH).min(keys);
                    req.clear();
                    for r in rank..end {
                        let key = zipf_key(&tags, scatter(r));
                        req.extend(encode_command(&[b"SET", key.as_bytes(), &value]));
                    }
                    c.send(&req);
                    for _ in rank..end {
                        let r = c.read_reply().expect("SET reply");
                        assert!(r.starts_with(b"+OK"), "{:?}", Resp::parse(&r));
                    }
                    rank += FILLERS * BATCH;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("filler");
    }
    eprintln!(
        "zipf setup keys={keys} value_size={} seconds={:.1}",
        value.len(),
        start.elapsed().as_secs_f64()
    );
}

/// What one zipf client counted.
#[derive(Default)]
struct ZipfCounts {
    latencies: Vec<u64>,
    gets: u64,
    sets: u64,
    hits: u64,
    misses: u64,
    /// Requests per tag (with `--slots`).
    per_slot: Vec<u64>,
}

/// Issue 22's skewed load: GETs (`--get-share`) and SETs of keys drawn by Zipf(`--exponent`)
/// over `--keys` ids, each client a thread with one connection sending pipelines of
/// `--pipeline` commands and waiting for all their replies. Latency is per pipeline (the time
/// from sending a pipeline to its last reply), not per command. `ops` counts commands.
fn zipf(a: &Args, port: u16) {
    use std::sync::Arc;
    let keys = a.num("keys", 1_000_000);
    let exponent: f64 = a.text("exponent", "1.2").parse().expect("--exponent");
    let get_share: f64 = a.text("get-share", "0.9").parse().expect("--get-share");
    let pipeline = a.num("pipeline", 16).max(1);
    let clients = a.num("clients", 8);
    let seconds = a.num("seconds", 5);
    let value = vec![b'v'; a.num("value-size", 64) as usize];
    let tags = Arc::new(slot_tags(
        a.num("slots", 0),
        a.num("slots-below", SLOTS as u64),
    ));
    if a.flag("setup") {
        zipf_fill(port, keys, &tags, &value);
    }
    if seconds == 0 {
        return;
    }
    // One table (8 bytes per key) for every client; each draws from its own random stream.
    let dist = Zipf::new(keys as usize, exponent, 1);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let (mut z, tags, value) = (dist.fork(t + 2), tags.clone(), value.clone());
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port);
                let mut rng = Rng::new(t + 1_000);
                let mut n = ZipfCounts {
                    per_slot: vec![0; tags.len()],
                    ..ZipfCounts::default()
                };
                let mut req = Vec::new();
                let mut is_get = Vec::with_capacity(pipeline as usize);
                while Instant::now() < deadline {
                    req.clear();
                    is_get.clear();
                    for _ in 0..pipeline {
                        let id = z.next_id();
                        if !tags.is_empty() {
                            n.per_slot[(id % tags.len() as u64) as usize] += 1;
                        }
                        let key = zipf_key(&tags, id);
                        let get = rng.next_f64() < get_share;
                        if get {
                            req.extend(encode_command(&[b"GET", key.as_bytes()]));
                        } else {
                            req.extend(encode_command(&[b"SET", key.as_bytes(), &value]));
                        }
                        is_get.push(get);
                    }
                    let t0 = Instant::now();
                    c.send(&req);
                    for &get in &is_get {
                        let r = c.read_reply().expect("reply");
                        match (get, r.first()) {
                            (true, Some(b'$')) if r.starts_with(b"$-1") => n.misses += 1,
                            (true, Some(b'$')) => n.hits += 1,
                            (false, Some(b'+')) => {}
                            _ => panic!("{:?}", Resp::parse(&r)),
                        }
                    }
                    n.latencies.push(t0.elapsed().as_micros() as u64);
                    let gets = is_get.iter().filter(|&&g| g).count() as u64;
                    n.gets += gets;
                    n.sets += pipeline - gets;
                }
                n
            })
        })
        .collect();
    let mut all = ZipfCounts {
        per_slot: vec![0; tags.len()],
        ..ZipfCounts::default()
    };
    for t in threads {
        let n = t.join().expect("client");
        all.latencies.extend(n.latencies);
        all.gets += n.gets;
        all.sets += n.sets;
        all.hits += n.hits;
        all.misses += n.misses;
        for (sum, x) in all.per_slot.iter_mut().zip(n.per_slot) {
            *sum += x;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies.sort_unstable();
    // What a draw costs the client (after the measured window, on one thread): it must stay a
    // small share of the time a pipeline's round trip takes.
    let mut z = dist.fork(1);
    let draws = 1_000_000;
    let t0 = Instant::now();
    let sink = (0..draws).fold(0u64, |acc, _| acc ^ z.next_id());
    let draw_ns = t0.elapsed().as_nanos() as f64 / draws as f64;
    std::hint::black_box(sink);
    let ops = all.gets + all.sets;
    let total = ops.max(1) as f64;
    let slots: Vec<String> = tags.iter().map(|(_, s)| s.to_string()).collect();
    let shares: Vec<String> = all
        .per_slot
        .iter()
        .map(|&x| format!("{:.3}", x as f64 / total))
        .collect();
    println!(
        "zipf exponent={exponent} keys={keys} pipeline={pipeline} clients={clients} ops={ops} ops_per_s={:.0} \
         latency=per_pipeline p50_us={} p99_us={} gets={} sets={} hits={} misses={} draw_ns={draw_ns:.0}{}",
        ops as f64 / elapsed,
        percentile(&all.latencies, 0.5),
        percentile(&all.latencies, 0.99),
        all.gets,
        all.sets,
        all.hits,
        all.misses,
        if tags.is_empty() {
            String::new()
        } else {
            format!(" slots={} slot_shares={}", slots.join(","), shares.join(","))
        }
    );
}

fn main() {
    let (what, a) = Args::parse();
    let port = a.num("port", 6379) as u16;
    match what.as_str() {
        "page" => page(&a, port),
        "learn" => learn(&a, port),
        "multikey" => multikey(&a, port),
        "durability" => durability(&a, port),
        "transaction" => transaction(&a, port),
        "publish" => publish(&a, port),
        "zipf" => zipf(&a, port),
        _ => {
            eprintln!("usage: physics-load page|learn|multikey|durability|transaction|publish|zipf --port P [options] (see the source's header)");
            std::process::exit(2);
        }
    }
}
