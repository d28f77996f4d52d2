//! The arithmetic of LuaBitOp's `bit` library (the interpreter checks the arguments,
//! `vm::bit_library`): numbers become 32-bit integers as LuaBitOp makes them (rounded, then
//! taken modulo 2^32), results are signed 32-bit numbers.

/// LuaBitOp's conversion: adding 2^52 + 2^51 leaves the rounded integer in the low bits of
/// the double's mantissa.
pub fn tobit(n: f64) -> i32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

/// `bit.tohex(x, n)`: the low |n| hex digits, upper-case for a negative n.
pub fn tohex(x: f64, digits: f64) -> String {
    let mut b = tobit(x) as u32;
    let mut n = tobit(digits);
    let upper = n < 0;
    if upper {
        n = n.wrapping_neg();
    }
    let n = n.clamp(0, 8) as usize;
    if n < 8 {
        b &= (1u32 << (n * 4)).wrapping_sub(1);
    }
    let text = if upper {
        format!("{b:08X}")
    } else {
        format!("{b:08x}")
    };
    text[8 - n..].to_string()
}

/// An operation of one 32-bit argument.
type Op1 = fn(i32) -> i32;
/// An operation of two.
type Op2 = fn(i32, i32) -> i32;

/// The functions of one argument.
pub const UNARY: [(&str, Op1); 3] = [
    ("tobit", |x| x),
    ("bnot", |x| !x),
    ("bswap", |x| x.swap_bytes()),
];

/// The shifts and rotations: (x, n), n taken modulo 32.
pub const SHIFTS: [(&str, Op2); 5] = [
    ("lshift", |x, n| ((x as u32) << (n & 31)) as i32),
    ("rshift", |x, n| ((x as u32) >> (n & 31)) as i32),
    ("arshift", |x, n| x >> (n & 31)),
    ("rol", |x, n| (x as u32).rotate_left((n & 31) as u32) as i32),
    ("ror", |x, n| {
        (x as u32).rotate_right((n & 31) as u32) as i32
    }),
];

/// The functions of one or more arguments, folded left to right.
pub const FOLDS: [(&str, Op2); 3] = [
    ("band", |a, b| a & b),
    ("bor", |a, b| a | b),
    ("bxor", |a, b| a ^ b),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_luabitop() {
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(4294967296.0), 0);
        assert_eq!(tobit(2.5), 2);
        assert_eq!(tobit(3.5), 4);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tohex(255.0, 8.0), "000000ff");
        assert_eq!(tohex(255.0, -4.0), "00FF");
        assert_eq!(tohex(-1.0, 2.0), "ff");
    }
}
