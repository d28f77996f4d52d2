//! What a write puts in the log. Most commands are logged as they were sent: replayed on the
//! same state they give the same result. The exceptions are rewritten into their effect:
//! - relative expiry (SET EX, EXPIRE, GETEX, ...) gains the key's resulting absolute expiry;
//! - SPOP and served blocking pops become the deterministic removal that happened;
//! - a command whose keys span shards logs the resulting state of each key it wrote, one
//!   record per shard, as a group that recovery applies whole or not at all; a move between
//!   two keys (LMOVE, SMOVE, ...) logs each shard's own step instead (the pop, the push), and
//!   names itself for the replication stream;
//! - keys removed by expiry are logged as deletions before the next record of their shard;
//! - TEMPORAL INCR spells out the half-life, event time and member cap it used;
//! - GETSET, GETDEL, INCRBYFLOAT, HINCRBYFLOAT and GEOADD log the command Redis propagates for
//!   them (SET, DEL, SET ... KEEPTTL, HSET, ZADD), and a write whose reply says it changed
//!   nothing (`CommandSpec::unchanged_when`) logs nothing: the replication stream, made from
//!   these records, is then what Redis would send.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_storage::{Entry, Shard, StreamValue, Value};

use super::ops::{Group, PayloadWriter};
use crate::command_table::{CommandSpec, LogForm, Writes, TABLE};
use crate::keyctx::KeyCtx;
use crate::protocol::Reply;
use crate::server_state::Server;

/// Whether the command at this table index writes the log (its descriptor's log form).
pub fn is_logged(spec_index: usize) -> bool {
    TABLE[spec_index].is_logged()
}

/// Before a logged command changes its keys: a background snapshot that has not written them
/// yet writes them out first.
pub fn before_command(ctx: &mut KeyCtx, spec_index: usize, args: &[Bytes]) {
    let server = ctx.server;
    if !server.wal.background_active.load(Ordering::Acquire) || !is_logged(spec_index) {
        return;
    }
    let spec = &TABLE[spec_index];
    // MOVE and COPY ... DB write the key in another database too.
    let every_db = spec.other_db.is_some();
    for p in spec.key_positions(args) {
        before_key(ctx, &args[p], every_db);
    }
}

/// Preserves one key for a background snapshot (in every database when `every_db`).
pub fn before_key(ctx: &mut KeyCtx, key: &[u8], every_db: bool) {
    let server = ctx.server;
    let dbs = if every_db {
        0..ctx.databases()
    } else {
        ctx.db..ctx.db + 1
    };
    let shard = ctx.shard(key);
    for db in dbs {
        super::background::preserve(server, shard, db, key);
    }
}

/// Logs the deletions of keys that expired on `shard` since its last record.
pub fn flush_expired(server: &Server, shard: &mut Shard) {
    let id = shard.id;
    for (db, d) in shard.dbs.iter_mut().enumerate() {
        let Some(keys) = d.expired_unlogged.as_mut().filter(|k| !k.is_empty()) else {
            continue;
        };
        server.wal.append(id, |buf| {
            let mut w = PayloadWriter::begin(buf, db, None);
            for k in keys.iter() {
                w.del(k.as_bytes());
            }
        });
        keys.clear();
    }
}

/// Logs only the deletions of keys that expired on the shards of `ctx` (a blocking command that
/// found nothing to serve and waits again).
#[cold]
pub fn expired_only(ctx: &mut KeyCtx) {
    let server = ctx.server;
    ctx.each_shard(|s| flush_expired(server, s));
}

