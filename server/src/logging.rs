//! Logs as Redis's settings say: `logfile` (appended to; empty: standard output, as Redis: test
//! harnesses, Redis's own among them, read the start-up lines there), `loglevel` (changeable
//! with CONFIG SET), `syslog-enabled` with `syslog-ident` and `syslog-facility` (in addition to
//! the file, as Redis), and WarpEngine's `log-format json`. `RUST_LOG`, when set, overrides
//! `loglevel` at start.

use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;

use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter, MakeWriterExt};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config_store::ConfigStore;

static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The target of messages Redis logs at its VERBOSE level (between debug and notice), which
/// only `loglevel verbose` or `debug` shows: `tracing::debug!(target: VERBOSE, ...)`.
pub const VERBOSE: &str = "verbose";

/// The tracing filter for one of Redis's log levels.
fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::new(match level {
        "debug" => "debug",
        "verbose" => "info,verbose=debug",
        "notice" => "info",
        "warning" => "warn",
        _ => "error",
    })
}

/// Installs the logger; Err names what could not be opened.
pub fn init(config: &ConfigStore) -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| filter_for(config.get("loglevel")));
    let (filter, handle) = reload::Layer::new(filter);
    let logfile = config.get("logfile");
    let syslog = config.get_bool("syslog-enabled");
    let (writer, ansi): (BoxMakeWriter, bool) = if logfile.is_empty() {
        // Colours only for a terminal: stdout redirected to a file gets plain text.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        (BoxMakeWriter::new(std::io::stdout), tty && !syslog)
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
            .map_err(|e| format!("Can't open the log file: {logfile}: {e}"))?;
        (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
    };
    let writer = if syslog {
        open_syslog(config.get("syslog-ident"), config.get("syslog-facility"));
        BoxMakeWriter::new(writer.and(Syslog))
    } else {
        writer
    };
    let layer = fmt::layer().with_writer(writer).with_ansi(ansi);
    if config.get("log-format") == "json" {
        Registry::default().with(filter).with(layer.json()).init();
    } else {
        Registry::default().with(filter).with(layer).init();
    }
    let _ = LEVEL.set(handle);
    Ok(())
}

/// CONFIG SET loglevel.
pub fn set_level(level: &str) {
    if let Some(handle) = LEVEL.get() {
        let _ = handle.reload(filter_for(level));
    }
}

fn open_syslog(ident: &str, facility: &str) {
    let facility = match facility {
        "user" => libc::LOG_USER,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => libc::LOG_LOCAL0,
    };
    // openlog keeps the pointer: the identity lives as long as the process.
    let ident: &'static CString = Box::leak(Box::new(
        CString::new(ident).unwrap_or_else(|_| c"redis".into()),
    ));
    // SAFETY: a NUL-terminated string that is never freed.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, facility) };
}

/// Sends each log line to syslog, at the priority of its level.
struct Syslog;

struct SyslogLine {
    priority: libc::c_int,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            priority: libc::LOG_NOTICE,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        let priority = match *meta.level() {
            tracing::Level::ERROR | tracing::Level::WARN => libc::LOG_WARNING,
            tracing::Level::INFO => libc::LOG_NOTICE,
            _ => libc::LOG_DEBUG,
        };
        SyslogLine {
            priority,
            line: Vec::new(),
        }
    }
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text: Vec<u8> = self
            .line
            .iter()
            .copied()
            .filter(|&b| b != 0 && b != b'\n')
            .collect();
        if text.is_empty() {
            return;
        }
        if let Ok(message) = CString::new(text) {
            // SAFETY: a constant format and a NUL-terminated argument.
            unsafe { libc::syslog(self.priority, c"%s".as_ptr(), message.as_ptr()) };
        }
    }
}
