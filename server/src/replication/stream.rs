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
//! `FLUSHALL` / `FLUSHDB`; SwapDb → `SWAPDB`. A record of several commands is one `MULTI … EXEC`,
//! but a group that names its own command (Propagate: a cross-shard move) sends that alone.
//! WarpEngine-only commands (TEMPORAL, QUANTUM, WORMHOLE) go as they are: a WarpEngine replica
//! runs them, a redis-server replica refuses them (it logs the error and goes on).

use std::borrow::Cow;

use crate::persist::ops::{self, Group, OpRef, PayloadRef};
use crate::protocol::reply::header;

/// The state between records: the database last selected and the groups being collected.
#[derive(Debug, Default)]
pub struct Translator {
    /// The database the stream last selected (None: the next command selects).
    db: Option<usize>,
    /// Groups with parts still to come: (group, the parts' payloads so far).
    groups: Vec<(Group, Vec<Vec<u8>>)>,
    /// The bytes of the last record's commands (kept for its capacity).
    out: Vec<u8>,
}

/// One command of the stream and the database it runs in (None: any); its arguments borrowed
/// from the record where they can be.
type Command<'a> = (Option<usize>, Vec<Cow<'a, [u8]>>);

impl Translator {
    /// The database the stream last selected (0 when none yet: the next command selects), as
    /// an RDB file's `repl-stream-db` records it.
    pub fn selected_db(&self) -> usize {
        self.db.unwrap_or(0)
    }

    /// The next command selects its database again (a full resync started a replica afresh).
    pub fn reselect(&mut self) {
        self.db = None;
    }

    /// Takes one record; answers the stream's bytes for what it completes (nothing for a
    /// group's part before the last).
    pub fn record(&mut self, payload: &[u8]) -> &[u8] {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.translate_record(payload, &mut out);
        self.out = out;
        &self.out
    }

    fn translate_record(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let Some(group) = ops::group_of(payload) else {
            if let Some(payload) = decoded(payload) {
                let commands = translate(&payload);
                self.emit(&commands, out);
            }
            return;
        };
        let at = match self.groups.iter().position(|(g, _)| *g == group) {
            Some(at) => at,
            None => {
                self.groups.push((group, Vec::new()));
                self.groups.len() - 1
            }
        };
        self.groups[at].1.push(payload.to_vec());
        if self.groups[at].1.len() < group.parts as usize {
            return;
        }
        let (_, parts) = self.groups.swap_remove(at);
        let parts: Vec<PayloadRef> = parts.iter().filter_map(|p| decoded(p)).collect();
        let commands = propagated(&parts)
            .or_else(|| whole_keyspace(&parts))
            .unwrap_or_else(|| parts.iter().flat_map(translate).collect());
        self.emit(&commands, out);
    }

    /// A command that is no write's record: the stream's own (PING, REPLCONF GETACK), with no
    /// database, or PUBLISH in its client's database.
    pub fn command(&mut self, db: Option<usize>, argv: &[&[u8]]) -> &[u8] {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        if let Some(db) = db {
            self.select(db, &mut out);
        }
        encode(argv.iter().copied(), &mut out);
        self.out = out;
        &self.out
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
            let db_text = itoa::Buffer::new().format(db).as_bytes().to_vec();
            encode([&b"SELECT"[..], &db_text].into_iter(), out);
            self.db = Some(db);
        }
    }
}

fn decoded(payload: &[u8]) -> Option<PayloadRef<'_>> {
    ops::decode_ref(payload)
        .map_err(|e| {
            tracing::error!("replication: a log record that does not decode ({e}); skipped")
        })
        .ok()
}