/// Logs the effect of a keyed command that just ran in `ctx` (the shard or shards of its keys,
/// still locked). `changed`: it wrote, without an error and without its reply saying it
/// changed nothing (`CommandSpec::unchanged_when`), as the caller judged it.
#[inline(never)]
pub fn after_command(
    ctx: &mut KeyCtx,
    spec_index: usize,
    args: &[Bytes],
    reply: &Reply,
    changed: bool,
) {
    let server = ctx.server;
    ctx.each_shard(|s| flush_expired(server, s));
    let spec = &TABLE[spec_index];
    let form = spec.log;
    if !spec.is_logged() || !changed {
        return;
    }
    // A batched command runs on the one shard that owns all its keys.
    let shard_id = match ctx.single_shard() {
        Some(id) => id,
        None => {
            let positions = spec.key_positions(args);
            let mut shards: Vec<usize> =
                positions.iter().map(|&p| server.route(&args[p])).collect();
            shards.sort_unstable();
            shards.dedup();
            if shards.len() > 1 {
                match (form, spec.effects_when_spanning) {
                    (LogForm::Effects(effects), _) => {
                        let commands = effects(ctx, args, reply);
                        log_effects_by_shard(ctx, &commands, None);
                    }
                    (_, Some(effects)) => {
                        let commands = effects(ctx, args, reply);
                        // Alone (not in a transaction's or script's group), the stream
                        // sends the command itself, as Redis propagates it.
                        let sent = ctx.captured.is_none().then(|| sent_form(form, args));
                        log_effects_by_shard(ctx, &commands, sent.flatten());
                    }
                    _ => log_key_states(ctx, spec, args, &positions),
                }
                return;
            }
            shards.first().copied().unwrap_or(0)
        }
    };
    let db = ctx.db;
    // The forms that name a key (expiry, SPOP) have it first.
    let key: &[u8] = args.get(1).map_or(b"", |a| &a[..]);
    let expiry = matches!(form, LogForm::ArgvWithExpiry).then(|| {
        let now = 0;
        ctx.db(key).get_with_expiry(key, now).map(|(_, at)| at)
    });
    match form {
        LogForm::NotLogged => {}
        LogForm::Rewritten(rewrite) => {
            if let Some(argv) = rewrite(ctx, args) {
                append(ctx, shard_id, |buf| {
                    PayloadWriter::begin(buf, db, None).argv(argv.iter().map(|a| &a[..]));
                });
            }
        }
        LogForm::Effects(effects) => {
            let commands = effects(ctx, args, reply);
            if !commands.is_empty() {
                append(ctx, shard_id, |buf| {
                    let mut w = PayloadWriter::begin(buf, db, None);
                    for argv in &commands {
                        w.argv(argv.iter().map(|a| &a[..]));
                    }
                });
            }
        }
        LogForm::Argv => {
            append(ctx, shard_id, |buf| {
                PayloadWriter::begin(buf, db, None).argv(args.iter().map(|a| &a[..]));
            });
        }
        LogForm::ArgvWithExpiry => {
            append(ctx, shard_id, |buf| {
                let mut w = PayloadWriter::begin(buf, db, None);
                w.argv(args.iter().map(|a| &a[..]));
                match expiry.flatten() {
                    Some(at) => w.expire_at(key, at),
                    None => w.del(key),
                }
            });
        }
        LogForm::Spop => {
            let members: Vec<&[u8]> = match reply {
                Reply::Bulk(m) => vec![m],
                Reply::Set(v) | Reply::Array(v) => v.iter().filter_map(bulk).collect(),
                _ => Vec::new(),
            };
            if !members.is_empty() {
                append(ctx, shard_id, |buf| {
                    let mut w = PayloadWriter::begin(buf, db, None);
                    let argv = [&b"SREM"[..], key].into_iter().chain(members);
                    w.argv(argv.collect::<Vec<_>>().into_iter());
                });
            }
        }
        LogForm::ListPop(pop) => {
            if let Some(popped_from) = array_item(reply, 0) {
                append(ctx, shard_id, |buf| {
                    let argv = [pop.as_bytes(), popped_from];
                    PayloadWriter::begin(buf, db, None).argv(argv.into_iter());
                });
            }
        }
        LogForm::Move(name) => {
            if matches!(reply, Reply::Bulk(_)) {
                // Everything but the trailing timeout.
                let rest = args[1..args.len() - 1].iter().map(|a| &a[..]);
                let argv: Vec<&[u8]> = std::iter::once(name.as_bytes()).chain(rest).collect();
                append(ctx, shard_id, |buf| {
                    PayloadWriter::begin(buf, db, None).argv(argv.into_iter())
                });
            }
        }
    }
}

