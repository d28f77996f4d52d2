//! Configuration: one table of parameters (`params.rs`: name, alias, kind, default,
//! mutability) that serves the command line (`cli.rs`), redis.conf files (`file.rs`, which
//! also does CONFIG REWRITE) and CONFIG GET/SET alike.

mod cli;
mod file;
mod params;

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use cli::{CliError, CommandLine, USAGE};
pub use file::split_args;
pub use params::{param, Kind, Param, PARAMS};

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

fn int_in(value: &str, min: i64, max: i64) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        Ok(_) => Err(format!(
            "argument must be between {min} and {max} inclusive"
        )),
        Err(_) => Err("argument couldn't be parsed into an integer".into()),
    }
}

/// A memory value in `min..=max`, with Redis's errors.
fn memory_in(value: &str, min: i64, max: i64) -> Result<i64, String> {
    let out_of_range = || format!("argument must be between {min} and {max} inclusive");
    if value.is_empty() {
        return if min <= 0 { Ok(0) } else { Err(out_of_range()) };
    }
    match parse_memory(value).filter(|v| *v >= 0) {
        Some(v) if v >= min && v <= max => Ok(v),
        Some(_) => Err(out_of_range()),
        None if value.bytes().all(|b| b.is_ascii_digit()) => Err(out_of_range()),
        None => Err("argument must be a memory value".into()),
    }
}

/// The three client classes of `client-output-buffer-limit`, in the order Redis shows them.
const BUFFER_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

/// Merges `value` (`class hard soft seconds ...`) into the limits in `current`.
fn merge_buffer_limits(current: &str, value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut classes: Vec<[String; 3]> = BUFFER_CLASSES
        .iter()
        .map(|class| {
            let at = current.split_whitespace().collect::<Vec<_>>();
            let pos = at.iter().position(|w| w == class);
            match pos {
                Some(i) if i + 3 < at.len() => {
                    [at[i + 1].into(), at[i + 2].into(), at[i + 3].into()]
                }
                _ => ["0".into(), "0".into(), "0".into()],
            }
        })
        .collect();
    // All or nothing: every class is checked before any is changed.
    let mut updates = Vec::new();
    for group in words.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(group[1]).filter(|v| *v >= 0);
        let soft = parse_memory(group[2]).filter(|v| *v >= 0);
        let secs = group[3].parse::<i64>().ok().filter(|v| *v >= 0);
        let (Some(hard), Some(soft), Some(secs)) = (hard, soft, secs) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        updates.push((
            class,
            [hard.to_string(), soft.to_string(), secs.to_string()],
        ));
    }
    for (class, limits) in updates {
        classes[class] = limits;
    }
    Ok(BUFFER_CLASSES
        .iter()
        .zip(&classes)
        .map(|(name, [h, s, t])| format!("{name} {h} {s} {t}"))
        .collect::<Vec<_>>()
        .join(" "))
}