/// FLUSHDB, FLUSHALL and SWAPDB are logged once per shard, each part limited to its shard's
/// keys: the stream sends the command once.
fn whole_keyspace<'a>(parts: &[PayloadRef<'a>]) -> Option<Vec<Command<'a>>> {
    let first = match parts.first()?.ops.as_slice() {
        [op @ (OpRef::Flush(_) | OpRef::SwapDb(..))] => op,
        _ => return None,
    };
    parts
        .iter()
        .all(|p| p.ops.len() == 1 && &p.ops[0] == first)
        .then(|| translate_op(parts[0].db, first).into_iter().collect())
}

/// A group that names the command the stream sends for it (`Op::Propagate`: a cross-shard
/// LMOVE, RPOPLPUSH or SMOVE, whose parts are each shard's pop or push): that command alone.
fn propagated<'a>(parts: &[PayloadRef<'a>]) -> Option<Vec<Command<'a>>> {
    let commands: Vec<Command<'a>> = parts
        .iter()
        .flat_map(|p| {
            p.ops.iter().filter_map(move |op| match op {
                OpRef::Propagate(argv) => {
                    Some((Some(p.db), argv.iter().map(|a| Cow::Borrowed(*a)).collect()))
                }
                _ => None,
            })
        })
        .collect();
    (!commands.is_empty()).then_some(commands)
}

/// One record's commands.
fn translate<'a>(payload: &PayloadRef<'a>) -> Vec<Command<'a>> {
    if let Some(command) = with_expiry(payload) {
        return command.into_iter().collect();
    }
    let mut commands: Vec<Command<'a>> = payload
        .ops
        .iter()
        .filter_map(|op| translate_op(payload.db, op))
        .collect();
    drop_setid_after_claims(&mut commands);
    commands
}

/// A stream group's XGROUP SETID logged after XCLAIMs of the same group (XREADGROUP, XCLAIM
/// LASTID): the claims' LASTID already moves the group, and Redis propagates the claims alone.
fn drop_setid_after_claims(commands: &mut Vec<Command<'_>>) {
    let names = |argv: &[Cow<'_, [u8]>], a: &str, b: &str| {
        argv.len() > 3
            && argv[0].eq_ignore_ascii_case(a.as_bytes())
            && (b.is_empty() || argv[1].eq_ignore_ascii_case(b.as_bytes()))
    };
    if !commands.iter().any(|(_, argv)| names(argv, "xclaim", "")) {
        return;
    }
    let claimed: Vec<(Vec<u8>, Vec<u8>)> = commands
        .iter()
        .filter(|(_, argv)| names(argv, "xclaim", ""))
        .map(|(_, argv)| (argv[1].to_vec(), argv[2].to_vec()))
        .collect();
    commands.retain(|(_, argv)| {
        !(names(argv, "xgroup", "setid")
            && claimed
                .iter()
                .any(|(k, g)| k[..] == argv[2][..] && g[..] == argv[3][..]))
    });
}

fn word(w: &'static [u8]) -> Cow<'static, [u8]> {
    Cow::Borrowed(w)
}

fn number(n: u64) -> Cow<'static, [u8]> {
    Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec())
}

fn translate_op<'a>(db: usize, op: &OpRef<'a>) -> Option<Command<'a>> {
    Some(match *op {
        OpRef::Argv(ref argv) => (Some(db), argv.iter().map(|a| Cow::Borrowed(*a)).collect()),
        OpRef::Del(key) => (Some(db), vec![word(b"DEL"), Cow::Borrowed(key)]),
        OpRef::ExpireAt(key, 0) => (Some(db), vec![word(b"PERSIST"), Cow::Borrowed(key)]),
        OpRef::ExpireAt(key, at) => (Some(db), pexpireat(key, at)),
        // In the client's database, as Redis selects it before FLUSHALL and SWAPDB.
        OpRef::Flush(None) => (Some(db), vec![word(b"FLUSHALL")]),
        OpRef::Flush(Some(d)) => (Some(d), vec![word(b"FLUSHDB")]),
        OpRef::SwapDb(a, c) => (
            Some(db),
            vec![word(b"SWAPDB"), number(a as u64), number(c as u64)],
        ),
        // Sent for its whole group (`propagated`), never among the group's other commands.
        OpRef::Propagate(_) => return None,
    })
}

