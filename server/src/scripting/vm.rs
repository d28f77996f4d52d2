//! One Lua 5.1 interpreter per worker thread, set up as Redis sets up its own: the standard
//! libraries Redis loads (base, table, string, math) and no others (of `os` only `clock`), its
//! bundled libraries (`cjson`, `cmsgpack`, `struct`, `bit`), the `redis` table, read-only
//! globals and library tables, Redis's `pcall` and `math.random`. Scripts are compiled once
//! per interpreter and kept by SHA-1; SCRIPT FLUSH renews every interpreter (a new generation).
//!
//! While a script runs, `redis.call` reaches the dispatcher through the `Host` the caller
//! lends for the run ([`Vm::run`]): the interpreter itself knows nothing of shards or locks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use mlua::{
    chunk::ChunkMode, Function, LightUserData, Lua, LuaOptions, MultiValue, StdLib, Table, Value,
    Variadic,
};

use super::busy::{Busy, SlowRun};
use super::convert;
use super::functions::{FunctionInfo, Functions};
use super::ScriptFlags;
use crate::protocol::Reply;

/// What runs a command for a script: the dispatcher's side of `redis.call`.
pub trait Host {
    /// Runs one command (its name first) and answers its reply; errors are replies too.
    fn call(&mut self, args: Vec<Bytes>) -> Reply;
    /// Whether the script's user may run the command `args` (`redis.acl_check_cmd`); None
    /// when no such command exists.
    fn permits(&self, args: &[Bytes]) -> Option<bool>;
    /// Whether the script wrote anything so far (then SCRIPT KILL cannot stop it).
    fn wrote(&self) -> bool;
    /// Whether the script must stop now (its run is to be discarded and run again): its
    /// call's error then passes through the script's pcalls.
    fn must_stop(&self) -> bool;
    /// Called every few milliseconds while the script is past `busy-reply-threshold`
    /// (started at `started`): the host serves the clients the script keeps waiting.
    fn while_busy(&mut self, started: std::time::Instant);
    /// The socket of a client that asked for SCRIPT DEBUG SYNC (its EVAL is then debugged).
    fn debug_socket(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// A debugging session ended: the client is closed after the EVAL's reply, as in Redis.
    fn end_debug_session(&mut self) {}
}

/// The interpreter's share of a run, reached by the Rust functions the `redis` table calls.
#[derive(Default)]
pub(super) struct RunState {
    /// The host lent for the current run (None between runs: `redis.call` then fails).
    pub(super) host: Cell<Option<*mut (dyn Host + 'static)>>,
    /// The protocol `redis.call` replies are converted from (`redis.setresp`).
    pub(super) resp3: Cell<bool>,
    /// The reply of the last `redis.call`, kept here while it is pushed (see call.rs).
    parked: std::cell::UnsafeCell<Option<Reply>>,
    /// Redis's rand48 state for `math.random`.
    rand48: Cell<u64>,
    /// The Lua value of an error raised from Rust (see [`RunState::raise`]).
    pending: std::cell::RefCell<Option<Value>>,
    /// While a library loads: the functions it registered so far.
    registering: std::cell::RefCell<Option<Vec<(FunctionInfo, Function)>>>,
    /// While FUNCTION LOAD runs a library's code: when that run must stop (Redis's 500 ms).
    load_deadline: Cell<Option<std::time::Instant>>,
    /// A debugging session (SCRIPT DEBUG SYNC) for the EVAL running now.
    debug: std::cell::RefCell<Option<super::debugger::Session>>,
    /// The prelude's `script_frames`, the debugger's view of the stopped script.
    script_frames: std::cell::RefCell<Option<Function>>,
    /// The running script: when it started, whether it is a function and its name; and,
    /// once past `busy-reply-threshold`, its record in `Busy`.
    started: Cell<Option<std::time::Instant>>,
    label: std::cell::RefCell<(bool, String)>,
    /// The running function's whole FCALL, while it runs (see [`Vm::fcall`]).
    command: Cell<Option<*const [Bytes]>>,
    slow: std::cell::RefCell<Option<Arc<SlowRun>>>,
    /// The prelude's table whose `killed` field its pcall and xpcall read: a killed script's
    /// error passes through them.
    kill_flag: std::cell::RefCell<Option<Table>>,
    /// Whether `kill_flag` is set (so that a run's end clears it only then).
    pub(super) killed: Cell<bool>,
}

/// The Lua libraries bundled with Redis that are written in Lua here.
const CJSON: &str = include_str!("lua/cjson.lua");
const CMSGPACK: &str = include_str!("lua/cmsgpack.lua");
const STRUCT: &str = include_str!("lua/struct.lua");
/// The float encoding cmsgpack and struct share.
const IEEE754: &str = include_str!("lua/ieee754.lua");
const PRELUDE: &str = include_str!("prelude.lua");

/// The most memory one interpreter may hold: past it the running script fails (its writes
/// so far kept, as for any failing script), checked every [`HOOK_EVERY`] instructions.
/// `string.rep` refuses results over 512 MB, so that no single instruction leaps far past it.
pub const MEMORY_LIMIT: usize = 1 << 30;

/// How often (in Lua instructions) a running script's memory is checked.
const HOOK_EVERY: u32 = 10_000;

pub struct Vm {
    lua: Lua,
    run_state: Rc<RunState>,
    /// The prelude's runner: xpcall with Redis's error handler.
    runner: Function,
    /// The prelude's makers of a library's globals, for its load and once it has loaded.
    library_env: Function,
    library_loaded: Function,
    /// The prelude's: gives a compiled script the scripts' read-only globals.
    sandboxed: Function,
    /// `redis.register_function`, handed to each library's load.
    register_function: Function,
    /// Functions' callbacks by name, as of the registry generation `libraries_generation`.
    functions: ahash::HashMap<String, Function>,
    libraries_generation: Option<u64>,
    /// Compiled scripts by SHA-1 (lower-case hex).
    compiled: ahash::HashMap<String, Function>,
    /// The script cache generation this interpreter was made for.
    pub generation: u64,
    runs: u64,
    /// The memory last reported to the cache (`ScriptCache::report_interpreter`).
    pub reported_bytes: i64,
    busy: Arc<Busy>,
}

/// Runs between two steps of the garbage collector (Redis's LUA_GC_CYCLE_PERIOD).
const GC_CYCLE_PERIOD: u64 = 50;

impl Vm {
    pub fn new(generation: u64, busy: Arc<Busy>) -> mlua::Result<Vm> {
        // SAFETY: `debug` is loaded only for the prelude's error handler, which keeps
        // `debug.getinfo` in a local; the prelude removes `debug` from the globals before any
        // script runs, so scripts never reach it (as in Redis).
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG | StdLib::OS,
                LuaOptions::default(),
            )
        };
        let run_state = Rc::new(RunState::default());
        // The memory bound is checked every few thousand instructions rather than set as
        // mlua's hard limit: with a hard limit mlua runs every value it makes for a script
        // (each reply, each table) as a protected call, a third of a small script's cost.
        install_hook(&lua, &run_state, &busy, false)?;
        run_state.rand48.set(seed48(crate::server_state::unix_ms()));
        let globals = lua.globals();
        // SAFETY: lbaselib's tonumber with a fast path, written against the C API (see there).
        globals.raw_set("tonumber", unsafe {
            lua.create_c_function(super::tonumber::tonumber)?
        })?;
        // Of `os`, only the clock (what Redis 7.2 keeps).
        let os: Table = globals.raw_get("os")?;
        let clock: Function = os.raw_get("clock")?;
        let os = lua.create_table()?;
        os.raw_set("clock", clock)?;
        globals.raw_set("os", os)?;
        // Loaded on first use: compiled, they would take most of a fresh interpreter's
        // memory (Redis's starts at about 32 KB, and its tests hold used_memory_lua to that).
        globals.raw_set(
            "cjson",
            lazy_library(&lua, |lua| {
                lua.load(CJSON)
                    .set_name("=cjson")
                    .set_mode(ChunkMode::Text)
                    .call(LightUserData(std::ptr::null_mut()))
            })?,
        )?;
        for (name, source) in [("cmsgpack", CMSGPACK), ("struct", STRUCT)] {
            globals.raw_set(
                name,
                lazy_library(&lua, move |lua| {
                    lua.load(source)
                        .set_name(format!("={name}"))
                        .set_mode(ChunkMode::Text)
                        .call(ieee754(lua)?)
                })?,
            )?;
        }
        let kill_flag = lua.create_table()?;
        *run_state.kill_flag.borrow_mut() = Some(kill_flag.clone());
        let core = core_table(&lua, &run_state, &kill_flag)?;
        globals.raw_set("bit", bit_library(&lua, &run_state)?)?;
        let readonly = [
            "string",
            "math",
            "table",
            "cjson",
            "bit",
            "struct",
            "cmsgpack",
            "os",
            "coroutine",
        ];
        let register_function = register_function(&lua, &run_state)?;
        let (runner, library_env, library_loaded, sandboxed, script_frames): (
            Function,
            Function,
            Function,
            Function,
            Function,
        ) = lua
            .load(PRELUDE)
            .set_name("=warp")
            .set_mode(ChunkMode::Text)
            .call((core, globals.clone(), readonly, kill_flag))?;
        *run_state.script_frames.borrow_mut() = Some(script_frames);
        // Setting up leaves a third of the heap as garbage (the prelude's and libraries'
        // source, their compilers' work): collected now, used_memory_lua starts at what the
        // interpreter holds.
        lua.gc_collect()?;
        Ok(Vm {
            lua,
            run_state,
            runner,
            library_env,
            library_loaded,
            sandboxed,
            register_function,
            functions: Default::default(),
            libraries_generation: None,
            compiled: Default::default(),
            generation,
            runs: 0,
            reported_bytes: 0,
            busy,
        })
    }

