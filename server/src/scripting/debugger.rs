//! `SCRIPT DEBUG SYNC`: Redis's Lua debugger (LDB) in its synchronous form, for the next
//! EVAL of the client that asked. The script stops before its first line; at each stop the
//! debugger sends its log lines (one RESP array of status replies, as Redis's `ldbSendLogs`)
//! and reads the client's commands straight from its socket (RESP arrays, as Redis's
//! `ldbReplParseCommand` reads them) until one resumes the script. When the script ends the
//! debugger sends `<endsession>`, then the EVAL's reply goes out and the connection closes,
//! as in Redis. Like Redis's sync mode, the script holds every shard meanwhile: the server
//! waits for the debugging client.
//!
//! Commands: help, step/next, continue, list, whole, print, break, trace, eval, redis, maxlen,
//! abort, as Redis's. Not here: `redis.debug()` and `redis.breakpoint()` (no-ops, as outside a
//! debugging session), and `SCRIPT DEBUG YES` (Redis forks a copy of the server for it).

use std::os::fd::RawFd;

use bytes::Bytes;

use crate::protocol::Reply;

/// Redis's LDB_MAX_LEN_DEFAULT: logged replies and values are cut at this many bytes.
const MAX_LEN_DEFAULT: usize = 256;
/// A command the client sends: at most this many arguments of at most this many bytes each,
/// and this much unread input (Redis's limits).
const MAX_ARGS: usize = 1024;
const MAX_ARG_LEN: usize = 1024;
const MAX_INPUT: usize = 1 << 20;
/// How long a write to the client may wait (Redis's sync mode sets a 5 s send timeout).
const SEND_TIMEOUT_MS: i32 = 5000;

/// What the script does after a stop.
pub enum Resume {
    /// Run on, stopping at the next line (step) or only at a breakpoint (continue).
    Go,
    /// Stop the script with this error (abort, a protocol error, too much input).
    Fail(&'static str),
}

/// What a debugger command needs of the running script.
pub trait Target {
    /// Runs `code` as Lua (as an expression first, as Redis's ldbEval) and answers the log
    /// line of its value or error.
    fn eval(&mut self, code: &str) -> String;
    /// Runs a Redis command as the script's `redis.call` would.
    fn redis(&mut self, args: Vec<Bytes>) -> Reply;
    /// The log lines of `print`: every local of the current function, or the one named
    /// (searched outwards, then KEYS and ARGV).
    fn print(&mut self, name: Option<&str>) -> Vec<String>;
    /// The script's frames, innermost first: function name and current line.
    fn trace(&mut self) -> Vec<(String, usize)>;
}

pub struct Session {
    fd: RawFd,
    lines: Vec<String>,
    /// Stop at the next line of the script.
    step: bool,
    breakpoints: Vec<usize>,
    current: usize,
    logs: Vec<Vec<u8>>,
    input: Vec<u8>,
    maxlen: usize,
    /// The hint that a log line was cut was given, or the client used `maxlen`.
    maxlen_hint_sent: bool,
    /// The client went away: the script runs to its end without stopping.
    gone: bool,
}

impl Session {
    /// A session for a script with `source`, talking to the client on socket `fd`.
    pub fn new(fd: RawFd, source: &[u8]) -> Session {
        let text = String::from_utf8_lossy(source);
        Session {
            fd,
            lines: text
                .split('\n')
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect(),
            step: true,
            breakpoints: Vec::new(),
            current: 0,
            logs: Vec::new(),
            input: Vec::new(),
            maxlen: MAX_LEN_DEFAULT,
            maxlen_hint_sent: false,
            gone: false,
        }
    }

    /// The script reached `line`: whether to stop there.
    pub fn should_stop(&mut self, line: usize) -> bool {
        self.current = line;
        !self.gone && (self.step || self.breakpoints.contains(&line))
    }

