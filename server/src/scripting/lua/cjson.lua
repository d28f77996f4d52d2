-- cjson.lua - pure Lua 5.1 implementation of the lua-cjson 2.1.0 API as
-- bundled with Redis 7.0 (deps/lua/src/lua_cjson.c).
--
-- The chunk is called with one argument: the value to use as cjson.null
-- (the server passes a light userdata).  It returns the module table.
--
-- Behaviour mirrors the C library, including its error messages, its
-- array/object detection (sparse array rules), "%.14g" number formatting,
-- string escaping ("/" -> "\/", control chars -> \uXXXX), strtod()-style
-- number parsing, and the depth / Lua stack limits that surface as errors.
--
-- Errors raised by the C library through luaL_error carry the position of
-- the calling Lua code ("user_script:1: ...").  To reproduce that, every
-- public function runs its implementation under pcall and re-raises the
-- message with error(msg, 2).

local null = ...

local type, next, tostring, tonumber, error, pcall, select, rawget =
      type, next, tostring, tonumber, error, pcall, select, rawget
local string_byte, string_char, string_sub, string_find, string_format,
      string_gsub, string_lower, string_match =
      string.byte, string.char, string.sub, string.find, string.format,
      string.gsub, string.lower, string.match
local concat = table.concat
local floor, huge, ldexp = math.floor, math.huge, math.ldexp

local LUAI_MAXCSTACK = 8000
local INT_MAX = 2147483647

-------------------------------------------------------------------------------
-- Error plumbing
-------------------------------------------------------------------------------

local ERR = {}   -- marker identifying errors raised by this module

-- luaL_error() style error: the wrapper re-raises it with the position of
-- the code that called the public function.
local function raise(msg)
    error({ ERR, msg }, 0)
end

local function typename(v)
    return type(v)
end

-- luaL_argerror() style error.
local function argerror(narg, fname, extramsg)
    raise(string_format("bad argument #%d to '%s' (%s)", narg, fname, extramsg))
end

local function rethrow(e)
    if type(e) == "table" and e[1] == ERR then
        error(e[2], 3)
    end
    error(e, 0)
end

-- Wrap an implementation returning exactly one value.
local function wrap1(impl)
    return function(...)
        local ok, r = pcall(impl, select("#", ...), ...)
        if not ok then rethrow(r) end
        return r
    end
end

-- Wrap an implementation returning exactly three values.
local function wrap3(impl)
    return function(...)
        local ok, a, b, c = pcall(impl, select("#", ...), ...)
        if not ok then rethrow(a) end
        return a, b, c
    end
end

-- lua_tointeger() (truncating conversion to a 64 bit lua_Integer on x86_64)
-- followed by the assignment to a C "int".
local function to_c_int(n)
    if n ~= n or n >= 9223372036854775808 or n < -9223372036854775808 then
        return 0
    end
    if n >= 0 then n = floor(n) else n = -floor(-n) end
    n = n % 4294967296
    if n >= 2147483648 then n = n - 4294967296 end
    return n
end

-- luaL_checkinteger()
local function check_integer(fname, narg, v)
    local n = v
    if type(v) ~= "number" then
        n = nil
        if type(v) == "string" then n = tonumber(v) end
        if n == nil then
            argerror(narg, fname, "number expected, got " .. typename(v))
        end
    end
    return to_c_int(n)
end

-- luaL_checkoption(L, narg, NULL, options); options is 0-based.
local function check_option(fname, narg, v, options)
    local name
    if type(v) == "string" then
        name = v
    elseif type(v) == "number" then
        name = tostring(v)
    else
        argerror(narg, fname, "string expected, got " .. typename(v))
    end
    local i = 0
    while options[i] do
        if options[i] == name then return i end
        i = i + 1
    end
    -- lua_pushfstring("%s") stops at an embedded zero
    local z = string_find(name, "\0", 1, true)
    if z then name = string_sub(name, 1, z - 1) end
    argerror(narg, fname, "invalid option '" .. name .. "'")
end

local bool_options = { [0] = "off", "on" }

-- json_enum_option(); returns the new setting and the value to return.
local function enum_option(fname, narg, v, setting, options, bool_true)
    if not options then
        options = bool_options
        bool_true = 1
    end
    if v ~= nil then
        if bool_true and type(v) == "boolean" then
            setting = v and bool_true or 0
        else
            setting = check_option(fname, narg, v, options)
        end
    end
    if bool_true and (setting == 0 or setting == bool_true) then
        return setting, setting ~= 0
    end
    return setting, options[setting]
