//! The stream type: entries in ID order, packed as Redis packs them, and consumer groups.
//!
//! Entries live in nodes of up to `stream-node-max-entries` entries and `stream-node-max-bytes`
//! bytes, kept in a `BTreeMap` under the ID of the node's first ("master") entry, as Redis
//! keeps listpacks in a radix tree. A node is one byte buffer: each entry is its ID as a delta
//! from the master ID (the milliseconds' delta shares a varint with two flag bits), then its
//! fields and values; an entry whose field names are the master entry's stores only its values. XDEL only flags an entry as deleted; a node goes
//! away when its last live entry does. So an entry costs a few bytes beyond its values, and no
//! allocation of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::packed::{get_uvarint as get_varint, put_uvarint as put_varint};

/// `stream-node-max-entries` (high 32 bits) and `stream-node-max-bytes` (low 32 bits), 0: no
/// limit. Set by the server from its configuration.
static NODE_LIMITS: AtomicU64 = AtomicU64::new(100 << 32 | 4096);

/// Sets `stream-node-max-entries` and `stream-node-max-bytes` for nodes started from now on.
pub fn set_node_limits(entries: i64, bytes: i64) {
    let entries = entries.clamp(0, u32::MAX as i64) as u64;
    let bytes = bytes.clamp(0, u32::MAX as i64) as u64;
    NODE_LIMITS.store(entries << 32 | bytes, Ordering::Relaxed);
}

/// `stream-node-max-entries` (XADD's and XTRIM's default LIMIT for `~` derives from it).
pub fn node_max_entries() -> usize {
    node_limits().0
}

fn node_limits() -> (usize, usize) {
    let v = NODE_LIMITS.load(Ordering::Relaxed);
    ((v >> 32) as usize, (v & 0xffff_ffff) as usize)
}

/// A stream entry ID: milliseconds and a sequence number, ordered as a pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(&self) -> bool {
        *self == StreamId::MIN
    }

    /// The next ID up, None past the last possible one.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID, None before 0-0.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// `ms-seq`, as replies spell an ID.
    pub fn to_text(self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }
}

/// Flags in the two low bits of an entry's first varint (so in its first byte, where XDEL can
/// set DELETED in place).
const DELETED: u8 = 1;
/// The entry's field names are the master entry's: only its values are stored.
const SAME_FIELDS: u8 = 2;
const FLAG_BITS: u32 = 2;
/// An entry whose milliseconds lie this far past its node's master starts a node of its own
/// (so that the delta and the flags share one u64).
const MAX_MS_DELTA: u64 = 1 << 60;

/// Reads an entry's first varint: its flags and milliseconds' delta.
fn get_head(buf: &[u8], pos: &mut usize) -> (u8, u64) {
    let head = get_varint(buf, pos);
    ((head & ((1 << FLAG_BITS) - 1)) as u8, head >> FLAG_BITS)
}

fn get_slice<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let len = get_varint(buf, pos) as usize;
    let s = &buf[*pos..*pos + len];
    *pos += len;
    s
}

/// One packed node of entries (see the module's documentation).
#[derive(Clone, Debug, Default)]
struct Node {
    buf: Vec<u8>,
    /// Entries not deleted.
    live: u32,
    /// Entries including deleted ones.
    total: u32,
    /// The size Redis's listpack for this node would have, less the master entry's live and
    /// deleted counters (which XDEL rewrites): `stream-node-max-bytes` limits that listpack
    /// size, so nodes split where Redis splits them.
    listpack_fixed: usize,
}

/// Redis's largest stream listpack (`STREAM_LISTPACK_MAX_SIZE`), the byte limit when
/// `stream-node-max-bytes` is 0 or above it.
const LISTPACK_MAX_SIZE: usize = 1 << 30;

/// Bytes a listpack entry for an integer takes (`lpAppendInteger`): encoding and data, then a
/// one-byte back-length.
fn listpack_int_size(v: i64) -> usize {
    let data = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if i16::try_from(v).is_ok() {
        3
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        4
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        9
    };
    data + 1
}

