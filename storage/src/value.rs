//! Value types stored under a key.

use std::borrow::Cow;

use bytes::Bytes;
use warpengine_physics::temporal::DecayingScores;

use crate::hash::HashValue;
use crate::list::ListValue;
use crate::set::SetValue;
use crate::stream::StreamValue;
use crate::zset::ZSetValue;

/// Values up to this long live in the entry itself (counters, flags, short tokens).
const INLINE_STR: usize = 22;

/// Marks an inline value that Redis would not have integer-encoded even if it reads as one
/// (INCRBYFLOAT's result): OBJECT ENCODING says embstr.
const VERBATIM: u8 = 0x80;

/// Values from this long are kept as shared `Bytes`, so that a read hands out a reference
/// instead of copying them (below it, the copy costs less than sharing's two extra headers).
const SHARED_STR: usize = 4096;

/// Values shorter than this are never compressed: they rarely shrink by the eighth it must
/// save, and above 44 bytes every stored form is `raw` to OBJECT ENCODING (as a compressed
/// value reports), so compressing never changes what ENCODING answers.
pub const COMPRESS_MIN: usize = 64;

/// A string value. Values written whole are kept in exactly their own bytes: inline when short,
/// else one allocation of their size (no header, no spare room), and large ones shared so that
/// reads do not copy them. Values grown in place (APPEND, SETRANGE, SETBIT) become growable
/// buffers so that repeated appends stay linear. Anything bigger than a pointer is boxed to
/// keep every entry at 24 bytes of value.
#[derive(Clone, Debug)]
pub enum StrValue {
    /// `len`'s low 7 bits are the length; its top bit, [`VERBATIM`].
    Inline {
        len: u8,
        bytes: [u8; INLINE_STR],
    },
    Boxed(Box<[u8]>),
    Shared(Box<Bytes>),
    Owned(Box<Vec<u8>>),
    /// A value HORIZON compressed (`horizon-compress`; not a hot one): its length as 4 bytes (little
    /// endian), then a zstd frame made with the process's dictionary ([`crate::compress`]).
    /// Readers see the original bytes ([`StrValue::as_slice`] decompresses); a write makes it
    /// a plain value again.
    Packed(Box<[u8]>),
}

impl StrValue {
    pub fn from_slice(b: &[u8]) -> StrValue {
        if let Some((len, bytes)) = crate::key::inline(b) {
            StrValue::Inline { len, bytes }
        } else if b.len() < SHARED_STR {
            StrValue::Boxed(b.into())
        } else {
            StrValue::Shared(Box::new(Bytes::copy_from_slice(b)))
        }
    }

    /// A value stored as written, as Redis stores INCRBYFLOAT's result: never `int`-encoded.
    pub fn verbatim(b: &[u8]) -> StrValue {
        match StrValue::from_slice(b) {
            StrValue::Inline { len, bytes } => StrValue::Inline {
                len: len | VERBATIM,
                bytes,
            },
            other => other,
        }
    }

    /// A growable value (the form APPEND and SETRANGE leave behind).
    pub fn owned(v: Vec<u8>) -> StrValue {
        StrValue::Owned(Box::new(v))
    }

