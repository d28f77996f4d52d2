//! Redis Functions: FUNCTION LOAD | DELETE | FLUSH | LIST | STATS | KILL | DUMP | RESTORE |
//! HELP over the library registry (`crate::scripting::functions`), and FCALL / FCALL_RO, run
//! by the dispatcher as one atomic step like EVAL (`dispatch::script`).
//!
//! FUNCTION is server-wide metadata (`Run::Meta`): it runs under shard 0's lock, and a change
//! is logged in shard 0's log, so that recovery loads the same libraries in the same order;
//! snapshots keep every library as a FUNCTION LOAD (`Functions::meta_records`).

use bytes::Bytes;
use warpengine_storage::glob::glob_match;
use warpengine_storage::Shard;

use super::util::{help, lower, subcommand_syntax_error};
use super::{commands, session, Keys, LogForm, Run};
use crate::command_table::ScriptRun;
use crate::dispatch::eval_keys;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::scripting::functions::{parse_metadata, Library};
use crate::scripting::ScriptFlags;
use crate::server_state::Server;
use crate::session::Session;

const FCALL_KEYS: Keys = Keys::Custom {
    legacy: (0, 0, 0),
    find: eval_keys,
};

commands! {
    pub static COMMANDS;
    "function", -2, "", super::NO_KEYS, "scripting", "7.0.0", Run::Container, "A container for function commands.";
    "function|load", -3, "write denyoom noscript", super::NO_KEYS, "scripting", "7.0.0", Run::Meta(function_load), "Creates a library.", log(LogForm::Argv);
    "function|delete", 3, "write noscript", super::NO_KEYS, "scripting", "7.0.0", Run::Meta(function_delete), "Deletes a library and its functions.", log(LogForm::Argv);
    "function|flush", -2, "write noscript", super::NO_KEYS, "scripting", "7.0.0", Run::Meta(function_flush), "Deletes all libraries and functions.", log(LogForm::Argv);
    "function|restore", -3, "write denyoom noscript", super::NO_KEYS, "scripting", "7.0.0", Run::Meta(function_restore), "Restores all libraries from a payload.", log(LogForm::Argv);
    "function|list", -2, "noscript", super::NO_KEYS, "scripting", "7.0.0", session(function_list), "Returns information about all libraries.";
    "function|stats", 2, "noscript allow_busy", super::NO_KEYS, "scripting", "7.0.0", session(function_stats), "Returns information about a function during execution.";
    "function|kill", 2, "noscript allow_busy", super::NO_KEYS, "scripting", "7.0.0", session(function_kill), "Terminates a function during execution.";
    "function|dump", 2, "noscript", super::NO_KEYS, "scripting", "7.0.0", session(function_dump), "Dumps all libraries into a serialized binary payload.";
    "function|help", 2, "loading stale", super::NO_KEYS, "scripting", "7.0.0", session(function_help), "Returns helpful text about the different subcommands.";
    "fcall", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", FCALL_KEYS, "scripting", "7.0.0", Run::Script(ScriptRun::Fcall { read_only: false }), "Invokes a function.";
    "fcall_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", FCALL_KEYS, "scripting", "7.0.0", Run::Script(ScriptRun::Fcall { read_only: true }), "Invokes a read-only function.";
}

// The subcommands that change the registry are metadata changes (`Run::Meta`): the flag
// they answer says whether the registry changed, and then the command is logged. The others
// read it, off the shards: FUNCTION KILL and STATS must answer while a script holds them.

pub fn function_load(
    server: &Server,
    _shard0: Option<&mut Shard>,
    args: &[Bytes],
) -> (Reply, bool) {
    match load(server, &args[2..]) {
        Ok(name) => (Reply::bulk(name.as_bytes()), true),
        Err(e) => (e, false),
    }
}

pub fn function_delete(
    server: &Server,
    _shard0: Option<&mut Shard>,
    args: &[Bytes],
) -> (Reply, bool) {
    let name = String::from_utf8_lossy(&args[2]);
    if server.functions.delete(&name) {
        (OK, true)
    } else {
        (Reply::err("ERR Library not found"), false)
    }
}

