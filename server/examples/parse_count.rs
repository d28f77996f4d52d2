//! A fixed amount of request parsing, for counting its instructions with callgrind (steady where
//! timings are not): 16 pipelined `SET key:NNNNNNNN <64 bytes>` requests copied into a buffer
//! and parsed, 20,000 times, as `benches/parse.rs` times them.
//!
//!   cargo build --release -p warpengine --example parse_count
//!   valgrind --tool=callgrind target/release/examples/parse_count    # "Collected : N"

use bytes::BytesMut;
use warpengine::protocol::{parse_request, Limits};

fn main() {
    let mut input = Vec::new();
    for i in 0..16 {
        let key = format!("key:{i:08}");
        let value = "x".repeat(64);
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    let limits = Limits::default();
    let mut arguments = 0;
    for _ in 0..20_000 {
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(args)) = parse_request(&mut buf, &limits, true) {
            arguments += args.len();
        }
    }
    assert_eq!(arguments, 20_000 * 16 * 3);
}
