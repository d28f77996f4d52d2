//! Redis's RDB encodings that DUMP payloads use: lengths, strings (plain, as integers, or LZF
//! compressed), and the payload's footer (RDB version, CRC-64 of everything before it).
//! FUNCTION DUMP and RESTORE use them now; DUMP/RESTORE of keys and RDB files build on them.

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

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
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
    let mut out: Vec<u8> = Vec::with_capacity(len);
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

/// CRC-64/Jones as Redis computes it (reflected, initial value 0, no final xor).
pub fn crc64(data: &[u8]) -> u64 {
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
    data.iter().fold(0u64, |crc, &b| {
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

/// The body of a DUMP payload whose version this server reads and whose checksum holds.
pub fn open(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() < 10 {
        return None;
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().ok()?);
    (version <= RDB_VERSION && crc == crc64(&payload[..payload.len() - 8])).then_some(body)
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