end

-- json_integer_option(); returns the new setting.
local function integer_option(fname, narg, v, setting, min, max)
    if v ~= nil then
        local value = check_integer(fname, narg, v)
        if not (min <= value and value <= max) then
            -- lua_cjson always reports argument #1 here
            argerror(1, fname, string_format("expected integer between %d and %d", min, max))
        end
        setting = value
    end
    return setting
end

-------------------------------------------------------------------------------
-- Encoding tables
-------------------------------------------------------------------------------

local escapes = {}
for i = 0, 31 do
    escapes[string_char(i)] = string_format("\\u%04x", i)
end
escapes["\b"] = "\\b"
escapes["\t"] = "\\t"
escapes["\n"] = "\\n"
escapes["\f"] = "\\f"
escapes["\r"] = "\\r"
escapes['"'] = '\\"'
escapes["\\"] = "\\\\"
escapes["/"] = "\\/"
escapes["\127"] = "\\u007f"

local ESCAPE_PATTERN = '[%z\1-\31"\\/\127]'

local function encode_string(s)
    if string_find(s, ESCAPE_PATTERN) then
        s = string_gsub(s, ESCAPE_PATTERN, escapes)
    end
    return '"' .. s .. '"'
end

-------------------------------------------------------------------------------
-- Decoding helpers
-------------------------------------------------------------------------------

local T_OBJ_BEGIN, T_OBJ_END, T_ARR_BEGIN, T_ARR_END, T_STRING, T_NUMBER,
      T_BOOLEAN, T_NULL, T_COLON, T_COMMA, T_END, T_ERROR =
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12

local token_names = {
    [0] = "T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING",
    "T_NUMBER", "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END",
    "T_WHITESPACE", "T_ERROR", "T_UNKNOWN",
}

local single_tokens = {
    [123] = T_OBJ_BEGIN, [125] = T_OBJ_END, [91] = T_ARR_BEGIN,
    [93] = T_ARR_END, [44] = T_COMMA, [58] = T_COLON,
}

