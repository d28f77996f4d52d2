//! RDB files in Redis 7.0's format (version 10): `dir/dbfilename` (default `dump.rdb`).
//!
//! How they relate to the log: the log and its snapshots stay WarpEngine's own format and are
//! what a start recovers with `appendonly yes`. `dump.rdb` is for exchange with Redis and for
//! `appendonly no`: SAVE, BGSAVE, FLUSHALL with save rules and a saving shutdown write it
//! (besides the log's snapshot); a start with `appendonly no` loads it when present, as Redis
//! does, and so does a start with `appendonly yes` that finds no log yet (a user moving from
//! Redis copies its `dump.rdb` and starts WarpEngine with either setting).
//!
//! SAVE writes the file with every shard locked. BGSAVE writes it from its background snapshot's
//! walk (`background`), so it holds the data of the instant BGSAVE began without stopping
//! service: each shard's records go to part files per database, joined at the end. A replica's
//! full sync is made by a walk of its own and sent as it comes ([`StreamedRdb`]). TEMPORAL
//! keys have no RDB form: they are left out, with a warning in the log saying how many.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use bytes::Bytes;
use warpengine_storage::{Entry, Value};

use super::rdb::{crc64_update, put_encoded_string, put_len, put_string, Reader, RDB_VERSION};
use super::rdb_value::{self, Encodings};
use crate::server_state::{unix_ms, Server, ShardGuard, REDIS_VERSION};

/// The file's opcodes (Redis's `RDB_OPCODE_*`): bytes in a type byte's place that are not a
/// value's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Opcode {
    /// A function library's code (Redis 7.0).
    Function2 = 0xf5,
    /// Functions as Redis 7.0's release candidates wrote them.
    FunctionPreGa,
    /// A module's own data.
    ModuleAux,
    /// The next key's LRU idle time, in seconds.
    Idle,
    /// The next key's LFU counter.
    Freq,
    /// A name and value about the file (redis-ver, ctime, ...).
    Aux,
    /// The next database's key and expiry counts (a sizing hint).
    ResizeDb,
    /// The next key's expiry, Unix milliseconds.
    ExpireTimeMs,
    /// The next key's expiry, Unix seconds (old files).
    ExpireTime,
    /// The database the keys that follow belong to.
    SelectDb,
    /// The end of the data; the CRC-64 follows.
    Eof,
}

impl Opcode {
    fn of(byte: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match byte {
            0xf5 => Function2,
            0xf6 => FunctionPreGa,
            0xf7 => ModuleAux,
            0xf8 => Idle,
            0xf9 => Freq,
            0xfa => Aux,
            0xfb => ResizeDb,
            0xfc => ExpireTimeMs,
            0xfd => ExpireTime,
            0xfe => SelectDb,
            0xff => Eof,
            _ => return None,
        })
    }
}

