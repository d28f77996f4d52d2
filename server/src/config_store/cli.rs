//! The command line, as redis-server reads it: an optional config file first, then any
//! parameter as `--name value [value ...]` (`warpengine /etc/redis/redis.conf --port 7000`),
//! turned into configuration lines as Redis turns them (`--port 6380` is the line
//! `port "6380"`; a value may start with `--` when it directly follows its name; a name and
//! its value may come as one argument, `"--maxmemory 700mb"`) and read after the file, with
//! Redis's errors. Also `--config FILE`, `--set name=value`, `--name=value`, `--wal-repair`,
//! `--wal-thread-writer`, `-v`/`--version` and `-h`/`--help`.

use std::path::PathBuf;

use super::file::quoted;
use super::{param, split_args, ConfigStore, EMBEDDED_DEFAULTS};

/// A parsed command line: the config file and the configuration lines that follow it.
#[derive(Debug, Default)]
pub struct CommandLine {
    pub config_file: Option<PathBuf>,
    /// Configuration lines, in order (`port "7000"`).
    pub lines: Vec<String>,
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

/// Whether `--{option}` names a parameter or one of WarpEngine's own options.
fn known_option(option: &str) -> bool {
    let name = option.split([' ', '=']).next().unwrap_or(option);
    param(name).is_some()
        || matches!(
            name,
            "set" | "config" | "wal-repair" | "wal-thread-writer" | "version" | "help"
        )
}

impl CommandLine {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<CommandLine, CliError> {
        let args: Vec<String> = args.into_iter().collect();
        let mut cl = CommandLine::default();
        let mut i = 0;
        if let Some(first) = args.first() {
            match first.as_str() {
                "-v" | "--version" => return Err(CliError::Version),
                "-h" | "--help" => return Err(CliError::Help),
                f if !f.starts_with('-') => {
                    cl.config_file = Some(PathBuf::from(f));
                    i = 1;
                }
                _ => {}
            }
        }
        // Redis's main(): each `--name` starts a line; the arguments after it are its values
        // (quoted), the first one even if it starts with `--`.
        let mut lines: Vec<String> = Vec::new();
        let mut value_taken = true;
        for arg in &args[i..] {
            // WarpEngine's leniency: a yes/no parameter named alone (`--appendonly`) is yes,
            // and its own `--wal-repair` and `--wal-thread-writer` take no value, so an option
            // right after one starts a line of its own.
            let after_lone_bool = !value_taken
                && lines.last().is_some_and(|l| {
                    let name = l.trim();
                    matches!(name, "wal-repair" | "wal-thread-writer")
                        || param(name).is_some_and(|p| matches!(p.kind, super::Kind::Bool))
                })
                && arg.strip_prefix("--").is_some_and(known_option);
            if (value_taken || after_lone_bool) && arg.starts_with("--") {
                let mut option = arg[2..].to_string();
                // `--name=value`, as command-line tools commonly take it.
                if let Some((name, value)) = option.split_once('=') {
                    if !name.contains(' ') && param(name).is_some() {
                        option = format!("{name} {}", quoted(value));
                    }
                }
                let words = split_args(&option).map_or(0, |w| w.len());
                // (`--save` followed by another option is `save ""`, as in Redis.)
                value_taken = words > 1 || option.eq_ignore_ascii_case("save");
                lines.push(format!("{option} "));
            } else {
                // Arguments before any option make a line of their own, as in Redis.
                if lines.is_empty() {
                    lines.push(String::new());
                }
                let line = lines.last_mut().expect("one line at least");
                line.push_str(&quoted(arg));
                line.push(' ');
                value_taken = true;
            }
        }
        for line in lines {
            let line = line.trim().to_string();
            let words = split_args(&line).unwrap_or_default();
            match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
                Some("version") => return Err(CliError::Version),
                Some("help") => return Err(CliError::Help),
                Some("config") => match &words[1..] {
                    [file] => cl.config_file = Some(PathBuf::from(file)),
                    _ => return Err(CliError::Bad("--config takes one file".into())),
                },
                Some("set") => {
                    for kv in &words[1..] {
                        let (k, v) = kv.split_once('=').ok_or_else(|| {
                            CliError::Bad(format!("--set expects NAME=VALUE, got '{kv}'"))
                        })?;
                        cl.lines.push(format!("{k} {}", quoted(v)));
                    }
                }
                Some("wal-repair") if words.len() == 1 => cl.lines.push("wal-repair yes".into()),
                Some("wal-thread-writer") if words.len() == 1 => {
                    cl.lines.push("wal-io thread".into())
                }
                _ => cl.lines.push(line),
            }
        }
        Ok(cl)
    }