/// Bytes a listpack entry for `element` takes (`lpAppend`: an integer's text as an integer).
fn listpack_element_size(element: &[u8]) -> usize {
    if let Some(v) = crate::value::parse_strict_i64(element) {
        return listpack_int_size(v);
    }
    let len = element.len();
    let entry = len
        + if len < 64 {
            1
        } else if len < 4096 {
            2
        } else {
            5
        };
    // lpEncodeBacklen: one byte up to 127, one more past each of these limits.
    let backlen = 1 + [127, 16382, 2097150, 268435454]
        .iter()
        .filter(|&&limit| entry > limit)
        .count();
    entry + backlen
}

/// One decoded entry: where it starts in its node, its flags, ID and field/value pairs.
struct Decoded<'a> {
    offset: usize,
    flags: u8,
    id: StreamId,
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl Node {
    /// The master entry's field names.
    fn master_fields(&self) -> Vec<&[u8]> {
        let mut pos = 0;
        get_head(&self.buf, &mut pos);
        get_varint(&self.buf, &mut pos);
        let count = get_varint(&self.buf, &mut pos) as usize;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            fields.push(get_slice(&self.buf, &mut pos));
            get_slice(&self.buf, &mut pos);
        }
        fields
    }

    /// Every entry, deleted ones included, in ID order.
    fn decode_all(&self, master: StreamId) -> Vec<Decoded<'_>> {
        let master_fields = self.master_fields();
        let mut out = Vec::with_capacity(self.total as usize);
        let mut pos = 0;
        while pos < self.buf.len() {
            out.push(self.decode_at(master, &master_fields, &mut pos));
        }
        out
    }

    /// The entry at `pos` (which then moves past it).
    fn decode_at<'a>(
        &'a self,
        master: StreamId,
        master_fields: &[&'a [u8]],
        pos: &mut usize,
    ) -> Decoded<'a> {
        let buf = &self.buf[..];
        let offset = *pos;
        let (flags, id) = Self::head_at(buf, master, pos);
        let mut pairs;
        if flags & SAME_FIELDS != 0 {
            pairs = Vec::with_capacity(master_fields.len());
            for field in master_fields {
                pairs.push((*field, get_slice(buf, pos)));
            }
        } else {
            let count = get_varint(buf, pos) as usize;
            pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let field = get_slice(buf, pos);
                pairs.push((field, get_slice(buf, pos)));
            }
        }
        Decoded {
            offset,
            flags,
            id,
            pairs,
        }
    }

    /// The flags and ID of the entry at `pos`, which then moves to its fields.
    fn head_at(buf: &[u8], master: StreamId, pos: &mut usize) -> (u8, StreamId) {
        let (flags, ms_delta) = get_head(buf, pos);
        let seq = get_varint(buf, pos);
        let id = if ms_delta == 0 {
            StreamId::new(master.ms, master.seq + seq)
        } else {
            StreamId::new(master.ms + ms_delta, seq)
        };
        (flags, id)
    }

    /// Moves `pos` past the fields of an entry whose head `head_at` read.
    fn skip_fields(&self, flags: u8, master_fields: usize, pos: &mut usize) {
        let values = if flags & SAME_FIELDS != 0 {
            master_fields
        } else {
            2 * get_varint(&self.buf, pos) as usize
        };
        for _ in 0..values {
            get_slice(&self.buf, pos);
        }
    }

    /// The same in descending order: the entries' heads are read forward (the layout has no
    /// way back) to find where the live ones in range start, then only those `f` visits are
    /// decoded, from the last (XREVRANGE COUNT 1, or the last entry, decodes one).
    fn walk_backward<'a>(
        &'a self,
        master: StreamId,
        start: StreamId,
        end: StreamId,
        f: &mut impl FnMut(StreamId, Vec<(&'a [u8], &'a [u8])>) -> bool,
    ) -> bool {
        let master_fields = self.master_fields();
        let mut starts = Vec::new();
        let mut pos = 0;
        while pos < self.buf.len() {
            let at = pos;
            let (flags, id) = Self::head_at(&self.buf, master, &mut pos);
            if id > end {
                break;
            }
            self.skip_fields(flags, master_fields.len(), &mut pos);
            if flags & DELETED == 0 && id >= start {
                starts.push(at);
            }
        }
        for &at in starts.iter().rev() {
            let mut pos = at;
            let d = self.decode_at(master, &master_fields, &mut pos);
            if !f(d.id, d.pairs) {
                return false;
            }
        }
        true
    }

    /// Calls `f` on each live entry from `start` to `end` in ascending order, decoding only
    /// those it visits (a COUNT 10 read of a 100-entry node decodes 10); false once `f` did.
    fn walk_forward<'a>(
        &'a self,
        master: StreamId,
        start: StreamId,
        end: StreamId,
        f: &mut impl FnMut(StreamId, Vec<(&'a [u8], &'a [u8])>) -> bool,
    ) -> bool {
        let master_fields = self.master_fields();
        let mut pos = 0;
        while pos < self.buf.len() {
            let at = pos;
            let (flags, id) = Self::head_at(&self.buf, master, &mut pos);
            if id > end {
                return true;
            }
            if flags & DELETED != 0 || id < start {
                self.skip_fields(flags, master_fields.len(), &mut pos);
                continue;
            }
            pos = at;
            let d = self.decode_at(master, &master_fields, &mut pos);
            if !f(d.id, d.pairs) {
                return false;
            }
        }
        true
    }

    /// The size of Redis's listpack for this node (`lpBytes`).
    fn listpack_bytes(&self) -> usize {
        let deleted = self.total - self.live;
        self.listpack_fixed
            + listpack_int_size(self.live as i64)
            + listpack_int_size(deleted as i64)
    }

    /// What an entry adds to Redis's listpack: flags, the ID's deltas from the master as Redis
    /// computes them, its values (and fields unless `same`), and its lp-count.
    fn listpack_entry_size(
        master: StreamId,
        id: StreamId,
        pairs: &[(&[u8], &[u8])],
        same: bool,
    ) -> usize {
        let fields = pairs.len() as i64;
        // The flags (the same size whatever they are).
        let mut size = listpack_int_size(0)
            + listpack_int_size(id.ms.wrapping_sub(master.ms) as i64)
            + listpack_int_size(id.seq.wrapping_sub(master.seq) as i64);
        for (f, v) in pairs {
            size += listpack_element_size(v) + if same { 0 } else { listpack_element_size(f) };
        }
        size + if same {
            listpack_int_size(fields + 3)
        } else {
            listpack_int_size(fields) + listpack_int_size(2 * fields + 4)
        }
    }

    fn delta(master: StreamId, id: StreamId) -> (u64, u64) {
        let ms_delta = id.ms - master.ms;
        let seq = if ms_delta == 0 {
            id.seq - master.seq
        } else {
            id.seq
        };
        (ms_delta, seq)
    }

    fn push(&mut self, master: StreamId, id: StreamId, pairs: &[(&[u8], &[u8])]) {
        let same = self.total > 0 && {
            let master_fields = self.master_fields();
            master_fields.len() == pairs.len()
                && master_fields.iter().zip(pairs).all(|(m, (f, _))| *m == *f)
        };
        if self.total == 0 {
            // Header and end byte, the master entry's field count, names and terminating 0.
            self.listpack_fixed = 7
                + listpack_int_size(pairs.len() as i64)
                + pairs
                    .iter()
                    .map(|(f, _)| listpack_element_size(f))
                    .sum::<usize>()
                + listpack_int_size(0);
        }
        // Redis finds the node's first entry's fields the master's too.
        self.listpack_fixed +=
            Self::listpack_entry_size(master, id, pairs, same || self.total == 0);
        let (ms_delta, seq) = Self::delta(master, id);
        let buf = &mut self.buf;
        let flags = if same { SAME_FIELDS } else { 0 };
        put_varint(buf, ms_delta << FLAG_BITS | flags as u64);
        put_varint(buf, seq);
        if !same {
            put_varint(buf, pairs.len() as u64);
        }
        for (f, v) in pairs {
            if !same {
                put_varint(buf, f.len() as u64);
                buf.extend_from_slice(f);
            }
            put_varint(buf, v.len() as u64);
            buf.extend_from_slice(v);
        }
        self.live += 1;
        self.total += 1;
    }

    /// The last entry's ID, deleted or not.
    fn last_id(&self, master: StreamId) -> StreamId {
        self.decode_all(master).last().map_or(master, |d| d.id)
    }
}