/// `dir/dbfilename`.
pub fn path(server: &Server) -> PathBuf {
    let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
    let dir = match cfg.get("dir") {
        "" => PathBuf::from("."),
        d => PathBuf::from(d),
    };
    dir.join(cfg.get("dbfilename"))
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saved {
    pub keys: u64,
    /// TEMPORAL keys left out.
    pub skipped: u64,
}

/// SAVE: writes every database to `dir/dbfilename` with every shard locked.
pub fn save(server: &Server) -> io::Result<Saved> {
    write_file(server, |out| write_locked(server, out, true, |_| {}))
}

/// The whole file in memory (every shard locked while its keys are written, as for SAVE);
/// without `with_keys`, the function libraries only, as a replica that asked for them alone
/// gets them (`REPLCONF rdb-filter-only functions`). `at_lock` runs with every shard locked,
/// before any key is read: what it starts (the replication stream) begins exactly where the
/// file ends.
pub fn to_bytes(
    server: &Server,
    with_keys: bool,
    at_lock: impl FnOnce(&mut [ShardGuard<'_>]),
) -> io::Result<(Vec<u8>, Saved)> {
    let mut out = Checksummed {
        inner: Vec::with_capacity(64 << 10),
        crc: 0,
    };
    let saved = write_locked(server, &mut out, with_keys, at_lock)?;
    let crc = if checksums(server) { out.crc } else { 0 };
    let mut bytes = out.inner;
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok((bytes, saved))
}

/// Writes the file through `fill` (everything up to and including EOF): into a temporary file,
/// then the CRC-64 trailer, synced and renamed over the old file, so a crash leaves the old
/// file or the new one whole.
fn write_file(
    server: &Server,
    fill: impl FnOnce(&mut Checksummed<BufWriter<std::fs::File>>) -> io::Result<Saved>,
) -> io::Result<Saved> {
    // One save at a time (SAVE, a BGSAVE's end and a shutdown may meet): they share the
    // temporary file.
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SAVING.lock().unwrap_or_else(|p| p.into_inner());
    let target = path(server);
    let checksum = checksums(server);
    let dir = parent_dir(&target);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = Checksummed {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: 0,
        };
        let saved = fill(&mut out)?;
        // `rdbchecksum no`: a zero trailer, which readers take as "not computed".
        let crc = if checksum { out.crc } else { 0 };
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(saved)
    })();
    match &result {
        Ok(saved) => {
            if saved.skipped > 0 {
                tracing::warn!(
                    skipped = saved.skipped,
                    "{}: keys with no RDB form (TEMPORAL) were left out",
                    target.display()
                );
            }
            tracing::info!(keys = saved.keys, "RDB file {} written", target.display());
        }
        Err(_) => {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    result
}

/// `rdbchecksum`: whether files get (and loads check) the CRC-64 trailer.
fn checksums(server: &Server) -> bool {
    let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
    cfg.get_bool("rdbchecksum")
}

fn parent_dir(file: &std::path::Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// A writer that keeps the CRC-64 of everything written through it (the file's trailer).
struct Checksummed<W: Write> {
    inner: W,
    crc: u64,
}

impl<W: Write> Checksummed<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc64_update(self.crc, bytes);
        self.inner.write_all(bytes)
    }
}

/// What an RDB file records of the replication stream: (`repl-stream-db`, `repl-id`,
/// `repl-offset`), see `Replication::saved_info`.
type ReplInfo = Option<(usize, String, u64)>;

/// The signature, the AUX fields Redis writes first, then the function libraries.
fn put_header(buf: &mut Vec<u8>, libraries: &[Bytes], repl: &ReplInfo) {
    buf.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    let ctime = (unix_ms() / 1000).to_string();
    let mut fields = vec![
        ("redis-ver", REDIS_VERSION.to_string()),
        ("redis-bits", "64".to_string()),
        ("ctime", ctime),
    ];
    if let Some((db, replid, offset)) = repl {
        fields.push(("repl-stream-db", db.to_string()));
        fields.push(("repl-id", replid.clone()));
        fields.push(("repl-offset", offset.to_string()));
    }
    for (name, value) in fields {
        buf.push(Opcode::Aux as u8);
        put_string(buf, name.as_bytes());
        put_encoded_string(buf, value.as_bytes(), false);
    }
    for code in libraries {
        buf.push(Opcode::Function2 as u8);
        put_string(buf, code);
    }
}

fn library_codes(server: &Server) -> Vec<Bytes> {
    server
        .functions
        .libraries()
        .iter()
        .map(|l| l.code.clone())
        .collect()
}

/// SELECTDB and RESIZEDB (the sizes count what the file holds of the database).
fn put_db_start(buf: &mut Vec<u8>, db: usize, keys: u64, volatile: u64) {
    buf.push(Opcode::SelectDb as u8);
    put_len(buf, db as u64);
    buf.push(Opcode::ResizeDb as u8);
    put_len(buf, keys);
    put_len(buf, volatile);
}

/// Whether a key goes in the file: one with no RDB form (TEMPORAL) is left out. Keys whose
/// time has passed but that are not deleted yet go in, as Redis writes them: the load drops
/// them, and a primary's restart then deletes them on its replicas' copies too (see
/// `continue_saved_history`).
fn kept(value: &Value) -> bool {
    rdb_value::has_rdb_form(value)
}

/// One key's record: its expiry, its object's type byte, the key, the object's body. False
/// (nothing written) for a value with no RDB form.
fn put_object(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    expire_at: u64,
    enc: &Encodings,
) -> bool {
    scratch.clear();
    if rdb_value::write_value(scratch, value, enc).is_err() {
        return false;
    }
    if expire_at != 0 {
        buf.push(Opcode::ExpireTimeMs as u8);
        buf.extend_from_slice(&expire_at.to_le_bytes());
    }
    buf.push(scratch[0]);
    put_encoded_string(buf, key, enc.compress);
    buf.extend_from_slice(&scratch[1..]);
    true
}

/// The file up to and including its EOF opcode, with every shard locked (no keys without
/// `with_keys`).
fn write_locked<W: Write>(
    server: &Server,
    out: &mut Checksummed<W>,
    with_keys: bool,
    at_lock: impl FnOnce(&mut [ShardGuard<'_>]),
) -> io::Result<Saved> {
    let enc = rdb_value::encodings(server);
    let mut buf = Vec::with_capacity(64 << 10);
    let libraries = library_codes(server);
    let mut saved = Saved::default();
    let mut scratch = Vec::new();
    let mut guards = server.lock_all();
    at_lock(&mut guards);
    put_header(&mut buf, &libraries, &server.replication.saved_info());
    let databases = if with_keys {
        guards.first().map_or(0, |g| g.dbs.len())
    } else {
        0
    };
    for db in 0..databases {
        let (mut keys, mut volatile) = (0u64, 0u64);
        for g in &guards {
            for (_, entry, expire_at) in g.dbs[db].iter_all() {
                if kept(&entry.value) {
                    keys += 1;
                    volatile += (expire_at != 0) as u64;
                } else {
                    saved.skipped += 1;
                }
            }
        }
        if keys == 0 {
            continue;
        }
        put_db_start(&mut buf, db, keys, volatile);
        for g in &guards {
            for (key, entry, expire_at) in g.dbs[db].iter_all() {
                if !kept(&entry.value) {
                    continue;
                }
                if put_object(&mut buf, &mut scratch, key, &entry.value, expire_at, &enc) {
                    saved.keys += 1;
                }
                if buf.len() >= 60 << 10 {
                    out.put(&buf)?;
                    buf.clear();
                }
            }
        }
    }
    drop(guards);
    buf.push(Opcode::Eof as u8);
    out.put(&buf)?;
    Ok(saved)
}

/// One shard's keys serialized for a background save, per database, as its snapshot walk meets
/// them (under the shard's lock; see `background`).
pub struct ShardParts {
    enc: Encodings,
    dbs: Vec<DbPart>,
    scratch: Vec<u8>,
    skipped: u64,
}

/// Records of one database not yet moved to its part file, and how many keys they hold.
#[derive(Default)]
pub struct DbPart {
    bytes: Vec<u8>,
    keys: u64,
    volatile: u64,
}

impl ShardParts {
    pub fn new(enc: Encodings, databases: usize) -> ShardParts {
        ShardParts {
            enc,
            dbs: (0..databases).map(|_| DbPart::default()).collect(),
            scratch: Vec::new(),
            skipped: 0,
        }
    }

    pub fn add(&mut self, db: usize, key: &[u8], entry: &Entry, expire_at: u64) {
        if !rdb_value::has_rdb_form(&entry.value) {
            self.skipped += 1;
            return;
        }
        if !kept(&entry.value) {
            return;
        }
        let part = &mut self.dbs[db];
        let (bytes, scratch) = (&mut part.bytes, &mut self.scratch);
        if put_object(bytes, scratch, key, &entry.value, expire_at, &self.enc) {
            part.keys += 1;
            part.volatile += (expire_at != 0) as u64;
        }
    }

    /// What was added since the last call, per database (the parts are empty after).
    pub fn drain(&mut self) -> (Vec<(usize, DbPart)>, u64) {
        let drained = self
            .dbs
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| p.keys > 0)
            .map(|(db, p)| (db, std::mem::take(p)))
            .collect();
        (drained, std::mem::take(&mut self.skipped))
    }
}

/// A background save's file in the making: each shard's records go to a part file per
/// database as its walk produces them (memory stays small), and `finish` joins the parts
/// database by database into the file. Part files left by a failure are removed on drop.
pub struct BackgroundSave {
    dir: PathBuf,
    libraries: Vec<Bytes>,
    repl: ReplInfo,
    /// [shard][db]: the part file, once that shard has a key in that database.
    parts: Vec<Vec<Option<PartFile>>>,
    /// [db]: keys and keys with an expiry.
    counts: Vec<(u64, u64)>,
    skipped: u64,
}

/// A temporary file of one shard's records of one database.
type PartFile = (PathBuf, BufWriter<std::fs::File>);

impl BackgroundSave {
    /// Called at the save's start, with every shard locked (the libraries are those of that
    /// instant).
    pub fn begin(server: &Server, shards: usize, databases: usize) -> BackgroundSave {
        BackgroundSave {
            dir: parent_dir(&path(server)),
            libraries: library_codes(server),
            repl: server.replication.saved_info(),
            parts: (0..shards)
                .map(|_| (0..databases).map(|_| None).collect())
                .collect(),
            counts: vec![(0, 0); databases],
            skipped: 0,
        }
    }

    /// Appends what `shard`'s walk produced (from `ShardParts::drain`).
    pub fn take(&mut self, shard: usize, drained: (Vec<(usize, DbPart)>, u64)) -> io::Result<()> {
        let (dbs, skipped) = drained;
        self.skipped += skipped;
        for (db, part) in dbs {
            let slot = &mut self.parts[shard][db];
            if slot.is_none() {
                std::fs::create_dir_all(&self.dir)?;
                let path = self
                    .dir
                    .join(format!("temp-{}-part-{shard}-{db}.rdb", std::process::id()));
                *slot = Some((path.clone(), BufWriter::new(std::fs::File::create(&path)?)));
            }
            let (_, file) = slot.as_mut().expect("created above");
            file.write_all(&part.bytes)?;
            self.counts[db].0 += part.keys;
            self.counts[db].1 += part.volatile;
        }
        Ok(())
    }

    /// Joins the parts into `dir/dbfilename`.
    pub fn finish(mut self, server: &Server) -> io::Result<Saved> {
        for (_, file) in self.parts.iter_mut().flatten().flatten() {
            file.flush()?;
        }
        write_file(server, |out| {
            let mut buf = Vec::new();
            put_header(&mut buf, &self.libraries, &self.repl);
            out.put(&buf)?;
            let mut keys = 0;
            for (db, &(count, volatile)) in self.counts.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                buf.clear();
                put_db_start(&mut buf, db, count, volatile);
                out.put(&buf)?;
                keys += count;
                for shard in &self.parts {
                    if let Some((path, _)) = &shard[db] {
                        let mut part = std::fs::File::open(path)?;
                        let mut chunk = vec![0u8; 64 << 10];
                        loop {
                            let n = io::Read::read(&mut part, &mut chunk)?;
                            if n == 0 {
                                break;
                            }
                            out.put(&chunk[..n])?;
                        }
                    }
                }
            }
            out.put(&[Opcode::Eof as u8])?;
            Ok(Saved {
                keys,
                skipped: self.skipped,
            })
        })
    }
}

impl Drop for BackgroundSave {
    fn drop(&mut self) {
        for (path, _) in self.parts.iter().flatten().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An RDB sent while a background walk produces it (a replica's full sync, `background::
/// start_replica_sync`): no part files and no total to know first. The records of each step go
/// out as they come, behind a SELECTDB whenever the database changes (a database's keys come
/// in several runs, one per shard and step, which loaders take as they take one run);
/// RESIZEDB, a sizing hint, comes with a database's first run, from its sizes at the start.
pub struct StreamedRdb {
    sink: Box<dyn RdbSink>,
    buf: Vec<u8>,
    crc: u64,
    checksum: bool,
    /// The database the last records went to.
    selected: Option<usize>,
    /// [db]: keys and keys with an expiry at the start, until the database's first run.
    hints: Vec<Option<(u64, u64)>>,
    keys: u64,
    skipped: u64,
}

/// Where a streamed RDB's bytes go, in pieces of about `STREAM_PIECE` bytes.
pub trait RdbSink: Send {
    /// The next piece. An error (no one reads the RDB any more) stops the walk.
    fn send(&mut self, piece: Bytes) -> io::Result<()>;
    /// The RDB is whole (its CRC sent). A sink dropped before this: the RDB never will be.
    fn complete(&mut self);
    /// No one reads the RDB any more: the walk stops.
    fn abandoned(&self) -> bool;
}

/// The size of the pieces a streamed RDB is sent in.
const STREAM_PIECE: usize = 64 << 10;

impl StreamedRdb {
    /// Called at the walk's start, with every shard locked: the header (with the replication
    /// stream's id and offset of that instant), and each database's sizes.
    pub fn begin(
        server: &Server,
        guards: &[ShardGuard<'_>],
        sink: Box<dyn RdbSink>,
    ) -> StreamedRdb {
        let mut buf = Vec::with_capacity(STREAM_PIECE * 2);
        put_header(
            &mut buf,
            &library_codes(server),
            &server.replication.saved_info(),
        );
        let databases = guards.first().map_or(0, |g| g.dbs.len());
        let hints = (0..databases)
            .map(|db| {
                let sum = |f: &dyn Fn(&ShardGuard<'_>) -> usize| {
                    guards.iter().map(|g| f(g) as u64).sum::<u64>()
                };
                Some((
                    sum(&|g| g.dbs[db].len()),
                    sum(&|g| g.dbs[db].volatile_len()),
                ))
            })
            .collect();
        StreamedRdb {
            sink,
            buf,
            crc: 0,
            checksum: checksums(server),
            selected: None,
            hints,
            keys: 0,
            skipped: 0,
        }
    }

    /// Sends what a shard's walk produced (from `ShardParts::drain`).
    pub fn take(&mut self, drained: (Vec<(usize, DbPart)>, u64)) -> io::Result<()> {
        let (dbs, skipped) = drained;
        self.skipped += skipped;
        for (db, part) in dbs {
            if self.selected != Some(db) {
                self.buf.push(Opcode::SelectDb as u8);
                put_len(&mut self.buf, db as u64);
                if let Some((keys, volatile)) = self.hints[db].take() {
                    self.buf.push(Opcode::ResizeDb as u8);
                    put_len(&mut self.buf, keys);
                    put_len(&mut self.buf, volatile);
                }
                self.selected = Some(db);
            }
            self.buf.extend_from_slice(&part.bytes);
            self.keys += part.keys;
            if self.buf.len() >= STREAM_PIECE {
                self.send()?;
            }
        }
        Ok(())
    }

    /// The EOF opcode and the CRC-64 trailer (zero with `rdbchecksum no`): the RDB is whole.
    pub fn finish(mut self) -> io::Result<Saved> {
        self.buf.push(Opcode::Eof as u8);
        self.send()?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.sink.send(Bytes::copy_from_slice(&crc.to_le_bytes()))?;
        self.sink.complete();
        Ok(Saved {
            keys: self.keys,
            skipped: self.skipped,
        })
    }

    /// See [`RdbSink::abandoned`].
    pub fn abandoned(&self) -> bool {
        self.sink.abandoned()
    }

    fn send(&mut self) -> io::Result<()> {
        self.crc = crc64_update(self.crc, &self.buf);
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_PIECE * 2));
        self.sink.send(Bytes::from(piece))
    }
}

/// At start: loads `dir/dbfilename` if there is one. Err (the start stops, as Redis's does)
/// for a file that is not a whole, well-formed RDB file of version 1 to 10.
pub fn load_at_start(server: &Server) -> Result<(), String> {
    let path = path(server);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            let why = e.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why).to_string();
            return Err(format!("Fatal error loading the DB: {why}. Exiting."));
        }
    };
    let started = std::time::Instant::now();
    server.loading.set_total_bytes(data.len() as u64);
    let loaded = load(server, &data).map_err(|e| {
        // Redis logs the reason, checks the file (which logs it again), then says it stops.
        tracing::error!("{e}");
        tracing::error!("{}: the RDB file cannot be loaded: {e}", path.display());
        "Terminating server after rdb file reading failure.".to_string()
    })?;
    // Redis's wording (test harnesses wait for these lines).
    tracing::info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
        loaded.keys,
        loaded.expired,
        loaded.empty_skipped
    );
    continue_saved_history(server, loaded);
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({})",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

/// A primary started from a file that recorded its replication stream (`repl-id`,
/// `repl-offset`): the stream goes on from there under a new id, the old one continuable, so
/// its replicas resume with a partial resync; the keys the load found expired go out as DELs
/// first, as Redis's primary propagates them. A server configured as a replica asks its
/// primary to continue the stream from there.
fn continue_saved_history(server: &Server, loaded: Loaded) {
    let replica = configured_as_replica(server);
    let Some((db, replid, offset)) = loaded.saved_repl else {
        return;
    };
    if replica {
        crate::replication::replica::resume_saved(server, db, replid, offset);
    } else {
        crate::replication::primary::resume_saved_history(
            server,
            replid,
            offset,
            &loaded.expired_keys,
        );
    }
}

/// `replicaof` is set (at a start, before the replication state has followed it).
fn configured_as_replica(server: &Server) -> bool {
    !server
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get("replicaof")
        .is_empty()
}

/// What a load read.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub keys: u64,
    /// Keys whose expiry had passed (not loaded, as Redis skips them).
    pub expired: u64,
    /// Empty collections, skipped as Redis 7.0 skips them.
    pub empty_skipped: u64,
    /// The expired keys' databases and names (a primary's stream deletes them).
    pub expired_keys: Vec<(usize, Vec<u8>)>,
    /// The replication stream the file recorded: (`repl-stream-db`, `repl-id`, `repl-offset`).
    pub saved_repl: ReplInfo,
}

