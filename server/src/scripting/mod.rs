//! Lua scripting: the script cache (EVAL, EVALSHA, SCRIPT LOAD put scripts in it by SHA-1),
//! the flags a script declares in its `#!lua` shebang, and a Lua interpreter per worker thread
//! (`vm`) with Redis's sandbox, libraries and conversions (`convert`).
//!
//! This module runs Lua and nothing else: running a script's commands atomically on the
//! shards is the dispatcher's (`dispatch::script`), which lends the interpreter a [`Host`]
//! for `redis.call`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

mod bit;
pub mod busy;
mod call;
pub mod convert;
pub mod debugger;
pub mod functions;
mod tonumber;
mod vm;

pub use vm::{Host, Vm};

use crate::protocol::Reply;

/// The flags a script declares (`#!lua flags=no-writes,allow-oom`), and whether it declared
/// any: a script with a shebang is held to its flags, one without runs as Redis 6 ran scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(1 << 1);
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(1 << 2);
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(1 << 3);
    pub const ALLOW_CROSS_SLOT: ScriptFlags = ScriptFlags(1 << 4);
    /// The script has a shebang (Redis's SCRIPT_FLAG_EVAL_COMPAT_MODE is its absence).
    pub const DECLARED: ScriptFlags = ScriptFlags(1 << 7);

    /// Redis's flag names, in its order.
    pub const NAMES: [(&'static str, ScriptFlags); 5] = [
        ("no-writes", ScriptFlags::NO_WRITES),
        ("allow-oom", ScriptFlags::ALLOW_OOM),
        ("allow-stale", ScriptFlags::ALLOW_STALE),
        ("no-cluster", ScriptFlags::NO_CLUSTER),
        ("allow-cross-slot-keys", ScriptFlags::ALLOW_CROSS_SLOT),
    ];

    pub fn contains(self, other: ScriptFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: ScriptFlags) {
        self.0 |= other.0;
    }
}

/// A script in the cache.
pub struct Script {
    /// SHA-1 of the body, lower-case hex.
    pub sha: String,
    /// The whole body, shebang included (what SCRIPT LOAD was given).
    pub body: Bytes,
    /// Where the Lua code starts: after the shebang line (its newline kept, so that line
    /// numbers stay the body's own).
    pub code_start: usize,
    pub flags: ScriptFlags,
}

impl Script {
    pub fn code(&self) -> &[u8] {
        &self.body[self.code_start..]
    }
}

/// Every script EVAL or SCRIPT LOAD has seen, shared by all workers; each worker's
/// interpreter compiles a script the first time it runs it there.
#[derive(Default)]
pub struct ScriptCache {
    scripts: RwLock<ahash::HashMap<String, Arc<Script>>>,
    /// Renewed by SCRIPT FLUSH: interpreters of an older generation are replaced.
    generation: AtomicU64,
    /// The bytes of the cached bodies (INFO's used_memory_scripts_eval).
    bytes: AtomicU64,
    /// Scripts and functions that once reached beyond the shards of their keys: they run
    /// with every shard locked from the start.
    pub broad: Marks,
    /// Scripts and functions that call server commands (TIME, DBSIZE ...): they run on their
    /// connection's worker, which has the connection such commands need.
    pub at_connection: Marks,
    /// The interpreters' memory (`report_interpreter`).
    interpreters: std::sync::atomic::AtomicI64,
    /// Scripts past `busy-reply-threshold`.
    pub busy: Arc<busy::Busy>,
}

impl ScriptCache {
    /// The script of this SHA-1 (in either case, as Redis matches it).
    pub fn get(&self, sha: &[u8]) -> Option<Arc<Script>> {
        // Every cached name is 40 lower-case hex digits; EVALSHA asks with either case.
        let name: &[u8; 40] = sha.try_into().ok()?;
        let lower = name.map(|c| c.to_ascii_lowercase());
        let generation = self.generation();
        let me = self as *const ScriptCache as usize;
        SEEN.with_borrow_mut(|seen| {
            if (seen.cache, seen.generation) != (me, generation) {
                seen.scripts.clear();
                (seen.cache, seen.generation) = (me, generation);
            }
            if let Some(script) = seen.scripts.get(&lower) {
                return Some(script.clone());
            }
            let sha = std::str::from_utf8(&lower).ok()?;
            let script = self
                .scripts
                .read()
                .expect("scripts lock")
                .get(sha)
                .cloned()?;
            seen.scripts.insert(lower, script.clone());
            Some(script)
        })
    }

