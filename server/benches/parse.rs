//! Request parsing: WarpEngine's parser against `redis-protocol`'s general decoder, on the
//! frame shape clients send (arrays of bulk strings). Run: cargo bench -p warpengine --bench parse

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use warpengine::protocol::{parse_request, Limits};

fn pipeline(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:08}");
        let val = "x".repeat(64);
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n${}\r\n{}\r\n",
                key.len(),
                key,
                val.len(),
                val
            )
            .as_bytes(),
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let input = pipeline(16);
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse_16_set_commands");
    g.bench_function("warpengine", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some(args)) = parse_request(&mut buf, &limits, true) {
                n += args.len();
            }
            black_box(n)
        })
    });
    g.bench_function("redis_protocol_decode_bytes_mut", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some((frame, _, _))) =
                redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
            {
                black_box(&frame);
                n += 1;
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