/// Loads an RDB file's content into the (empty) databases. The checksum is checked first,
/// so a damaged file loads nothing.
pub fn load(server: &Server, data: &[u8]) -> Result<Loaded, String> {
    let version = header_version(data)?.ok_or("not an RDB file (no REDIS signature)")?;
    if version >= 5 {
        let (body, trailer) = data.split_at(data.len().saturating_sub(8).max(9));
        let stored = u64::from_le_bytes(trailer.try_into().map_err(|_| "truncated file")?);
        check_crc(server, stored, crc64_update(0, body))?;
    }
    let mut loader = Loader::new(server);
    loader.checked = true;
    loader.feed(server, data, true)?;
    if !loader.done() {
        return Err("unexpected end of file".into());
    }
    loader.finish(server)
}

/// The RDB version of a header (`REDIS0010`); None while fewer than its 9 bytes are there.
fn header_version(data: &[u8]) -> Result<Option<u16>, String> {
    if data.len() < 9 {
        return match b"REDIS".starts_with(&data[..data.len().min(5)]) {
            true => Ok(None),
            false => Err("not an RDB file (no REDIS signature)".into()),
        };
    }
    if &data[..5] != b"REDIS" {
        return Err("not an RDB file (no REDIS signature)".into());
    }
    let version: u16 = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("not an RDB file (bad version)")?;
    if version == 0 || version > RDB_VERSION {
        return Err(format!("cannot handle RDB format version {version}"));
    }
    Ok(Some(version))
}

