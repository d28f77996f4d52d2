-- cmsgpack.lua - pure Lua 5.1 implementation of lua-cmsgpack 0.4.0 as
-- bundled with Redis 7.0 (deps/lua/src/lua_cmsgpack.c).
--
-- The chunk is called with one argument, the table returned by ieee754.lua
-- (float encoding shared with struct.lua), and returns the module table.
--
-- Encoding choices follow the C library: integers (doubles that convert to
-- int64 exactly) in their smallest form, other numbers as float32 when that
-- is exact and float64 otherwise, strings as fixstr/str8/str16/str32,
-- tables as arrays when their keys are exactly 1..n (the empty table is an
-- empty array) and maps otherwise, tables nested 16 deep as nil, and every
-- other type (nil, functions, userdata such as cjson.null, ...) as nil.
--
-- Errors mirror the C messages; the Lua stack limits the C code runs into
-- (LUAI_MAXCSTACK = 8000 slots) are reproduced so that very large argument or
-- result counts fail in the same way.

local ieee = ...

local type, next, tostring, tonumber, error, pcall, select, unpack =
      type, next, tostring, tonumber, error, pcall, select, unpack
local string_byte, string_char, string_sub, string_format =
      string.byte, string.char, string.sub, string.format
local concat = table.concat
local floor = math.floor
local float32_bits, float32_value = ieee.float32_bits, ieee.float32_value
local float64_bits, float64_value = ieee.float64_bits, ieee.float64_value

local LUAI_MAXCSTACK = 8000
local MAX_NESTING = 16

local TWO32 = 4294967296
local TWO63 = 9223372036854775808

-------------------------------------------------------------------------------
-- Error plumbing
-------------------------------------------------------------------------------

local ERR = {}

-- luaL_error(): re-raised with the caller's position
local function raise(msg)
    error({ ERR, msg }, 0)
end

-- errors raised by the Lua core inside the C function carry no position
local function raise_raw(msg)
    error({ ERR, msg, true }, 0)
end

local function argerror(narg, fname, extramsg)
    raise(string_format("bad argument #%d to '%s' (%s)", narg, fname, extramsg))
end

local function stack_overflow(what)
    raise("stack overflow (" .. what .. ")")
end

local function rethrow(e)
    if type(e) == "table" and e[1] == ERR then
        if e[3] then error(e[2], 0) end
        error(e[2], 3)
    end
    error(e, 0)
end

local function typename(v, present)
    if not present then return "no value" end
    return type(v)
end

-- luaL_checkinteger() / luaL_optinteger(): lua_Integer is 64 bit here.
local function check_integer(fname, narg, v, present)
    local n = v
    if type(v) ~= "number" then
        n = nil
        if type(v) == "string" then n = tonumber(v) end
        if n == nil then
            argerror(narg, fname, "number expected, got " .. typename(v, present))
        end
    end
    if n ~= n or n >= TWO63 or n < -TWO63 then return -TWO63 end
    if n >= 0 then return floor(n) end
    return -floor(-n)
end

local function opt_integer(fname, narg, v, present, def)
    if v == nil then return def end
    return check_integer(fname, narg, v, present)
end

-- (int) cast of a lua_Integer, for printing with %d
local function c_int(n)
    n = n % TWO32
    if n >= 2147483648 then n = n - TWO32 end
    return n
end

local function check_string(fname, narg, v, present)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then return tostring(v) end
    argerror(narg, fname, "string expected, got " .. typename(v, present))
end

-------------------------------------------------------------------------------
-- Big endian integers
-------------------------------------------------------------------------------

local function be32(n)
    return string_char(floor(n / 16777216), floor(n / 65536) % 256,
                       floor(n / 256) % 256, n % 256)
end

local function be16(n)
    return string_char(floor(n / 256), n % 256)
end

-------------------------------------------------------------------------------
-- Encoding
-------------------------------------------------------------------------------

local buf, nbuf

local function put(s)
    nbuf = nbuf + 1
    buf[nbuf] = s
end