/// The shape of a Redis radix tree (rax.c), only to count its nodes: a node is either
/// compressed (a run of characters, one child) or has one child per character. Keys here are
/// distinct and all 16 bytes long, so an insertion only ever splits a compressed node where it
/// differs from the key (rax's "ALGO 1") and adds nodes for the rest of the key.
#[derive(Default)]
struct RaxShape {
    nodes: Vec<RaxNode>,
}

#[derive(Default)]
struct RaxNode {
    compressed: bool,
    chars: Vec<u8>,
    children: Vec<usize>,
}

impl RaxShape {
    fn add(&mut self, node: RaxNode) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Inserts `key` under the root (node 0).
    fn insert(&mut self, key: &[u8]) {
        // Walk down as far as the key matches (raxLowWalk).
        let (mut h, mut i, mut j) = (0usize, 0usize, 0usize);
        while !self.nodes[h].chars.is_empty() && i < key.len() {
            let node = &self.nodes[h];
            if node.compressed {
                j = 0;
                while j < node.chars.len() && i < key.len() && node.chars[j] == key[i] {
                    j += 1;
                    i += 1;
                }
                if j != node.chars.len() {
                    break;
                }
                h = node.children[0];
            } else {
                match node.chars.iter().position(|&c| c == key[i]) {
                    Some(at) => {
                        i += 1;
                        h = node.children[at];
                    }
                    None => break,
                }
            }
            j = 0;
        }
        if self.nodes[h].compressed && i < key.len() {
            // Split the compressed node where it differs: what came before stays (if anything),
            // a node branching on the differing character follows, then what came after.
            let old = std::mem::take(&mut self.nodes[h]);
            let after = &old.chars[j + 1..];
            let postfix = if after.is_empty() {
                old.children[0]
            } else {
                self.add(RaxNode {
                    compressed: after.len() > 1,
                    chars: after.to_vec(),
                    children: old.children.clone(),
                })
            };
            let split = RaxNode {
                compressed: false,
                chars: vec![old.chars[j]],
                children: vec![postfix],
            };
            if j == 0 {
                self.nodes[h] = split;
            } else {
                let split = self.add(split);
                self.nodes[h] = RaxNode {
                    compressed: j > 1,
                    chars: old.chars[..j].to_vec(),
                    children: vec![split],
                };
                h = split;
            }
        }
        // The rest of the key: a compressed run when the node is empty, else a new branch.
        while i < key.len() {
            let child = self.add(RaxNode::default());
            let node = &mut self.nodes[h];
            if node.chars.is_empty() && key.len() - i > 1 {
                node.compressed = true;
                node.chars = key[i..].to_vec();
                node.children = vec![child];
                i = key.len();
            } else {
                let at = node.chars.partition_point(|&c| c < key[i]);
                node.chars.insert(at, key[i]);
                node.children.insert(at, child);
                i += 1;
            }
            h = child;
        }
    }
}

