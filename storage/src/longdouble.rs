//! Redis's INCRBYFLOAT works in C `long double`, which on x86-64 is the x87 80-bit extended
//! format (64-bit significand). This module reproduces it exactly: `strtold`-style parsing
//! (as Redis's `string2ld` accepts it), correctly rounded addition, and `%.17Lf` formatting
//! with trailing zeros removed (Redis's `ld2string` in human mode).

use std::cmp::Ordering;

/// Smallest exponent of the least significant bit (subnormals included): 2^-16445.
const MIN_LSB: i64 = -16445;
/// Values at or above 2^16384 overflow to infinity.
const MAX_EXP: i64 = 16384;
/// Redis's buffer for long double strings (MAX_LONG_DOUBLE_CHARS).
const MAX_CHARS: usize = 5 * 1024;

/// A finite x87 extended value: `(-1)^neg * mant * 2^exp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongDouble {
    pub neg: bool,
    pub mant: u64,
    pub exp: i64,
}

/// Result of rounding: finite, or overflowed to infinity.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rounded {
    Finite(LongDouble),
    Inf,
}

/// Little-endian base 2^32 unsigned big integer, just what this module needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut d = Vec::new();
        while v != 0 {
            d.push(v as u32);
            v >>= 32;
        }
        Big(d)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bit_len(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as i64 - 1) * 32 + (32 - top.leading_zeros() as i64),
        }
    }

    fn bit(&self, i: i64) -> bool {
        if i < 0 {
            return false;
        }
        let (w, b) = ((i / 32) as usize, i % 32);
        self.0.get(w).is_some_and(|x| x >> b & 1 == 1)
    }

    /// Whether any bit below position `i` is set.
    fn any_below(&self, i: i64) -> bool {
        if i <= 0 {
            return false;
        }
        let (w, b) = ((i / 32) as usize, i % 32);
        self.0.iter().take(w).any(|&x| x != 0)
            || (b > 0 && self.0.get(w).is_some_and(|x| x & ((1u32 << b) - 1) != 0))
    }

    /// Bits [from, from+64) as a u64.
    fn bits64(&self, from: i64) -> u64 {
        let mut out = 0u64;
        for i in 0..64 {
            if self.bit(from + i) {
                out |= 1 << i;
            }
        }
        out
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for d in &mut self.0 {
            let v = *d as u64 * m as u64 + carry;
            *d = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for d in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = *d as u64 + carry;
            *d = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// Divides in place by a small divisor, returning the remainder.
    fn div_small(&mut self, m: u32) -> u32 {
        let mut rem = 0u64;
        for d in self.0.iter_mut().rev() {
            let v = (rem << 32) | *d as u64;
            *d = (v / m as u64) as u32;
            rem = v % m as u64;
        }
        self.trim();
        rem as u32
    }

    fn shl(&self, bits: i64) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let (words, b) = ((bits / 32) as usize, bits % 32);
        let mut d = vec![0u32; words];
        let mut carry = 0u32;
        for &x in &self.0 {
            if b == 0 {
                d.push(x);
            } else {
                d.push((x << b) | carry);
                carry = x >> (32 - b);
            }
        }
        if carry != 0 {
            d.push(carry);
        }
        Big(d)
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn add(&self, other: &Big) -> Big {
        let mut d = Vec::with_capacity(self.0.len().max(other.0.len()) + 1);
        let mut carry = 0u64;
        for i in 0..self.0.len().max(other.0.len()) {
            let v =
                *self.0.get(i).unwrap_or(&0) as u64 + *other.0.get(i).unwrap_or(&0) as u64 + carry;
            d.push(v as u32);
            carry = v >> 32;
        }
        if carry != 0 {
            d.push(carry as u32);
        }
        Big(d)
    }

    /// self - other, with self >= other.
    fn sub(&self, other: &Big) -> Big {
        let mut d = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = self.0[i] as i64 - *other.0.get(i).unwrap_or(&0) as i64 - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            d.push(v as u32);
        }
        let mut b = Big(d);
        b.trim();
        b
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut s = chunks.pop().unwrap().to_string();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// Rounds `(n + sticky) * 2^exp2` to the extended format, ties to even.
fn round(neg: bool, n: &Big, exp2: i64, sticky: bool) -> Rounded {
    if n.is_zero() {
        return Rounded::Finite(LongDouble {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let bl = n.bit_len();
    let lsb = (bl - 64 + exp2).max(MIN_LSB);
    let shift = lsb - exp2;
    let (mant, mut lsb) = if shift <= 0 {
        (n.bits64(0) << (-shift), lsb)
    } else {
        let mut mant = n.bits64(shift);
        let half = n.bit(shift - 1);
        let rest = sticky || n.any_below(shift - 1);
        let mut lsb = lsb;
        if half && (rest || mant & 1 == 1) {
            let (m, overflow) = mant.overflowing_add(1);
            mant = if overflow {
                lsb += 1;
                1 << 63
            } else {
                m
            };
        }
        (mant, lsb)
    };
    if mant != 0 && 64 - mant.leading_zeros() as i64 + lsb > MAX_EXP {
        return Rounded::Inf;
    }
    if mant == 0 {
        lsb = 0;
    }
    Rounded::Finite(LongDouble {
        neg,
        mant,
        exp: lsb,
    })
}

fn pow10(e: u32) -> Big {
    let mut p = Big::from_u128(1);
    for _ in 0..e / 9 {
        p.mul_small(1_000_000_000);
    }
    p.mul_small(10u32.pow(e % 9));
    p
}

impl LongDouble {
    pub fn is_zero(&self) -> bool {
        self.mant == 0
    }

    /// Parses like Redis's `string2ld`: `strtold` on the whole string, refusing leading
    /// space, trailing bytes, NaN, and overflow or underflow to zero.
    /// Infinity ("inf") parses; `None` means "not a valid float".
    pub fn parse(s: &[u8]) -> Option<Result<LongDouble, bool>> {
        if s.is_empty() || s.len() >= MAX_CHARS || is_c_space(s[0]) {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(Err(neg));
        }
        let rounded = if lower.starts_with(b"0x") {
            parse_hex(neg, &body[2..])?
        } else {
            parse_decimal(neg, body)?
        };
        match rounded {
            Rounded::Inf => None,
            Rounded::Finite(v) => Some(Ok(v)),
        }
    }

    /// Exact sum rounded to the extended format; `None` when it overflows.
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        let emin = self.exp.min(other.exp);
        let a = Big::from_u128(self.mant as u128).shl(self.exp - emin);
        let b = Big::from_u128(other.mant as u128).shl(other.exp - emin);
        let (neg, sum) = if self.neg == other.neg {
            (self.neg, a.add(&b))
        } else {
            match a.cmp(&b) {
                Ordering::Greater => (self.neg, a.sub(&b)),
                Ordering::Less => (other.neg, b.sub(&a)),
                Ordering::Equal => (false, Big::default()),
            }
        };
        match round(neg, &sum, emin, false) {
            Rounded::Finite(v) => Some(v),
            Rounded::Inf => None,
        }
    }

    /// `%.17Lf`, then trailing zeros (and a trailing dot) removed, and "-0" made "0".
    pub fn to_human_string(self) -> String {
        let mut s = String::new();
        if self.neg {
            s.push('-');
        }
        if self.exp >= 0 {
            s.push_str(&Big::from_u128(self.mant as u128).shl(self.exp).to_decimal());
        } else {
            let shift = -self.exp;
            let (mut int, frac) = if shift >= 64 {
                (0u128, self.mant as u128)
            } else {
                (
                    (self.mant >> shift) as u128,
                    (self.mant & ((1u64 << shift) - 1)) as u128,
                )
            };
            let scaled = frac * 100_000_000_000_000_000u128;
            let mut digits = 0u128;
            if shift < 122 {
                digits = scaled >> shift;
                let rem = scaled & ((1u128 << shift) - 1);
                let half = 1u128 << (shift - 1);
                if rem > half || (rem == half && digits & 1 == 1) {
                    digits += 1;
                }
                if digits == 100_000_000_000_000_000 {
                    digits = 0;
                    int += 1;
                }
            }
            s.push_str(&format!("{int}.{digits:017}"));
            let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
            s.truncate(trimmed);
        }
        if s == "-0" {
            s = "0".into();
        }
        s
    }
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn parse_decimal(neg: bool, s: &[u8]) -> Option<Rounded> {
    let mut i = 0;
    let mut digits = Big::default();
    let mut ndigits = 0usize;
    let mut frac = 0i64;
    let mut seen_digit = false;
    let push = |d: u8, digits: &mut Big| {
        if !(digits.is_zero() && d == 0) {
            digits.mul_small(10);
            digits.add_small(d as u32);
        }
    };
    while i < s.len() && s[i].is_ascii_digit() {
        push(s[i] - b'0', &mut digits);
        seen_digit = true;
        ndigits += 1;
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            push(s[i] - b'0', &mut digits);
            seen_digit = true;
            frac += 1;
            ndigits += 1;
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    let mut exp10 = 0i64;
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        let eneg = j < s.len() && s[j] == b'-';
        if j < s.len() && (s[j] == b'-' || s[j] == b'+') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            while j < s.len() && s[j].is_ascii_digit() {
                exp10 = (exp10 * 10 + (s[j] - b'0') as i64).min(1_000_000);
                j += 1;
            }
            if eneg {
                exp10 = -exp10;
            }
            i = j;
        }
    }
    if i != s.len() {
        return None;
    }
    if digits.is_zero() {
        return Some(round(neg, &digits, 0, false));
    }
    let e = exp10 - frac;
    if e >= 0 {
        if e + ndigits as i64 > 5000 {
            return Some(Rounded::Inf);
        }
        let mut n = digits;
        let p = pow10(e as u32);
        n = mul_big(&n, &p);
        return Some(round(neg, &n, 0, false));
    }
    if -e - ndigits as i64 > 5000 {
        // Underflows to zero: strtold reports ERANGE and string2ld refuses it.
        return None;
    }
    match divide_fast(neg, &digits, (-e) as u32) {
        Some(r) => Some(r),
        None => divide_exact(neg, &digits, (-e) as u32),
    }
}

/// `digits / 10^p10` rounded, in u128 arithmetic when the digits fit in 64 bits and `10^p10`
/// in 62 ("1.5", "3.14159", a price...): the quotient of the digits shifted to 127 bits then
/// has at least 65 (the significand and the rounding bit), the remainder says whether anything
/// is below. What `divide_exact`'s bit-at-a-time division gives, in a few dozen instructions
/// (INCRBYFLOAT parsed its increment and the stored value through it: ~47,000 per call).
fn divide_fast(neg: bool, digits: &Big, p10: u32) -> Option<Rounded> {
    if digits.bit_len() > 64 || p10 > 18 {
        return None;
    }
    let d = digits.bits64(0) as u128;
    let p = 10u128.pow(p10);
    let k = 127 - digits.bit_len();
    let shifted = d << k;
    let (q, rem) = (shifted / p, shifted % p);
    Some(match round(neg, &Big::from_u128(q), -k, rem != 0) {
        Rounded::Finite(v) if v.is_zero() => return None,
        r => r,
    })
}

/// `digits / 10^p10` rounded, by long division of big integers.
fn divide_exact(neg: bool, digits: &Big, p10: u32) -> Option<Rounded> {
    let p = pow10(p10);
    let k = (p.bit_len() - digits.bit_len() + 66).max(0);
    let mut rem = digits.shl(k);
    let qbits = rem.bit_len() - p.bit_len() + 1;
    let mut q = Big::default();
    for i in (0..qbits.max(0)).rev() {
        let t = p.shl(i);
        if t.cmp(&rem) != Ordering::Greater {
            rem = rem.sub(&t);
            q = q.add(&Big::from_u128(1).shl(i));
        }
    }
    match round(neg, &q, -k, !rem.is_zero()) {
        Rounded::Finite(v) if v.is_zero() => None,
        r => Some(r),
    }
}

fn mul_big(a: &Big, b: &Big) -> Big {
    let mut out = vec![0u32; a.0.len() + b.0.len() + 1];
    for (i, &x) in a.0.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in b.0.iter().enumerate() {
            let v = out[i + j] as u64 + x as u64 * y as u64 + carry;
            out[i + j] = v as u32;
            carry = v >> 32;
        }
        let mut k = i + b.0.len();
        while carry != 0 {
            let v = out[k] as u64 + carry;
            out[k] = v as u32;
            carry = v >> 32;
            k += 1;
        }
    }
    let mut r = Big(out);
    r.trim();
    r
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<Rounded> {
    let mut i = 0;
    let mut n = Big::default();
    let mut seen = false;
    let mut exp2 = 0i64;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        n = n.shl(4);
        n.add_small((s[i] as char).to_digit(16)?);
        seen = true;
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_hexdigit() {
            n = n.shl(4);
            n.add_small((s[i] as char).to_digit(16)?);
            exp2 -= 4;
            seen = true;
            i += 1;
        }
    }
    if !seen {
        // "0x" alone: strtold reads the "0" and stops at "x".
        return None;
    }
    n.trim();
    if i < s.len() && (s[i] == b'p' || s[i] == b'P') {
        let mut j = i + 1;
        let eneg = j < s.len() && s[j] == b'-';
        if j < s.len() && (s[j] == b'-' || s[j] == b'+') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            let mut p = 0i64;
            while j < s.len() && s[j].is_ascii_digit() {
                p = (p * 10 + (s[j] - b'0') as i64).min(1_000_000);
                j += 1;
            }
            exp2 += if eneg { -p } else { p };
            i = j;
        }
    }
    if i != s.len() {
        return None;
    }
    if n.is_zero() {
        return Some(round(neg, &n, 0, false));
    }
    if exp2 + n.bit_len() > MAX_EXP + 1 {
        return Some(Rounded::Inf);
    }
    if exp2 + n.bit_len() < MIN_LSB - 2 {
        return None;
    }
    match round(neg, &n, exp2, false) {
        Rounded::Finite(v) if v.is_zero() => None,
        r => Some(r),
    }
}

#[cfg(test)]
mod tests {
    use super::{divide_exact, divide_fast, Big, LongDouble};

    fn ld(s: &str) -> LongDouble {
        LongDouble::parse(s.as_bytes()).unwrap().unwrap()
    }

    fn add(a: &str, b: &str) -> String {
        ld(a).checked_add(ld(b)).unwrap().to_human_string()
    }

    #[test]
    fn matches_x87_redis_outputs() {
        assert_eq!(add("0.1", "0.2"), "0.3");
        assert_eq!(add("3", "1.1"), "4.1");
        assert_eq!(add("-0.4", "3.0e3"), "2999.60000000000000009");
        assert_eq!(add("10.5", "0.1"), "10.6");
        assert_eq!(add("1", "0x1p-3"), "1.125");
        assert_eq!(add("0", "1e-4940"), "0");
        assert!(add("1e4000", "1").starts_with(
            "99999999999999999999654638730996237849324925835069576313015083330432619433063423"
        ));
        assert_eq!(
            ld("1.23456789012345678").to_human_string(),
            "1.23456789012345678"
        );
        assert_eq!(ld("5.0e3").to_human_string(), "5000");
        assert_eq!(ld("-0.0").to_human_string(), "0");
        assert_eq!(ld("0x10").to_human_string(), "16");
        assert!(ld("1e400")
            .to_human_string()
            .starts_with("1000000000000000000028188"));
    }

    /// The u128 short cut rounds exactly as the long division does.
    #[test]
    fn the_short_division_matches_the_long_one() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for i in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Digits of every length up to 64 bits, often near powers of two and ten.
            let d = match i % 4 {
                0 => seed,
                1 => seed >> (seed % 64),
                2 => 10u64.pow((seed % 20) as u32).wrapping_sub(seed % 3),
                _ => (1u64 << (seed % 64)).wrapping_add(seed % 5).wrapping_sub(2),
            };
            if d == 0 {
                continue;
            }
            let digits = Big::from_u128(d as u128);
            for p10 in [1, 2, 5, 17, 18, (seed % 19) as u32] {
                let neg = seed & 1 == 1;
                assert_eq!(
                    divide_fast(neg, &digits, p10),
                    divide_exact(neg, &digits, p10),
                    "{d} / 10^{p10}"
                );
            }
        }
        assert!(divide_fast(false, &Big::from_u128(1 << 70), 1).is_none());
        assert!(divide_fast(false, &Big::from_u128(15), 19).is_none());
    }

    #[test]
    fn refuses_what_string2ld_refuses() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "nan", "0x", ".", "1e99999", "1e-99999",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        assert_eq!(LongDouble::parse(b"-inf"), Some(Err(true)));
    }
}