    /// Compiles a script body (after its shebang line) unless this interpreter has it already;
    /// the error is Redis's reply for a script that does not compile.
    pub fn compile(&mut self, sha: &str, body: &[u8]) -> Result<(), Reply> {
        if self.compiled.contains_key(sha) {
            return Ok(());
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .into_function()
            .and_then(|f| self.sandboxed.call::<Function>(f))
            .map_err(|e| {
                Reply::error_bytes(
                    format!(
                        "ERR Error compiling script (new function): {}",
                        lua_message(&e)
                    )
                    .into_bytes(),
                )
            })?;
        self.compiled.insert(sha.to_string(), f);
        Ok(())
    }

    /// The interpreter's memory now.
    pub fn used_bytes(&self) -> i64 {
        self.lua.used_memory() as i64
    }

    /// Runs the script `sha` (compiling `body` the first time this interpreter sees it) with
    /// KEYS and ARGV set as globals (EVAL), its commands going to `host`; the reply is the
    /// script's value in the caller's terms, or Redis's error for a script that failed (with
    /// the script's name and line).
    pub fn eval(
        &mut self,
        sha: &str,
        body: &[u8],
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> Reply {
        let f = match self.compiled.get(sha) {
            Some(f) => f.clone(),
            None => match self.compile(sha, body) {
                Ok(()) => self.compiled[sha].clone(),
                Err(e) => return e,
            },
        };
        let Some(fd) = host.debug_socket() else {
            return self.run(sha, &f, Inputs::Globals(keys, argv), host);
        };
        // SCRIPT DEBUG SYNC: this run stops at each line the debugger asks for.
        *self.run_state.debug.borrow_mut() = Some(super::debugger::Session::new(fd, body));
        let hooked = install_hook(&self.lua, &self.run_state, &self.busy, true);
        let reply = match hooked {
            Ok(()) => self.run(sha, &f, Inputs::Globals(keys, argv), host),
            Err(e) => Reply::err(format!("ERR {}", lua_message(&e))),
        };
        if let Some(mut session) = self.run_state.debug.borrow_mut().take() {
            session.end();
        }
        if let Err(e) = install_hook(&self.lua, &self.run_state, &self.busy, false) {
            tracing::error!("cannot restore the script hook after a debugging session: {e}");
        }
        tracing::warn!("Redis synchronous debugging eval session ended");
        host.end_debug_session();
        reply
    }

    /// Loads a library's code (after its shebang) and answers the functions it registered,
    /// or Redis's error for a library that does not compile, fails while loading (or runs
    /// past `timeout`: FUNCTION LOAD's 500 ms) or registers nothing. Nothing of a failed
    /// library stays in the interpreter.
    pub fn load_library(
        &mut self,
        lua_code: &[u8],
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<(FunctionInfo, Function)>, Reply> {
        let env: Table = self
            .library_env
            .call(self.register_function.clone())
            .map_err(|e| Reply::err(format!("ERR {}", lua_message(&e))))?;
        let f = self
            .lua
            .load(lua_code)
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(env.clone())
            .into_function()
            .map_err(|e| {
                Reply::error_bytes(
                    format!("ERR Error compiling function: {}", lua_message(&e)).into_bytes(),
                )
            })?;
        *self.run_state.registering.borrow_mut() = Some(Vec::new());
        self.run_state.pending.borrow_mut().take();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        self.run_state.load_deadline.set(deadline);
        let outcome = self.runner.call::<(bool, Value)>(f);
        self.run_state.load_deadline.set(None);
        self.run_state.end_run(&self.busy);
        let registered = self
            .run_state
            .registering
            .borrow_mut()
            .take()
            .unwrap_or_default();
        let failure = match outcome {
            Ok((true, _)) => None,
            Ok((false, err)) => Some(error_message(&err)),
            Err(e) => Some(match self.run_state.pending.borrow_mut().take() {
                Some(err) => error_message(&err),
                None => format!("ERR {}", lua_message(&e)).into_bytes(),
            }),
        };
        if let Some(msg) = failure {
            let mut text = b"ERR Error registering functions: ".to_vec();
            text.extend_from_slice(&msg);
            return Err(Reply::error_bytes(text));
        }
        if registered.is_empty() {
            return Err(Reply::err("ERR No functions registered"));
        }
        self.library_loaded
            .call::<()>(env)
            .map_err(|e| Reply::err(format!("ERR {}", lua_message(&e))))?;
        Ok(registered)
    }

    /// Loads every library of the registry again if it changed since the last time.
    pub fn sync_libraries(&mut self, registry: &Functions) {
        let generation = registry.generation();
        if self.libraries_generation == Some(generation) {
            return;
        }
        self.functions.clear();
        for library in registry.libraries() {
            match self.load_library(library.lua_code(), None) {
                Ok(registered) => {
                    for (info, callback) in registered {
                        self.functions.insert(info.name, callback);
                    }
                }
                // It loaded when FUNCTION LOAD checked it; a library that reaches for state
                // (randomness, the time) may not load the same way twice.
                Err(e) => {
                    tracing::warn!(library = %library.name, error = ?e, "a library did not load again")
                }
            }
        }
        self.libraries_generation = Some(generation);
    }

    /// FCALL: runs the function `name` with its keys and arguments as its two parameters.
    /// `command`: the whole FCALL (FUNCTION STATS shows it while the function is busy), its
    /// keys the `numkeys` arguments after the count.
    pub fn fcall(
        &mut self,
        name: &str,
        command: &[Bytes],
        numkeys: usize,
        host: &mut dyn Host,
    ) -> Reply {
        let Some(f) = self.functions.get(name).cloned() else {
            return Reply::err("ERR Function not found");
        };
        let (keys, args) = command[3..].split_at(numkeys);
        self.run_state.command.set(Some(command as *const [Bytes]));
        // (Cleared when the run ends, however it ends.)
        self.run(name, &f, Inputs::Parameters(keys, args), host)
    }

    /// Runs `f` through the prelude's runner with `host` lent for the run.
    fn run(&mut self, name: &str, f: &Function, inputs: Inputs, host: &mut dyn Host) -> Reply {
        self.run_state.started.set(Some(std::time::Instant::now()));
        {
            let mut label = self.run_state.label.borrow_mut();
            label.0 = matches!(inputs, Inputs::Parameters(..));
            label.1.clear();
            label.1.push_str(name);
        }
        // SAFETY: the pointer is only dereferenced by `redis.call` while this call runs (the
        // guard below clears it on every way out), when `host` is borrowed mutably here and
        // used by nothing else.
        let host: *mut (dyn Host + '_) = host;
        let host: *mut (dyn Host + 'static) = unsafe { std::mem::transmute(host) };
        self.run_state.host.set(Some(host));
        self.run_state.resp3.set(false);
        self.run_state.pending.borrow_mut().take();
        struct Clear<'a>(&'a RunState);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.host.set(None);
            }
        }
        let _clear = Clear(&self.run_state);
        // One protected call from Rust for the whole run: the tables of keys and arguments are
        // pushed as the runner is called (through mlua, each would be a protected call of its
        // own). The runner catches the script's errors; `exec_raw` catches Lua's (a failed
        // allocation while pushing).
        // SAFETY: the stack holds the runner and `f` (exec_raw's arguments); the closure pushes
        // only borrowed bytes and calls the runner, which leaves its two results.
        let outcome = unsafe {
            self.lua
                .exec_raw::<(bool, Value)>((&self.runner, f), |l| match inputs {
                    Inputs::Globals(keys, argv) => {
                        for (name, items) in [(c"KEYS", keys), (c"ARGV", argv)] {
                            mlua::ffi::lua_pushstring(l, name.as_ptr());
                            convert::push_strings(l, items);
                            // (Raw: the prelude made the globals read-only for scripts.)
                            mlua::ffi::lua_rawset(l, mlua::ffi::LUA_GLOBALSINDEX);
                        }
                        mlua::ffi::lua_call(l, 1, 2);
                    }
                    Inputs::Parameters(keys, args) => {
                        convert::push_strings(l, keys);
                        convert::push_strings(l, args);
                        mlua::ffi::lua_call(l, 3, 2);
                    }
                })
        };
        self.run_state.end_run(&self.busy);
        let resp3 = self.run_state.resp3.get();
        if self.lua.used_memory() > MEMORY_LIMIT / 2 {
            let _ = self.lua.gc_collect();
        }
        let reply = match outcome {
            Ok((true, value)) => convert::lua_to_reply(&value, resp3, 0),
            Ok((false, err)) => script_error(name, &err),
            Err(e) => match self.run_state.pending.borrow_mut().take() {
                Some(err) => script_error(name, &err),
                None => Reply::err(format!("ERR {}", lua_message(&e))),
            },
        };
        // A collection step every 50 runs (as Redis calls one), rather than a full cycle at
        // once. (Redis's steps are of 50 KB; the default step here keeps a small script's
        // interpreter at its size for 4% fewer instructions per call.)
        self.runs += 1;
        if self.runs.is_multiple_of(GC_CYCLE_PERIOD) {
            let _ = self.lua.gc_step();
        }
        reply
    }
}

/// The interpreter's hook: every [`HOOK_EVERY`] instructions the memory bound, FUNCTION
/// LOAD's deadline and the busy-script service; with `lines` (a debugging session), each line
/// of the script for the debugger as well.
fn install_hook(lua: &Lua, st: &Rc<RunState>, busy: &Arc<Busy>, lines: bool) -> mlua::Result<()> {
    let st = st.clone();
    let hook_busy = busy.clone();
    let mut triggers = mlua::HookTriggers::new().every_nth_instruction(HOOK_EVERY);
    if lines {
        triggers = triggers.every_line();
    }
    lua.set_hook(triggers, move |lua, dbg| {
        if lua.used_memory() > MEMORY_LIMIT {
            let msg = lua.create_string("ERR Lua script exceeded the memory limit")?;
            return Err(st.raise(Value::String(msg)));
        }
        if st.debug.borrow().is_some() {
            // A debugging client holds the server, as in Redis's sync mode: no busy service.
            if dbg.event() == mlua::debug::DebugEvent::Line {
                st.debug_line(lua, dbg)?;
            }
            return Ok(mlua::VmState::Continue);
        }
        if st
            .load_deadline
            .get()
            .is_some_and(|at| std::time::Instant::now() > at)
        {
            // Marked killed, so that a pcall in the library cannot catch it.
            st.set_killed()?;
            return Err(st.redis_error(lua, "FUNCTION LOAD timeout"));
        }
        st.check_busy(lua, &hook_busy)?;
        Ok(mlua::VmState::Continue)
    })
}

/// One frame of the stopped script: its function's name, current line and locals.
type Frame = (String, usize, Vec<(String, Value)>);

/// What a debugger command reaches of the stopped script: the interpreter and the host.
struct DebugTarget<'a> {
    lua: &'a Lua,
    host: Option<*mut (dyn Host + 'static)>,
    frames: Option<Function>,
}

impl DebugTarget<'_> {
    /// The script's frames, innermost first.
    fn script_frames(&self) -> Vec<Frame> {
        let Some(Ok(frames)) = self.frames.as_ref().map(|f| f.call::<Table>(())) else {
            return Vec::new();
        };
        frames
            .sequence_values::<Table>()
            .flatten()
            .map(|frame| {
                let name: String = frame.raw_get(1).unwrap_or_default();
                let line: usize = frame.raw_get(2).unwrap_or(0);
                let locals: Vec<(String, Value)> = frame
                    .raw_get::<Table>(3)
                    .map(|l| {
                        l.sequence_values::<Table>()
                            .flatten()
                            .map(|pair| {
                                (
                                    pair.raw_get(1).unwrap_or_default(),
                                    pair.raw_get(2).unwrap_or(Value::Nil),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (name, line, locals)
            })
            .collect()
    }
}

impl super::debugger::Target for DebugTarget<'_> {
    fn eval(&mut self, code: &str) -> String {
        let compiled = self
            .lua
            .load(format!("return {code}"))
            .set_name("@ldb_eval")
            .into_function()
            .or_else(|_| self.lua.load(code).set_name("@ldb_eval").into_function());
        let f = match compiled {
            Ok(f) => f,
            Err(e) => return format!("<error> {}", lua_message(&e)),
        };
        match f.call::<Value>(()) {
            Ok(v) => format!("<retval> {}", lua_repr(&v, 0)),
            Err(e) => format!("<error> {}", lua_message(&e)),
        }
    }

    fn print(&mut self, name: Option<&str>) -> Vec<String> {
        let frames = self.script_frames();
        let Some(name) = name else {
            let lines: Vec<String> = frames
                .first()
                .map(|(_, _, locals)| {
                    locals
                        .iter()
                        .map(|(n, v)| format!("<value> {n} = {}", lua_repr(v, 0)))
                        .collect()
                })
                .unwrap_or_default();
            if lines.is_empty() {
                return vec!["No local variables in the current context.".into()];
            }
            return lines;
        };
        for (_, _, locals) in &frames {
            if let Some((_, v)) = locals.iter().find(|(n, _)| n == name) {
                return vec![format!("<value> {}", lua_repr(v, 0))];
            }
        }
        if name == "KEYS" || name == "ARGV" {
            if let Ok(v) = self.lua.globals().raw_get::<Value>(name) {
                return vec![format!("<value> {}", lua_repr(&v, 0))];
            }
        }
        vec!["No such variable.".into()]
    }

    fn trace(&mut self) -> Vec<(String, usize)> {
        self.script_frames()
            .into_iter()
            .map(|(name, line, _)| (name, line))
            .collect()
    }

    fn redis(&mut self, args: Vec<Bytes>) -> Reply {
        match self.host {
            // SAFETY: as for `call`: the host is lent for the run the hook interrupts, and
            // nothing else holds it while the hook runs.
            Some(h) => unsafe { (*h).call(args) },
            None => Reply::err("ERR no script is running"),
        }
    }
}

/// A Lua value as Redis's debugger shows it (ldbCatStackValue): strings quoted, tables as
/// `{1; 2}` (an array) or `{[k]=v; ...}`, functions and the like by type and address.
fn lua_repr(v: &Value, depth: usize) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        // Lua 5.1's numbers are doubles, printed with `%g` whatever their value.
        Value::Integer(n) => format_g(*n as f64),
        Value::Number(n) => format_g(*n),
        Value::String(s) => {
            let mut out = Vec::new();
            crate::monitor::repr(&mut out, &s.as_bytes());
            String::from_utf8_lossy(&out).into_owned()
        }
        Value::Table(t) if depth < 10 => {
            let (mut array, mut full, mut is_array, mut expected) =
                (Vec::new(), Vec::new(), true, 1.0);
            for (k, v) in t.pairs::<Value, Value>().flatten() {
                let index = match k {
                    Value::Integer(i) => Some(i as f64),
                    Value::Number(n) => Some(n),
                    _ => None,
                };
                is_array &= index == Some(expected);
                expected += 1.0;
                array.push(lua_repr(&v, depth + 1));
                full.push(format!(
                    "[{}]={}",
                    lua_repr(&k, depth + 1),
                    lua_repr(&v, depth + 1)
                ));
            }
            format!("{{{}}}", if is_array { array } else { full }.join("; "))
        }
        Value::Table(_) => "{...}".into(),
        other => format!("\"{}@{:p}\"", other.type_name(), other.to_pointer()),
    }
}

/// C's `%g`, as Redis prints a Lua number.
fn format_g(n: f64) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer's length bounds the write; the format takes one double.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%g".as_ptr(), n) };
    String::from_utf8_lossy(&buf[..(len.max(0) as usize).min(buf.len() - 1)]).into_owned()
}

/// What a run gives its script or function.
enum Inputs<'a> {
    /// EVAL: KEYS and ARGV as globals.
    Globals(&'a [Bytes], &'a [Bytes]),
    /// FCALL: the keys and the arguments as the function's two parameters.
    Parameters(&'a [Bytes], &'a [Bytes]),
}

/// The message of a Lua error, without mlua's own prefixes.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// The `err` text of an error table (or the text of another error value).
fn error_message(err: &Value) -> Vec<u8> {
    match err {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.as_bytes().to_vec(),
            _ => b"ERR unknown error".to_vec(),
        },
        Value::String(s) => {
            let mut out = b"ERR ".to_vec();
            out.extend_from_slice(&s.as_bytes());
            out
        }
        other => format!("ERR {other:?}").into_bytes(),
    }
}

