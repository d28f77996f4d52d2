//! Streams in RDB: Redis 7.0's `RDB_TYPE_STREAM_LISTPACKS_2` (what it writes) and the older
//! `RDB_TYPE_STREAM_LISTPACKS` (Redis 5 to 6.2, read only).
//!
//! The body is the radix tree's nodes, each its master ID (16 bytes, big-endian ms then seq)
//! and a listpack in t_stream.c's layout:
//!
//! ```text
//! master entry: count | deleted | num-fields | field_1 .. field_N | 0
//! each entry:   flags | ms-diff | seq-diff | [num-fields | field_1 value_1 ..] or
//!               [value_1 .. value_N when flags has SAMEFIELDS] | lp-count
//! ```
//!
//! then the length, last ID, (type 19:) first ID, max deleted ID and entries added, and the
//! consumer groups: name, last ID, (type 19:) entries read, the group's pending entries list
//! (raw 16-byte ID, delivery time as 8 little-endian bytes, delivery count), and its consumers
//! (name, seen time, the raw IDs of their pending entries).
//!
//! Reading checks everything Redis's deep sanitization checks (`streamValidateListpackIntegrity`
//! and `rdbLoadObject`'s consumer-group checks) and more: entry IDs strictly ascending across
//! the whole stream and not above the last ID, the master entry's live and deleted counts
//! against the entries' flags, the length against the live entries. The stream keeps the
//! saved nodes, deleted entries included, so DUMP after RESTORE gives back the same bytes.

use std::collections::BTreeMap;

use warpengine_storage::stream::{
    ConsumerGroup, SavedEntry, StreamId, StreamValue, ENTRIES_READ_UNKNOWN,
};
use warpengine_storage::value::parse_strict_i64;
use warpengine_storage::Value;

use super::rdb::{put_encoded_string, put_len, Reader};
use super::rdb_value::{listpack_entries, rdb_type, Encodings, Listpack, Unreadable};

/// Entry flags (t_stream.c's `STREAM_ITEM_FLAG_*`).
const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;

