//! ENTROPY STATS end to end: near 1.0 with busiest/mean near 1 under a load spread over every
//! shard, low with the busiest shard named under a load on one shard's keys; keys and bytes per
//! shard; errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use warpengine_tests::{encode_command, info_field, start_warpengine, RawConn, Resp};

const SHARDS: usize = 4;

/// GETs of `keys` (one pipeline of 100 after another, cycling) from one connection until
/// `stop` is set.
fn load(port: u16, keys: Vec<String>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = RawConn::connect(port);
        let mut next = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend(encode_command(&[
                    b"GET",
                    keys[next % keys.len()].as_bytes(),
                ]));
                next += 1;
            }
            c.send(&batch);
            for _ in 0..100 {
                c.read_reply().expect("GET reply");
            }
        }
    })
}

/// ENTROPY STATS taken while two connections send GETs of `keys`, once the rates (the mean of
/// the last 16 samples, 20 a second here) cover only this load.
fn stats_under_load(port: u16, keys: Vec<String>) -> Resp {
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..2)
        .map(|_| load(port, keys.clone(), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let stats = RawConn::connect(port).call(&["ENTROPY", "STATS"]);
    stop.store(true, Ordering::Relaxed);
    loads.into_iter().for_each(|l| l.join().unwrap());
    stats
}

fn shard_figures(stats: &Resp, name: &str) -> Vec<i64> {
    let Resp::Array(shards) = stats.field("shards") else {
        panic!("shards in {stats:?}")
    };
    assert_eq!(shards.len(), SHARDS);
    shards.iter().map(|s| s.field(name).int()).collect()
}

#[test]
fn entropy_is_high_for_spread_load_and_low_for_one_shard() {
    let server = start_warpengine(&["--threads", "4"]);
    let mut c = RawConn::connect(server.port);
    c.call(&["CONFIG", "SET", "hz", "20"]);
    let spread: Vec<String> = (0..1000).map(|i| format!("k:{i}")).collect();
    for chunk in spread.chunks(100) {
        let mut mset = vec!["MSET"];
        for k in chunk {
            mset.extend([k.as_str(), "some value"]);
        }
        c.call(&mset);
    }
    let stats = c.call(&["ENTROPY", "STATS"]);
    let keys = shard_figures(&stats, "keys");
    assert_eq!(keys.iter().sum::<i64>(), 1000);
    assert!(stats.field("keys_entropy").float() > 0.95, "{stats:?}");
    assert!(
        shard_figures(&stats, "bytes").iter().all(|&b| b > 0),
        "{stats:?}"
    );

    let stats = stats_under_load(server.port, spread);
    let entropy = stats.field("entropy").float();
    let ratio = stats.field("busiest_to_mean").float();
    assert!(entropy > 0.9, "spread load: entropy {entropy} in {stats:?}");
    assert!(
        ratio < 1.4,
        "spread load: busiest/mean {ratio} in {stats:?}"
    );
    assert!(stats.field("ops_per_sec").float() > 1000.0, "{stats:?}");

    // One hash tag: every key in one slot, so on one shard.
    let one: Vec<String> = (0..100).map(|i| format!("{{one}}:{i}")).collect();
    let owner = c.call(&["WORMHOLE", "ROUTE", "{one}"]).field("shard").int();
    let stats = stats_under_load(server.port, one);
    let entropy = stats.field("entropy").float();
    let ratio = stats.field("busiest_to_mean").float();
    assert!(entropy < 0.2, "one shard: entropy {entropy} in {stats:?}");
    assert!(entropy.is_sign_positive(), "{stats:?}");
    assert!(ratio > 3.5, "one shard: busiest/mean {ratio} in {stats:?}");
    assert_eq!(stats.field("busiest_shard").int(), owner);
    let requests = shard_figures(&stats, "requests");
    assert!(requests[owner as usize] > 0);
    // INFO physics has the same figures.
    let info: f64 = info_field(&mut c, "physics", "entropy_load")
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&info));
}

#[test]
fn entropy_errors() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(
        c.call(&["ENTROPY", "STATS", "x"]),
        Resp::Error("ERR wrong number of arguments for 'entropy|stats' command".into())
    );
    assert_eq!(
        c.call(&["ENTROPY", "SHUFFLE"]),
        Resp::Error("ERR unknown subcommand 'SHUFFLE'. Try ENTROPY HELP.".into())
    );
    let Resp::Array(help) = c.call(&["ENTROPY", "HELP"]) else {
        panic!("HELP")
    };
    assert!(help.contains(&Resp::Simple("STATS".into())));
    // An idle server is even.
    let stats = c.call(&["ENTROPY", "STATS"]);
    assert_eq!(stats.field("entropy").float(), 1.0);
    assert_eq!(stats.field("busiest_to_mean").float(), 1.0);
}