local function encode_int(n)
    if n >= 0 then
        if n <= 127 then
            put(string_char(n))
        elseif n <= 0xFF then
            put("\204" .. string_char(n))
        elseif n <= 0xFFFF then
            put("\205" .. be16(n))
        elseif n <= 0xFFFFFFFF then
            put("\206" .. be32(n))
        else
            local hi = floor(n / TWO32)
            put("\207" .. be32(hi) .. be32(n - hi * TWO32))
        end
    else
        if n >= -32 then
            put(string_char(n + 256))
        elseif n >= -128 then
            put("\208" .. string_char(n + 256))
        elseif n >= -32768 then
            put("\209" .. be16(n + 65536))
        elseif n >= -2147483648 then
            put("\210" .. be32(n + TWO32))
        else
            local hi = floor(n / TWO32)          -- negative
            local lo = n - hi * TWO32
            put("\211" .. be32(hi + TWO32) .. be32(lo))
        end
    end
end

local function encode_double(d)
    local bits, exact = float32_bits(d)
    if exact then
        put("\202" .. be32(bits))
    else
        local hi, lo = float64_bits(d)
        put("\203" .. be32(hi) .. be32(lo))
    end
end

local function encode_number(n)
    if n >= -TWO63 and n < TWO63 and floor(n) == n then
        encode_int(n)
    else
        encode_double(n)       -- fractions, |n| >= 2^63, inf, nan
    end
end

local function encode_string(s)
    local len = #s
    if len < 32 then
        put(string_char(0xA0 + len))
    elseif len <= 0xFF then
        put("\217" .. string_char(len))
    elseif len <= 0xFFFF then
        put("\218" .. be16(len))
    else
        put("\219" .. be32(len % TWO32))
    end
    put(s)
end

-- table_is_an_array(): keys are exactly 1..n (the empty table qualifies)
local function table_is_an_array(t)
    local count, max = 0, 0
    for k in next, t do
        if type(k) ~= "number" or k <= 0 or k > 2147483647 or floor(k) ~= k then
            return false
        end
        if k > max then max = k end
        count = count + 1
    end
    return max == count
end

local encode_value

-- top: Lua stack slots in use by the C encoder with 'v' on top
encode_value = function(v, level, top)
    local t = type(v)
    if t == "table" and level == MAX_NESTING then t = "nil" end
    if t == "string" then
        encode_string(v)
    elseif t == "boolean" then
        put(v and "\195" or "\194")
    elseif t == "number" then
        encode_number(v)
    elseif t == "table" then
        if top + 2 > LUAI_MAXCSTACK then stack_overflow("in function table_is_an_array") end
        if table_is_an_array(v) then
            if top + 1 > LUAI_MAXCSTACK then
                stack_overflow("in function mp_encode_lua_table_as_array")
            end
            local len = #v
            if len <= 15 then
                put(string_char(0x90 + len))
            elseif len <= 65535 then
                put("\220" .. be16(len))
            else
                put("\221" .. be32(len % TWO32))
            end
            for j = 1, len do
                encode_value(v[j], level + 1, top + 1)
            end
        else
            if top + 3 > LUAI_MAXCSTACK then
                stack_overflow("in function mp_encode_lua_table_as_map")
            end
            local len = 0
            for _ in next, v do len = len + 1 end
            if len <= 15 then
                put(string_char(0x80 + len))
            elseif len <= 65535 then
                put("\222" .. be16(len))
            else
                put("\223" .. be32(len % TWO32))
            end
            for k, val in next, v do
                encode_value(k, level + 1, top + 3)
                encode_value(val, level + 1, top + 2)
            end
        end
    else
        put("\192")
    end
end

local function pack_impl(nargs, ...)
    if nargs == 0 then
        argerror(0, "pack", "MessagePack pack needs input.")
    end
    if nargs + nargs > LUAI_MAXCSTACK then
        argerror(0, "pack", "Too many arguments for MessagePack pack.")
    end
    local args = { ... }
    local out = {}
    for i = 1, nargs do
        if nargs + i > LUAI_MAXCSTACK then stack_overflow("in function mp_check") end
        -- save/restore: an __index metamethod may call pack() re-entrantly
        local saved_buf, saved_n = buf, nbuf
        buf, nbuf = {}, 0
        local ok, err = pcall(encode_value, args[i], 0, nargs + i)
        local b, n = buf, nbuf
        buf, nbuf = saved_buf, saved_n
        if not ok then error(err, 0) end
        out[i] = concat(b, "", 1, n)
    end
    return concat(out)
end

