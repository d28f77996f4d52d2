-- struct.lua - pure Lua 5.1 implementation of Roberto Ierusalimschy's
-- "struct" library as bundled with Redis 7.0 (deps/lua/src/lua_struct.c).
--
-- The chunk is called with one argument, the table returned by ieee754.lua
-- (float encoding shared with cmsgpack.lua), and returns the module table
-- (struct.pack, struct.unpack, struct.size).
--
-- The C library is compiled for x86_64: native byte order little endian,
-- short = 2, int = 4, long = size_t = 8 bytes, maximum alignment 8, and
-- integers are handled as 64 bit (long) values.  Those sizes, the C
-- conversion quirks and the error messages are reproduced here.
--
-- Valid formats:
--   > big endian, < little endian, ![n] alignment (default 8), ' ' ignored
--   x padding byte, b/B signed/unsigned char, h/H short, l/L long,
--   T size_t, i/I[n] int with n bytes (default 4, at most 32),
--   c[n] n chars (n == 0: whole string when packing, previous number when
--   unpacking), s zero terminated string, f float, d double

local ieee = ...

local type, tostring, tonumber, error, pcall, select, unpack =
      type, tostring, tonumber, error, pcall, select, unpack
local string_byte, string_char, string_sub, string_find, string_format, string_rep =
      string.byte, string.char, string.sub, string.find, string.format, string.rep
local concat = table.concat
local floor = math.floor
local float32_bits, float32_value = ieee.float32_bits, ieee.float32_value
local float64_bits, float64_value = ieee.float64_bits, ieee.float64_value

local LUAI_MAXCSTACK = 8000
local MAXINTSIZE = 32
local MAXALIGN = 8
local INT_MAX = 2147483647

local TWO32 = 4294967296
local TWO63 = 9223372036854775808
local TWO64 = 18446744073709551616

local SIZES = {
    [98] = 1, [66] = 1,       -- b B
    [104] = 2, [72] = 2,      -- h H
    [108] = 8, [76] = 8,      -- l L
    [84] = 8,                 -- T
    [102] = 4,                -- f
    [100] = 8,                -- d
    [120] = 1,                -- x
}

local BIG, LITTLE = 0, 1

-------------------------------------------------------------------------------
-- Error plumbing
-------------------------------------------------------------------------------

local ERR = {}

local function raise(msg)
    error({ ERR, msg }, 0)
end

local function argerror(narg, fname, extramsg)
    raise(string_format("bad argument #%d to '%s' (%s)", narg, fname, extramsg))
end

local function rethrow(e)
    if type(e) == "table" and e[1] == ERR then
        error(e[2], 3)
    end
    error(e, 0)
end

local function typename(v, present)
    if not present then return "no value" end
    return type(v)
end

local function check_string(fname, narg, v, present)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then return tostring(v) end
    argerror(narg, fname, "string expected, got " .. typename(v, present))
end

local function check_number(fname, narg, v, present)
    if type(v) == "number" then return v end
    if type(v) == "string" then
        local n = tonumber(v)
        if n then return n end
    end
    argerror(narg, fname, "number expected, got " .. typename(v, present))
end

-- truncating double -> int64 conversion (x86_64: out of range gives INT64_MIN)
local function to_int64(n)
    if n ~= n or n >= TWO63 or n < -TWO63 then return -TWO63 end
    if n >= 0 then return floor(n) end
    return -floor(-n)
end