    /// A stop at the current line: shows where, then serves the client's commands until one
    /// resumes the script.
    pub fn stop(&mut self, target: &mut dyn Target) -> Resume {
        // A breakpoint names the stop even when stepping onto it, as in Redis.
        let reason = if self.breakpoints.contains(&self.current) {
            "break point"
        } else {
            "step over"
        };
        self.step = false;
        self.log(format!(
            "* Stopped at {}, stop reason = {reason}",
            self.current
        ));
        self.log_source_line(self.current);
        self.send_logs();
        loop {
            let argv = match self.read_command() {
                Ok(Some(argv)) => argv,
                // The client is gone: the script runs on without it, as in Redis.
                Ok(None) => {
                    self.gone = true;
                    return Resume::Go;
                }
                Err(e) => return Resume::Fail(e),
            };
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            match name.as_str() {
                "h" | "help" => self.help(),
                "s" | "step" | "n" | "next" => {
                    self.step = true;
                    return Resume::Go;
                }
                "c" | "continue" => return Resume::Go,
                "a" | "abort" => return Resume::Fail("script aborted for user request"),
                "l" | "list" => {
                    let mut around = self.current;
                    if let Some(n) = argv.get(1).and_then(|a| atoi(a)).filter(|&n| n > 0) {
                        around = n as usize;
                    }
                    let context = argv.get(2).and_then(|a| atoi(a)).unwrap_or(5);
                    self.list(around, context);
                }
                "w" | "whole" => self.list(1, 1_000_000),
                "b" | "break" => self.breakpoint(&argv[1..]),
                "m" | "maxlen" => self.set_maxlen(argv.get(1)),
                "e" | "eval" if argv.len() > 1 => {
                    let code: Vec<String> = argv[1..]
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    let line = target.eval(&code.join(" "));
                    self.log_trimmed(line);
                }
                "r" | "redis" if argv.len() > 1 => {
                    let args: Vec<Bytes> =
                        argv[1..].iter().map(|a| Bytes::from(a.clone())).collect();
                    self.log_call(&args);
                    let reply = target.redis(args);
                    self.log_reply(&reply);
                }
                "p" | "print" => {
                    let var = argv.get(1).map(|v| String::from_utf8_lossy(v).into_owned());
                    for line in target.print(var.as_deref()) {
                        self.log_trimmed(line);
                    }
                }
                "t" | "trace" => {
                    let frames = target.trace();
                    if frames.is_empty() {
                        self.log("<error> Can't retrieve Lua stack.".to_string());
                    }
                    for (i, (function, line)) in frames.into_iter().enumerate() {
                        let word = if i == 0 { "In" } else { "From" };
                        self.log(format!("{word} {function}:"));
                        self.log_source_line(line);
                    }
                }
                _ => self.log(
                    "<error> Unknown Redis Lua debugger command or wrong number of arguments."
                        .to_string(),
                ),
            }
            self.send_logs();
        }
    }

    /// Stepping: the script's commands are shown as they run.
    pub fn stepping(&self) -> bool {
        self.step
    }

    /// A command about to run, as Redis shows it: `<redis>` and its first ten arguments.
    pub fn log_call(&mut self, args: &[Bytes]) {
        let mut shown = b"<redis>".to_vec();
        for (i, a) in args.iter().enumerate() {
            if i == 10 {
                // (Redis's count, one short.)
                shown.extend_from_slice(format!(" ... ({} more)", args.len() - i - 1).as_bytes());
                break;
            }
            shown.push(b' ');
            shown.extend_from_slice(a);
        }
        self.logs.push(shown);
    }

    /// A command's reply: refused before it ran (an unknown command, ...) as `<error>`, as
    /// Redis's script layer raises those; else as `<reply>` in Redis's human form.
    pub fn log_reply(&mut self, reply: &Reply) {
        let text = match reply {
            Reply::Error(e) => e.clone(),
            Reply::ErrorBytes(e) | Reply::CountedError(e) => {
                String::from_utf8_lossy(e).into_owned()
            }
            other => {
                let line = format!("<reply> {}", human(other));
                return self.log_trimmed(line);
            }
        };
        match text.strip_prefix("ERR ").filter(|m| m.contains("script")) {
            Some(refusal) => self.log(format!("<error> {refusal}")),
            None => {
                let mut shown = b"<reply> ".to_vec();
                crate::monitor::repr(&mut shown, format!("-{text}").as_bytes());
                self.log_trimmed(String::from_utf8_lossy(&shown).into_owned());
            }
        }
    }

