//! Lua scripts: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO (run by the dispatcher as one atomic step,
//! `dispatch::script`) and SCRIPT LOAD | EXISTS | FLUSH | KILL | DEBUG | HELP, which manage the
//! script cache (`crate::scripting`).

use bytes::Bytes;

use super::util::{help, lower, unknown_subcommand, wrong_arity};
use super::{commands, session, Keys, Run, NO_KEYS};
use crate::command_table::ScriptRun;
use crate::dispatch::eval_keys;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

const EVAL_KEYS: Keys = Keys::Custom {
    legacy: (0, 0, 0),
    find: eval_keys,
};

commands! {
    pub static COMMANDS;
    "eval", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", EVAL_KEYS, "scripting", "2.6.0", Run::Script(ScriptRun::Eval { read_only: false }), "Executes a server-side Lua script.";
    "evalsha", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", EVAL_KEYS, "scripting", "2.6.0", Run::Script(ScriptRun::EvalSha { read_only: false }), "Executes a server-side Lua script by SHA1 digest.";
    "eval_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", EVAL_KEYS, "scripting", "7.0.0", Run::Script(ScriptRun::Eval { read_only: true }), "Executes a read-only server-side Lua script.";
    "evalsha_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", EVAL_KEYS, "scripting", "7.0.0", Run::Script(ScriptRun::EvalSha { read_only: true }), "Executes a read-only server-side Lua script by SHA1 digest.";
    "script", -2, "", NO_KEYS, "scripting", "2.6.0", session(script), "A container for Lua scripts management commands.";
}

pub fn script(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let cache = &s.server.scripts;
    let arity = |n: usize, exact: bool| {
        if (exact && args.len() != n) || args.len() < n {
            Err(wrong_arity(&format!("script|{sub}")))
        } else {
            Ok(())
        }
    };
    let checked = match sub.as_str() {
        "help" => arity(2, true),
        "load" => arity(3, true),
        "exists" => arity(3, false),
        "flush" => arity(2, false),
        "kill" => arity(2, true),
        "debug" => arity(3, true),
        _ => return unknown_subcommand(&args[1], "SCRIPT"),
    };
    if let Err(e) = checked {
        return e;
    }
    match sub.as_str() {
        "help" => help(
            "SCRIPT",
            &[
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ],
        ),
        "load" => match crate::scripting::load(cache, &args[2]) {
            Ok(script) => Reply::bulk(script.sha.as_bytes()),
            Err(e) => e,
        },
        "exists" => Reply::Array(
            args[2..]
                .iter()
                .map(|sha| Reply::Int(cache.get(sha).is_some() as i64))
                .collect(),
        ),
        "flush" => {
            let mode_ok = match &args[2..] {
                [] => true,
                [mode] => matches!(lower(mode).as_str(), "sync" | "async"),
                _ => false,
            };
            if !mode_ok {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            cache.flush();
            OK
        }
        "kill" => s.server.scripts.busy.kill(false),
        "debug" => match lower(&args[2]).as_str() {
            "no" => {
                s.conn.script_debug = false;
                OK
            }
            "sync" if s.conn.plain_socket => {
                s.conn.script_debug = true;
                OK
            }
            "sync" => Reply::err("ERR SCRIPT DEBUG is not supported over TLS"),
            // Redis forks a copy of itself for an asynchronous session, whose writes are
            // thrown away at its end; there is no such copy here.
            "yes" => Reply::err(
                "ERR SCRIPT DEBUG YES (a forked session) is not supported: use SCRIPT DEBUG SYNC",
            ),
            _ => Reply::err("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
        },
        _ => unreachable!("checked above"),
    }
}