/// `redis.register_function`, in both of its forms: `(name, callback)`, or a table with
/// `function_name`, `callback`, and optionally `flags` and `description`.
fn register_function(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Function> {
    let st = state.clone();
    lua.create_function(move |lua, args: Variadic<Value>| {
        let fail = |msg: &str| st.redis_error(lua, msg);
        let (name, callback, flags, description) = match &args[..] {
            [name, callback] => {
                let Some(name) = lua_string(name) else {
                    return Err(fail("first argument to redis.register_function must be a string"));
                };
                let Value::Function(callback) = callback else {
                    return Err(fail(
                        "second argument to redis.register_function must be a function",
                    ));
                };
                (name, callback.clone(), ScriptFlags::DECLARED, None)
            }
            [Value::Table(t)] => {
                let (mut name, mut callback, mut flags, mut description) =
                    (None, None, ScriptFlags::DECLARED, None);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    let key = match &k {
                        Value::String(s) => s.as_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    match (&key[..], v) {
                        (b"function_name", Value::String(s)) => name = Some(s.as_bytes().to_vec()),
                        (b"function_name", _) => {
                            return Err(fail("function_name argument given to redis.register_function must be a string"))
                        }
                        (b"callback", Value::Function(f)) => callback = Some(f),
                        (b"callback", _) => {
                            return Err(fail("callback argument given to redis.register_function must be a function"))
                        }
                        (b"description", Value::String(s)) => {
                            description = Some(s.to_string_lossy().to_string())
                        }
                        (b"description", _) => {
                            return Err(fail("description argument given to redis.register_function must be a string"))
                        }
                        (b"flags", Value::Table(list)) => {
                            for flag in list.sequence_values::<Value>() {
                                let known = match flag? {
                                    Value::String(s) => super::ScriptFlags::NAMES
                                        .iter()
                                        .find(|(n, _)| n.as_bytes() == &s.as_bytes()[..])
                                        .map(|(_, f)| *f),
                                    _ => None,
                                };
                                match known {
                                    Some(f) => flags.insert(f),
                                    None => return Err(fail("unknown flag given")),
                                }
                            }
                        }
                        (b"flags", _) => {
                            return Err(fail("flags argument to redis.register_function must be a table representing function flags"))
                        }
                        _ => return Err(fail("unknown argument given to redis.register_function")),
                    }
                }
                let Some(name) = name else {
                    return Err(fail("redis.register_function must get a function name argument"));
                };
                let Some(callback) = callback else {
                    return Err(fail("redis.register_function must get a callback argument"));
                };
                (name, callback, flags, description)
            }
            [_] => return Err(fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")),
            _ => return Err(fail("wrong number of arguments to redis.register_function")),
        };
        if !super::functions::valid_name(&name) {
            return Err(fail(&super::functions::BAD_NAME["ERR ".len()..]));
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        let mut registering = st.registering.borrow_mut();
        let Some(list) = registering.as_mut() else {
            return Err(fail("redis.register_function can only be called on FUNCTION LOAD command"));
        };
        if list.iter().any(|(f, _)| f.name == name) {
            return Err(fail("Function already exists in the library"));
        }
        list.push((
            FunctionInfo {
                name,
                description,
                flags,
            },
            callback,
        ));
        Ok(())
    })
}

/// Redis's reply for a script that raised `err` (a table from the error handler, or a
/// string for an error the handler could not see, such as running out of memory).
fn script_error(name: &str, err: &Value) -> Reply {
    let Value::Table(t) = err else {
        let text = match err {
            Value::String(s) => s.to_string_lossy().to_string(),
            other => format!("{other:?}"),
        };
        return Reply::error_bytes(format!("ERR {text}").into_bytes());
    };
    let field = |k: &str| -> Option<Vec<u8>> {
        match t.raw_get::<Value>(k).ok()? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Integer(i) => Some(i.to_string().into_bytes()),
            Value::Number(n) => Some(convert::lua_number_text(n).into_bytes()),
            _ => None,
        }
    };
    let mut msg = field("err").unwrap_or_else(|| b"ERR unknown error".to_vec());
    if let (Some(source), Some(line)) = (field("source"), field("line")) {
        msg.extend_from_slice(format!(" script: {name}, on ").as_bytes());
        msg.extend_from_slice(&source);
        msg.push(b':');
        msg.extend_from_slice(&line);
        msg.push(b'.');
    }
    convert::counted_or_not(Reply::error_bytes(msg), t)
}

/// A library table that loads its contents (`load`) when a script first reads from it.
fn lazy_library(
    lua: &Lua,
    load: impl Fn(&Lua) -> mlua::Result<Table> + 'static,
) -> mlua::Result<Table> {
    let lib = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set(
        "__index",
        lua.create_function(move |lua, (lib, key): (Table, Value)| {
            let loaded = load(lua)?;
            for pair in loaded.pairs::<Value, Value>() {
                let (k, v) = pair?;
                lib.raw_set(k, v)?;
            }
            lib.set_metatable(None)?;
            lib.raw_get::<Value>(key)
        })?,
    )?;
    lib.set_metatable(Some(meta))?;
    Ok(lib)
}

/// The float encoding cmsgpack and struct share, loaded once.
fn ieee754(lua: &Lua) -> mlua::Result<Table> {
    const KEY: &str = "warp.ieee754";
    if let Ok(Value::Table(ieee)) = lua.named_registry_value::<Value>(KEY) {
        return Ok(ieee);
    }
    let ieee: Table = lua
        .load(IEEE754)
        .set_name("=ieee754")
        .set_mode(ChunkMode::Text)
        .call(())?;
    lua.set_named_registry_value(KEY, &ieee)?;
    Ok(ieee)
}

/// The `redis` table's functions that can raise errors, `math.random` and the arithmetic of
/// `bit`, in Rust: a Lua function in their place would lose the script's own frame when a
/// script tail-calls it (`return redis.call(...)`), and with it the line Redis reports. The
/// prelude adds the rest of the table.
fn core_table(lua: &Lua, state: &Rc<RunState>, kill_flag: &Table) -> mlua::Result<Table> {
    let core = lua.create_table()?;
    let calls: [(&str, mlua::ffi::lua_CFunction); 2] = [
        ("call", super::call::redis_call),
        ("pcall", super::call::redis_pcall),
    ];
    for (name, f) in calls {
        // SAFETY: a C closure over the run state, which the `Vm` keeps alive as long as its
        // interpreter, and the kill flag table (see call.rs for the functions' own rules).
        let function: Function = unsafe {
            lua.exec_raw(kill_flag.clone(), |l| {
                mlua::ffi::lua_pushlightuserdata(l, Rc::as_ptr(state) as *mut std::ffi::c_void);
                mlua::ffi::lua_insert(l, -2);
                mlua::ffi::lua_pushcclosure(l, f, 2);
            })?
        };
        core.raw_set(name, function)?;
    }
    let st = state.clone();
    core.raw_set(
        "acl_check_cmd",
        lua.create_function(move |lua, args: MultiValue| {
            let argv = command_args(args).map_err(|msg| st.redis_error(lua, msg))?;
            // SAFETY: as for `call`.
            match st.host.get().map(|h| unsafe { (*h).permits(&argv) }) {
                Some(Some(allowed)) => Ok(allowed),
                Some(None) => {
                    Err(st.redis_error(lua, "Invalid command passed to redis.acl_check_cmd()"))
                }
                None => Err(st.redis_error(
                    lua,
                    "redis.acl_check_cmd can only be called inside a script invocation",
                )),
            }
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "sha1hex",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(st.redis_error(lua, "wrong number of arguments"));
            }
            let bytes = lua_string(&args[0]).unwrap_or_default();
            Ok(super::sha1_hex(&bytes))
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "log",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() < 2 {
                return Err(st.redis_error(lua, "redis.log() requires two arguments or more."));
            }
            let Some(level) = lua_number(&args[0]) else {
                return Err(st.redis_error(lua, "First argument must be a number (log level)."));
            };
            let level = level as i64;
            if !(0..=3).contains(&level) {
                return Err(st.redis_error(lua, "Invalid debug level."));
            }
            let text: Vec<Vec<u8>> = args[1..].iter().filter_map(lua_string).collect();
            let text = String::from_utf8_lossy(&text.join(&b' ')).into_owned();
            match level {
                0 => tracing::debug!(target: "script", "{text}"),
                1 | 2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::warn!(target: "script", "{text}"),
            }
            Ok(())
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "setresp",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(st.redis_error(lua, "redis.setresp() requires one argument."));
            }
            match lua_number(&args[0]).map(|n| n as i64) {
                Some(2) => st.resp3.set(false),
                Some(3) => st.resp3.set(true),
                _ => return Err(st.redis_error(lua, "RESP version must be 2 or 3.")),
            }
            Ok(())
        })?,
    )?;
    // Effects are always what the log keeps (Redis 7.0's only mode): the flags are checked as
    // Redis checks them and otherwise accepted.
    let st = state.clone();
    core.raw_set(
        "set_repl",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(st.redis_error(lua, "redis.set_repl() requires two arguments."));
            }
            let flags = lua_number(&args[0]).unwrap_or(0.0) as i64;
            if flags & !3 != 0 {
                return Err(st.redis_error(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "random",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let (next, r) = lrand48(st.rand48.get());
            st.rand48.set(next);
            let r = r as f64 / REDIS_LRAND48_MAX as f64;
            match args.len() {
                0 => Ok(r),
                1 => {
                    let u = st.check_int(lua, &args, 0, "random")?;
                    if u < 1 {
                        return Err(st.arg_error(lua, 1, "random", "interval is empty"));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                2 => {
                    let l = st.check_int(lua, &args, 0, "random")?;
                    let u = st.check_int(lua, &args, 1, "random")?;
                    if l > u {
                        return Err(st.arg_error(lua, 2, "random", "interval is empty"));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(st.lua_error(lua, "wrong number of arguments")),
            }
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "randomseed",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let seed = st.check_int(lua, &args, 0, "randomseed")?;
            st.rand48.set(seed48(seed as i32 as u32 as u64));
            Ok(())
        })?,
    )?;
    let st = state.clone();
    core.raw_set(
        "take_pending",
        lua.create_function(move |_, ()| Ok(st.pending.borrow_mut().take()))?,
    )?;
    // error_reply and status_reply answer a bad call with an error table (they do not raise).
    let bad_call = |lua: &Lua| -> mlua::Result<Table> {
        let t = lua.create_table()?;
        t.raw_set("err", "ERR wrong number or type of arguments")?;
        Ok(t)
    };
    core.raw_set(
        "error_reply",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let [Value::String(s)] = &args[..] else {
                return bad_call(lua);
            };
            let bytes = s.as_bytes();
            let line = bytes.strip_prefix(b"-").unwrap_or(&bytes);
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(convert::error_text(line))?)?;
            Ok(t)
        })?,
    )?;
    core.raw_set(
        "status_reply",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let [Value::String(s)] = &args[..] else {
                return bad_call(lua);
            };
            let t = lua.create_table()?;
            t.raw_set("ok", s.clone())?;
            Ok(t)
        })?,
    )?;
    core.raw_set("version", crate::server_state::REDIS_VERSION)?;
    core.raw_set("version_num", redis_version_num() as f64)?;
    Ok(core)
}