-------------------------------------------------------------------------------
-- Decoding
-------------------------------------------------------------------------------

local EOF = {}
local BADFMT = {}

local s, len      -- current input

local decode_value

local function decode_array(pos, n, top)
    local t = {}
    if top + 2 > LUAI_MAXCSTACK then stack_overflow("in function mp_decode_to_lua_array") end
    for i = 1, n do
        local v
        v, pos = decode_value(pos, top + 2)
        t[i] = v
    end
    return t, pos
end

local function decode_map(pos, n, top)
    local t = {}
    for _ = 1, n do
        local k, v
        k, pos = decode_value(pos, top + 1)
        v, pos = decode_value(pos, top + 2)
        if k == nil then raise_raw("table index is nil") end
        if k ~= k then raise_raw("table index is NaN") end
        t[k] = v
    end
    return t, pos
end

local function need(pos, n)
    if len - pos + 1 < n then error(EOF, 0) end
end

local function u16(p)
    local a, b = string_byte(s, p, p + 1)
    return a * 256 + b
end

local function u32(p)
    local a, b, c, d = string_byte(s, p, p + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Decodes the value at 'pos'; top = stack slots in use by the C decoder.
-- Returns the value and the next position.
decode_value = function(pos, top)
    need(pos, 1)
    if top + 1 > LUAI_MAXCSTACK then
        stack_overflow("too many return values at once; use unpack_one or unpack_limit instead.")
    end
    local c = string_byte(s, pos)
    if c < 0x80 then                                  -- positive fixnum
        return c, pos + 1
    elseif c >= 0xE0 then                             -- negative fixnum
        return c - 256, pos + 1
    elseif c >= 0xA0 and c <= 0xBF then               -- fixstr
        local l = c - 0xA0
        need(pos, 1 + l)
        return string_sub(s, pos + 1, pos + l), pos + 1 + l
    elseif c >= 0x90 and c <= 0x9F then               -- fixarray
        return decode_array(pos + 1, c - 0x90, top)
    elseif c <= 0x8F then                             -- fixmap
        return decode_map(pos + 1, c - 0x80, top)
    elseif c == 0xC0 then
        return nil, pos + 1
    elseif c == 0xC2 then
        return false, pos + 1
    elseif c == 0xC3 then
        return true, pos + 1
    elseif c == 0xCC then                             -- uint 8
        need(pos, 2)
        return string_byte(s, pos + 1), pos + 2
    elseif c == 0xD0 then                             -- int 8
        need(pos, 2)
        local b = string_byte(s, pos + 1)
        if b >= 128 then b = b - 256 end
        return b, pos + 2
    elseif c == 0xCD then                             -- uint 16
        need(pos, 3)
        return u16(pos + 1), pos + 3
    elseif c == 0xD1 then                             -- int 16
        need(pos, 3)
        local v = u16(pos + 1)
        if v >= 32768 then v = v - 65536 end
        return v, pos + 3
    elseif c == 0xCE then                             -- uint 32
        need(pos, 5)
        return u32(pos + 1), pos + 5
    elseif c == 0xD2 then                             -- int 32
        need(pos, 5)
        local v = u32(pos + 1)
        if v >= 2147483648 then v = v - TWO32 end
        return v, pos + 5
    elseif c == 0xCF or c == 0xD3 then                -- uint 64 / int 64
        -- both end up as (double)(int64_t)value
        need(pos, 9)
        local hi, lo = u32(pos + 1), u32(pos + 5)
        if hi >= 2147483648 then hi = hi - TWO32 end
        return hi * TWO32 + lo, pos + 9
    elseif c == 0xCA then                             -- float
        need(pos, 5)
        return float32_value(u32(pos + 1)), pos + 5
    elseif c == 0xCB then                             -- double
        need(pos, 9)
        return float64_value(u32(pos + 1), u32(pos + 5)), pos + 9
    elseif c == 0xD9 then                             -- str 8
        need(pos, 2)
        local l = string_byte(s, pos + 1)
        need(pos, 2 + l)
        return string_sub(s, pos + 2, pos + 1 + l), pos + 2 + l
    elseif c == 0xDA then                             -- str 16
        need(pos, 3)
        local l = u16(pos + 1)
        need(pos, 3 + l)
        return string_sub(s, pos + 3, pos + 2 + l), pos + 3 + l
    elseif c == 0xDB then                             -- str 32
        need(pos, 5)
        local l = u32(pos + 1)
        pos = pos + 5
        need(pos, l)
        return string_sub(s, pos, pos + l - 1), pos + l
    elseif c == 0xDC then                             -- array 16
        need(pos, 3)
        return decode_array(pos + 3, u16(pos + 1), top)
    elseif c == 0xDD then                             -- array 32
        need(pos, 5)
        return decode_array(pos + 5, u32(pos + 1), top)
    elseif c == 0xDE then                             -- map 16
        need(pos, 3)
        return decode_map(pos + 3, u16(pos + 1), top)
    elseif c == 0xDF then                             -- map 32
        need(pos, 5)
        return decode_map(pos + 5, u32(pos + 1), top)
    end
    error(BADFMT, 0)                                  -- 0xc1, bin, ext, fixext
end

-- mp_unpack_full(); base = Lua stack slots in use before results are pushed.
-- Returns a table of results and their count.
local function unpack_full(fname, str, present, limit, offset, base)
    str = check_string(fname, 1, str, present)
    local l = #str
    if offset < 0 or limit < 0 then
        raise(string_format("Invalid request to unpack with offset of %d and limit of %d.",
                            c_int(offset), c_int(l)))
    elseif offset > l then
        raise(string_format("Start offset %d greater than input length %d.",
                            c_int(offset), c_int(l)))
    end
    local decode_all = (limit == 0 and offset == 0)
    if decode_all then limit = 2147483647 end

    s, len = str, l
    local results, cnt = {}, 0
    local pos = offset + 1
    local ok, err = pcall(function()
        while pos <= len and cnt < limit do
            local v
            v, pos = decode_value(pos, base + cnt)
            cnt = cnt + 1
            results[cnt] = v
        end
    end)
    s = nil
    if not ok then
        if err == EOF then raise("Missing bytes in input.") end
        if err == BADFMT then raise("Bad data format in input.") end
        error(err, 0)
    end

    if not decode_all then
        if base + cnt + 1 > LUAI_MAXCSTACK then stack_overflow("in function mp_unpack_full") end
        for i = cnt, 1, -1 do results[i + 1] = results[i] end
        results[1] = (pos > len) and -1 or (pos - 1)
        cnt = cnt + 1
    end
    return results, cnt
end

-- Returns t[1..n] (n may exceed what unpack() alone can return).
local function values(t, n)
    if n <= 7900 then return unpack(t, 1, n) end
    return t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10],
           unpack(t, 11, n)
