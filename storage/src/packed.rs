//! What the packed (listpack-like) representations of small hashes, lists and sorted sets share:
//! `Packed`, the buffer itself, built from varint length prefixes, back-lengths that let a
//! buffer be walked from its end as a listpack's `backlen` does, and exact-growth insertion; and
//! `Elem`, an element borrowed from either representation of a list or sorted set.
//!
//! A `Packed` is one allocation holding its entries back to back, as a Redis listpack is: no
//! pointer or allocator header per entry, so a small collection costs little more than its
//! bytes. What one entry looks like is all that differs between the three types, so that is
//! all each says, in a `Codec`: a list entry is one element, a hash entry a field and its
//! value, a sorted-set entry a member and its score. Everything else (walking, finding the
//! n-th entry, inserting, removing, popping) is written once here.
//!
//! An entry is the codec's body, then, when the codec asks for it, a back-length: the body's
//! size written to be read right to left. With it the entry before any offset can be found
//! without walking from the head, so a list pops its tail, and a sorted set walks down from a
//! rank, in steps from the nearer end. A hash only ever walks forwards and goes without, a
//! byte or two less per pair.
//!
//! Nothing here keeps slack: an insertion grows the buffer by exactly the new entry, and
//! removals give memory back once it is worth a reallocation (`insert_encoded`, `shrink`).
//! Such buffers are per key, and a keyspace may hold millions of them.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

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

/// How one entry of a `Packed` is laid out. A codec knows only the entry's body: `Packed` adds
/// the back-length when `BACK_LENGTH` asks for it, and keeps count.
pub(crate) trait Codec {
    /// An entry, as given to be stored and as read back borrowing the buffer.
    type Entry<'a>: Copy;

    /// Whether each entry ends with a back-length, which walks from the end need.
    const BACK_LENGTH: bool;

    /// The size of the body `encode` appends.
    fn body_len(e: Self::Entry<'_>) -> usize;

    /// Appends the body of `e`.
    fn encode(buf: &mut Vec<u8>, e: Self::Entry<'_>);

    /// Reads the body starting at `start`: the entry, and where the body ends.
    fn decode(buf: &[u8], start: usize) -> (Self::Entry<'_>, usize);
}

thread_local! {
    /// Where `Packed::replace_here` encodes an entry before copying it over the old one.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Entries encoded back to back by `C`, each followed by its back-length if `C` wants one.
pub(crate) struct Packed<C: Codec> {
    buf: Vec<u8>,
    len: u32,
    _codec: PhantomData<C>,
}

/// One entry of a `Packed` and the bytes `start..end` it spans.
pub(crate) struct Slot<E> {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) entry: E,
}

// By hand: derived, these would ask the codec (a type that is never built) to be Clone, Default
// and Debug too.
impl<C: Codec> Clone for Packed<C> {
    fn clone(&self) -> Self {
        Packed {
            buf: self.buf.clone(),
            len: self.len,
            _codec: PhantomData,
        }
    }
}

impl<C: Codec> Default for Packed<C> {
    fn default() -> Self {
        Packed {
            buf: Vec::new(),
            len: 0,
            _codec: PhantomData,
        }
    }
}

impl<C: Codec> fmt::Debug for Packed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("buf", &self.buf)
            .field("len", &self.len)
            .finish()
    }
}

impl<C: Codec> Packed<C> {
    /// Builds a pack from entries in order, in one allocation of exactly their size.
    pub(crate) fn from_entries<'a>(entries: impl Iterator<Item = C::Entry<'a>> + Clone) -> Self {
        let size = entries.clone().map(Self::entry_len).sum();
        let mut p = Packed {
            buf: Vec::with_capacity(size),
            ..Packed::default()
        };
        for e in entries {
            Self::encode(&mut p.buf, e);
            p.len += 1;
        }
        p
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The size of the encoded entries: the buffer holds nothing else.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The encoded size of an entry, back-length included.
    pub(crate) fn entry_len(e: C::Entry<'_>) -> usize {
        let body = C::body_len(e);
        if C::BACK_LENGTH {
            body + varint_len(body)
        } else {
            body
        }
    }

    fn encode(buf: &mut Vec<u8>, e: C::Entry<'_>) {
        let start = buf.len();
        C::encode(buf, e);
        if C::BACK_LENGTH {
            put_backlen(buf, buf.len() - start);
        }
    }

    /// The entry that starts at byte `start`.
    pub(crate) fn decode_at(&self, start: usize) -> Slot<C::Entry<'_>> {
        let (entry, body_end) = C::decode(&self.buf, start);
        let end = if C::BACK_LENGTH {
            body_end + varint_len(body_end - start)
        } else {
            body_end
        };
        Slot { start, end, entry }
    }

