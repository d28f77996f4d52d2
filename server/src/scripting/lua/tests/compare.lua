-- compare.lua - runs test cases through the pure Lua modules (under lua5.1)
-- and through a real Redis 7.0 (via redis-cli EVAL), and reports mismatches.
--
-- usage: lua5.1 compare.lua <moduledir> <redis-port> <casefile>...
--
-- Case file format: one case per line; blank lines and lines starting with
-- '#' are ignored.  A line starting with '=' is an expression whose values
-- are compared (e.g. "=cjson.encode({1,2})"); any other line is a function
-- body (e.g. "local t = cjson.decode('[1]') return t[1]").
-- Both sides run the same one-line script: the case inside pcall, every
-- returned value serialised by the same helper (strings hex-escaped,
-- numbers with %.17g, tables with sorted keys, cjson.null as NULL).

local moddir, port = arg[1], arg[2]
local files = {}
for i = 3, #arg do files[#files + 1] = arg[i] end

local function loadmod(name, ...)
    local f = assert(loadfile(moddir .. "/" .. name .. ".lua"))
    -- run the module chunk with only the globals the server provides
    local env = {}
    for _, k in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall",
                         "print", "rawequal", "rawget", "rawset", "select",
                         "setmetatable", "getmetatable", "tonumber", "tostring",
                         "type", "unpack", "xpcall", "gcinfo", "_VERSION" }) do
        env[k] = _G[k]
    end
    env.string, env.table, env.math = string, table, math
    env._G = env
    setmetatable(env, {
        __newindex = function(_, k)
            error("Script attempted to create global variable '" .. tostring(k) .. "'", 2)
        end,
        __index = function(_, k)
            error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
        end,
    })
    setfenv(f, env)
    return f(...)
end

-- the same arguments the server passes (see README.md)
local null = newproxy()        -- stands in for the light userdata
local ieee = loadmod("ieee754")
local libs = {
    cjson = loadmod("cjson", null),
    cmsgpack = loadmod("cmsgpack", ieee),
    struct = loadmod("struct", ieee),
}

local PRELUDE = table.concat({
    "local H=function(s) return (string.gsub(s,'[^%w%p ]',function(c) return string.format('\\\\x%02x',c:byte()) end)) end",
    "local S S=function(v) local t=type(v) if t=='string' then return '\"'..H(v)..'\"' elseif t=='number' then return string.format('%.17g',v) elseif t=='table' then local ks={} for k in pairs(v) do ks[#ks+1]=k end table.sort(ks,function(a,b) return S(a)<S(b) end) local o={} for i,k in ipairs(ks) do o[i]='['..S(k)..']='..S(v[k]) end return '{'..table.concat(o,',')..'}' elseif v~=nil and v==cjson.null then return 'NULL' else return t..(t=='boolean' and ':'..tostring(v) or '') end end",
    "local P=function(...) return {n=select('#',...),...} end",
    "local HEX=function(s) return (string.gsub(s,'.',function(c) return string.format('%02x',c:byte()) end)) end",
}, " ")

local function build(case)
    local body
    if case:sub(1, 1) == "=" then
        body = "return P(" .. case:sub(2) .. ")"
    else
        body = case
    end
    return PRELUDE .. " return S(P(pcall(function() " .. body .. " end)))"
end

local function run_local(script)
    local f, err = loadstring(script, "@user_script")
    if not f then return "COMPILE ERROR: " .. err end
    local env = setmetatable({}, { __index = function(_, k)
        if libs[k] then return libs[k] end
        return _G[k]
    end, __newindex = function(_, k)
        error("Script attempted to create global variable '" .. tostring(k) .. "'", 2)
    end })
    setfenv(f, env)
    local ok, res = pcall(f)
    if not ok then return "RUNTIME ERROR: " .. tostring(res) end
    return tostring(res)
end

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function run_redis(script)
    local p = io.popen("redis-cli -p " .. port .. " eval " .. shell_quote(script) .. " 0 2>&1")
    local out = p:read("*a")
    p:close()
    return (out:gsub("\n$", ""))
end

local passed, failed = 0, 0
for _, file in ipairs(files) do
    local lineno = 0
    for line in io.lines(file) do
        lineno = lineno + 1
        if line:match("%S") and not line:match("^%s*#") then
            local script = build(line)
            local a = run_local(script)
            local b = run_redis(script)
            if a == b then
                passed = passed + 1
                if os.getenv("VERBOSE") then
                    print(string.format("ok   %s:%d: %s\n     -> %s", file:match("[^/]*$"), lineno, line, a))
                end
            else
                failed = failed + 1
                print(string.format("FAIL %s:%d: %s\n  lua5.1: %s\n  redis:  %s",
                                    file:match("[^/]*$"), lineno, line, a, b))
            end
        end
    end
end
if os.getenv("KNOWN") then
    print(string.format("(%d of %d known differences still differ)", failed, passed + failed))
    os.exit(0)
end
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
