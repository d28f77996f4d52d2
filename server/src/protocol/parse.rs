//! Request parsing. Redis accepts exactly two request shapes: a multibulk array of bulk strings
//! and an inline command line. This parser handles both without allocating per argument (each
//! argument is a slice of the frozen read buffer), with Redis's limits and error texts.
//! See BENCHMARKS.md for why this is hand-written rather than `redis-protocol`'s general decoder.
//!
//! It follows Redis 7.0's `processInlineBuffer` and `processMultibulkBuffer` (networking.c) byte
//! for byte, including where C shows through:
//! - Redis finds the end of a header line (`*N`, `$N`) or of an inline command with `strchr`,
//!   which stops at a NUL byte. A NUL before the line's end therefore means, to Redis, that the
//!   line has not ended yet: the request waits until more than 64 KB are buffered, then fails
//!   with "too big ...". [`LineScan`] does the same.
//! - After the `\r` of a header line, the next byte is taken to be `\n` without a look, and the
//!   two bytes after a bulk's data are skipped the same way.
//!
//! Two guarantees hold for every input, in any chunking (the fuzz target in `fuzz/` checks them,
//! see `scripts/fuzz.sh`):
//! - Progress: a call either returns a request and consumes at least one byte, returns
//!   `Ok(None)` and consumes nothing (more bytes are needed), or fails. What may be buffered while
//!   waiting is bounded: 64 KB for a line, `proto-max-bulk-len` for a bulk.
//! - Memory follows the bytes received, never what a header announces: a `$536870912` header
//!   reserves nothing; the read buffer grows as the data arrives.

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

/// PROTO_INLINE_MAX_SIZE in Redis: the most a line may take before its end is found.
pub const INLINE_MAX: usize = 64 * 1024;

/// A malformed request. The message may echo a byte the client sent, as Redis's does, so it is
/// bytes rather than text; the connection answers `-ERR <message>` and closes.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub Vec<u8>);

impl ProtocolError {
    fn new(what: &str) -> ProtocolError {
        ProtocolError(format!("Protocol error: {what}").into_bytes())
    }

    /// The message as text, for the tests' comparisons.
    #[cfg(test)]
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// Where an incomplete multibulk request stopped: the next read resumes here instead of
/// walking every argument header again (which would make a request of many small arguments,
/// sent slowly, quadratic to parse).
#[derive(Default)]
struct Partial {
    count: usize,
    pos: usize,
    spans: Spans,
    /// Waiting for a bulk's body: how long the buffer must be to hold it (0: for a header).
    needs: usize,
    /// Waiting for a bulk's body: where it starts.
    body_from: usize,
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

/// The search for the end of the line being read (a header line or an inline command), kept
/// across reads so that a line arriving a byte at a time is searched once, not once per read.
#[derive(Default, Clone, Copy)]
struct LineScan {
    /// Everything before this index (in the buffer, which only grows while a request is
    /// incomplete) has been searched without finding the line's end.
    from: usize,
    /// A NUL came first: as for Redis's `strchr`, this line never ends.
    stalled: bool,
}

impl LineScan {
    /// The index of `end` (`\r` or `\n`) at or after `start`, as C's `strchr` finds it (a NUL
    /// first: never).
    #[inline(always)]
    fn find(&mut self, buf: &[u8], start: usize, end: u8) -> Option<usize> {
        if self.stalled {
            return None;
        }
        let from = self.from.max(start);
        // Header lines are a few bytes: one comparison per byte finds both the line's end and a
        // NUL (both are at most `\r`); memchr takes over past the first bytes of a long line.
        let short_end = buf.len().min(from + 32);
        let mut i = from;
        while i < short_end {
            let c = buf[i];
            if c <= b'\r' {
                if c == end {
                    return Some(i);
                }
                if c == 0 {
                    self.stalled = true;
                    return None;
                }
            }
            i += 1;
        }
        let rest = buf.get(short_end..).unwrap_or_default();
        match memchr::memchr2(end, 0, rest) {
            Some(j) if rest[j] == end => {
                self.from = short_end + j;
                Some(short_end + j)
            }
            Some(_) => {
                self.stalled = true;
                None
            }
            None => {
                self.from = buf.len();
                None
            }
        }
    }
}

/// A connection's request parser: stateless between requests, but it remembers how far it got
/// into an incomplete one.
#[derive(Default)]
pub struct RequestParser {
    partial: Option<Box<Partial>>,
    line: LineScan,
}

impl RequestParser {
    /// Whether it holds no part of a request (a large argument's start, say).
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// How many more bytes the argument being read needs, once its header is in a buffer of
    /// `buffered` bytes (0 when it is not in the middle of an argument).
    pub fn still_needs(&self, buffered: usize) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |p| p.needs.saturating_sub(buffered))
    }

