//! SLOWLOG GET | LEN | RESET | HELP: the commands that took at least
//! `slowlog-log-slower-than` microseconds (recorded by `crate::command_timing`).

use bytes::Bytes;

use super::util::{help, lower, subcommand_syntax_error, unknown_subcommand, wrong_arity};
use super::{commands, session, NO_KEYS};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "slowlog", -2, "", NO_KEYS, "server", "2.2.12", session(slowlog), "A container for slow log commands.";
}

pub fn slowlog(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let timing = &s.server.timing;
    match (sub.as_str(), args.len()) {
        ("help", 2) => help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        ),
        ("get", 2 | 3) => {
            let count = match args.get(2) {
                None => 10,
                Some(a) => match std::str::from_utf8(a)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    Some(n) if n >= -1 => n,
                    _ => return Reply::err("ERR count should be greater than or equal to -1"),
                },
            };
            let log = timing.slowlog.lock().expect("slowlog lock");
            let take = if count == -1 {
                log.len()
            } else {
                count as usize
            };
            Reply::Array(
                log.iter()
                    .take(take)
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Int(e.id as i64),
                            Reply::Int(e.unix_secs as i64),
                            Reply::Int(e.micros as i64),
                            Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                            Reply::bulk_str(&e.peer),
                            Reply::bulk_str(&e.client_name),
                        ])
                    })
                    .collect(),
            )
        }
        ("len", 2) => Reply::Int(timing.slowlog.lock().expect("slowlog lock").len() as i64),
        ("reset", 2) => {
            timing.slowlog_reset();
            OK
        }
        // Redis's arity for GET is "at least 2": more than 3 is the handler's own error.
        ("get", n) if n > 3 => subcommand_syntax_error(&args[1], "SLOWLOG"),
        ("help" | "get" | "len" | "reset", _) => wrong_arity(&format!("slowlog|{sub}")),
        _ => unknown_subcommand(&args[1], "SLOWLOG"),
    }
}
