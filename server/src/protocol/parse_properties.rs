//! The request parser's contract, as a check any driver can run on any input: the fuzz target
//! in `fuzz/` (with an allocation meter, `scripts/fuzz.sh`) and the unit tests below (seeded
//! random inputs, every regression the fuzzer found).
//!
//! An input is a little program that says how the bytes arrive, so that one fuzz input covers
//! both the protocol bytes and their chunking (see [`Feed::decode`]). For every input:
//! - **progress**: a parse call that returns a request consumed at least one byte; one that asks
//!   for more consumed nothing; so a read's requests are parsed in at most one call per byte;
//! - **bounded allocation**: one call allocates at most `4 KB + 64 × (bytes buffered)`: never
//!   in proportion to a length a header announces, never without end;
//! - **chunking does not matter**: the requests parsed from the bytes as they arrived are those
//!   parsed from all of them at once, up to the first error (a limit such as 64 KB for a line can
//!   be reached earlier when bytes arrive slowly, as in Redis).

use bytes::{Bytes, BytesMut};

use super::parse::{Limits, RequestParser};

/// Where the check can read how much memory is allocated (the fuzz target counts every
/// allocation; unit tests pass [`NoMeter`]).
pub trait AllocationMeter {
    /// Bytes allocated and not yet freed.
    fn live(&self) -> usize;
    /// The highest `live` since the previous call (or since the start).
    fn take_peak(&self) -> usize;
}

/// For drivers that cannot count allocations: the allocation bound is not checked.
pub struct NoMeter;

impl AllocationMeter for NoMeter {
    fn live(&self) -> usize {
        0
    }
    fn take_peak(&self) -> usize {
        0
    }
}

/// What one input feeds at the most (more than the 64 KB line limits, less than would slow the
/// fuzzer down).
const MAX_FED: usize = 160 * 1024;

/// How the bytes of one input arrive.
pub struct Feed {
    pub authenticated: bool,
    pub limits: Limits,
    /// The reads, in order.
    pub chunks: Vec<Vec<u8>>,
}

impl Feed {
    /// The first byte sets the connection: bit 0 authenticated, bit 1 a small
    /// `proto-max-bulk-len` (1000, so that its limit is reached by small inputs). Then, op by op:
    /// `0xff 0xfe hi lo b` is a read of `(hi * 256 + lo) * 2` bytes of `b` (up to 128 KB, to reach
    /// the 64 KB line limits; a two-byte mark, so that random bytes seldom make one, as such reads
    /// are slow to run); any other byte `t` is a read of the next `t % 64 + 1` bytes. Reads stop
    /// once 160 KB were fed.
    pub fn decode(data: &[u8]) -> Feed {
        let (first, mut rest) = match data.split_first() {
            Some((&f, rest)) => (f, rest),
            None => (0, data),
        };
        let mut limits = Limits::default();
        if first & 2 != 0 {
            limits.proto_max_bulk_len = 1000;
        }
        let mut chunks = Vec::new();
        let mut total = 0;
        while let Some((&t, tail)) = rest.split_first() {
            if total > MAX_FED {
                break;
            }
            if t == 0xff && tail.len() >= 4 && tail[0] == 0xfe {
                let len = (tail[1] as usize * 256 + tail[2] as usize) * 2;
                chunks.push(vec![tail[3]; len]);
                total += len;
                rest = &tail[4..];
            } else {
                let n = (t as usize % 64 + 1).min(tail.len());
                chunks.push(tail[..n].to_vec());
                total += n;
                rest = &tail[n..];
            }
        }
        Feed {
            authenticated: first & 1 != 0,
            limits,
            chunks,
        }
    }
}

/// What a connection made of its bytes: the requests, then whether it stopped at an error.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<Vec<u8>>,
}

