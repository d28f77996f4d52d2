//! GRAVITY end to end: HOTKEYS names the heaviest keys of a Zipf load first, with rates near the
//! ones the load really had; databases are apart; the sketch can be switched off; bad arguments
//! get Redis-style errors; `redis-cli --hotkeys` behaves as against Redis (it needs an LFU
//! policy).

use std::time::{Duration, Instant};

use warpengine_tests::{
    encode_command, info_field, redis_cli, start_warpengine, RawConn, Resp, SeededRandom,
};

/// Keys of the Zipf load, and its exponent.
const KEYS: usize = 200;
const EXPONENT: f64 = 1.2;

fn err_starts(r: &Resp, prefix: &str) -> bool {
    matches!(r, Resp::Error(e) if e.starts_with(prefix))
}

/// HOTKEYS's reply as (key, rate) pairs (RESP2: key, rate, key, rate ...).
fn hotkeys(c: &mut RawConn, count: &str) -> Vec<(String, f64)> {
    let Resp::Array(items) = c.call(&["GRAVITY", "HOTKEYS", "COUNT", count]) else {
        panic!("HOTKEYS")
    };
    items
        .chunks(2)
        .map(|kv| match &kv[0] {
            Resp::Bulk(k) => (String::from_utf8(k.clone()).unwrap(), kv[1].float()),
            other => panic!("key {other:?}"),
        })
        .collect()
}

/// Sends GETs of Zipf-distributed keys (rank r asked with weight 1 / (r + 1)^EXPONENT), 100
/// per pipeline, for `duration`; the number of requests each rank received.
fn zipf_load(port: u16, seed: u64, duration: Duration) -> Vec<u64> {
    let weights: Vec<f64> = (0..KEYS)
        .map(|r| 1.0 / ((r + 1) as f64).powf(EXPONENT))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::new();
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = SeededRandom(seed);
    let mut c = RawConn::connect(port);
    let mut counts = vec![0u64; KEYS];
    let started = Instant::now();
    while started.elapsed() < duration {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let u = rng.below(1 << 30) as f64 / (1u64 << 30) as f64;
            let rank = cdf.partition_point(|&c| c < u).min(KEYS - 1);
            counts[rank] += 1;
            batch.extend(encode_command(&[b"GET", format!("hot:{rank}").as_bytes()]));
        }
        c.send(&batch);
        for _ in 0..100 {
            c.read_reply().expect("GET reply");
        }
    }
    counts
}

