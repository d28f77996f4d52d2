//! Redis's RDB encodings that DUMP payloads use: lengths, strings (plain, as integers, or LZF
//! compressed), and the payload's footer (RDB version, CRC-64 of everything before it).
//! FUNCTION DUMP and RESTORE use them now; DUMP/RESTORE of keys and RDB files build on them.

use std::sync::atomic::{AtomicBool, Ordering};

/// The RDB version Redis 7.0 writes.
pub const RDB_VERSION: u16 = 10;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Appends an RDB length.
pub fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends an RDB string, uncompressed (any RDB reader takes it).
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends an RDB string as Redis's `rdbSaveRawString` writes it: a canonical integer that
/// fits 32 bits (at most 11 characters) as an integer encoding; with `compress`
/// (`rdbcompression yes`) a string over 20 bytes LZF-compressed when that saves at least 4
/// bytes; anything else plain.
pub fn put_encoded_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = warpengine_storage::value::parse_strict_i64(s) {
            if put_int_encoding(out, v) {
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        if let Some(packed) = lzf_compress(s, s.len() - 4) {
            out.push(0xc0 | ENC_LZF);
            put_len(out, packed.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    put_string(out, s);
}

/// Appends `v` in the smallest integer string encoding; false (nothing written) when it
/// needs more than 32 bits.
fn put_int_encoding(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[0xc0 | ENC_INT8, v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Reads RDB values from a buffer; every read fails (None) past its end.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The next `n` bytes as they are.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    /// A length, or (for the special encodings) `Err(encoding)`.
    fn len_or_encoding(&mut self) -> Option<Result<u64, u8>> {
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => Ok((b & 0x3f) as u64),
            1 => Ok(((b & 0x3f) as u64) << 8 | self.byte()? as u64),
            2 if b == 0x80 => Ok(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as u64),
            2 if b == 0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            2 => return None,
            _ => Err(b & 0x3f),
        })
    }

    pub fn len(&mut self) -> Option<u64> {
        self.len_or_encoding()?.ok()
    }

    /// A string in any of its encodings.
    pub fn string(&mut self) -> Option<Vec<u8>> {
        match self.len_or_encoding()? {
            Ok(len) => Some(self.take(usize::try_from(len).ok()?)?.to_vec()),
            Err(ENC_INT8) => Some((self.take(1)?[0] as i8).to_string().into_bytes()),
            Err(ENC_INT16) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(ENC_INT32) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(ENC_LZF) => {
                let compressed = usize::try_from(self.len()?).ok()?;
                let plain = usize::try_from(self.len()?).ok()?;
                lzf_decompress(self.take(compressed)?, plain)
            }
            Err(_) => None,
        }
    }
}

/// LZF decompression (liblzf's format, as Redis writes compressed strings); None for input
/// that is not such data or does not give exactly `len` bytes.
pub fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    // The declared length is the payload's word: reserve no more than the input could
    // expand to (a 3-byte back-reference gives at most 264 bytes).
    let mut out: Vec<u8> = Vec::with_capacity(len.min(input.len().saturating_mul(132)));
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            out.extend_from_slice(input.get(ip..ip + run)?);
            ip += run;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(ip)? as usize;
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(ip)? as usize + 1;
            ip += 1;
            let start = out.len().checked_sub(back)?;
            for i in 0..n + 2 {
                let b = out[start + i];
                out.push(b);
            }
        }
        if out.len() > len {
            return None;
        }
    }
    (out.len() == len).then_some(out)
}

/// LZF compression as liblzf 3.6's `lzf_compress` does it with Redis's settings (a 16-bit hash
/// table, VERY_FAST), so that compressed strings come out byte for byte as Redis writes them
/// (checked against redis-server on thousands of random strings).
/// None when the result would not fit in `max_out` bytes (Redis then stores the string plain).
pub fn lzf_compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    if input.is_empty() || max_out == 0 {
        return None;
    }
    // Positions plus one; 0 is "never seen" (liblzf's table is not cleared, but a slot at or
    // before the start of the input is never used as a match either). The table is the
    // thread's, stamped with this call's generation: clearing 512 KB for every value made an
    // RDB of a million 64-byte strings take seconds.
    thread_local! {
        static TABLE: std::cell::RefCell<(u32, Vec<(u32, usize)>)> =
            const { std::cell::RefCell::new((0, Vec::new())) };
    }
    TABLE.with_borrow_mut(|(generation, slots)| {
        *generation = generation.wrapping_add(1);
        if *generation == 0 || slots.len() != LZF_HSIZE {
            slots.clear();
            slots.resize(LZF_HSIZE, (0, 0));
            *generation = 1;
        }
        let mut table = Table {
            generation: *generation,
            slots,
        };
        compress_with(input, max_out, &mut table)
    })
}

