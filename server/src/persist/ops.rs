//! The payload of a log record: the effect of one command on one shard, as a few operations
//! that replay deterministically (no clock, no randomness, no other shard's state).
//!
//! Layout: `[flags u8][txid u64, parts u32 if grouped][db u32]` then operations:
//! - 1 Argv: `[argc u32]([len u32][bytes])*`, a command re-run as it is;
//! - 2 Del: `[len u32][key]`;
//! - 3 ExpireAt: `[len u32][key][unix ms u64]` (0 makes the key persistent);
//! - 4 Flush: `[db u32]` (u32::MAX: every database), limited to the logging shard's slots;
//! - 5 SwapDb: `[a u32][b u32]`, limited likewise;
//! - 6 Propagate: as Argv, the command the replication stream sends for the whole group this
//!   record is part of, in place of the group's operations (a cross-shard LMOVE goes out as
//!   `LMOVE`, as Redis propagates it, while each shard's log holds its own pop or push).
//!   Recovery skips it.

use bytes::Bytes;

const GROUPED: u8 = 1;
const ARGV: u8 = 1;
const DEL: u8 = 2;
const EXPIRE_AT: u8 = 3;
const FLUSH: u8 = 4;
const SWAPDB: u8 = 5;
const PROPAGATE: u8 = 6;

/// A cross-shard command's records: one per shard, replayed only if every part is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub txid: u64,
    pub parts: u32,
}

/// Writes one payload straight into the log buffer.
pub struct PayloadWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> PayloadWriter<'a> {
    pub fn begin(buf: &'a mut Vec<u8>, db: usize, group: Option<Group>) -> PayloadWriter<'a> {
        match group {
            Some(g) => {
                buf.push(GROUPED);
                buf.extend_from_slice(&g.txid.to_le_bytes());
                buf.extend_from_slice(&g.parts.to_le_bytes());
            }
            None => buf.push(0),
        }
        buf.extend_from_slice(&(db as u32).to_le_bytes());
        PayloadWriter { buf }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    pub fn argv<'b>(&mut self, args: impl ExactSizeIterator<Item = &'b [u8]>) {
        self.command(ARGV, args);
    }

    /// The command the replication stream sends for this record's group (see the module's
    /// documentation).
    pub fn propagate<'b>(&mut self, args: impl ExactSizeIterator<Item = &'b [u8]>) {
        self.command(PROPAGATE, args);
    }

    fn command<'b>(&mut self, op: u8, args: impl ExactSizeIterator<Item = &'b [u8]>) {
        self.buf.push(op);
        self.buf
            .extend_from_slice(&(args.len() as u32).to_le_bytes());
        for a in args {
            self.bytes(a);
        }
    }

    pub fn del(&mut self, key: &[u8]) {
        self.buf.push(DEL);
        self.bytes(key);
    }

    pub fn expire_at(&mut self, key: &[u8], at: u64) {
        self.buf.push(EXPIRE_AT);
        self.bytes(key);
        self.buf.extend_from_slice(&at.to_le_bytes());
    }

    pub fn flush(&mut self, db: Option<usize>) {
        self.buf.push(FLUSH);
        let db = db.map_or(u32::MAX, |d| d as u32);
        self.buf.extend_from_slice(&db.to_le_bytes());
    }

    pub fn swapdb(&mut self, a: usize, b: usize) {
        self.buf.push(SWAPDB);
        self.buf.extend_from_slice(&(a as u32).to_le_bytes());
        self.buf.extend_from_slice(&(b as u32).to_le_bytes());
    }
}

/// One operation, its byte strings as `A`: owned (`Op`, for recovery, which keeps them) or
/// borrowed from the payload (`OpRef`, for the replication stream, which only re-encodes them).
#[derive(Debug, Clone, PartialEq)]
pub enum OpOf<A> {
    Argv(Vec<A>),
    Del(A),
    ExpireAt(A, u64),
    Flush(Option<usize>),
    SwapDb(usize, usize),
    Propagate(Vec<A>),
}

pub type Op = OpOf<Bytes>;
pub type OpRef<'a> = OpOf<&'a [u8]>;

#[derive(Debug, Clone, PartialEq)]
pub struct PayloadOf<A> {
    pub group: Option<Group>,
    pub db: usize,
    pub ops: Vec<OpOf<A>>,
}

