//! The value codec of Redis 7.0's RDB format (version 10): what DUMP writes after its type
//! byte and RESTORE (and an RDB file's loader) reads back. One function per type and
//! encoding, dispatched on the RDB type byte, so a type added later (streams) slots in as one
//! more arm of `write_value` and `read_value`.
//!
//! Writing mirrors what Redis 7.0 emits for the same value where it can: listpacks for small
//! hashes and sorted sets, intsets for small integer sets, quicklist 2 for lists (nodes split
//! as RPUSH fills them), integer and LZF string encodings. Reading accepts every encoding Redis
//! 7.0 loads: the plain types, zipmap, ziplist (lists, hashes, sorted sets), quicklist 1 and 2,
//! intset and listpack. Everything read is checked whole before a value is built (lengths,
//! offsets, back-lengths, terminators, counts, duplicates, NaN scores): a payload that is not
//! exactly such data reads as None, never as a broken value or a panic.

use std::collections::HashSet;

use bytes::Bytes;
use warpengine_storage::list::End;
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::{HashValue, ListValue, SetValue, Value, ZSetValue};

use super::rdb::{put_encoded_string, put_len, Reader};
use crate::protocol::reply::format_double;

/// RDB object type bytes (Redis's `RDB_TYPE_*`).
pub mod rdb_type {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

/// The settings that decide encodings: how values are written (list nodes, compression) and
/// which form a value read back takes (the `*-max-listpack-*` and intset limits).
#[derive(Clone, Copy, Debug)]
pub struct Encodings {
    /// `rdbcompression`: LZF for strings over 20 bytes.
    pub compress: bool,
    /// `list-max-listpack-size`.
    pub list_fill: i64,
    pub hash_max_entries: usize,
    pub hash_max_value: usize,
    pub zset_max_entries: usize,
    pub zset_max_value: usize,
    pub set_max_intset: usize,
}

impl Default for Encodings {
    /// Redis's defaults.
    fn default() -> Encodings {
        Encodings {
            compress: true,
            list_fill: -2,
            hash_max_entries: 128,
            hash_max_value: 64,
            zset_max_entries: 128,
            zset_max_value: 64,
            set_max_intset: 512,
        }
    }
}

/// The server's current settings for the codec.
pub fn encodings(server: &crate::server_state::Server) -> Encodings {
    use std::sync::atomic::Ordering::Relaxed;
    let (compress, list_fill) = {
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        (
            cfg.get_bool("rdbcompression"),
            cfg.get_i64("list-max-listpack-size"),
        )
    };
    let hot = &server.hot;
    Encodings {
        compress,
        list_fill,
        hash_max_entries: hot.hash_max_listpack_entries.load(Relaxed) as usize,
        hash_max_value: hot.hash_max_listpack_value.load(Relaxed) as usize,
        zset_max_entries: hot.zset_max_listpack_entries.load(Relaxed) as usize,
        zset_max_value: hot.zset_max_listpack_value.load(Relaxed) as usize,
        set_max_intset: hot.set_max_intset_entries.load(Relaxed) as usize,
    }
}

/// A value the RDB format cannot express (TEMPORAL, WarpEngine's own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInRdb(pub &'static str);

/// Appends `value` as an RDB object: its type byte, then its body.
pub fn write_value(out: &mut Vec<u8>, value: &Value, enc: &Encodings) -> Result<(), NotInRdb> {
    match value {
        Value::Str(s) => {
            out.push(rdb_type::STRING);
            put_encoded_string(out, &s.as_slice(), enc.compress);
        }
        Value::List(l) => write_list(out, l, enc),
        Value::Hash(h) => write_hash(out, h, enc),
        Value::Set(s) => write_set(out, s, enc),
        Value::ZSet(z) => write_zset(out, z, enc),
        Value::Temporal(_) => return Err(NotInRdb("temporal")),
        Value::Stream(s) => super::rdb_stream::write_stream(out, s, enc),
    }
    Ok(())
}

/// Whether `write_value` can write the value (a new type decides here too).
pub fn has_rdb_form(value: &Value) -> bool {
    match value {
        Value::Str(_)
        | Value::List(_)
        | Value::Hash(_)
        | Value::Set(_)
        | Value::ZSet(_)
        | Value::Stream(_) => true,
        Value::Temporal(_) => false,
    }
}

/// Why an RDB object could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// An empty collection: Redis 7.0 skips such a key when it loads a file ("skipping empty
    /// key"), and RESTORE refuses it.
    Empty,
    /// Anything else, in the words Redis logs for the check that failed ("Ziplist integrity
    /// check failed.", "Duplicate set members detected", ...).
    Corrupt(&'static str),
}

/// A truncated object or a length that does not fit.
const SHORT: Unreadable = Unreadable::Corrupt("Short read or bad length reading the value");

/// Reads an RDB object (type byte, then body) into a value; Err for anything that is not a
/// well-formed, non-empty object of a type this server holds.
pub fn read_value(r: &mut Reader, enc: &Encodings) -> Result<Value, Unreadable> {
    let type_byte = r.byte().ok_or(SHORT)?;
    read_body(type_byte, r, enc)
}

/// Reads the body of an object of RDB type `type_byte`.
pub fn read_body(type_byte: u8, r: &mut Reader, enc: &Encodings) -> Result<Value, Unreadable> {
    use rdb_type::*;
    use Unreadable::Corrupt;
    // A packed blob's elements, or the check's failure in Redis's words.
    fn unpacked(
        r: &mut Reader,
        unpack: fn(&[u8]) -> Option<Vec<Vec<u8>>>,
        failed: &'static str,
    ) -> Result<Vec<Vec<u8>>, Unreadable> {
        unpack(&r.string().ok_or(SHORT)?).ok_or(Corrupt(failed))
    }
    match type_byte {
        STRING => Ok(Value::string(&r.string().ok_or(SHORT)?)),
        LIST => build_list(read_plain_strings(r, 1).ok_or(SHORT)?),
        LIST_ZIPLIST => build_list(unpacked(
            r,
            ziplist_entries,
            "List ziplist integrity check failed.",
        )?),
        LIST_QUICKLIST => read_quicklist_1(r),
        LIST_QUICKLIST_2 => read_quicklist_2(r),
        SET => build_set(
            read_plain_strings(r, 1).ok_or(SHORT)?,
            enc,
            "Duplicate set members detected",
        ),
        SET_INTSET => {
            let failed = "Intset integrity check failed.";
            build_set(unpacked(r, intset_members, failed)?, enc, failed)
        }
        HASH => build_hash(
            read_plain_strings(r, 2).ok_or(SHORT)?,
            enc,
            "Duplicate hash fields detected",
        ),
        HASH_ZIPMAP => {
            let failed = "Zipmap integrity check failed.";
            // Redis's check refuses an empty zipmap as corrupt (not as an empty key).
            let flat = unpacked(r, zipmap_entries, failed)?;
            if flat.is_empty() {
                return Err(Corrupt(failed));
            }
            build_hash(flat, enc, failed)
        }
        HASH_ZIPLIST => {
            let failed = "Hash ziplist integrity check failed.";
            build_hash(unpacked(r, ziplist_entries, failed)?, enc, failed)
        }
        HASH_LISTPACK => {
            let failed = "Hash listpack integrity check failed.";
            build_hash(unpacked(r, listpack_entries, failed)?, enc, failed)
        }
        ZSET | ZSET_2 => read_zset_plain(type_byte == ZSET_2, r, enc),
        ZSET_ZIPLIST => {
            let failed = "Zset ziplist integrity check failed.";
            let flat = unpacked(r, ziplist_entries, failed)?;
            build_zset(text_scores(flat).ok_or(Corrupt(failed))?, enc, failed)
        }
        ZSET_LISTPACK => {
            let failed = "Zset listpack integrity check failed.";
            let flat = unpacked(r, listpack_entries, failed)?;
            build_zset(text_scores(flat).ok_or(Corrupt(failed))?, enc, failed)
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 => {
            super::rdb_stream::read_stream(type_byte == STREAM_LISTPACKS_2, r)
        }
        // Modules and anything unknown.
        _ => Err(Corrupt("Unknown RDB encoding type")),
    }
}

// ---- writing --------------------------------------------------------------------------------

/// Redis's quicklist 2: nodes as RPUSH would have filled them (see `node_allows_insert`), each a listpack (container 2), or a plain node (container 1) for an element at or
/// over the packed threshold.
fn write_list(out: &mut Vec<u8>, list: &ListValue, enc: &Encodings) {
    const PLAIN: u64 = 1;
    const PACKED: u64 = 2;
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut current = Listpack::new();
    for element in list.iter() {
        if warpengine_storage::list::is_plain_element(element.len()) {
            if current.count > 0 {
                nodes.push((
                    PACKED,
                    std::mem::replace(&mut current, Listpack::new()).finish(),
                ));
            }
            nodes.push((PLAIN, element.to_vec()));
            continue;
        }
        if current.count > 0 && !node_allows_insert(enc.list_fill, &current, element.len()) {
            nodes.push((
                PACKED,
                std::mem::replace(&mut current, Listpack::new()).finish(),
            ));
        }
        current.push(element);
    }
    if current.count > 0 {
        nodes.push((PACKED, current.finish()));
    }
    out.push(rdb_type::LIST_QUICKLIST_2);
    put_len(out, nodes.len() as u64);
    for (container, blob) in &nodes {
        put_len(out, *container);
        put_encoded_string(out, blob, enc.compress);
    }
}

/// Whether a quicklist node takes one more element of `len` bytes, as Redis 7.0.15's
/// `_quicklistNodeAllowInsert` estimates it: the element plus 8 bytes of entry overhead, against
/// the fill's byte limit (negative fill) or its count limit and the 8 KB safety limit.
fn node_allows_insert(fill: i64, node: &Listpack, len: usize) -> bool {
    const SIZE_ESTIMATE_OVERHEAD: usize = 8;
    const SIZE_SAFETY_LIMIT: usize = 8192;
    const OPTIMIZATION_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    // The listpack as it stands (with its end byte), plus the element.
    let new_size = node.buf.len() + 1 + len + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = ((-fill - 1) as usize).min(OPTIMIZATION_LEVEL.len() - 1);
        new_size <= OPTIMIZATION_LEVEL[level]
    } else {
        // A node holds at least one element.
        new_size <= SIZE_SAFETY_LIMIT && (node.count as i64) < fill.max(1)
    }
}

fn write_hash(out: &mut Vec<u8>, hash: &HashValue, enc: &Encodings) {
    if hash.is_listpack() {
        let mut lp = Listpack::new();
        for (field, value) in hash.iter() {
            lp.push(field);
            lp.push(value);
        }
        out.push(rdb_type::HASH_LISTPACK);
        put_encoded_string(out, &lp.finish(), enc.compress);
    } else {
        out.push(rdb_type::HASH);
        put_len(out, hash.len() as u64);
        for (field, value) in hash.iter() {
            put_encoded_string(out, field, enc.compress);
            put_encoded_string(out, value, enc.compress);
        }
    }
}

fn write_set(out: &mut Vec<u8>, set: &SetValue, enc: &Encodings) {
    if set.encoding() == "intset" {
        let values: Vec<i64> = set.iter().filter_map(parse_strict_i64).collect();
        out.push(rdb_type::SET_INTSET);
        put_encoded_string(out, &intset_blob(values), enc.compress);
    } else {
        out.push(rdb_type::SET);
        put_len(out, set.len() as u64);
        for member in set.iter() {
            put_encoded_string(out, member, enc.compress);
        }
    }
}

/// An intset: element width (2, 4 or 8 bytes, the smallest that holds every value), count,
/// then the values ascending, all little-endian.
fn intset_blob(mut values: Vec<i64>) -> Vec<u8> {
    values.sort_unstable();
    let fits = |lo: i64, hi: i64| values.iter().all(|v| (lo..=hi).contains(v));
    let width: usize = if fits(i16::MIN as i64, i16::MAX as i64) {
        2
    } else if fits(i32::MIN as i64, i32::MAX as i64) {
        4
    } else {
        8
    };
    let mut blob = Vec::with_capacity(8 + width * values.len());
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        blob.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    blob
}

fn write_zset(out: &mut Vec<u8>, zset: &ZSetValue, enc: &Encodings) {
    if zset.is_listpack() {
        let mut lp = Listpack::new();
        for (member, score) in zset.iter() {
            lp.push(member);
            lp.push(format_double(score).as_bytes());
        }
        out.push(rdb_type::ZSET_LISTPACK);
        put_encoded_string(out, &lp.finish(), enc.compress);
    } else {
        // Redis writes a skiplist from its greatest element down.
        out.push(rdb_type::ZSET_2);
        put_len(out, zset.len() as u64);
        let top = zset.len().saturating_sub(1);
        for (member, score) in zset.iter_rev_from(top) {
            put_encoded_string(out, member, enc.compress);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
}

/// A listpack being built: `total bytes (u32) | count (u16) | entries | 0xff`, each entry its
/// encoding, data and back-length.
pub(super) struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

impl Listpack {
    const HEADER: usize = 6;

    pub(super) fn new() -> Listpack {
        Listpack {
            buf: vec![0; Self::HEADER],
            count: 0,
        }
    }

    /// Appends an element as Redis's `lpAppend` encodes it: a canonical integer as the
    /// smallest integer form, anything else as a string.
    pub(super) fn push(&mut self, element: &[u8]) {
        let start = self.buf.len();
        match parse_strict_i64(element) {
            Some(v) => self.put_int(v),
            None => self.put_str(element),
        }
        self.end_entry(start);
    }

    /// Appends an integer as Redis's `lpAppendInteger` does.
    pub(super) fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        self.put_int(v);
        self.end_entry(start);
    }

    /// Closes the entry that began at `start` with its back-length.
    fn end_entry(&mut self, start: usize) {
        let entry_len = self.buf.len() - start;
        put_backlen(&mut self.buf, entry_len);
        self.count += 1;
    }

    fn put_int(&mut self, v: i64) {
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            b.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
        } else if let Ok(v) = i16::try_from(v) {
            b.push(0xf1);
            b.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xf2);
            b.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            b.push(0xf3);
            b.extend_from_slice(&v.to_le_bytes());
        } else {
            b.push(0xf4);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn put_str(&mut self, s: &[u8]) {
        let b = &mut self.buf;
        let len = s.len();
        if len < 64 {
            b.push(0x80 | len as u8);
        } else if len < 4096 {
            b.extend_from_slice(&[0xe0 | (len >> 8) as u8, len as u8]);
        } else {
            b.push(0xf0);
            b.extend_from_slice(&(len as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(u16::MAX as usize) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// A listpack entry's back-length: its length in 7-bit groups, read right to left (the last
/// byte holds the low bits; every byte but the first written has its top bit set).
fn put_backlen(buf: &mut Vec<u8>, len: usize) {
    let groups = match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    for i in (0..groups).rev() {
        let group = ((len >> (7 * i)) & 127) as u8;
        buf.push(if i == groups - 1 { group } else { group | 128 });
    }
}

// ---- reading: the plain encodings -----------------------------------------------------------

/// A count, then `count * per_item` strings (a plain list, set or hash).
fn read_plain_strings(r: &mut Reader, per_item: u64) -> Option<Vec<Vec<u8>>> {
    let count = r.len()?.checked_mul(per_item)?;
    // Every string takes at least a byte: a count beyond what is left is a lie, not a reason
    // to reserve memory.
    let mut items = Vec::with_capacity(usize::try_from(count).ok()?.min(r.remaining()));
    for _ in 0..count {
        items.push(r.string()?);
    }
    Some(items)
}

fn read_zset_plain(
    binary_scores: bool,
    r: &mut Reader,
    enc: &Encodings,
) -> Result<Value, Unreadable> {
    let count = r.len().and_then(|n| usize::try_from(n).ok()).ok_or(SHORT)?;
    let mut entries = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let member = r.string().ok_or(SHORT)?;
        let score = if binary_scores {
            r.take(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        } else {
            read_text_double(r)
        };
        entries.push((member, score.ok_or(SHORT)?));
    }
    build_zset(entries, enc, "Duplicate zset fields detected")
}

/// RDB's old double: a length byte (253 NaN, 254 +inf, 255 -inf), then that many characters.
fn read_text_double(r: &mut Reader) -> Option<f64> {
    match r.byte()? {
        253 => Some(f64::NAN),
        254 => Some(f64::INFINITY),
        255 => Some(f64::NEG_INFINITY),
        n => parse_score(r.take(n as usize)?),
    }
}

/// A score as text (`strtod`'s forms Redis writes: digits, exponents, inf).
fn parse_score(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok().filter(|s| s.is_finite()),
    }
}

fn text_scores(flat: Vec<Vec<u8>>) -> Option<Vec<(Vec<u8>, f64)>> {
    if !flat.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(member), Some(score)) = (items.next(), items.next()) {
        out.push((member, parse_score(&score)?));
    }
    Some(out)
}

fn read_quicklist_1(r: &mut Reader) -> Result<Value, Unreadable> {
    let nodes = r.len().ok_or(SHORT)?;
    let mut elements = Vec::new();
    for _ in 0..nodes {
        // Redis skips empty nodes; an empty list as a whole is refused below.
        let blob = r.string().ok_or(SHORT)?;
        elements.extend(
            ziplist_entries(&blob).ok_or(Unreadable::Corrupt("Ziplist integrity check failed."))?,
        );
    }
    build_list(elements)
}

fn read_quicklist_2(r: &mut Reader) -> Result<Value, Unreadable> {
    const PLAIN: u64 = 1;
    const PACKED: u64 = 2;
    let nodes = r.len().ok_or(SHORT)?;
    let mut elements = Vec::new();
    for _ in 0..nodes {
        let container = r.len().ok_or(SHORT)?;
        if container != PLAIN && container != PACKED {
            return Err(Unreadable::Corrupt("Quicklist integrity check failed."));
        }
        let blob = r.string().ok_or(SHORT)?;
        if blob.is_empty() {
            return Err(SHORT);
        }
        match container {
            PLAIN => elements.push(blob),
            _ => elements.extend(
                listpack_entries(&blob)
                    .ok_or(Unreadable::Corrupt("Listpack integrity check failed."))?,
            ),
        }
    }
    build_list(elements)
}

// ---- reading: the packed encodings ----------------------------------------------------------

/// A listpack's elements (integers as their text), checked whole: header total and count,
/// every entry's encoding, bounds and back-length, and the terminator at the very end.
pub fn listpack_entries(lp: &[u8]) -> Option<Vec<Vec<u8>>> {
    if lp.len() < 7 {
        return None;
    }
    let total = u32::from_le_bytes(lp[..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    if total != lp.len() || lp[total - 1] != 0xff {
        return None;
    }
    let end = total - 1;
    let mut at = 6;
    let mut out = Vec::new();
    while at < end {
        let start = at;
        let b = lp[at];
        let (element, data_end) = match b {
            0x00..=0x7f => ((b as i64).to_string().into_bytes(), at + 1),
            0x80..=0xbf => slice_at(lp, at + 1, (b & 0x3f) as usize, end)?,
            0xc0..=0xdf => {
                let raw = ((b as i64 & 0x1f) << 8) | *lp.get(at + 1)? as i64;
                let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
                (v.to_string().into_bytes(), at + 2)
            }
            0xe0..=0xef => {
                let len = ((b as usize & 0x0f) << 8) | *lp.get(at + 1)? as usize;
                slice_at(lp, at + 2, len, end)?
            }
            0xf0 => {
                let len = u32::from_le_bytes(lp.get(at + 1..at + 5)?.try_into().ok()?) as usize;
                slice_at(lp, at + 5, len, end)?
            }
            0xf1..=0xf4 => {
                let width = [2usize, 3, 4, 8][(b - 0xf1) as usize];
                let bytes = lp.get(at + 1..at + 1 + width)?;
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(bytes);
                // Sign-extend from the top bit of the stored width.
                let shift = 64 - 8 * width as u32;
                let v = (i64::from_le_bytes(v) << shift) >> shift;
                (v.to_string().into_bytes(), at + 1 + width)
            }
            _ => return None,
        };
        if data_end > end {
            return None;
        }
        let mut expected = Vec::with_capacity(5);
        put_backlen(&mut expected, data_end - start);
        let backlen_end = data_end.checked_add(expected.len())?;
        if backlen_end > end || lp[data_end..backlen_end] != expected[..] {
            return None;
        }
        out.push(element);
        at = backlen_end;
    }
    if at != end || (count != u16::MAX as usize && count != out.len()) {
        return None;
    }
    Some(out)
}

/// `len` bytes at `at`, which must end by `end`; with the offset just past them.
fn slice_at(buf: &[u8], at: usize, len: usize, end: usize) -> Option<(Vec<u8>, usize)> {
    let stop = at.checked_add(len)?;
    if stop > end {
        return None;
    }
    Some((buf[at..stop].to_vec(), stop))
}

/// A ziplist's elements, checked whole: header bytes, tail offset and count, each entry's
/// previous-length and encoding, and the terminator at the very end.
pub fn ziplist_entries(zl: &[u8]) -> Option<Vec<Vec<u8>>> {
    const HEADER: usize = 10;
    if zl.len() < HEADER + 1 {
        return None;
    }
    let total = u32::from_le_bytes(zl[..4].try_into().ok()?) as usize;
    let tail = u32::from_le_bytes(zl[4..8].try_into().ok()?) as usize;
    let count = u16::from_le_bytes([zl[8], zl[9]]) as usize;
    if total != zl.len() || zl[total - 1] != 0xff {
        return None;
    }
    let end = total - 1;
    let mut at = HEADER;
    let mut prev_len = 0usize;
    let mut last_start = HEADER;
    let mut out = Vec::new();
    while at < end {
        let start = at;
        let (recorded_prev, after_prev) = if zl[at] < 254 {
            (zl[at] as usize, at + 1)
        } else if zl[at] == 254 {
            let p = u32::from_le_bytes(zl.get(at + 1..at + 5)?.try_into().ok()?) as usize;
            (p, at + 5)
        } else {
            return None;
        };
        if recorded_prev != prev_len {
            return None;
        }
        at = after_prev;
        let b = *zl.get(at)?;
        let (element, entry_end) = match b >> 6 {
            0 => slice_at(zl, at + 1, (b & 0x3f) as usize, end)?,
            1 => {
                let len = ((b as usize & 0x3f) << 8) | *zl.get(at + 1)? as usize;
                slice_at(zl, at + 2, len, end)?
            }
            2 => {
                let len = u32::from_be_bytes(zl.get(at + 1..at + 5)?.try_into().ok()?) as usize;
                slice_at(zl, at + 5, len, end)?
            }
            _ => {
                let (v, width) = match b {
                    0xc0 => (i16::from_le_bytes(take_n(zl, at + 1)?) as i64, 2),
                    0xd0 => (i32::from_le_bytes(take_n(zl, at + 1)?) as i64, 4),
                    0xe0 => (i64::from_le_bytes(take_n(zl, at + 1)?), 8),
                    0xf0 => {
                        let [a, b2, c]: [u8; 3] = take_n(zl, at + 1)?;
                        ((i32::from_le_bytes([0, a, b2, c]) >> 8) as i64, 3)
                    }
                    0xfe => (zl.get(at + 1).map(|&x| x as i8 as i64)?, 1),
                    0xf1..=0xfd => ((b & 0x0f) as i64 - 1, 0),
                    _ => return None,
                };
                if at + 1 + width > end {
                    return None;
                }
                (v.to_string().into_bytes(), at + 1 + width)
            }
        };
        out.push(element);
        prev_len = entry_end - start;
        last_start = start;
        at = entry_end;
    }
    let expected_tail = if out.is_empty() { HEADER } else { last_start };
    if at != end || tail != expected_tail || (count != u16::MAX as usize && count != out.len()) {
        return None;
    }
    Some(out)
}

fn take_n<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// An intset's members as text: width 2, 4 or 8, count, then strictly ascending values.
pub fn intset_members(blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    if blob.len() < 8 {
        return None;
    }
    let width = u32::from_le_bytes(blob[..4].try_into().ok()?) as usize;
    let count = u32::from_le_bytes(blob[4..8].try_into().ok()?) as usize;
    if !matches!(width, 2 | 4 | 8) || count.checked_mul(width)?.checked_add(8)? != blob.len() {
        return None;
    }
    let mut previous: Option<i64> = None;
    let mut out = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes(chunk.try_into().ok()?) as i64,
            4 => i32::from_le_bytes(chunk.try_into().ok()?) as i64,
            _ => i64::from_le_bytes(chunk.try_into().ok()?),
        };
        if previous.is_some_and(|p| p >= v) {
            return None;
        }
        previous = Some(v);
        out.push(v.to_string().into_bytes());
    }
    Some(out)
}

/// A zipmap's fields and values (Redis 2.x small hashes): a count byte, then `len field len
/// free value [free bytes]` pairs, then 0xff at the very end.
pub fn zipmap_entries(zm: &[u8]) -> Option<Vec<Vec<u8>>> {
    fn zipmap_len(zm: &[u8], at: &mut usize) -> Option<usize> {
        let b = *zm.get(*at)?;
        match b {
            0..=253 => {
                *at += 1;
                Some(b as usize)
            }
            254 => {
                let len = u32::from_le_bytes(zm.get(*at + 1..*at + 5)?.try_into().ok()?);
                *at += 5;
                Some(len as usize)
            }
            255 => None,
        }
    }
    let end = zm.len().checked_sub(1)?;
    if zm.len() < 2 || zm[end] != 0xff {
        return None;
    }
    let mut at = 1;
    let mut out = Vec::new();
    while at < end {
        let field_len = zipmap_len(zm, &mut at)?;
        let (field, next) = slice_at(zm, at, field_len, end)?;
        at = next;
        let value_len = zipmap_len(zm, &mut at)?;
        let free = *zm.get(at)? as usize;
        let (value, next) = slice_at(zm, at + 1, value_len, end)?;
        at = next.checked_add(free)?;
        out.push(field);
        out.push(value);
    }
    (at == end).then_some(out)
}

// ---- building values ------------------------------------------------------------------------

/// A list; an empty one is refused, as Redis refuses empty keys.
fn build_list(elements: Vec<Vec<u8>>) -> Result<Value, Unreadable> {
    if elements.is_empty() {
        return Err(Unreadable::Empty);
    }
    let mut list = ListValue::default();
    for e in &elements {
        list.push(End::Tail, e);
    }
    Ok(Value::List(Box::new(list)))
}

/// A set in the form SADD would give it; a duplicate member is refused (`duplicate`: how Redis
/// words that for this encoding).
fn build_set(
    members: Vec<Vec<u8>>,
    enc: &Encodings,
    duplicate: &'static str,
) -> Result<Value, Unreadable> {
    if members.is_empty() {
        return Err(Unreadable::Empty);
    }
    let mut set = SetValue::new_intset();
    for m in &members {
        if !set.add(m, enc.set_max_intset) {
            return Err(Unreadable::Corrupt(duplicate));
        }
    }
    Ok(Value::Set(Box::new(set)))
}

/// A hash in the form HSET would give it; a duplicate field is refused.
fn build_hash(
    flat: Vec<Vec<u8>>,
    enc: &Encodings,
    duplicate: &'static str,
) -> Result<Value, Unreadable> {
    if flat.is_empty() {
        return Err(Unreadable::Empty);
    }
    if !flat.len().is_multiple_of(2) {
        return Err(Unreadable::Corrupt(duplicate));
    }
    let mut hash = HashValue::new();
    for pair in flat.chunks_exact(2) {
        if !hash.set(&pair[0], &pair[1], enc.hash_max_entries, enc.hash_max_value) {
            return Err(Unreadable::Corrupt(duplicate));
        }
    }
    Ok(Value::Hash(Box::new(hash)))
}

/// A sorted set (a listpack when within the limits); duplicates and NaN scores are refused.
fn build_zset(
    entries: Vec<(Vec<u8>, f64)>,
    enc: &Encodings,
    duplicate: &'static str,
) -> Result<Value, Unreadable> {
    if entries.is_empty() {
        return Err(Unreadable::Empty);
    }
    let mut seen = HashSet::with_capacity(entries.len());
    for (member, score) in &entries {
        if score.is_nan() {
            return Err(Unreadable::Corrupt("Zset with NAN score detected"));
        }
        if !seen.insert(&member[..]) {
            return Err(Unreadable::Corrupt(duplicate));
        }
    }
    let listpack = entries.len() <= enc.zset_max_entries
        && entries.iter().all(|(m, _)| m.len() <= enc.zset_max_value);
    let entries = entries
        .into_iter()
        .map(|(m, s)| (Bytes::from(m), s))
        .collect();
    Ok(Value::ZSet(Box::new(ZSetValue::from_entries(
        entries, listpack,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let enc = Encodings::default();
        let mut out = Vec::new();
        write_value(&mut out, value, &enc).unwrap();
        read_value(&mut Reader::new(&out), &enc).expect("reads back")
    }

    #[test]
    fn listpack_integers_and_strings_round_trip() {
        let values: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "4095",
            "-4096",
            "4096",
            "32767",
            "-32768",
            "32768",
            "8388607",
            "-8388608",
            "8388608",
            "2147483647",
            "-2147483648",
            "2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "007",
            "-0",
            "",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            vec![b'x'; 63],
            vec![b'y'; 64],
            vec![b'z'; 4095],
            vec![b'w'; 4096],
        ])
        .collect();
        let mut lp = Listpack::new();
        for v in &values {
            lp.push(v);
        }
        assert_eq!(listpack_entries(&lp.finish()), Some(values));
    }

    #[test]
    fn backlen_matches_listpack_c() {
        for len in [1usize, 127, 128, 16382, 16383, 2097150, 2097151] {
            let mut b = Vec::new();
            put_backlen(&mut b, len);
            // Read right to left as lpDecodeBacklen does.
            let mut v = 0usize;
            for (shift, byte) in b.iter().rev().enumerate() {
                v |= ((byte & 127) as usize) << (7 * shift);
            }
            assert_eq!(v, len, "{len}");
        }
    }

    #[test]
    fn every_type_round_trips() {
        let mut list = ListValue::default();
        for i in 0..1000 {
            list.push(End::Tail, format!("element-{i}").as_bytes());
        }
        let back = round_trip(&Value::List(Box::new(list.clone())));
        let Value::List(back) = back else { panic!() };
        assert!(back.iter().eq(list.iter()));

        let mut zset = ZSetValue::new(false);
        for i in 0..300 {
            zset.insert(format!("m{i}").as_bytes(), i as f64 / 3.0);
        }
        let Value::ZSet(back) = round_trip(&Value::ZSet(Box::new(zset.clone()))) else {
            panic!()
        };
        assert!(back.iter().eq(zset.iter()));
    }

    #[test]
    fn truncated_and_empty_packs_are_refused() {
        let mut lp = Listpack::new();
        lp.push(b"abc");
        let blob = lp.finish();
        for cut in 0..blob.len() {
            assert_eq!(listpack_entries(&blob[..cut]), None);
        }
        assert_eq!(build_list(Vec::new()).err(), Some(Unreadable::Empty));
        assert_eq!(intset_members(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 5, 0]), None);
    }
}