/// LuaBitOp's `bit` library, with its argument errors (`luaL_checknumber`'s).
fn bit_library(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Table> {
    use super::bit::{tobit, tohex, FOLDS, SHIFTS, UNARY};
    let bit = lua.create_table()?;
    for (name, op) in UNARY {
        let st = state.clone();
        let f = lua.create_function(move |lua, args: Variadic<Value>| {
            Ok(op(tobit(st.check_number(lua, &args, 0, name)?)) as f64)
        })?;
        bit.raw_set(name, f)?;
    }
    for (name, op) in SHIFTS {
        let st = state.clone();
        let f = lua.create_function(move |lua, args: Variadic<Value>| {
            let x = tobit(st.check_number(lua, &args, 0, name)?);
            let n = tobit(st.check_number(lua, &args, 1, name)?);
            Ok(op(x, n) as f64)
        })?;
        bit.raw_set(name, f)?;
    }
    for (name, op) in FOLDS {
        let st = state.clone();
        let f = lua.create_function(move |lua, args: Variadic<Value>| {
            let mut acc = tobit(st.check_number(lua, &args, 0, name)?);
            for i in 1..args.len() {
                acc = op(acc, tobit(st.check_number(lua, &args, i, name)?));
            }
            Ok(acc as f64)
        })?;
        bit.raw_set(name, f)?;
    }
    let st = state.clone();
    let f = lua.create_function(move |lua, args: Variadic<Value>| {
        let x = st.check_number(lua, &args, 0, "tohex")?;
        let n = match args.get(1) {
            None | Some(Value::Nil) => 8.0,
            Some(_) => st.check_number(lua, &args, 1, "tohex")?,
        };
        Ok(tohex(x, n))
    })?;
    bit.raw_set("tohex", f)?;
    Ok(bit)
}

/// What Lua 5.1 reads as a number: numbers, and strings that convert.
fn lua_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => {
            let text = s.to_str().ok()?;
            let text = text.trim();
            match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok().map(|n| n as f64),
                None => text.parse().ok(),
            }
        }
        _ => None,
    }
}

