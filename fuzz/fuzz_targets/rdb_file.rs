//! Whole RDB files through the loader the server uses at start and for a replica's full sync
//! (`persist::rdb_file::load`), into a fresh in-process server: any input loads or is refused
//! with an error, never a panic, a hang or an allocation out of proportion: the peak of live heap
//! bytes grows by at most 64 MB + 4096 × the input's length (the most compressed encodings, an
//! LZF-compressed listpack of one-byte entries, legitimately expand a few thousand times; a
//! length field believed without looking at what follows asks for gigabytes). A file that loads
//! is written again (`to_bytes`, what a primary sends a replica), and that file loads into another
//! fresh server with the same contents (DEBUG DIGEST's content hash, key by key, and the same
//! expiry times) and the same function libraries.
//!
//! The input's last 8 bytes are replaced by the CRC-64 of the rest, as a real file's trailer,
//! so that mutations reach the decoder instead of stopping at the checksum. The corpus is
//! seeded from `fuzz/seeds/rdb_file/` (files written by redis-server 7.0.15 and by WarpEngine).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warpengine::config_store::ConfigStore;
use warpengine::persist::rdb::crc64_update;
use warpengine::persist::rdb_file;
use warpengine::server_state::Server;
use warpengine_fuzz::Counting;
use warpengine_storage::digest::{key_digest, Digest};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Two servers of one shard with the default configuration, built once: building one costs
/// more than most loads (the configuration's few hundred settings), so each run empties them
/// instead, which leaves them as a start from an empty directory would.
fn servers() -> &'static (Server, Server) {
    static SERVERS: OnceLock<(Server, Server)> = OnceLock::new();
    SERVERS.get_or_init(|| {
        warpengine::commands::install();
        let server = || Server::new(ConfigStore::default(), 1);
        (server(), server())
    })
}

/// Empties `server`: every database and the function libraries.
fn fresh(server: &Server) -> &Server {
    for mut shard in server.lock_all() {
        shard.dbs.iter_mut().for_each(|db| db.clear());
    }
    server.functions.flush();
    server
}

/// Every key's (database, name, content digest, expiry), in a canonical order: what must survive
/// a write and a load.
fn contents(server: &Server) -> Vec<(usize, Vec<u8>, Digest, u64)> {
    let mut keys = Vec::new();
    for shard in server.lock_all() {
        for (db, d) in shard.dbs.iter().enumerate() {
            for (key, entry, expire_at) in d.iter_live(0) {
                let digest = key_digest(key, entry, expire_at != 0);
                keys.push((db, key.to_vec(), digest, expire_at));
            }
        }
    }
    keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    keys
}

/// The function libraries' code, sorted.
fn libraries(server: &Server) -> Vec<bytes::Bytes> {
    let mut codes: Vec<_> = server
        .functions
        .libraries()
        .iter()
        .map(|l| l.code.clone())
        .collect();
    codes.sort();
    codes
}

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    if file.len() >= 17 {
        let body = file.len() - 8;
        let crc = crc64_update(0, &file[..body]);
        file[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let (first, second) = servers();
    let first = fresh(first);
    let before = warpengine_fuzz::live();
    warpengine_fuzz::take_peak();
    let loaded = rdb_file::load(first, &file);
    let grew = warpengine_fuzz::take_peak().saturating_sub(before);
    let bound = (64 << 20) + 4096 * file.len();
    assert!(
        grew <= bound,
        "loading {} bytes grew the heap by {grew} bytes at its peak",
        file.len()
    );
    if loaded.is_err() {
        return;
    }
    let (written, _) =
        rdb_file::to_bytes(first, true, |_| {}).expect("an in-memory write cannot fail");
    let second = fresh(second);
    if let Err(e) = rdb_file::load(second, &written) {
        panic!("a file WarpEngine wrote from a loaded file does not load: {e}");
    }
    assert!(
        contents(first) == contents(second),
        "the data differs after a write and a load"
    );
    assert_eq!(libraries(first), libraries(second));
});
