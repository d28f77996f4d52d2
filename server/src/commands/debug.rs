//! DEBUG, behind `enable-debug-command` as in Redis: SLEEP, ERROR, SET-ACTIVE-EXPIRE, OBJECT,
//! PROTOCOL (RESP3 reply types, used by client libraries' test suites), HELP.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::util::{
    help, int_arg, lower, parse_float, subcommand_syntax_error, wrong_arity, NO_SUCH_KEY,
};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

const NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

pub fn debug(s: &mut Session, args: &[Bytes]) -> Reply {
    let setting = s
        .server
        .config
        .read()
        .expect("config lock")
        .get("enable-debug-command")
        .to_string();
    let allowed = setting == "yes" || (setting == "local" && s.conn.addr.ip().is_loopback());
    if !allowed {
        return Reply::err(NOT_ALLOWED);
    }
    let sub = lower(&args[1]);
    match sub.as_str() {
        "help" => help(
            "DEBUG",
            &[
                "ERROR <string>",
                "    Return a Redis protocol error with <string> as message.",
                "OBJECT <key>",
                "    Show low level info about the `key` and associated value.",
                "PROTOCOL <type>",
                "    Reply with a test value of the specified type.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not",
                "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                "    default.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ],
        ),
        "sleep" if args.len() == 3 => {
            let Some(secs) = parse_float(&args[2]).filter(|v| *v >= 0.0) else {
                return Reply::err("ERR value is not a valid float");
            };
            // Like Redis, this stops the whole server's work for this worker's shard.
            std::thread::sleep(Duration::from_secs_f64(secs));
            OK
        }
        "error" if args.len() == 3 => Reply::Error(String::from_utf8_lossy(&args[2]).into_owned()),
        "set-active-expire" if args.len() == 3 => match int_arg(&args[2]) {
            Ok(v) => {
                s.server.hot.active_expire.store(v != 0, Ordering::Relaxed);
                OK
            }
            Err(e) => e,
        },
        "object" if args.len() == 3 => object(s, &args[2]),
        "protocol" if args.len() == 3 => protocol(&lower(&args[2])),
        "sleep" | "error" | "set-active-expire" | "object" | "protocol" => {
            wrong_arity(&format!("debug|{sub}"))
        }
        _ => subcommand_syntax_error(&args[1], "DEBUG"),
    }
}

fn object(s: &mut Session, key: &[u8]) -> Reply {
    let shard_id = s.server.route(key);
    let mut shard = s.server.lock_shard(shard_id);
    let Some(entry) = shard.dbs[s.conn.db].get(key, unix_ms()) else {
        return Reply::err(NO_SUCH_KEY);
    };
    let now = unix_ms() as u32;
    Reply::StatusOwned(format!(
        "Value at:0x0 refcount:1 encoding:{} serializedlength:0 lru:{} lru_seconds_idle:{}",
        entry.value.encoding(),
        (entry.last_access / 1000) & ((1 << 24) - 1),
        now.wrapping_sub(entry.last_access) / 1000,
    ))
}

#[allow(clippy::approx_constant)] // DEBUG PROTOCOL double answers 3.141, as Redis does.
fn protocol(kind: &str) -> Reply {
    match kind {
        "string" => Reply::bulk_str("Hello World"),
        "integer" => Reply::Int(12345),
        "double" => Reply::Double(3.141),
        "null" => Reply::Nil,
        "array" => Reply::Array((0..3).map(Reply::Int).collect()),
        "set" => Reply::Set((0..3).map(Reply::Int).collect()),
        "map" => Reply::Map((0..3).map(|i| (Reply::Int(i), Reply::Bool(i == 1))).collect()),
        "verbatim" => Reply::Verbatim(Bytes::from_static(b"This is a verbatim\nstring")),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        _ => Reply::err(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}