pub fn function_flush(
    server: &Server,
    _shard0: Option<&mut Shard>,
    args: &[Bytes],
) -> (Reply, bool) {
    match &args[2..] {
        [] => {}
        [mode] if matches!(lower(mode).as_str(), "sync" | "async") => {}
        [_] => {
            return (
                Reply::err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
                false,
            )
        }
        _ => return (subcommand_syntax_error(&args[1], "FUNCTION"), false),
    }
    server.functions.flush();
    (OK, true)
}

pub fn function_restore(
    server: &Server,
    _shard0: Option<&mut Shard>,
    args: &[Bytes],
) -> (Reply, bool) {
    if args.len() > 4 {
        return (subcommand_syntax_error(&args[1], "FUNCTION"), false);
    }
    match restore(server, &args[2], args.get(3)) {
        Ok(()) => (OK, true),
        Err(e) => (e, false),
    }
}

pub fn function_list(s: &mut Session, args: &[Bytes]) -> Reply {
    list(s.server, &args[2..])
}

pub fn function_stats(s: &mut Session, _args: &[Bytes]) -> Reply {
    stats(s.server)
}

pub fn function_kill(s: &mut Session, _args: &[Bytes]) -> Reply {
    s.server.scripts.busy.kill(true)
}

pub fn function_dump(s: &mut Session, _args: &[Bytes]) -> Reply {
    Reply::Bulk(Bytes::from(crate::scripting::functions::dump(
        &s.server.functions.libraries(),
    )))
}

pub fn function_help(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
            "FUNCTION",
            &[
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries:",
                "    * Library name",
                "    * The engine used to run the Library",
                "    * Library description",
                "    * Functions list",
                "    * Library code (if WITHCODE is given)",
                "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
                "STATS",
                "    Return information about the current function running:",
                "    * Function name",
                "    * Command used to run the function",
                "    * Duration in MS that the function is running",
                "    If no function is running, return nil",
                "    In addition, returns a list of available engines.",
                "KILL",
                "    Kill the current running function.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the libraries.",
                "    * SYNC: Synchronously flush the libraries.",
                "DUMP",
                "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
                "    control how to handle existing libraries (default APPEND):",
                "    * FLUSH: delete all existing libraries.",
                "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
                "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
                "      libraries with the new libraries (notice that even on this option there is a chance of failure",
                "      in case of functions name collision with another library).",
            ],
        )
}

/// How long a library's code may run while it loads (Redis's LOAD_TIMEOUT_MS): it should only
/// register functions.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Compiles and runs a library's code in this thread's interpreter, which checks it and
/// collects the functions it registers.
fn compile(server: &Server, code: &Bytes) -> Result<Library, Reply> {
    let (code_start, name) = parse_metadata(code)?;
    let registered = crate::scripting::with_vm(&server.scripts, |vm| {
        vm.load_library(&code[code_start..], Some(LOAD_TIMEOUT))
    })?;
    Ok(Library {
        name,
        code: code.clone(),
        code_start,
        functions: registered.into_iter().map(|(info, _)| info).collect(),
    })
}

/// FUNCTION LOAD [REPLACE] code: the library's name, or Redis's error.
fn load(server: &Server, args: &[Bytes]) -> Result<String, Reply> {
    let (code, options) = args.split_last().expect("arity checked");
    let mut replace = false;
    for option in options {
        if lower(option) == "replace" {
            replace = true;
        } else {
            return Err(super::util::err_echo(
                "ERR Unknown option given: ",
                option,
                "",
            ));
        }
    }
    let (_, name) = parse_metadata(code)?;
    if !replace && server.functions.contains(&name) {
        return Err(Reply::err(format!("ERR Library '{name}' already exists")));
    }
    let library = compile(server, code)?;
    server.functions.add(library, replace)?;
    Ok(name)
}