/// A stored checksum against the computed one; a zero stored means the writer did not compute
/// one (`rdbchecksum no`).
fn check_crc(server: &Server, stored: u64, computed: u64) -> Result<(), String> {
    if checksums(server)
        && !super::rdb::skip_checksum_validation()
        && stored != 0
        && stored != computed
    {
        // Redis's words (its test harness looks for "CRC error").
        return Err(format!(
            "Wrong RDB checksum expected: ({computed:x}) got: ({stored:x}): RDB CRC error"
        ));
    }
    Ok(())
}

/// An RDB's content applied as it is read: whole ([`load`]), or piece by piece as a replica
/// receives it from its primary ([`Loader::feed`] each time more arrived: the objects it holds
/// whole are applied and their bytes may go; an object cut by the end of what arrived is read
/// again once more has). Keys go into the live databases, every shard locked while a piece is
/// applied (see `loading::Pace` for when the locks are let go).
pub struct Loader {
    version: Option<u16>,
    /// The checksum was checked before (a whole file); else it is computed as bytes are used.
    checked: bool,
    crc: u64,
    /// Bytes used so far (the position in the RDB).
    used: u64,
    enc: Encodings,
    now: u64,
    /// A replica keeps keys whose time has passed (its primary's DELs remove them), as Redis
    /// skips them only when it is a primary (`iAmMaster()` in `rdbLoadRioWithLoadingCtx`).
    keep_expired: bool,
    clock: u32,
    db: usize,
    expire_at: u64,
    loaded: Loaded,
    libraries: Vec<Vec<u8>>,
    /// repl-stream-db, repl-id, repl-offset.
    saved_repl: (Option<usize>, Option<String>, Option<u64>),
    pace: super::loading::Pace,
    /// The EOF opcode (and the checksum after it) was read.
    done: bool,
    /// The last `feed` stopped to hand the thread back, not for want of bytes.
    yielded: bool,
}

