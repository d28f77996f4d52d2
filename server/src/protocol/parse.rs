//! Request parsing. Redis accepts exactly two request shapes: a multibulk array of bulk strings
//! and an inline command line. This parser handles both without allocating per argument (each
//! argument is a slice of the frozen read buffer), with Redis's limits and error texts.
//! See BENCHMARKS.md for why this is hand-written rather than `redis-protocol`'s general decoder.

use bytes::{Bytes, BytesMut};

/// Redis's request size limits (`proto-max-bulk-len`, the inline and header limits in networking.c).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub proto_max_bulk_len: u64,
    pub max_multibulk_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            proto_max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as u64,
        }
    }
}

/// PROTO_INLINE_MAX_SIZE in Redis.
pub const INLINE_MAX: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: &str) -> ProtocolError {
        ProtocolError(format!("Protocol error: {what}"))
    }
}

/// Where an incomplete multibulk request stopped: the next read resumes here instead of
/// walking every argument header again (which would make a request of many small arguments,
/// sent slowly, quadratic to parse).
#[derive(Default)]
pub struct Partial {
    count: usize,
    pos: usize,
    spans: Spans,
}

/// Argument spans; those of short requests (nearly all of them) stay on the stack.
#[derive(Default)]
struct Spans {
    inline: [(usize, usize); 8],
    len: usize,
    heap: Vec<(usize, usize)>,
}

impl Spans {
    fn push(&mut self, span: (usize, usize)) {
        if self.heap.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = span;
            self.len += 1;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline[..self.len]);
            }
            self.heap.push(span);
        }
    }

    fn as_slice(&self) -> &[(usize, usize)] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    fn count(&self) -> usize {
        self.as_slice().len()
    }
}

/// A connection's request parser: stateless between requests, but it remembers how far it got
/// into an incomplete one.
#[derive(Default)]
pub struct RequestParser {
    partial: Option<Box<Partial>>,
}

impl RequestParser {
    /// Parses one request from the front of `buf`. `Ok(None)`: more bytes are needed (nothing
    /// consumed). An empty request (`*0`, a blank inline line) is consumed and returned empty.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if let Some(partial) = self.partial.take() {
            return parse_multibulk(buf, limits, authenticated, Some(partial), &mut self.partial);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] == b'*' {
            parse_multibulk(buf, limits, authenticated, None, &mut self.partial)
        } else {
            parse_inline(buf)
        }
    }
}

/// One request with a fresh parser (tests and benchmarks).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestParser::default().parse(buf, limits, authenticated)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    memchr_cr(&buf[from..]).map(|i| i + from)
}

fn memchr_cr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&c| c == b'\r')
}