    /// The entry that ends at byte `end`.
    fn decode_before(&self, end: usize) -> Slot<C::Entry<'_>> {
        debug_assert!(C::BACK_LENGTH, "walking from the end needs back-lengths");
        let (body, at) = get_backlen(&self.buf, end);
        self.decode_at(at - body)
    }

    /// Entries from the one starting at byte `pos` to the last.
    pub(crate) fn iter_at(&self, pos: usize) -> PackedIter<'_, C> {
        PackedIter { pack: self, pos }
    }

    pub(crate) fn iter(&self) -> PackedIter<'_, C> {
        self.iter_at(0)
    }

    /// Entries from the one ending at byte `end` back to the first (back-lengths only).
    pub(crate) fn iter_before(&self, end: usize) -> PackedRevIter<'_, C> {
        PackedRevIter { pack: self, end }
    }

    /// The entry at position `index` (< len), walked to from the nearer end (from the first
    /// without back-lengths).
    pub(crate) fn get(&self, index: usize) -> Slot<C::Entry<'_>> {
        let len = self.len();
        let found = if index <= len / 2 || !C::BACK_LENGTH {
            self.iter().nth(index)
        } else {
            self.iter_before(self.buf.len()).nth(len - 1 - index)
        };
        found.expect("index below len")
    }

    /// Where the entry at position `index` starts; the end of the buffer for len or more.
    pub(crate) fn offset_of(&self, index: usize) -> usize {
        if index >= self.len() {
            self.buf.len()
        } else {
            self.get(index).start
        }
    }

    /// Room for `bytes` more, grown as a Vec grows (by doubling): for a buffer that takes many
    /// insertions in a row (a long list's end node), where exact growth would reallocate at
    /// each one. [`Packed::fit`] gives the slack back.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.buf.reserve(bytes);
    }

    /// Gives back all slack.
    pub(crate) fn fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// Inserts `e` at byte `at` (where an entry starts, or the end), growing the buffer by
    /// exactly its size.
    pub(crate) fn insert_at(&mut self, at: usize, e: C::Entry<'_>) {
        insert_encoded(&mut self.buf, at, Self::entry_len(e), |b| {
            Self::encode(b, e)
        });
        self.len += 1;
    }

    /// Removes the `count` entries in the bytes `start..end`.
    pub(crate) fn remove_span(&mut self, start: usize, end: usize, count: usize) {
        self.buf.drain(start..end);
        self.len -= count as u32;
        shrink(&mut self.buf);
    }

    /// Keeps only the `count` entries in the bytes `start..end`.
    pub(crate) fn keep_span(&mut self, start: usize, end: usize, count: usize) {
        self.buf.truncate(end);
        self.buf.drain(..start);
        self.len = count as u32;
        shrink(&mut self.buf);
    }

    /// Replaces the entry at bytes `start..end` with `e` in the same place (LSET, HSET on an
    /// existing field). An entry of the same encoded size (a counter that keeps its width) is
    /// overwritten where it is, without moving the rest of the buffer.
    pub(crate) fn replace_here(&mut self, start: usize, end: usize, e: C::Entry<'_>) {
        if Self::entry_len(e) == end - start {
            // Encoded beside the buffer first (the entry may borrow from it): a per-thread
            // scratch buffer, so that a counter's update allocates nothing.
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.clear();
                Self::encode(&mut scratch, e);
                self.buf[start..end].copy_from_slice(&scratch);
            });
        } else {
            self.replace(start, end, e, |_| start);
        }
    }

    /// Replaces the entry in the bytes `start..end` with `e`, placed at the byte `at` gives once
    /// the old entry is gone (`start` keeps its place). Memory is given back only after the
    /// insertion, which can usually reuse the room the old entry left.
    pub(crate) fn replace(
        &mut self,
        start: usize,
        end: usize,
        e: C::Entry<'_>,
        at: impl FnOnce(&Self) -> usize,
    ) {
        self.buf.drain(start..end);
        self.len -= 1;
        let at = at(self);
        self.insert_at(at, e);
        shrink(&mut self.buf);
    }

    /// Removes the first entry (the last with `last`, which needs back-lengths), returning what
    /// `take` makes of it.
    pub(crate) fn pop<R>(&mut self, last: bool, take: impl FnOnce(C::Entry<'_>) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let e = if last {
            self.decode_before(self.buf.len())
        } else {
            self.decode_at(0)
        };
        let (start, end) = (e.start, e.end);
        let out = take(e.entry);
        self.remove_span(start, end, 1);
        Some(out)
    }

    /// Keeps the entries for which `keep` holds, visiting them from the first. Compacts in
    /// place: kept entries move down over the removed ones.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(C::Entry<'_>) -> bool) {
        let (mut pos, mut write, mut len) = (0, 0, 0);
        while pos < self.buf.len() {
            let e = self.decode_at(pos);
            let (start, end) = (e.start, e.end);
            if keep(e.entry) {
                self.buf.copy_within(start..end, write);
                write += end - start;
                len += 1;
            }
            pos = end;
        }
        self.buf.truncate(write);
        self.len = len;
        shrink(&mut self.buf);
    }
}