/// An entry as read out of a stream: its ID and field/value pairs.
pub type StreamEntry<'a> = (StreamId, Vec<(&'a [u8], &'a [u8])>);

/// One node of a stream as `StreamValue::stored_nodes` shows it.
pub struct StoredNode<'a> {
    pub master: StreamId,
    pub master_fields: Vec<&'a [u8]>,
    /// Entries not deleted.
    pub live: u32,
    pub entries: Vec<StoredEntry<'a>>,
}

/// One entry of a stored node, deleted or not.
pub struct StoredEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    pub pairs: Vec<(&'a [u8], &'a [u8])>,
}

/// An entry of a saved stream, for `StreamValue::from_saved_nodes`.
pub struct SavedEntry {
    pub id: StreamId,
    pub deleted: bool,
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Clone, Debug)]
pub struct PendingEntry {
    /// Its consumer's name, shared with the consumer (no allocation per entry).
    pub consumer: Arc<[u8]>,
    /// Unix time in milliseconds of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

/// A consumer of a group: its name, when it was last seen and the IDs pending for it.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub name: Arc<[u8]>,
    pub seen_time: u64,
    pub pending: BTreeSet<StreamId>,
}

/// Entries read counter value meaning "unknown" (Redis's SCG_INVALID_ENTRIES_READ).
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

