//! A small RESP3 reader for replies (not requests): turns reply bytes back into [`Reply`] values.
//! Used to load embedded data recorded from a real Redis (see `server/data/README.md`).

use bytes::Bytes;

use super::Reply;

/// Why a reply could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadError {
    pub offset: usize,
    pub what: &'static str,
}

/// Reads one complete reply starting at `at`; returns it and the offset just past it. Its
/// strings are slices of `src`, not copies (the embedded command docs are some 30,000 of them).
pub fn read_reply(src: &Bytes, at: usize) -> Result<(Reply, usize), ReadError> {
    let buf: &[u8] = src;
    let err = |what| ReadError { offset: at, what };
    let tag = *buf.get(at).ok_or_else(|| err("unexpected end of input"))?;
    let end = buf[at..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| at + p)
        .ok_or_else(|| err("missing CRLF"))?;
    let head = &buf[at + 1..end];
    let after = end + 2;
    let text = || String::from_utf8(head.to_vec()).map_err(|_| err("line is not UTF-8"));
    let int = || -> Result<i64, ReadError> {
        std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("bad integer"))
    };
    let reply = match tag {
        b'+' => Reply::StatusOwned(text()?),
        b'-' => Reply::Error(text()?),
        b':' => Reply::Int(int()?),
        b'_' => Reply::Nil,
        b'(' => Reply::BigNumber(src.slice(at + 1..end)),
        b'|' => {
            // An attribute: read and dropped (as Redis's scripts drop them); the reply it
            // annotates follows.
            let mut pos = after;
            for _ in 0..int()?.max(0) * 2 {
                pos = read_reply(src, pos)?.1;
            }
            return read_reply(src, pos);
        }
        b'#' => match head {
            b"t" => Reply::Bool(true),
            b"f" => Reply::Bool(false),
            _ => return Err(err("bad boolean")),
        },
        b',' => Reply::Double(match head {
            b"inf" => f64::INFINITY,
            b"-inf" => f64::NEG_INFINITY,
            _ => text()?.parse().map_err(|_| err("bad double"))?,
        }),
        b'$' | b'=' => {
            let n = int()?;
            if n < 0 {
                return Ok((Reply::Nil, after));
            }
            let stop = after + n as usize;
            if buf.len() < stop + 2 || &buf[stop..stop + 2] != b"\r\n" {
                return Err(err("truncated bulk string"));
            }
            if tag == b'=' {
                if !buf[after..stop].starts_with(b"txt:") {
                    return Err(err("verbatim format is not txt"));
                }
                return Ok((Reply::Verbatim(src.slice(after + 4..stop)), stop + 2));
            }
            return Ok((Reply::Bulk(src.slice(after..stop)), stop + 2));
        }
        b'*' | b'~' | b'%' => {
            let n = int()?;
            if n < 0 {
                return Ok((Reply::NilArray, after));
            }
            let mut pos = after;
            let mut next = || -> Result<Reply, ReadError> {
                let (r, p) = read_reply(src, pos)?;
                pos = p;
                Ok(r)
            };
            let reply = match tag {
                b'%' => Reply::Map(
                    (0..n)
                        .map(|_| Ok((next()?, next()?)))
                        .collect::<Result<_, _>>()?,
                ),
                b'~' => Reply::Set((0..n).map(|_| next()).collect::<Result<_, _>>()?),
                _ => Reply::Array((0..n).map(|_| next()).collect::<Result<_, _>>()?),
            };
            return Ok((reply, pos));
        }
        _ => return Err(err("unsupported reply type")),
    };
    Ok((reply, after))
}

/// Reads every reply in `buf`, back to back.
pub fn read_all(src: &Bytes) -> Result<Vec<Reply>, ReadError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < src.len() {
        let (r, p) = read_reply(src, pos)?;
        out.push(r);
        pos = p;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(wire: &[u8]) {
        let (reply, end) = read_reply(&Bytes::copy_from_slice(wire), 0).unwrap();
        assert_eq!(end, wire.len());
        let mut out = Vec::new();
        reply.encode(&mut out, true);
        assert_eq!(out, wire, "{}", String::from_utf8_lossy(wire));
    }

    #[test]
    fn reads_what_the_encoder_writes() {
        roundtrip(b"+OK\r\n");
        roundtrip(b"-ERR no\r\n");
        roundtrip(b":-12\r\n");
        roundtrip(b"$3\r\na\r\n\r\n");
        roundtrip(b"$0\r\n\r\n");
        roundtrip(b"_\r\n");
        roundtrip(b"#t\r\n");
        roundtrip(b",1.5\r\n");
        roundtrip(b",inf\r\n");
        roundtrip(b"=7\r\ntxt:abc\r\n");
        roundtrip(b"*2\r\n:1\r\n~1\r\n+a\r\n");
        roundtrip(b"%2\r\n$1\r\nk\r\n*0\r\n$1\r\nj\r\n%0\r\n");
        roundtrip(b"(1234567999999999999999999999999999999\r\n");
    }

    #[test]
    fn an_attribute_is_dropped_for_the_reply_it_annotates() {
        let wire = b"|1\r\n$3\r\nkey\r\n*2\r\n$1\r\na\r\n:9\r\n+real\r\n";
        assert_eq!(
            read_reply(&Bytes::copy_from_slice(wire), 0).unwrap(),
            (Reply::StatusOwned("real".into()), wire.len())
        );
    }

    #[test]
    fn reads_null_aggregates_and_sequences() {
        assert_eq!(
            read_reply(&Bytes::from_static(b"$-1\r\n"), 0).unwrap(),
            (Reply::Nil, 5)
        );
        assert_eq!(
            read_reply(&Bytes::from_static(b"*-1\r\n"), 0).unwrap(),
            (Reply::NilArray, 5)
        );
        assert_eq!(
            read_all(&Bytes::from_static(b":1\r\n+x\r\n")).unwrap(),
            vec![Reply::Int(1), Reply::StatusOwned("x".into())]
        );
    }

    #[test]
    fn rejects_broken_input() {
        assert!(read_reply(&Bytes::from_static(b"$5\r\nab\r\n"), 0).is_err());
        assert!(read_reply(&Bytes::from_static(b"*2\r\n:1\r\n"), 0).is_err());
        assert!(read_reply(&Bytes::from_static(b":1"), 0).is_err());
        assert!(read_reply(&Bytes::from_static(b"?x\r\n"), 0).is_err());
        assert!(read_reply(&Bytes::from_static(b""), 0).is_err());
    }
}