fn bulk(r: &Reply) -> Option<&[u8]> {
    match r {
        Reply::Bulk(b) => Some(b),
        _ => None,
    }
}

fn array_at(r: &Reply, i: usize) -> Option<&Reply> {
    match r {
        Reply::Array(v) => v.get(i),
        _ => None,
    }
}

fn array_item(r: &Reply, i: usize) -> Option<&[u8]> {
    array_at(r, i).and_then(bulk)
}

/// The keys a cross-shard command may have written (its descriptor's `writes`).
fn written_keys<'a>(spec: &CommandSpec, args: &'a [Bytes], positions: &[usize]) -> Vec<&'a [u8]> {
    let keys = positions.iter().map(|&p| &args[p][..]);
    match spec.writes {
        Writes::All => keys.collect(),
        Writes::First => keys.take(1).collect(),
        Writes::Second => keys.skip(1).take(1).collect(),
    }
}

/// Logs the state of every key a cross-shard command wrote, one grouped record per shard.
fn log_key_states(ctx: &mut KeyCtx, spec: &CommandSpec, args: &[Bytes], positions: &[usize]) {
    let server = ctx.server;
    // COPY ... DB writes its target in another database.
    let db = spec.other_db.and_then(|find| find(args)).unwrap_or(ctx.db);
    let mut by_shard: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    for key in written_keys(spec, args, positions) {
        let s = server.route(key);
        match by_shard.iter_mut().find(|(id, _)| *id == s) {
            Some((_, keys)) => keys.push(key),
            None => by_shard.push((s, vec![key])),
        }
    }
    let group = group_for(ctx, by_shard.len());
    let mut payloads = Vec::with_capacity(by_shard.len());
    for (shard_id, keys) in &by_shard {
        let mut payload = Vec::new();
        let target = ctx.db_at(keys[0], db);
        let mut w = PayloadWriter::begin(&mut payload, db, group);
        for key in keys {
            put_key(&mut w, key, target.get_with_expiry(key, 0));
        }
        payloads.push((*shard_id, payload));
    }
    append_parts(ctx, group, payloads);
}

/// The group that ties the records of one command across `parts` shards' logs (None for one
/// shard, and inside a transaction, whose step groups every record it captured: see
/// `transaction_step`).
fn group_for(ctx: &KeyCtx, parts: usize) -> Option<Group> {
    (parts > 1 && ctx.captured.is_none()).then(|| Group {
        txid: ctx.server.wal.next_txid(),
        parts: parts as u32,
    })
}

/// Appends each shard's payload to its log and links them when they form a group.
fn append_parts(ctx: &mut KeyCtx, group: Option<Group>, payloads: Vec<(usize, Vec<u8>)>) {
    let mut places = Vec::with_capacity(payloads.len());
    for (shard_id, payload) in payloads {
        if let Some(lsn) = append(ctx, shard_id, |buf| buf.extend_from_slice(&payload)) {
            places.push((shard_id, lsn));
        }
    }
    if group.is_some() {
        ctx.server.wal.link_group(&places);
    }
}

/// The command as the replication stream sends it, for the forms that send it as it came (a
/// served BLMOVE as LMOVE, without its timeout).
fn sent_form(form: LogForm, args: &[Bytes]) -> Option<Vec<&[u8]>> {
    match form {
        LogForm::Argv => Some(args.iter().map(|a| &a[..]).collect()),
        LogForm::Move(name) => Some(
            std::iter::once(name.as_bytes())
                .chain(args[1..args.len() - 1].iter().map(|a| &a[..]))
                .collect(),
        ),
        _ => None,
    }
}