    /// The script ended: the last logs and Redis's end mark.
    pub fn end(&mut self) {
        self.log("<endsession>".to_string());
        self.send_logs();
    }

    fn log(&mut self, line: String) {
        self.logs.push(line.into_bytes());
    }

    /// A reply or value, cut at `maxlen` bytes with Redis's hint.
    fn log_trimmed(&mut self, mut line: String) {
        if self.maxlen > 0 && line.len() > self.maxlen {
            let mut cut = self.maxlen;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" ...");
            self.log(line);
            if !self.maxlen_hint_sent {
                self.maxlen_hint_sent = true;
                self.log(
                    "<hint> The above reply was trimmed. Use 'maxlen 0' to disable trimming."
                        .to_string(),
                );
            }
        } else {
            self.log(line);
        }
    }

    fn log_source_line(&mut self, n: usize) {
        let text = match n.checked_sub(1).and_then(|i| self.lines.get(i)) {
            Some(l) => l.clone(),
            None => "<out of range source code line>".to_string(),
        };
        let prefix = match (n == self.current, self.breakpoints.contains(&n)) {
            (true, true) => "->#",
            (true, false) => "-> ",
            (false, true) => "  #",
            (false, false) => "   ",
        };
        self.log(format!("{prefix}{n:<3} {text}"));
    }

    fn list(&mut self, around: usize, context: i64) {
        for n in 1..=self.lines.len() {
            if around != 0 && (around as i64 - n as i64).abs() > context {
                continue;
            }
            self.log_source_line(n);
        }
    }

    fn help(&mut self) {
        for line in HELP {
            self.log(line.to_string());
        }
    }

    fn breakpoint(&mut self, args: &[Vec<u8>]) {
        if args.is_empty() {
            if self.breakpoints.is_empty() {
                self.log("No breakpoints set. Use 'b <line>' to add one.".to_string());
            } else {
                self.log(format!("{} breakpoints set:", self.breakpoints.len()));
                for n in self.breakpoints.clone() {
                    self.log_source_line(n);
                }
            }
            return;
        }
        for arg in args {
            match atoi(arg) {
                None => self.log(format!(
                    "Invalid argument:'{}'",
                    String::from_utf8_lossy(arg)
                )),
                Some(0) => {
                    self.breakpoints.clear();
                    self.log("All breakpoints removed.".to_string());
                }
                Some(n) if n > 0 => {
                    let n = n as usize;
                    if self.breakpoints.len() == 64 {
                        self.log("Too many breakpoints set.".to_string());
                    } else if n <= self.lines.len() && !self.breakpoints.contains(&n) {
                        self.breakpoints.push(n);
                        self.list(n, 1);
                    } else {
                        self.log("Wrong line number.".to_string());
                    }
                }
                Some(n) => {
                    let n = n.unsigned_abs() as usize;
                    if let Some(at) = self.breakpoints.iter().position(|&b| b == n) {
                        self.breakpoints.remove(at);
                        self.log("Breakpoint removed.".to_string());
                    } else {
                        self.log("No breakpoint in the specified line.".to_string());
                    }
                }
            }
        }
    }

    fn set_maxlen(&mut self, arg: Option<&Vec<u8>>) {
        if let Some(arg) = arg {
            // Redis's floor of 60 bytes; 0 is no limit.
            let n = atoi(arg).unwrap_or(0).max(0) as usize;
            self.maxlen = if n != 0 && n <= 60 { 60 } else { n };
            self.maxlen_hint_sent = true;
        }
        if self.maxlen == 0 {
            self.log("<value> replies are unlimited.".to_string());
        } else {
            self.log(format!(
                "<value> replies are truncated at {} bytes.",
                self.maxlen
            ));
        }
    }