/// A consumer group: its last delivered ID, logical read counter, pending entries list and
/// consumers (by name, in byte order as Redis's radix tree lists them).
#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pending: BTreeMap<StreamId, PendingEntry>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl ConsumerGroup {
    pub fn new(last_id: StreamId, entries_read: i64) -> ConsumerGroup {
        ConsumerGroup {
            last_id,
            entries_read,
            ..ConsumerGroup::default()
        }
    }

    /// The consumer `name`, created when absent (the flag says whether it was).
    pub fn consumer_or_create(&mut self, name: &[u8], now_ms: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        if created {
            self.consumers.insert(
                name.into(),
                Consumer {
                    name: name.into(),
                    seen_time: now_ms,
                    pending: BTreeSet::new(),
                },
            );
        }
        (self.consumers.get_mut(name).expect("present"), created)
    }

    /// Removes `id` from the group's PEL and its consumer's; whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pending.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&*p.consumer) {
                    c.pending.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Makes `id` pending for `consumer` (moving it from its previous owner if any), with these
    /// delivery time and count. The consumer exists (callers create it first).
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], delivery_time: u64, count: u64) {
        if let Some(old) = self.pending.get(&id) {
            if *old.consumer != *consumer {
                let old_name = old.consumer.clone();
                if let Some(c) = self.consumers.get_mut(&*old_name) {
                    c.pending.remove(&id);
                }
            }
        }
        let Some(c) = self.consumers.get_mut(consumer) else {
            return;
        };
        c.pending.insert(id);
        let consumer = c.name.clone();
        self.pending.insert(
            id,
            PendingEntry {
                consumer,
                delivery_time,
                delivery_count: count,
            },
        );
    }
}

/// A stream: packed entries, its metadata (IDs and counters as Redis keeps them) and groups.
#[derive(Clone, Debug, Default)]
pub struct StreamValue {
    nodes: BTreeMap<StreamId, Node>,
    length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, ConsumerGroup>,
}

/// How XADD and XTRIM trim: keep at most this many entries, or none below this ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

impl StreamValue {
    pub fn new() -> StreamValue {
        StreamValue::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Nodes in the stream (XINFO STREAM's radix-tree-keys).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many nodes Redis's radix tree would have with this stream's node keys inserted in
    /// order (XINFO STREAM's radix-tree-nodes): exact while no node was removed (Redis's tree
    /// may be shaped otherwise after removals).
    pub fn radix_tree_nodes(&self) -> usize {
        let mut tree = RaxShape {
            nodes: vec![RaxNode::default()],
        };
        for master in self.nodes.keys() {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&master.ms.to_be_bytes());
            key[8..].copy_from_slice(&master.seq.to_be_bytes());
            tree.insert(&key);
        }
        tree.nodes.len()
    }

    /// Every node as stored, for encoders that write Redis's layout (RDB's stream listpacks):
    /// its master ID, its master entry's field names, and each entry with whether XDEL or a
    /// trim flagged it deleted (deleted entries stay in their node until the node goes).
    pub fn stored_nodes(&self) -> Vec<StoredNode<'_>> {
        self.nodes
            .iter()
            .map(|(master, node)| StoredNode {
                master: *master,
                master_fields: node.master_fields(),
                live: node.live,
                entries: node
                    .decode_all(*master)
                    .into_iter()
                    .map(|d| StoredEntry {
                        id: d.id,
                        deleted: d.flags & DELETED != 0,
                        pairs: d.pairs,
                    })
                    .collect(),
            })
            .collect()
    }