    /// The value's bytes: borrowed, or decompressed for a [`StrValue::Packed`] one.
    #[inline]
    pub fn as_slice(&self) -> Cow<'_, [u8]> {
        match self {
            StrValue::Packed(p) => Cow::Owned(unpack(p)),
            plain => Cow::Borrowed(plain.plain_slice()),
        }
    }

    /// The bytes of a value stored as written (any but `Packed`, which has none to lend).
    #[inline]
    fn plain_slice(&self) -> &[u8] {
        match self {
            StrValue::Inline { len, bytes } => &bytes[..(*len & !VERBATIM) as usize],
            StrValue::Boxed(b) => b,
            StrValue::Shared(b) => b,
            StrValue::Owned(v) => v,
            StrValue::Packed(_) => unreachable!("a packed value has no plain bytes"),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            StrValue::Packed(p) => packed_len(p),
            plain => plain.plain_slice().len(),
        }
    }

    /// Makes a compressed value plain again (the form SET would have stored its bytes in).
    pub fn unpack(&mut self) {
        if let StrValue::Packed(p) = self {
            *self = StrValue::from_slice(&unpack(p));
        }
    }

    /// The bytes of a value that is not compressed, borrowed (after [`StrValue::unpack`]).
    ///
    /// # Panics
    /// On a compressed value.
    pub fn plain(&self) -> &[u8] {
        self.plain_slice()
    }

    /// Whether HORIZON compressed this value.
    pub fn is_packed(&self) -> bool {
        matches!(self, StrValue::Packed(_))
    }

    /// Compresses the value in place when it is at least [`COMPRESS_MIN`] bytes long and that
    /// saves an eighth of it (less would rarely move it to a smaller allocator size class,
    /// and every read would still pay the decompression). Returns whether it did. Nothing is
    /// compressed until the dictionary exists ([`crate::compress::train`]).
    pub fn compress(&mut self) -> bool {
        if matches!(self, StrValue::Inline { .. } | StrValue::Packed(_)) {
            return false;
        }
        let plain = self.plain_slice();
        if plain.len() < COMPRESS_MIN || plain.len() > u32::MAX as usize {
            return false;
        }
        let Some(body) = crate::compress::compress(plain) else {
            return false;
        };
        if (4 + body.len()) * 8 > plain.len() * 7 {
            return false;
        }
        let mut packed = Vec::with_capacity(4 + body.len());
        packed.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        packed.extend_from_slice(&body);
        *self = StrValue::Packed(packed.into_boxed_slice());
        true
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            StrValue::Shared(b) => (**b).clone(),
            // Decompressing takes the place of the copy a plain value needs.
            StrValue::Packed(p) => Bytes::from(unpack(p)),
            plain => Bytes::copy_from_slice(plain.plain_slice()),
        }
    }

    /// Turns the value into a growable buffer, copying (or decompressing) at most once.
    pub fn make_owned(&mut self) -> &mut Vec<u8> {
        if !matches!(self, StrValue::Owned(_)) {
            *self = StrValue::owned(self.as_slice().into_owned());
        }
        match self {
            StrValue::Owned(v) => v,
            _ => unreachable!("converted above"),
        }
    }

    /// The encoding name Redis would report in OBJECT ENCODING for the same bytes.
    pub fn encoding(&self) -> &'static str {
        match self {
            // A packed value is at least COMPRESS_MIN (> 44) bytes long.
            StrValue::Owned(_) | StrValue::Packed(_) => return "raw",
            StrValue::Inline { len, .. } if len & VERBATIM != 0 => return "embstr",
            _ => {}
        }
        let b = self.plain_slice();
        if b.len() <= 20 && parse_strict_i64(b).is_some() {
            "int"
        } else if b.len() <= 44 {
            "embstr"
        } else {
            "raw"
        }
    }
}

/// The original length of a packed value.
fn packed_len(p: &[u8]) -> usize {
    u32::from_le_bytes(
        p[..4]
            .try_into()
            .expect("a packed value starts with its length"),
    ) as usize
}

/// The original bytes of a packed value.
fn unpack(p: &[u8]) -> Vec<u8> {
    crate::compress::decompress(&p[4..], packed_len(p))
}

/// What a key holds. Collections are boxed so that a table entry stays small.
#[derive(Clone, Debug)]
pub enum Value {
    Str(StrValue),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    /// TEMPORAL's trending counters (WarpEngine's own type).
    Temporal(Box<DecayingScores>),
    Stream(Box<StreamValue>),
}

impl Value {
    /// Where a read of this value goes first outside its entry (a string's bytes, a
    /// collection's header), for prefetching; None when the value lies within the entry.
    #[inline]
    pub fn heap_address(&self) -> Option<usize> {
        Some(match self {
            Value::Str(StrValue::Inline { .. }) => return None,
            Value::Str(StrValue::Boxed(b) | StrValue::Packed(b)) => b.as_ptr() as usize,
            Value::Str(StrValue::Shared(b)) => b.as_ptr() as usize,
            Value::Str(StrValue::Owned(v)) => v.as_ptr() as usize,
            Value::List(v) => &**v as *const ListValue as usize,
            Value::Hash(v) => &**v as *const HashValue as usize,
            Value::Set(v) => &**v as *const SetValue as usize,
            Value::ZSet(v) => &**v as *const ZSetValue as usize,
            Value::Temporal(v) => &**v as *const DecayingScores as usize,
            Value::Stream(v) => &**v as *const StreamValue as usize,
        })
    }

    /// The element count and the hash table's room of a value Redis keeps in a hash table
    /// (a set past its intset, a hash or sorted set past its listpack); None otherwise.
    pub fn hash_table_stats(&self) -> Option<(usize, usize)> {
        match self {
            Value::Set(s) => s.table_capacity().map(|c| (s.members.len(), c)),
            Value::Hash(h) => h.table_capacity().map(|c| (h.len(), c)),
            Value::ZSet(z) => z.table_capacity().map(|c| (z.len(), c)),
            _ => None,
        }
    }