fn pexpireat(key: &[u8], at: u64) -> Vec<Cow<'_, [u8]>> {
    vec![word(b"PEXPIREAT"), Cow::Borrowed(key), number(at)]
}

/// A command logged with its key's resulting expiry (`LogForm::ArgvWithExpiry`: the argv, then
/// the key's absolute expiry or its deletion) as one command with an absolute expiry, as
/// Redis 7.0 propagates it: `SET … PXAT`, `PEXPIREAT`, `PERSIST`, or `DEL` when the key is gone.
/// Some(None): nothing to send (an EXPIRE that left a key without expiry changed nothing).
fn with_expiry<'a>(payload: &PayloadRef<'a>) -> Option<Option<Command<'a>>> {
    let [OpRef::Argv(argv), after] = payload.ops.as_slice() else {
        return None;
    };
    let key: &'a [u8] = argv.get(1)?;
    let at = match *after {
        OpRef::ExpireAt(k, at) if k == key => Some(at),
        OpRef::Del(k) if k == key => None,
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
        return Some(Some((db, vec![word(b"DEL"), Cow::Borrowed(key)])));
    };
    let with_pxat = |mut argv: Vec<Cow<'a, [u8]>>| {
        if at != 0 {
            argv.push(word(b"PXAT"));
            argv.push(number(at));
        }
        Some(Some((db, argv)))
    };
    let expire = ["expire", "pexpire", "expireat", "pexpireat"];
    if named(&["set"]) {
        if at != 0 && set_has_expiry(argv) {
            // As Redis's setGenericCommand: `SET key value PXAT ms`, its other options dropped.
            with_pxat(vec![
                word(b"SET"),
                Cow::Borrowed(key),
                Cow::Borrowed(argv[2]),
            ])
        } else {
            Some(Some((db, set_without_get(argv))))
        }
    } else if named(&["setex", "psetex"]) && argv.len() == 4 {
        with_pxat(vec![
            word(b"SET"),
            Cow::Borrowed(key),
            Cow::Borrowed(argv[3]),
        ])
    } else if named(&["getex"]) && at == 0 {
        Some(Some((db, vec![word(b"PERSIST"), Cow::Borrowed(key)])))
    } else if (named(&["getex"]) || named(&expire)) && at != 0 {
        Some(Some((db, pexpireat(key, at))))
    } else if named(&expire) {
        Some(None)
    } else {
        None
    }
}

/// Whether SET was given an expiry (EX PX EXAT PXAT), which Redis propagates as PXAT.
fn set_has_expiry(argv: &[&[u8]]) -> bool {
    argv.iter().skip(3).any(|a| {
        ["ex", "px", "exat", "pxat"]
            .iter()
            .any(|n| a.eq_ignore_ascii_case(n.as_bytes()))
    })
}

/// SET's arguments as Redis propagates a SET without an expiry: as given (KEEPTTL, NX and XX
/// kept) but for GET, which changes nothing a replica keeps, and WarpEngine's own DURABILITY.
fn set_without_get<'a>(argv: &[&'a [u8]]) -> Vec<Cow<'a, [u8]>> {
    let mut out: Vec<Cow<'a, [u8]>> = Vec::with_capacity(argv.len());
    out.extend(argv.iter().take(3).map(|a| Cow::Borrowed(*a)));
    let mut i = 3;
    while i < argv.len() {
        if argv[i].eq_ignore_ascii_case(b"durability") {
            i += 2;
        } else {
            if !argv[i].eq_ignore_ascii_case(b"get") {
                out.push(Cow::Borrowed(argv[i]));
            }
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
        String::from_utf8(t.record(&payload).to_vec())
            .unwrap()
            .replace("\r\n", " ")
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