-- a & b for 0 <= b < 2^32; a is taken modulo 2^32 (two's complement)
local function band(a, b)
    a = a % TWO32
    local r, bit = 0, 1
    while a > 0 and b > 0 do
        local ra, rb = a % 2, b % 2
        if ra == 1 and rb == 1 then r = r + bit end
        a = (a - ra) / 2
        b = (b - rb) / 2
        bit = bit * 2
    end
    return r
end

local function isdigit(c)
    return c ~= nil and c >= 48 and c <= 57
end

local function isalnum(c)
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
end

-------------------------------------------------------------------------------
-- Format parsing
-------------------------------------------------------------------------------

-- getnum(): returns the number and the next index
local function getnum(fmt, i, df)
    local c = string_byte(fmt, i)
    if not isdigit(c) then return df, i end
    local a = 0
    repeat
        local d = c - 48
        if a > 214748364 or a * 10 > INT_MAX - d then
            raise("integral size overflow")
        end
        a = a * 10 + d
        i = i + 1
        c = string_byte(fmt, i)
    until not isdigit(c)
    return a, i
end

-- optsize(): returns the size and the next index
local function optsize(opt, fmt, i)
    local sz = SIZES[opt]
    if sz then return sz, i end
    if opt == 99 then                         -- c
        return getnum(fmt, i, 1)
    elseif opt == 105 or opt == 73 then       -- i I
        sz, i = getnum(fmt, i, 4)
        if sz > MAXINTSIZE then
            raise(string_format("integral size %d is larger than limit of %d", sz, MAXINTSIZE))
        end
        return sz, i
    end
    return 0, i
end

local function gettoalign(len, h, opt, size)
    if size == 0 or opt == 99 then return 0 end
    if size > h.align then size = h.align end
    return band(size - band(len, size - 1), size - 1)
end

-- controloptions(): returns the next index
local function controloptions(fname, opt, fmt, i, h)
    if opt == 32 then                         -- ' '
        return i
    elseif opt == 62 then                     -- >
        h.endian = BIG
        return i
    elseif opt == 60 then                     -- <
        h.endian = LITTLE
        return i
    elseif opt == 33 then                     -- !
        local a
        a, i = getnum(fmt, i, MAXALIGN)
        if a <= 0 or band(a, a - 1) ~= 0 then
            raise(string_format("alignment %d is not a power of 2", a))
        end
        h.align = a
        return i
    end
    argerror(1, fname, "invalid format option '" .. string_char(opt) .. "'")
end

-- the C loops stop at the first NUL of the format
local function cstring(fmt)
    local z = string_find(fmt, "\0", 1, true)
    if z then return string_sub(fmt, 1, z - 1) end
    return fmt
end

-------------------------------------------------------------------------------
-- Number conversions
-------------------------------------------------------------------------------

-- 'bytes' holds little endian byte values; emit 'size' of them in the
-- requested byte order.
local function emit(bytes, size, endian)
    local out = {}
    if endian == LITTLE then
        for i = 1, size do out[i] = bytes[i] or 0 end
    else
        for i = 1, size do out[size - i + 1] = bytes[i] or 0 end
    end
    if size <= 32 then return string_char(unpack(out, 1, size)) end
    local parts = {}
    for i = 1, size do parts[i] = string_char(out[i]) end
    return concat(parts)
end

local function le_bytes32(n, bytes, at)
    bytes[at] = n % 256
    bytes[at + 1] = floor(n / 256) % 256
    bytes[at + 2] = floor(n / 65536) % 256
    bytes[at + 3] = floor(n / 16777216) % 256
end

-- the low 'size' bytes of the 64 bit value hi * 2^32 + lo (0 <= hi, lo < 2^32)
local function emit64(hi, lo, size, endian)
    local bytes = {}
    le_bytes32(lo, bytes, 1)
    le_bytes32(hi, bytes, 5)
    return emit(bytes, size, endian)
end

-- the unsigned 32 bit value of the bytes at p .. p + 3
local function read32(data, p, endian)
    local a, b, c, d = string_byte(data, p, p + 3)
    if endian == BIG then
        return ((a * 256 + b) * 256 + c) * 256 + d
    end
    return ((d * 256 + c) * 256 + b) * 256 + a
end

-- putinteger(): C code converts to an unsigned long and emits its bytes
local function pack_integer(n, size, endian)
    local hi, lo
    if n < 0 then
        local v = to_int64(n)                 -- (Uinttype)(Inttype)n
        hi = floor(v / TWO32)
        lo = v - hi * TWO32
        hi = hi + TWO32
    else
        local v
        if n ~= n then
            v = TWO63                          -- cvttsd2si(NaN) = 0x8000000000000000
        elseif n < TWO63 then
            v = floor(n)
        elseif n < TWO64 then
            v = floor(n)
        else
            v = 0                              -- x86_64 out of range -> 0
        end
        hi = floor(v / TWO32)
        lo = v - hi * TWO32
    end
    if size <= 4 then
        local b1, b2, b3, b4 = lo % 256, floor(lo / 256) % 256,
                               floor(lo / 65536) % 256, floor(lo / 16777216)
        if size == 1 then return string_char(b1) end
        if endian == LITTLE then
            if size == 2 then return string_char(b1, b2) end
            if size == 4 then return string_char(b1, b2, b3, b4) end
        else
            if size == 2 then return string_char(b2, b1) end
            if size == 4 then return string_char(b4, b3, b2, b1) end
        end
    end
    return emit64(hi, lo, size, endian)
end

-- getinteger(): the value is accumulated in an unsigned long (64 bits)
local function unpack_integer(data, pos, endian, issigned, size)
    local hi, lo = 0, 0
    local first, last, step
    if endian == BIG then
        first, last, step = pos + 1, pos + size, 1
    else
        first, last, step = pos + size, pos + 1, -1
    end
    for i = first, last, step do
        local b = string_byte(data, i)
        hi = (hi % 16777216) * 256 + floor(lo / 16777216)
        lo = (lo % 16777216) * 256 + b
    end
    if not issigned then
        return hi * TWO32 + lo
    end
    local shift = (size * 8 - 1) % 64          -- x86 shifts use the count mod 64
    if shift >= 32 then
        local bit = 2 ^ (shift - 32)
        if hi >= bit then
            hi = hi % bit + (TWO32 - bit)
        end
    else
        local bit = 2 ^ shift
        if hi ~= 0 or lo >= bit then
            hi = TWO32 - 1
            lo = lo % bit + (TWO32 - bit)
        end
    end
    if hi >= 2147483648 then hi = hi - TWO32 end
    return hi * TWO32 + lo
end

-------------------------------------------------------------------------------
-- struct.pack
-------------------------------------------------------------------------------

-- b_pack() pushes a nil right after its arguments, so the first missing
-- value argument is reported as "got nil" rather than "got no value".
local function pack_impl(nargs, ...)
    local args = { ... }
    local fmt = cstring(check_string("pack", 1, args[1], nargs >= 1))
    local h = { endian = LITTLE, align = 1 }
    local out, nout = {}, 0
    local arg = 2
    local totalsize = 0
    local i, n = 1, #fmt
    while i <= n do
        local opt = string_byte(fmt, i)
        i = i + 1
        local size
        size, i = optsize(opt, fmt, i)
        local toalign = gettoalign(totalsize, h, opt, size)
        totalsize = totalsize + toalign
        if toalign > 0 then
            nout = nout + 1
            out[nout] = string_rep("\0", toalign)
        end
        if opt == 98 or opt == 66 or opt == 104 or opt == 72 or opt == 108 or opt == 76
           or opt == 84 or opt == 105 or opt == 73 then
            local num = check_number("pack", arg, args[arg], true)
            arg = arg + 1
            nout = nout + 1
            out[nout] = pack_integer(num, size, h.endian)
        elseif opt == 120 then                                    -- x
            nout = nout + 1
            out[nout] = "\0"
        elseif opt == 102 then                                    -- f
            local num = check_number("pack", arg, args[arg], true)
            arg = arg + 1
            nout = nout + 1
            out[nout] = emit64(0, float32_bits(num), 4, h.endian)
        elseif opt == 100 then                                    -- d
            local num = check_number("pack", arg, args[arg], true)
            arg = arg + 1
            local hi, lo = float64_bits(num)
            nout = nout + 1
            out[nout] = emit64(hi, lo, 8, h.endian)
        elseif opt == 99 or opt == 115 then                       -- c s
            local str = check_string("pack", arg, args[arg], true)
            arg = arg + 1
            local l = #str
            if size == 0 then size = l end
            if l < size then argerror(arg, "pack", "string too short") end
            nout = nout + 1
            out[nout] = (size == l) and str or string_sub(str, 1, size)
            if opt == 115 then
                nout = nout + 1
                out[nout] = "\0"
                size = size + 1
            end
        else
            i = controloptions("pack", opt, fmt, i, h)
        end
        totalsize = totalsize + size
    end
    return concat(out, "", 1, nout)
end

-------------------------------------------------------------------------------
-- struct.unpack
-------------------------------------------------------------------------------

local function unpack_impl(nargs, fmt, data, init)
    fmt = cstring(check_string("unpack", 1, fmt, nargs >= 1))
    data = check_string("unpack", 2, data, nargs >= 2)
    local ld = #data
    local pos = 1
    if init ~= nil then
        if type(init) == "number" then
            pos = to_int64(init)
        else
            pos = to_int64(check_number("unpack", 3, init, true))
        end
    end
    if pos == 0 then argerror(3, "unpack", "offset must be 1 or greater") end
    pos = pos - 1
    local h = { endian = LITTLE, align = 1 }
    local res, nres = {}, 0
    local i, n = 1, #fmt
    while i <= n do
        local opt = string_byte(fmt, i)
        i = i + 1
        local size
        size, i = optsize(opt, fmt, i)
        pos = pos + gettoalign(pos, h, opt, size)
        if not (size <= ld and pos >= 0 and pos <= ld - size) then
            argerror(2, "unpack", "data string too short")
        end
        if nargs + nres + 2 > LUAI_MAXCSTACK then
            raise("stack overflow (too many results)")
        end
        if opt == 98 or opt == 66 or opt == 104 or opt == 72 or opt == 108 or opt == 76
           or opt == 84 or opt == 105 or opt == 73 then
            local issigned = (opt >= 97)
            nres = nres + 1
            res[nres] = unpack_integer(data, pos, h.endian, issigned, size)
        elseif opt == 120 then                                    -- x
            -- nothing
        elseif opt == 102 then                                    -- f
            nres = nres + 1
            res[nres] = float32_value(read32(data, pos + 1, h.endian))
        elseif opt == 100 then                                    -- d
            local hi = read32(data, pos + 1, h.endian)
            local lo = read32(data, pos + 5, h.endian)
            if h.endian == LITTLE then hi, lo = lo, hi end
            nres = nres + 1
            res[nres] = float64_value(hi, lo)
        elseif opt == 99 then                                     -- c
            if size == 0 then
                local prev = res[nres]
                local num
                if nres > 0 then
                    if type(prev) == "number" then
                        num = prev
                    elseif type(prev) == "string" then
                        num = tonumber(prev)
                    end
                end
                if num == nil then
                    raise("format 'c0' needs a previous size")
                end
                -- (size_t) conversion: negative values become huge
                size = to_int64(num)
                res[nres] = nil
                nres = nres - 1
                if not (size >= 0 and size <= ld and pos <= ld - size) then
                    argerror(2, "unpack", "data string too short")
                end
            end
            nres = nres + 1
            res[nres] = string_sub(data, pos + 1, pos + size)
        elseif opt == 115 then                                    -- s
            local e = string_find(data, "\0", pos + 1, true)
            if not e then raise("unfinished string in data") end
            size = e - pos
            nres = nres + 1
            res[nres] = string_sub(data, pos + 1, e - 1)
        else
            i = controloptions("unpack", opt, fmt, i, h)
        end
        pos = pos + size
    end
    nres = nres + 1
    res[nres] = pos + 1
    return res, nres
end

-------------------------------------------------------------------------------
-- struct.size
-------------------------------------------------------------------------------

local function size_impl(nargs, fmt)
    fmt = cstring(check_string("size", 1, fmt, nargs >= 1))
    local h = { endian = LITTLE, align = 1 }
    local pos = 0
    local i, n = 1, #fmt
    while i <= n do
        local opt = string_byte(fmt, i)
        i = i + 1
        local size
        size, i = optsize(opt, fmt, i)
        pos = pos + gettoalign(pos, h, opt, size)
        if opt == 115 then
            argerror(1, "size", "option 's' has no fixed size")
        elseif opt == 99 and size == 0 then
            argerror(1, "size", "option 'c0' has no fixed size")
        end
        if not isalnum(opt) then
            i = controloptions("size", opt, fmt, i, h)
        end
        pos = pos + size
    end
    return pos
end

-------------------------------------------------------------------------------

local function values(t, n)
    if n <= 7900 then return unpack(t, 1, n) end
    return t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10],
           unpack(t, 11, n)
end

return {
    pack = function(...)
        local ok, r = pcall(pack_impl, select("#", ...), ...)
        if not ok then rethrow(r) end
        return r
    end,
    unpack = function(...)
        local ok, t, n = pcall(unpack_impl, select("#", ...), ...)
        if not ok then rethrow(t) end
        return values(t, n)
    end,
    size = function(...)
        local ok, r = pcall(size_impl, select("#", ...), ...)
        if not ok then rethrow(r) end
        return r
    end,
}
