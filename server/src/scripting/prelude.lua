-- The Lua half of the scripting sandbox (see vm.rs): builds the `redis` table around the Rust
-- functions in `core`, installs Redis's `pcall`, `math.random` and error handler, and makes
-- the globals and the library tables read-only as Redis 7.0's patched Lua does. It runs once
-- per interpreter, before any script, in a chunk named "=warp": the error handler skips frames
-- of that chunk so that an error points at the script's own line, as Redis's does.

local core, G, readonly_libs, run_state = ...
local error, type, select, tostring, rawget, rawset, setmetatable, xpcall, unpack =
    error, type, select, tostring, rawget, rawset, setmetatable, xpcall, unpack
local getinfo = debug.getinfo
local getlocal = debug.getlocal
local lua_pcall = pcall
local take_pending = core.take_pending

-- An error raised from Rust arrives as mlua's value; the Lua value it stands for waits in core.
local function lua_value(err)
    if type(err) == 'userdata' then
        local pending = take_pending()
        if pending ~= nil then
            return pending
        end
    end
    return err
end

local redis = {
    call = core.call,
    pcall = core.pcall,
    sha1hex = core.sha1hex,
    log = core.log,
    setresp = core.setresp,
    set_repl = core.set_repl,
    acl_check_cmd = core.acl_check_cmd,
    error_reply = core.error_reply,
    status_reply = core.status_reply,
    REDIS_VERSION = core.version,
    REDIS_VERSION_NUM = core.version_num,
    LOG_DEBUG = 0,
    LOG_VERBOSE = 1,
    LOG_NOTICE = 2,
    LOG_WARNING = 3,
    REPL_NONE = 0,
    REPL_AOF = 1,
    REPL_SLAVE = 2,
    REPL_REPLICA = 2,
    REPL_ALL = 3,
}

function redis.replicate_commands()
    return true
end

-- The debugger (SCRIPT DEBUG) is not there: outside it Redis's breakpoint answers false and
-- debug does nothing.
function redis.breakpoint()
    return false
end

function redis.debug()
end

-- Redis 7.0's pcall: an error raised with a Redis error table is caught as its message.
local function pack(...)
    return { n = select('#', ...), ... }
end
local function redis_pcall(...)
    local r = pack(lua_pcall(...))
    if not r[1] then
        local err = lua_value(r[2])
        if rawget(run_state, 'killed') then
            -- SCRIPT KILL's error is not for the script to catch.
            error(err, 0)
        end
        if type(err) == 'table' and type(rawget(err, 'err')) == 'string' then
            err = rawget(err, 'err')
        end
        return false, err
    end
    return unpack(r, 1, r.n)
end

-- Where an error happened: the first frame that is neither C nor this prelude (Redis looks
-- one frame past a C function, its redis.call being C).
local function error_handler(err)
    err = lua_value(err)
    local level = 2
    local i = getinfo(level, 'nSl')
    while i and (i.what == 'C' or i.source == '=warp') do
        level = level + 1
        i = getinfo(level, 'nSl')
    end
    if type(err) ~= 'table' or type(rawget(err, 'err')) ~= 'string' then
        -- (Redis 7.0 crashes on a table without `err`; here it reads as a plain error.)
        err = { err = 'ERR ' .. tostring(err) }
    end
    if i then
        err.source = i.source
        err.line = i.currentline
    end
    return err
end

-- Runs a compiled script (EVAL) or a function with its KEYS and ARGV tables (FCALL). Lua 5.1's
-- xpcall passes no arguments: a function's are handed over in these upvalues rather than in a
-- closure made per call (its allocations and their collection were ~5% of an FCALL). One at a
-- time: a script cannot run another.
local pending_f, pending_keys, pending_args
local function call_pending()
    local f, keys, args = pending_f, pending_keys, pending_args
    pending_f, pending_keys, pending_args = nil, nil, nil
    return f(keys, args)
end
local function run(f, keys, args)
    if keys == nil then
        return xpcall(f, error_handler)
    end
    pending_f, pending_keys, pending_args = f, keys, args
    return xpcall(call_pending, error_handler)
end

-- Read-only tables: reads go to the library, writes fail as they do in Redis.
local function readonly_error()
    error('Attempt to modify a readonly table', 2)
end
local protected = setmetatable({}, { __mode = 'k' })
local function protect(lib)
    local proxy = setmetatable({}, { __index = lib, __newindex = readonly_error, __metatable = false })
    protected[proxy] = true
    return proxy
end

-- string.rep with Lua 5.3's bound on its result, so that one call cannot allocate gigabytes.
local string_lib, rep = rawget(G, 'string'), string.rep
string_lib.rep = function(...)
    local s, n = ...
    if type(s) == 'string' and type(n) == 'number' and #s * n > 512 * 1024 * 1024 then
        error('resulting string too large', 2)
    end
    return rep(...)
end

