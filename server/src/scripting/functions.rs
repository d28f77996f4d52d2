//! Redis Functions' libraries: the registry FUNCTION LOAD, DELETE, FLUSH and RESTORE change
//! and FCALL reads, shared by all workers. A library is its code (`#!lua name=<lib>` first)
//! and the functions its code registered; each worker's interpreter loads every library again
//! when the registry's generation changed (`Vm::sync_libraries`), so FCALL finds the same
//! functions on every worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::ScriptFlags;
use crate::protocol::Reply;

/// A function a library registered.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub flags: ScriptFlags,
}

pub struct Library {
    pub name: String,
    /// The whole code, shebang line included (FUNCTION LIST WITHCODE, DUMP, the log).
    pub code: Bytes,
    /// Where the Lua code starts (after the shebang line; its newline kept).
    pub code_start: usize,
    pub functions: Vec<FunctionInfo>,
}

impl Library {
    pub fn lua_code(&self) -> &[u8] {
        &self.code[self.code_start..]
    }
}

#[derive(Default)]
pub struct Functions {
    libraries: RwLock<BTreeMap<String, Arc<Library>>>,
    generation: AtomicU64,
}

/// Whether a library or function name is made of letters, digits and underscores.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub const BAD_NAME: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// A library's shebang: `#!lua name=<lib>`, the Lua code's start and the library's name, with
/// Redis's checks and errors in its order (the engine's name and `name=` in any case).
pub fn parse_metadata(code: &[u8]) -> Result<(usize, String), Reply> {
    if !code.starts_with(b"#!") {
        return Err(Reply::err("ERR Missing library metadata"));
    }
    let invalid = || Reply::err("ERR Invalid library metadata");
    let end = memchr::memchr(b'\n', code).ok_or_else(invalid)?;
    // Redis splits the line with sdssplitargs: quotes group and are dropped (`name="lib"`).
    let parts = crate::protocol::parse::split_args(&code[..end]).ok_or_else(invalid)?;
    let mut parts = parts.iter();
    let engine = &parts.next().ok_or_else(invalid)?[2..];
    let mut name = None;
    for part in parts {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(Reply::err(
                    "ERR Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(&part[5..]);
            continue;
        }
        let mut msg = b"ERR Invalid metadata value given: ".to_vec();
        msg.extend_from_slice(part);
        return Err(Reply::error_bytes(msg));
    }
    let name = name.ok_or_else(|| Reply::err("ERR Library name was not given"))?;
    if !valid_name(name) {
        return Err(Reply::err(BAD_NAME));
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        let mut msg = b"ERR Engine '".to_vec();
        msg.extend_from_slice(engine);
        msg.extend_from_slice(b"' not found");
        return Err(Reply::error_bytes(msg));
    }
    Ok((end, String::from_utf8_lossy(name).into_owned()))
}

impl Functions {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn libraries(&self) -> Vec<Arc<Library>> {
        self.libraries
            .read()
            .expect("functions lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.libraries
            .read()
            .expect("functions lock")
            .contains_key(name)
    }

    /// The library of the function `name`, and the function's place in it.
    pub fn function(&self, name: &[u8]) -> Option<(Arc<Library>, usize)> {
        let libraries = self.libraries.read().expect("functions lock");
        libraries.values().find_map(|lib| {
            lib.functions
                .iter()
                // Function names match in any case, as Redis's (its dictionary of functions
                // compares them so).
                .position(|f| f.name.as_bytes().eq_ignore_ascii_case(name))
                .map(|i| (lib.clone(), i))
        })
    }

    /// Adds `library` (replacing the one of its name when `replace`), unless one of its
    /// functions belongs to another library: Redis's error then, and nothing changes.
    pub fn add(&self, library: Library, replace: bool) -> Result<(), Reply> {
        let mut libraries = self.libraries.write().expect("functions lock");
        if !replace && libraries.contains_key(&library.name) {
            return Err(Reply::err(format!(
                "ERR Library '{}' already exists",
                library.name
            )));
        }
        for f in &library.functions {
            let taken = libraries.values().any(|l| {
                l.name != library.name
                    && l.functions
                        .iter()
                        .any(|g| g.name.eq_ignore_ascii_case(&f.name))
            });
            if taken {
                return Err(Reply::err(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
        libraries.insert(library.name.clone(), Arc::new(library));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub fn delete(&self, name: &str) -> bool {
        let removed = self
            .libraries
            .write()
            .expect("functions lock")
            .remove(name)
            .is_some();
        if removed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        removed
    }

    pub fn flush(&self) {
        self.libraries.write().expect("functions lock").clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Replaces every library at once (FUNCTION RESTORE ... FLUSH and friends, after the
    /// payload was checked whole).
    pub fn replace_all(&self, libraries: Vec<Library>) {
        let mut all = self.libraries.write().expect("functions lock");
        all.clear();
        for l in libraries {
            all.insert(l.name.clone(), Arc::new(l));
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn function_count(&self) -> usize {
        self.libraries
            .read()
            .expect("functions lock")
            .values()
            .map(|l| l.functions.len())
            .sum()
    }

    /// The commands that re-create every library (snapshots keep them with the other
    /// server-wide metadata).
    pub fn meta_records(&self) -> Vec<Vec<Vec<u8>>> {
        self.libraries()
            .iter()
            .map(|l| {
                vec![
                    b"FUNCTION".to_vec(),
                    b"LOAD".to_vec(),
                    b"REPLACE".to_vec(),
                    l.code.to_vec(),
                ]
            })
            .collect()
    }
}

/// RDB's opcode for a function library in a DUMP payload or RDB file (Redis 7.0's
/// RDB_OPCODE_FUNCTION2).
const OPCODE_FUNCTION2: u8 = 245;

/// FUNCTION DUMP: each library's code as an RDB function record, sealed as DUMP payloads are.
pub fn dump(libraries: &[Arc<Library>]) -> Vec<u8> {
    use crate::persist::rdb;
    let mut out = Vec::new();
    for l in libraries {
        out.push(OPCODE_FUNCTION2);
        rdb::put_string(&mut out, &l.code);
    }
    rdb::seal(out)
}

/// The libraries' codes in a FUNCTION DUMP payload (Redis's or ours), or Redis's error.
pub fn undump(payload: &[u8]) -> Result<Vec<Vec<u8>>, Reply> {
    use crate::persist::rdb;
    let body = rdb::open(payload)
        .ok_or_else(|| Reply::err("ERR DUMP payload version or checksum are wrong"))?;
    let mut reader = rdb::Reader::new(body);
    let mut codes = Vec::new();
    while !reader.is_empty() {
        if reader.byte() != Some(OPCODE_FUNCTION2) {
            return Err(Reply::err("ERR given type is not a function"));
        }
        let code = reader
            .string()
            .ok_or_else(|| Reply::err("ERR Failed loading library payload"))?;
        codes.push(code);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_metadata_is_read_as_redis_reads_it() {
        assert_eq!(
            parse_metadata(b"#!lua name=lib1\nreturn 1").unwrap(),
            (15, "lib1".to_string())
        );
        assert!(parse_metadata(b"return 1").is_err());
        assert!(parse_metadata(b"#!lua\n").is_err());
        assert!(parse_metadata(b"#!lua name=x foo=bar\n").is_err());
        assert!(parse_metadata(b"#!python name=x\n").is_err());
        assert!(parse_metadata(b"#!lua name=a-b\n").is_err());
        // Quoted as sdssplitargs reads them (Redis's 'function test name with quotes').
        assert_eq!(
            parse_metadata(b"#!lua name=\"foo\"\nreturn 1").unwrap(),
            (16, "foo".to_string())
        );
        let unbalanced = parse_metadata(b"#!lua name=\"foo\nreturn 1").unwrap_err();
        assert_eq!(unbalanced, Reply::err("ERR Invalid library metadata"));
    }
}