/// Logs the commands a `LogForm::Effects` command (or a move, `effects_when_spanning`) listed
/// when its keys span shards: each in the log of its own key's shard, all as one group (rather
/// than each key's whole state). `sent`: the command the replication stream sends for the
/// group instead (kept in its first part).
fn log_effects_by_shard(ctx: &mut KeyCtx, commands: &[Vec<Bytes>], sent: Option<Vec<&[u8]>>) {
    let server = ctx.server;
    let mut by_shard: Vec<(usize, Vec<&Vec<Bytes>>)> = Vec::new();
    for argv in commands {
        let Some(index) = argv
            .first()
            .and_then(|name| crate::command_table::lookup_original(name))
        else {
            continue;
        };
        let Some(&first_key) = TABLE[index].key_positions(argv).first() else {
            continue;
        };
        let s = server.route(&argv[first_key]);
        match by_shard.iter_mut().find(|(id, _)| *id == s) {
            Some((_, list)) => list.push(argv),
            None => by_shard.push((s, vec![argv])),
        }
    }
    let group = group_for(ctx, by_shard.len());
    let db = ctx.db;
    let payloads = by_shard
        .iter()
        .enumerate()
        .map(|(i, (shard_id, list))| {
            let mut payload = Vec::new();
            let mut w = PayloadWriter::begin(&mut payload, db, group);
            for argv in list {
                w.argv(argv.iter().map(|a| &a[..]));
            }
            if let (0, Some(_), Some(sent)) = (i, group, &sent) {
                w.propagate(sent.iter().copied());
            }
            (*shard_id, payload)
        })
        .collect();
    append_parts(ctx, group, payloads);
}