    /// Builds the starting configuration: the file on Redis's defaults (what it does not set
    /// is as redis-server would have it), or without a file the embedded defaults; then the
    /// command line's lines. An error is Redis's block for the line (numbered as Redis
    /// numbers the command line's lines: after the file's).
    pub fn to_config(&self) -> Result<ConfigStore, String> {
        let mut cfg = ConfigStore::default();
        let mut file_lines = 1;
        if self.config_file.is_none() {
            cfg.load_text(EMBEDDED_DEFAULTS, "the embedded defaults")?;
        }
        if let Some(path) = &self.config_file {
            cfg.load_file(path)?;
            file_lines = std::fs::read_to_string(path).map_or(1, |text| text.split('\n').count());
        }
        for (n, line) in self.lines.iter().enumerate() {
            cfg.apply_line(line, true).map_err(|why| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (Redis {}) ***\nReading the configuration file, at line {}\n>>> '{line}'\n{why}",
                    crate::server_state::REDIS_VERSION,
                    file_lines + 1 + n
                )
            })?;
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
        assert_eq!(cl.lines.len(), 4);
        let cfg = parse("--wal-thread-writer --port 7000 --save 900 1 --protected-mode --set hz=20 --wal-repair")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(cfg.get("port"), "7000");
        assert_eq!(cfg.get("save"), "900 1");
        assert_eq!(cfg.get("hz"), "20");
        assert_eq!(cfg.get("wal-repair"), "yes");
        assert_eq!(cfg.get("wal-io"), "thread");
        let cfg = parse("--port=7001 --threads=2")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!((cfg.get("port"), cfg.get("threads")), ("7001", "2"));
        assert_eq!(parse("-v").unwrap_err(), CliError::Version);
        assert!(parse("--nope 1").unwrap().to_config().is_err());
        assert!(parse("--port 1 2").unwrap().to_config().is_err());
    }

    /// The forms Redis's own tests start redis-server with (its introspection unit).
    #[test]
    fn arguments_become_configuration_lines_as_in_redis() {
        let config = |args: &[&str]| {
            CommandLine::parse(args.iter().map(|a| a.to_string()))
                .unwrap()
                .to_config()
        };
        let cfg = config(&["--maxmemory 700mb", "--maxmemory-policy volatile-lru"]).unwrap();
        assert_eq!(cfg.get("maxmemory"), "734003200");
        assert_eq!(cfg.get("maxmemory-policy"), "volatile-lru");
        let conf = std::env::temp_dir().join(format!("we-cli-{}.conf", std::process::id()));
        std::fs::write(&conf, "port 7000\n").unwrap();
        let conf_arg = conf.to_string_lossy().into_owned();
        let cfg = config(&[&conf_arg, "loglevel", "verbose", "--maxmemory '700mb'"]).unwrap();
        std::fs::remove_file(&conf).ok();
        assert_eq!(cfg.get("port"), "7000");
        assert_eq!(cfg.get("loglevel"), "verbose");
        assert_eq!(cfg.get("maxmemory"), "734003200");
        let cfg = config(&[
            "--proc-title-template",
            "--my--title--template",
            "--loglevel",
            "verbose",
        ])
        .unwrap();
        assert_eq!(cfg.get("proc-title-template"), "--my--title--template");
        assert_eq!(cfg.get("loglevel"), "verbose");
        for args in [
            &["--save", "--loglevel", "verbose"][..],
            &["--loglevel", "verbose", "--save"][..],
        ] {
            let cfg = config(args).unwrap();
            assert_eq!((cfg.get("save"), cfg.get("loglevel")), ("", "verbose"));
        }
        let e = config(&["--port", "--bla", "--loglevel", "verbose"]).unwrap_err();
        assert!(
            e.contains(">>> 'port \"--bla\"'\nargument couldn't be parsed into an integer"),
            "{e}"
        );
        assert!(e.contains("at line 2"), "{e}");
    }

    #[test]
    fn embedded_defaults_load_without_a_file_and_redis_defaults_under_one() {
        let cfg = CommandLine::default().to_config().unwrap();
        assert_eq!(cfg.get("bind"), "127.0.0.1");
        assert_eq!(cfg.get("port"), "6379");
        assert_eq!(cfg.get("save"), "");
        let file = std::env::temp_dir().join(format!("warp-cli-{}.conf", std::process::id()));
        std::fs::write(&file, "port 7000\n").unwrap();
        let cl = CommandLine {
            config_file: Some(file.clone()),
            lines: Vec::new(),
        };
        let cfg = cl.to_config().unwrap();
        std::fs::remove_file(&file).ok();
        assert_eq!(cfg.get("bind"), "* -::*");
        assert_eq!(cfg.get("save"), "3600 1 300 100 60 10000");
        assert_eq!(cfg.get("port"), "7000");
    }
}