fn list(server: &Server, args: &[Bytes]) -> Reply {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 0;
    while i < args.len() {
        match lower(&args[i]).as_str() {
            "withcode" if !with_code => with_code = true,
            "libraryname" if pattern.is_none() => {
                let Some(p) = args.get(i + 1) else {
                    return Reply::err("ERR library name argument was not given");
                };
                pattern = Some(p);
                i += 1;
            }
            _ => return super::util::err_echo("ERR Unknown argument ", &args[i], ""),
        }
        i += 1;
    }
    let libraries = server.functions.libraries();
    let entries = libraries
        .iter()
        .filter(|l| pattern.is_none_or(|p| glob_match(p, l.name.as_bytes(), false)))
        .map(|l| {
            let functions = l
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (Reply::bulk_str("name"), Reply::bulk_str(&f.name)),
                        (
                            Reply::bulk_str("description"),
                            f.description.as_deref().map_or(Reply::Nil, Reply::bulk_str),
                        ),
                        (Reply::bulk_str("flags"), Reply::Set(flag_names(f.flags))),
                    ])
                })
                .collect();
            let mut fields = vec![
                (Reply::bulk_str("library_name"), Reply::bulk_str(&l.name)),
                (Reply::bulk_str("engine"), Reply::bulk_str("LUA")),
                (Reply::bulk_str("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((Reply::bulk_str("library_code"), Reply::Bulk(l.code.clone())));
            }
            Reply::Map(fields)
        })
        .collect();
    Reply::Array(entries)
}

fn flag_names(flags: ScriptFlags) -> Vec<Reply> {
    ScriptFlags::NAMES
        .iter()
        .filter(|(_, f)| flags.contains(*f))
        .map(|(n, _)| Reply::Status(n))
        .collect()
}

fn stats(server: &Server) -> Reply {
    if server.scripts.busy.any() && server.scripts.busy.script_running() {
        return server.scripts.busy.refusal();
    }
    let libraries = server.functions.libraries();
    let running = match server.scripts.busy.running_function() {
        None => Reply::Nil,
        Some((name, command, ms)) => Reply::Map(vec![
            (Reply::bulk_str("name"), Reply::bulk_str(&name)),
            (
                Reply::bulk_str("command"),
                Reply::Array(command.iter().map(|a| Reply::bulk_str(a)).collect()),
            ),
            (Reply::bulk_str("duration_ms"), Reply::Int(ms as i64)),
        ]),
    };
    Reply::Map(vec![
        (Reply::bulk_str("running_script"), running),
        (
            Reply::bulk_str("engines"),
            Reply::Map(vec![(
                Reply::bulk_str("LUA"),
                Reply::Map(vec![
                    (
                        Reply::bulk_str("libraries_count"),
                        Reply::Int(libraries.len() as i64),
                    ),
                    (
                        Reply::bulk_str("functions_count"),
                        Reply::Int(server.functions.function_count() as i64),
                    ),
                ]),
            )]),
        ),
    ])
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]: every library of the payload is checked
/// (compiled and loaded) before anything changes.
fn restore(server: &Server, payload: &[u8], policy: Option<&Bytes>) -> Result<(), Reply> {
    let policy =
        match policy.map(|p| lower(p)) {
            None => "append".to_string(),
            Some(p) if matches!(p.as_str(), "flush" | "append" | "replace") => p,
            Some(_) => return Err(Reply::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )),
        };
    let codes = crate::scripting::functions::undump(payload)?;
    let mut restored = Vec::with_capacity(codes.len());
    for code in codes {
        restored.push(compile(server, &Bytes::from(code))?);
    }
    let mut all: Vec<Library> = if policy == "flush" {
        Vec::new()
    } else {
        server
            .functions
            .libraries()
            .iter()
            .map(|l| Library {
                name: l.name.clone(),
                code: l.code.clone(),
                code_start: l.code_start,
                functions: l.functions.clone(),
            })
            .collect()
    };
    for lib in restored {
        if let Some(at) = all.iter().position(|l| l.name == lib.name) {
            if policy == "append" {
                return Err(Reply::err(format!(
                    "ERR Library {} already exists",
                    lib.name
                )));
            }
            all.remove(at);
        }
        for f in &lib.functions {
            if all
                .iter()
                .any(|l| l.functions.iter().any(|g| g.name == f.name))
            {
                return Err(Reply::err(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
        all.push(lib);
    }
    server.functions.replace_all(all);
    Ok(())
}
