//! The command line, as redis-server reads it: an optional config file first, then any
//! parameter as `--name value [value ...]` (`warpengine /etc/redis/redis.conf --port 7000`).
//! Also `--config FILE`, `--set name=value`, `--wal-repair`, `--wal-thread-writer`,
//! `-v`/`--version` and `-h`/`--help`.

use std::path::PathBuf;

use super::{describe, param, ConfigStore, Kind, EMBEDDED_DEFAULTS};

/// A parsed command line: the config file and the directives that override it, in order.
#[derive(Debug, Default)]
pub struct CommandLine {
    pub config_file: Option<PathBuf>,
    pub directives: Vec<(String, Vec<String>)>,
}

#[derive(Debug, PartialEq)]
pub enum CliError {
    /// `--version` was asked for.
    Version,
    /// `--help` was asked for.
    Help,
    Bad(String),
}

pub const USAGE: &str = "Usage: warpengine [/path/to/redis.conf] [--name value [value ...]] ...
       warpengine --config /path/to/redis.conf --port 7000
       warpengine --set name=value
       warpengine -v | --version
       warpengine -h | --help

Any configuration parameter can be given as --name value (see CONFIG GET *).";

impl CommandLine {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<CommandLine, CliError> {
        let args: Vec<String> = args.into_iter().collect();
        let mut cl = CommandLine::default();
        let mut i = 0;
        if let Some(first) = args.first() {
            match first.as_str() {
                "-v" | "--version" => return Err(CliError::Version),
                "-h" | "--help" => return Err(CliError::Help),
                f if !f.starts_with("--") => {
                    cl.config_file = Some(PathBuf::from(f));
                    i = 1;
                }
                _ => {}
            }
        }
        while i < args.len() {
            let Some(name) = args[i].strip_prefix("--") else {
                return Err(CliError::Bad(format!(
                    "unexpected argument '{}' (options are --name value)",
                    args[i]
                )));
            };
            i += 1;
            let start = i;
            while i < args.len() && !args[i].starts_with("--") {
                i += 1;
            }
            let mut values = args[start..i].to_vec();
            // `--name=value` too, as command-line tools commonly take it.
            let name = match name.split_once('=') {
                Some((name, value)) => {
                    values.insert(0, value.to_string());
                    name
                }
                _ => name,
            };
            match name {
                "version" => return Err(CliError::Version),
                "help" => return Err(CliError::Help),
                "config" => match values.as_slice() {
                    [file] => cl.config_file = Some(PathBuf::from(file)),
                    _ => return Err(CliError::Bad("--config takes one file".into())),
                },
                "set" => {
                    for kv in values {
                        let (k, v) = kv.split_once('=').ok_or_else(|| {
                            CliError::Bad(format!("--set expects NAME=VALUE, got '{kv}'"))
                        })?;
                        cl.directives.push((k.to_string(), vec![v.to_string()]));
                    }
                }
                "wal-repair" if values.is_empty() => cl
                    .directives
                    .push(("wal-repair".into(), vec!["yes".into()])),
                "wal-thread-writer" if values.is_empty() => {
                    cl.directives.push(("wal-io".into(), vec!["thread".into()]))
                }
                _ => cl.directives.push((name.to_string(), values)),
            }
        }
        Ok(cl)
    }

    /// Builds the starting configuration: embedded defaults, then the file, then the
    /// command line's directives.
    pub fn to_config(&self) -> Result<ConfigStore, String> {
        let mut cfg = ConfigStore::default();
        cfg.load_text(EMBEDDED_DEFAULTS, "the embedded defaults")?;
        if let Some(path) = &self.config_file {
            cfg.load_file(path)?;
        }
        for (name, values) in &self.directives {
            if name == "rename-command" {
                match values.as_slice() {
                    [old, new] => cfg.renames.push((old.clone(), new.clone())),
                    _ => return Err("'--rename-command' takes two values".into()),
                }
                continue;
            }
            // `--user name rules...`: an ACL user, as a `user` line of the file.
            if name == "user" {
                let Some(user) = values.first() else {
                    return Err("'--user' takes a user name and its rules".into());
                };
                if cfg.users.iter().any(|u| &u[0] == user) {
                    return Err(format!(
                        "Error in user declaration '{user}': Duplicate user found. A user can only be defined once in config files"
                    ));
                }
                cfg.users.push(values.clone());
                continue;
            }
            let Some(p) = param(name) else {
                return Err(format!("unknown parameter '--{name}'"));
            };
            let value = match (p.kind, values.as_slice()) {
                (Kind::Bool, []) => "yes".to_string(),
                (Kind::Save, []) => String::new(),
                (_, [one]) => one.clone(),
                (kind, many) if super::file::multi_word(kind) => many.join(" "),
                _ => return Err(format!("'--{name}' takes one value")),
            };
            cfg.set(name, &value, true)
                .map_err(|e| format!("'--{name} {value}': {}", describe(&e)))?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<CommandLine, CliError> {
        CommandLine::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn redis_style() {
        let cl = parse("/etc/x.conf --port 7000 --save 900 1 --appendonly --set hz=20").unwrap();
        assert_eq!(cl.config_file, Some(PathBuf::from("/etc/x.conf")));
        assert_eq!(cl.directives.len(), 4);
        let cfg = parse("--port 7000 --save 900 1 --protected-mode --set hz=20 --wal-repair")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(cfg.get("port"), "7000");
        assert_eq!(cfg.get("save"), "900 1");
        assert_eq!(cfg.get("hz"), "20");
        assert_eq!(cfg.get("wal-repair"), "yes");
        let cfg = parse("--port=7001 --threads=2")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!((cfg.get("port"), cfg.get("threads")), ("7001", "2"));
        assert_eq!(parse("-v").unwrap_err(), CliError::Version);
        assert!(parse("--nope 1").unwrap().to_config().is_err());
        assert!(parse("--port 1 2").unwrap().to_config().is_err());
    }

    #[test]
    fn embedded_defaults_load() {
        let cfg = CommandLine::default().to_config().unwrap();
        assert_eq!(cfg.get("bind"), "127.0.0.1");
        assert_eq!(cfg.get("port"), "6379");
    }
}