#[test]
fn hotkeys_lists_the_heaviest_keys_of_a_zipf_load_with_their_rates() {
    let server = start_warpengine(&["--threads", "2"]);
    let port = server.port;
    let mut c = RawConn::connect(port);
    // A short half-life (and a fresh sketch: a new half-life starts one) so that two seconds
    // of load reach the steady state.
    assert_eq!(
        c.call(&["CONFIG", "SET", "gravity-halflife", "1"]),
        Resp::Simple("OK".into())
    );
    let started = Instant::now();
    let loads: Vec<_> = (0..2)
        .map(|i| std::thread::spawn(move || zipf_load(port, 11 + i, Duration::from_secs(2))))
        .collect();
    let mut counts = vec![0u64; KEYS];
    for l in loads {
        for (t, n) in counts.iter_mut().zip(l.join().unwrap()) {
            *t += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let hot = hotkeys(&mut c, "5");
    assert_eq!(hot.len(), 5, "{hot:?}");
    let names: Vec<&str> = hot.iter().take(3).map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["hot:0", "hot:1", "hot:2"], "{hot:?}");
    for (rank, (_, rate)) in hot.iter().take(3).enumerate() {
        let real = counts[rank] as f64 / secs;
        assert!(
            rate / real > 0.6 && rate / real < 1.5,
            "hot:{rank} estimated at {rate}/s, sent at {real}/s"
        );
    }
    // Highest first.
    assert!(hot.windows(2).all(|w| w[0].1 >= w[1].1), "{hot:?}");
    // COUNT bounds the list; keys of another database are not named.
    assert_eq!(hotkeys(&mut c, "2").len(), 2);
    c.call(&["SELECT", "1"]);
    assert!(hotkeys(&mut c, "5").is_empty());
    assert!(
        info_field(&mut c, "physics", "gravity_samples")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    // The rates decay once the load stops.
    std::thread::sleep(Duration::from_millis(1500));
    c.call(&["SELECT", "0"]);
    let later = hotkeys(&mut c, "1");
    assert!(
        later[0].1 < hot[0].1 / 2.0,
        "{} then {}",
        hot[0].1,
        later[0].1
    );
}

#[test]
fn hotkeys_errors_and_the_switch() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    let out_of_range = c.call(&["GRAVITY", "HOTKEYS", "COUNT", "0"]);
    assert_eq!(out_of_range, Resp::Error("ERR COUNT must be > 0".into()));
    assert!(err_starts(
        &c.call(&["GRAVITY", "HOTKEYS", "COUNT", "x"]),
        "ERR value is not an integer"
    ));
    for bad in [
        &["GRAVITY", "HOTKEYS", "COUNT"][..],
        &["GRAVITY", "HOTKEYS", "LIMIT", "3"],
    ] {
        assert_eq!(c.call(bad), Resp::Error("ERR syntax error".into()));
    }
    assert_eq!(
        c.call(&["GRAVITY", "NOPE"]),
        Resp::Error("ERR unknown subcommand 'NOPE'. Try GRAVITY HELP.".into())
    );
    assert!(err_starts(
        &c.call(&["GRAVITY"]),
        "ERR wrong number of arguments for 'gravity' command"
    ));
    let Resp::Array(help) = c.call(&["GRAVITY", "HELP"]) else {
        panic!("HELP")
    };
    assert!(help.contains(&Resp::Simple("HOTKEYS [COUNT <n>]".into())));
    assert!(
        matches!(c.call(&["COMMAND", "INFO", "GRAVITY|HOTKEYS"]), Resp::Array(a) if a.len() == 1)
    );
    // Off: nothing is sampled and HOTKEYS says why.
    c.call(&["CONFIG", "SET", "gravity-sketch", "no"]);
    assert_eq!(info_field(&mut c, "physics", "gravity_sketch"), "0");
    for i in 0..100 {
        c.call(&["GET", &format!("k{}", i % 3)]);
    }
    assert_eq!(info_field(&mut c, "physics", "gravity_samples"), "0");
    assert!(err_starts(
        &c.call(&["GRAVITY", "HOTKEYS"]),
        "ERR the hot-key sketch is off"
    ));
    c.call(&["CONFIG", "SET", "gravity-sketch", "yes"]);
    for i in 0..200 {
        c.call(&["GET", &format!("k{}", i % 3)]);
    }
    assert!(hotkeys(&mut c, "10").len() <= 3);
    assert!(!hotkeys(&mut c, "10").is_empty());
    assert!(err_starts(
        &c.call(&["CONFIG", "SET", "gravity-max-keys", "0"]),
        "ERR CONFIG SET failed"
    ));
}

#[test]
fn redis_cli_hotkeys_needs_an_lfu_policy_as_with_redis() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    for i in 0..20 {
        c.call(&["SET", &format!("k{i}"), "v"]);
    }
    // Without an LFU policy redis-cli stops at OBJECT FREQ's error, as against Redis.
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "--hotkeys"])
        .output()
        .expect("redis-cli");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("An LFU maxmemory policy is not selected")
    );
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    for _ in 0..300 {
        c.call(&["GET", "k7"]);
    }
    let report = redis_cli(server.port, &["--hotkeys"]);
    let first = report
        .lines()
        .find(|l| l.starts_with("hot key found"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(first.contains("\"k7\""), "{report}");
}
