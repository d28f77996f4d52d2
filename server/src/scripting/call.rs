//! `redis.call` and `redis.pcall`: a script's way to the dispatcher, written against Lua's C
//! API rather than through mlua's callbacks.
//!
//! Why: these two run for every command a script sends. Through mlua each argument and each
//! value of the reply became a reference-counted handle made and released under a protected
//! call, about half of a small script's instructions (callgrind, BENCHMARKS.md "Lua scripts
//! and functions"). Here the arguments are read off the Lua stack and the reply is pushed
//! onto it directly.
//!
//! The rule that keeps this sound: Lua raises errors with `longjmp`, which skips Rust frames
//! without dropping what they own. So a call runs in two phases. First [`RunState::run_call`]
//! reads the arguments (reading a string or a number off the stack never raises), runs the
//! command and parks its reply, readied for Lua, in the run state; everything else it made is
//! dropped when it returns. Only then does Lua code that may raise run (the push of the reply,
//! a failed allocation at worst, and the error the call raises on purpose), while this frame
//! holds nothing but pointers.

use std::ffi::c_int;

use bytes::Bytes;
use mlua::ffi::{self, lua_State};

use super::convert;
use super::vm::RunState;
use crate::protocol::Reply;

/// `redis.call`: a command's error reply is raised as the script's error.
///
/// # Safety
/// Called by Lua only, as a C closure whose upvalues are the run state (a light userdata that
/// outlives the interpreter's runs) and the prelude's table of the kill flag.
pub unsafe extern "C-unwind" fn redis_call(l: *mut lua_State) -> c_int {
    command_from_script(l, true)
}

/// `redis.pcall`: a command's error reply is returned as an error table.
///
/// # Safety
/// As for [`redis_call`].
pub unsafe extern "C-unwind" fn redis_pcall(l: *mut lua_State) -> c_int {
    command_from_script(l, false)
}

unsafe fn command_from_script(l: *mut lua_State, raise: bool) -> c_int {
    let st = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const RunState);
    let (failed, stop) = st.run_call(l);
    // From here Lua may raise: this frame holds only `st`.
    ffi::lua_settop(l, 0);
    convert::push_reply(l, st.parked_reply(), st.resp3.get(), 0);
    if stop {
        // The run is to be discarded (SCRIPT KILL, or a restart with more shards): its error
        // passes through the script's own pcalls, which read the prelude's kill flag.
        st.killed.set(true);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_setfield(l, ffi::lua_upvalueindex(2), c"killed".as_ptr());
        ffi::lua_error(l);
    }
    if raise && failed {
        ffi::lua_error(l);
    }
    1
}

impl RunState {
    /// The first phase of a `redis.call`: reads the command off the Lua stack, runs it through
    /// the host and parks its reply. Answers whether the reply is an error and whether the
    /// script must stop. Raises no Lua error.
    unsafe fn run_call(&self, l: *mut lua_State) -> (bool, bool) {
        let run = || {
            let mut stop = false;
            let reply = match read_args(l) {
                Err(msg) => Reply::err(format!("ERR {msg}")),
                // SAFETY: the host is set only while `Vm::run` lends it for this run.
                Ok(argv) => match self.host.get() {
                    Some(host) => {
                        let logged = self.debug_log_call(&argv);
                        let reply = (*host).call(argv);
                        if logged {
                            self.debug_log_reply(&reply);
                        }
                        stop = (*host).must_stop();
                        reply
                    }
                    None => Reply::err(
                        "ERR redis.call/pcall can only be called inside a script invocation",
                    ),
                },
            };
            (reply, stop)
        };
        // A panic must not unwind through Lua's C frames.
        let (mut reply, stop) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| {
                tracing::error!("a script's command panicked; replied with an error");
                (Reply::err("ERR internal error in redis.call"), false)
            });
        let failed = reply.is_error();
        convert::ready_for_lua(&mut reply, self.resp3.get());
        self.park_reply(reply);
        (failed, stop)
    }
}

/// A command's arguments from the Lua stack: strings as they are, numbers as C's "%.17g"
/// (Redis's `luaArgsToRedisArgv`).
///
/// # Safety
/// `l` is the stack of a running C function. Reads only: no Lua error is raised.
unsafe fn read_args(l: *mut lua_State) -> Result<Vec<Bytes>, &'static str> {
    let n = ffi::lua_gettop(l);
    if n == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut args = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match ffi::lua_type(l, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let text = ffi::lua_tolstring(l, i, &mut len);
                args.push(Bytes::copy_from_slice(std::slice::from_raw_parts(
                    text.cast(),
                    len,
                )));
            }
            ffi::LUA_TNUMBER => args.push(Bytes::from(convert::g17(ffi::lua_tonumber(l, i)))),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(args)
}