/// Parses the decimal after a type byte, as Redis's `string2ll` (no `+`, no spaces, no
/// leading zeros).
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let (neg, d) = if digits[0] == b'-' {
        (true, &digits[1..])
    } else {
        (false, digits)
    };
    // string2ll: "0" alone, otherwise no leading zero (and no "-0").
    if d.is_empty() || (d[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
    resume: Option<Box<Partial>>,
    save: &mut Option<Box<Partial>>,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let mut state = match resume {
        Some(partial) => partial,
        None => {
            let Some(cr) = find_crlf(buf, 1) else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtocolError::new("too big mbulk count string"));
                }
                return Ok(None);
            };
            if cr + 1 >= buf.len() {
                return Ok(None);
            }
            let count = match parse_len(&buf[1..cr]) {
                Some(n) if n <= i32::MAX as i64 => n,
                _ => return Err(ProtocolError::new("invalid multibulk length")),
            };
            if !authenticated && count > 10 {
                return Err(ProtocolError::new("unauthenticated multibulk length"));
            }
            if count <= 0 {
                let _ = buf.split_to(cr + 2);
                return Ok(Some(Vec::new()));
            }
            if count as u64 > limits.max_multibulk_len {
                return Err(ProtocolError::new("invalid multibulk length"));
            }
            Box::new(Partial {
                count: count as usize,
                pos: cr + 2,
                spans: Spans::default(),
            })
        }
    };
    // Find every argument's span without consuming; on running out of bytes, remember where.
    while state.spans.count() < state.count {
        let pos = state.pos;
        if pos >= buf.len() {
            *save = Some(state);
            return Ok(None);
        }
        if buf[pos] != b'$' {
            let got = buf[pos] as char;
            return Err(ProtocolError(format!(
                "Protocol error: expected '$', got '{got}'"
            )));
        }
        let Some(cr) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(ProtocolError::new("too big bulk count string"));
            }
            *save = Some(state);
            return Ok(None);
        };
        if cr + 1 >= buf.len() {
            *save = Some(state);
            return Ok(None);
        }
        let len = match parse_len(&buf[pos + 1..cr]) {
            Some(n) if n >= 0 && (n as u64) <= limits.proto_max_bulk_len => n as usize,
            _ => {
                if !authenticated {
                    return Err(ProtocolError::new("unauthenticated bulk length"));
                }
                return Err(ProtocolError::new("invalid bulk length"));
            }
        };
        if !authenticated && len > 16384 {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        let start = cr + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            if buf.capacity() < end + 2 {
                buf.reserve(end + 2 - buf.len());
            }
            *save = Some(state);
            return Ok(None);
        }
        state.spans.push((start, end));
        state.pos = end + 2;
    }
    let frame = buf.split_to(state.pos).freeze();
    Ok(Some(
        state
            .spans
            .as_slice()
            .iter()
            .map(|&(s, e)| frame.slice(s..e))
            .collect(),
    ))
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&c| c == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    match split_args(&line[..end]) {
        Some(args) => Ok(Some(args)),
        None => Err(ProtocolError::new("unbalanced quotes in request")),
    }
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Splits an inline line into arguments with Redis's `sdssplitargs` quoting rules.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        parse_request(&mut buf, &Limits::default(), true)
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn multibulk() {
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap(),
            Some(args(&["GET", "k"]))
        );
        assert_eq!(parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r").unwrap(), None);
        assert_eq!(parse(b"*2\r\n$3\r\nGET").unwrap(), None);
        assert_eq!(parse(b"*0\r\n").unwrap(), Some(vec![]));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some(vec![]));
    }

    #[test]
    fn pipelined_requests_are_consumed_one_at_a_time() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\nPING\r\n"[..]);
        let l = Limits::default();
        assert_eq!(
            parse_request(&mut buf, &l, true).unwrap(),
            Some(args(&["PING"]))
        );
        assert_eq!(
            parse_request(&mut buf, &l, true).unwrap(),
            Some(args(&["PING"]))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn multibulk_errors_match_redis() {
        let e = |b: &[u8]| parse(b).unwrap_err().0;
        assert_eq!(e(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            e(b"*3000000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(e(b"*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(e(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$600000000\r\n"),
            "Protocol error: invalid bulk length"
        );
        let mut big = b"*1".to_vec();
        big.extend(std::iter::repeat_n(b'1', 70_000));
        assert_eq!(e(&big), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn an_incomplete_request_resumes_where_it_stopped() {
        let mut parser = RequestParser::default();
        let limits = Limits::default();
        let whole = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut buf = BytesMut::new();
        for (i, &b) in whole.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let got = parser.parse(&mut buf, &limits, true).unwrap();
            if i + 1 < whole.len() {
                assert_eq!(got, None, "complete too early at byte {i}");
            } else {
                assert_eq!(got, Some(args(&["SET", "key", "value"])));
            }
        }
        assert!(buf.is_empty());
        // Many arguments arriving slowly: each read only looks at what is new.
        let mut buf = BytesMut::from(&b"*20\r\n"[..]);
        for i in 0..20 {
            assert_eq!(parser.parse(&mut buf, &limits, true).unwrap(), None);
            buf.extend_from_slice(format!("$2\r\n{i:02}\r\n").as_bytes());
        }
        let got = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
        assert_eq!(got.len(), 20);
        assert_eq!(got[19], Bytes::from_static(b"19"));
    }

    #[test]
    fn unauthenticated_limits() {
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default(), false)
                .unwrap_err()
                .0,
            "Protocol error: unauthenticated multibulk length"
        );
    }

    #[test]
    fn inline() {
        assert_eq!(parse(b"PING\r\n").unwrap(), Some(args(&["PING"])));
        assert_eq!(
            parse(b"set a \"b c\"\n").unwrap(),
            Some(args(&["set", "a", "b c"]))
        );
        assert_eq!(
            parse(b"set a 'it\\'s'\n").unwrap(),
            Some(args(&["set", "a", "it's"]))
        );
        assert_eq!(
            parse(b"echo \"\\x41\\n\"\n").unwrap(),
            Some(args(&["echo", "A\n"]))
        );
        assert_eq!(parse(b"   \r\n").unwrap(), Some(vec![]));
        assert_eq!(parse(b"PING").unwrap(), None);
        assert_eq!(
            parse(b"set \"a\n").unwrap_err().0,
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            parse(&vec![b'a'; 70_000]).unwrap_err().0,
            "Protocol error: too big inline request"
        );
    }
}
