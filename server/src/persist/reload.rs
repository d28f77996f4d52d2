//! DEBUG RELOAD: the whole dataset written out in the snapshot format and read back through
//! recovery's code, as Redis saves its RDB and loads it back, so that test suites can check that
//! what persistence keeps is what was there. In memory, shard by shard, under every shard's lock:
//! no client sees the dataset in between, and the log, which already describes the same
//! contents, is left as it is.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use warpengine_wal::Reader;

use super::ops;
use super::recovery::apply;
use super::snapshot::append_key;
use crate::keyctx::{KeyCtx, Shards};
use crate::server_state::{unix_ms, Server};

/// Err while a background snapshot walks the shards: a reload would change them under it.
fn no_background_save(server: &Server) -> Result<(), String> {
    if server
        .wal
        .stats
        .snapshot_in_progress
        .load(Ordering::Acquire)
    {
        return Err("Background save already in progress".into());
    }
    Ok(())
}

/// DEBUG RELOAD NOSAVE: the snapshot file (`dir/dbfilename`) loaded as it is on disk, over the
/// dataset and function libraries, emptied first unless `flush` is false (NOFLUSH: a key in both then takes the file's
/// value, which is MERGE's outcome; Redis without MERGE stops the server there). The number of
/// keys loaded. As Redis, the data is emptied even when the file then does not load, and the
/// log is left as it is (Redis leaves its AOF too). Emptying and loading each take every
/// shard's lock, one after the other: a client's write can land in between.
pub fn load_snapshot_file(server: &Server, flush: bool) -> Result<u64, String> {
    no_background_save(server)?;
    if flush {
        let mut guards = server.lock_all();
        for shard in guards.iter_mut() {
            for db in &mut shard.dbs {
                db.clear();
            }
            server.publish_spare(shard);
        }
        drop(guards);
        // As Redis's emptyData: the function libraries go too (the file brings its own).
        server.functions.flush();
        server.tracking.flushed(server);
    }
    let path = super::rdb_file::path(server);
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let loaded =
        super::rdb_file::load(server, &data).map_err(|e| format!("{}: {e}", path.display()));
    // Loading keys raised keyspace events for keys that were not written.
    let _ = warpengine_storage::notify::take();
    Ok(loaded?.keys)
}

/// Reloads every key; the number of keys. Err while a background snapshot walks the shards, or
/// if a record does not read back.
pub fn reload(server: &Server) -> Result<u64, String> {
    no_background_save(server)?;
    let now = unix_ms();
    let mut guards = server.lock_all();
    let mut keys = 0u64;
    for shard in guards.iter_mut() {
        let mut buf = Vec::new();
        let mut lsn = 0u64;
        for (db_index, db) in shard.dbs.iter().enumerate() {
            // As a load skips keys that expired since the save.
            for (key, entry, expire_at) in db.iter_live(now) {
                append_key(&mut buf, &mut lsn, db_index, key, entry, expire_at);
            }
        }
        keys += lsn;
        for db in shard.dbs.iter_mut() {
            db.clear();
        }
        let data = Bytes::from(buf);
        let mut ctx = KeyCtx::new(Shards::One(shard), server, 0, now);
        ctx.clock = now as u32;
        let mut reader = Reader::checked_before(&data);
        while let Some(rec) = reader.next_record() {
            let payload = ops::decode_in(rec.payload, &data)
                .map_err(|e| format!("a reloaded record does not decode: {e}"))?;
            ctx.db = payload.db;
            for op in payload.ops {
                if !apply(&mut ctx, op) {
                    return Err("a reloaded record was refused".into());
                }
            }
        }
    }
    drop(guards);
    // Re-creating keys raised keyspace events that did not happen.
    let _ = warpengine_storage::notify::take();
    Ok(keys)
}