end

local function mp_unpack(...)
    local nargs = select("#", ...)
    local str = ...
    local ok, t, n = pcall(unpack_full, "unpack", str, nargs >= 1, 0, 0, nargs)
    if not ok then rethrow(t) end
    return values(t, n)
end

local function mp_unpack_one(...)
    local nargs = select("#", ...)
    local str, offset = ...
    local ok, t, n = pcall(function()
        local off = opt_integer("unpack_one", 2, offset, nargs >= 2, 0)
        return unpack_full("unpack_one", str, nargs >= 1, 1, off, 1)
    end)
    if not ok then rethrow(t) end
    return values(t, n)
end

local function mp_unpack_limit(...)
    local nargs = select("#", ...)
    local str, limit, offset = ...
    local ok, t, n = pcall(function()
        local lim = check_integer("unpack_limit", 2, limit, nargs >= 2)
        local off = opt_integer("unpack_limit", 3, offset, nargs >= 3, 0)
        return unpack_full("unpack_limit", str, nargs >= 1, lim, off, 1)
    end)
    if not ok then rethrow(t) end
    return values(t, n)
end

local function mp_pack(...)
    local ok, r = pcall(pack_impl, select("#", ...), ...)
    if not ok then rethrow(r) end
    return r
end

return {
    pack = mp_pack,
    unpack = mp_unpack,
    unpack_one = mp_unpack_one,
    unpack_limit = mp_unpack_limit,
    _NAME = "cmsgpack",
    _VERSION = "lua-cmsgpack 0.4.0",
    _COPYRIGHT = "Copyright (C) 2012, Salvatore Sanfilippo",
    _DESCRIPTION = "MessagePack C implementation for Lua",
}