    /// Sends the logs as one array of status replies (line breaks inside a line become
    /// spaces) and forgets them.
    fn send_logs(&mut self) {
        let mut out = format!("*{}\r\n", self.logs.len()).into_bytes();
        for line in self.logs.drain(..) {
            out.push(b'+');
            out.extend(
                line.iter()
                    .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
            );
            out.extend_from_slice(b"\r\n");
        }
        if !self.gone && !write_all(self.fd, &out) {
            self.gone = true;
        }
    }

    /// The next command from the client: Ok(None) once it is gone, an error for bad input.
    fn read_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, &'static str> {
        loop {
            match parse_command(&self.input)? {
                Some((argv, used)) => {
                    self.input.drain(..used);
                    return Ok(Some(argv));
                }
                None => {
                    if self.gone {
                        return Ok(None);
                    }
                    let mut chunk = [0u8; 1024];
                    match read_some(self.fd, &mut chunk) {
                        0 => return Ok(None),
                        n => self.input.extend_from_slice(&chunk[..n]),
                    }
                    if self.input.len() > MAX_INPUT {
                        self.input.clear();
                        return Err("max client buffer reached");
                    }
                }
            }
        }
    }
}

/// One RESP array command at the start of `input`, and the bytes it took; None when more must
/// be read. Redis's ldbReplParseCommand: 1 to 1024 arguments of 1 to 1024 bytes.
/// A command read off the input: its arguments and the bytes it took.
type Parsed = Option<(Vec<Vec<u8>>, usize)>;

fn parse_command(input: &[u8]) -> Result<Parsed, &'static str> {
    const PROTOCOL: &str = "protocol error";
    let line = |at: usize| -> Option<(i64, usize)> {
        let end = input[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let n = atoi(&input[at + 1..end]).unwrap_or(0);
        Some((n, end + 2))
    };
    let Some(&first) = input.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return Err(PROTOCOL);
    }
    let Some((count, mut at)) = line(0) else {
        return Ok(None);
    };
    if count <= 0 || count as usize > MAX_ARGS {
        return Err(PROTOCOL);
    }
    let mut argv = Vec::with_capacity(count as usize);
    while argv.len() < count as usize {
        match input.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err(PROTOCOL),
        }
        let Some((len, start)) = line(at) else {
            return Ok(None);
        };
        if len <= 0 || len as usize > MAX_ARG_LEN {
            return Err(PROTOCOL);
        }
        let end = start + len as usize;
        if input.len() < end + 2 {
            return Ok(None);
        }
        if &input[end..end + 2] != b"\r\n" {
            return Err(PROTOCOL);
        }
        argv.push(input[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((argv, at)))
}

fn atoi(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

/// Waits for `fd` to be ready for `events`, at most `timeout_ms` (-1: no limit).
fn wait(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}

/// Reads what the socket has (waiting for it, with no limit: the server waits for the
/// debugging client, as Redis's sync mode does); 0 once the client is gone.
fn read_some(fd: RawFd, buf: &mut [u8]) -> usize {
    loop {
        if !wait(fd, libc::POLLIN, -1) {
            return 0;
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return n as usize;
        }
        if n == 0 {
            return 0;
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            return 0;
        }
    }
}

/// Writes all of `data`, each wait for room bounded by Redis's 5 s; false if it could not.
fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        if !wait(fd, libc::POLLOUT, SEND_TIMEOUT_MS) {
            return false;
        }
        // SAFETY: `data` is valid for `data.len()` bytes.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n > 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            return false;
        }
    }
    true
}

