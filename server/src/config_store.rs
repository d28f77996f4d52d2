//! Configuration: one table of parameters (name, kind, default, mutability) that serves the
//! command line, the redis.conf-style file and CONFIG GET/SET alike.

use std::collections::BTreeMap;

use clap::Parser;

#[derive(Parser, Debug, Default)]
#[command(
    name = "warpengine",
    version,
    about = "A Redis-compatible, thread-per-core cache server"
)]
pub struct Cli {
    /// A redis.conf-style file: one `name value` per line, `#` comments.
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long)]
    pub bind: Option<String>,
    /// Worker threads, each owning one shard (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub requirepass: Option<String>,
    #[arg(long)]
    pub maxclients: Option<u64>,
    #[arg(long)]
    pub loglevel: Option<String>,
    /// Log writes to a per-shard write-ahead log (`appendonly yes`).
    #[arg(long)]
    pub appendonly: Option<String>,
    /// always | everysec | no.
    #[arg(long)]
    pub appendfsync: Option<String>,
    /// Where the log directory goes.
    #[arg(long)]
    pub dir: Option<String>,
    /// Start even if a log is corrupt in the middle, keeping its longest valid prefix.
    #[arg(long)]
    pub wal_repair: bool,
    /// Use the portable log writer (a thread doing write + fdatasync) instead of io_uring.
    #[arg(long)]
    pub wal_thread_writer: bool,
    /// Any other parameter, as `name=value` (repeatable), e.g. `--set enable-debug-command=yes`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// Accepted in `min..=max`, stored clamped to `lo..=hi`.
    Clamped {
        min: i64,
        max: i64,
        lo: i64,
        hi: i64,
    },
    Memory,
    Enum(&'static [&'static str]),
    Str,
    /// `save` rules: pairs of seconds and changes, or empty.
    Save,
    /// `notify-keyspace-events` classes, stored as Redis shows them back.
    KeyspaceEvents,
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub mutable: bool,
}