/// What Lua 5.1 reads as a string: strings, and numbers as "%.14g".
fn lua_string(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(convert::lua_number_text(*i as f64).into_bytes()),
        Value::Number(n) => Some(convert::lua_number_text(*n).into_bytes()),
        _ => None,
    }
}

/// The message mlua carries for an error whose Lua value waits in [`RunState::pending`].
const PENDING: &str = "redis error pending";

impl RunState {
    pub(super) fn park_reply(&self, reply: Reply) {
        // SAFETY: only `redis.call` reaches the parked reply, on this thread, and no reference
        // to it outlives the call that parked it.
        unsafe { *self.parked.get() = Some(reply) }
    }

    pub(super) fn parked_reply(&self) -> &Reply {
        // SAFETY: as for `park_reply`.
        unsafe { (*self.parked.get()).as_ref().unwrap_or(&Reply::Nil) }
    }

    /// The hook's check of a running script's time: past the threshold the server is busy
    /// (other clients get -BUSY); a script SCRIPT KILL or FUNCTION KILL marked stops here.
    fn check_busy(&self, lua: &Lua, busy: &Arc<Busy>) -> mlua::Result<()> {
        let Some(started) = self.started.get() else {
            return Ok(());
        };
        // SAFETY: as for `call`: the host is lent for the run the hook interrupts.
        let wrote = self.host.get().is_some_and(|h| unsafe { (*h).wrote() });
        let mut slow = self.slow.borrow_mut();
        if slow.is_none() {
            let threshold = busy.threshold_ms();
            if threshold == 0 || started.elapsed().as_millis() < threshold as u128 {
                return Ok(());
            }
            let (is_function, name) = self.label.borrow().clone();
            // SAFETY: set by `fcall` for the run this hook interrupts, cleared after it.
            let command = self.command.get().map_or_else(Vec::new, |c| unsafe {
                (*c).iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            });
            let function = is_function.then_some(name);
            tracing::warn!(
                "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {} command.",
                started.elapsed().as_millis(),
                if function.is_some() { "FUNCTION KILL" } else { "SCRIPT KILL" }
            );
            let run = Arc::new(SlowRun {
                function,
                command,
                started,
                wrote: AtomicBool::new(wrote),
                kill: AtomicBool::new(false),
            });
            busy.register(run.clone());
            *slow = Some(run);
        }
        let run = slow.as_ref().expect("registered above").clone();
        drop(slow);
        run.wrote.store(wrote, Ordering::Relaxed);
        if !run.kill.load(Ordering::Relaxed) {
            if let Some(host) = self.host.get() {
                // SAFETY: as for `call`: the host is lent for the run the hook interrupts,
                // and nothing else holds it while the hook runs.
                unsafe { (*host).while_busy(started) };
            }
        }
        // (Also SCRIPT KILL or SHUTDOWN NOSAVE from a client the host served just now.)
        if run.kill.load(Ordering::Relaxed) {
            tracing::warn!("Lua script killed by user with SCRIPT KILL.");
            self.set_killed()?;
            return Err(self.redis_error(lua, "Script killed by user with SCRIPT KILL..."));
        }
        Ok(())
    }