/// A reply as the debugger shows it (Redis's ldbRedisProtocolToHuman): bulk strings, status
/// and error lines quoted (the latter with their `+`/`-`), integers bare, arrays in brackets,
/// nulls as NULL.
pub fn human(reply: &Reply) -> String {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes, false);
    let mut out = Vec::new();
    human_at(&bytes, 0, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn human_at(b: &[u8], at: usize, out: &mut Vec<u8>) -> usize {
    let Some(end) = b[at..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + at)
    else {
        return b.len();
    };
    let head = &b[at + 1..end];
    let n = atoi(head).unwrap_or(-1);
    match b[at] {
        b'$' if n < 0 => {
            out.extend_from_slice(b"NULL");
            end + 2
        }
        b'$' => {
            let start = end + 2;
            let stop = (start + n as usize).min(b.len());
            crate::monitor::repr(out, &b[start..stop]);
            stop + 2
        }
        b'*' if n < 0 => {
            out.extend_from_slice(b"NULL");
            end + 2
        }
        b'*' => {
            out.push(b'[');
            let mut at = end + 2;
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                at = human_at(b, at, out);
            }
            out.push(b']');
            at
        }
        b'+' | b'-' => {
            crate::monitor::repr(out, &b[at..end]);
            end + 2
        }
        _ => {
            out.extend_from_slice(head);
            end + 2
        }
    }
}

const HELP: &[&str] = &[
    "Redis Lua debugger help:",
    "[h]elp               Show this help.",
    "[s]tep               Run current line and stop again.",
    "[n]ext               Alias for step.",
    "[c]ontinue           Run till next breakpoint.",
    "[l]ist               List source code around current line.",
    "[l]ist [line]        List source code around [line].",
    "                     line = 0 means: current position.",
    "[l]ist [line] [ctx]  In this form [ctx] specifies how many lines",
    "                     to show before/after [line].",
    "[w]hole              List all source code. Alias for 'list 1 1000000'.",
    "[p]rint              Show all the local variables.",
    "[p]rint <var>        Show the value of the specified variable.",
    "                     Can also show global vars KEYS and ARGV.",
    "[b]reak              Show all breakpoints.",
    "[b]reak <line>       Add a breakpoint to the specified line.",
    "[b]reak -<line>      Remove breakpoint from the specified line.",
    "[b]reak 0            Remove all breakpoints.",
    "[t]race              Show a backtrace.",
    "[e]val <code>        Execute some Lua code (in a different callframe).",
    "[r]edis <cmd>        Execute a Redis command.",
    "[m]axlen [len]       Trim logged Redis replies and Lua var dumps to len.",
    "                     Specifying zero as <len> means unlimited.",
    "[a]bort              Stop the execution of the script. In sync",
    "                     mode dataset changes will be retained.",
    "",
    "Debugger functions you can call from Lua scripts:",
    "redis.debug()        Produce logs in the debugger console.",
    "redis.breakpoint()   Stop execution like if there was a breakpoint in the",
    "                     next line of code.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_as_redis_reads_them() {
        let one = b"*2\r\n$1\r\nr\r\n$4\r\nping\r\n*1";
        let (argv, used) = parse_command(one).unwrap().unwrap();
        assert_eq!(argv, [b"r".to_vec(), b"ping".to_vec()]);
        assert_eq!(used, one.len() - 2);
        assert_eq!(parse_command(b"*2\r\n$1\r\nr\r\n$4\r\npi").unwrap(), None);
        assert_eq!(
            parse_command(b"*1\r\n$11\r\nhello\0world\r\n")
                .unwrap()
                .unwrap()
                .0,
            [b"hello\0world".to_vec()]
        );
        for bad in [
            &b"ping\r\n"[..],
            b"*0\r\n",
            b"*1025\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$0\r\n\r\n",
        ] {
            assert_eq!(parse_command(bad), Err("protocol error"), "{bad:?}");
        }
    }

    #[test]
    fn replies_are_shown_as_redis_shows_them() {
        let r = Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"a\"b")),
            Reply::Int(7),
            Reply::Nil,
            Reply::Status("OK"),
        ]);
        assert_eq!(human(&r), "[\"a\\\"b\",7,NULL,\"+OK\"]");
    }
}
