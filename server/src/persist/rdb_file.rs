//! RDB files in Redis 7.0's format (version 10): `dir/dbfilename` (default `dump.rdb`).
//!
//! How they relate to the log: the log and its snapshots stay WarpEngine's own format and are
//! what a start recovers with `appendonly yes`. `dump.rdb` is for exchange with Redis and for
//! `appendonly no`: SAVE, BGSAVE, FLUSHALL with save rules and a saving shutdown write it
//! (besides the log's snapshot); a start with `appendonly no` loads it when present, as Redis
//! does, and so does a start with `appendonly yes` that finds no log yet (a user moving from
//! Redis copies its `dump.rdb` and starts WarpEngine with either setting).
//!
//! The file is written with every shard locked, so it is one instant's data (BGSAVE's file
//! too: service pauses while it is written). TEMPORAL keys have no RDB form: they are left
//! out, with a warning in the log saying how many.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use bytes::Bytes;
use warpengine_storage::Value;

use super::rdb::{crc64_update, put_encoded_string, put_len, put_string, Reader, RDB_VERSION};
use super::rdb_value;
use crate::server_state::{unix_ms, Server, REDIS_VERSION};

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

/// Writes every database to `dir/dbfilename` (through a temporary file renamed over it, then
/// synced, so a crash leaves the old file or the new one whole).
pub fn save(server: &Server) -> io::Result<Saved> {
    // One save at a time (SAVE and a BGSAVE's end may meet): they share the temporary file.
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SAVING.lock().unwrap_or_else(|p| p.into_inner());
    let target = path(server);
    let dir = target
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = Checksummed {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: 0,
        };
        let saved = write(server, &mut out)?;
        let crc = out.crc;
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
                    "{}: TEMPORAL keys have no RDB form and were left out",
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

/// The file up to and including its EOF opcode.
fn write<W: Write>(server: &Server, out: &mut Checksummed<W>) -> io::Result<Saved> {
    let enc = rdb_value::encodings(server);
    let mut buf = Vec::with_capacity(64 << 10);
    buf.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    let ctime = (unix_ms() / 1000).to_string();
    for (name, value) in [
        ("redis-ver", REDIS_VERSION),
        ("redis-bits", "64"),
        ("ctime", ctime.as_str()),
    ] {
        buf.push(Opcode::Aux as u8);
        put_string(&mut buf, name.as_bytes());
        put_encoded_string(&mut buf, value.as_bytes(), false);
    }
    for library in server.functions.libraries().iter() {
        buf.push(Opcode::Function2 as u8);
        put_string(&mut buf, &library.code);
    }
    let mut saved = Saved::default();
    let mut object = Vec::new();
    let now = unix_ms();
    let guards = server.lock_all();
    let databases = guards.first().map_or(0, |g| g.dbs.len());
    for db in 0..databases {
        // RESIZEDB's sizes count what is written: TEMPORAL keys are not.
        let (mut keys, mut volatile) = (0u64, 0u64);
        for g in &guards {
            for (_, entry, expire_at) in g.dbs[db].iter_live(now) {
                if !matches!(entry.value, Value::Temporal(_)) {
                    keys += 1;
                    volatile += (expire_at != 0) as u64;
                }
            }
        }
        if keys == 0 {
            continue;
        }
        buf.push(Opcode::SelectDb as u8);
        put_len(&mut buf, db as u64);
        buf.push(Opcode::ResizeDb as u8);
        put_len(&mut buf, keys);
        put_len(&mut buf, volatile);
        for g in &guards {
            for (key, entry, expire_at) in g.dbs[db].iter_live(now) {
                if matches!(entry.value, Value::Temporal(_)) {
                    saved.skipped += 1;
                    continue;
                }
                if expire_at != 0 {
                    buf.push(Opcode::ExpireTimeMs as u8);
                    buf.extend_from_slice(&expire_at.to_le_bytes());
                }
                // The object's type byte goes before its key, its body after.
                object.clear();
                rdb_value::write_value(&mut object, &entry.value, &enc)
                    .expect("every type but TEMPORAL has an RDB form");
                buf.push(object[0]);
                put_encoded_string(&mut buf, key, enc.compress);
                buf.extend_from_slice(&object[1..]);
                saved.keys += 1;
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

/// At start: loads `dir/dbfilename` if there is one. Err (the start stops, as Redis's does)
/// for a file that is not a whole, well-formed RDB file of version 1 to 10.
pub fn load_at_start(server: &Server) -> Result<(), String> {
    let path = path(server);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let started = std::time::Instant::now();
    let loaded = load(server, &data).map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::info!(
        keys = loaded.keys,
        expired = loaded.expired,
        "RDB file {} loaded in {:.3}s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What a load read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub keys: u64,
    /// Keys whose expiry had passed (not loaded, as Redis skips them).
    pub expired: u64,
}

/// Loads an RDB file's content into the (empty) databases.
pub fn load(server: &Server, data: &[u8]) -> Result<Loaded, String> {
    if data.len() < 9 || &data[..5] != b"REDIS" {
        return Err("not an RDB file (no REDIS signature)".into());
    }
    let version: u16 = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("not an RDB file (bad version)")?;
    if version == 0 || version > RDB_VERSION {
        return Err(format!("cannot handle RDB format version {version}"));
    }
    let body = if version >= 5 {
        let (body, trailer) = data.split_at(data.len().saturating_sub(8).max(9));
        let expected = u64::from_le_bytes(trailer.try_into().map_err(|_| "truncated file")?);
        // A zero checksum means the writer did not compute one (rdbchecksum no).
        if expected != 0 && expected != crc64_update(0, body) {
            return Err("wrong RDB checksum".into());
        }
        &body[9..]
    } else {
        &data[9..]
    };
    let enc = rdb_value::encodings(server);
    let now = unix_ms();
    // What a new key's access field starts as (see `KeyCtx::new`).
    let clock = if server.limits.policy().is_lfu() {
        crate::eviction::minutes(now) << 8 | crate::eviction::LFU_INIT
    } else {
        now as u32
    };
    let mut r = Reader::new(body);
    let mut loaded = Loaded::default();
    let mut libraries = Vec::new();
    let mut guards = server.lock_all();
    let databases = guards.first().map_or(0, |g| g.dbs.len());
    let mut db = 0usize;
    let mut expire_at = 0u64;
    let truncated = || "unexpected end of file".to_string();
    loop {
        let at = body.len() - r.remaining();
        let op = r.byte().ok_or_else(truncated)?;
        match Opcode::of(op) {
            Some(Opcode::Eof) => break,
            Some(Opcode::Aux) => {
                r.string().ok_or_else(truncated)?;
                r.string().ok_or_else(truncated)?;
            }
            Some(Opcode::ResizeDb) => {
                r.len().ok_or_else(truncated)?;
                r.len().ok_or_else(truncated)?;
            }
            Some(Opcode::SelectDb) => {
                let index = r.len().ok_or_else(truncated)?;
                db = usize::try_from(index)
                    .ok()
                    .filter(|&d| d < databases)
                    .ok_or_else(|| {
                        format!("database {index} is beyond `databases` ({databases})")
                    })?;
            }
            Some(Opcode::ExpireTime) => {
                let secs = r.take(4).ok_or_else(truncated)?;
                expire_at = u32::from_le_bytes(secs.try_into().expect("4 bytes")) as u64 * 1000;
            }
            Some(Opcode::ExpireTimeMs) => {
                let ms = r.take(8).ok_or_else(truncated)?;
                expire_at = u64::from_le_bytes(ms.try_into().expect("8 bytes"));
            }
            Some(Opcode::Idle) => {
                r.len().ok_or_else(truncated)?;
            }
            Some(Opcode::Freq) => {
                r.byte().ok_or_else(truncated)?;
            }
            Some(Opcode::Function2) => libraries.push(r.string().ok_or_else(truncated)?),
            Some(Opcode::FunctionPreGa | Opcode::ModuleAux) => {
                return Err(format!(
                "opcode {op:#x} at offset {at} (modules or pre-release functions) is not supported"
            ))
            }
            None => {
                let type_byte = op;
                let key = r.string().ok_or_else(truncated)?;
                let value = rdb_value::read_body(type_byte, &mut r, &enc).ok_or_else(|| {
                    format!(
                        "bad or unsupported value (RDB type {type_byte}) for key {:?} at offset {at}",
                        String::from_utf8_lossy(&key)
                    )
                })?;
                if expire_at != 0 && expire_at <= now {
                    loaded.expired += 1;
                } else {
                    let shard = server.route(&key);
                    guards[shard].dbs[db].set(&key, value, expire_at, clock);
                    loaded.keys += 1;
                }
                expire_at = 0;
            }
        }
    }
    drop(guards);
    for code in libraries {
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
    Ok(loaded)
}