/// What reading one object at the start of the unread bytes gave.
enum Step {
    /// It was read whole (and applied); this many bytes.
    Used(usize),
    /// The EOF opcode and the checksum: the RDB is whole; this many bytes.
    End(usize),
}

impl Loader {
    pub fn new(server: &Server) -> Loader {
        let now = unix_ms();
        // What a new key's access field starts as (see `KeyCtx::new`).
        let clock = if server.limits.policy().is_lfu() {
            crate::eviction::minutes(now) << 8 | crate::eviction::LFU_INIT
        } else {
            now as u32
        };
        Loader {
            version: None,
            checked: false,
            crc: 0,
            used: 0,
            enc: rdb_value::encodings(server),
            now,
            keep_expired: server.replication.is_replica() || configured_as_replica(server),
            clock,
            db: 0,
            expire_at: 0,
            loaded: Loaded::default(),
            libraries: Vec::new(),
            saved_repl: (None, None, None),
            pace: super::loading::Pace::new(server),
            done: false,
            yielded: false,
        }
    }

    /// A loader fed from a worker's event loop: it stops after a few keys, or once it owes a
    /// `key-load-delay` pause, and [`Loader::take_pause`] says how long its caller should wait
    /// (asynchronously) before feeding it again.
    pub fn streaming(server: &Server) -> Loader {
        Loader {
            pace: super::loading::Pace::deferred(server),
            ..Loader::new(server)
        }
    }