/// See `Packed::iter_at`.
pub(crate) struct PackedIter<'a, C: Codec> {
    pack: &'a Packed<C>,
    pos: usize,
}

impl<'a, C: Codec> Iterator for PackedIter<'a, C> {
    type Item = Slot<C::Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.pack.buf.len() {
            return None;
        }
        let e = self.pack.decode_at(self.pos);
        self.pos = e.end;
        Some(e)
    }
}

// By hand: derived, it would ask the codec to be Clone.
impl<C: Codec> Clone for PackedIter<'_, C> {
    fn clone(&self) -> Self {
        PackedIter {
            pack: self.pack,
            pos: self.pos,
        }
    }
}

/// See `Packed::iter_before`.
pub(crate) struct PackedRevIter<'a, C: Codec> {
    pack: &'a Packed<C>,
    end: usize,
}

impl<'a, C: Codec> Iterator for PackedRevIter<'a, C> {
    type Item = Slot<C::Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.end == 0 {
            return None;
        }
        let e = self.pack.decode_before(self.end);
        self.end = e.start;
        Some(e)
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

    /// Short byte strings behind a one-byte length, with or without back-lengths.
    enum Bytes1<const BACK: bool> {}

    impl<const BACK: bool> Codec for Bytes1<BACK> {
        type Entry<'a> = &'a [u8];

        const BACK_LENGTH: bool = BACK;

        fn body_len(v: &[u8]) -> usize {
            1 + v.len()
        }

        fn encode(buf: &mut Vec<u8>, v: &[u8]) {
            buf.push(u8::try_from(v.len()).expect("short"));
            buf.extend_from_slice(v);
        }

        fn decode(buf: &[u8], start: usize) -> (&[u8], usize) {
            let end = start + 1 + buf[start] as usize;
            (&buf[start + 1..end], end)
        }
    }

    fn contents<const BACK: bool>(p: &Packed<Bytes1<BACK>>) -> Vec<&[u8]> {
        p.iter().map(|e| e.entry).collect()
    }

    #[test]
    fn packed_walks_edits_and_keeps_no_slack() {
        let long = [b'x'; 200];
        let items: [&[u8]; 5] = [b"a", b"bb", &long, b"", b"c"];
        let mut with = Packed::<Bytes1<true>>::from_entries(items.iter().copied());
        let without = Packed::<Bytes1<false>>::from_entries(items.iter().copied());
        // A back-length takes a byte, two past 127.
        assert_eq!(without.bytes(), 2 + 3 + 201 + 1 + 2);
        assert_eq!(with.bytes(), without.bytes() + 6);
        assert_eq!(with.buf.capacity(), with.bytes());
        for (i, item) in items.iter().enumerate() {
            assert_eq!(with.get(i).entry, *item);
            assert_eq!(without.get(i).entry, *item);
        }
        let back: Vec<&[u8]> = with
            .iter_before(with.offset_of(3))
            .map(|e| e.entry)
            .collect();
        assert_eq!(back, [&long[..], b"bb", b"a"]);
        assert_eq!(with.offset_of(5), with.bytes());

        assert_eq!(with.pop(true, <[u8]>::to_vec), Some(b"c".to_vec()));
        assert_eq!(with.pop(false, <[u8]>::to_vec), Some(b"a".to_vec()));
        let e = with.get(1);
        let (start, end) = (e.start, e.end);
        with.replace(start, end, b"L", |p| p.bytes());
        assert_eq!(contents(&with), [&b"bb"[..], b"", b"L"]);
        assert_eq!(
            with.buf.capacity(),
            with.bytes(),
            "the slack was given back"
        );
        // In place: same size overwritten where it is, another size moved, both in order.
        let e = with.get(0);
        let (start, end, bytes) = (e.start, e.end, with.bytes());
        with.replace_here(start, end, b"BB");
        assert_eq!(
            (contents(&with), with.bytes()),
            (vec![&b"BB"[..], b"", b"L"], bytes)
        );
        for v in [&b"bbb"[..], b"bb"] {
            let e = with.get(0);
            let (start, end) = (e.start, e.end);
            with.replace_here(start, end, v);
            assert_eq!(contents(&with), [v, b"", b"L"]);
        }
        with.insert_at(0, b"h");
        with.retain(|v| !v.is_empty());
        assert_eq!(contents(&with), [&b"h"[..], b"bb", b"L"]);
        let (from, to) = (with.offset_of(1), with.offset_of(2));
        with.keep_span(from, to, 1);
        assert_eq!(contents(&with), [b"bb"]);
        assert_eq!(with.len(), 1);
        with.remove_span(0, with.bytes(), 1);
        assert_eq!((with.len(), with.bytes()), (0, 0));
        assert_eq!(with.pop(true, <[u8]>::to_vec), None);
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