    /// How many bytes at the front of the buffer the incomplete request's parse has gone past
    /// (its headers and whole arguments): Redis has them out of its query buffer by then, so
    /// CLIENT LIST's `qbuf` leaves them out.
    pub fn parsed_bytes(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |p| if p.needs > 0 { p.body_from } else { p.pos })
    }

    /// The bytes of the incomplete request's whole arguments (Redis's `argv-mem` for it).
    pub fn parsed_args_bytes(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |p| p.spans.as_slice().iter().map(|(s, e)| e - s).sum())
    }

    /// Parses one request from the front of `buf`. `Ok(None)`: more bytes are needed (nothing
    /// consumed). An empty request (`*0`, a blank inline line) is consumed and returned empty.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if buf.is_empty() && self.partial.is_none() {
            return Ok(None);
        }
        if self.partial.is_none() && buf[0] == b'*' {
            if let Some(args) = parse_plain_multibulk(buf, limits, authenticated) {
                self.line = LineScan::default();
                return Ok(Some(args));
            }
        }
        let parsed = if self.partial.is_some() || buf[0] == b'*' {
            self.parse_multibulk(buf, limits, authenticated)
        } else {
            self.parse_inline(buf)
        };
        if !matches!(parsed, Ok(None)) {
            // A request ended (or the connection will): the next one starts afresh.
            self.partial = None;
            self.line = LineScan::default();
        }
        parsed
    }

    fn parse_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        // On the stack while the request is parsed; boxed only if it must wait for more bytes.
        let mut state = match self.partial.take() {
            Some(partial) => *partial,
            None => {
                let Some(cr) = self.line.find(buf, 1, b'\r') else {
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
                Partial {
                    count: count as usize,
                    pos: cr + 2,
                    spans: Spans::default(),
                    needs: 0,
                    body_from: 0,
                }
            }
        };
        // Find every argument's span without consuming; on running out of bytes, remember where.
        while state.spans.count() < state.count {
            let pos = state.pos;
            let Some(cr) = self.line.find(buf, pos, b'\r') else {
                if buf.len().saturating_sub(pos) > INLINE_MAX {
                    return Err(ProtocolError::new("too big bulk count string"));
                }
                self.partial = Some(Box::new(state));
                return Ok(None);
            };
            if cr + 1 >= buf.len() {
                self.partial = Some(Box::new(state));
                return Ok(None);
            }
            if buf[pos] != b'$' {
                // Redis formats the byte with `%c` and maps CR and LF to spaces; a NUL cannot
                // be here (the line search stops at it).
                let got = match buf[pos] {
                    b'\r' | b'\n' => b' ',
                    c => c,
                };
                let mut msg = b"Protocol error: expected '$', got '".to_vec();
                msg.extend_from_slice(&[got, b'\'']);
                return Err(ProtocolError(msg));
            }
            let len = match parse_len(&buf[pos + 1..cr]) {
                Some(n) if n >= 0 && (n as u64) <= limits.proto_max_bulk_len => n as usize,
                _ => return Err(ProtocolError::new("invalid bulk length")),
            };
            if !authenticated && len > 16384 {
                return Err(ProtocolError::new("unauthenticated bulk length"));
            }
            let start = cr + 2;
            let end = start.saturating_add(len);
            if end.saturating_add(2) > buf.len() {
                // The connection's read buffer grows as the bulk arrives; nothing is reserved
                // for what the header only announces (see `still_needs`).
                state.needs = end.saturating_add(2);
                state.body_from = start;
                self.partial = Some(Box::new(state));
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

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = self.line.find(buf, 0, b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(None);
        };
        let line = buf.split_to(nl + 1).freeze();
        let mut end = nl;
        if end > 0 && line[end - 1] == b'\r' {
            end -= 1;
        }
        if let Some(args) = split_plain(&line, end) {
            return Ok(Some(args));
        }
        match split_args(&line[..end]) {
            Some(args) => Ok(Some(args)),
            None => Err(ProtocolError::new("unbalanced quotes in request")),
        }
    }
}

/// An inline line of plain words (printable ASCII but quotes, separated by spaces) split as
/// slices of the line, which `split_args` would split the same way byte by byte; None for any
/// other line (quotes, escapes, tabs, control or non-ASCII bytes), which `split_args` takes.
fn split_plain(line: &Bytes, end: usize) -> Option<Vec<Bytes>> {
    let text = &line[..end];
    if !text
        .iter()
        .all(|&c| c == b' ' || (c.is_ascii_graphic() && c != b'"' && c != b'\''))
    {
        return None;
    }
    let mut args = Vec::new();
    let mut start = None;
    for (i, &c) in text.iter().enumerate() {
        match (c == b' ', start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                args.push(line.slice(s..i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        args.push(line.slice(s..end));
    }
    Some(args)
}

/// The arguments a plain request can have for [`parse_plain_multibulk`] (nearly all have fewer).
const PLAIN_MAX_ARGS: usize = 8;

/// The common shape of a request, whole in `buf`, in one pass: `*N` then N times `$L` and L
/// bytes, every header line plain digits (no sign, no leading zero) and within the limits.
/// Anything else, an incomplete request included, is `None` and the general parser takes it
/// from the start: it gives the same answer on what this accepts (the seeded tests check this
/// on random inputs), and answers everything else as Redis does. Scanning each header once and
/// reading its digits on the way costs about half of what the general parser's line search,
/// `string2ll` and resumable state cost per request (issue 14).
#[inline]
fn parse_plain_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Option<Vec<Bytes>> {
    /// Reads `<digits>\r` at `at` (the byte after the type byte); returns the value and the
    /// position after `\r\n` (the `\n` itself is not checked, as Redis does not).
    #[inline(always)]
    fn header(b: &[u8], mut at: usize) -> Option<(u64, usize)> {
        let first = *b.get(at)?;
        if !first.is_ascii_digit() {
            return None;
        }
        let mut v = (first - b'0') as u64;
        at += 1;
        loop {
            let c = *b.get(at)?;
            if c.is_ascii_digit() {
                // A leading zero or more than 18 digits: the general parser judges it.
                if v == 0 || v >= 100_000_000_000_000_000 {
                    return None;
                }
                v = v * 10 + (c - b'0') as u64;
                at += 1;
            } else if c == b'\r' && at + 1 < b.len() {
                return Some((v, at + 2));
            } else {
                return None;
            }
        }
    }
    let b = &buf[..];
    let (count, mut pos) = header(b, 1)?;
    let count = count as usize;
    if count == 0
        || count > PLAIN_MAX_ARGS
        || (!authenticated && count > 10)
        || count as u64 > limits.max_multibulk_len
    {
        return None;
    }
    let mut spans = [(0usize, 0usize); PLAIN_MAX_ARGS];
    for span in &mut spans[..count] {
        if *b.get(pos)? != b'$' {
            return None;
        }
        let (len, start) = header(b, pos + 1)?;
        if len > limits.proto_max_bulk_len || (!authenticated && len > 16384) {
            return None;
        }
        let end = start.checked_add(len as usize)?;
        if end.checked_add(2)? > b.len() {
            return None;
        }
        *span = (start, end);
        pos = end + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Some(
        spans[..count]
            .iter()
            .map(|&(s, e)| frame.slice(s..e))
            .collect(),
    )
}

/// One request with a fresh parser (tests and benchmarks).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestParser::default().parse(buf, limits, authenticated)
}

/// Parses the decimal after a type byte, as Redis's `string2ll` (no `+`, no spaces, no
/// leading zeros, no `-0`, at most 20 characters).
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let (neg, d) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if d.is_empty() || (d[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        // -9223372036854775808 is an i64; its magnitude is not.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// C's `isspace` in the "C" locale: unlike `u8::is_ascii_whitespace`, it includes `\v`.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Splits an inline line into arguments with Redis's `sdssplitargs` quoting rules (the same as
/// redis-cli's). `None`: unbalanced quotes, or a closing quote followed by something other than
/// a space. `sdssplitargs` reads a C string, so the line ends at its first NUL byte.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let line = &line[..memchr::memchr(0, line).unwrap_or(line.len())];
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
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
                    // The closing quote must be followed by a space or nothing at all.
                    if i + 1 < n && !is_c_space(line[i + 1]) {
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
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                // Outside quotes only these end an argument (not `\v` or `\f`), as in Redis.
                let run = line[i..]
                    .iter()
                    .position(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b'"' | b'\''))
                    .unwrap_or(n - i);
                cur.extend_from_slice(&line[i..i + run]);
                i += run;
                if i >= n {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => break,
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

    /// The fast path accepts only what the general parser parses the same way, leaving the
    /// same bytes behind; and it does take the common shape.
    #[test]
    fn still_needs_is_the_rest_of_the_argument_being_read() {
        let limits = Limits::default();
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\nabc"[..]);
        assert_eq!(p.parse(&mut buf, &limits, true).unwrap(), None);
        // The body's 100000 bytes and its CRLF, of which 3 are here.
        assert_eq!(p.still_needs(buf.len()), 100_000 + 2 - 3);
        buf.extend_from_slice(&vec![b'x'; 99_997]);
        buf.extend_from_slice(b"\r\n");
        assert_eq!(
            p.parse(&mut buf, &limits, true).unwrap().map(|a| a.len()),
            Some(3)
        );
        assert_eq!(p.still_needs(buf.len()), 0);
        // Waiting for a header line: nothing known to need.
        let mut buf = BytesMut::from(&b"*2\r\n$3"[..]);
        assert_eq!(p.parse(&mut buf, &limits, true).unwrap(), None);
        assert_eq!(p.still_needs(buf.len()), 0);
    }

    #[test]
    fn the_plain_fast_path_agrees_with_the_general_parser() {
        let mut seed = 0x5eed_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let limits = Limits {
            proto_max_bulk_len: 40,
            ..Limits::default()
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let mut req = Vec::new();
            let argc = next(11);
            req.extend_from_slice(format!("*{argc}\r\n").as_bytes());
            for _ in 0..argc {
                let len = next(45) as usize;
                req.extend_from_slice(format!("${len}\r\n").as_bytes());
                req.extend((0..len).map(|_| b"ab\r\n$*0-"[next(8) as usize]));
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            // Damage some: a changed byte, a cut, a leading zero, a sign.
            match next(6) {
                0 => {
                    let at = next(req.len() as u64) as usize;
                    req[at] = b"0-+\r\n\0$*9x"[next(10) as usize];
                }
                1 => req.truncate(next(req.len() as u64) as usize),
                2 => req.insert(1, b'0'),
                _ => {}
            }
            if req.is_empty() || req[0] != b'*' {
                continue;
            }
            for authenticated in [true, false] {
                let mut fast_buf = BytesMut::from(&req[..]);
                let Some(fast) = parse_plain_multibulk(&mut fast_buf, &limits, authenticated)
                else {
                    continue;
                };
                taken += 1;
                let mut slow_buf = BytesMut::from(&req[..]);
                let slow = RequestParser::default()
                    .parse_multibulk(&mut slow_buf, &limits, authenticated)
                    .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(&req)));
                assert_eq!(Some(fast), slow, "{:?}", String::from_utf8_lossy(&req));
                assert_eq!(fast_buf, slow_buf);
            }
        }
        assert!(taken > 10_000, "the fast path took only {taken} requests");
    }

    /// Whatever the plain splitter takes, `split_args` splits the same way; and it takes lines
    /// of plain words.
    #[test]
    fn plain_inline_words_split_as_split_args_splits_them() {
        let mut seed = 0x1a1e_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let len = next(24) as usize;
            let plain_only = next(2) == 0;
            let line: Vec<u8> = (0..len)
                .map(|_| {
                    if plain_only {
                        b"ab1 :*$-"[next(8) as usize]
                    } else {
                        b"ab \"'\\\t\x0b\x00\xff}"[next(11) as usize]
                    }
                })
                .collect();
            let bytes = Bytes::from(line.clone());
            match split_plain(&bytes, line.len()) {
                Some(fast) => {
                    taken += 1;
                    assert_eq!(Some(fast), split_args(&line), "{line:?}");
                }
                None => assert!(!plain_only, "{line:?}"),
            }
        }
        assert!(taken > 10_000, "the plain splitter took only {taken} lines");
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
        let e = |b: &[u8]| parse(b).unwrap_err().text();
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
                .text(),
            "Protocol error: unauthenticated multibulk length"
        );
    }

    #[test]
    fn a_nul_in_a_line_waits_like_redis_strchr_then_fails_at_the_limit() {
        // The bug of issue 12: these used to loop forever, allocating.
        for input in [
            &b"PING \x00\r\n"[..],
            b"\x00\r\n",
            b"a\x00b\r\n",
            b"ECHO \"a\x00b\"\r\n",
            b"*1\r\n\x00\r\n",
            b"*\x001\r\n",
            b"*1\r\n$\x001\r\n",
        ] {
            let mut parser = RequestParser::default();
            let mut buf = BytesMut::from(input);
            let limits = Limits::default();
            assert_eq!(parser.parse(&mut buf, &limits, true), Ok(None), "{input:?}");
            assert_eq!(buf.len(), input.len(), "nothing consumed");
            // More bytes, a line end among them, do not end the line: strchr stopped at the NUL.
            buf.extend_from_slice(b"PING\r\n");
            assert_eq!(parser.parse(&mut buf, &limits, true), Ok(None));
            buf.extend_from_slice(&vec![b'x'; INLINE_MAX]);
            let e = parser.parse(&mut buf, &limits, true).unwrap_err().text();
            assert!(e.starts_with("Protocol error: too big "), "{e}");
        }
        // After a complete line, a NUL is only data.
        assert_eq!(
            parse(b"*2\r\n$4\r\nECHO\r\n$3\r\na\x00b\r\n").unwrap(),
            Some(args(&["ECHO", "a\0b"]))
        );
    }

    #[test]
    fn header_lines_are_found_before_they_are_judged() {
        // Redis looks for the line's end first: no CR yet, no error yet.
        assert_eq!(parse(b"*1\r\nX"), Ok(None));
        assert_eq!(
            parse(b"*1\r\nX\r\n").unwrap_err().text(),
            "Protocol error: expected '$', got 'X'"
        );
        assert_eq!(
            parse(b"*1\r\n\r\r\n").unwrap_err().0,
            b"Protocol error: expected '$', got ' '".to_vec()
        );
        assert_eq!(
            parse(b"*1\r\n\xff\r\n").unwrap_err().0,
            b"Protocol error: expected '$', got '\xff'".to_vec()
        );
        // The byte after a header's CR is not looked at, nor the two after a bulk.
        assert_eq!(parse(b"*1\rX$4\rXPINGxx").unwrap(), Some(args(&["PING"])));
        assert_eq!(parse(b"*-9223372036854775808\r\n").unwrap(), Some(vec![]));
        assert_eq!(
            parse(b"*-9223372036854775809\r\n").unwrap_err().text(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse(b"*-0\r\n").unwrap_err().text(),
            "Protocol error: invalid multibulk length"
        );
    }

    #[test]
    fn an_announced_bulk_reserves_nothing() {
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        let before = buf.capacity();
        let mut parser = RequestParser::default();
        assert_eq!(parser.parse(&mut buf, &Limits::default(), true), Ok(None));
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn an_invalid_bulk_length_is_invalid_before_it_is_unauthenticated() {
        let e = |b: &[u8]| {
            parse_request(&mut BytesMut::from(b), &Limits::default(), false)
                .unwrap_err()
                .text()
        };
        assert_eq!(e(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(e(b"*1\r\n$abc\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$16385\r\n"),
            "Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn split_args_is_sdssplitargs() {
        let split =
            |b: &[u8]| split_args(b).map(|v| v.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        // C's isspace includes \v and \f between arguments and after a closing quote ...
        assert_eq!(
            split(b"\x0bECHO \"a\"\x0bb"),
            Some(vec![b"ECHO".to_vec(), b"a".to_vec(), b"b".to_vec()])
        );
        // ... but outside quotes only space, tab, CR and LF end an argument.
        assert_eq!(
            split(b"ECHO a\x0bb"),
            Some(vec![b"ECHO".to_vec(), b"a\x0bb".to_vec()])
        );
        // A C string ends at NUL.
        assert_eq!(split(b"PING \x00 x"), Some(vec![b"PING".to_vec()]));
        assert_eq!(split(b"ECHO \"a\x00b\""), None);
        assert_eq!(split(b"ECHO 'it''s'"), None);
        assert_eq!(
            split(b"ECHO ab\"cd\""),
            Some(vec![b"ECHO".to_vec(), b"abcd".to_vec()])
        );
        assert_eq!(
            split(b"ECHO \"\\xZZ\\q\""),
            Some(vec![b"ECHO".to_vec(), b"xZZq".to_vec()])
        );
        assert_eq!(split(b"ECHO \"a\\\""), None);
        assert_eq!(
            split(b"\xff\xfe x"),
            Some(vec![b"\xff\xfe".to_vec(), b"x".to_vec()])
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
            parse(b"set \"a\n").unwrap_err().text(),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            parse(&vec![b'a'; 70_000]).unwrap_err().text(),
            "Protocol error: too big inline request"
        );
    }
}