local math_lib = rawget(G, 'math')
math_lib.random, math_lib.randomseed = core.random, core.randomseed
rawset(G, 'redis', protect(redis))
rawset(G, 'pcall', redis_pcall)
rawset(G, 'xpcall', function(f, handler)
    local r = pack(xpcall(f, handler))
    if not r[1] and rawget(run_state, 'killed') then
        error(lua_value(r[2]), 0)
    end
    return unpack(r, 1, r.n)
end)
rawset(G, '__redis__err__handler', error_handler)

-- Scripts' globals: an empty table whose reads go to the globals and whose every write fails
-- (an existing name's too: `redis = nil` must not reach the next script), as Redis 7.0's
-- read-only globals table. Its metatable, as getmetatable shows it, is read-only too.
local script_globals = setmetatable({}, {
    __index = G,
    __newindex = readonly_error,
    __metatable = protect({}),
})
protected[script_globals] = true
rawset(G, '_G', script_globals)
local setfenv = setfenv
local function sandboxed(f)
    setfenv(f, script_globals)
    return f
end
rawset(G, 'rawset', function(t, k, v)
    if t == G or protected[t] then
        error('Attempt to modify a readonly table', 0)
    end
    return rawset(t, k, v)
end)
rawset(G, 'setmetatable', function(t, mt)
    if t == G or protected[t] then
        -- (Level 0: Redis's is raised from C, with no line in the message.)
        error('Attempt to modify a readonly table', 0)
    end
    return setmetatable(t, mt)
end)
-- Chunks a script loads see the scripts' globals; precompiled (binary) chunks are refused,
-- as Redis 7.0 refuses them.
local lua_loadstring, lua_load = loadstring, load
rawset(G, 'loadstring', function(s, name)
    if type(s) == 'string' and s:byte(1) == 27 then
        return nil, 'binary chunks are not allowed'
    end
    local f, err = lua_loadstring(s, name)
    return f and sandboxed(f), err
end)
rawset(G, 'load', function(reader, name)
    local f, err = lua_load(reader, name)
    return f and sandboxed(f), err
end)
for _, name in ipairs(readonly_libs) do
    local lib = rawget(G, name)
    if lib ~= nil then
        rawset(G, name, protect(lib))
    end
end
-- Strings' methods ("s:upper()") read through the protected string table too.
getmetatable('').__index = rawget(G, 'string')
getmetatable('').__metatable = false
-- What Redis 7.0 does not have: the debug library (kept above for the handler only), and the
-- functions that reach around the sandbox.
for _, name in ipairs({ 'debug', 'getfenv', 'setfenv', 'newproxy', 'print', 'dofile', 'loadfile' }) do
    rawset(G, name, nil)
end

local function nonexistent(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end

-- Functions' libraries see the same globals, less EVAL's KEYS and ARGV, through a table of
-- their own per library: the `redis` of the library's load (register_function and log only)
-- until it has loaded, then the full one.
local function_globals = {}
for name, value in pairs(G) do
    function_globals[name] = value
end
setmetatable(function_globals, { __index = nonexistent, __newindex = readonly_error, __metatable = false })
local runtime_redis = rawget(G, 'redis')
-- Each library's table of its own globals (`redis`), by its globals table.
local library_own = setmetatable({}, { __mode = 'k' })

local function library_env(register_function)
    local load_redis = {
        register_function = register_function,
        log = redis.log,
        LOG_DEBUG = 0,
        LOG_VERBOSE = 1,
        LOG_NOTICE = 2,
        LOG_WARNING = 3,
        REDIS_VERSION = redis.REDIS_VERSION,
        REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM,
    }
    setmetatable(load_redis, { __index = nonexistent, __newindex = readonly_error, __metatable = false })
    -- The library's `redis` sits one table behind its (empty) globals, so that assigning it
    -- fails as assigning any global does. While it loads, that `redis` is all it sees (as in
    -- Redis, whose load runs with the library API as its only globals); once loaded, the
    -- globals are behind it.
    local own_meta = { __index = nonexistent }
    local own = setmetatable({ redis = load_redis }, own_meta)
    local env = setmetatable({}, { __index = own, __newindex = readonly_error, __metatable = false })
    library_own[env] = { own = own, meta = own_meta }
    return env
end

local function library_loaded(env)
    local lib = library_own[env]
    rawset(lib.own, 'redis', runtime_redis)
    lib.meta.__index = function_globals
end

setmetatable(G, {
    __index = nonexistent,
    __newindex = readonly_error,
    __metatable = false,
})

-- The debugger's view of the stopped script (SCRIPT DEBUG: print and trace), called from its
-- hook: the frames of the script's own code, innermost first, each with its function's name,
-- current line and local variables (name, value; Lua's temporaries left out).
local function script_frames()
    local frames = {}
    local level = 2
    while true do
        local info = getinfo(level, 'Snl')
        if info == nil then
            return frames
        end
        if info.source == '@user_script' then
            local locals, i = {}, 1
            while true do
                local name, value = getlocal(level, i)
                if name == nil then
                    break
                end
                if name ~= '(*temporary)' then
                    locals[#locals + 1] = { name, value }
                end
                i = i + 1
            end
            frames[#frames + 1] = { info.name or 'top level', info.currentline, locals }
        end
        level = level + 1
    end
end

return run, library_env, library_loaded, sandboxed, script_frames