/// LZF's hash table of positions (plus one), valid only for the current generation.
struct Table<'a> {
    generation: u32,
    slots: &'a mut [(u32, usize)],
}

impl Table<'_> {
    fn get(&self, slot: usize) -> usize {
        let (generation, position) = self.slots[slot];
        if generation == self.generation {
            position
        } else {
            0
        }
    }

    fn set(&mut self, slot: usize, position: usize) {
        self.slots[slot] = (self.generation, position);
    }
}

/// liblzf's hash table size, as Redis builds it (HLOG 16).
const LZF_HLOG: u32 = 16;
const LZF_HSIZE: usize = 1 << LZF_HLOG;

fn compress_with(input: &[u8], max_out: usize, table: &mut Table) -> Option<Vec<u8>> {
    const HLOG: u32 = LZF_HLOG;
    const HSIZE: usize = LZF_HSIZE;
    const MAX_OFF: usize = 1 << 13;
    const MAX_REF: usize = (1 << 8) + (1 << 3);
    let frst = |p: usize| ((input[p] as u32) << 8) | input[p + 1] as u32;
    let next = |v: u32, p: usize| (v << 8) | input[p + 2] as u32;
    let idx = |h: u32| ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1);
    let len = input.len();
    let mut out: Vec<u8> = Vec::with_capacity(max_out);
    // `lit_at` is the index of the current literal run's control byte.
    let mut lit = 0usize;
    let mut lit_at = 0usize;
    out.push(0);
    let mut ip = 0usize;
    if len >= 2 {
        let mut hval = frst(0);
        while ip + 2 < len {
            hval = next(hval, ip);
            let slot = idx(hval);
            let reference = table.get(slot);
            table.set(slot, ip + 1);
            let found = reference > 1 && {
                let r = reference - 1;
                let off = ip - r - 1;
                off < MAX_OFF
                    && input[r] == input[ip]
                    && input[r + 1] == input[ip + 1]
                    && input[r + 2] == input[ip + 2]
            };
            if found {
                let r = reference - 1;
                let off = ip - r - 1;
                let mut mlen = 2usize;
                let maxlen = (len - ip - mlen).min(MAX_REF);
                // Stop the literal run (or drop its control byte when empty).
                out[lit_at] = (lit as u8).wrapping_sub(1);
                if lit == 0 {
                    out.pop();
                }
                if out.len() + 3 + 1 >= max_out {
                    return None;
                }
                // liblzf's unrolled first 16 steps check no bound (its `maxlen > 16` leaves
                // room): a match may end past `maxlen` there, which it keeps.
                let mut mismatch = false;
                if maxlen > 16 {
                    for _ in 0..16 {
                        mlen += 1;
                        if input[r + mlen] != input[ip + mlen] {
                            mismatch = true;
                            break;
                        }
                    }
                }
                if !mismatch {
                    loop {
                        mlen += 1;
                        if !(mlen < maxlen && input[r + mlen] == input[ip + mlen]) {
                            break;
                        }
                    }
                }
                mlen -= 2;
                ip += 1;
                if mlen < 7 {
                    out.push(((off >> 8) + (mlen << 5)) as u8);
                } else {
                    out.push(((off >> 8) + (7 << 5)) as u8);
                    out.push((mlen - 7) as u8);
                }
                out.push(off as u8);
                lit = 0;
                lit_at = out.len();
                out.push(0);
                ip += mlen + 1;
                if ip + 2 >= len {
                    break;
                }
                ip -= 2;
                hval = frst(ip);
                hval = next(hval, ip);
                table.set(idx(hval), ip + 1);
                ip += 1;
                hval = next(hval, ip);
                table.set(idx(hval), ip + 1);
                ip += 1;
            } else {
                if out.len() >= max_out {
                    return None;
                }
                push_literal(&mut out, &mut lit, &mut lit_at, input[ip]);
                ip += 1;
            }
        }
    }
    if out.len() + 3 > max_out {
        return None;
    }
    while ip < len {
        push_literal(&mut out, &mut lit, &mut lit_at, input[ip]);
        ip += 1;
    }
    out[lit_at] = (lit as u8).wrapping_sub(1);
    if lit == 0 {
        out.pop();
    }
    Some(out)
}

