//! Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384.
//! Here, below the server, because a database in cluster mode keeps its keys indexed by slot
//! ([`crate::slot_index`]).

pub const SLOTS: usize = 16384;

/// `TABLES[k][x]`: the CRC of byte `x` followed by `k` zero bytes. CRC is linear, so four input
/// bytes fold into four independent lookups (slicing-by-4) instead of a chain of four.
const fn crc16_tables() -> [[u16; 256]; 4] {
    let base = crc16_table();
    let mut tables = [[0u16; 256]; 4];
    tables[0] = base;
    let mut k = 1;
    while k < 4 {
        let mut x = 0;
        while x < 256 {
            let prev = tables[k - 1][x];
            tables[k][x] = (prev << 8) ^ base[(prev >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    tables
}

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16: [[u16; 256]; 4] = crc16_tables();

/// CRC16-XMODEM, as Redis Cluster computes it.
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    let t = &CRC16;
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        crc = t[3][((crc >> 8) as u8 ^ c[0]) as usize]
            ^ t[2][(crc as u8 ^ c[1]) as usize]
            ^ t[1][c[2] as usize]
            ^ t[0][c[3] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ t[0][(((crc >> 8) as u8) ^ b) as usize];
    }
    crc
}

/// The part of the key that is hashed: the first non-empty `{...}` section, or the whole key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = find_byte(key, b'{') {
        if let Some(len) = find_byte(&key[open + 1..], b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The first `byte` in `hay`, eight bytes a step (every keyed request routes through here, and
/// keys are short: memchr's set-up costs more than it saves below 32 bytes, a byte loop three
/// instructions a byte).
#[inline]
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = ONES * byte as u64;
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes")) ^ pattern;
        // A byte of x is zero where `byte` is; the lowest flagged byte is always a true match.
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == byte)
        .map(|i| at + i)
}

/// The cluster hash slot of `key`.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis_reference() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
    }

    #[test]
    fn sliced_crc16_equals_the_bytewise_definition() {
        let bytewise = |data: &[u8]| {
            data.iter().fold(0u16, |crc, &b| {
                (crc << 8) ^ CRC16[0][(((crc >> 8) as u8) ^ b) as usize]
            })
        };
        let mut data = Vec::new();
        let mut x = 12345u32;
        for len in 0..100 {
            assert_eq!(crc16(&data), bytewise(&data), "length {len}");
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8);
        }
    }

    #[test]
    fn find_byte_finds_the_first_as_a_byte_loop_does() {
        let mut x = 99u32;
        for len in 0..40 {
            for _ in 0..50 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        // Few distinct bytes, so matches, repeats and near misses (0x7a, 0x7c,
                        // 0xfb: one bit off) are common.
                        [b'{', b'}', 0x7a, 0x7c, 0xfb, 0x00, 0x01, b'a'][(x >> 16) as usize % 8]
                    })
                    .collect();
                for byte in [b'{', b'}'] {
                    assert_eq!(
                        find_byte(&hay, byte),
                        hay.iter().position(|&c| c == byte),
                        "{hay:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(key_slot(b"{user1000}.a"), key_slot(b"{user1000}.b"));
    }
}