local escape2char = {
    [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [116] = "\t",
    [110] = "\n", [102] = "\f", [114] = "\r",
}

local NEG_NAN = 0 / 0          -- x86 default NaN has the sign bit set
local POS_NAN = -NEG_NAN

local hexval = {}
for i = 0, 9 do hexval[48 + i] = i end
for i = 0, 5 do hexval[65 + i] = 10 + i; hexval[97 + i] = 10 + i end

local function decode_hex4(s, p)
    local a, b, c, d = string_byte(s, p, p + 3)
    a, b, c, d = hexval[a], hexval[b], hexval[c], hexval[d]
    if not (a and b and c and d) then return nil end
    return a * 4096 + b * 256 + c * 16 + d
end

local function codepoint_to_utf8(cp)
    if cp <= 0x7F then
        return string_char(cp)
    elseif cp <= 0x7FF then
        return string_char(floor(cp / 64) + 0xC0, cp % 64 + 0x80)
    elseif cp <= 0xFFFF then
        return string_char(floor(cp / 4096) + 0xE0, floor(cp / 64) % 64 + 0x80,
                           cp % 64 + 0x80)
    end
    return string_char(floor(cp / 262144) + 0xF0, floor(cp / 4096) % 64 + 0x80,
                       floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
end

-- Manual conversion of a C99 hexadecimal floating constant (fallback when the
-- C library behind tonumber() does not understand it).
local function hex_to_number(intdigits, fracdigits, exp)
    local v = 0
    for i = 1, #intdigits do
        v = v * 16 + hexval[string_byte(intdigits, i)]
    end
    local scale = 1
    for i = 1, #fracdigits do
        scale = scale / 16
        v = v + hexval[string_byte(fracdigits, i)] * scale
    end
    return ldexp(v, exp)
end

-- strtod() emulation.  Returns value and the index just after the number,
-- or nil when no conversion can be performed.
local function scan_number(s, p)
    local i = p
    local c = string_byte(s, i)
    local neg = false
    if c == 43 or c == 45 then
        neg = (c == 45)
        i = i + 1
        c = string_byte(s, i)
    end
    if c == nil then return nil end

    if c == 105 or c == 73 then                              -- inf / infinity
        if string_lower(string_sub(s, i, i + 2)) ~= "inf" then return nil end
        local e = i + 3
        if string_lower(string_sub(s, i + 3, i + 7)) == "inity" then e = i + 8 end
        return neg and -huge or huge, e
    elseif c == 110 or c == 78 then                          -- nan / nan(...)
        if string_lower(string_sub(s, i, i + 2)) ~= "nan" then return nil end
        local e = i + 3
        if string_byte(s, e) == 40 then
            local _, q = string_find(s, "^[%w_]*%)", e + 1)
            if q then e = q + 1 end
        end
        return neg and NEG_NAN or POS_NAN, e
    end

    if c == 48 then                                          -- hexadecimal
        local x = string_byte(s, i + 1)
        if x == 120 or x == 88 then
            local _, ie = string_find(s, "^%x*", i + 2)
            local intdigits = string_sub(s, i + 2, ie)
            local k = ie + 1
            local fracdigits = ""
            if string_byte(s, k) == 46 then
                local _, fe = string_find(s, "^%x*", k + 1)
                fracdigits = string_sub(s, k + 1, fe)
                if #intdigits + #fracdigits > 0 then k = fe + 1 end
            end
            if #intdigits + #fracdigits == 0 then
                -- only the leading "0" is converted
                return neg and -0.0 or 0, i + 1
            end
            local exp = 0
            local pc = string_byte(s, k)
            if pc == 112 or pc == 80 then
                local m = string_match(s, "^[+-]?%d+", k + 1)
                if m then
                    exp = tonumber(m)
                    k = k + 1 + #m
                end
            end
            local v = tonumber(string_sub(s, p, k - 1))
            if v == nil then
                v = hex_to_number(intdigits, fracdigits, exp)
                if neg then v = -v end
            end
            return v, k
        end
    end

    -- decimal
    local _, e1 = string_find(s, "^%d*", i)
    local ndigits = e1 - i + 1
    local k = e1 + 1
    if string_byte(s, k) == 46 then
        local _, e2 = string_find(s, "^%d*", k + 1)
        local nfrac = e2 - k
        if ndigits + nfrac > 0 then k = e2 + 1 end
        ndigits = ndigits + nfrac
    end
    if ndigits == 0 then return nil end
    local ec = string_byte(s, k)
    if ec == 101 or ec == 69 then
        local m = string_match(s, "^[+-]?%d+", k + 1)
        if m then k = k + 1 + #m end
    end
    local v = tonumber(string_sub(s, p, k - 1))
    if v == nil then return nil end
    return v, k
end

-- json_is_invalid_number()
local function is_invalid_number(s, p)
    local c = string_byte(s, p)
    if c == 43 then return true end
    if c == 45 then
        p = p + 1
        c = string_byte(s, p)
    end
    if c == 48 then
        local c2 = string_byte(s, p + 1)
        if c2 and (c2 == 120 or c2 == 88 or (c2 >= 48 and c2 <= 57)) then
            return true
        end
        return false
    elseif c == nil or c <= 57 or c >= 128 then
        return false
    end
    local w = string_lower(string_sub(s, p, p + 2))
    return w == "inf" or w == "nan"
end

-------------------------------------------------------------------------------
-- Module constructor (cjson.new)
-------------------------------------------------------------------------------

local new

new = function()
    local cfg = {
        sparse_convert = 0,
        sparse_ratio = 2,
        sparse_safe = 10,
        encode_max_depth = 1000,
        decode_max_depth = 1000,
        encode_invalid_numbers = 0,
        decode_invalid_numbers = 1,
        encode_keep_buffer = 1,
        precision = 14,
        number_fmt = "%.14g",
    }

    ---------------------------------------------------------------------------
    -- Encoder
    ---------------------------------------------------------------------------

    local buf, nbuf

    local function encode_number(num, what)
        if num ~= num or num == huge or num == -huge then
            local mode = cfg.encode_invalid_numbers
            if mode == 0 then
                raise("Cannot serialise " .. what .. ": must not be NaN or Inf")
            elseif mode == 1 then
                if num ~= num then return "nan" end
            else
                return "null"
            end
        end
        return string_format(cfg.number_fmt, num)
    end

    -- lua_array_length(): -1 for an object, otherwise the array length.
    local function array_length(t)
        local max, items = 0, 0
        for k in next, t do
            if type(k) == "number" and k >= 1 and floor(k) == k then
                if k > max then
                    if k >= 2147483648 then
                        max = -2147483648      -- C double -> int overflow
                    else
                        max = k
                    end
                end
                items = items + 1
            else
                return -1
            end
        end
        local ratio = cfg.sparse_ratio
        if ratio > 0 then
            local lim = (items * ratio) % 4294967296
            if lim >= 2147483648 then lim = lim - 4294967296 end
            if max > lim and max > cfg.sparse_safe then
                if cfg.sparse_convert == 0 then
                    raise("Cannot serialise table: excessively sparse array")
                end
                return -1
            end
        end
        return max
    end

    local encode_value

    -- slots: Lua stack slots in use by the C encoder when 'v' is at the top
    encode_value = function(v, depth, slots)
        local tv = type(v)
        if tv == "string" then
            nbuf = nbuf + 1
            buf[nbuf] = encode_string(v)
        elseif tv == "number" then
            nbuf = nbuf + 1
            buf[nbuf] = encode_number(v, "number")
        elseif tv == "boolean" then
            nbuf = nbuf + 1
            buf[nbuf] = v and "true" or "false"
        elseif tv == "table" then
            depth = depth + 1
            if depth > cfg.encode_max_depth or slots + 3 > LUAI_MAXCSTACK then
                raise(string_format("Cannot serialise, excessive nesting (%d)", depth))
            end
            local len = array_length(v)
            if len > 0 then
                nbuf = nbuf + 1
                buf[nbuf] = "["
                for i = 1, len do
                    if i > 1 then
                        nbuf = nbuf + 1
                        buf[nbuf] = ","
                    end
                    encode_value(rawget(v, i), depth, slots + 1)
                end
                nbuf = nbuf + 1
                buf[nbuf] = "]"
            else
                nbuf = nbuf + 1
                buf[nbuf] = "{"
                local comma = false
                for k, val in next, v do
                    nbuf = nbuf + 1
                    buf[nbuf] = comma and "," or ""
                    comma = true
                    local tk = type(k)
                    if tk == "number" then
                        nbuf = nbuf + 1
                        buf[nbuf] = '"' .. encode_number(k, "number") .. '":'
                    elseif tk == "string" then
                        nbuf = nbuf + 1
                        buf[nbuf] = encode_string(k) .. ":"
                    else
                        raise("Cannot serialise " .. tk .. ": table key must be a number or string")
                    end
                    encode_value(val, depth, slots + 2)
                end
                nbuf = nbuf + 1
                buf[nbuf] = "}"
            end
        elseif v == nil or v == null then
            nbuf = nbuf + 1
            buf[nbuf] = "null"
        else
            raise("Cannot serialise " .. tv .. ": type not supported")
        end
    end

    local function encode_impl(nargs, value)
        if nargs ~= 1 then argerror(1, "encode", "expected 1 argument") end
        buf, nbuf = {}, 0
        encode_value(value, 0, 1)
        local b = buf
        buf = nil
        return concat(b, "", 1, nbuf)
    end

    ---------------------------------------------------------------------------
    -- Decoder
    ---------------------------------------------------------------------------

    local s, len, pos     -- input string, its length, next index (1-based)

    -- Returns token type, value, 0-based index of the token.  For T_ERROR
    -- the value is the error description.
    local function next_token()
        local p = pos
        local c = string_byte(s, p)
        if c == 32 or c == 9 or c == 10 or c == 13 then
            p = string_find(s, "[^ \t\n\r]", p + 1)
            if not p then
                pos = len + 1
                return T_END, nil, len
            end
            c = string_byte(s, p)
        elseif c == nil then
            return T_END, nil, len
        end
        pos = p
        local st = single_tokens[c]
        if st then
            pos = p + 1
            return st, nil, p - 1
        end

        if c == 34 then                                           -- string
            local q = string_find(s, '["\\]', p + 1)
            if q and string_byte(s, q) == 34 then                 -- no escapes
                pos = q + 1
                return T_STRING, string_sub(s, p + 1, q - 1), p - 1
            end
            local parts, np = {}, 0
            local i = p + 1
            while true do
                local q = string_find(s, '["\\]', i)
                if not q then
                    pos = len + 1
                    return T_ERROR, "unexpected end of string", len
                end
                if q > i then
                    np = np + 1
                    parts[np] = string_sub(s, i, q - 1)
                end
                if string_byte(s, q) == 34 then
                    pos = q + 1
                    if np == 1 then return T_STRING, parts[1], p - 1 end
                    return T_STRING, concat(parts, "", 1, np), p - 1
                end
                -- backslash escape
                local e = string_byte(s, q + 1)
                if e == 117 then                                      -- \uXXXX
                    local cp = decode_hex4(s, q + 2)
                    local esclen = 6
                    if cp and cp >= 0xD800 and cp <= 0xDFFF then
                        if cp >= 0xDC00 then
                            cp = nil
                        elseif string_byte(s, q + 6) ~= 92 or string_byte(s, q + 7) ~= 117 then
                            cp = nil
                        else
                            local low = decode_hex4(s, q + 8)
                            if not low or low < 0xDC00 or low > 0xDFFF then
                                cp = nil
                            else
                                cp = (cp - 0xD800) * 1024 + (low - 0xDC00) + 0x10000
                                esclen = 12
                            end
                        end
                    end
                    if not cp then
                        pos = q
                        return T_ERROR, "invalid unicode escape code", q - 1
                    end
                    np = np + 1
                    parts[np] = codepoint_to_utf8(cp)
                    i = q + esclen
                else
                    local ch = escape2char[e]
                    if not ch then
                        pos = q
                        return T_ERROR, "invalid escape code", q - 1
                    end
                    np = np + 1
                    parts[np] = ch
                    i = q + 2
                end
            end
        end

        if c == 45 or (c >= 48 and c <= 57) then                  -- number
            if cfg.decode_invalid_numbers == 0 and is_invalid_number(s, p) then
                return T_ERROR, "invalid number", p - 1
            end
            -- fast path: plain integer not followed by a fraction, exponent
            -- or hex marker
            local _, ie = string_find(s, "^-?%d+", p)
            if ie then
                local nc = string_byte(s, ie + 1)
                if nc ~= 46 and nc ~= 101 and nc ~= 69 and nc ~= 120 and nc ~= 88 then
                    pos = ie + 1
                    return T_NUMBER, tonumber(string_sub(s, p, ie)), p - 1
                end
            end
            local v, e = scan_number(s, p)
            if not v then return T_ERROR, "invalid number", p - 1 end
            pos = e
            return T_NUMBER, v, p - 1
        end

        if c == 116 and string_sub(s, p, p + 3) == "true" then
            pos = p + 4
            return T_BOOLEAN, true, p - 1
        elseif c == 102 and string_sub(s, p, p + 4) == "false" then
            pos = p + 5
            return T_BOOLEAN, false, p - 1
        elseif c == 110 and string_sub(s, p, p + 3) == "null" then
            pos = p + 4
            return T_NULL, nil, p - 1
        end

        if (c == 105 or c == 73 or c == 110 or c == 78 or c == 43)
           and cfg.decode_invalid_numbers ~= 0 and is_invalid_number(s, p) then
            local v, e = scan_number(s, p)
            if not v then return T_ERROR, "invalid number", p - 1 end
            pos = e
            return T_NUMBER, v, p - 1
        end

        return T_ERROR, "invalid token", p - 1
    end

    local function parse_error(expected, ttype, tval, tidx)
        local found
        if ttype == T_ERROR then found = tval else found = token_names[ttype] end
        raise(string_format("Expected %s but found %s at character %d",
                            expected, found, tidx + 1))
    end

    local parse_value

    -- slots: Lua stack slots used by the C decoder before the value is pushed
    parse_value = function(ttype, tval, tidx, depth, slots)
        if ttype == T_STRING or ttype == T_NUMBER or ttype == T_BOOLEAN then
            return tval
        elseif ttype == T_NULL then
            return null
        elseif ttype == T_OBJ_BEGIN then
            depth = depth + 1
            if depth > cfg.decode_max_depth or slots + 3 > LUAI_MAXCSTACK then
                raise(string_format("Found too many nested data structures (%d) at character %d",
                                    depth, pos - 1))
            end
            local t = {}
            local tt, tv, ti = next_token()
            if tt == T_OBJ_END then return t end
            while true do
                if tt ~= T_STRING then parse_error("object key string", tt, tv, ti) end
                local key = tv
                tt, tv, ti = next_token()
                if tt ~= T_COLON then parse_error("colon", tt, tv, ti) end
                tt, tv, ti = next_token()
                t[key] = parse_value(tt, tv, ti, depth, slots + 2)
                tt, tv, ti = next_token()
                if tt == T_OBJ_END then return t end
                if tt ~= T_COMMA then parse_error("comma or object end", tt, tv, ti) end
                tt, tv, ti = next_token()
            end
        elseif ttype == T_ARR_BEGIN then
            depth = depth + 1
            if depth > cfg.decode_max_depth or slots + 2 > LUAI_MAXCSTACK then
                raise(string_format("Found too many nested data structures (%d) at character %d",
                                    depth, pos - 1))
            end
            local t = {}
            local tt, tv, ti = next_token()
            if tt == T_ARR_END then return t end
            local i = 1
            while true do
                t[i] = parse_value(tt, tv, ti, depth, slots + 1)
                tt, tv, ti = next_token()
                if tt == T_ARR_END then return t end
                if tt ~= T_COMMA then parse_error("comma or array end", tt, tv, ti) end
                tt, tv, ti = next_token()
                i = i + 1
            end
        end
        parse_error("value", ttype, tval, tidx)
    end

    local function decode_impl(nargs, str)
        if nargs ~= 1 then argerror(1, "decode", "expected 1 argument") end
        local ts = type(str)
        if ts == "number" then
            str = tostring(str)
        elseif ts ~= "string" then
            argerror(1, "decode", "string expected, got " .. typename(str))
        end
        local n = #str
        if n >= 2 and (string_byte(str, 1) == 0 or string_byte(str, 2) == 0) then
            raise("JSON parser does not support UTF-16 or UTF-32")
        end
        -- the C parser stops at the first NUL byte
        local z = string_find(str, "\0", 1, true)
        if z then str = string_sub(str, 1, z - 1) end

        s, len, pos = str, #str, 1
        local tt, tv, ti = next_token()
        local v = parse_value(tt, tv, ti, 0, 1)
        tt, tv, ti = next_token()
        if tt ~= T_END then parse_error("the end", tt, tv, ti) end
        s = nil
        return v
    end

    ---------------------------------------------------------------------------
    -- Configuration functions
    ---------------------------------------------------------------------------

    local function arg_init(fname, nargs, max)
        if nargs > max then argerror(max + 1, fname, "found too many arguments") end
    end

    local function cfg_encode_sparse_array(nargs, convert, ratio, safe)
        arg_init("encode_sparse_array", nargs, 3)
        local r1
        cfg.sparse_convert, r1 = enum_option("encode_sparse_array", 1, convert,
                                             cfg.sparse_convert, nil, 1)
        cfg.sparse_ratio = integer_option("encode_sparse_array", 2, ratio,
                                          cfg.sparse_ratio, 0, INT_MAX)
        cfg.sparse_safe = integer_option("encode_sparse_array", 3, safe,
                                         cfg.sparse_safe, 0, INT_MAX)
        return r1, cfg.sparse_ratio, cfg.sparse_safe
    end

    -- cjson.<name>([v]) for the integer setting cfg[name]: sets it when v
    -- is given and returns it.
    local function integer_setting(name, min, max)
        return function(nargs, v)
            arg_init(name, nargs, 1)
            cfg[name] = integer_option(name, 1, v, cfg[name], min, max)
            return cfg[name]
        end
    end

    -- cjson.<name>([v]) for the option setting cfg[name] (options "off" and
    -- "on" unless given; true means "on"): sets it when v is given and
    -- returns it as a boolean or an option name.
    local function enum_setting(name, options)
        return function(nargs, v)
            arg_init(name, nargs, 1)
            local r
            cfg[name], r = enum_option(name, 1, v, cfg[name], options, 1)
            return r
        end
    end

    local function cfg_encode_number_precision(nargs, v)
        arg_init("encode_number_precision", nargs, 1)
        cfg.precision = integer_option("encode_number_precision", 1, v,
                                       cfg.precision, 1, 14)
        cfg.number_fmt = "%." .. cfg.precision .. "g"
        return cfg.precision
    end

    local invalid_number_options = { [0] = "off", "on", "null" }

    return {
        encode = wrap1(encode_impl),
        decode = wrap1(decode_impl),
        encode_sparse_array = wrap3(cfg_encode_sparse_array),
        encode_max_depth = wrap1(integer_setting("encode_max_depth", 1, INT_MAX)),
        decode_max_depth = wrap1(integer_setting("decode_max_depth", 1, INT_MAX)),
        encode_number_precision = wrap1(cfg_encode_number_precision),
        encode_keep_buffer = wrap1(enum_setting("encode_keep_buffer")),
        encode_invalid_numbers = wrap1(enum_setting("encode_invalid_numbers",
                                                    invalid_number_options)),
        decode_invalid_numbers = wrap1(enum_setting("decode_invalid_numbers")),
        new = function() return new() end,
        null = null,
        _NAME = "cjson",
        _VERSION = "2.1.0",
    }
end

return new()