/// Pieces that steer random input into the parser's corners (headers, lengths at and past the
/// limits, quotes and escapes, NUL and other control bytes, commands that change a connection):
/// for the seeded tests here and the end-to-end test of random bytes.
pub const FRAGMENTS: &[&[u8]] = &[
    b"*",
    b"$",
    b"\r\n",
    b"\r",
    b"\n",
    b"\0",
    b"\x0b",
    b"\xff",
    b"0",
    b"1",
    b"2",
    b"3",
    b"-1",
    b"10",
    b"11",
    b"16384",
    b"16385",
    b"2147483647",
    b"2147483648",
    b"536870912",
    b"536870913",
    b"99999999999999999999",
    b"PING",
    b"SET",
    b"GET",
    b"ECHO",
    b"CLIENT",
    b"CONFIG",
    b"SUBSCRIBE",
    b"MULTI",
    b"EXEC",
    b"QUIT",
    b" ",
    b"\"",
    b"'",
    b"\\",
    b"\\x",
    b"\\x4",
    b"a",
    b"x y\r\n",
    b"*3\r\n$3\r\nSET\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
];

/// Runs `feed` through a parser read by read, and all at once, and panics on a broken property.
pub fn check(feed: &Feed, meter: &dyn AllocationMeter) {
    let chunked = run(feed, feed.chunks.iter().map(Vec::as_slice), meter);
    let whole_bytes = feed.chunks.concat();
    let whole = run(feed, std::iter::once(whole_bytes.as_slice()), meter);
    let n = chunked.requests.len().min(whole.requests.len());
    assert_eq!(
        chunked.requests[..n],
        whole.requests[..n],
        "chunking changed the requests"
    );
    if chunked.error.is_none() && whole.error.is_none() {
        assert_eq!(chunked, whole, "chunking changed the outcome");
    }
}

fn run<'a>(
    feed: &Feed,
    reads: impl Iterator<Item = &'a [u8]>,
    meter: &dyn AllocationMeter,
) -> Outcome {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut outcome = Outcome {
        requests: Vec::new(),
        error: None,
    };
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            let before = buf.len();
            let live = meter.live();
            meter.take_peak();
            let parsed = parser.parse(&mut buf, &feed.limits, feed.authenticated);
            let grew = meter.take_peak().saturating_sub(live);
            let allowed = 4096 + 64 * before;
            assert!(
                grew <= allowed,
                "one parse call allocated {grew} bytes with {before} buffered (at most {allowed})"
            );
            match parsed {
                Ok(Some(args)) => {
                    assert!(
                        buf.len() < before,
                        "a request was returned but nothing consumed"
                    );
                    outcome.requests.push(args);
                }
                Ok(None) => {
                    assert_eq!(
                        buf.len(),
                        before,
                        "waiting for more bytes, yet some consumed"
                    );
                    break;
                }
                Err(e) => {
                    outcome.error = Some(e.0);
                    return outcome;
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that once broke a property (the first is issue 12's NUL byte).
    const REGRESSIONS: &[&[u8]] = &[
        b"\x01\x06PING \x00\r\n",
        b"\x00\x02\x00\r\n",
        b"\x00\x07ECHO a\x00\x08\x00b\r\n",
        b"\x01\x0a*1\r\n$1\r\n\x00\r\n",
        b"\x01\x0f*1\r\n$536870912\r\n\xff\xfe\x80\x00a",
        b"\x00\x05PING \xff\xfe\x80\x00\x00\x01\r\n",
    ];

    #[test]
    fn regressions_hold_the_contract() {
        for input in REGRESSIONS {
            check(&Feed::decode(input), &NoMeter);
        }
    }

    /// Seeded random programs built from protocol fragments: a cheap stand-in for the fuzzer
    /// that runs with every `cargo test`.
    #[test]
    fn random_inputs_hold_the_contract() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut data = vec![next() as u8];
            for _ in 0..next() % 24 {
                if next() % 40 == 0 {
                    // A long read of one byte, past the 64 KB line limits sometimes.
                    let len = (next() % 40_000) as u16;
                    data.extend_from_slice(&[0xff, 0xfe, (len >> 8) as u8, len as u8]);
                    data.push(b"a \0\r\n\"\xff1"[(next() % 8) as usize]);
                    continue;
                }
                let mut chunk = Vec::new();
                for _ in 0..1 + next() % 6 {
                    chunk.extend_from_slice(FRAGMENTS[(next() as usize) % FRAGMENTS.len()]);
                }
                chunk.truncate(64);
                data.push((chunk.len() - 1) as u8 & 0x3f);
                data.extend_from_slice(&chunk);
            }
            check(&Feed::decode(&data), &NoMeter);
        }
    }
}