/// A number as Redis's `%f` then trimmed of trailing zeros shows it (`99.9`, `50`).
fn trimmed_float(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The canonical stored form of `value`, or why it was refused, in the words Redis uses
/// after "CONFIG SET failed ... - ". `current` is the value before (some kinds merge).
fn validate(param: &Param, value: &str, current: &str) -> Result<String, String> {
    match param.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int { min, max } => int_in(value, min, max).map(|v| v.to_string()),
        Kind::Clamped { min, max, lo, hi } => {
            int_in(value, min, max).map(|v| v.clamp(lo, hi).to_string())
        }
        // Redis reads memory values as unsigned (an empty one is 0): a minus sign is not a
        // memory value, and a number past i64 is one out of range.
        Kind::Memory { min, max } => memory_in(value, min, max).map(|v| v.to_string()),
        Kind::MemoryAtLeast { min, max, lo } => {
            memory_in(value, min, max).map(|v| v.max(lo).to_string())
        }
        Kind::UnsignedMemory => match parse_memory(value).filter(|v| *v >= 0) {
            Some(v) => Ok(v.to_string()),
            None if value.is_empty() => Ok("0".into()),
            None if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(value.parse::<u64>().unwrap_or(u64::MAX).to_string())
            }
            None => Err("argument must be a memory value".into()),
        },
        Kind::MemoryOrPercent => {
            let percent = value
                .strip_suffix('%')
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0);
            match (percent, parse_memory(value)) {
                (Some(n), _) if n > 100 => {
                    Err("percentage argument must be less or equal to 100".into())
                }
                // Redis keeps a percentage as a negative number: 0% is plain 0.
                (Some(0), _) => Ok("0".into()),
                (Some(n), _) => Ok(format!("{n}%")),
                (None, Some(v)) if v >= 0 => Ok(v.to_string()),
                _ => Err("argument must be a memory or percent value".into()),
            }
        }
        Kind::Octal { max } => match i64::from_str_radix(value, 8) {
            Ok(v) if (0..=max).contains(&v) => Ok(format!("{v:o}")),
            Ok(_) => Err(format!("argument must be between 0 and {max:o} inclusive")),
            Err(_) => Err("argument couldn't be parsed into an integer".into()),
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
        Kind::ShutdownFlags => {
            const FLAGS: [&str; 5] = ["default", "save", "nosave", "now", "force"];
            let words: Vec<String> = value
                .split_whitespace()
                .map(|w| w.to_ascii_lowercase())
                .collect();
            if words.is_empty() || words.iter().any(|w| !FLAGS.contains(&w.as_str())) {
                return Err(format!(
                    "argument(s) must be one of the following: {}",
                    FLAGS.join(", ")
                ));
            }
            if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
            // As Redis shows them: the flags set, in their order; none is `default`.
            let set: Vec<&str> = FLAGS[1..]
                .iter()
                .copied()
                .filter(|f| words.iter().any(|w| w == f))
                .collect();
            Ok(if set.is_empty() {
                "default".to_string()
            } else {
                set.join(" ")
            })
        }
        Kind::Str => Ok(value.to_string()),
        // Absolute, as Redis (which changes into it) shows it.
        Kind::Directory => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let path = cwd.join(value);
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            Ok(path.to_string_lossy().into_owned())
        }
        Kind::Words => {
            let words: Vec<&str> = value.split_whitespace().collect();
            if words.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            Ok(words.join(" "))
        }
        Kind::ReplicaOf => {
            let words: Vec<&str> = value.split_whitespace().collect();
            match words.as_slice() {
                [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => {
                    Ok(String::new())
                }
                [host, port] => match port.parse::<u16>() {
                    Ok(port) => Ok(format!("{host} {port}")),
                    Err(_) => Err("Invalid master port".into()),
                },
                _ => Err("wrong number of arguments".into()),
            }
        }
        Kind::Percentiles => {
            let mut shown = Vec::new();
            for word in value.split_whitespace() {
                let Ok(v) = word.parse::<f64>() else {
                    return Err("Invalid latency-tracking-info-percentiles parameters".into());
                };
                if !(0.0..=100.0).contains(&v) {
                    return Err(
                        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                            .into(),
                    );
                }
                shown.push(trimmed_float(v));
            }
            Ok(shown.join(" "))
        }
        Kind::OomScoreValues => {
            let words: Vec<&str> = value.split_whitespace().collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut shown = Vec::new();
            for w in words {
                match w.parse::<i64>() {
                    Ok(v) if (-2000..=2000).contains(&v) => shown.push(v.to_string()),
                    _ => return Err(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                            .into(),
                    ),
                }
            }
            Ok(shown.join(" "))
        }
        Kind::ClientOutputBufferLimit => merge_buffer_limits(current, value),
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
    Protected(String),
    Invalid { name: String, why: String },
}

/// The live configuration.
#[derive(Clone, Debug)]
pub struct ConfigStore {
    values: BTreeMap<&'static str, String>,
    /// The file the configuration was loaded from, which CONFIG REWRITE writes back.
    pub file: Option<std::path::PathBuf>,
    /// `user name rules...` lines, in file order (the words after `user`): the ACL users the
    /// server creates at start.
    pub users: Vec<Vec<String>>,
    /// `rename-command old new` lines, in order (`new` empty: the command is removed), which
    /// the command table applies at start (`command_table::rename_commands`).
    pub renames: Vec<(String, String)>,
    /// While the start-up configuration is read: a `save` line came already (in the file, an
    /// included one or the command line), so the next one adds its rules, as Redis's do; the
    /// first replaces the defaults.
    pub(super) save_loaded: bool,
}

