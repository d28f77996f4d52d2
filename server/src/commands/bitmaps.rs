//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.

use bytes::Bytes;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{notify, Entry, StrValue, Value};

use super::util::{eq_ignore_case, int_arg, SYNTAX};
use super::{commands, k, keyed, Writes};
use crate::keyctx::{KeyCtx, WRONGTYPE};
use crate::protocol::Reply;

commands! {
    pub static COMMANDS;
    "setbit", 4, "write denyoom", k(1, 1, 1), "bitmap", "2.2.0", keyed(setbit), "Sets or clears the bit at offset in the string value stored at key";
    "getbit", 3, "readonly fast", k(1, 1, 1), "bitmap", "2.2.0", keyed(getbit), "Returns the bit value at offset in the string value stored at key";
    "bitcount", -2, "readonly", k(1, 1, 1), "bitmap", "2.6.0", keyed(bitcount), "Count set bits in a string";
    "bitpos", -3, "readonly", k(1, 1, 1), "bitmap", "2.8.7", keyed(bitpos), "Find first bit set or clear in a string";
    "bitop", -4, "write denyoom", k(2, -1, 1), "bitmap", "2.6.0", keyed(bitop), "Perform bitwise operations between strings", writes(Writes::First);
    "bitfield", -2, "write denyoom", k(1, 1, 1), "bitmap", "3.2.0", keyed(bitfield), "Perform arbitrary bitfield integer operations on strings";
    "bitfield_ro", -2, "readonly fast", k(1, 1, 1), "bitmap", "6.0.0", keyed(bitfield_ro), "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD";
}

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

fn max_string(ctx: &KeyCtx) -> u64 {
    ctx.server
        .hot
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Parses a bit offset as Redis's getBitOffsetFromArgument: `#N` means N * `bits` when `bits`
/// is given (BITFIELD); the byte it falls in must be below proto-max-bulk-len.
fn bit_offset(ctx: &KeyCtx, arg: &[u8], bits: Option<u32>) -> Result<u64, Reply> {
    let hash = bits.is_some() && arg.first() == Some(&b'#');
    let digits = if hash { &arg[1..] } else { arg };
    let mut v = parse_strict_i64(digits).ok_or_else(|| Reply::err(BAD_OFFSET))?;
    if hash {
        v = v.wrapping_mul(bits.unwrap_or(1) as i64);
    }
    if v < 0 || (v as u64 >> 3) >= max_string(ctx) {
        return Err(Reply::err(BAD_OFFSET));
    }
    Ok(v as u64)
}

/// The string at `key` for reading, as bytes: Ok(None) when absent.
fn read_bytes(ctx: &mut KeyCtx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    Ok(ctx.read_str(key)?.map(StrValue::to_bytes))
}

/// Redis's lookupStringForBitCommand: the string at `key`, created or zero-padded so that
/// bit `max_bit` exists, and whether it was (created or grown: "dirty").
fn string_for_write<'a>(
    ctx: &'a mut KeyCtx,
    key: &[u8],
    max_bit: u64,
) -> Result<(&'a mut Vec<u8>, bool), Reply> {
    let need = (max_bit >> 3) as usize + 1;
    let mut dirty = false;
    match ctx.write(key) {
        None => {
            dirty = true;
            let clock = ctx.clock;
            ctx.db(key)
                .set(key, Value::Str(StrValue::owned(vec![0; need])), 0, clock);
        }
        Some(Entry {
            value: Value::Str(_),
            ..
        }) => {}
        Some(_) => return Err(Reply::err(WRONGTYPE)),
    }
    match ctx.write(key) {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => {
            let buf = s.make_owned();
            if buf.len() < need {
                buf.resize(need, 0);
                dirty = true;
            }
            Ok((buf, dirty))
        }
        _ => unreachable!("string just created"),
    }
}

fn bit_at(s: &[u8], bit: u64) -> u8 {
    let byte = (bit >> 3) as usize;
    match s.get(byte) {
        Some(b) => (b >> (7 - (bit & 7))) & 1,
        None => 0,
    }
}