pub type Payload = PayloadOf<Bytes>;
pub type PayloadRef<'a> = PayloadOf<&'a [u8]>;

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("payload ends early")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Just the group of a payload, for the pass that finds which groups are complete.
/// Writes `payload` (written ungrouped) into `out` as a part of `group`.
pub fn regroup(payload: &[u8], group: Group, out: &mut Vec<u8>) {
    debug_assert_eq!(payload.first(), Some(&0), "an ungrouped payload");
    out.push(GROUPED);
    out.extend_from_slice(&group.txid.to_le_bytes());
    out.extend_from_slice(&group.parts.to_le_bytes());
    out.extend_from_slice(&payload[1..]);
}

pub fn group_of(payload: &[u8]) -> Option<Group> {
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    if c.u8().ok()? & GROUPED == 0 {
        return None;
    }
    Some(Group {
        txid: c.u64().ok()?,
        parts: c.u32().ok()?,
    })
}

pub fn decode(payload: &[u8]) -> Result<Payload, String> {
    decode_with(payload, Bytes::copy_from_slice)
}

/// As `decode`, for a payload inside `owner`: arguments share its memory (recovery).
pub fn decode_in(payload: &[u8], owner: &Bytes) -> Result<Payload, String> {
    decode_with(payload, |s| owner.slice_ref(s))
}

/// As `decode`, the arguments borrowed from the payload.
pub fn decode_ref(payload: &[u8]) -> Result<PayloadRef<'_>, String> {
    decode_with(payload, |s| s)
}

fn decode_with<'a, A>(
    payload: &'a [u8],
    arg: impl Fn(&'a [u8]) -> A,
) -> Result<PayloadOf<A>, String> {
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    let payload_len = c.data.len();
    let flags = c.u8()?;
    let group = if flags & GROUPED != 0 {
        Some(Group {
            txid: c.u64()?,
            parts: c.u32()?,
        })
    } else {
        None
    };
    let db = c.u32()? as usize;
    let mut ops = Vec::new();
    while c.pos < payload_len {
        ops.push(match c.u8()? {
            op @ (ARGV | PROPAGATE) => {
                let n = c.u32()? as usize;
                let mut args = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    args.push(arg(c.bytes()?));
                }
                if op == ARGV {
                    OpOf::Argv(args)
                } else {
                    OpOf::Propagate(args)
                }
            }
            DEL => OpOf::Del(arg(c.bytes()?)),
            EXPIRE_AT => {
                let key = arg(c.bytes()?);
                OpOf::ExpireAt(key, c.u64()?)
            }
            FLUSH => {
                let db = c.u32()?;
                OpOf::Flush((db != u32::MAX).then_some(db as usize))
            }
            SWAPDB => {
                let a = c.u32()? as usize;
                OpOf::SwapDb(a, c.u32()? as usize)
            }
            t => return Err(format!("unknown operation {t}")),
        });
    }
    Ok(PayloadOf { group, db, ops })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let g = Group { txid: 77, parts: 2 };
        let mut w = PayloadWriter::begin(&mut buf, 3, Some(g));
        w.argv([&b"SET"[..], b"k", b"v"].into_iter());
        w.del(b"gone");
        w.expire_at(b"k", 1234);
        w.flush(None);
        w.flush(Some(5));
        w.swapdb(1, 2);
        w.propagate([&b"LMOVE"[..], b"a", b"b", b"left", b"right"].into_iter());
        assert_eq!(group_of(&buf), Some(g));
        let p = decode(&buf).unwrap();
        assert_eq!(p.db, 3);
        assert_eq!(p.group, Some(g));
        assert_eq!(
            p.ops,
            vec![
                Op::Argv(vec![
                    Bytes::from_static(b"SET"),
                    Bytes::from_static(b"k"),
                    Bytes::from_static(b"v")
                ]),
                Op::Del(Bytes::from_static(b"gone")),
                Op::ExpireAt(Bytes::from_static(b"k"), 1234),
                Op::Flush(None),
                Op::Flush(Some(5)),
                Op::SwapDb(1, 2),
                Op::Propagate(
                    [&b"LMOVE"[..], b"a", b"b", b"left", b"right"]
                        .map(Bytes::from_static)
                        .to_vec()
                ),
            ]
        );
        assert!(decode(&buf[..buf.len() - 1]).is_err());
    }
}