    /// The run ended: the server is no longer busy with it.
    fn end_run(&self, busy: &Busy) {
        self.started.set(None);
        self.command.set(None);
        // SAFETY: as for `park_reply`: the run is over.
        unsafe { *self.parked.get() = None }
        if let Some(run) = self.slow.borrow_mut().take() {
            busy.unregister(&run);
        }
        if self.killed.replace(false) {
            if let Some(flag) = self.kill_flag.borrow().as_ref() {
                let _ = flag.raw_set("killed", Value::Nil);
            }
        }
    }

    /// Under the debugger, while stepping: a script's `redis.call` is shown with its reply, as
    /// Redis's. Whether it was.
    pub(super) fn debug_log_call(&self, argv: &[Bytes]) -> bool {
        // (Busy while the debugger itself runs a command or an `eval`: not shown, as in Redis,
        // which stops stepping while its client has the word.)
        let Ok(mut debug) = self.debug.try_borrow_mut() else {
            return false;
        };
        match debug.as_mut() {
            Some(session) if session.stepping() => {
                session.log_call(argv);
                true
            }
            _ => false,
        }
    }

    pub(super) fn debug_log_reply(&self, reply: &Reply) {
        if let Ok(mut debug) = self.debug.try_borrow_mut() {
            if let Some(session) = debug.as_mut() {
                session.log_reply(reply);
            }
        }
    }