    /// Whether the RDB's end (its EOF opcode and checksum) was read.
    pub fn done(&self) -> bool {
        self.done
    }

    /// A streaming loader that stopped to hand its thread back: the pause it owes (zero: just
    /// a turn). None when it stopped for want of bytes (or at the end).
    pub fn take_pause(&mut self) -> Option<std::time::Duration> {
        std::mem::take(&mut self.yielded).then(|| self.pace.take_owed())
    }

    /// Applies the whole objects at the start of `data` (the bytes not used yet) and answers
    /// how many bytes it used. `last`: nothing follows `data`, so an object cut short (or
    /// unreadable) is an error; otherwise it may only be incomplete, and is read again from
    /// its start at the next call.
    pub fn feed(&mut self, server: &Server, data: &[u8], last: bool) -> Result<usize, String> {
        let mut at = 0;
        if self.version.is_none() {
            match header_version(data)? {
                Some(v) => self.version = Some(v),
                None if last => return Err("not an RDB file (too short)".into()),
                None => return Ok(0),
            }
            self.consume(&data[..9]);
            at = 9;
        }
        let mut guards = server.lock_all();
        let databases = guards.first().map_or(0, |g| g.dbs.len());
        while !self.done && at < data.len() {
            match self.object(server, &mut guards, databases, &data[at..]) {
                Ok(Step::Used(n)) => {
                    self.consume(&data[at..at + n]);
                    at += n;
                    if self.pace.should_yield() {
                        self.yielded = true;
                        break;
                    }
                }
                Ok(Step::End(n)) => {
                    at += n;
                    self.done = true;
                }
                Err(e) if last => return Err(e),
                Err(_) => break,
            }
        }
        if last && !self.done && !self.yielded && self.version.is_some_and(|v| v >= 5) {
            return Err("unexpected end of file".into());
        }
        Ok(at)
    }

