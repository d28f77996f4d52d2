//! The replication stream of a primary: the log records of its writes (`persist::ops`), turned
//! into the RESP commands a replica runs, as Redis propagates them.
//!
//! Every record reaches [`Translator::record`] from `Wal::append`, with its shard locked, so
//! per shard the records arrive in execution order, and the stream's order is:
//! - per key, the order in which the writes ran (a key lives on one shard);
//! - a multi-key command, transaction or script whole, never split: its records across shards
//!   form a group whose parts are appended with every involved shard locked; the group is held
//!   until all its parts arrived and goes out as one `MULTI … EXEC`, contiguous. Records of
//!   other shards may come before it, but they touch none of its keys.
//!
//! The translation: `SELECT` when a command's database is not the stream's current one (reset
//! after a full resync, so the first command re-selects, as Redis); argv as it is, but for
//! commands whose record pins a relative expiry, which go out as Redis 7.0 propagates them
//! (`SET … PXAT`, `PEXPIREAT`, `DEL` for a key that ended up gone; SET's WarpEngine-only
//! `DURABILITY` option dropped); Del → `DEL`; ExpireAt → `PEXPIREAT` (0: `PERSIST`); Flush →
//! `FLUSHALL` / `FLUSHDB`; SwapDb → `SWAPDB`. A record of several commands is one `MULTI … EXEC`.
//! WarpEngine-only commands (TEMPORAL, QUANTUM, WORMHOLE) go as they are: a WarpEngine replica
//! runs them, a redis-server replica refuses them (it logs the error and goes on).

use bytes::Bytes;

use crate::persist::ops::{self, Group, Op, Payload};
use crate::protocol::reply::header;

/// The state between records: the database last selected and the groups being collected.
#[derive(Debug, Default)]
pub struct Translator {
    /// The database the stream last selected (None: the next command selects).
    db: Option<usize>,
    /// Groups with parts still to come: (group, parts so far).
    groups: Vec<(Group, Vec<Payload>)>,
}

/// One command of the stream and the database it runs in (None: any).
type Command = (Option<usize>, Vec<Bytes>);

impl Translator {
    /// The next command selects its database again (a full resync started a replica afresh).
    pub fn reselect(&mut self) {
        self.db = None;
    }

    /// Takes one record; appends to `out` the commands of what it completes (nothing for a
    /// group's part before the last).
    pub fn record(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        // One copy of the record, which the decoded arguments share.
        let owner = Bytes::copy_from_slice(payload);
        let payload = match ops::decode_in(&owner, &owner) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("replication: a log record that does not decode ({e}); skipped");
                return;
            }
        };
        let Some(group) = payload.group else {
            let commands = translate(&payload);
            self.emit(&commands, out);
            return;
        };
        let at = match self.groups.iter().position(|(g, _)| *g == group) {
            Some(at) => at,
            None => {
                self.groups.push((group, Vec::new()));
                self.groups.len() - 1
            }
        };
        self.groups[at].1.push(payload);
        if self.groups[at].1.len() < group.parts as usize {
            return;
        }
        let (_, parts) = self.groups.swap_remove(at);
        let commands =
            whole_keyspace(&parts).unwrap_or_else(|| parts.iter().flat_map(translate).collect());
        self.emit(&commands, out);
    }

    /// A command of the stream's own (PING, REPLCONF GETACK): no database.
    pub fn command(&mut self, argv: &[&[u8]], out: &mut Vec<u8>) {
        encode(argv.iter().copied(), out);
    }

    fn emit(&mut self, commands: &[Command], out: &mut Vec<u8>) {
        let transaction = commands.len() > 1;
        if transaction {
            if let Some(db) = commands.iter().find_map(|(db, _)| *db) {
                self.select(db, out);
            }
            encode([&b"MULTI"[..]].into_iter(), out);
        }
        for (db, argv) in commands {
            if let Some(db) = *db {
                self.select(db, out);
            }
            encode(argv.iter().map(|a| &a[..]), out);
        }
        if transaction {
            encode([&b"EXEC"[..]].into_iter(), out);
        }
    }

    fn select(&mut self, db: usize, out: &mut Vec<u8>) {
        if self.db != Some(db) {
            let db_text = db.to_string();
            encode([&b"SELECT"[..], db_text.as_bytes()].into_iter(), out);
            self.db = Some(db);
        }
    }
}