    /// A stream rebuilt from saved nodes (RDB loading), each node's entries, deleted ones
    /// included, kept together as they were saved, so that writing it again gives the same
    /// nodes. Entries come in strictly ascending ID order across all nodes (the loader checks).
    /// An entry too far past its node's first to share its delta field starts a node of its
    /// own, and a node left with no live entry is dropped. The caller sets the IDs and counters
    /// the file records (`first_id`, `max_deleted_id`, `entries_added`, and `last_id`, which
    /// here ends as the last entry's).
    pub fn from_saved_nodes(saved: Vec<Vec<SavedEntry>>) -> StreamValue {
        let mut stream = StreamValue::new();
        for entries in saved {
            let mut starts_node = true;
            for entry in entries {
                let fits = !starts_node
                    && stream
                        .nodes
                        .last_key_value()
                        .is_some_and(|(master, _)| entry.id.ms - master.ms < MAX_MS_DELTA);
                if !fits {
                    stream.nodes.insert(entry.id, Node::default());
                }
                starts_node = false;
                let mut last = stream.nodes.last_entry().expect("a node");
                let master = *last.key();
                let node = last.get_mut();
                let offset = node.buf.len();
                let pairs: Vec<(&[u8], &[u8])> =
                    entry.pairs.iter().map(|(f, v)| (&f[..], &v[..])).collect();
                node.push(master, entry.id, &pairs);
                if entry.deleted {
                    node.buf[offset] |= DELETED;
                    node.live -= 1;
                } else {
                    stream.length += 1;
                }
                stream.last_id = entry.id;
            }
        }
        stream.nodes.retain(|_, node| node.live > 0);
        stream
    }

    /// Appends an entry with `id`, which the caller has checked is above `last_id`.
    pub fn append(&mut self, id: StreamId, pairs: &[(&[u8], &[u8])]) {
        let (max_entries, max_bytes) = node_limits();
        // Redis's test (streamAppendItem): the listpack's bytes plus the new fields' and
        // values' lengths against the byte limit, entries (deleted ones too) against the count.
        let max_bytes = if max_bytes == 0 || max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            max_bytes
        };
        let fits = self.nodes.last_key_value().is_some_and(|(master, node)| {
            let new_bytes: usize = pairs.iter().map(|(f, v)| f.len() + v.len()).sum();
            node.listpack_bytes() + new_bytes < max_bytes
                && (max_entries == 0 || (node.total as usize) < max_entries)
                && id.ms - master.ms < MAX_MS_DELTA
        });
        if !fits {
            // The full node keeps no spare room from here on: a copy of exactly its size
            // (shrinking in place would leave the allocator's block as it was).
            if let Some(mut last) = self.nodes.last_entry() {
                let node = last.get_mut();
                node.buf = node.buf.as_slice().to_vec();
            }
            self.nodes.insert(id, Node::default());
        }
        let mut last = self.nodes.last_entry().expect("a node");
        let master = *last.key();
        last.get_mut().push(master, id, pairs);
        if self.length == 0 {
            self.first_id = id;
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
    }