    pub fn insert(&self, script: Arc<Script>) {
        let mut scripts = self.scripts.write().expect("scripts lock");
        let len = script.body.len() as u64;
        if scripts.insert(script.sha.clone(), script).is_none() {
            self.bytes.fetch_add(len, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.scripts.read().expect("scripts lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn body_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The memory of every worker's interpreter of the current generation, as they last
    /// reported it.
    pub fn interpreter_bytes(&self) -> u64 {
        self.interpreters.load(Ordering::Relaxed).max(0) as u64
    }

    /// An interpreter's change in memory since its last report.
    pub fn report_interpreter(&self, delta: i64) {
        self.interpreters.fetch_add(delta, Ordering::Relaxed);
    }

    /// SCRIPT FLUSH: forgets every script; each worker's interpreter is renewed before its
    /// next script.
    pub fn flush(&self) {
        let mut scripts = self.scripts.write().expect("scripts lock");
        scripts.clear();
        self.broad.clear();
        self.at_connection.clear();
        self.bytes.store(0, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        // The interpreters of the old generation no longer count (each worker drops its own
        // before its next script; Redis frees its one interpreter at once).
        self.interpreters.store(0, Ordering::Relaxed);
    }
}

/// The scripts this thread looked up, for the cache (by address) and generation they came
/// from: an EVALSHA's lookup without the shared lock, whose cache line would otherwise bounce
/// between the workers on every call. Scripts leave the cache only all at once (SCRIPT FLUSH,
/// a new generation), so a copy is right as long as its generation is current.
#[derive(Default)]
struct SeenScripts {
    cache: usize,
    generation: u64,
    scripts: ahash::HashMap<[u8; 40], Arc<Script>>,
}

thread_local! {
    static SEEN: RefCell<SeenScripts> = RefCell::default();
}

/// A script (by SHA-1) or a function (by name).
#[derive(Clone, Copy)]
pub enum ScriptId<'a> {
    Script(&'a str),
    Function(&'a str),
}

/// Scripts and functions marked for how they run (see `ScriptCache::broad`), with a count
/// read before any lock: while none is marked, asking costs a relaxed load.
#[derive(Default)]
pub struct Marks {
    count: std::sync::atomic::AtomicUsize,
    /// Scripts' SHA-1s, then functions' names.
    names: [RwLock<std::collections::HashSet<String>>; 2],
}

impl Marks {
    fn split(id: ScriptId<'_>) -> (usize, &str) {
        match id {
            ScriptId::Script(sha) => (0, sha),
            ScriptId::Function(name) => (1, name),
        }
    }

    pub fn contains(&self, id: ScriptId) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let (kind, name) = Marks::split(id);
        self.names[kind].read().expect("marks lock").contains(name)
    }

    pub fn insert(&self, id: ScriptId) {
        let (kind, name) = Marks::split(id);
        if self.names[kind]
            .write()
            .expect("marks lock")
            .insert(name.to_string())
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn clear(&self) {
        for names in &self.names {
            names.write().expect("marks lock").clear();
        }
        self.count.store(0, Ordering::Relaxed);
    }
}

/// SHA-1 in lower-case hex (script names, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// Reads a body's shebang as Redis 7.0 does: `#!lua` then options, of which only
/// `flags=a,b` exists. Errors are Redis's replies.
pub fn parse_shebang(body: &[u8]) -> Result<(usize, ScriptFlags), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((0, ScriptFlags::default()));
    }
    let end = memchr::memchr(b'\n', body).unwrap_or(body.len());
    let line = &body[..end];
    let mut parts = line.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or(b"");
    if engine != b"#!lua" {
        let mut msg = b"ERR Unexpected engine in script shebang: ".to_vec();
        msg.extend_from_slice(engine);
        return Err(Reply::error_bytes(msg));
    }
    let mut flags = ScriptFlags::DECLARED;
    for part in parts {
        let Some(list) = part.strip_prefix(b"flags=") else {
            let mut msg = b"ERR Unknown lua shebang option: ".to_vec();
            msg.extend_from_slice(part);
            return Err(Reply::error_bytes(msg));
        };
        for name in list.split(|&c| c == b',') {
            if name.is_empty() {
                continue;
            }
            match ScriptFlags::NAMES
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
            {
                Some((_, f)) => flags.insert(*f),
                None => {
                    let mut msg = b"ERR Unexpected flag in script shebang: ".to_vec();
                    msg.extend_from_slice(name);
                    return Err(Reply::error_bytes(msg));
                }
            }
        }
    }
    Ok((end, flags))
}

thread_local! {
    /// This worker's interpreter, made on first use.
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's interpreter, made (or renewed after SCRIPT FLUSH) for the
/// cache's current generation. A script's command cannot reach here again (EVAL and SCRIPT
/// are refused inside scripts); if something did, it gets an error rather than a panic.
pub fn with_vm<R>(
    cache: &ScriptCache,
    f: impl FnOnce(&mut Vm) -> Result<R, Reply>,
) -> Result<R, Reply> {
    VM.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Err(Reply::err("ERR scripts cannot run scripts"));
        };
        let generation = cache.generation();
        if slot.as_ref().is_none_or(|vm| vm.generation != generation) {
            // Dropping the old interpreter first halves the peak memory of a renewal. (Its
            // memory stopped counting at the flush that made it old.)
            drop(slot.take());
            match Vm::new(generation, cache.busy.clone()) {
                Ok(vm) => *slot = Some(vm),
                Err(e) => {
                    tracing::error!(error = %e, "could not create the Lua interpreter");
                    return Err(Reply::err("ERR could not create the Lua interpreter"));
                }
            }
        }
        let vm = slot.as_mut().expect("made above");
        let out = f(vm);
        // Reported past 4 KB of change (a few times a second under a steady load of
        // scripts, the collector's steps moving it): a shared counter written on every script
        // would bounce between the workers' caches.
        let used = vm.used_bytes();
        if (used - vm.reported_bytes).abs() >= 4 * 1024 && vm.generation == cache.generation() {
            cache.report_interpreter(used - vm.reported_bytes);
            vm.reported_bytes = used;
        }
        out
    })
}

/// Looks a script up or adds it to the cache (EVAL, SCRIPT LOAD), compiling it in this
/// thread's interpreter: a script that does not compile is not cached.
pub fn load(cache: &ScriptCache, body: &Bytes) -> Result<Arc<Script>, Reply> {
    let sha = sha1_hex(body);
    if let Some(script) = cache.get(sha.as_bytes()) {
        with_vm(cache, |vm| vm.compile(&script.sha, script.code()))?;
        return Ok(script);
    }
    let (code_start, flags) = parse_shebang(body)?;
    let script = Arc::new(Script {
        sha,
        body: body.clone(),
        code_start,
        flags,
    });
    with_vm(cache, |vm| vm.compile(&script.sha, script.code()))?;
    cache.insert(script.clone());
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Reply) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out, false);
        out
    }

    #[test]
    fn shebangs_are_read_as_redis_reads_them() {
        assert_eq!(
            parse_shebang(b"return 1").unwrap(),
            (0, ScriptFlags::default())
        );
        let (at, flags) = parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert_eq!(at, 31);
        assert!(flags.contains(ScriptFlags::NO_WRITES));
        assert!(flags.contains(ScriptFlags::ALLOW_OOM));
        assert!(flags.contains(ScriptFlags::DECLARED));
        assert_eq!(
            text(parse_shebang(b"#!python\n").unwrap_err()),
            b"-ERR Unexpected engine in script shebang: #!python\r\n"
        );
        assert_eq!(
            text(parse_shebang(b"#!lua flags=bogus\n").unwrap_err()),
            b"-ERR Unexpected flag in script shebang: bogus\r\n"
        );
        assert_eq!(
            text(parse_shebang(b"#!lua name=x\n").unwrap_err()),
            b"-ERR Unknown lua shebang option: name=x\r\n"
        );
    }

    #[test]
    fn sha1_matches_redis() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