    /// The debugged script reached a new line: the debugger stops there if it must, and
    /// serves its client until it is told to go on (or to fail the script).
    fn debug_line(&self, lua: &Lua, dbg: &mlua::debug::Debug) -> mlua::Result<()> {
        // Lines of the user's script only, not of the debugger's own evals.
        if !dbg
            .source()
            .short_src
            .is_some_and(|s| s.contains("user_script"))
        {
            return Ok(());
        }
        let line = dbg.current_line().unwrap_or(0);
        let mut debug = self.debug.borrow_mut();
        let Some(session) = debug.as_mut() else {
            return Ok(());
        };
        if !session.should_stop(line) {
            return Ok(());
        }
        let mut target = DebugTarget {
            lua,
            host: self.host.get(),
            frames: self.script_frames.borrow().clone(),
        };
        match session.stop(&mut target) {
            super::debugger::Resume::Go => Ok(()),
            super::debugger::Resume::Fail(msg) => {
                drop(debug);
                // Not for the script's pcall to catch, as SCRIPT KILL's error.
                self.set_killed()?;
                Err(self.redis_error(lua, msg))
            }
        }
    }

    /// Marks the run killed for the prelude's pcall and xpcall, which then let its error
    /// through.
    fn set_killed(&self) -> mlua::Result<()> {
        self.killed.set(true);
        if let Some(flag) = self.kill_flag.borrow().as_ref() {
            flag.raw_set("killed", true)?;
        }
        Ok(())
    }