/// A stream ID as the radix tree keys it: ms then seq, both big-endian.
fn id_key(id: StreamId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

fn id_from_key(key: &[u8]) -> Option<StreamId> {
    let key: &[u8; 16] = key.try_into().ok()?;
    Some(StreamId::new(
        u64::from_be_bytes(key[..8].try_into().ok()?),
        u64::from_be_bytes(key[8..].try_into().ok()?),
    ))
}

// ---- writing --------------------------------------------------------------------------------

/// Appends a stream as Redis 7.0's `rdbSaveObject` does (type byte 19, then the body).
pub fn write_stream(out: &mut Vec<u8>, stream: &StreamValue, enc: &Encodings) {
    out.push(rdb_type::STREAM_LISTPACKS_2);
    let nodes = stream.stored_nodes();
    put_len(out, nodes.len() as u64);
    for node in &nodes {
        put_encoded_string(out, &id_key(node.master), enc.compress);
        put_encoded_string(out, &node_listpack(node), enc.compress);
    }
    put_len(out, stream.len());
    for id in [stream.last_id, stream.first_id, stream.max_deleted_id] {
        put_id(out, id);
    }
    put_len(out, stream.entries_added);
    put_len(out, stream.groups.len() as u64);
    for (name, group) in &stream.groups {
        put_encoded_string(out, name, enc.compress);
        put_id(out, group.last_id);
        // -1 (unknown) goes out as Redis's `rdbSaveLen` of a negative long long: 2^64 - 1.
        put_len(out, group.entries_read as u64);
        put_len(out, group.pending.len() as u64);
        for (id, pending) in &group.pending {
            out.extend_from_slice(&id_key(*id));
            out.extend_from_slice(&pending.delivery_time.to_le_bytes());
            put_len(out, pending.delivery_count);
        }
        put_len(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            put_encoded_string(out, name, enc.compress);
            out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            put_len(out, consumer.pending.len() as u64);
            for id in &consumer.pending {
                out.extend_from_slice(&id_key(*id));
            }
        }
    }
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

/// A node's listpack as `streamAppendItem` leaves it (deleted entries flagged in place).
fn node_listpack(node: &warpengine_storage::stream::StoredNode) -> Vec<u8> {
    let mut lp = Listpack::new();
    let deleted = node.entries.len() as i64 - node.live as i64;
    lp.push_int(node.live as i64);
    lp.push_int(deleted);
    lp.push_int(node.master_fields.len() as i64);
    for field in &node.master_fields {
        lp.push(field);
    }
    lp.push_int(0);
    for entry in &node.entries {
        // Redis compares with the master fields on every append, the node's first entry
        // (whose fields the master entry holds) included.
        let same = entry.pairs.len() == node.master_fields.len()
            && entry
                .pairs
                .iter()
                .zip(&node.master_fields)
                .all(|((f, _), m)| f == m);
        let mut flags = if same { FLAG_SAME_FIELDS } else { 0 };
        if entry.deleted {
            flags |= FLAG_DELETED;
        }
        lp.push_int(flags);
        // Both deltas as Redis computes them: unsigned differences read as int64.
        lp.push_int(entry.id.ms.wrapping_sub(node.master.ms) as i64);
        lp.push_int(entry.id.seq.wrapping_sub(node.master.seq) as i64);
        let fields = entry.pairs.len() as i64;
        if same {
            for (_, value) in &entry.pairs {
                lp.push(value);
            }
            lp.push_int(fields + 3);
        } else {
            lp.push_int(fields);
            for (field, value) in &entry.pairs {
                lp.push(field);
                lp.push(value);
            }
            lp.push_int(2 * fields + 4);
        }
    }
    lp.finish()
}

// ---- reading --------------------------------------------------------------------------------

/// Reads a stream body (type 15, or 19 with `v2`); Err for anything malformed, in Redis's
/// words where it has them.
pub fn read_stream(v2: bool, r: &mut Reader) -> Result<Value, Unreadable> {
    let mut failed = "Stream object loading failed.";
    read_stream_body(v2, r, &mut failed).ok_or(Unreadable::Corrupt(failed))
}

/// `read_stream`'s work; `failed` is set to the reason Redis gives for the checks it names.
fn read_stream_body(v2: bool, r: &mut Reader, failed: &mut &'static str) -> Option<Value> {
    let node_count = r.len()?;
    let mut nodes: Vec<Vec<SavedEntry>> = Vec::new();
    let mut live = 0u64;
    let mut previous_master: Option<StreamId> = None;
    let mut previous_id: Option<StreamId> = None;
    for _ in 0..node_count {
        let master = id_from_key(&r.string()?)?;
        if previous_master.is_some_and(|p| p >= master) {
            return None;
        }
        previous_master = Some(master);
        let Some(node) = read_node(master, &r.string()?, &mut previous_id) else {
            *failed = "Stream listpack integrity check failed.";
            return None;
        };
        live += node.iter().filter(|e| !e.deleted).count() as u64;
        nodes.push(node);
    }
    let length = r.len()?;
    let last_id = read_id(r)?;
    if length != live || previous_id.is_some_and(|p| p > last_id) {
        return None;
    }
    let mut stream = StreamValue::from_saved_nodes(nodes);
    stream.last_id = last_id;
    if v2 {
        stream.first_id = read_id(r)?;
        stream.max_deleted_id = read_id(r)?;
        stream.entries_added = r.len()?;
    } else {
        // What Redis 7.0 derives for a stream saved before these were kept.
        stream.first_id = stream.edge(false).map_or(StreamId::MIN, |(id, _)| id);
        stream.max_deleted_id = StreamId::MIN;
        stream.entries_added = length;
    }
    // Lag arithmetic subtracts the length and read counters from this.
    if stream.entries_added < length || stream.entries_added >= i64::MAX as u64 {
        return None;
    }
    let group_count = r.len()?;
    for _ in 0..group_count {
        let name = r.string()?;
        let last_id = read_id(r)?;
        let entries_read = if v2 {
            let read = r.len()? as i64;
            if read < ENTRIES_READ_UNKNOWN {
                return None;
            }
            read
        } else {
            stream.estimate_distance(last_id)
        };
        let group = read_group(r, ConsumerGroup::new(last_id, entries_read), failed)?;
        if stream.groups.insert(name.into(), group).is_some() {
            return None;
        }
    }
    Some(Value::Stream(Box::new(stream)))
}

fn read_id(r: &mut Reader) -> Option<StreamId> {
    Some(StreamId::new(r.len()?, r.len()?))
}

fn raw_id(r: &mut Reader) -> Option<StreamId> {
    id_from_key(r.take(16)?)
}

fn millisecond_time(r: &mut Reader) -> Option<u64> {
    Some(u64::from_le_bytes(r.take(8)?.try_into().ok()?))
}

/// A group's pending entries list and consumers, into `group`. Every pending entry must belong
/// to exactly one consumer, and every consumer's entry must be in the group's list.
fn read_group(
    r: &mut Reader,
    mut group: ConsumerGroup,
    failed: &mut &'static str,
) -> Option<ConsumerGroup> {
    // ID -> (delivery time, delivery count, owner once a consumer claims it).
    let mut pending: BTreeMap<StreamId, (u64, u64, Option<usize>)> = BTreeMap::new();
    for _ in 0..r.len()? {
        let id = raw_id(r)?;
        let time = millisecond_time(r)?;
        let count = r.len()?;
        if pending.insert(id, (time, count, None)).is_some() {
            return None;
        }
    }
    let mut consumers: Vec<(Vec<u8>, u64)> = Vec::new();
    for _ in 0..r.len()? {
        let name = r.string()?;
        let seen_time = millisecond_time(r)?;
        let index = consumers.len();
        for _ in 0..r.len()? {
            let owner = &mut pending.get_mut(&raw_id(r)?)?.2;
            if owner.is_some() {
                return None;
            }
            *owner = Some(index);
        }
        consumers.push((name, seen_time));
    }
    for (name, seen_time) in &consumers {
        let (consumer, created) = group.consumer_or_create(name, *seen_time);
        if !created {
            *failed = "Duplicate stream consumer detected.";
            return None;
        }
        consumer.seen_time = *seen_time;
    }
    for (id, (time, count, owner)) in pending {
        group.assign(id, &consumers[owner?].0, time, count);
    }
    Some(group)
}

/// One node's listpack, checked as `streamValidateListpackIntegrity` checks it deeply plus
/// the order of IDs; its entries, deleted ones included.
fn read_node(
    master: StreamId,
    lp: &[u8],
    previous_id: &mut Option<StreamId>,
) -> Option<Vec<SavedEntry>> {
    let elements = listpack_entries(lp)?;
    let mut items = elements.into_iter();
    let int = |e: Option<Vec<u8>>| parse_strict_i64(&e?);
    let count = int(items.next())?;
    let deleted = int(items.next())?;
    let master_field_count = int(items.next())?;
    if count < 0 || deleted < 0 || master_field_count < 1 {
        return None;
    }
    let mut master_fields = Vec::new();
    for _ in 0..master_field_count {
        master_fields.push(items.next()?);
    }
    if int(items.next())? != 0 {
        return None;
    }
    let (mut live_seen, mut deleted_seen) = (0i64, 0i64);
    let mut entries = Vec::new();
    while items.len() > 0 {
        let flags = int(items.next())?;
        if !(0..=FLAG_DELETED | FLAG_SAME_FIELDS).contains(&flags) {
            return None;
        }
        let ms_delta = int(items.next())?;
        let seq_delta = int(items.next())?;
        let id = StreamId::new(
            master.ms.wrapping_add(ms_delta as u64),
            master.seq.wrapping_add(seq_delta as u64),
        );
        if id < master || previous_id.is_some_and(|p| p >= id) {
            return None;
        }
        *previous_id = Some(id);
        let mut pairs = Vec::new();
        let expected_lp_count = if flags & FLAG_SAME_FIELDS != 0 {
            for field in &master_fields {
                pairs.push((field.clone(), items.next()?));
            }
            master_field_count + 3
        } else {
            let fields = int(items.next())?;
            if fields < 1 {
                return None;
            }
            for _ in 0..fields {
                pairs.push((items.next()?, items.next()?));
            }
            2 * fields + 4
        };
        if int(items.next())? != expected_lp_count {
            return None;
        }
        let is_deleted = flags & FLAG_DELETED != 0;
        if is_deleted {
            deleted_seen += 1;
        } else {
            live_seen += 1;
        }
        entries.push(SavedEntry {
            id,
            deleted: is_deleted,
            pairs,
        });
    }
    // A node without live entries is never written (Redis drops a node with its last one).
    (live_seen == count && deleted_seen == deleted && count > 0).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warpengine_storage::stream::Trim;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn sample() -> StreamValue {
        let mut s = StreamValue::new();
        for i in 1..=250u64 {
            let v = i.to_string();
            s.append(id(i, 0), &[(b"f", v.as_bytes()), (b"g", b"text")]);
        }
        s.append(id(251, 3), &[(b"other", b"x")]);
        s.delete(id(5, 0));
        s.max_deleted_id = id(5, 0);
        s.trim(Trim::MaxLen(200), false, 0);
        let mut group = ConsumerGroup::new(id(240, 0), 240);
        group.consumer_or_create(b"alice", 1000);
        group.consumer_or_create(b"bob", 2000);
        group.assign(id(230, 0), b"alice", 5, 2);
        group.assign(id(231, 0), b"bob", 6, 1);
        s.groups.insert(b"g1"[..].into(), group);
        s.groups
            .insert(b"empty"[..].into(), ConsumerGroup::new(StreamId::MIN, -1));
        s
    }

    fn dump(s: &StreamValue) -> Vec<u8> {
        let mut out = Vec::new();
        write_stream(&mut out, s, &Encodings::default());
        out
    }

    type OwnedEntry = (StreamId, Vec<(Vec<u8>, Vec<u8>)>);

    fn entries(s: &StreamValue) -> Vec<OwnedEntry> {
        s.range(StreamId::MIN, StreamId::MAX, false, 0)
            .into_iter()
            .map(|(id, pairs)| {
                let pairs = pairs
                    .iter()
                    .map(|(f, v)| (f.to_vec(), v.to_vec()))
                    .collect();
                (id, pairs)
            })
            .collect()
    }

    #[test]
    fn streams_round_trip_with_groups() {
        let s = sample();
        let bytes = dump(&s);
        let mut r = Reader::new(&bytes[1..]);
        let Ok(Value::Stream(back)) = read_stream(true, &mut r) else {
            panic!("reads back")
        };
        assert!(r.is_empty());
        assert_eq!(entries(&back), entries(&s));
        assert_eq!(back.len(), s.len());
        assert_eq!(
            (back.last_id, back.first_id, back.max_deleted_id),
            (s.last_id, s.first_id, s.max_deleted_id)
        );
        assert_eq!(back.entries_added, s.entries_added);
        let g = &back.groups[&b"g1"[..]];
        assert_eq!((g.last_id, g.entries_read), (id(240, 0), 240));
        assert_eq!(g.pending[&id(231, 0)].consumer[..], b"bob"[..]);
        assert_eq!(g.consumers[&b"alice"[..]].seen_time, 1000);
        assert_eq!(back.groups[&b"empty"[..]].entries_read, -1);
        // The saved nodes are kept as they were: written again, the same bytes.
        assert_eq!(dump(&back), bytes);
    }

    #[test]
    fn pending_entries_need_exactly_one_consumer() {
        let dumped_with = |edit: &dyn Fn(&mut ConsumerGroup)| {
            let mut s = StreamValue::new();
            s.append(id(1, 0), &[(b"a", b"1")]);
            let mut group = ConsumerGroup::new(id(1, 0), 1);
            group.consumer_or_create(b"c", 7);
            group.consumer_or_create(b"d", 7);
            group.assign(id(1, 0), b"c", 9, 1);
            edit(&mut group);
            s.groups.insert(b"g"[..].into(), group);
            let bytes = dump(&s);
            read_stream(true, &mut Reader::new(&bytes[1..])).ok()
        };
        assert!(dumped_with(&|_| {}).is_some());
        let broken: [(&[u8], StreamId); 3] = [
            // Listed by a second consumer too (Redis 7.0 accepts this and shares the entry).
            (b"d", id(1, 0)),
            // A consumer's entry missing from the group's list.
            (b"c", id(5, 0)),
            // Listed by no consumer (its owner's list emptied below).
            (b"", id(1, 0)),
        ];
        for (consumer, pending) in broken {
            let edit = |g: &mut ConsumerGroup| match g.consumers.get_mut(consumer) {
                Some(c) => {
                    c.pending.insert(pending);
                }
                None => g.consumers.get_mut(&b"c"[..]).unwrap().pending.clear(),
            };
            assert!(dumped_with(&edit).is_none(), "{consumer:?} {pending:?}");
        }
    }

    #[test]
    fn every_truncation_and_byte_flip_is_refused_or_whole() {
        let mut s = StreamValue::new();
        s.append(id(1, 0), &[(b"a", b"1")]);
        s.append(id(2, 5), &[(b"b", b"2"), (b"c", b"3")]);
        let mut group = ConsumerGroup::new(id(2, 5), 2);
        group.consumer_or_create(b"c", 7);
        group.assign(id(1, 0), b"c", 9, 1);
        s.groups.insert(b"g"[..].into(), group);
        let enc = Encodings {
            compress: false,
            ..Encodings::default()
        };
        let mut bytes = Vec::new();
        write_stream(&mut bytes, &s, &enc);
        let body = &bytes[1..];
        for cut in 0..body.len() {
            assert!(read_stream(true, &mut Reader::new(&body[..cut])).is_err());
        }
        for at in 0..body.len() {
            for bit in 0..8 {
                let mut bad = body.to_vec();
                bad[at] ^= 1 << bit;
                // Never a panic; whatever reads back is a stream whose entries can be walked.
                if let Ok(Value::Stream(v)) = read_stream(true, &mut Reader::new(&bad)) {
                    assert_eq!(entries(&v).len() as u64, v.len());
                }
            }
        }
    }
}