/// Adds one byte to LZF's current literal run; a full run (32 bytes) is closed and the next
/// one opened.
fn push_literal(out: &mut Vec<u8>, lit: &mut usize, lit_at: &mut usize, byte: u8) {
    const MAX_LIT: usize = 1 << 5;
    *lit += 1;
    out.push(byte);
    if *lit == MAX_LIT {
        out[*lit_at] = (*lit - 1) as u8;
        *lit = 0;
        *lit_at = out.len();
        out.push(0);
    }
}

/// CRC-64/Jones as Redis computes it (reflected, initial value 0, no final xor).
pub fn crc64(data: &[u8]) -> u64 {
    crc64_update(0, data)
}

/// Continues a CRC-64 over more data (a file written in pieces).
pub fn crc64_update(crc: u64, data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        t
    });
    data.iter().fold(crc, |crc, &b| {
        table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Ends a DUMP payload: the RDB version and the CRC-64 of the payload so far.
pub fn seal(mut payload: Vec<u8>) -> Vec<u8> {
    payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload
}

/// DEBUG SET-SKIP-CHECKSUM-VALIDATION: RESTORE's payloads and loaded RDB files are taken
/// without checking their CRC-64 (Redis's tests feed both corrupt data that way). Process-wide,
/// as Redis's `server.skip_checksum_validation`.
static SKIP_CHECKSUM: AtomicBool = AtomicBool::new(false);

pub fn set_skip_checksum_validation(skip: bool) {
    SKIP_CHECKSUM.store(skip, Ordering::Relaxed);
}

pub fn skip_checksum_validation() -> bool {
    SKIP_CHECKSUM.load(Ordering::Relaxed)
}

/// The body of a DUMP payload whose version this server reads and whose checksum holds (or is
/// not checked: [`skip_checksum_validation`]).
pub fn open(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() < 10 {
        return None;
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().ok()?);
    (version <= RDB_VERSION
        && (skip_checksum_validation() || crc == crc64(&payload[..payload.len() - 8])))
    .then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis() {
        // Redis's own test vector (crc64.c).
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lengths_and_strings_round_trip() {
        for len in [0u64, 63, 64, 16383, 16384, 1 << 33] {
            let mut out = Vec::new();
            put_len(&mut out, len);
            assert_eq!(Reader::new(&out).len(), Some(len));
        }
        let mut out = Vec::new();
        put_string(&mut out, b"hello");
        assert_eq!(Reader::new(&out).string(), Some(b"hello".to_vec()));
        assert_eq!(Reader::new(&[0xc0, 0xfe]).string(), Some(b"-2".to_vec()));
    }

    #[test]
    fn lzf_compression_reads_back() {
        let text = b"hello hello hello hello, abcabcabcabcabcabcabc and more hello".repeat(20);
        let packed = lzf_compress(&text, text.len() - 4).expect("compresses");
        assert!(packed.len() < text.len() / 4);
        assert_eq!(lzf_decompress(&packed, text.len()), Some(text.clone()));
        // No room to gain: Redis then stores the string plain.
        assert_eq!(lzf_compress(b"q8Z2mX0pL7vR4tY1wK9sB3nH6", 21), None);
        // What redis-server 7.0.15 writes for this string: a match reaching the last bytes.
        let text = b"bbaababbababbbbbabbaababbabbbabaaaaabbbb";
        let from_redis = b"\x06bbaabab \x02 \x04 \x00 \x05\xc0\x10 \t \x0b \x00 \t\x00b";
        assert_eq!(
            lzf_compress(text, text.len() - 4).as_deref(),
            Some(&from_redis[..])
        );
        // A huge declared length reserves nothing like it.
        assert_eq!(lzf_decompress(&packed, usize::MAX / 2), None);
    }

    #[test]
    fn lzf_reads_back_references() {
        // "abcabcabc": a literal run of 3, then a back reference of length 6 at distance 3.
        let data = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(lzf_decompress(&data, 9), Some(b"abcabcabc".to_vec()));
        assert_eq!(lzf_decompress(&data, 8), None);
    }

    #[test]
    fn sealed_payloads_open_and_damaged_ones_do_not() {
        let sealed = seal(b"body".to_vec());
        assert_eq!(open(&sealed), Some(&b"body"[..]));
        let mut damaged = sealed.clone();
        damaged[1] ^= 1;
        assert_eq!(open(&damaged), None);
    }
}
