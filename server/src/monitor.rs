//! MONITOR: every command any client runs, as a line Redis's own format gives
//! (`+1339518083.107412 [0 127.0.0.1:60866] "set" "k" "v"`), queued for each monitoring
//! connection through the same per-connection message queue, and output limit, as Pub/Sub's
//! (a monitor that does not read is disconnected rather than growing the server's memory).
//! Commands flagged `admin` or `skip_monitor` are not shown; arguments a row marks as secret
//! (AUTH's password) are shown as `(redacted)`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::command_table::{CommandSpec, Flags, Run};
use crate::pubsub::Subscriber;
use crate::session::ConnState;

#[derive(Default)]
pub struct Monitors {
    list: RwLock<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
}

impl Monitors {
    /// Whether anyone monitors (one load per command while nobody does).
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// MONITOR: the connection's queue starts receiving every command.
    pub fn add(&self, conn: &mut ConnState) {
        conn.handle.info.lock().expect("client info lock").monitor = true;
        let subs = crate::pubsub::queue_of(conn);
        let mut list = self.list.write().expect("monitors");
        if !list.iter().any(|m| Arc::ptr_eq(m, &subs.me)) {
            list.push(subs.me.clone());
            self.count.store(list.len(), Ordering::Relaxed);
        }
    }

    /// RESET, disconnection: the connection no longer monitors.
    pub fn remove(&self, conn: &ConnState) {
        conn.handle.info.lock().expect("client info lock").monitor = false;
        let Some(subs) = conn.pubsub.as_ref() else {
            return;
        };
        let mut list = self.list.write().expect("monitors");
        list.retain(|m| !Arc::ptr_eq(m, &subs.me));
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Shows one command, about to run for `conn`, to every monitor.
    pub fn feed(
        &self,
        limits: &crate::output_limits::OutputLimits,
        conn: &ConnState,
        spec: &CommandSpec,
        args: &[Bytes],
    ) {
        // Scripts are flagged skip_monitor, yet Redis shows them (and then their commands).
        let skip = spec.flags.contains(Flags::SKIP_MONITOR) && !matches!(spec.run, Run::Script(_));
        if spec.flags.contains(Flags::ADMIN)
            || skip
            || spec.monitor_hides.is_some_and(|hides| hides(args))
        {
            return;
        }
        self.offer(limits, conn.db, &conn.addr.to_string(), spec, args);
    }

    /// A command a script calls, shown as Redis shows it: `[<db> lua]`.
    pub fn feed_from_script(
        &self,
        limits: &crate::output_limits::OutputLimits,
        db: usize,
        spec: &CommandSpec,
        args: &[Bytes],
    ) {
        if spec.flags.contains(Flags::ADMIN) || spec.monitor_hides.is_some_and(|hides| hides(args))
        {
            return;
        }
        self.offer(limits, db, "lua", spec, args);
    }

    fn offer(
        &self,
        limits: &crate::output_limits::OutputLimits,
        db: usize,
        client: &str,
        spec: &CommandSpec,
        args: &[Bytes],
    ) {
        let line = Bytes::from(format_line(db, client, spec, args));
        for m in self.list.read().expect("monitors").iter() {
            m.offer(&line, limits);
        }
    }
}

/// `+<seconds>.<micros> [<db> <addr>] "arg" ...\r\n`, each argument as Redis's `sdscatrepr`
/// quotes it.
fn format_line(db: usize, addr: &str, spec: &CommandSpec, args: &[Bytes]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = format!(
        "+{}.{:06} [{db} {addr}]",
        now.as_secs(),
        now.subsec_micros()
    )
    .into_bytes();
    let secret = spec.redacts.map(|f| f(args)).unwrap_or_default();
    for (i, arg) in args.iter().enumerate() {
        out.push(b' ');
        if secret.contains(&i) {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            repr(&mut out, arg);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes and `\xHH` for other bytes.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::repr;

    #[test]
    fn arguments_are_quoted_as_sdscatrepr_quotes_them() {
        let mut out = Vec::new();
        repr(&mut out, b"a \"q\" \\ \n\r\t\x07\x08\x00\xff");
        assert_eq!(out, b"\"a \\\"q\\\" \\\\ \\n\\r\\t\\a\\b\\x00\\xff\"");
    }
}