const fn p(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Param {
    Param {
        name,
        kind,
        default,
        mutable,
    }
}

const I64: Kind = Kind::Int {
    min: i64::MIN,
    max: i64::MAX,
};
const NONNEG: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
/// Redis's `int` parameters: 0..=INT_MAX.
const NONNEG_INT: Kind = Kind::Int {
    min: 0,
    max: i32::MAX as i64,
};

const POS_INT: Kind = Kind::Int {
    min: 1,
    max: i32::MAX as i64,
};

/// Every parameter WarpEngine knows, with Redis 7.0's defaults. Values live as the canonical
/// strings CONFIG GET prints; typed readers parse them.
pub static PARAMS: &[Param] = &[
    p("port", Kind::Int { min: 0, max: 65535 }, "6379", false),
    p("bind", Kind::Str, "127.0.0.1", false),
    p("protected-mode", Kind::Bool, "yes", true),
    p("requirepass", Kind::Str, "", true),
    p(
        "maxclients",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        "10000",
        true,
    ),
    p("timeout", NONNEG_INT, "0", true),
    p("tracking-table-max-keys", NONNEG_INT, "1000000", true),
    p("tcp-keepalive", NONNEG_INT, "300", true),
    p("tcp-backlog", NONNEG, "511", false),
    p(
        "databases",
        Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        "16",
        false,
    ),
    p(
        "loglevel",
        Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]),
        "notice",
        true,
    ),
    p("logfile", Kind::Str, "", false),
    p("dir", Kind::Str, "", true),
    p("dbfilename", Kind::Str, "dump.rdb", true),
    p("pidfile", Kind::Str, "", false),
    p("daemonize", Kind::Bool, "no", false),
    p("save", Kind::Save, "", true),
    p("appendonly", Kind::Bool, "no", true),
    p(
        "appendfsync",
        Kind::Enum(&["always", "everysec", "no"]),
        "everysec",
        true,
    ),
    p("appendfilename", Kind::Str, "appendonly.aof", false),
    p("maxmemory", Kind::Memory, "0", true),
    p(
        "maxmemory-policy",
        Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
            "allkeys-horizon",
        ]),
        "noeviction",
        true,
    ),
    p(
        "maxmemory-samples",
        Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        "5",
        true,
    ),
    p(
        "maxmemory-eviction-tenacity",
        Kind::Int { min: 0, max: 100 },
        "10",
        true,
    ),
    p("lfu-log-factor", NONNEG_INT, "10", true),
    p("lfu-decay-time", NONNEG_INT, "1", true),
    p("proto-max-bulk-len", Kind::Memory, "536870912", true),
    p(
        "client-query-buffer-limit",
        Kind::Memory,
        "1073741824",
        true,
    ),
    // Redis takes any int for hz and clamps it to 1..=500.
    p(
        "hz",
        Kind::Clamped {
            min: 0,
            max: i32::MAX as i64,
            lo: 1,
            hi: 500,
        },
        "10",
        true,
    ),
    p(
        "active-expire-effort",
        Kind::Int { min: 1, max: 10 },
        "1",
        true,
    ),
    p(
        "enable-debug-command",
        Kind::Enum(&["yes", "no", "local"]),
        "no",
        false,
    ),
    p("io-threads", Kind::Int { min: 1, max: 128 }, "1", false),
    p("cluster-enabled", Kind::Bool, "no", false),
    p("notify-keyspace-events", Kind::KeyspaceEvents, "", true),
    p("slowlog-log-slower-than", I64, "10000", true),
    p("slowlog-max-len", NONNEG, "128", true),
    p("latency-monitor-threshold", NONNEG, "0", true),
    p("lazyfree-lazy-eviction", Kind::Bool, "no", true),
    p("lazyfree-lazy-expire", Kind::Bool, "no", true),
    p("lazyfree-lazy-server-del", Kind::Bool, "no", true),
    p("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    p("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    p("hash-max-listpack-entries", NONNEG, "512", true),
    p("hash-max-listpack-value", NONNEG, "64", true),
    p("list-max-listpack-size", I64, "-2", true),
    p("list-compress-depth", NONNEG, "0", true),
    p("set-max-intset-entries", NONNEG, "512", true),
    p("zset-max-listpack-entries", NONNEG, "128", true),
    p("zset-max-listpack-value", NONNEG, "64", true),
    p("stream-node-max-entries", NONNEG, "100", true),
    p("replica-read-only", Kind::Bool, "yes", true),
    p("lua-time-limit", NONNEG, "5000", true),
    p("busy-reply-threshold", NONNEG, "5000", true),
    p(
        "client-output-buffer-limit",
        Kind::Str,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
    // WarpEngine's own: run a batch for a parked worker's shard on the sending worker.
    p("fabric-inline-when-idle", Kind::Bool, "yes", true),
    p("appenddirname", Kind::Str, "appendonlydir", false),
    // WarpEngine's own: the log writer back-end (io_uring, or a portable writer thread).
    p("wal-io", Kind::Enum(&["uring", "thread"]), "uring", false),
    // Start even when a log is corrupt in the middle, keeping its longest valid prefix.
    p("wal-repair", Kind::Bool, "no", false),
    // For tests: delay every fdatasync by this many milliseconds.
    p("wal-sync-delay-ms", NONNEG_INT, "0", false),
    p("threads", Kind::Int { min: 1, max: 256 }, "0", false),
    // QUANTUM (docs/physics.md): learning, and the bounds on links, rules and partners.
    p("quantum-learn", Kind::Bool, "no", true),
    p("quantum-learn-window-ms", POS_INT, "50", true),
    p("quantum-learn-halflife", POS_INT, "300", true),
    p("quantum-learn-min-weight", NONNEG_INT, "3", true),
    p("quantum-max-learned-per-key", NONNEG_INT, "8", true),
    p("quantum-max-learned-keys", NONNEG_INT, "1000000", true),
    p("quantum-max-links-per-key", NONNEG_INT, "1024", true),
    p("quantum-max-partners", NONNEG_INT, "32", true),
    p("quantum-max-rules", NONNEG_INT, "1024", true),
    // WORMHOLE: the bound on pins, and AUTO (pin keys that multi-key commands use together).
    p("wormhole-max-pins", NONNEG_INT, "1000000", true),
    p("wormhole-auto", Kind::Bool, "no", true),
    p("wormhole-auto-threshold", POS_INT, "100", true),
    // WarpEngine's own: TEMPORAL's half-life (seconds) for keys created without HALFLIFE, and
    // the members a TEMPORAL key keeps before dropping the lowest (0 = no cap).
    p(
        "temporal-default-halflife",
        Kind::Int {
            min: 1,
            max: 1_000_000_000_000,
        },
        "3600",
        true,
    ),
    p("temporal-max-members", NONNEG, "10000", true),
];

pub fn param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parses a memory amount as Redis does: plain bytes, or b/k/kb/m/mb/g/gb (k = 1000, kb = 1024).
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let units: [(&str, i64); 7] = [
        ("gb", 1024 * 1024 * 1024),
        ("mb", 1024 * 1024),
        ("kb", 1024),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ];
    for (suffix, mul) in units {
        if let Some(num) = lower.strip_suffix(suffix) {
            return num.parse::<i64>().ok()?.checked_mul(mul);
        }
    }
    lower.parse::<i64>().ok()
}