    /// Raises `value` as the Lua error: an error from Rust reaches Lua as an mlua value, so
    /// the value is kept here and the prelude's catchers (its pcall, the error handler) take
    /// it back in its place.
    fn raise(&self, value: Value) -> mlua::Error {
        *self.pending.borrow_mut() = Some(value);
        mlua::Error::RuntimeError(PENDING.to_string())
    }

    /// Raises a Redis error table (Redis's luaPushError then luaError): `{err="ERR msg"}`.
    fn redis_error(&self, lua: &Lua, msg: &str) -> mlua::Error {
        match lua.create_table().and_then(|t| {
            t.raw_set("err", lua.create_string(format!("ERR {msg}"))?)?;
            Ok(t)
        }) {
            Ok(t) => self.raise(Value::Table(t)),
            Err(e) => e,
        }
    }

    /// Raises a Lua error string placed where the script called the function, as
    /// `luaL_error` places it ("user_script:1: msg").
    fn lua_error(&self, lua: &Lua, msg: &str) -> mlua::Error {
        let place = lua
            .inspect_stack(1, |d| {
                let line = d.current_line()?;
                let src = d.source().short_src?.into_owned();
                Some(format!("{src}:{line}: "))
            })
            .flatten()
            .unwrap_or_default();
        match lua.create_string(format!("{place}{msg}")) {
            Ok(s) => self.raise(Value::String(s)),
            Err(e) => e,
        }
    }

    fn arg_error(&self, lua: &Lua, arg: usize, func: &str, msg: &str) -> mlua::Error {
        self.lua_error(lua, &format!("bad argument #{arg} to '{func}' ({msg})"))
    }

    /// `luaL_checkint`: a number (or numeric string), truncated.
    fn check_int(&self, lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<i64> {
        Ok(self.check_number(lua, args, i, func)?.trunc() as i64)
    }

    /// `luaL_checknumber`: a number, or a string that converts to one.
    fn check_number(&self, lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<f64> {
        match args.get(i).and_then(lua_number) {
            Some(n) => Ok(n),
            None => {
                let got = match args.get(i) {
                    None => "no value",
                    Some(v) => v.type_name(),
                };
                Err(self.arg_error(lua, i + 1, func, &format!("number expected, got {got}")))
            }
        }
    }
}

/// REDIS_VERSION_NUM: 0x00MMmmpp.
fn redis_version_num() -> u32 {
    let mut parts = crate::server_state::REDIS_VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}

/// A command's arguments from `redis.call`: strings as they are, numbers as C's "%.17g".
fn command_args(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    args.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => Ok(Bytes::from(convert::g17(i as f64))),
            Value::Number(n) => Ok(Bytes::from(convert::g17(n))),
            _ => Err("Lua redis lib command arguments must be strings or integers"),
        })
        .collect()
}

/// Redis's rand48 (`redisLrand48`): the same sequence for the same seed on every machine.
const REDIS_LRAND48_MAX: i64 = i32::MAX as i64;

fn seed48(seed: u64) -> u64 {
    ((seed & 0xffff_ffff) << 16) | 0x330E
}

fn lrand48(x: u64) -> (u64, i64) {
    let next = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & 0xffff_ffff_ffff;
    (next, (next >> 17) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_follows_the_c_library() {
        // srand48(0) then lrand48(): glibc gives 366850414, 1610402240, 206956554.
        let mut x = seed48(0);
        let mut out = Vec::new();
        for _ in 0..3 {
            let (n, r) = lrand48(x);
            x = n;
            out.push(r);
        }
        assert_eq!(out, vec![366850414, 1610402240, 206956554]);
    }

    #[test]
    fn version_num_is_hex_packed() {
        assert_eq!(redis_version_num(), 0x07000f);
    }
}

#[cfg(test)]
mod vm_tests {
    use super::*;

    #[test]
    fn an_interpreter_starts() {
        if let Err(e) = Vm::new(0, Arc::default()) {
            panic!("{e}");
        }
    }
}