    /// The work freeing it takes, counted as Redis's `lazyfreeGetFreeEffort` counts it (its
    /// allocations): a list's nodes, the elements of a set, hash or sorted set past its compact
    /// form, a stream's nodes and its groups' pending entries (the first group's PEL size for
    /// every group); 1 for anything held in one allocation.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::List(l) => l.node_count(),
            Value::Stream(s) => {
                let pending = s.groups.values().next().map_or(0, |g| g.pending.len());
                s.node_count() + s.groups.len() * (1 + pending)
            }
            other => other.hash_table_stats().map_or(1, |(elements, _)| elements),
        }
    }

    pub fn string(b: &[u8]) -> Value {
        Value::Str(StrValue::from_slice(b))
    }

    /// Whether a copy costs little: a string of at most 64 KB, or a collection still in its
    /// packed encoding (bounded by the `*-max-listpack-*` limits).
    pub fn is_cheap_to_copy(&self) -> bool {
        match self {
            Value::Str(s) => s.len() <= 64 * 1024,
            Value::Temporal(_) | Value::Stream(_) => false,
            _ => matches!(self.encoding(), "listpack" | "intset"),
        }
    }

    /// The name TYPE answers with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Temporal(_) => "temporal",
            Value::Stream(_) => "stream",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Temporal(_) => "temporal",
            Value::Stream(_) => "stream",
        }
    }
}

/// Parses an integer the way Redis's `string2ll` does: no leading `+`, no leading zeros,
/// no spaces, fits in i64.
pub fn parse_strict_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s.len() == 1 && s[0] == b'0' {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_strict_i64(b"0"), Some(0));
        assert_eq!(parse_strict_i64(b"-1"), Some(-1));
        assert_eq!(parse_strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_strict_i64(b"9223372036854775808"), None);
        assert_eq!(parse_strict_i64(b"01"), None);
        assert_eq!(parse_strict_i64(b"+1"), None);
        assert_eq!(parse_strict_i64(b" 1"), None);
        assert_eq!(parse_strict_i64(b"-0"), None);
        assert_eq!(parse_strict_i64(b""), None);
    }

    #[test]
    fn string_encodings_follow_redis_thresholds() {
        assert_eq!(StrValue::from_slice(b"123").encoding(), "int");
        assert_eq!(StrValue::from_slice(b"abc").encoding(), "embstr");
        assert_eq!(StrValue::from_slice(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(StrValue::from_slice(&[b'a'; 45]).encoding(), "raw");
        assert_eq!(StrValue::owned(b"1".to_vec()).encoding(), "raw");
        assert_eq!(StrValue::verbatim(b"13").encoding(), "embstr");
        assert_eq!(&*StrValue::verbatim(b"13").as_slice(), b"13");
    }

    #[test]
    fn strings_round_trip_in_every_form_and_an_entry_value_stays_small() {
        for len in [0, 1, 22, 23, 64, 1000, 4095, 4096, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut v = StrValue::from_slice(&bytes);
            assert_eq!(v.as_slice(), &bytes[..]);
            assert_eq!(matches!(v, StrValue::Inline { .. }), len <= INLINE_STR);
            assert_eq!(matches!(v, StrValue::Shared(_)), len >= SHARED_STR);
            assert_eq!(v.to_bytes(), bytes);
            v.make_owned().push(7);
            assert_eq!(v.len(), len + 1);
            assert_eq!(&v.as_slice()[..len], &bytes[..]);
        }
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    use crate::compress::tests::{document, train};

    #[test]
    fn a_compressed_value_reads_as_the_original_in_every_form() {
        train();
        for len in [200, 1000, 4095, 4096, 100_000] {
            let doc = document(len, 11);
            for mut v in [StrValue::from_slice(&doc), StrValue::owned(doc.clone())] {
                assert!(v.compress(), "{len} bytes of text compress");
                assert!(v.is_packed());
                assert!(!v.compress(), "once");
                assert_eq!(v.len(), len);
                assert_eq!(v.as_slice(), &doc[..]);
                assert_eq!(v.to_bytes(), doc);
                assert_eq!(v.encoding(), "raw");
                let mut grown = v.clone();
                grown.make_owned().push(b'!');
                assert!(!grown.is_packed(), "a write unpacks");
                assert_eq!(grown.len(), len + 1);
                assert_eq!(&grown.as_slice()[..len], &doc[..]);
            }
        }
    }

    #[test]
    fn short_and_incompressible_values_stay_as_written() {
        train();
        let mut short = StrValue::from_slice(&document(COMPRESS_MIN - 1, 11));
        assert!(!short.compress());
        let mut seed = 3u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                crate::next_test_random(&mut seed);
                (seed >> 24) as u8
            })
            .collect();
        let mut random = StrValue::from_slice(&noise);
        assert!(
            !random.compress(),
            "random bytes do not shrink by an eighth"
        );
        assert!(matches!(random, StrValue::Boxed(_)));
        let mut number = StrValue::from_slice(b"12345");
        assert!(!number.compress());
        assert_eq!(number.encoding(), "int");
    }
}