/// Why a value was refused, in the words Redis uses after "CONFIG SET failed ... - ".
fn validate(param: &Param, value: &str) -> Result<String, String> {
    match param.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int { min, max } => match value.parse::<i64>() {
            Ok(v) if v >= min && v <= max => Ok(v.to_string()),
            Ok(_) => Err(format!(
                "argument must be between {min} and {max} inclusive"
            )),
            Err(_) => Err("argument couldn't be parsed into an integer".into()),
        },
        Kind::Clamped { min, max, lo, hi } => {
            let v = validate(
                &Param {
                    kind: Kind::Int { min, max },
                    ..*param
                },
                value,
            )?;
            Ok(v.parse::<i64>().unwrap_or(lo).clamp(lo, hi).to_string())
        }
        // An empty memory value means 0, as in Redis.
        Kind::Memory if value.is_empty() => Ok("0".into()),
        Kind::Memory => match parse_memory(value) {
            Some(v) if v >= 0 => Ok(v.to_string()),
            _ => Err("argument must be a memory value".into()),
        },
        Kind::Enum(options) => {
            let lower = value.to_ascii_lowercase();
            if options.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    options.join(", ")
                ))
            }
        }
        Kind::Str => Ok(value.to_string()),
        // Stored with every class it turns on; shown as Redis shows it (see `iter`).
        Kind::KeyspaceEvents => warpengine_storage::notify::parse_flags(value)
            .map(|flags| {
                let mut s = warpengine_storage::notify::format_flags(flags);
                if s.starts_with('A') && flags & warpengine_storage::notify::NEW != 0 {
                    s.push('n');
                }
                s
            })
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()),
        Kind::Save => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<u64>().is_err()) {
                return Err("Invalid save parameters".into());
            }
            Ok(parts.join(" "))
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum SetError {
    Unknown(String),
    Immutable(String),
    Invalid { name: String, why: String },
}

/// The live configuration.
#[derive(Clone, Debug)]
pub struct ConfigStore {
    values: BTreeMap<&'static str, String>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        ConfigStore {
            values: PARAMS
                .iter()
                .map(|p| (p.name, p.default.to_string()))
                .collect(),
        }
    }
}

impl ConfigStore {
    pub fn get(&self, name: &str) -> &str {
        param(name)
            .and_then(|p| self.values.get(p.name))
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// Sets one parameter. `startup` allows immutable parameters (file and flags).
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), SetError> {
        let Some(param) = param(name) else {
            return Err(SetError::Unknown(name.to_string()));
        };
        if !param.mutable && !startup {
            return Err(SetError::Immutable(param.name.to_string()));
        }
        let canonical = validate(param, value).map_err(|why| SetError::Invalid {
            name: param.name.to_string(),
            why,
        })?;
        self.values.insert(param.name, canonical);
        Ok(())
    }