impl Default for ConfigStore {
    fn default() -> Self {
        ConfigStore {
            // Defaults in their stored form (`dir` becomes the working directory).
            values: PARAMS
                .iter()
                .map(|p| {
                    let v = validate(p, p.default, "").unwrap_or_else(|_| p.default.into());
                    (p.name, v)
                })
                .collect(),
            file: None,
            users: Vec::new(),
            renames: Vec::new(),
            save_loaded: false,
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

    /// Sets one parameter. `startup` allows immutable and protected parameters (file and
    /// flags).
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), SetError> {
        let Some(param) = param(name) else {
            return Err(SetError::Unknown(name.to_string()));
        };
        if !param.mutable && !startup && !Self::set_to_its_value(param, value, self) {
            return Err(SetError::Immutable(param.name.to_string()));
        }
        if param.protected && !startup && self.get("enable-protected-configs") != "yes" {
            return Err(SetError::Protected(param.name.to_string()));
        }
        let current = self.get(param.name);
        let canonical = validate(param, value, current).map_err(|why| SetError::Invalid {
            name: param.name.to_string(),
            why,
        })?;
        self.values.insert(param.name, canonical);
        Ok(())
    }

    /// WarpEngine's own start-up parameters: set to the value they have, they are accepted
    /// (nothing changes), as tools that write every parameter back (Redis's own tests, CONFIG
    /// SET of CONFIG GET *) expect. Redis's own immutable parameters stay refused, as there.
    fn set_to_its_value(param: &Param, value: &str, config: &ConfigStore) -> bool {
        const SETTABLE_TO_ITS_VALUE: &[&str] = &[
            "threads",
            "log-format",
            "metrics-port",
            "wal-io",
            "wal-repair",
            "wal-sync-delay-ms",
        ];
        SETTABLE_TO_ITS_VALUE.contains(&param.name)
            && validate(param, value, config.get(param.name))
                .is_ok_and(|canonical| canonical == config.get(param.name))
    }

    /// How CONFIG GET shows a parameter's stored value.
    fn shown<'a>(param: &Param, v: &'a str) -> Cow<'a, str> {
        match param.kind {
            // Redis 7.0 drops `n` when it shows `A`, though `n` stays on.
            Kind::KeyspaceEvents => warpengine_storage::notify::parse_flags(v)
                .map_or(v.into(), |f| {
                    warpengine_storage::notify::format_flags(f).into()
                }),
            _ => v.into(),
        }
    }

    /// Every parameter, under its name and under its alias, with its value as CONFIG GET
    /// shows it, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
        let mut all: Vec<(&'static str, Cow<'_, str>)> = Vec::with_capacity(PARAMS.len() * 2);
        for p in PARAMS {
            let v = Self::shown(p, &self.values[p.name]);
            if let Some(alias) = p.alias {
                all.push((alias, v.clone()));
            }
            all.push((p.name, v));
        }
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// The stored value of every parameter, in table order (for CONFIG REWRITE).
    pub fn stored(&self) -> impl Iterator<Item = (&'static Param, &str)> {
        PARAMS.iter().map(|p| (p, self.values[p.name].as_str()))
    }
}

pub fn describe(e: &SetError) -> String {
    match e {
        SetError::Unknown(_) => "Bad directive or wrong number of arguments".into(),
        SetError::Immutable(n) => format!("'{n}' can't be changed at run time"),
        SetError::Protected(n) => format!("'{n}' is protected"),
        SetError::Invalid { why, .. } => why.clone(),
    }
}

/// The defaults compiled into the binary, applied before any file or flag.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../../default.conf");

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
        assert!(matches!(
            c.set("dir", "/tmp", false),
            Err(SetError::Protected(_))
        ));
    }

    #[test]
    fn aliases_share_the_value() {
        let mut c = ConfigStore::default();
        c.set("hash-max-ziplist-entries", "10", false).unwrap();
        assert_eq!(c.get("hash-max-listpack-entries"), "10");
        let shown: Vec<_> = c
            .iter()
            .filter(|(n, _)| n.starts_with("hash-max-"))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(
            shown,
            [
                "hash-max-listpack-entries=10",
                "hash-max-listpack-value=64",
                "hash-max-ziplist-entries=10",
                "hash-max-ziplist-value=64"
            ]
        );
    }

    #[test]
    fn buffer_limits_merge_by_class() {
        let mut c = ConfigStore::default();
        c.set("client-output-buffer-limit", "replica 1mb 2mb 3", false)
            .unwrap();
        assert_eq!(
            c.get("client-output-buffer-limit"),
            "normal 0 0 0 slave 1048576 2097152 3 pubsub 33554432 8388608 60"
        );
        assert!(c
            .set("client-output-buffer-limit", "master 1 1 1", false)
            .is_err());
    }

    #[test]
    fn special_kinds() {
        let mut c = ConfigStore::default();
        c.set("latency-tracking-info-percentiles", "50.0 99.90 100", false)
            .unwrap();
        assert_eq!(c.get("latency-tracking-info-percentiles"), "50 99.9 100");
        c.set("slaveof", "NO ONE", true).unwrap();
        assert_eq!(c.get("replicaof"), "");
        c.set("unixsocketperm", "700", true).unwrap();
        assert_eq!(c.get("unixsocketperm"), "700");
        c.set("maxmemory-clients", "10%", false).unwrap();
        assert_eq!(c.get("maxmemory-clients"), "10%");
    }
}
