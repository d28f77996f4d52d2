//! Miss ratios of every policy on the HORIZON workloads, by simulation (no server):
//! `cargo run --release -p warpengine-physics --example missratio`.

use warpengine_physics::reference::{Lru, SampledLfu, SampledLru};
use warpengine_physics::s3fifo::S3Fifo;
use warpengine_physics::sieve::Sieve;
use warpengine_physics::tinylfu::WTinyLfu;
use warpengine_physics::workload::{misses, ScanMix, Zipf};
use warpengine_physics::Policy;

const KEYS: usize = 1_000_000;
const REQUESTS: usize = 5_000_000;

fn stream(name: &str) -> Box<dyn Iterator<Item = u64>> {
    match name {
        "zipf-0.8" | "zipf-0.99" | "zipf-1.2" => {
            let alpha: f64 = name[5..].parse().expect("alpha");
            let mut z = Zipf::new(KEYS, alpha, 42);
            Box::new((0..REQUESTS).map(move |_| z.next_id()))
        }
        _ => {
            let mut m = ScanMix::new(KEYS, 0.99, 200_000, 50_000, 42);
            Box::new((0..REQUESTS).map(move |_| m.next_id()))
        }
    }
}

fn main() {
    println!("| workload | cache | LRU | Redis LRU (5 samples) | Redis LFU (5 samples) | SIEVE | S3-FIFO | W-TinyLFU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for name in ["zipf-0.8", "zipf-0.99", "zipf-1.2", "zipf-0.99+scans"] {
        for share in [0.01, 0.1] {
            let cap = (KEYS as f64 * share) as usize;
            let policies: Vec<Box<dyn Policy>> = vec![
                Box::new(Lru::default()),
                Box::new(SampledLru::new(5, 1)),
                Box::new(SampledLfu::new(5, 10, 1)),
                Box::new(Sieve::new()),
                Box::new(S3Fifo::new()),
                Box::new(WTinyLfu::new(cap)),
            ];
            let ratios: Vec<String> = policies
                .into_iter()
                .map(|mut p| {
                    let m = misses(p.as_mut(), cap, stream(name));
                    format!("{:.4}", m as f64 / REQUESTS as f64)
                })
                .collect();
            println!("| {name} | {}% | {} |", share * 100.0, ratios.join(" | "));
        }
    }
}