    /// Every parameter with its value as CONFIG GET shows it.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'_, str>)> {
        self.values.iter().map(|(k, v)| {
            let shown = match param(k).map(|p| p.kind) {
                // Redis 7.0 drops `n` when it shows `A`, though `n` stays on.
                Some(Kind::KeyspaceEvents) => warpengine_storage::notify::parse_flags(v)
                    .map_or(v.as_str().into(), |f| {
                        warpengine_storage::notify::format_flags(f).into()
                    }),
                _ => v.as_str().into(),
            };
            (*k, shown)
        })
    }

    /// Applies a redis.conf-style text. Errors name the line, as redis-server does at start.
    pub fn load_file_text(&mut self, text: &str) -> Result<(), String> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = unquote(rest.trim());
            let value = if name.eq_ignore_ascii_case("save") {
                // `save` lines accumulate in redis.conf.
                let prev = self.get("save").to_string();
                if value.is_empty() || prev.is_empty() {
                    value
                } else {
                    format!("{prev} {value}")
                }
            } else {
                value
            };
            self.set(name, &value, true)
                .map_err(|e| format!("line {}: '{}': {}", n + 1, raw, describe(&e)))?;
        }
        Ok(())
    }
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2
        && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\''))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

pub fn describe(e: &SetError) -> String {
    match e {
        SetError::Unknown(n) => format!("unknown parameter '{n}'"),
        SetError::Immutable(n) => format!("'{n}' can't be changed at run time"),
        SetError::Invalid { name, why } => format!("'{name}': {why}"),
    }
}

/// The defaults compiled into the binary, applied before any file or flag.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../default.conf");

impl Cli {
    /// Builds the starting configuration: embedded defaults, then the file, then flags.
    pub fn to_config(&self) -> Result<ConfigStore, String> {
        let mut cfg = ConfigStore::default();
        cfg.load_file_text(EMBEDDED_DEFAULTS)?;
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {path}: {e}"))?;
            cfg.load_file_text(&text)?;
        }
        let mut set =
            |name: &str, value: String| cfg.set(name, &value, true).map_err(|e| describe(&e));
        if let Some(v) = self.port {
            set("port", v.to_string())?;
        }
        if let Some(v) = &self.bind {
            set("bind", v.clone())?;
        }
        if let Some(v) = self.threads {
            set("threads", v.to_string())?;
        }
        if let Some(v) = &self.requirepass {
            set("requirepass", v.clone())?;
        }
        if let Some(v) = self.maxclients {
            set("maxclients", v.to_string())?;
        }
        if let Some(v) = &self.loglevel {
            set("loglevel", v.clone())?;
        }
        if let Some(v) = &self.appendonly {
            set("appendonly", v.clone())?;
        }
        if let Some(v) = &self.appendfsync {
            set("appendfsync", v.clone())?;
        }
        if let Some(v) = &self.dir {
            set("dir", v.clone())?;
        }
        if self.wal_repair {
            set("wal-repair", "yes".into())?;
        }
        if self.wal_thread_writer {
            set("wal-io", "thread".into())?;
        }
        for kv in &self.set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("--set expects NAME=VALUE, got '{kv}'"))?;
            set(k, v.to_string())?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn set_validates_and_canonicalises() {
        let mut c = ConfigStore::default();
        c.set("maxmemory", "1mb", false).unwrap();
        assert_eq!(c.get("maxmemory"), "1048576");
        c.set("APPENDONLY", "YES", false).unwrap();
        assert_eq!(c.get("appendonly"), "yes");
        assert!(matches!(
            c.set("nope", "1", false),
            Err(SetError::Unknown(_))
        ));
        assert!(matches!(
            c.set("databases", "4", false),
            Err(SetError::Immutable(_))
        ));
        assert!(matches!(
            c.set("maxclients", "x", false),
            Err(SetError::Invalid { .. })
        ));
    }

    #[test]
    fn file_text() {
        let mut c = ConfigStore::default();
        c.load_file_text("# comment\nport 7000\nsave 900 1\nsave 300 10\nrequirepass \"a b\"\n")
            .unwrap();
        assert_eq!(c.get("port"), "7000");
        assert_eq!(c.get("save"), "900 1 300 10");
        assert_eq!(c.get("requirepass"), "a b");
        assert!(c.load_file_text("bogus 1").unwrap_err().contains("line 1"));
    }

    #[test]
    fn embedded_defaults_load() {
        let cfg = Cli::default().to_config().unwrap();
        assert_eq!(cfg.get("bind"), "127.0.0.1");
        assert_eq!(cfg.get("port"), "6379");
    }
}
