//! MODULE LIST | LOAD | LOADEX | UNLOAD | HELP. WarpEngine loads no Redis modules (they are C
//! libraries written against Redis's own process), so the list is always empty and a load
//! fails as Redis's does for a library it cannot load. LOAD, LOADEX and UNLOAD are behind
//! `enable-module-command`, as in Redis: refused with Redis's text unless it allows them.

use bytes::Bytes;

use super::util::{help, lower, unknown_subcommand, wrong_arity};
use super::{commands, session, NO_KEYS};
use crate::protocol::Reply;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "module", -2, "", NO_KEYS, "server", "4.0.0", session(module), "A container for module commands.";
}

const NOT_ALLOWED: &str = "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

pub fn module(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let n = args.len();
    match sub.as_str() {
        "help" if n == 2 => help(
            "MODULE",
            &[
                "LIST",
                "    Return a list of loaded modules.",
                "LOAD <path> [<arg> ...]",
                "    Load a module library from <path>, passing to it any optional arguments.",
                "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
                "    Load a module library from <path>, while passing it module configurations and optional arguments.",
                "UNLOAD <name>",
                "    Unload a module.",
            ],
        ),
        "list" if n == 2 => Reply::Array(Vec::new()),
        "load" | "loadex" | "unload" if n >= 3 && !(sub == "unload" && n != 3) => {
            if !super::debug::protected_command_allowed(s, "enable-module-command") {
                return Reply::err(NOT_ALLOWED);
            }
            if sub == "unload" {
                return Reply::err("ERR Error unloading module: no such module with that name");
            }
            tracing::warn!(
                path = %String::from_utf8_lossy(&args[2]),
                "Module not loaded: WarpEngine does not load Redis modules"
            );
            Reply::err("ERR Error loading the extension. Please check the server logs.")
        }
        "help" | "list" | "load" | "loadex" | "unload" => wrong_arity(&format!("module|{sub}")),
        _ => unknown_subcommand(&args[1], "MODULE"),
    }
}
