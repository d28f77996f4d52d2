-- ieee754.lua - IEEE 754 single and double precision encoding for the pure
-- Lua 5.1 cmsgpack and struct modules.
--
-- The chunk takes no arguments and returns a table of four functions.  The
-- server passes that table to the cmsgpack and struct chunks; scripts never
-- see it.
--
--   float32_bits(d)      -> bits of (float)d as an unsigned 32 bit integer,
--                           and whether the conversion was exact
--                           (d == (double)(float)d)
--   float32_value(bits)  -> the number with those float bits
--   float64_bits(d)      -> bits of d as two unsigned 32 bit halves (hi, lo)
--   float64_value(hi, lo) -> the number with those double bits
--
-- Lua 5.1 numbers are doubles, so the bits are built with math.frexp and
-- math.ldexp.  float32_bits rounds to nearest, ties to even, as the x86_64
-- double-to-float conversion does.  NaNs keep their sign; their payload
-- becomes the quiet NaN the C code would produce.

local string_byte, string_format = string.byte, string.format
local floor, huge, frexp, ldexp = math.floor, math.huge, math.frexp, math.ldexp

local TWO32 = 4294967296
local SIGN_BIT = 0x80000000           -- in a float, or in a double's high word

local function round_half_even(x)
    local f = floor(x)
    local d = x - f
    if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
    return f
end

-- printf() shows the sign of a NaN ("-nan")
local function nan_is_negative(d)
    return string_byte(string_format("%f", d), 1) == 45
end

-- The sign bit and the magnitude of d (not a NaN); -0 counts as negative.
local function split_sign(d)
    if d < 0 or (d == 0 and 1 / d < 0) then return SIGN_BIT, -d end
    return 0, d
end

-- The number with the given sign (boolean), biased exponent E and fraction
-- f, in a format with 'fbits' fraction bits and exponent bias 'bias'.
local function compose(negative, E, f, fbits, bias)
    local v
    if E == 2 * bias + 1 then                 -- exponent all ones
        if f ~= 0 then
            local nan = 0 / 0
            if nan_is_negative(nan) == negative then return nan end
            return -nan
        end
        v = huge
    elseif E == 0 then                        -- zero or subnormal
        v = ldexp(f, 1 - bias - fbits)
    else
        v = ldexp(f + ldexp(1, fbits), E - bias - fbits)
    end
    if negative then v = -v end
    return v
end

local function float32_bits(d)
    if d ~= d then
        return nan_is_negative(d) and 0xFFC00000 or 0x7FC00000, false
    end
    local sign
    sign, d = split_sign(d)
    if d == huge then return sign + 0x7F800000, true end
    if d == 0 then return sign, true end
    local m, e = frexp(d)             -- d = m * 2^e, 0.5 <= m < 1
    local E = e + 126                 -- biased exponent
    if E >= 1 then
        local mant = m * 16777216     -- 2^24, exact
        local r = round_half_even(mant)
        local exact = (r == mant)
        if r == 16777216 then
            r = 8388608
            E = E + 1
        end
        if E >= 255 then return sign + 0x7F800000, false end
        return sign + E * 8388608 + (r - 8388608), exact
    end
    local f = ldexp(d, 149)           -- subnormal: d = f * 2^-149
    local r = round_half_even(f)
    return sign + r, (r == f)         -- r == 2^23 encodes the smallest normal
end

local function float32_value(bits)
    local negative = bits >= SIGN_BIT
    if negative then bits = bits - SIGN_BIT end
    return compose(negative, floor(bits / 8388608), bits % 8388608, 23, 127)
end

local function float64_bits(d)
    if d ~= d then
        return nan_is_negative(d) and 0xFFF80000 or 0x7FF80000, 0
    end
    local sign
    sign, d = split_sign(d)
    if d == huge then return sign + 0x7FF00000, 0 end
    if d == 0 then return sign, 0 end
    local m, e = frexp(d)
    local E = e + 1022
    local mant
    if E >= 1 then
        mant = m * 9007199254740992 - 4503599627370496   -- m*2^53 - 2^52
    else
        E = 0
        mant = ldexp(d, 1074)
    end
    local hi = floor(mant / TWO32)
    return sign + E * 1048576 + hi, mant - hi * TWO32
end

local function float64_value(hi, lo)
    local negative = hi >= SIGN_BIT
    if negative then hi = hi - SIGN_BIT end
    return compose(negative, floor(hi / 1048576), (hi % 1048576) * TWO32 + lo, 52, 1023)
end

return {
    float32_bits = float32_bits,
    float32_value = float32_value,
    float64_bits = float64_bits,
    float64_value = float64_value,
}