/// FLUSHDB, FLUSHALL and SWAPDB are logged once per shard, each part limited to its shard's
/// keys: the stream sends the command once.
fn whole_keyspace(parts: &[Payload]) -> Option<Vec<Command>> {
    let first = match parts.first()?.ops.as_slice() {
        [op @ (Op::Flush(_) | Op::SwapDb(..))] => op,
        _ => return None,
    };
    parts
        .iter()
        .all(|p| p.ops.len() == 1 && &p.ops[0] == first)
        .then(|| translate_op(parts[0].db, first).into_iter().collect())
}

/// One record's commands.
fn translate(payload: &Payload) -> Vec<Command> {
    if let Some(command) = with_expiry(payload) {
        return command.into_iter().collect();
    }
    payload
        .ops
        .iter()
        .filter_map(|op| translate_op(payload.db, op))
        .collect()
}

fn translate_op(db: usize, op: &Op) -> Option<Command> {
    let b = Bytes::from_static;
    Some(match op {
        Op::Argv(argv) => (Some(db), argv.clone()),
        Op::Del(key) => (Some(db), vec![b(b"DEL"), key.clone()]),
        Op::ExpireAt(key, 0) => (Some(db), vec![b(b"PERSIST"), key.clone()]),
        Op::ExpireAt(key, at) => (Some(db), pexpireat(key, *at)),
        Op::Flush(None) => (None, vec![b(b"FLUSHALL")]),
        Op::Flush(Some(d)) => (Some(*d), vec![b(b"FLUSHDB")]),
        Op::SwapDb(a, c) => (
            None,
            vec![
                b(b"SWAPDB"),
                Bytes::from(a.to_string()),
                Bytes::from(c.to_string()),
            ],
        ),
    })
}

fn pexpireat(key: &Bytes, at: u64) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"PEXPIREAT"),
        key.clone(),
        Bytes::from(at.to_string()),
    ]
}

/// A command logged with its key's resulting expiry (`LogForm::ArgvWithExpiry`: the argv, then
/// the key's absolute expiry or its deletion) as one command with an absolute expiry, as
/// Redis 7.0 propagates it: `SET … PXAT`, `PEXPIREAT`, `PERSIST`, or `DEL` when the key is gone.
/// Some(None): nothing to send (an EXPIRE that left a key without expiry changed nothing).
fn with_expiry(payload: &Payload) -> Option<Option<Command>> {
    let [Op::Argv(argv), after] = payload.ops.as_slice() else {
        return None;
    };
    let key = argv.get(1)?;
    let at = match after {
        Op::ExpireAt(k, at) if k == key => Some(*at),
        Op::Del(k) if k == key => None,
        _ => return None,
    };
    let db = Some(payload.db);
    let named = |names: &[&str]| {
        names
            .iter()
            .any(|n| argv[0].eq_ignore_ascii_case(n.as_bytes()))
    };
    let Some(at) = at else {
        // The key is gone (its expiry had passed, or it was never there).
        return Some(Some((db, vec![Bytes::from_static(b"DEL"), key.clone()])));
    };
    let with_pxat = |mut argv: Vec<Bytes>| {
        if at != 0 {
            argv.push(Bytes::from_static(b"PXAT"));
            argv.push(Bytes::from(at.to_string()));
        }
        Some(Some((db, argv)))
    };
    let expire = ["expire", "pexpire", "expireat", "pexpireat"];
    if named(&["set"]) {
        with_pxat(set_without_expiry(argv))
    } else if named(&["setex", "psetex"]) && argv.len() == 4 {
        with_pxat(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            argv[3].clone(),
        ])
    } else if named(&["getex"]) && at == 0 {
        Some(Some((
            db,
            vec![Bytes::from_static(b"PERSIST"), key.clone()],
        )))
    } else if (named(&["getex"]) || named(&expire)) && at != 0 {
        Some(Some((db, pexpireat(key, at))))
    } else if named(&expire) {
        Some(None)
    } else {
        None
    }
}