    fn consume(&mut self, bytes: &[u8]) {
        if !self.checked {
            self.crc = crc64_update(self.crc, bytes);
        }
        self.used += bytes.len() as u64;
    }

    /// Reads (and applies) the object at the start of `data`.
    fn object<'a>(
        &mut self,
        server: &'a Server,
        guards: &mut Vec<ShardGuard<'a>>,
        databases: usize,
        data: &[u8],
    ) -> Result<Step, String> {
        let mut r = Reader::new(data);
        let truncated = || "unexpected end of file".to_string();
        let at = self.used;
        let op = r.byte().ok_or_else(truncated)?;
        match Opcode::of(op) {
            Some(Opcode::Eof) => {
                if self.version.is_some_and(|v| v >= 5) {
                    let stored = r.take(8).ok_or_else(truncated)?;
                    if !self.checked {
                        let computed = crc64_update(self.crc, &[op]);
                        let stored = u64::from_le_bytes(stored.try_into().expect("8 bytes"));
                        check_crc(server, stored, computed)?;
                    }
                }
                return Ok(Step::End(data.len() - r.remaining()));
            }
            Some(Opcode::Aux) => {
                let name = r.string().ok_or_else(truncated)?;
                let value = r.string().ok_or_else(truncated)?;
                let text = || String::from_utf8_lossy(&value).into_owned();
                match &name[..] {
                    b"repl-id" => self.saved_repl.1 = Some(text()),
                    b"repl-offset" => self.saved_repl.2 = text().parse().ok(),
                    b"repl-stream-db" => self.saved_repl.0 = text().parse().ok(),
                    b"used-mem" => server.loading.set_rdb_used_mem(text().parse().unwrap_or(0)),
                    _ => {}
                }
            }
            Some(Opcode::ResizeDb) => {
                r.len().ok_or_else(truncated)?;
                r.len().ok_or_else(truncated)?;
            }
            Some(Opcode::SelectDb) => {
                let index = r.len().ok_or_else(truncated)?;
                self.db = usize::try_from(index)
                    .ok()
                    .filter(|&d| d < databases)
                    .ok_or_else(|| {
                        format!("database {index} is beyond `databases` ({databases})")
                    })?;
            }
            Some(Opcode::ExpireTime) => {
                let secs = r.take(4).ok_or_else(truncated)?;
                self.expire_at =
                    u32::from_le_bytes(secs.try_into().expect("4 bytes")) as u64 * 1000;
            }
            Some(Opcode::ExpireTimeMs) => {
                let ms = r.take(8).ok_or_else(truncated)?;
                self.expire_at = u64::from_le_bytes(ms.try_into().expect("8 bytes"));
            }
            Some(Opcode::Idle) => {
                r.len().ok_or_else(truncated)?;
            }
            Some(Opcode::Freq) => {
                r.byte().ok_or_else(truncated)?;
            }
            Some(Opcode::Function2) => self.libraries.push(r.string().ok_or_else(truncated)?),
            Some(Opcode::FunctionPreGa | Opcode::ModuleAux) => {
                return Err(format!(
                "opcode {op:#x} at offset {at} (modules or pre-release functions) is not supported"
            ))
            }
            None => {
                let type_byte = op;
                let key = r.string().ok_or_else(truncated)?;
                let expire_at = std::mem::take(&mut self.expire_at);
                let value = match rdb_value::read_body(type_byte, &mut r, &self.enc) {
                    Ok(value) => value,
                    Err(rdb_value::Unreadable::Empty) => {
                        // As Redis 7.0: an empty collection (an old bug's leftover) is skipped.
                        tracing::warn!(
                            "rdbLoadObject skipping empty key: {}",
                            String::from_utf8_lossy(&key)
                        );
                        self.loaded.empty_skipped += 1;
                        return Ok(Step::Used(data.len() - r.remaining()));
                    }
                    Err(rdb_value::Unreadable::Corrupt(why)) => {
                        self.expire_at = expire_at; // read again with more bytes, maybe
                        return Err(format!(
                            "Internal error in RDB reading offset {at} -> {why} (key {:?}, RDB type {type_byte})",
                            String::from_utf8_lossy(&key)
                        ));
                    }
                };
                if expire_at != 0 && expire_at <= self.now && !self.keep_expired {
                    self.loaded.expired += 1;
                    self.loaded.expired_keys.push((self.db, key));
                } else {
                    let shard = server.route(&key);
                    guards[shard].dbs[self.db].set(&key, value, expire_at, self.clock);
                    self.loaded.keys += 1;
                }
                let used = data.len() - r.remaining();
                self.pace.step(server, guards, self.used + used as u64);
                return Ok(Step::Used(used));
            }
        }
        Ok(Step::Used(data.len() - r.remaining()))
    }

    /// After the RDB's end: its function libraries loaded, its counts recorded.
    pub fn finish(mut self, server: &Server) -> Result<Loaded, String> {
        for code in std::mem::take(&mut self.libraries) {
            let argv: Vec<Bytes> = vec![
                Bytes::from_static(b"FUNCTION"),
                Bytes::from_static(b"LOAD"),
                Bytes::from_static(b"REPLACE"),
                Bytes::from(code),
            ];
            if !super::recovery::run_meta(server, &argv) {
                return Err("a function library in the file does not load".into());
            }
        }
        let mut loaded = self.loaded;
        if let (Some(db), Some(replid), Some(offset)) = self.saved_repl {
            loaded.saved_repl = Some((db, replid, offset));
        }
        let stats = &server.wal.stats;
        stats
            .last_load_keys_loaded
            .store(loaded.keys, std::sync::atomic::Ordering::Relaxed);
        stats
            .last_load_keys_expired
            .store(loaded.expired, std::sync::atomic::Ordering::Relaxed);
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_store::ConfigStore;
    use warpengine_storage::digest::key_digest;

    fn server() -> Server {
        crate::commands::install();
        Server::new(ConfigStore::default(), 1)
    }

    /// Every key as (database, name, type, content digest, expiry), sorted.
    fn contents(server: &Server) -> Vec<(usize, Vec<u8>, &'static str, String, u64)> {
        let mut keys = Vec::new();
        for shard in server.lock_all() {
            for (db, d) in shard.dbs.iter().enumerate() {
                for (key, entry, at) in d.iter_live(0) {
                    let digest = key_digest(key, entry, at != 0).hex();
                    keys.push((db, key.to_vec(), entry.value.type_name(), digest, at));
                }
            }
        }
        keys.sort();
        keys
    }

    /// The fuzz target `rdb_file`'s seeds (fuzz/seeds/rdb_file/): files redis-server 7.0.15
    /// wrote (every type; streams with consumer groups; a function library; the packed and
    /// the unpacked encodings) and one WarpEngine wrote. Each loads the keys `redis-check-rdb`
    /// counts, and, written again as a full sync sends it, loads into
    /// another server with the same data: the property the fuzz target checks on every input.
    #[test]
    fn real_files_load_and_survive_a_write() {
        let seeds: [(&str, &[u8], usize); 4] = [
            (
                "redis-mixed",
                include_bytes!("../../../fuzz/seeds/rdb_file/redis-mixed.seed"),
                18,
            ),
            (
                "redis-unpacked",
                include_bytes!("../../../fuzz/seeds/rdb_file/redis-unpacked.seed"),
                18,
            ),
            (
                "redis-streams-functions",
                include_bytes!("../../../fuzz/seeds/rdb_file/redis-streams-functions.seed"),
                3,
            ),
            (
                "warpengine-mixed",
                include_bytes!("../../../fuzz/seeds/rdb_file/warpengine-mixed.seed"),
                15,
            ),
        ];
        for (name, file, keys) in seeds {
            let first = server();
            let loaded = load(&first, file).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Keys with a TTL of a day expire once the seed is old: counted, not loaded.
            assert_eq!((loaded.keys + loaded.expired) as usize, keys, "{name}");
            let (written, _) = to_bytes(&first, true, |_| {}).unwrap();
            let second = server();
            load(&second, &written).unwrap_or_else(|e| panic!("{name} written again: {e}"));
            assert_eq!(contents(&first), contents(&second), "{name}");
            assert_eq!(
                first.functions.libraries().len(),
                second.functions.libraries().len()
            );
        }
    }
}