    /// Calls `f` on each live entry from `start` to `end` (inclusive), ascending or (`rev`)
    /// descending, until it returns false.
    pub fn walk<'a>(
        &'a self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, Vec<(&'a [u8], &'a [u8])>) -> bool,
    ) {
        if start > end {
            return;
        }
        // The node holding `start` starts at or before it.
        let from = self
            .nodes
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let nodes = self.nodes.range(from..=end);
        if !rev {
            for (master, node) in nodes {
                if !node.walk_forward(*master, start, end, &mut f) {
                    return;
                }
            }
            return;
        }
        for (master, node) in nodes.rev() {
            if !node.walk_backward(*master, start, end, &mut f) {
                return;
            }
        }
    }

    /// Up to `count` (0: all) live entries from `start` to `end`.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        count: usize,
    ) -> Vec<StreamEntry<'_>> {
        let mut out = Vec::new();
        self.walk(start, end, rev, |id, pairs| {
            out.push((id, pairs));
            count == 0 || out.len() < count
        });
        out
    }

    /// The live entry with `id`, if any.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry<'_>> {
        self.range(id, id, false, 1).pop()
    }

    /// The first (or `last`) live entry.
    pub fn edge(&self, last: bool) -> Option<StreamEntry<'_>> {
        self.range(StreamId::MIN, StreamId::MAX, last, 1).pop()
    }

    /// Flags the entry `id` as deleted; whether it was there. Updates the length and first ID
    /// (not `max_deleted_id`: that is XDEL's to record).
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let Some(offset) = node
            .decode_all(master)
            .iter()
            .find(|d| d.id == id && d.flags & DELETED == 0)
            .map(|d| d.offset)
        else {
            return false;
        };
        node.buf[offset] |= DELETED;
        node.live -= 1;
        if node.live == 0 {
            self.nodes.remove(&master);
        }
        self.length -= 1;
        self.refresh_first_id();
        true
    }

    fn refresh_first_id(&mut self) {
        self.first_id = self.edge(false).map_or(StreamId::MIN, |(id, _)| id);
    }

    /// Trims as Redis's `streamTrim`: whole nodes first; `approx` stops at the first node that
    /// cannot go whole; `limit` (0: none) caps the entries removed. Returns how many went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some((&master, node)) = self.nodes.first_key_value() {
            if let Trim::MaxLen(max) = trim {
                if self.length <= max {
                    break;
                }
            }
            let entries = node.live as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match trim {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => node.last_id(master) < min,
            };
            if remove_node {
                self.nodes.remove(&master);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let node = self.nodes.get_mut(&master).expect("present");
            let doomed: Vec<usize> = {
                let mut length = self.length;
                let mut doomed = Vec::new();
                for d in node.decode_all(master) {
                    if d.flags & DELETED != 0 {
                        continue;
                    }
                    let stop = match trim {
                        Trim::MaxLen(max) => length <= max,
                        Trim::MinId(min) => d.id >= min,
                    };
                    if stop {
                        break;
                    }
                    doomed.push(d.offset);
                    length -= 1;
                }
                doomed
            };
            for offset in &doomed {
                node.buf[*offset] |= DELETED;
            }
            node.live -= doomed.len() as u32;
            self.length -= doomed.len() as u64;
            deleted += doomed.len() as u64;
            if node.live == 0 {
                self.nodes.remove(&master);
            }
            break;
        }
        if deleted > 0 {
            self.refresh_first_id();
        }
        deleted
    }

    /// Whether a deleted entry may lie between `start` and `end` (Redis's
    /// `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// The logical position of `id` counted from the first entry ever added, when it can be
    /// known (Redis's `streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return (self.entries_added - self.length) as i64;
            } else if id == self.first_id {
                return (self.entries_added - self.length + 1) as i64;
            }
        }
        ENTRIES_READ_UNKNOWN
    }

    /// A group's lag (XINFO's `lag`), None when it cannot be known.
    pub fn lag(&self, group: &ConsumerGroup) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if group.entries_read != ENTRIES_READ_UNKNOWN
            && !self.range_has_tombstones(group.last_id, StreamId::MAX)
        {
            return Some(self.entries_added as i64 - group.entries_read);
        }
        let read = self.estimate_distance(group.last_id);
        (read != ENTRIES_READ_UNKNOWN).then(|| self.entries_added as i64 - read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::uvarint_len as varint_len;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn filled(n: u64) -> StreamValue {
        let mut s = StreamValue::new();
        for i in 1..=n {
            let v = i.to_string();
            s.append(id(i, 0), &[(b"f", v.as_bytes()), (b"g", b"x")]);
        }
        s
    }

    #[test]
    fn entries_round_trip_across_nodes_both_ways() {
        let mut s = filled(250);
        s.append(id(250, 1), &[(b"other", b"fields")]);
        assert_eq!(s.len(), 251);
        assert_eq!(s.node_count(), 3);
        let all = s.range(StreamId::MIN, StreamId::MAX, false, 0);
        assert_eq!(all.len(), 251);
        assert_eq!(all[41].0, id(42, 0));
        assert_eq!(
            all[41].1,
            vec![(&b"f"[..], &b"42"[..]), (&b"g"[..], &b"x"[..])]
        );
        assert_eq!(all[250].1, vec![(&b"other"[..], &b"fields"[..])]);
        let back = s.range(id(99, 0), id(102, 0), true, 2);
        assert_eq!(
            back.iter().map(|e| e.0).collect::<Vec<_>>(),
            [id(102, 0), id(101, 0)]
        );
    }

    #[test]
    fn delete_and_trim_keep_length_and_first_id() {
        let mut s = filled(250);
        assert!(s.delete(id(1, 0)));
        assert!(!s.delete(id(1, 0)));
        assert_eq!(s.first_id, id(2, 0));
        assert_eq!(s.len(), 249);
        // Approximate: only whole nodes (the first has 99 live entries).
        assert_eq!(s.trim(Trim::MaxLen(100), true, 0), 99);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(100), false, 0), 50);
        assert_eq!(s.first_id, id(151, 0));
        assert_eq!(s.trim(Trim::MinId(id(200, 0)), false, 0), 49);
        assert_eq!(s.first_id, id(200, 0));
        assert_eq!(s.range(StreamId::MIN, StreamId::MAX, false, 0).len(), 51);
    }

    #[test]
    fn far_apart_ids_and_deletions_read_back() {
        let mut s = StreamValue::new();
        s.append(id(1, 0), &[(b"a", b"1")]);
        s.append(id(1 << 59, 7), &[(b"a", b"2")]);
        s.append(id(u64::MAX, u64::MAX), &[(b"a", b"3")]);
        assert_eq!(s.node_count(), 2);
        assert!(s.delete(id(1 << 59, 7)));
        let ids: Vec<StreamId> = s
            .range(StreamId::MIN, StreamId::MAX, false, 0)
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(ids, [id(1, 0), id(u64::MAX, u64::MAX)]);
        assert_eq!(
            s.get(id(u64::MAX, u64::MAX)).unwrap().1,
            vec![(&b"a"[..], &b"3"[..])]
        );
    }

    #[test]
    fn radix_tree_nodes_count_as_redis_counts_them() {
        // Figures from redis-server 7.0.15's XINFO STREAM.
        let mut s = StreamValue::new();
        assert_eq!(s.radix_tree_nodes(), 1);
        s.append(id(1, 0), &[(b"f", b"1")]);
        assert_eq!(s.radix_tree_nodes(), 2);
        // Entries past stream-node-max-bytes start nodes of their own.
        let big = vec![b'x'; 5000];
        s.append(id(4, 0), &[(b"f", &big)]);
        s.append(id(7, 0), &[(b"f", &big)]);
        assert_eq!(s.node_count(), 3);
        assert_eq!(s.radix_tree_nodes(), 8);
    }

    #[test]
    fn nodes_split_at_redis_listpack_size() {
        // redis-server 7.0.15, default limits: twelve entries of a 1015-byte value take four
        // nodes (three entries to a node's 4115-byte listpack would pass 4096).
        let mut s = StreamValue::new();
        let value = vec![b'v'; 1015];
        for ms in 1..=12 {
            s.append(id(ms, 0), &[(b"f", &value)]);
        }
        assert_eq!(s.node_count(), 4);
        // One byte less and four fit (a 4095-byte listpack stays under the limit).
        let mut s = StreamValue::new();
        let value = vec![b'v'; 1010];
        for ms in 1..=12 {
            s.append(id(ms, 0), &[(b"f", &value)]);
        }
        assert_eq!(s.node_count(), 3);
    }

    #[test]
    fn ids_step_and_varints_round_trip() {
        assert_eq!(id(1, u64::MAX).next(), Some(id(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(id(2, 0).prev(), Some(id(1, u64::MAX)));
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), v);
        }
    }
}