/// SET's arguments without its expiry options (EX PX EXAT PXAT and their values, KEEPTTL) and
/// without WarpEngine's DURABILITY: the stream gives the resulting expiry as PXAT.
fn set_without_expiry(argv: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(argv.len());
    out.extend_from_slice(&argv[..3.min(argv.len())]);
    let mut i = 3;
    while i < argv.len() {
        let is = |names: &[&str]| {
            names
                .iter()
                .any(|n| argv[i].eq_ignore_ascii_case(n.as_bytes()))
        };
        if is(&["ex", "px", "exat", "pxat", "durability"]) {
            i += 2;
        } else if is(&["keepttl"]) {
            i += 1;
        } else {
            out.push(argv[i].clone());
            i += 1;
        }
    }
    out
}

/// Appends one command in RESP, as a client sends it.
pub fn encode<'a>(argv: impl ExactSizeIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    header(out, b'*', argv.len());
    for a in argv {
        header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::ops::PayloadWriter;

    fn record(
        t: &mut Translator,
        db: usize,
        group: Option<Group>,
        f: impl FnOnce(&mut PayloadWriter),
    ) -> String {
        let mut payload = Vec::new();
        f(&mut PayloadWriter::begin(&mut payload, db, group));
        let mut out = Vec::new();
        t.record(&payload, &mut out);
        String::from_utf8(out).unwrap().replace("\r\n", " ")
    }

    #[test]
    fn selects_once_and_rewrites_relative_expiry() {
        let mut t = Translator::default();
        let set = record(&mut t, 2, None, |w| {
            w.argv(
                [
                    &b"SET"[..],
                    b"k",
                    b"v",
                    b"EX",
                    b"10",
                    b"DURABILITY",
                    b"always",
                ]
                .into_iter(),
            );
            w.expire_at(b"k", 1234);
        });
        assert_eq!(
            set,
            "*2 $6 SELECT $1 2 *5 $3 SET $1 k $1 v $4 PXAT $4 1234 "
        );
        let plain = record(&mut t, 2, None, |w| {
            w.argv([&b"SET"[..], b"k", b"v"].into_iter());
            w.expire_at(b"k", 0);
        });
        assert_eq!(plain, "*3 $3 SET $1 k $1 v ");
        let gone = record(&mut t, 2, None, |w| {
            w.argv([&b"EXPIRE"[..], b"k", b"-1"].into_iter());
            w.del(b"k");
        });
        assert_eq!(gone, "*2 $3 DEL $1 k ");
    }

    #[test]
    fn a_group_goes_out_whole_once_complete() {
        let mut t = Translator::default();
        let g = Group { txid: 9, parts: 2 };
        let first = record(&mut t, 0, Some(g), |w| {
            w.argv([&b"SET"[..], b"a", b"1"].into_iter());
        });
        assert_eq!(first, "");
        let other = record(&mut t, 1, None, |w| w.del(b"x"));
        assert_eq!(other, "*2 $6 SELECT $1 1 *2 $3 DEL $1 x ");
        let second = record(&mut t, 0, Some(g), |w| {
            w.argv([&b"SET"[..], b"b", b"2"].into_iter());
        });
        assert_eq!(
            second,
            "*2 $6 SELECT $1 0 *1 $5 MULTI *3 $3 SET $1 a $1 1 *3 $3 SET $1 b $1 2 *1 $4 EXEC "
        );
    }

    #[test]
    fn a_flush_logged_per_shard_goes_out_once() {
        let mut t = Translator::default();
        let g = Group { txid: 1, parts: 3 };
        let mut out = String::new();
        for _ in 0..3 {
            out += &record(&mut t, 0, Some(g), |w| w.flush(Some(4)));
        }
        assert_eq!(out, "*2 $6 SELECT $1 4 *1 $7 FLUSHDB ");
    }
}
