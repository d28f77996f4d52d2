//! What the packed (listpack-like) representations of small hashes, lists and sorted sets share:
//! varint length prefixes, back-lengths that let a buffer be walked from its end as a listpack's
//! `backlen` does, exact-growth insertion, and `Elem`, an element borrowed from either
//! representation of a list or sorted set.

use bytes::Bytes;

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, n: usize) {
    put_uvarint(buf, n as u64);
}

pub(crate) fn uvarint_len(mut n: u64) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

pub(crate) fn varint_len(n: usize) -> usize {
    uvarint_len(n as u64)
}

/// Reads a varint at `*pos`, advancing past it.
pub(crate) fn get_uvarint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        n |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> usize {
    get_uvarint(buf, pos) as usize
}

/// Appends `n` so that it reads backwards from the end: the last byte holds the lowest seven
/// bits, and a set top bit means more bytes to the left. It takes `varint_len(n)` bytes.
pub(crate) fn put_backlen(buf: &mut Vec<u8>, n: usize) {
    let bytes = varint_len(n);
    for i in (0..bytes).rev() {
        let group = ((n >> (7 * i)) & 0x7f) as u8;
        buf.push(if i + 1 < bytes { group | 0x80 } else { group });
    }
}

/// Reads the back-length that ends just before `end`: the value and where its bytes start.
pub(crate) fn get_backlen(buf: &[u8], end: usize) -> (usize, usize) {
    let mut pos = end - 1;
    let mut b = buf[pos];
    let mut n = (b & 0x7f) as usize;
    let mut shift = 7;
    while b & 0x80 != 0 {
        pos -= 1;
        b = buf[pos];
        n |= ((b & 0x7f) as usize) << shift;
        shift += 7;
    }
    (n, pos)
}

/// Inserts what `encode` appends at byte offset `at`, growing the buffer by exactly that much
/// (a small collection should not carry slack, as a listpack's realloc does not).
pub(crate) fn insert_encoded(
    buf: &mut Vec<u8>,
    at: usize,
    len: usize,
    encode: impl FnOnce(&mut Vec<u8>),
) {
    buf.reserve_exact(len);
    let old = buf.len();
    encode(buf);
    debug_assert_eq!(buf.len() - old, len);
    if at < old {
        buf[at..].rotate_right(len);
    }
}

/// Gives back the slack left by removals once it is worth a reallocation.
pub(crate) fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() > 64 {
        buf.shrink_to_fit();
    }
}

/// A list element or sorted-set member as stored: a slice of a packed buffer, or a shared
/// `Bytes` of a large collection, which a reply can take without copying.
#[derive(Clone, Copy)]
pub(crate) enum Elem<'a> {
    Packed(&'a [u8]),
    Shared(&'a Bytes),
}

impl<'a> Elem<'a> {
    pub(crate) fn as_slice(self) -> &'a [u8] {
        match self {
            Elem::Packed(s) => s,
            Elem::Shared(b) => b,
        }
    }

    /// An owned copy for a reply: a packed element is copied, a shared one only counted.
    pub(crate) fn to_bytes(self) -> Bytes {
        match self {
            Elem::Packed(s) => Bytes::copy_from_slice(s),
            Elem::Shared(b) => b.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_backlens_round_trip() {
        for n in [
            0usize,
            1,
            127,
            128,
            300,
            16383,
            16384,
            1 << 30,
            usize::MAX >> 1,
        ] {
            let mut buf = vec![0xaa];
            put_varint(&mut buf, n);
            assert_eq!(buf.len() - 1, varint_len(n));
            let mut pos = 1;
            assert_eq!(get_varint(&buf, &mut pos), n);
            assert_eq!(pos, buf.len());

            let mut buf = vec![0xff];
            put_backlen(&mut buf, n);
            assert_eq!(buf.len() - 1, varint_len(n));
            assert_eq!(get_backlen(&buf, buf.len()), (n, 1));
        }
        let mut buf = Vec::new();
        put_uvarint(&mut buf, u64::MAX);
        assert_eq!(buf.len(), uvarint_len(u64::MAX));
        assert_eq!(get_uvarint(&buf, &mut 0), u64::MAX);
    }

    #[test]
    fn inserts_in_the_middle_with_exact_growth() {
        let mut buf = b"abef".to_vec();
        buf.shrink_to_fit();
        insert_encoded(&mut buf, 2, 2, |b| b.extend_from_slice(b"cd"));
        assert_eq!(buf, b"abcdef");
        insert_encoded(&mut buf, 6, 1, |b| b.push(b'g'));
        insert_encoded(&mut buf, 0, 1, |b| b.push(b'_'));
        assert_eq!(buf, b"_abcdefg");
    }
}