pub fn setbit(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let offset = match bit_offset(ctx, &args[2], None) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let on = match parse_strict_i64(&args[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return Reply::err(BAD_BIT),
    };
    let (buf, dirty) = match string_for_write(ctx, &args[1], offset) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let byte = (offset >> 3) as usize;
    let shift = 7 - (offset & 7);
    let old = (buf[byte] >> shift) & 1;
    buf[byte] = (buf[byte] & !(1 << shift)) | (on << shift);
    // As Redis 7.0: an event only when the string was created or grown or the bit changed.
    if dirty || old != on {
        ctx.notify(notify::STRING, "setbit", &args[1]);
    } else {
        ctx.unchanged = true;
    }
    Reply::Int(old as i64)
}

pub fn getbit(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let offset = match bit_offset(ctx, &args[2], None) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match ctx.read_str(&args[1]) {
        Ok(Some(s)) => Reply::Int(bit_at(&s.as_slice(), offset) as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

/// Clamps a start/end pair as BITCOUNT and BITPOS do, against `total` units.
fn clamp_range(mut start: i64, mut end: i64, total: i64) -> (i64, i64) {
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    (start, end)
}

fn unit_is_bit(arg: &[u8]) -> Result<bool, Reply> {
    super::util::either(arg, "bit", "byte")
}

pub fn bitcount(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let s = match read_bytes(ctx, &args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    // The range in bits, inclusive.
    let (first, last) = match args.len() {
        2 => (0, len * 8 - 1),
        4 | 5 => {
            let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            if start < 0 && end < 0 && start > end {
                return Reply::Int(0);
            }
            let is_bit = if args.len() == 5 {
                match unit_is_bit(&args[4]) {
                    Ok(b) => b,
                    Err(e) => return e,
                }
            } else {
                false
            };
            if is_bit {
                clamp_range(start, end, len * 8)
            } else {
                let (s, e) = clamp_range(start, end, len);
                (s * 8, e * 8 + 7)
            }
        }
        _ => return Reply::err(SYNTAX),
    };
    if first > last {
        return Reply::Int(0);
    }
    Reply::Int(count_bits(&s, first as u64, last as u64) as i64)
}

/// Set bits in the inclusive bit range [first, last].
fn count_bits(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut n: u64 = s[fb..=lb].iter().map(|b| b.count_ones() as u64).sum();
    let head = s[fb] & !(0xffu8 >> (first & 7));
    let tail = if last & 7 == 7 {
        0
    } else {
        s[lb] & (0xffu8 >> ((last & 7) + 1))
    };
    n -= head.count_ones() as u64 + tail.count_ones() as u64;
    n
}

pub fn bitpos(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let bit = match int_arg(&args[2]) {
        Ok(v @ (0 | 1)) => v as u8,
        Ok(_) => return Reply::err("ERR The bit argument must be 1 or 0."),
        Err(e) => return e,
    };
    let s = match read_bytes(ctx, &args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(if bit == 1 { -1 } else { 0 }),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    let mut end_given = false;
    let (first, last) = match args.len() {
        3 => (0, len * 8 - 1),
        4..=6 => {
            let start = match int_arg(&args[3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let is_bit = if args.len() == 6 {
                match unit_is_bit(&args[5]) {
                    Ok(b) => b,
                    Err(e) => return e,
                }
            } else {
                false
            };
            let total = if is_bit { len * 8 } else { len };
            let end = if args.len() >= 5 {
                end_given = true;
                match int_arg(&args[4]) {
                    Ok(v) => v,
                    Err(e) => return e,
                }
            } else {
                total - 1
            };
            let (s, e) = clamp_range(start, end, total);
            if is_bit {
                (s, e)
            } else {
                (s * 8, e * 8 + 7)
            }
        }
        _ => return Reply::err(SYNTAX),
    };
    if first > last {
        return Reply::Int(-1);
    }
    match find_bit(&s, first as u64, last as u64, bit) {
        Some(p) => Reply::Int(p as i64),
        None if bit == 0 && !end_given => Reply::Int(last + 1),
        None => Reply::Int(-1),
    }
}

/// The first bit equal to `bit` in the inclusive range [first, last].
fn find_bit(s: &[u8], first: u64, last: u64, bit: u8) -> Option<u64> {
    let skip = if bit == 1 { 0u8 } else { 0xff };
    let mut pos = first;
    while pos <= last {
        if pos & 7 == 0 && pos + 7 <= last {
            let b = s[(pos >> 3) as usize];
            if b == skip {
                pos += 8;
                continue;
            }
        }
        if bit_at(s, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

pub fn bitop(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    #[derive(PartialEq, Clone, Copy)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = if eq_ignore_case(&args[1], "and") {
        Op::And
    } else if eq_ignore_case(&args[1], "or") {
        Op::Or
    } else if eq_ignore_case(&args[1], "xor") {
        Op::Xor
    } else if eq_ignore_case(&args[1], "not") {
        Op::Not
    } else {
        return Reply::err(SYNTAX);
    };
    if op == Op::Not && args.len() != 4 {
        return Reply::err("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        match read_bytes(ctx, key) {
            Ok(v) => sources.push(v.unwrap_or_default()),
            Err(e) => return e,
        }
    }
    let maxlen = sources.iter().map(Bytes::len).max().unwrap_or(0);
    let dest = &args[2];
    if maxlen == 0 {
        if ctx.remove(dest).is_some() {
            ctx.notify(notify::GENERIC, "del", dest);
        }
        return Reply::Int(0);
    }
    let mut out = vec![0u8; maxlen];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = |s: &Bytes| s.get(i).copied().unwrap_or(0);
        *o = match op {
            Op::Not => !byte(&sources[0]),
            Op::And => sources.iter().fold(0xff, |acc, s| acc & byte(s)),
            Op::Or => sources.iter().fold(0, |acc, s| acc | byte(s)),
            Op::Xor => sources.iter().fold(0, |acc, s| acc ^ byte(s)),
        };
    }
    // Redis stores the result as a raw string, whatever it looks like.
    ctx.store(dest, Value::Str(StrValue::owned(out)), 0);
    ctx.notify(notify::STRING, "set", dest);
    Reply::Int(maxlen as i64)
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    Incrby,
}

struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

fn field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(Reply::err(BAD_TYPE)),
    };
    match parse_strict_i64(&arg[1..]) {
        Some(b) if b >= 1 && ((signed && b <= 64) || (!signed && b <= 63)) => {
            Ok((signed, b as u32))
        }
        _ => Err(Reply::err(BAD_TYPE)),
    }
}

fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        v = (v << 1) | bit_at(s, offset + i) as u64;
    }
    v
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(s, offset, bits);
    if bits == 64 {
        v as i64
    } else if v & (1 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

fn set_unsigned(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let bit = ((value >> (bits as u64 - 1 - i)) & 1) as u8;
        let pos = offset + i;
        let byte = (pos >> 3) as usize;
        let shift = 7 - (pos & 7);
        s[byte] = (s[byte] & !(1 << shift)) | (bit << shift);
    }
}

/// Redis's checkSignedBitfieldOverflow: Some(new value) to store (wrapped or saturated as asked),
/// None when the operation fails.
fn signed_result(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max: i128 = if bits == 64 {
        i64::MAX as i128
    } else {
        (1i128 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let sum = value as i128 + incr as i128;
    if sum >= min && sum <= max {
        return Some(sum as i64);
    }
    match ow {
        Ow::Fail => None,
        Ow::Sat => Some(if sum > max { max } else { min } as i64),
        Ow::Wrap => {
            let c = (value as u64).wrapping_add(incr as u64);
            Some(if bits < 64 {
                let mask = u64::MAX << bits;
                if c & (1 << (bits - 1)) != 0 {
                    (c | mask) as i64
                } else {
                    (c & !mask) as i64
                }
            } else {
                c as i64
            })
        }
    }
}

use Overflow as Ow;

/// Redis's checkUnsignedBitfieldOverflow. `value` is the current value (INCRBY) or the new
/// value cast to unsigned (SET, with `incr` 0), so SET of a negative number overflows upwards.
fn unsigned_result(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max: u64 = (1u64 << bits) - 1;
    let high = value > max || (incr > 0 && incr as i128 > max as i128 - value as i128);
    let low = !high && incr < 0 && (incr as i128) < -(value as i128);
    if !high && !low {
        return Some(value.wrapping_add(incr as u64));
    }
    match ow {
        Ow::Fail => None,
        Ow::Sat => Some(if high { max } else { 0 }),
        Ow::Wrap => Some(value.wrapping_add(incr as u64) & max),
    }
}

fn bitfield_generic(ctx: &mut KeyCtx, args: &[Bytes], readonly_cmd: bool) -> Reply {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest: u64 = 0;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let sub = &args[j];
        let op = if eq_ignore_case(sub, "get") && rem >= 2 {
            FieldOp::Get
        } else if eq_ignore_case(sub, "set") && rem >= 3 {
            FieldOp::Set
        } else if eq_ignore_case(sub, "incrby") && rem >= 3 {
            FieldOp::Incrby
        } else if eq_ignore_case(sub, "overflow") && rem >= 1 {
            let t = &args[j + 1];
            overflow = if eq_ignore_case(t, "wrap") {
                Overflow::Wrap
            } else if eq_ignore_case(t, "sat") {
                Overflow::Sat
            } else if eq_ignore_case(t, "fail") {
                Overflow::Fail
            } else {
                return Reply::err("ERR Invalid OVERFLOW type specified");
            };
            j += 2;
            continue;
        } else {
            return Reply::err(SYNTAX);
        };
        let (signed, bits) = match field_type(&args[j + 1]) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let offset = match bit_offset(ctx, &args[j + 2], Some(bits)) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let mut value = 0;
        if op != FieldOp::Get {
            readonly = false;
            highest = highest.max(offset + bits as u64 - 1);
            value = match int_arg(&args[j + 3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
        }
        ops.push(Field {
            op,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    let key = &args[1];
    if readonly {
        let s = match read_bytes(ctx, key) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => return e,
        };
        return Reply::Array(
            ops.iter()
                .map(|f| {
                    if f.signed {
                        Reply::Int(get_signed(&s, f.offset, f.bits))
                    } else {
                        Reply::Int(get_unsigned(&s, f.offset, f.bits) as i64)
                    }
                })
                .collect(),
        );
    }
    if readonly_cmd {
        return Reply::err("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let (buf, dirty) = match string_for_write(ctx, key, highest) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut out = Vec::with_capacity(ops.len());
    let mut changes = 0;
    for f in &ops {
        match (f.op, f.signed) {
            (FieldOp::Get, true) => out.push(Reply::Int(get_signed(buf, f.offset, f.bits))),
            (FieldOp::Get, false) => {
                out.push(Reply::Int(get_unsigned(buf, f.offset, f.bits) as i64))
            }
            (op, true) => {
                let old = get_signed(buf, f.offset, f.bits);
                let new = if op == FieldOp::Incrby {
                    signed_result(old, f.value, f.bits, f.overflow)
                } else {
                    signed_result(f.value, 0, f.bits, f.overflow)
                };
                match new {
                    Some(new) => {
                        out.push(Reply::Int(if op == FieldOp::Incrby { new } else { old }));
                        set_unsigned(buf, f.offset, f.bits, new as u64);
                        changes += usize::from(dirty || old != new);
                    }
                    None => out.push(Reply::Nil),
                }
            }
            (op, false) => {
                let old = get_unsigned(buf, f.offset, f.bits);
                let new = if op == FieldOp::Incrby {
                    unsigned_result(old, f.value, f.bits, f.overflow)
                } else {
                    unsigned_result(f.value as u64, 0, f.bits, f.overflow)
                };
                match new {
                    Some(new) => {
                        let shown = if op == FieldOp::Incrby { new } else { old };
                        out.push(Reply::Int(shown as i64));
                        set_unsigned(buf, f.offset, f.bits, new);
                        changes += usize::from(dirty || old != new);
                    }
                    None => out.push(Reply::Nil),
                }
            }
        }
    }
    // As Redis 7.0: a change only when the string was created or grown or a field changed.
    if changes > 0 {
        ctx.notify(notify::STRING, "setbit", key);
    } else {
        ctx.unchanged = true;
    }
    Reply::Array(out)
}

pub fn bitfield(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    bitfield_generic(ctx, args, false)
}

pub fn bitfield_ro(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    bitfield_generic(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_find_bits_in_ranges() {
        let s = [0b1010_0000u8, 0xff, 0x01];
        assert_eq!(count_bits(&s, 0, 23), 11);
        assert_eq!(count_bits(&s, 1, 2), 1);
        assert_eq!(count_bits(&s, 2, 9), 3);
        assert_eq!(count_bits(&s, 23, 23), 1);
        assert_eq!(find_bit(&s, 1, 23, 1), Some(2));
        assert_eq!(find_bit(&s, 8, 22, 0), Some(16));
        assert_eq!(find_bit(&s, 8, 15, 0), None);
    }

    #[test]
    fn bitfield_overflow_rules() {
        assert_eq!(signed_result(127, 1, 8, Ow::Wrap), Some(-128));
        assert_eq!(signed_result(127, 1, 8, Ow::Sat), Some(127));
        assert_eq!(signed_result(-128, -1, 8, Ow::Sat), Some(-128));
        assert_eq!(signed_result(127, 1, 8, Ow::Fail), None);
        assert_eq!(signed_result(i64::MAX, 1, 64, Ow::Wrap), Some(i64::MIN));
        assert_eq!(unsigned_result(255, 1, 8, Ow::Wrap), Some(0));
        assert_eq!(unsigned_result(0, -1, 8, Ow::Sat), Some(0));
        assert_eq!(unsigned_result(-1i64 as u64, 0, 8, Ow::Sat), Some(255));
        assert_eq!(unsigned_result(-1i64 as u64, 0, 8, Ow::Wrap), Some(255));
        let mut buf = [0u8; 3];
        set_unsigned(&mut buf, 5, 8, 0xff);
        assert_eq!(buf, [0b0000_0111, 0b1111_1000, 0]);
        assert_eq!(get_unsigned(&buf, 5, 8), 0xff);
        assert_eq!(get_signed(&buf, 5, 8), -1);
    }
}