/// Appends a payload to `shard_id`'s log, or, in a transaction's step, keeps it for the step's
/// group (None then).
fn append(ctx: &mut KeyCtx, shard_id: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Option<u64> {
    match ctx.captured.as_mut() {
        Some(captured) => {
            let mut payload = Vec::new();
            fill(&mut payload);
            captured.push((shard_id, payload));
            None
        }
        None => Some(ctx.server.wal.append(shard_id, fill)),
    }
}

/// Logs what a transaction's locked step captured (its commands ran with `ctx.captured` set):
/// one record stays as it is (a record is checked as a unit); several become one group, which
/// recovery applies only when every part reached the disk, across shards or within one.
pub fn transaction_step(ctx: &mut KeyCtx, captured: Vec<(usize, Vec<u8>)>) {
    let server = ctx.server;
    let group = (captured.len() > 1).then(|| Group {
        txid: server.wal.next_txid(),
        parts: captured.len() as u32,
    });
    let mut places = Vec::with_capacity(captured.len());
    for (shard_id, payload) in &captured {
        let lsn = server.wal.append(*shard_id, |buf| match group {
            Some(g) => super::ops::regroup(payload, g, buf),
            None => buf.extend_from_slice(payload),
        });
        places.push((*shard_id, lsn));
    }
    if group.is_some() {
        server.wal.link_group(&places);
    }
}

/// Logs a metadata change (`Run::Meta`) in shard 0's log, whose lock the caller holds.
pub fn meta(server: &Server, shard0: &mut Shard, args: &[Bytes]) {
    flush_expired(server, shard0);
    server.wal.append(shard0.id, |buf| {
        PayloadWriter::begin(buf, 0, None).argv(args.iter().map(|a| &a[..]))
    });
}

/// Logs a key evicted by maxmemory as its deletion.
pub fn evicted(server: &Server, shard: &mut Shard, db: usize, key: &[u8]) {
    flush_expired(server, shard);
    server
        .wal
        .append(shard.id, |buf| PayloadWriter::begin(buf, db, None).del(key));
}

/// Logs the state of one key written by a command that locked every shard (SORT ... STORE).
pub fn key_state(ctx: &mut KeyCtx, key: &[u8]) {
    let server = ctx.server;
    ctx.each_shard(|s| flush_expired(server, s));
    let db = ctx.db;
    let shard_id = ctx.shard(key).id;
    let target = ctx.db(key);
    server.wal.append(shard_id, |buf| {
        let mut w = PayloadWriter::begin(buf, db, None);
        put_key(&mut w, key, target.get_with_expiry(key, 0));
    });
}

/// Logs FLUSHDB (`Some(db)`), FLUSHALL (`None`) or SWAPDB on every shard, as one group.
/// `client_db`: the database the client had selected, which the replication stream selects
/// before FLUSHALL and SWAPDB, as Redis propagates them.
pub fn whole_keyspace(
    server: &Server,
    shards: &mut [&mut Shard],
    op: KeyspaceOp,
    client_db: usize,
) {
    for s in shards.iter_mut() {
        flush_expired(server, s);
    }
    let group = (shards.len() > 1).then(|| Group {
        txid: server.wal.next_txid(),
        parts: shards.len() as u32,
    });
    let mut places = Vec::with_capacity(shards.len());
    for s in shards.iter() {
        let lsn = server.wal.append(s.id, |buf| {
            let mut w = PayloadWriter::begin(buf, client_db, group);
            match op {
                KeyspaceOp::Flush(db) => w.flush(db),
                KeyspaceOp::SwapDb(a, b) => w.swapdb(a, b),
            }
        });
        places.push((s.id, lsn));
    }
    if group.is_some() {
        server.wal.link_group(&places);
    }
}

#[derive(Debug, Clone, Copy)]
pub enum KeyspaceOp {
    Flush(Option<usize>),
    SwapDb(usize, usize),
}

/// Most items per re-creating command, as Redis's AOF rewrite does.
const ITEMS_PER_COMMAND: usize = 64;

/// Keys moved from shard `from` to shard `to` (WORMHOLE's pins, ENTROPY's slot moves), logged as
/// one group: `meta` (the command that replays the route change, in shard 0's log), and per
/// key its deletion in `from`'s log and its entry in `to`'s. Each log replays into its own
/// shard, so the group's parts need no order between logs; recovery applies all of a group or
/// none of it. `moved`: (key, database, entry, expiry).
pub fn log_key_moves(
    server: &Server,
    meta: &[&[u8]],
    from: usize,
    to: usize,
    moved: &[(&[u8], usize, &Entry, u64)],
) {
    let parts = 1 + 2 * moved.len() as u32;
    let group = (parts > 1).then(|| Group {
        txid: server.wal.next_txid(),
        parts,
    });
    let mut places = Vec::new();
    let lsn = server.wal.append(0, |buf| {
        PayloadWriter::begin(buf, 0, group).argv(meta.iter().copied());
    });
    places.push((0, lsn));
    for &(key, db, entry, expire_at) in moved {
        let lsn = server.wal.append(from, |buf| {
            PayloadWriter::begin(buf, db, group).del(key);
        });
        places.push((from, lsn));
        let lsn = server.wal.append(to, |buf| {
            put_key(
                &mut PayloadWriter::begin(buf, db, group),
                key,
                Some((entry, expire_at)),
            );
        });
        places.push((to, lsn));
    }
    if group.is_some() {
        server.wal.link_group(&places);
    }
}

/// Writes the operations that re-create `key` as `entry` (or delete it).
pub fn put_key(w: &mut PayloadWriter, key: &[u8], entry: Option<(&Entry, u64)>) {
    w.del(key);
    let Some((entry, expire_at)) = entry else {
        return;
    };
    match &entry.value {
        Value::Str(s) => w.argv([&b"SET"[..], key, &s.as_slice()].into_iter()),
        Value::List(l) => {
            let items = l.iter().map(Cow::Borrowed);
            emit_chunked(w, b"RPUSH", key, items, 1);
        }
        Value::Hash(h) => {
            let items = h
                .iter()
                .flat_map(|(f, v)| [Cow::Borrowed(f), Cow::Borrowed(v)]);
            emit_chunked(w, b"HSET", key, items, 2);
        }
        Value::Set(s) => emit_chunked(w, b"SADD", key, s.iter().map(Cow::Borrowed), 1),
        Value::ZSet(z) => {
            let items = z.iter().flat_map(|(m, score)| {
                [
                    Cow::Owned(format_score(score).into_bytes()),
                    Cow::Borrowed(m),
                ]
            });
            emit_chunked(w, b"ZADD", key, items, 2);
        }
        Value::Stream(s) => put_stream(w, key, s),
        Value::Temporal(t) => {
            // No cap on re-creation: the key holds what the cap let it keep when it was written.
            for (member, amount, at_ms) in t.replay_events() {
                let amount = Bytes::from(format_score(amount));
                let argv = temporal_incr_argv(key, member, amount, t.halflife_secs(), at_ms, 0);
                w.argv(argv.iter().map(|a| &a[..]));
            }
        }
    }
    if expire_at != 0 {
        w.expire_at(key, expire_at);
    }
}

/// Re-creates a stream exactly as it is: a RESTORE of its RDB form (its nodes with their
/// deleted entries, IDs and counters, groups, consumers with their seen times, and pending
/// entries, those whose stream entry was deleted or trimmed away included), which no sequence
/// of XADD/XGROUP/XCLAIM can give back (consumers' seen times would be the replay's).
fn put_stream(w: &mut PayloadWriter, key: &[u8], s: &StreamValue) {
    // Uncompressed: a snapshot is written while the shard waits; LZF would only save disk.
    let enc = super::rdb_value::Encodings {
        compress: false,
        ..super::rdb_value::Encodings::default()
    };
    let mut body = Vec::new();
    super::rdb_stream::write_stream(&mut body, s, &enc);
    let payload = super::rdb::seal(body);
    w.argv([&b"RESTORE"[..], key, b"0", &payload].into_iter());
}

/// `TEMPORAL INCR key member amount HALFLIFE h AT at MAXMEMBERS n`: how the log spells a
/// TEMPORAL increment with every implicit setting made explicit (the family's log form, and the
/// re-creation of a TEMPORAL key).
pub fn temporal_incr_argv(
    key: &[u8],
    member: &[u8],
    amount: Bytes,
    halflife_secs: f64,
    at_ms: i64,
    max_members: usize,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"TEMPORAL"),
        Bytes::from_static(b"INCR"),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(member),
        amount,
        Bytes::from_static(b"HALFLIFE"),
        // Rust prints the shortest text that parses back to the same double.
        Bytes::from(halflife_secs.to_string()),
        Bytes::from_static(b"AT"),
        Bytes::from(at_ms.to_string()),
        Bytes::from_static(b"MAXMEMBERS"),
        Bytes::from(max_members.to_string()),
    ]
}

/// A score as text that parses back to the same double.
fn format_score(s: f64) -> String {
    if s.is_infinite() {
        if s > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{s:e}")
    }
}

fn emit_chunked<'a>(
    w: &mut PayloadWriter,
    name: &[u8],
    key: &[u8],
    items: impl Iterator<Item = Cow<'a, [u8]>>,
    per_item: usize,
) {
    let mut argv: Vec<Cow<[u8]>> = Vec::with_capacity(2 + ITEMS_PER_COMMAND * per_item);
    let flush = |argv: &mut Vec<Cow<[u8]>>, w: &mut PayloadWriter| {
        let parts = [name, key]
            .into_iter()
            .chain(argv.iter().map(|c| &c[..]))
            .collect::<Vec<_>>();
        w.argv(parts.into_iter());
        argv.clear();
    };
    for item in items {
        argv.push(item);
        if argv.len() == ITEMS_PER_COMMAND * per_item {
            flush(&mut argv, w);
        }
    }
    if !argv.is_empty() {
        flush(&mut argv, w);
    }
}
