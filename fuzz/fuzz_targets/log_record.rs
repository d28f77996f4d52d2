//! The write-ahead log's records, decoded and replayed as a start recovers them.
//!
//! The input is read two ways. As raw bytes, it is a log segment for the record reader
//! (`warpengine_wal::Reader`): framing, CRCs, torn tails and damage found in the middle; every
//! record that checks out is decoded (`persist::ops::decode`), which never panics, and a payload
//! that decodes encodes again (`PayloadWriter`) to one that decodes the same.
//!
//! Random bytes almost never carry a valid CRC, so the input is also cut into payloads, each
//! framed as the server frames a record (`[u16 length][payload]`, the length little-endian),
//! and that segment goes through recovery's two passes (`persist::recovery::replay_segment`)
//! into a fresh server: group counting, then every operation applied to the shard, the
//! commands of `Argv` operations run from the command table. Errors are fine (a damaged log
//! stops a start); a panic is not. The first byte picks how many shards wrote the log (1 to 3,
//! so replay into another layout, whose keys move to their new owners, is exercised too); the
//! second says whether bytes that are no whole record end the segment (a torn tail).
#![no_main]

use std::cell::RefCell;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warpengine::config_store::ConfigStore;
use warpengine::persist::ops::{self, Op, Payload, PayloadWriter};
use warpengine::persist::{recovery, snapshot};
use warpengine::server_state::Server;
use warpengine_wal::{record, Reader};

/// Writes `payload` again with the server's own writer.
fn encode(payload: &Payload) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = PayloadWriter::begin(&mut buf, payload.db, payload.group);
    for op in &payload.ops {
        match op {
            Op::Argv(args) => w.argv(args.iter().map(|a| &a[..])),
            Op::Del(key) => w.del(key),
            Op::ExpireAt(key, at) => w.expire_at(key, *at),
            Op::Flush(db) => w.flush(*db),
            Op::SwapDb(a, b) => w.swapdb(*a, *b),
            Op::Propagate(args) => w.propagate(args.iter().map(|a| &a[..])),
        }
    }
    buf
}

/// Decodes a record's payload; one that decodes must encode again to the same operations.
fn check_decode(payload: &[u8]) {
    let group = ops::group_of(payload);
    let Ok(decoded) = ops::decode(payload) else {
        return;
    };
    assert_eq!(decoded.group, group, "group_of and decode disagree");
    let again = ops::decode(&encode(&decoded)).expect("a payload written again decodes");
    assert_eq!(again, decoded, "a decoded payload does not survive a write");
}

thread_local! {
    /// Built once (building a server costs more than most replays) and emptied before each
    /// run; rebuilt after a run left server-wide metadata (functions, QUANTUM links, pins).
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

fn with_fresh_server(run: impl FnOnce(&Server)) {
    SERVER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let server = slot.get_or_insert_with(|| {
            warpengine::commands::install();
            Server::new(ConfigStore::default(), 1)
        });
        for mut shard in server.lock_all() {
            shard.dbs.iter_mut().for_each(|db| db.clear());
        }
        run(server);
        if !snapshot::meta_records(server).is_empty() {
            *slot = None;
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let mut raw = Reader::new(data);
    while let Some(rec) = raw.next_record() {
        check_decode(rec.payload);
    }
    assert!(raw.valid_len() as usize <= data.len());

    let [shards, flags, rest @ ..] = data else {
        return;
    };
    let written_by = 1 + (*shards as usize % 3);
    let mut segment = Vec::new();
    let mut lsn = 0;
    let mut input = rest;
    while let [lo, hi, tail @ ..] = input {
        let len = u16::from_le_bytes([*lo, *hi]) as usize;
        if len > tail.len() {
            break;
        }
        let (payload, after) = tail.split_at(len);
        check_decode(payload);
        lsn += 1;
        record::append(&mut segment, lsn, |b| b.extend_from_slice(payload));
        input = after;
    }
    if flags & 1 != 0 {
        segment.extend_from_slice(input);
    }
    with_fresh_server(|server| {
        let _ = recovery::replay_segment(server, Bytes::from(segment), written_by);
    });
});
